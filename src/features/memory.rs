//! The `memory` source: memory.numa, memory.swap, memory.nv and memory.hugepages.

use std::collections::BTreeMap;
use std::io::ErrorKind;

use tracing::{debug, warn};

use super::host::{read_dir_sorted, read_trimmed, HostRoots};
use super::Features;

type Attrs = BTreeMap<String, String>;

/// Discovers the memory source's features.
pub(crate) fn discover(roots: &HostRoots) -> Features {
    let mut f = Features::default();

    let nodes = roots.sys.join("bus/node/devices");
    match read_dir_sorted(&nodes) {
        Ok(n) => f.set_attributes(
            "memory.numa",
            Attrs::from([
                ("is_numa".into(), (n.len() > 1).to_string()),
                ("node_count".into(), n.len().to_string()),
            ]),
        ),
        Err(e) => {
            debug!(path = %nodes.display(), error = %e, "memory.numa: cannot list nodes, feature omitted")
        }
    }

    // <proc>/swaps: a header line, then one line per swap area.
    let swaps = roots.proc.join("swaps");
    match std::fs::read_to_string(&swaps) {
        Ok(text) => {
            let lines = text.split('\n').filter(|l| !l.trim().is_empty()).count();
            f.set_attributes(
                "memory.swap",
                Attrs::from([("enabled".into(), (lines > 1).to_string())]),
            );
        }
        Err(e) => {
            debug!(path = %swaps.display(), error = %e, "memory.swap: unreadable, feature omitted")
        }
    }

    let nd = roots.sys.join("bus/nd/devices");
    match read_dir_sorted(&nd) {
        Ok(devices) => {
            let instances = devices
                .into_iter()
                .map(|name| {
                    let dir = nd.join(&name);
                    let mut attrs = Attrs::from([("name".to_string(), name)]);
                    for attr in ["devtype", "mode"] {
                        if let Ok(v) = read_trimmed(&dir.join(attr)) {
                            attrs.insert(attr.into(), v);
                        }
                    }
                    attrs
                })
                .collect();
            f.set_instances("memory.nv", instances);
        }
        Err(e) if e.kind() == ErrorKind::NotFound => f.set_instances("memory.nv", Vec::new()),
        Err(e) => {
            debug!(path = %nd.display(), error = %e, "memory.nv: cannot list, feature omitted")
        }
    }

    if let Some(hp) = hugepages(roots) {
        f.set_attributes("memory.hugepages", hp);
    }
    f
}

fn hugepages(roots: &HostRoots) -> Option<Attrs> {
    let mut out = Attrs::from([("enabled".to_string(), "false".to_string())]);
    let base = roots.sys.join("kernel/mm/hugepages");
    let entries = match read_dir_sorted(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Some(out),
        Err(e) => {
            debug!(path = %base.display(), error = %e, "memory.hugepages: cannot list, feature omitted");
            return None;
        }
    };
    let mut enabled = false;
    for name in entries {
        let dir = base.join(&name);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let count_path = dir.join("nr_hugepages");
        let count = read_trimmed(&count_path).unwrap_or_else(|e| {
            debug!(path = %count_path.display(), error = %e, "memory.hugepages: count unreadable");
            String::new()
        });
        let size = name
            .strip_prefix("hugepages-")
            .unwrap_or(&name)
            .trim_end_matches(['k', 'B']);
        let Some(quantity) = kibibytes_quantity(size) else {
            warn!(path = %dir.display(), "skipping malformed hugepages directory name");
            continue;
        };
        enabled |= count.parse::<i64>().is_ok_and(|n| n > 0);
        out.insert(format!("hugepages-{quantity}"), count);
    }
    out.insert("enabled".into(), enabled.to_string());
    Some(out)
}

/// `<n>Ki` in the canonical form of a Kubernetes resource.Quantity: the largest binary suffix
/// that divides the size exactly (`2048` -> `2Mi`, `1048576` -> `1Gi`, `64` -> `64Ki`).
pub(crate) fn kibibytes_quantity(kib: &str) -> Option<String> {
    if kib.is_empty() || !kib.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: u128 = kib.parse().ok()?;
    if n == 0 {
        return Some("0".into());
    }
    let suffixes = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut i = 0;
    while i + 1 < suffixes.len() && n % 1024 == 0 {
        n /= 1024;
        i += 1;
    }
    Some(format!("{n}{}", suffixes[i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn quantities_like_kubernetes() {
        assert_eq!(kibibytes_quantity("2048").as_deref(), Some("2Mi"));
        assert_eq!(kibibytes_quantity("1048576").as_deref(), Some("1Gi"));
        assert_eq!(kibibytes_quantity("64").as_deref(), Some("64Ki"));
        assert_eq!(kibibytes_quantity("32768").as_deref(), Some("32Mi"));
        assert_eq!(kibibytes_quantity("1536").as_deref(), Some("1536Ki"));
        assert_eq!(kibibytes_quantity("16777216").as_deref(), Some("16Gi"));
        assert_eq!(kibibytes_quantity("0").as_deref(), Some("0"));
        assert_eq!(kibibytes_quantity("x"), None);
        assert_eq!(kibibytes_quantity(""), None);
    }

    #[test]
    fn hugepages_sizes_and_enabled() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        assert_eq!(
            hugepages(&roots),
            Some(Attrs::from([("enabled".into(), "false".into())]))
        );
        let base = t.path().join("sys/kernel/mm/hugepages");
        fs::create_dir_all(base.join("hugepages-2048kB")).unwrap();
        fs::write(base.join("hugepages-2048kB/nr_hugepages"), "0\n").unwrap();
        fs::create_dir_all(base.join("hugepages-1048576kB")).unwrap();
        let hp = hugepages(&roots).unwrap();
        assert_eq!(hp["hugepages-2Mi"], "0");
        assert_eq!(
            hp["hugepages-1Gi"], "",
            "unreadable count is an empty value"
        );
        assert_eq!(hp["enabled"], "false");
        fs::write(base.join("hugepages-1048576kB/nr_hugepages"), "4\n").unwrap();
        assert_eq!(hugepages(&roots).unwrap()["enabled"], "true");
    }

    #[test]
    fn swap_numa_nv() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        fs::create_dir_all(t.path().join("proc")).unwrap();
        fs::write(
            t.path().join("proc/swaps"),
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        )
        .unwrap();
        let f = discover(&roots);
        assert_eq!(f.attributes["memory.swap"].elements["enabled"], "false");
        assert!(!f.exists("memory.numa"));
        assert!(f.instances["memory.nv"].elements.is_empty());
        fs::write(
            t.path().join("proc/swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/dev/zram0 partition 8388604 0 100\n",
        )
        .unwrap();
        fs::create_dir_all(t.path().join("sys/bus/node/devices/node0")).unwrap();
        fs::create_dir_all(t.path().join("sys/bus/node/devices/node1")).unwrap();
        fs::create_dir_all(t.path().join("sys/bus/nd/devices/region0")).unwrap();
        fs::write(
            t.path().join("sys/bus/nd/devices/region0/devtype"),
            "nd_pmem\n",
        )
        .unwrap();
        let f = discover(&roots);
        assert_eq!(f.attributes["memory.swap"].elements["enabled"], "true");
        assert_eq!(f.attributes["memory.numa"].elements["is_numa"], "true");
        assert_eq!(f.attributes["memory.numa"].elements["node_count"], "2");
        let nv = &f.instances["memory.nv"].elements[0].attributes;
        assert_eq!(nv["name"], "region0");
        assert_eq!(nv["devtype"], "nd_pmem");
        assert!(!nv.contains_key("mode"));
    }
}
