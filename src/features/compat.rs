//! The `compat` source: image-compat's own features (not NFD's), today the node's archspec target.
//!
//! NFD has no such source. Its feature names start with the source name, and NFD's sources
//! are single words, so `compat.io.archspec` cannot collide with one of theirs; the part after
//! `compat.` is Proposal F's compatibility group name `io.archspec`.
//!
//! `compat.io.archspec` (attributes), from [`archspec::host_target`]:
//! * `target`: the detected microarchitecture (`sapphirerapids`, `x86_64_v4`, `neoverse_v1`);
//! * `vendor`: that target's vendor in the database (`GenuineIntel`, `ARM`, `generic`);
//! * `family`: its family root (`x86_64`, `aarch64`);
//! * `generic`: its most specific generic ancestor-or-self (`x86_64_v4`, `armv8.4a`), archspec's
//!   `Microarchitecture.generic`.
//!
//! The feature is absent where detection does not apply (an architecture other than x86_64
//! and aarch64, or a fixture tree whose recorded CPU cannot be read). It makes no NFD label.
//!
//! `compat.GROUP` (attributes): what the node's admin declares for Proposal F interest group
//! GROUP in the compat directory (`features.compatDir`, default `/etc/image-compat/compat.d`):
//! files `*.json` of the artifacts' own shape, `{"compatibilities": {GROUP: {KEY: VALUE}}}`,
//! read in name order (a later file's key replaces an earlier one's); values as their JSON text
//! (`4`, `true`, strings unquoted). A declared `io.archspec` key replaces the detected one.
//! A file that cannot be read is skipped with a warning; the rest still count.

use std::collections::BTreeMap;

use tracing::debug;

use super::archspec;
use super::host::HostRoots;
use super::Features;

/// The feature holding the node's archspec target.
pub const ARCHSPEC_FEATURE: &str = "compat.io.archspec";

/// Largest declaration file read: a Proposal F document, read as artifacts are.
const MAX_DECLARATION_BYTES: u64 = crate::compat::MAX_BYTES as u64;

/// Discovers the compat source's features.
pub(crate) fn discover(roots: &HostRoots, declared: Option<&std::path::Path>) -> Features {
    let mut f = Features::default();
    match archspec::host_target(roots) {
        Ok(d) => {
            let db = archspec::database();
            let t = d.target;
            f.set_attributes(
                ARCHSPEC_FEATURE,
                BTreeMap::from([
                    ("target".to_string(), t.name().to_string()),
                    ("vendor".to_string(), t.vendor().to_string()),
                    ("family".to_string(), db.family(t).name().to_string()),
                    ("generic".to_string(), db.generic(t).name().to_string()),
                ]),
            );
        }
        Err(e) => debug!(error = %e, "{ARCHSPEC_FEATURE}: not detected, feature omitted"),
    }
    if let Some(dir) = declared {
        for (group, keys) in declarations(dir) {
            let name = format!("compat.{group}");
            let mut attrs = f
                .attributes
                .get(&name)
                .map(|a| a.elements.clone())
                .unwrap_or_default();
            attrs.extend(keys);
            f.set_attributes(&name, attrs);
        }
    }
    f
}

/// The groups and keys declared in `dir`'s `*.json` files.
fn declarations(dir: &std::path::Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list the compat directory");
            return out;
        }
    };
    files.sort();
    for path in files {
        let shown = path.display().to_string();
        let text = match crate::untrusted::read_file(
            &path,
            MAX_DECLARATION_BYTES,
            crate::untrusted::Links::Follow,
        ) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                tracing::warn!(file = %shown, error = %e, "compat declaration skipped");
                continue;
            }
        };
        match crate::compat::parse(&text, &shown) {
            Ok(p) if p.is_valid() => {
                for g in p.doc.groups {
                    let keys = out.entry(g.name).or_default();
                    for k in g.keys {
                        keys.insert(k.name, declared_text(&k.value));
                    }
                }
            }
            Ok(p) => {
                let errors: Vec<String> = p
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.display_in(&shown))
                    .collect();
                tracing::warn!(file = %shown, errors = %errors.join("; "), "compat declaration skipped");
            }
            Err(e) => tracing::warn!(error = %e, "compat declaration skipped"),
        }
    }
    out
}

/// A declared value as the feature holds it: strings as they are, others as JSON writes them.
fn declared_text(v: &crate::compat::Scalar) -> String {
    match v {
        crate::compat::Scalar::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archspec_target_of_a_recorded_host() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("image-compat")).unwrap();
        std::fs::create_dir_all(t.path().join("proc")).unwrap();
        std::fs::write(
            t.path().join("image-compat/cpu.txt"),
            "CPUID 00000000: 0000000D-756E6547-6C65746E-49656E69\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("proc/cpuinfo"),
            "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: mmx sse sse2 ssse3 cx16 sse4_1 sse4_2 popcnt lahf_lm\n\n",
        )
        .unwrap();
        let f = discover(&HostRoots::fixture(t.path()), None);
        let a = &f.attributes[ARCHSPEC_FEATURE].elements;
        assert_eq!(a["target"], "nehalem");
        assert_eq!(a["vendor"], "GenuineIntel");
        assert_eq!(a["family"], "x86_64");
        assert_eq!(a["generic"], "x86_64_v2");

        let empty = tempfile::tempdir().unwrap();
        assert!(discover(&HostRoots::fixture(empty.path()), None).is_empty());
    }

    #[test]
    fn declared_groups_in_name_order() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("compat.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("10-mpi.json"),
            r#"{"compatibilities": {"org.supercontainers": {"mpi.implementation": "openmpi", "mpi.version": "4.1.6", "gpus": 4}}}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("20-site.json"),
            r#"{"compatibilities": {"org.supercontainers": {"mpi.version": "5.0.1"}, "io.archspec": {"target": "zen3"}}}"#,
        )
        .unwrap();
        std::fs::write(d.join("30-broken.json"), "{not json").unwrap();
        std::fs::write(d.join("notes.txt"), "ignored").unwrap();
        let f = discover(&HostRoots::fixture(t.path()), Some(&d));
        let sc = &f.attributes["compat.org.supercontainers"].elements;
        assert_eq!(sc["mpi.implementation"], "openmpi");
        assert_eq!(sc["mpi.version"], "5.0.1");
        assert_eq!(sc["gpus"], "4");
        assert_eq!(f.attributes[ARCHSPEC_FEATURE].elements["target"], "zen3");
        assert!(discover(&HostRoots::fixture(t.path()), Some(&t.path().join("none"))).is_empty());
    }
}
