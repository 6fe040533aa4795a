//! The `kernel` source: kernel.version, config, loadedmodule, enabledmodule, selinux, kvm.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use flate2::read::MultiGzDecoder;
use regex::Regex;
use tracing::{debug, warn};

use super::host::HostRoots;
use super::Features;

type Attrs = BTreeMap<String, String>;

static NOT_LABEL_CHAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("[^-A-Za-z0-9_.]").expect("constant regex is valid"));
static VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]+)(\.([0-9]+))?(\.([0-9]+))?(-.*)?$").expect("constant regex is valid")
});

/// Discovers the kernel source's features.
pub(crate) fn discover(roots: &HostRoots) -> Features {
    let mut f = Features::default();
    let release = os_release(roots);
    match &release {
        Some(raw) => f.set_attributes("kernel.version", parse_version(raw)),
        None => debug!("kernel.version: osrelease unreadable, feature omitted"),
    }
    match kconfig(roots, release.as_deref()) {
        Some(config) => f.set_attributes("kernel.config", config),
        None => debug!("kernel.config: no readable kernel config, feature omitted"),
    }

    let loaded = loaded_modules(roots);
    if let Some(mods) = &loaded {
        f.set_flags("kernel.loadedmodule", mods.iter().cloned());
    }
    // NFD lists builtins only when modules.builtin is readable, even if modules are loaded.
    if let Some(builtin) = release.as_deref().and_then(|r| builtin_modules(roots, r)) {
        let all = loaded.unwrap_or_default().into_iter().chain(builtin);
        f.set_flags("kernel.enabledmodule", all);
    }
    if let Some(enabled) = selinux(roots) {
        f.set_attributes(
            "kernel.selinux",
            Attrs::from([("enabled".into(), enabled.to_string())]),
        );
    }
    let kvm = roots.sys.join("devices/virtual/misc/kvm");
    match std::fs::metadata(&kvm) {
        Ok(_) => f.set_attributes(
            "kernel.kvm",
            Attrs::from([("enabled".into(), "true".into())]),
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => f.set_attributes(
            "kernel.kvm",
            Attrs::from([("enabled".into(), "false".into())]),
        ),
        Err(e) => {
            debug!(path = %kvm.display(), error = %e, "kernel.kvm: cannot stat, feature omitted")
        }
    }
    f
}

/// The raw kernel release from /proc/sys/kernel/osrelease (never host-prefixed by NFD).
fn os_release(roots: &HostRoots) -> Option<String> {
    let path = roots.unprefixed_path("proc/sys/kernel/osrelease");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s.trim().to_string()),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "kernel: cannot read osrelease");
            None
        }
    }
}

/// kernel.version: `full` made label-safe, and its numeric parts when it looks like x.y.z.
pub(crate) fn parse_version(raw: &str) -> Attrs {
    let full = NOT_LABEL_CHAR.replace_all(raw, "_");
    let full = full
        .trim_matches(|c| c == '-' || c == '_' || c == '.')
        .to_string();
    let mut out = Attrs::new();
    if let Some(m) = VERSION.captures(&full) {
        let group = |i| m.get(i).map_or("", |g| g.as_str()).to_string();
        out.insert("major".into(), group(1));
        out.insert("minor".into(), group(3));
        out.insert("revision".into(), group(5));
    }
    out.insert("full".into(), full);
    out
}

/// The kconfig search list of NFD (from kubeadm's system-validator), first readable wins.
fn kconfig_paths(roots: &HostRoots, release: Option<&str>) -> Vec<PathBuf> {
    let proc_gz = roots.unprefixed_path("proc/config.gz");
    let Some(v) = release else {
        return vec![proc_gz, roots.usr.join("src/linux/.config")];
    };
    vec![
        proc_gz,
        roots.usr.join(format!("src/linux-{v}/.config")),
        roots.usr.join(format!("src/linux-rt-{v}/.config")),
        roots.usr.join("src/linux/.config"),
        roots.usr.join(format!("lib/modules/{v}/config")),
        roots.usr.join(format!("lib/ostree-boot/config-{v}")),
        roots.usr.join(format!("lib/kernel/config-{v}")),
        roots.usr.join(format!("src/linux-headers-{v}/.config")),
        roots.unprefixed_path(&format!("lib/modules/{v}/build/.config")),
        roots.usr.join(format!("src/linux-rt-headers-{v}/.config")),
        roots.boot.join(format!("config-{v}")),
    ]
}

