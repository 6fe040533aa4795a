//! The `usb` source: usb.device, one instance per USB device or, for class `00`, per interface.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tracing::{debug, warn};

use super::host::{read_dir_sorted, read_trimmed, HostRoots};
use super::Features;

type Attrs = BTreeMap<String, String>;

/// Instance attribute -> sysfs file, as NFD names them to match the pci source.
const ATTRS: [(&str, &str); 4] = [
    ("class", "bDeviceClass"),
    ("vendor", "idVendor"),
    ("device", "idProduct"),
    ("serial", "serial"),
];

/// Why a device's instances could not be read (NFD skips the device).
#[derive(Debug, Error)]
#[error("cannot read {path}: {source}")]
struct UsbError {
    path: PathBuf,
    source: std::io::Error,
}

/// Discovers the usb source's features. Like NFD (a glob over `*/idProduct`), a missing
/// `<sys>/bus/usb` is not an error: usb.device then exists with no instances.
pub(crate) fn discover(roots: &HostRoots) -> Features {
    let mut f = Features::default();
    let base = roots.sys.join("bus/usb/devices");
    let entries = read_dir_sorted(&base).unwrap_or_else(|e| {
        debug!(path = %base.display(), error = %e, "usb: no USB devices");
        Vec::new()
    });
    let mut instances = Vec::new();
    for name in entries {
        let dir = base.join(&name);
        // USB sysfs also lists interfaces and ports: only devices have an idProduct.
        if !has_entry(&dir, "idProduct") {
            continue;
        }
        match device_instances(&dir) {
            Ok(mut i) => instances.append(&mut i),
            Err(e) => warn!(error = %e, "usb: skipping device"),
        }
    }
    f.set_instances("usb.device", instances);
    f
}

/// True when `dir` is a directory (following symlinks) with an entry `name`.
fn has_entry(dir: &Path, name: &str) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| m.is_dir())
        && std::fs::symlink_metadata(dir.join(name)).is_ok()
}

fn device_instances(dir: &Path) -> Result<Vec<Attrs>, UsbError> {
    let mut attrs = Attrs::new();
    for (key, file) in ATTRS {
        if let Ok(v) = read_trimmed(&dir.join(file)) {
            if !v.is_empty() {
                attrs.insert(key.to_string(), v);
            }
        }
    }
    if attrs.get("class").map(String::as_str) != Some("00") {
        return Ok(vec![attrs]);
    }
    // Class 00: the class is defined per interface; one instance per interface.
    let mut out = Vec::new();
    let entries = read_dir_sorted(dir).map_err(|source| UsbError {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let sub = dir.join(&entry);
        if !has_entry(&sub, "bInterfaceClass") {
            continue;
        }
        let path = sub.join("bInterfaceClass");
        let class = read_trimmed(&path).map_err(|source| UsbError { path, source })?;
        let mut inst = attrs.clone();
        inst.insert("class".into(), class);
        out.push(inst);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn class_00_expands_per_interface() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("sys/bus/usb/devices/1-1");
        fs::create_dir_all(d.join("1-1:1.0")).unwrap();
        fs::create_dir_all(d.join("1-1:1.1")).unwrap();
        fs::write(d.join("bDeviceClass"), "00\n").unwrap();
        fs::write(d.join("idVendor"), "046b\n").unwrap();
        fs::write(d.join("idProduct"), "ff10\n").unwrap();
        fs::write(d.join("serial"), "\n").unwrap();
        fs::write(d.join("1-1:1.0/bInterfaceClass"), "03\n").unwrap();
        fs::write(d.join("1-1:1.1/bInterfaceClass"), "08\n").unwrap();
        // An interface entry itself has no idProduct: not a device.
        fs::create_dir_all(t.path().join("sys/bus/usb/devices/1-1:1.0")).unwrap();
        let f = discover(&HostRoots::fixture(t.path()));
        let got: Vec<_> = f.instances["usb.device"]
            .elements
            .iter()
            .map(|i| i.attributes.clone())
            .collect();
        let want = |class: &str| {
            Attrs::from([
                ("class".into(), class.into()),
                ("vendor".into(), "046b".into()),
                ("device".into(), "ff10".into()),
            ])
        };
        assert_eq!(got, vec![want("03"), want("08")]);
    }

    #[test]
    fn no_usb_bus_is_an_empty_feature() {
        let t = tempfile::tempdir().unwrap();
        let f = discover(&HostRoots::fixture(t.path()));
        assert!(f.instances["usb.device"].elements.is_empty());
    }
}
