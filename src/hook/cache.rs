//! The disk cache hook processes share: registry answers by digest, image names -> digests.
//!
//! Many hook processes run at once (a pod's containers, a node's start-up) and none outlives its
//! container's creation, so the cache is files, one per key, each written whole to a temporary
//! file in the same directory and renamed into place: a reader sees the old entry or the new
//! one, never a torn one, and concurrent writers of one key each leave a complete entry (the
//! last rename wins; both are answers to the same question). Nothing is ever updated in place,
//! so readers take no lock. Layout under the cache directory (each entry repeats its key, checked on read):
//!
//! ```text
//! v1/answers/<sha256 of key>.json what the registry said about one image digest in one
//!                                 repository (key `registry/repository@digest`)
//! v1/names/<sha256 of name>.json  an image name's digest (or the failure to resolve it)
//! v1/prune.lock                   flock: one process at a time trims a directory
//! v1/fetch.NN.lock                flock: one process at a time asks the registry about a key
//! ```
//!
//! Entries expire by the config's `cache.ttl` (a spec or its absence), `cache.errorTtl` (a
//! registry failure) and `cache.nameTtl` (a name's digest). Each directory is kept to
//! `cache.maxEntries` files: a writer that finds more than that plus a tenth trims the oldest
//! (expired first), under `prune.lock` so that two writers do not trim the same files.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::policy::config::CacheSettings;
use crate::registry::Digest;

/// Layout version: a changed entry format gets a new directory, so old and new hooks (during
/// an upgrade) never read each other's entries.
const LAYOUT: &str = "v1";
/// Largest entry read back: a spec is capped by `registry.maxSpecBytes` (1 MiB by default).
const MAX_ENTRY_BYTES: u64 = 32 << 20;
/// Temporary files older than this were left by a killed writer.
const STALE_TMP: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cache entry {path} is not valid: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What the registry said about one image digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Answer {
    /// The newest compatibility artifact and its spec (YAML, evaluated on every use so a
    /// change of the node's features applies at once).
    Spec { artifact: String, spec: String },
    /// The image has no compatibility artifact.
    NoArtifact,
    /// The artifact cannot be read as a spec.
    InvalidSpec {
        artifact: Option<String>,
        error: String,
    },
    /// The registry failed.
    RegistryError { error: String },
    /// The registry did not answer within the decision deadline.
    DeadlineExceeded { waited_ms: u64 },
}

impl Answer {
    /// Failures are retried after `errorTtl`; answers are trusted for `ttl`.
    fn is_failure(&self) -> bool {
        matches!(
            self,
            Answer::RegistryError { .. } | Answer::DeadlineExceeded { .. }
        )
    }
}

/// What resolving an image name gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NameAnswer {
    /// The digest the name pointed at (an index or a manifest).
    Digest { digest: String },
    /// The registry does not have the image.
    NotFound,
    /// Resolving failed; retried after `errorTtl`.
    Failed { answer: Answer },
}

#[derive(Serialize, Deserialize)]
struct Entry<T> {
    /// The key, checked on read: names are stored under a hash of the key.
    key: String,
    /// When the registry answered, in milliseconds since the Unix epoch.
    at_ms: u64,
    value: T,
}

/// An opened cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    settings: CacheSettings,
}