fn read_config_file(path: &Path) -> std::io::Result<Vec<u8>> {
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        MultiGzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut out)?;
        Ok(out)
    } else {
        std::fs::read(path)
    }
}

fn kconfig(roots: &HostRoots, release: Option<&str>) -> Option<Attrs> {
    let raw = kconfig_paths(roots, release).into_iter().find_map(|p| {
        read_config_file(&p)
            .inspect_err(|e| {
                if e.kind() != ErrorKind::NotFound {
                    warn!(path = %p.display(), error = %e, "skipping unreadable kernel config");
                }
            })
            .ok()
            .inspect(|_| debug!(path = %p.display(), "kernel.config: read"))
    })?;
    Some(parse_kconfig(&String::from_utf8_lossy(&raw)))
}

/// `CONFIG_X=value` lines, `CONFIG_` dropped, surrounding `"` stripped; "is not set" lines
/// are comments and so absent.
pub(crate) fn parse_kconfig(text: &str) -> Attrs {
    text.split('\n')
        .filter_map(|line| line.strip_prefix("CONFIG_"))
        .filter_map(|rest| rest.split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('"').to_string()))
        .collect()
}

fn loaded_modules(roots: &HostRoots) -> Option<Vec<String>> {
    let path = roots.unprefixed_path("proc/modules");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            text.split('\n')
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from)
                .collect(),
        ),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "kernel.loadedmodule: unreadable, feature omitted");
            None
        }
    }
}

fn builtin_modules(roots: &HostRoots, release: &str) -> Option<Vec<String>> {
    let path = roots.lib.join(format!("modules/{release}/modules.builtin"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            text.split('\n')
                .map(str::trim)
                .filter_map(|l| l.strip_suffix(".ko"))
                .map(|l| l.rsplit('/').next().unwrap_or(l).to_string())
                .collect(),
        ),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "kernel.enabledmodule: modules.builtin unreadable, feature omitted");
            None
        }
    }
}

