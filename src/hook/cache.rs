//! The hook's [`Store`]: answers in files that all hook processes of a node share.
//!
//! Many hook processes run at once (a pod's containers, a node's start-up) and none outlives its
//! container's creation, so the store is files, one per key, each written whole to a temporary
//! file in the same directory and renamed into place: a reader sees the old entry or the new
//! one, never a torn one, and concurrent writers of one key each leave a complete entry (the
//! last rename wins; both are answers to the same question). Nothing is updated in place, so
//! readers take no lock. Layout under the cache directory:
//!
//! ```text
//! v2/answers/<sha256 of scope and key>.json  one image's answer (key: its candidate references)
//! v2/prune.lock                              flock: one process at a time trims the directory
//! v2/fetch.NN.lock                           flock: one process at a time asks about a key
//! ```
//!
//! The directory is trusted only when this process's user owns it and nobody else can write it
//! (checked at open, every level from the cache directory down); entries are opened without
//! following symlinks, must be regular files, are read up to a bound, and are bound to the
//! settings that wrote them (`scope`: registry settings and platform), so an answer planted by
//! someone else, or written under other registry settings, is never served. Each directory is
//! kept to `cache.maxEntries` files: a writer that finds more than that plus a tenth trims the
//! oldest, under `prune.lock`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::check::{Answer, Entry, Store, StoreError};
use crate::untrusted::{read_file, Links};

/// Layout version: a changed entry format gets a new directory, so old and new hooks (during
/// an upgrade) never read each other's entries.
const LAYOUT: &str = "v2";
/// Largest entry read back: a spec is at most 256 KiB (`spec::MAX_BYTES`), and
/// an entry holds one spec as JSON text.
const MAX_ENTRY_BYTES: u64 = 8 << 20;
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
    #[error("cache {path} is not safe to use: {why}")]
    Unsafe { path: String, why: String },
    #[error("cache entry {path} is not valid: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<CacheError> for StoreError {
    fn from(e: CacheError) -> Self {
        StoreError(e.to_string())
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    /// The key and scope, checked on read: files are named by a hash of them.
    key: String,
    scope: String,
    /// When the answer was confirmed, in milliseconds since the Unix epoch.
    at_ms: u64,
    ttl_ms: u64,
    answer: Answer,
}

/// An opened cache directory.
#[derive(Debug, Clone)]
pub struct DiskStore {
    root: PathBuf,
    scope: String,
    max_entries: usize,
}

