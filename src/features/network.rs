//! The `network` source: network.device (interfaces with a backing device) and network.virtual.
//!
//! Deliberate difference from NFD: when `<sys>/class/net` cannot be listed, NFD's
//! `Discover()` fails and `nfd compat validate-node` aborts; here both features are omitted
//! and the reason is logged at debug level, so one unreadable directory never fails discovery.

use std::collections::BTreeMap;
use std::io::ErrorKind;

use tracing::debug;

use super::host::{read_dir_sorted, read_trimmed, HostRoots};
use super::Features;

type Attrs = BTreeMap<String, String>;

const DEVICE_ATTRS: [&str; 5] = [
    "operstate",
    "speed",
    "device/sriov_numvfs",
    "device/sriov_totalvfs",
    "mtu",
];
const VIRTUAL_ATTRS: [&str; 3] = ["operstate", "speed", "mtu"];

/// Discovers the network source's features.
pub(crate) fn discover(roots: &HostRoots) -> Features {
    let mut f = Features::default();
    let base = roots.sys.join("class/net");
    let ifaces = match read_dir_sorted(&base) {
        Ok(i) => i,
        Err(e) => {
            debug!(path = %base.display(), error = %e, "network: cannot list interfaces, features omitted");
            return f;
        }
    };
    let mut devices = Vec::new();
    let mut virtuals = Vec::new();
    for name in ifaces.into_iter().filter(|n| n != "bonding_masters") {
        let dir = base.join(&name);
        let (list, attrs) = if std::fs::metadata(dir.join("device")).is_ok() {
            (&mut devices, &DEVICE_ATTRS[..])
        } else {
            (&mut virtuals, &VIRTUAL_ATTRS[..])
        };
        let mut inst = Attrs::from([("name".to_string(), name)]);
        for attr in attrs {
            match read_trimmed(&dir.join(attr)) {
                Ok(v) => {
                    let key = attr.rsplit('/').next().unwrap_or(attr);
                    inst.insert(key.to_string(), v);
                }
                // Missing files and EINVAL (speed of a link that is down) are expected.
                Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(22) => {}
                Err(e) => {
                    debug!(path = %dir.join(attr).display(), error = %e, "network: attribute unreadable")
                }
            }
        }
        list.push(inst);
    }
    f.set_instances("network.device", devices);
    f.set_instances("network.virtual", virtuals);
    f
}