impl Cache {
    /// Creates (mode 0700) and opens the cache under `dir`. Fails when the directory cannot be
    /// created or written: the caller then checks without a cache.
    pub fn open(dir: &Path, settings: &CacheSettings) -> Result<Cache, CacheError> {
        let root = dir.join(LAYOUT);
        for sub in ["answers", "names"] {
            let d = root.join(sub);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(io_err(&d))?;
        }
        // Creating an existing directory succeeds on a read-only mount: probe for writes once
        // here, so that an unwritable cache is reported at open, not after the registry call.
        let probe = root.join(".write-probe");
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&probe)
            .map_err(io_err(&probe))?;
        drop(written);
        Ok(Cache {
            root,
            settings: settings.clone(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The registry's answer about `digest` in `repository`, if cached and still fresh.
    pub fn answer(&self, repository: &str, digest: &Digest) -> Result<Option<Answer>, CacheError> {
        let key = format!("{repository}@{digest}");
        let path = self.path("answers", &key);
        let Some(entry) = read_entry::<Answer>(&path, &key)? else {
            return Ok(None);
        };
        let ttl = if entry.value.is_failure() {
            self.settings.error_ttl
        } else {
            self.settings.ttl
        };
        Ok(fresh(entry.at_ms, ttl).then_some(entry.value))
    }

    pub fn store_answer(
        &self,
        repository: &str,
        digest: &Digest,
        answer: &Answer,
    ) -> Result<(), CacheError> {
        let key = format!("{repository}@{digest}");
        let path = self.path("answers", &key);
        write_entry(&path, &key, answer)?;
        self.trim(&self.root.join("answers"))
    }

    /// What the image name `name` (as the runtime wrote it) resolved to, if cached and fresh.
    pub fn name(&self, name: &str) -> Result<Option<NameAnswer>, CacheError> {
        let path = self.path("names", name);
        let Some(entry) = read_entry::<NameAnswer>(&path, name)? else {
            return Ok(None);
        };
        let ttl = match entry.value {
            NameAnswer::Failed { .. } => self.settings.error_ttl,
            _ => self.settings.name_ttl,
        };
        Ok(fresh(entry.at_ms, ttl).then_some(entry.value))
    }

    pub fn store_name(&self, name: &str, answer: &NameAnswer) -> Result<(), CacheError> {
        let path = self.path("names", name);
        write_entry(&path, name, answer)?;
        self.trim(&self.root.join("names"))
    }

    /// Waits until no other hook process is asking the registry about `key`, and holds that
    /// until the returned guard is dropped: N containers of one image starting together make
    /// one registry round trip, the others then find its answer. Keys share 64 lock files
    /// (by hash), so the files stay few; two images colliding only wait for each other. None
    /// when the lock cannot be taken (then the caller asks without it).
    pub fn fetch_lock(&self, key: &str) -> Option<File> {
        let stripe = Sha256::digest(key.as_bytes())[0] % 64;
        let path = self.root.join(format!("fetch.{stripe:02}.lock"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .ok()?;
        fs4::FileExt::lock(&file).ok()?;
        Some(file)
    }

    /// An entry's file: named by a hash of its key, so any key is a safe, short file name.
    fn path(&self, dir: &str, key: &str) -> PathBuf {
        self.root.join(dir).join(format!(
            "{}.json",
            hex::encode(Sha256::digest(key.as_bytes()))
        ))
    }

    /// Keeps `dir` to `maxEntries` files (see the module docs). Skipped when another process
    /// holds the lock: it is doing the same.
    fn trim(&self, dir: &Path) -> Result<(), CacheError> {
        let max = self.settings.max_entries.max(1);
        let entries = list(dir)?;
        if entries.len() <= max + max / 10 {
            return Ok(());
        }
        let lock_path = self.root.join("prune.lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if fs4::FileExt::try_lock(&lock).is_err() {
            return Ok(());
        }
        // Listed again under the lock: the one who held it before may have trimmed already.
        let mut entries = list(dir)?;
        let now = SystemTime::now();
        let mut removed = 0usize;
        entries.retain(|e| {
            if e.tmp {
                if now.duration_since(e.modified).unwrap_or_default() > STALE_TMP {
                    let _ = fs::remove_file(&e.path);
                }
                return false;
            }
            true
        });
        let excess = entries.len().saturating_sub(max);
        // Oldest first: an entry's mtime is when the registry answered.
        entries.sort_by_key(|e| e.modified);
        for e in entries.iter().take(excess) {
            match fs::remove_file(&e.path) {
                Ok(()) => removed += 1,
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => return Err(io_err(&e.path)(err)),
            }
        }
        tracing::debug!(dir = %dir.display(), removed, "cache trimmed");
        Ok(())
    }
}

struct Listed {
    path: PathBuf,
    modified: SystemTime,
    tmp: bool,
}

fn list(dir: &Path) -> Result<Vec<Listed>, CacheError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let tmp = name.starts_with(".tmp.");
        if !tmp && !name.ends_with(".json") {
            continue;
        }
        // An entry removed meanwhile by another trimmer is simply not counted.
        let Ok(meta) = entry.metadata() else { continue };
        out.push(Listed {
            path: entry.path(),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
            tmp,
        });
    }
    Ok(out)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether an entry written at `at_ms` is younger than `ttl`. One from the future (the clock
/// was set back) is not trusted.
fn fresh(at_ms: u64, ttl: Duration) -> bool {
    let now = now_ms();
    at_ms <= now && Duration::from_millis(now - at_ms) < ttl
}

fn read_entry<T: for<'de> Deserialize<'de>>(
    path: &Path,
    key: &str,
) -> Result<Option<Entry<T>>, CacheError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let len = file.metadata().map_err(io_err(path))?.len();
    if len > MAX_ENTRY_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(io_err(path))?;
    let entry: Entry<T> = serde_json::from_slice(&bytes).map_err(|source| CacheError::Corrupt {
        path: path.display().to_string(),
        source,
    })?;
    // Another key hashing to the same name file is a miss, not an answer.
    Ok((entry.key == key).then_some(entry))
}

fn write_entry<T: Serialize>(path: &Path, key: &str, value: &T) -> Result<(), CacheError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp.{}.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        now_ms()
    ));
    let entry = Entry {
        key: key.to_string(),
        at_ms: now_ms(),
        value,
    };
    let bytes = serde_json::to_vec(&entry).map_err(|source| CacheError::Corrupt {
        path: path.display().to_string(),
        source,
    })?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        // No fsync: the cache lives on tmpfs by default, and an entry lost or torn by a crash
        // reads as a miss (a parse error), which only costs one registry round trip.
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: usize) -> CacheSettings {
        CacheSettings {
            max_entries: max,
            ..CacheSettings::default()
        }
    }