impl DiskStore {
    /// Creates (mode 0700) and opens the store under `dir`, for answers fetched with the
    /// settings `scope` names. Fails when the directory cannot be created or written, or when
    /// another user could have written it: the caller then checks without a store.
    pub fn open(dir: &Path, scope: &str, max_entries: usize) -> Result<DiskStore, CacheError> {
        let root = dir.join(LAYOUT);
        let answers = root.join("answers");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&answers)
            .map_err(io_err(&answers))?;
        for d in [dir, root.as_path(), answers.as_path()] {
            check_private_dir(d)?;
        }
        // Creating an existing directory succeeds on a read-only mount: probe for writes once
        // here, so that an unwritable cache is reported at open, not after the registry call.
        // The probe is this process's own: hooks open the store at the same time, and a shared
        // name would have one remove the other's probe and fail it.
        let probe = root.join(format!(".write-probe.{}", std::process::id()));
        let _ = fs::remove_file(&probe);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)
            .map_err(io_err(&probe))?;
        let _ = fs::remove_file(&probe);
        Ok(DiskStore {
            root,
            scope: scope.to_string(),
            max_entries: max_entries.max(1),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// An entry's file: named by a hash of scope and key, so any key is a safe, short name.
    fn path(&self, key: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(self.scope.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        self.root
            .join("answers")
            .join(format!("{}.json", hex::encode(h.finalize())))
    }

    fn read(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        let path = self.path(key);
        let bytes = match read_file(&path, MAX_ENTRY_BYTES, Links::Refuse) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let saved: Saved =
            serde_json::from_slice(&bytes).map_err(|source| CacheError::Corrupt {
                path: path.display().to_string(),
                source,
            })?;
        // Another key (or the same key under other settings) hashing to this name is a miss.
        if saved.key != key || saved.scope != self.scope {
            return Ok(None);
        }
        Ok(Some(Entry {
            answer: std::sync::Arc::new(saved.answer),
            at: UNIX_EPOCH + Duration::from_millis(saved.at_ms),
            ttl: Duration::from_millis(saved.ttl_ms),
        }))
    }

    fn write(&self, key: &str, entry: &Entry) -> Result<(), CacheError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = self.path(key);
        let dir = self.root.join("answers");
        let saved = Saved {
            key: key.to_string(),
            scope: self.scope.clone(),
            at_ms: millis(entry.at),
            ttl_ms: entry.ttl.as_millis() as u64,
            answer: (*entry.answer).clone(),
        };
        let bytes = serde_json::to_vec(&saved).map_err(|source| CacheError::Corrupt {
            path: path.display().to_string(),
            source,
        })?;
        let tmp = dir.join(format!(
            ".tmp.{}.{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            millis(SystemTime::now())
        ));
        let result = (|| {
            // create_new never follows a link planted at the temporary name.
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            // No fsync: the cache lives on tmpfs by default, and an entry lost or torn by a
            // crash reads as a miss (a parse error), which only costs one registry round trip.
            // rename replaces a link at `path` itself, never what it points to.
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&path)(e));
        }
        self.trim(&dir)
    }

    /// Keeps `dir` to `maxEntries` files (see the module docs). Skipped when another process
    /// holds the lock: it is doing the same.
    fn trim(&self, dir: &Path) -> Result<(), CacheError> {
        let max = self.max_entries;
        let entries = list(dir)?;
        if entries.len() <= max + max / 10 {
            return Ok(());
        }
        let lock_path = self.root.join("prune.lock");
        let lock = open_lock(&lock_path).map_err(io_err(&lock_path))?;
        if fs4::FileExt::try_lock(&lock).is_err() {
            return Ok(());
        }
        // Listed again under the lock: the one who held it before may have trimmed already.
        let mut entries = list(dir)?;
        let now = SystemTime::now();
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
        // Oldest first: an entry's mtime is when it was written.
        entries.sort_by_key(|e| e.modified);
        let mut removed = 0usize;
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

impl Store for DiskStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.read(key)?)
    }

    fn put(&self, key: &str, entry: Entry) -> Result<(), StoreError> {
        Ok(self.write(key, &entry)?)
    }

    fn count(&self) -> usize {
        list(&self.root.join("answers")).map_or(0, |l| l.iter().filter(|e| !e.tmp).count())
    }

    /// Keys share 64 lock files (by hash), so the files stay few; two images colliding only
    /// wait for each other. A lock file that cannot be opened means no lock (the caller asks
    /// without it); one held past `wait` means None.
    fn lock(&self, key: &str, wait: Duration) -> Option<crate::check::store::FetchLock> {
        let stripe = Sha256::digest(key.as_bytes())[0] % 64;
        let path = self.root.join(format!("fetch.{stripe:02}.lock"));
        let Ok(file) = open_lock(&path) else {
            return Some(Box::new(()));
        };
        let until = Instant::now() + wait;
        loop {
            if fs4::FileExt::try_lock(&file).is_ok() {
                return Some(Box::new(file));
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn persistent(&self) -> bool {
        true
    }
}

/// A lock file of ours: created 0600 if missing, never through a symlink.
fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A directory this process may trust: a real directory (not a symlink), owned by the user the
/// process runs as, and writable by nobody else.
pub fn check_private_dir(dir: &Path) -> Result<(), CacheError> {
    let unsafe_dir = |why: String| CacheError::Unsafe {
        path: dir.display().to_string(),
        why,
    };
    let meta = fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir("it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "it belongs to uid {}, not to this process's uid {me}",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "others can write it (mode {:o}); make it 0700",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
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

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::check::{Outcome, Verdict};

    fn answer(error: &str) -> Arc<Answer> {
        Arc::new(Answer::settled(Verdict::new(Outcome::RegistryError {
            error: error.into(),
            kind: Some(crate::registry::ErrorKind::Transport),
        })))
    }

    fn entry(error: &str) -> Entry {
        Entry::new(answer(error), Duration::from_secs(60))
    }

    fn reason(e: &Entry) -> String {
        e.answer.verdict(&Default::default(), &[]).reason()
    }

    const KEY: &str = "registry.example/app@sha256:aa";

    #[test]
    fn entries_round_trip_per_scope_and_key() {
        let t = tempfile::tempdir().unwrap();
        let s = DiskStore::open(t.path(), "scope-a", 10).unwrap();
        assert!(s.get(KEY).unwrap().is_none());
        s.put(KEY, entry("down")).unwrap();
        let got = s.get(KEY).unwrap().unwrap();
        assert_eq!(reason(&got), "registry error: down");
        assert!(got.is_fresh());
        // The kind survives the disk.
        let v = got.answer.verdict(&Default::default(), &[]);
        assert!(matches!(
            v.outcome,
            Outcome::RegistryError {
                kind: Some(crate::registry::ErrorKind::Transport),
                ..
            }
        ));
        assert!(s.get("other").unwrap().is_none());
        let other_settings = DiskStore::open(t.path(), "scope-b", 10).unwrap();
        assert!(other_settings.get(KEY).unwrap().is_none());
        // A file holding another key's entry under this key's name is a miss.
        fs::copy(s.path(KEY), s.path("stolen")).unwrap();
        assert!(s.get("stolen").unwrap().is_none());
    }

    #[test]
    fn a_torn_entry_is_reported_corrupt() {
        let t = tempfile::tempdir().unwrap();
        let s = DiskStore::open(t.path(), "", 10).unwrap();
        fs::write(s.path(KEY), "{\"key\":").unwrap();
        assert!(matches!(s.read(KEY), Err(CacheError::Corrupt { .. })));
    }

    #[test]
    fn planted_links_and_special_files_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let s = DiskStore::open(&t.path().join("c"), "", 10).unwrap();
        let target = t.path().join("root-owned");
        fs::write(&target, "precious").unwrap();
        std::os::unix::fs::symlink(&target, s.path(KEY)).unwrap();
        let e = s.read(KEY).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // Writing replaces the link, never what it points to.
        s.put(KEY, entry("x")).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        assert!(s.get(KEY).unwrap().is_some());
        fs::remove_file(s.path(KEY)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", s.path(KEY)).unwrap();
        assert!(s.read(KEY).is_err());
        // A lock file planted as a link is not followed.
        let stripe = Sha256::digest(KEY.as_bytes())[0] % 64;
        let lock = s.root.join(format!("fetch.{stripe:02}.lock"));
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        assert!(s.lock(KEY, Duration::ZERO).is_some());
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn a_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let e = DiskStore::open(&dir, "", 10).unwrap_err().to_string();
        assert!(e.contains("others can write it"), "{e}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(dir.join(LAYOUT), fs::Permissions::from_mode(0o733)).unwrap();
        assert!(DiskStore::open(&dir, "", 10).is_err());
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = DiskStore::open(&link, "", 10).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        if unsafe { libc::geteuid() } == 0 {
            let theirs = t.path().join("theirs");
            fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            let e = DiskStore::open(&theirs, "", 10).unwrap_err().to_string();
            assert!(e.contains("belongs to uid 65534"), "{e}");
        }
    }

    #[test]
    fn size_is_bounded_oldest_first() {
        let t = tempfile::tempdir().unwrap();
        let s = DiskStore::open(t.path(), "", 3).unwrap();
        for n in 0..10 {
            s.put(&format!("k{n}"), entry(&n.to_string())).unwrap();
            // Distinct mtimes, so "oldest" is well defined on coarse-timestamp file systems.
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(s.count(), 3);
        for n in 7..10 {
            assert!(s.get(&format!("k{n}")).unwrap().is_some(), "k{n}");
        }
    }

    #[test]
    fn concurrent_writers_and_readers_see_whole_entries() {
        let t = tempfile::tempdir().unwrap();
        let s = DiskStore::open(t.path(), "", 64).unwrap();
        let big = "x".repeat(64 * 1024);
        std::thread::scope(|sc| {
            for w in 0..4 {
                let (s, big) = (s.clone(), big.clone());
                sc.spawn(move || {
                    for i in 0..24u32 {
                        s.put(&format!("k{}", i % 8), entry(&format!("{w}{big}")))
                            .unwrap();
                    }
                });
            }
            for _ in 0..4 {
                let s = s.clone();
                sc.spawn(move || {
                    for i in 0..96u32 {
                        // Never a parse error: every file renamed into place is complete.
                        if let Some(e) = s.get(&format!("k{}", i % 8)).unwrap() {
                            assert_eq!(reason(&e).len(), "registry error: ".len() + 1 + 64 * 1024);
                        }
                    }
                });
            }
        });
        for i in 0..8 {
            assert!(s.get(&format!("k{i}")).unwrap().is_some(), "entry {i} lost");
        }
        let tmp_left = list(&s.root.join("answers"))
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
        let e = DiskStore::open(&file.join("cache"), "", 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("file/cache"), "{e}");
    }
}
