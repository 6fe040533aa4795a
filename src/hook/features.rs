//! The node's features for the hook: one discovery saved on disk, shared, redone when stale.
//!
//! Stale: older than `features.refresh`, or the node changed under it (see below).
//!
//! Discovery reads hundreds of files (tens of milliseconds); a hook must decide in a few. So the
//! features are saved as JSON next to a fingerprint of what changes on a running node without
//! notice: the boot ID (a reboot), the kernel release, the loaded modules' names, the PCI and
//! USB device lists, the features.d directory (local source), and the discovery options. A hook
//! recomputes the fingerprint (a handful of small reads) and rediscovers when it differs, so a
//! module loaded or a device plugged in is seen by the next container. What the fingerprint
//! does not cover (CPU microcode, a kernel config or os-release edited in place, ...) waits for
//! `features.refresh` (default 0s: never) or a reboot; deleting the file forces a rediscovery.
//! One process rediscovers at a time, under an flock, while the others wait for its result.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::FeatureSettings;
use crate::features::{self, discover, DiscoverOptions, Features};

const FILE: &str = "v1/features.json";
/// Largest saved discovery read back: a large server's features are a few hundred KiB.
const MAX_SAVED_BYTES: u64 = 16 << 20;
const LOCK: &str = "v1/features.lock";

pub use crate::config::FeaturesError as NodeFeaturesError;

/// Where the features of one hook run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeaturesOrigin {
    /// The configured `features.file`.
    File,
    /// The saved discovery.
    Cached,
    /// Discovered by this run (and saved, when the cache directory is usable).
    Discovered,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    fingerprint: String,
    at_ms: u64,
    features: Features,
}