    fn digest(n: u32) -> Digest {
        Digest::sha256_of(&n.to_be_bytes())
    }

    const REPO: &str = "registry.example/app";

    #[test]
    fn answers_are_per_repository() {
        let t = tempfile::tempdir().unwrap();
        let c = Cache::open(t.path(), &settings(10)).unwrap();
        c.store_answer(REPO, &digest(1), &Answer::NoArtifact)
            .unwrap();
        assert_eq!(c.answer("other.example/app", &digest(1)).unwrap(), None);
    }

    #[test]
    fn answers_round_trip_and_expire() {
        let t = tempfile::tempdir().unwrap();
        let c = Cache::open(t.path(), &settings(10)).unwrap();
        let spec = Answer::Spec {
            artifact: "sha256:aa".into(),
            spec: "version: v1alpha1\n".into(),
        };
        assert_eq!(c.answer(REPO, &digest(1)).unwrap(), None);
        c.store_answer(REPO, &digest(1), &spec).unwrap();
        assert_eq!(c.answer(REPO, &digest(1)).unwrap(), Some(spec.clone()));
        // A failure lives errorTtl, an answer ttl.
        let short = Cache {
            settings: CacheSettings {
                error_ttl: Duration::ZERO,
                ..settings(10)
            },
            ..c.clone()
        };
        let failed = Answer::RegistryError {
            error: "connection refused".into(),
        };
        short.store_answer(REPO, &digest(2), &failed).unwrap();
        assert_eq!(short.answer(REPO, &digest(2)).unwrap(), None);
        assert_eq!(c.answer(REPO, &digest(2)).unwrap(), Some(failed));
        assert_eq!(short.answer(REPO, &digest(1)).unwrap(), Some(spec));
        let expired = Cache {
            settings: CacheSettings {
                ttl: Duration::ZERO,
                ..settings(10)
            },
            ..c.clone()
        };
        assert_eq!(expired.answer(REPO, &digest(1)).unwrap(), None);
    }