/// SELinux enforcing; `None` where NFD gives up (no `<sys>/fs`, unreadable or empty file).
fn selinux(roots: &HostRoots) -> Option<bool> {
    let fs_dir = roots.sys.join("fs");
    if let Err(e) = std::fs::metadata(&fs_dir) {
        debug!(path = %fs_dir.display(), error = %e, "kernel.selinux: no sysfs fs dir, feature omitted");
        return None;
    }
    let enforce = fs_dir.join("selinux/enforce");
    match std::fs::read(&enforce) {
        Ok(bytes) => match bytes.first() {
            Some(b) => Some(*b == b'1'),
            None => {
                warn!(path = %enforce.display(), "skipping malformed file: empty");
                None
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Some(false),
        Err(e) => {
            debug!(path = %enforce.display(), error = %e, "kernel.selinux: unreadable, feature omitted");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn v(raw: &str) -> Vec<(String, String)> {
        parse_version(raw).into_iter().collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn version_sanitizing_and_parts() {
        assert_eq!(
            v("6.8.0-45-generic"),
            kv(&[
                ("full", "6.8.0-45-generic"),
                ("major", "6"),
                ("minor", "8"),
                ("revision", "0")
            ])
        );
        assert_eq!(
            v("6.1.0-rpi7-rpi-v8+")[0],
            ("full".into(), "6.1.0-rpi7-rpi-v8".into())
        );
        assert_eq!(
            v("5.14.0-427.13.1.el9_4.x86_64"),
            kv(&[
                ("full", "5.14.0-427.13.1.el9_4.x86_64"),
                ("major", "5"),
                ("minor", "14"),
                ("revision", "0")
            ])
        );
        // Four components do not match: only `full`.
        assert_eq!(
            v("6.6.87.2-microsoft-standard-WSL2"),
            kv(&[("full", "6.6.87.2-microsoft-standard-WSL2")])
        );
        // Missing parts exist with empty values.
        assert_eq!(
            v("6"),
            kv(&[
                ("full", "6"),
                ("major", "6"),
                ("minor", ""),
                ("revision", "")
            ])
        );
        // Each forbidden character becomes one `_`, then `-_.` are trimmed at the ends.
        assert_eq!(v("_5.4 #1~é."), kv(&[("full", "5.4__1")]));
    }

    #[test]
    fn kconfig_values_raw_with_quotes_stripped() {
        let c = parse_kconfig(
            "#\n# CONFIG_FOO is not set\nCONFIG_NO_HZ=y\nCONFIG_HZ=1000\nCONFIG_LOCALVERSION=\"-fc\"\nCONFIG_MOD=m\nCONFIG_BROKEN\n",
        );
        assert_eq!(c["NO_HZ"], "y");
        assert_eq!(c["HZ"], "1000");
        assert_eq!(c["LOCALVERSION"], "-fc");
        assert_eq!(c["MOD"], "m");
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn gz_config_and_search_order() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        fs::create_dir_all(t.path().join("boot")).unwrap();
        fs::write(t.path().join("boot/config-6.1.0"), "CONFIG_FROM_BOOT=y\n").unwrap();
        assert_eq!(kconfig(&roots, Some("6.1.0")).unwrap()["FROM_BOOT"], "y");
        // Without a release, only /proc/config.gz and /usr/src/linux/.config are searched.
        assert_eq!(kconfig(&roots, None), None);
        fs::create_dir_all(t.path().join("proc")).unwrap();
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"CONFIG_FROM_PROC=m\n").unwrap();
        fs::write(t.path().join("proc/config.gz"), gz.finish().unwrap()).unwrap();
        let c = kconfig(&roots, Some("6.1.0")).unwrap();
        assert_eq!(c["FROM_PROC"], "m");
        assert!(!c.contains_key("FROM_BOOT"));
        // A corrupt gzip is skipped with a warning; the next file is used.
        fs::write(t.path().join("proc/config.gz"), b"not gzip").unwrap();
        assert_eq!(kconfig(&roots, Some("6.1.0")).unwrap()["FROM_BOOT"], "y");
    }

    #[test]
    fn enabled_modules_need_modules_builtin() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        fs::create_dir_all(t.path().join("proc/sys/kernel")).unwrap();
        fs::write(t.path().join("proc/sys/kernel/osrelease"), "6.1.0\n").unwrap();
        fs::write(
            t.path().join("proc/modules"),
            "kvm_intel 413696 0 - Live 0x0000000000000000\nkvm 1396736 1 kvm_intel, Live 0x0000000000000000\n",
        )
        .unwrap();
        let f = discover(&roots);
        assert_eq!(f.flags["kernel.loadedmodule"].elements.len(), 2);
        assert!(!f.exists("kernel.enabledmodule"));
        fs::create_dir_all(t.path().join("lib/modules/6.1.0")).unwrap();
        fs::write(
            t.path().join("lib/modules/6.1.0/modules.builtin"),
            "kernel/fs/ext4/ext4.ko\nkernel/crypto/crc32c_generic.ko\n\n",
        )
        .unwrap();
        let f = discover(&roots);
        let e: Vec<&str> = f.flags["kernel.enabledmodule"]
            .elements
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(e, ["crc32c_generic", "ext4", "kvm", "kvm_intel"]);
        assert!(!f.exists("kernel.selinux"), "no <sys>/fs");
        assert_eq!(f.attributes["kernel.kvm"].elements["enabled"], "false");
    }

    #[test]
    fn selinux_states() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        fs::create_dir_all(t.path().join("sys/fs")).unwrap();
        assert_eq!(selinux(&roots), Some(false));
        fs::create_dir_all(t.path().join("sys/fs/selinux")).unwrap();
        fs::write(t.path().join("sys/fs/selinux/enforce"), "1").unwrap();
        assert_eq!(selinux(&roots), Some(true));
        fs::write(t.path().join("sys/fs/selinux/enforce"), "0").unwrap();
        assert_eq!(selinux(&roots), Some(false));
        fs::write(t.path().join("sys/fs/selinux/enforce"), "").unwrap();
        assert_eq!(selinux(&roots), None);
    }
}