/// This node's features: `features.file` when configured, else the saved discovery under
/// `cache_dir` when still valid, else a new discovery (saved for the next run). A cache
/// directory that cannot be read or written only costs a discovery per run; it is reported
/// through `warn` and never fails the hook.
pub fn node_features(
    settings: &FeatureSettings,
    cache_dir: Option<&Path>,
    warn: &mut dyn FnMut(String),
) -> Result<(Features, FeaturesOrigin), NodeFeaturesError> {
    if let Some(file) = &settings.file {
        return Ok((features::file::read(file)?, FeaturesOrigin::File));
    }
    let opts = settings.discover_options()?;
    let Some(dir) = cache_dir else {
        return Ok((discover(&opts), FeaturesOrigin::Discovered));
    };
    let fingerprint = fingerprint(&opts);
    let path = dir.join(FILE);
    let refresh = settings.refresh;
    match load(&path, &fingerprint, refresh) {
        Ok(Some(f)) => return Ok((f, FeaturesOrigin::Cached)),
        Ok(None) => {}
        Err(e) => warn(format!(
            "features cache {}: {e}; rediscovering",
            path.display()
        )),
    }
    // One rediscovery at a time: the others wait, then find the new file valid.
    let lock_path = dir.join(LOCK);
    if let Some(parent) = lock_path.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent);
    }
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path);
    let _guard = match lock {
        Ok(f) => match fs4::FileExt::lock(&f) {
            Ok(()) => Some(f),
            Err(e) => {
                warn(format!("cannot lock {}: {e}", lock_path.display()));
                None
            }
        },
        Err(e) => {
            warn(format!("cannot open {}: {e}", lock_path.display()));
            None
        }
    };
    if let Ok(Some(f)) = load(&path, &fingerprint, refresh) {
        return Ok((f, FeaturesOrigin::Cached));
    }
    let features = discover(&opts);
    if let Err(e) = save(&path, &fingerprint, &features) {
        warn(format!(
            "cannot save the node's features to {}: {e}",
            path.display()
        ));
    }
    Ok((features, FeaturesOrigin::Discovered))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The saved features, if they are for this fingerprint and not older than `refresh` (0: no
/// age limit).
fn load(path: &Path, fingerprint: &str, refresh: Duration) -> std::io::Result<Option<Features>> {
    // Inside the hook's private cache directory, but read as any file others could have
    // placed: no symlink, a regular file, at most MAX_SAVED_BYTES.
    let bytes =
        match crate::untrusted::read_file(path, MAX_SAVED_BYTES, crate::untrusted::Links::Refuse) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
    let saved: Saved = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
    if saved.fingerprint != fingerprint {
        tracing::debug!("the node changed since its features were saved");
        return Ok(None);
    }
    let now = now_ms();
    if !refresh.is_zero()
        && (saved.at_ms > now || Duration::from_millis(now - saved.at_ms) >= refresh)
    {
        return Ok(None);
    }
    Ok(Some(saved.features))
}

fn save(path: &Path, fingerprint: &str, features: &Features) -> std::io::Result<()> {
    let saved = Saved {
        fingerprint: fingerprint.to_string(),
        at_ms: now_ms(),
        features: features.clone(),
    };
    let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".features.tmp.{}", std::process::id()));
    let written = (|| {
        // A leftover of a killed writer with this pid is ours to replace; create_new never
        // follows a link planted at the name.
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// What changes on a running node without notice (see the module docs), hashed.
pub fn fingerprint(opts: &DiscoverOptions) -> String {
    let roots = &opts.roots;
    let mut h = Sha256::new();
    let mut part = |label: &str, value: &[u8]| {
        h.update(label.as_bytes());
        h.update((value.len() as u64).to_be_bytes());
        h.update(value);
    };
    part("options", format!("{opts:?}").as_bytes());
    part(
        "node",
        std::env::var("NODE_NAME").unwrap_or_default().as_bytes(),
    );
    part("boot", &read(&roots.proc.join("sys/kernel/random/boot_id")));
    part(
        "release",
        &read(&roots.unprefixed_path("proc/sys/kernel/osrelease")),
    );
    // Module names only: the use counts in /proc/modules change all the time.
    let modules = String::from_utf8_lossy(&read(&roots.unprefixed_path("proc/modules")))
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect::<Vec<_>>()
        .join(" ");
    part("modules", modules.as_bytes());
    part("pci", names(&roots.sys.join("bus/pci/devices")).as_bytes());
    part("usb", names(&roots.sys.join("bus/usb/devices")).as_bytes());
    part(
        "local",
        names_times(&roots.unprefixed_path(features::FEATURES_DIR)).as_bytes(),
    );
    if let Some(dir) = &opts.compat_dir {
        part("compat", names_times(dir).as_bytes());
    }
    hex::encode(h.finalize())
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_default()
}

fn names(dir: &Path) -> String {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.join(" ")
}

/// Names with modification times and sizes: features.d files are edited in place.
fn names_times(dir: &Path) -> String {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let (mtime, len) = e
                        .metadata()
                        .map(|m| {
                            let t = m
                                .modified()
                                .ok()
                                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                                .map(|d| d.as_nanos())
                                .unwrap_or(0);
                            (t, m.len())
                        })
                        .unwrap_or((0, 0));
                    format!("{}:{mtime}:{len}", e.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.join(" ")
}

/// Path of the saved features under a cache directory (for tools and tests).
pub fn saved_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{HostRoots, Source};

    /// A fixture host with a module list and a PCI device.
    fn host(root: &Path) {
        fs::create_dir_all(root.join("proc/sys/kernel/random")).unwrap();
        fs::write(root.join("proc/sys/kernel/random/boot_id"), "b1\n").unwrap();
        fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
        fs::write(root.join("proc/modules"), "ext4 1 2 - Live 0x0\n").unwrap();
        fs::create_dir_all(root.join("sys/bus/pci/devices/0000:00:01.0")).unwrap();
    }

    fn opts(root: &Path) -> DiscoverOptions {
        DiscoverOptions::new(HostRoots::fixture(root)).with_sources([Source::Kernel])
    }

    #[test]
    fn fingerprint_follows_boot_modules_and_devices() {
        let t = tempfile::tempdir().unwrap();
        host(t.path());
        let o = opts(t.path());
        let base = fingerprint(&o);
        assert_eq!(fingerprint(&o), base, "stable");
        // Use counts change all the time and must not count.
        fs::write(t.path().join("proc/modules"), "ext4 1 7 - Live 0x0\n").unwrap();
        assert_eq!(fingerprint(&o), base);
        fs::write(
            t.path().join("proc/modules"),
            "ext4 1 7 - Live 0x0\nvfio_pci 16384 0 - Live 0x0\n",
        )
        .unwrap();
        let with_vfio = fingerprint(&o);
        assert_ne!(with_vfio, base);
        fs::create_dir_all(t.path().join("sys/bus/pci/devices/0000:00:02.0")).unwrap();
        let with_dev = fingerprint(&o);
        assert_ne!(with_dev, with_vfio);
        fs::write(t.path().join("proc/sys/kernel/random/boot_id"), "b2\n").unwrap();
        assert_ne!(fingerprint(&o), with_dev);
        assert_ne!(
            fingerprint(&opts(t.path()).with_sources([Source::Cpu])),
            fingerprint(&o),
            "other options"
        );
    }

    #[test]
    fn saved_until_the_fingerprint_or_age_says_otherwise() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join(FILE);
        let mut f = Features::default();
        f.set_flags("kernel.loadedmodule", ["ext4".to_string()]);
        save(&path, "fp1", &f).unwrap();
        assert_eq!(load(&path, "fp1", Duration::ZERO).unwrap(), Some(f.clone()));
        assert_eq!(load(&path, "fp2", Duration::ZERO).unwrap(), None);
        assert_eq!(
            load(&path, "fp1", Duration::from_secs(60)).unwrap(),
            Some(f)
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(load(&path, "fp1", Duration::from_millis(1)).unwrap(), None);
        fs::write(&path, "{").unwrap();
        assert!(load(&path, "fp1", Duration::ZERO).is_err());
    }

    #[test]
    fn node_features_uses_and_refreshes_the_saved_discovery() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("cache");
        fs::create_dir_all(cache.join("v1")).unwrap();
        let settings = FeatureSettings {
            sources: vec!["local".into()],
            ..FeatureSettings::default()
        };
        let mut warnings = Vec::new();
        let (_, origin) =
            node_features(&settings, Some(&cache), &mut |w| warnings.push(w)).unwrap();
        assert_eq!(origin, FeaturesOrigin::Discovered);
        let (_, origin) =
            node_features(&settings, Some(&cache), &mut |w| warnings.push(w)).unwrap();
        assert_eq!(origin, FeaturesOrigin::Cached);
        // A corrupt file is reported and replaced.
        fs::write(saved_path(&cache), "garbage").unwrap();
        let (_, origin) =
            node_features(&settings, Some(&cache), &mut |w| warnings.push(w)).unwrap();
        assert_eq!(origin, FeaturesOrigin::Discovered);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("rediscovering"), "{warnings:?}");
        // An unusable directory still gives features, with a warning.
        let file = t.path().join("not-a-dir");
        fs::write(&file, "").unwrap();
        let mut warnings = Vec::new();
        let (_, origin) = node_features(&settings, Some(&file), &mut |w| warnings.push(w)).unwrap();
        assert_eq!(origin, FeaturesOrigin::Discovered);
        assert!(!warnings.is_empty());
    }

    #[test]
    fn bad_sources_are_config_errors() {
        let settings = FeatureSettings {
            sources: vec!["gpu".into()],
            ..FeatureSettings::default()
        };
        let e = node_features(&settings, None, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("features.sources:"), "{e}");
    }
}
