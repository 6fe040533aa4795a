//! The `local` source: local.feature and local.label from NFD's features.d files.
//!
//! Format (NFD's source/local): every non-hidden regular file up to 64 KiB in
//! `/etc/kubernetes/node-feature-discovery/features.d/` (never host-prefixed), read in name
//! order, later files overriding earlier ones. Each non-empty, non-comment line is
//! `key[=value]` (value `true` when absent). Comment lines starting with `# +` are
//! directives: `no-feature` / `no-label` drop the next entry from one of the two features,
//! `expiry-time=<RFC 3339>` ignores the following entries once that time has passed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, FixedOffset};
use tracing::{debug, warn};

use super::host::{read_dir_sorted, HostRoots};
use super::Features;

type Attrs = BTreeMap<String, String>;

/// NFD's features.d directory, read from NFD's own view.
pub const FEATURES_DIR: &str = "etc/kubernetes/node-feature-discovery/features.d";

/// Files larger than this are skipped, as NFD does.
const MAX_FILE_SIZE: u64 = 65536;

/// Discovers the local source's features; both always exist.
pub(crate) fn discover(roots: &HostRoots) -> Features {
    let now = DateTime::<chrono::Utc>::from(SystemTime::now()).fixed_offset();
    let (features, labels) = read_dir(&roots.unprefixed_path(FEATURES_DIR), now);
    let mut f = Features::default();
    f.set_attributes("local.feature", features);
    f.set_attributes("local.label", labels);
    f
}

fn read_dir(dir: &Path, now: DateTime<FixedOffset>) -> (Attrs, Attrs) {
    let mut features = Attrs::new();
    let mut labels = Attrs::new();
    let names = match read_dir_sorted(dir) {
        Ok(n) => n,
        Err(e) => {
            debug!(path = %dir.display(), error = %e, "local: no features.d directory");
            return (features, labels);
        }
    };
    for name in names.into_iter().filter(|n| !n.starts_with('.')) {
        let path = dir.join(&name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "skipping unreadable feature file");
                continue;
            }
        };
        if !meta.is_file() {
            continue;
        }
        if meta.len() > MAX_FILE_SIZE {
            warn!(path = %path.display(), size = meta.len(), "skipping feature file larger than 64 KiB");
            continue;
        }
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "skipping unreadable feature file");
                continue;
            }
        };
        let (f, l) = parse_file(&text, &path, now);
        features.extend(f);
        labels.extend(l);
    }
    (features, labels)
}

/// One file's (features, labels).
fn parse_file(text: &str, path: &Path, now: DateTime<FixedOffset>) -> (Attrs, Attrs) {
    let mut features = Attrs::new();
    let mut labels = Attrs::new();
    let mut expiry = now;
    let mut skip_feature = false;
    let mut skip_label = false;
    for line in text.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            if let Some(directive) = line.strip_prefix("# +") {
                let (key, value) = match directive.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (directive, None),
                };
                match (key, value) {
                    ("expiry-time", Some(v)) => match parse_rfc3339(v.trim()) {
                        Some(t) => expiry = t,
                        None => {
                            warn!(path = %path.display(), value = v, "ignoring malformed expiry-time directive")
                        }
                    },
                    ("no-feature", _) => skip_feature = true,
                    ("no-label", _) => skip_label = true,
                    _ => {
                        warn!(path = %path.display(), directive, "ignoring unknown or malformed directive")
                    }
                }
            }
            continue;
        }
        if expiry < now {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, v),
            None => (line, "true"),
        };
        for (skip, map) in [(skip_feature, &mut features), (skip_label, &mut labels)] {
            if skip {
                map.remove(key);
            } else {
                map.insert(key.to_string(), value.to_string());
            }
        }
        skip_feature = false;
        skip_label = false;
    }
    (features, labels)
}

/// Go's `time.Parse(time.RFC3339, s)`: chrono's parser, minus the lower-case `t`/`z` and the
/// space separator that chrono also accepts and Go does not.
fn parse_rfc3339(s: &str) -> Option<DateTime<FixedOffset>> {
    if s.as_bytes().get(10) != Some(&b'T') || s.contains('z') {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn now() -> DateTime<FixedOffset> {
        parse_rfc3339("2025-06-01T00:00:00Z").unwrap()
    }

    fn parse(text: &str) -> (Attrs, Attrs) {
        parse_file(text, Path::new("f"), now())
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_values_and_comments() {
        let (f, l) = parse("# comment\nfoo\nbar=baz\n  spaced = x  \nurl=a=b\n");
        let want = attrs(&[
            ("foo", "true"),
            ("bar", "baz"),
            ("spaced ", " x"),
            ("url", "a=b"),
        ]);
        assert_eq!(f, want);
        assert_eq!(l, want);
    }

    #[test]
    fn no_feature_and_no_label_apply_to_next_entry_only() {
        let (f, l) = parse("# +no-feature\na=1\nb=2\n# +no-label\nc=3\nd=4\n");
        assert_eq!(f, attrs(&[("b", "2"), ("c", "3"), ("d", "4")]));
        assert_eq!(l, attrs(&[("a", "1"), ("b", "2"), ("d", "4")]));
        // A later no-feature entry removes an earlier value of the same key.
        let (f, _) = parse("a=1\n# +no-feature\na=2\n");
        assert!(f.is_empty());
    }

    #[test]
    fn expiry_time() {
        let (f, _) = parse(
            "a=1\n# +expiry-time=2020-01-01T00:00:00Z\nb=2\n# +expiry-time=2999-01-01T00:00:00+02:00\nc=3\n",
        );
        assert_eq!(f, attrs(&[("a", "1"), ("c", "3")]));
        // Unparsable directives are ignored, the previous expiry stays.
        let (f, _) = parse("# +expiry-time=yesterday\na=1\n# +expiry-time\nb=2\n# +unknown\nc=3\n");
        assert_eq!(f, attrs(&[("a", "1"), ("b", "2"), ("c", "3")]));
        assert!(parse_rfc3339("2020-01-01 00:00:00Z").is_none());
        assert!(parse_rfc3339("2020-01-01T00:00:00.5+01:00").is_some());
    }

    #[test]
    fn directory_rules() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join(FEATURES_DIR);
        fs::create_dir_all(d.join("subdir")).unwrap();
        fs::write(d.join("a"), "x=a\nonly_a\n").unwrap();
        fs::write(d.join("b"), "x=b\n").unwrap();
        fs::write(d.join(".hidden"), "hidden\n").unwrap();
        fs::write(d.join("big"), format!("big=1\n{}", "#".repeat(65536))).unwrap();
        fs::write(d.join("subdir/inner"), "inner\n").unwrap();
        let f = discover(&HostRoots::fixture(t.path()));
        let want = attrs(&[("x", "b"), ("only_a", "true")]);
        assert_eq!(f.attributes["local.feature"].elements, want);
        assert_eq!(f.attributes["local.label"].elements, want);
        let empty = discover(&HostRoots::fixture(t.path().join("none")));
        assert!(empty.attributes["local.feature"].elements.is_empty());
        assert!(empty.attributes["local.label"].elements.is_empty());
    }
}