    #[test]
    fn names_round_trip_and_check_their_key() {
        let t = tempfile::tempdir().unwrap();
        let c = Cache::open(t.path(), &settings(10)).unwrap();
        let a = NameAnswer::Digest {
            digest: digest(1).to_string(),
        };
        c.store_name("registry.example/app:1", &a).unwrap();
        assert_eq!(c.name("registry.example/app:1").unwrap(), Some(a));
        // An entry under this name's file whose key is another name is not this name's.
        let stolen = c.path("names", "registry.example/app:2");
        fs::copy(c.path("names", "registry.example/app:1"), stolen).unwrap();
        assert_eq!(c.name("registry.example/app:2").unwrap(), None);
    }

    #[test]
    fn a_torn_entry_is_reported_corrupt() {
        let t = tempfile::tempdir().unwrap();
        let c = Cache::open(t.path(), &settings(10)).unwrap();
        fs::write(
            c.path("answers", &format!("{REPO}@{}", digest(1))),
            "{\"key\":",
        )
        .unwrap();
        assert!(matches!(
            c.answer(REPO, &digest(1)),
            Err(CacheError::Corrupt { .. })
        ));
    }

    #[test]
    fn size_is_bounded_oldest_first() {
        let t = tempfile::tempdir().unwrap();
        let c = Cache::open(t.path(), &settings(3)).unwrap();
        for n in 0..10 {
            c.store_answer(REPO, &digest(n), &Answer::NoArtifact)
                .unwrap();
            // Distinct mtimes, so "oldest" is well defined on coarse-timestamp file systems.
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = list(&c.root.join("answers")).unwrap();
        assert_eq!(left.len(), 3, "entries kept");
        for n in 7..10 {
            assert_eq!(
                c.answer(REPO, &digest(n)).unwrap(),
                Some(Answer::NoArtifact)
            );
        }
    }

    #[test]
    fn concurrent_writers_and_readers_see_whole_entries() {
        let t = tempfile::tempdir().unwrap();
        let c = Cache::open(t.path(), &settings(64)).unwrap();
        let big = "x".repeat(64 * 1024);
        std::thread::scope(|s| {
            for w in 0..4 {
                let c = c.clone();
                let big = big.clone();
                s.spawn(move || {
                    for i in 0..24u32 {
                        let spec = Answer::Spec {
                            artifact: format!("w{w}-{i}"),
                            spec: big.clone(),
                        };
                        c.store_answer(REPO, &digest(i % 8), &spec).unwrap();
                    }
                });
            }
            for _ in 0..4 {
                let c = c.clone();
                s.spawn(move || {
                    for i in 0..96u32 {
                        // Never a parse error: every file renamed into place is complete.
                        match c.answer(REPO, &digest(i % 8)).unwrap() {
                            None => {}
                            Some(Answer::Spec { spec, .. }) => assert_eq!(spec.len(), 64 * 1024),
                            Some(other) => panic!("unexpected {other:?}"),
                        }
                    }
                });
            }
        });
        for i in 0..8 {
            assert!(
                c.answer(REPO, &digest(i)).unwrap().is_some(),
                "entry {i} lost"
            );
        }
        let tmp_left = list(&c.root.join("answers"))
            .unwrap()
            .iter()
            .filter(|e| e.tmp)
            .count();
        assert_eq!(tmp_left, 0);
    }

    #[test]
    fn an_unusable_directory_fails_at_open() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("file");
        fs::write(&file, "").unwrap();
        let e = Cache::open(&file.join("cache"), &settings(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("file/cache"), "{e}");
    }
}
