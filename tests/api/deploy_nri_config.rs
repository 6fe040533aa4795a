//! The runtime snippets of nri-config/ (containerd 2.x and 1.7, CRI-O): NRI on, at the socket, dirs and timeouts the plugin expects.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use image_compat::config::Config;
use toml::{Table, Value};

/// The NRI layout every runtime defaults to, and that scripts/install-host.sh writes.
const PLUGIN_DIR: &str = "/opt/nri/plugins";
const PLUGIN_CONFIG_DIR: &str = "/etc/nri/conf.d";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse(file: &str) -> Table {
    let path = root().join("nri-config").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    text.parse::<Table>()
        .unwrap_or_else(|e| panic!("{file}: not TOML: {e}"))
}

fn table<'a>(t: &'a Table, path: &[&str]) -> &'a Table {
    path.iter().fold(t, |t, k| {
        t.get(*k)
            .and_then(Value::as_table)
            .unwrap_or_else(|| panic!("no table {k} in {path:?}"))
    })
}

fn string<'a>(t: &'a Table, key: &str) -> &'a str {
    t.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key}: missing or not a string"))
}

fn duration(t: &Table, key: &str) -> Duration {
    humantime::parse_duration(string(t, key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// The checks shared by every runtime: keys named by each runtime's own spelling.
struct Keys {
    socket: &'static str,
    plugin_dir: &'static str,
    plugin_config_dir: &'static str,
    registration: &'static str,
    request: &'static str,
    disable_connections: &'static str,
}

fn check_nri(nri: &Table, keys: &Keys, file: &str) {
    let plugin = Config::default();
    assert_eq!(
        Path::new(string(nri, keys.socket)),
        plugin.nri.socket,
        "{file}: the socket the plugin dials by default"
    );
    assert_eq!(string(nri, keys.plugin_dir), PLUGIN_DIR, "{file}");
    assert_eq!(
        string(nri, keys.plugin_config_dir),
        PLUGIN_CONFIG_DIR,
        "{file}"
    );
    assert_eq!(
        nri.get(keys.disable_connections),
        Some(&Value::Boolean(false)),
        "{file}: external plugins (DaemonSet, systemd) must be able to connect"
    );
    let request = duration(nri, keys.request);
    let registration = duration(nri, keys.registration);
    assert!(
        registration > request,
        "{file}: CRI-O refuses a registration timeout not above the request timeout"
    );
    // The plugin caps its deadline at half the request timeout; the default must fit.
    assert!(
        plugin.deadline <= request / 2,
        "{file}: request timeout {request:?} leaves no room for the default deadline {:?}",
        plugin.deadline
    );
}

const CONTAINERD_KEYS: Keys = Keys {
    socket: "socket_path",
    plugin_dir: "plugin_path",
    plugin_config_dir: "plugin_config_path",
    registration: "plugin_registration_timeout",
    request: "plugin_request_timeout",
    disable_connections: "disable_connections",
};

#[test]
fn containerd_snippets_enable_nri() {
    for (file, version) in [("containerd-2.x.toml", 3), ("containerd-1.7.toml", 2)] {
        let t = parse(file);
        assert_eq!(
            t.get("version"),
            Some(&Value::Integer(version)),
            "{file}: config version"
        );
        let nri = table(&t, &["plugins", "io.containerd.nri.v1.nri"]);
        assert_eq!(nri.get("disable"), Some(&Value::Boolean(false)), "{file}");
        check_nri(nri, &CONTAINERD_KEYS, file);
        // Only the NRI table: an imported file replaces whole plugin tables, so anything else
        // here would silently reset the node's own settings.
        assert_eq!(table(&t, &["plugins"]).len(), 1, "{file}");
        assert_eq!(t.len(), 2, "{file}: version and plugins only");
    }
    let t = parse("containerd-2.x.toml");
    let nri = table(&t, &["plugins", "io.containerd.nri.v1.nri"]);
    check_validator(
        table(nri, &["default_validator"]),
        [
            "enable",
            "required_plugins",
            "tolerate_missing_plugins_annotation",
        ],
        "containerd-2.x.toml",
    );
}

/// A default validator on, requiring the plugin by the name it registers with, tolerating the
/// annotation deploy/ puts on the plugin's pod. KEYS: enable, required plugins, annotation.
fn check_validator(v: &Table, keys: [&str; 3], file: &str) {
    let plugin = Config::default();
    assert_eq!(v.get(keys[0]), Some(&Value::Boolean(true)), "{file}");
    assert_eq!(
        v.get(keys[1]),
        Some(&Value::Array(vec![Value::String(plugin.nri.name.clone())])),
        "{file}: the name the plugin registers with"
    );
    assert_eq!(
        string(v, keys[2]),
        image_compat::nri::TOLERATION_ANNOTATION,
        "{file}"
    );
}

#[test]
fn crio_validator_snippet_requires_the_plugin() {
    let file = "crio-20-nri-validator.conf";
    let t = parse(file);
    check_validator(
        table(&t, &["crio", "nri", "default_validator"]),
        [
            "nri_enable_default_validator",
            "nri_validator_required_plugins",
            "nri_validator_tolerate_missing_plugins_annotation",
        ],
        file,
    );
    assert_eq!(
        t.len(),
        1,
        "{file}: the [crio.nri.default_validator] table only"
    );
}

#[test]
fn crio_snippet_enables_nri() {
    let file = "crio-10-nri.conf";
    let t = parse(file);
    let nri = table(&t, &["crio", "nri"]);
    assert_eq!(nri.get("enable_nri"), Some(&Value::Boolean(true)));
    check_nri(
        nri,
        &Keys {
            socket: "nri_listen",
            plugin_dir: "nri_plugin_dir",
            plugin_config_dir: "nri_plugin_config_dir",
            registration: "nri_plugin_registration_timeout",
            request: "nri_plugin_request_timeout",
            disable_connections: "nri_disable_connections",
        },
        file,
    );
    assert_eq!(t.len(), 1, "{file}: the [crio.nri] table only");
}

/// The private stack's containerd binaries, when integration/lib/install.sh has run.
fn stack_containerd(dir: &str) -> Option<PathBuf> {
    let prefix = std::env::var_os("IMAGE_COMPAT_STACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".work/stack"));
    let bin = prefix.join(dir).join("usr/bin/containerd");
    bin.is_file().then_some(bin)
}

/// The real containerd reads each snippet, alone and imported by a main config that disables
/// NRI, and reports NRI enabled at our socket.
#[test]
fn real_containerd_takes_the_snippets() {
    for (dir, file, version) in [
        ("containerd-2.1", "containerd-2.x.toml", 3),
        ("containerd-1.7", "containerd-1.7.toml", 2),
        ("containerd-2.3", "containerd-2.x.toml", 3),
        ("containerd-main", "containerd-2.x.toml", 3),
    ] {
        let Some(bin) = stack_containerd(dir) else {
            eprintln!("SKIPPED: no {dir} in the private stack (integration/lib/install.sh)");
            continue;
        };
        let tmp = tempfile::tempdir().unwrap();
        let snippet = root().join("nri-config").join(file);
        let conf_d = tmp.path().join("conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::copy(&snippet, conf_d.join("10-nri.toml")).unwrap();
        let main = tmp.path().join("config.toml");
        std::fs::write(
            &main,
            format!(
                "version = {version}\nimports = [\"{}/*.toml\"]\n\
                 [plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n  socket_path = \"/elsewhere.sock\"\n",
                conf_d.display()
            ),
        )
        .unwrap();
        for config in [&snippet, &main] {
            let out = Command::new(&bin)
                .arg("--config")
                .arg(config)
                .args(["config", "dump"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{dir} config dump {}: {}",
                config.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let dumped: Table = String::from_utf8_lossy(&out.stdout)
                .parse()
                .unwrap_or_else(|e| panic!("{dir}: dump is not TOML: {e}"));
            let nri = table(&dumped, &["plugins", "io.containerd.nri.v1.nri"]);
            assert_eq!(
                nri.get("disable"),
                Some(&Value::Boolean(false)),
                "{dir} {}",
                config.display()
            );
            check_nri(nri, &CONTAINERD_KEYS, dir);
            // 2.3 and later know the default validator (2.1 drops the table with a warning).
            if matches!(dir, "containerd-2.3" | "containerd-main") {
                check_validator(
                    table(nri, &["default_validator"]),
                    [
                        "enable",
                        "required_plugins",
                        "tolerate_missing_plugins_annotation",
                    ],
                    dir,
                );
            }
        }
    }
}
