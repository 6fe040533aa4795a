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

use std::collections::BTreeMap;

use tracing::debug;

use super::archspec;
use super::host::HostRoots;
use super::Features;

/// The feature holding the node's archspec target.
pub const ARCHSPEC_FEATURE: &str = "compat.io.archspec";

/// Discovers the compat source's features.
pub(crate) fn discover(roots: &HostRoots) -> Features {
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
    f
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
        let f = discover(&HostRoots::fixture(t.path()));
        let a = &f.attributes[ARCHSPEC_FEATURE].elements;
        assert_eq!(a["target"], "nehalem");
        assert_eq!(a["vendor"], "GenuineIntel");
        assert_eq!(a["family"], "x86_64");
        assert_eq!(a["generic"], "x86_64_v2");

        let empty = tempfile::tempdir().unwrap();
        assert!(discover(&HostRoots::fixture(empty.path())).is_empty());
    }
}
