//! The `pci` source: pci.device, one instance per `<sys>/bus/pci/devices` entry.
//!
//! Deliberate difference from NFD: when `<sys>/bus/pci/devices` cannot be listed (no PCI
//! bus, e.g. a virtio-mmio micro-VM), NFD's `Discover()` fails and `nfd compat
//! validate-node` aborts; here the feature is omitted and the reason logged at debug level.

use std::collections::BTreeMap;

use tracing::{debug, warn};

use super::host::{read_dir_sorted, HostRoots};
use super::Features;

const MANDATORY: [&str; 5] = [
    "class",
    "vendor",
    "device",
    "subsystem_vendor",
    "subsystem_device",
];
const OPTIONAL: [&str; 3] = [
    "sriov_totalvfs",
    "iommu_group/type",
    "iommu/intel-iommu/version",
];

/// Discovers the pci source's features.
pub(crate) fn discover(roots: &HostRoots) -> Features {
    let mut f = Features::default();
    let base = roots.sys.join("bus/pci/devices");
    let devices = match read_dir_sorted(&base) {
        Ok(d) => d,
        Err(e) => {
            debug!(path = %base.display(), error = %e, "pci: cannot list devices, feature omitted");
            return f;
        }
    };
    let mut instances = Vec::new();
    'devices: for addr in devices {
        let dir = base.join(&addr);
        let mut attrs = BTreeMap::new();
        for name in MANDATORY {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(v) => {
                    attrs.insert(name.to_string(), attribute_value(name, &v));
                }
                Err(e) => {
                    warn!(path = %dir.join(name).display(), error = %e, "pci: skipping device without mandatory attribute");
                    continue 'devices;
                }
            }
        }
        for name in OPTIONAL {
            if let Ok(v) = std::fs::read_to_string(dir.join(name)) {
                attrs.insert(name.to_string(), attribute_value(name, &v));
            }
        }
        instances.push(attrs);
    }
    f.set_instances("pci.device", instances);
    f
}

/// Value without `0x` (stripped before trimming, as NFD does) and surrounding whitespace;
/// `class` cut to base class and subclass (`0x030200` -> `0302`).
fn attribute_value(name: &str, raw: &str) -> String {
    let v = raw.strip_prefix("0x").unwrap_or(raw).trim();
    if name == "class" {
        // sysfs class values are ASCII hex; keep the cut on a char boundary regardless.
        return v.chars().take(4).collect();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lose_0x_and_class_keeps_four_digits() {
        assert_eq!(attribute_value("class", "0x030200\n"), "0302");
        assert_eq!(attribute_value("class", "0x0c03"), "0c03");
        assert_eq!(attribute_value("vendor", "0x10de"), "10de");
        assert_eq!(attribute_value("iommu_group/type", "DMA-FQ"), "DMA-FQ");
        assert_eq!(attribute_value("sriov_totalvfs", "64"), "64");
    }

    #[test]
    fn devices_missing_a_mandatory_file_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("sys/bus/pci/devices");
        for (addr, files) in [
            ("0000:00:00.0", &MANDATORY[..]),
            ("0000:00:01.0", &MANDATORY[..4]),
        ] {
            std::fs::create_dir_all(base.join(addr)).unwrap();
            for f in files {
                std::fs::write(base.join(addr).join(f), "0x1af4\n").unwrap();
            }
        }
        let f = discover(&HostRoots::fixture(t.path()));
        assert_eq!(f.instances["pci.device"].elements.len(), 1);
        // No PCI bus at all: the feature is omitted (NFD would fail discovery).
        assert!(!discover(&HostRoots::fixture(t.path().join("none"))).exists("pci.device"));
    }
}
