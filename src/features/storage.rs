//! The `storage` source: storage.block, one instance per `<sys>/block` device.
//!
//! Deliberate difference from NFD: when `<sys>/block` cannot be listed, NFD's `Discover()`
//! fails and `nfd compat validate-node` aborts; here the feature is omitted and the reason
//! logged at debug level.

use std::collections::BTreeMap;

use tracing::debug;

use super::host::{read_dir_sorted, read_trimmed, HostRoots};
use super::Features;

const QUEUE_ATTRS: [&str; 4] = ["dax", "rotational", "nr_zones", "zoned"];

/// Discovers the storage source's features.
pub(crate) fn discover(roots: &HostRoots) -> Features {
    let mut f = Features::default();
    let base = roots.sys.join("block");
    let devices = match read_dir_sorted(&base) {
        Ok(d) => d,
        Err(e) => {
            debug!(path = %base.display(), error = %e, "storage: cannot list block devices, feature omitted");
            return f;
        }
    };
    let instances = devices
        .into_iter()
        .map(|name| {
            let queue = base.join(&name).join("queue");
            let mut attrs = BTreeMap::from([("name".to_string(), name)]);
            for attr in QUEUE_ATTRS {
                if let Ok(v) = read_trimmed(&queue.join(attr)) {
                    attrs.insert(attr.to_string(), v);
                }
            }
            attrs
        })
        .collect();
    f.set_instances("storage.block", instances);
    f
}
