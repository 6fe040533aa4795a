//! The `system` source: system.osrelease, system.name and system.dmiid.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use tracing::debug;

use super::host::{read_trimmed, HostRoots};
use super::Features;

type Attrs = BTreeMap<String, String>;

// Go's \w and \d are ASCII-only; Rust's are Unicode, hence the explicit classes.
static OS_RELEASE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9A-Za-z_]+)=(.+)").expect("constant regex is valid"));
static VERSION_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]+)(\.([0-9]+))?(\..*)?$").expect("constant regex is valid")
});

/// The DMI files NFD reads (world-readable ones; serials and UUIDs need root).
const DMI_ATTRS: [&str; 16] = [
    "bios_date",
    "bios_vendor",
    "bios_version",
    "board_asset_tag",
    "board_name",
    "board_vendor",
    "board_version",
    "chassis_asset_tag",
    "chassis_type",
    "chassis_vendor",
    "chassis_version",
    "product_family",
    "product_name",
    "product_sku",
    "product_version",
    "sys_vendor",
];

/// Discovers the system source's features; `node_name` is NFD's NODE_NAME.
pub(crate) fn discover(roots: &HostRoots, node_name: &str) -> Features {
    let mut f = Features::default();
    f.set_attributes(
        "system.name",
        Attrs::from([("nodename".into(), node_name.to_string())]),
    );

    let path = roots.etc.join("os-release");
    match std::fs::read_to_string(&path) {
        Ok(text) => f.set_attributes("system.osrelease", parse_os_release(&text)),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "system.osrelease: unreadable, feature omitted")
        }
    }

    let dmi_dir = roots.sys.join("devices/virtual/dmi/id");
    let dmi: Attrs = DMI_ATTRS
        .iter()
        .filter_map(|name| {
            read_trimmed(&dmi_dir.join(name))
                .ok()
                .map(|v| (name.to_string(), v))
        })
        .collect();
    if dmi.is_empty() {
        debug!(path = %dmi_dir.display(), "system.dmiid: nothing readable, feature omitted");
    } else {
        f.set_attributes("system.dmiid", dmi);
    }
    f
}

/// os-release `KEY=value` lines, quotes trimmed, plus `VERSION_ID.major`/`.minor`.
pub(crate) fn parse_os_release(text: &str) -> Attrs {
    let mut out = Attrs::new();
    for line in text.lines() {
        if let Some(m) = OS_RELEASE_LINE.captures(line) {
            let value = m[2].trim_matches(|c| c == '"' || c == '\'');
            out.insert(m[1].to_string(), value.to_string());
        }
    }
    let parts = out
        .get("VERSION_ID")
        .and_then(|v| VERSION_ID.captures(v))
        .map(|m| {
            [("major", 1), ("minor", 3)]
                .into_iter()
                .filter_map(|(k, i)| m.get(i).map(|g| (k, g.as_str().to_string())))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for (k, v) in parts {
        if !v.is_empty() {
            out.insert(format!("VERSION_ID.{k}"), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_keys_and_version_parts() {
        let a = parse_os_release(
            "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n# comment\nBAD LINE\nEMPTY=\nPRETTY_NAME='Ubuntu 22.04.4 LTS'\n",
        );
        assert_eq!(a["ID"], "ubuntu");
        assert_eq!(a["VERSION_ID"], "22.04");
        assert_eq!(a["VERSION_ID.major"], "22");
        assert_eq!(a["VERSION_ID.minor"], "04");
        assert_eq!(a["PRETTY_NAME"], "Ubuntu 22.04.4 LTS");
        assert!(!a.contains_key("EMPTY"), "`.+` needs a value");
        assert_eq!(a.len(), 7);
    }

    #[test]
    fn version_id_without_minor_or_non_numeric() {
        let a = parse_os_release("VERSION_ID=\"12\"\r\n");
        assert_eq!(a["VERSION_ID"], "12");
        assert_eq!(a["VERSION_ID.major"], "12");
        assert!(!a.contains_key("VERSION_ID.minor"));
        let a = parse_os_release("VERSION_ID=9.4.1\n");
        assert_eq!(a["VERSION_ID.minor"], "4");
        let a = parse_os_release("VERSION_ID=rolling\n");
        assert!(!a.contains_key("VERSION_ID.major"));
    }
}
