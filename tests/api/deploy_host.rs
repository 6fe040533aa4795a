//! scripts/install-host.sh in a temporary root (systemd and pre-launched layouts) and the systemd unit of deploy/host.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image_compat::config::{Config, Mode};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const BINARY: &str = env!("CARGO_BIN_EXE_image-compat");

fn install(dest: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(root().join("scripts/install-host.sh"))
        .arg("--root")
        .arg(dest)
        .arg("--binary")
        .arg(BINARY)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install-host.sh failed: {text}");
    text
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 == 0o111)
}

/// `[Section]` -> key -> values of a systemd unit (keys may repeat).
fn unit_sections(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        assert!(!current.is_empty(), "{line}: outside a section");
        sections
            .entry(current.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    sections
}

#[test]
fn systemd_layout_installs_binary_config_and_unit() {
    let dest = tempfile::tempdir().unwrap();
    let log = ok(install(dest.path(), &["--layout", "systemd"]));
    assert!(
        log.contains("systemctl daemon-reload"),
        "tells the next step: {log}"
    );

    let bin = dest.path().join("usr/local/bin/image-compat");
    assert!(is_executable(&bin));
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(BINARY).unwrap());

    let config = Config::from_file(&dest.path().join("etc/image-compat/config.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.mode, Mode::Audit, "audit first");
    assert_eq!(
        Config {
            mode: Mode::Enforce,
            ..config
        },
        Config::default(),
        "the documented defaults, but for the mode"
    );

    let unit = std::fs::read_to_string(dest.path().join("etc/systemd/system/image-compat.service"))
        .unwrap();
    let s = unit_sections(&unit);
    assert_eq!(
        s["Service"]["ExecStart"],
        ["/usr/local/bin/image-compat nri-plugin --config /etc/image-compat/config.yaml"]
    );
    assert_eq!(s["Service"]["Restart"], ["always"]);
    assert_eq!(s["Install"]["WantedBy"], ["multi-user.target"]);
    // Reading modules.builtin under /usr/lib/modules must stay possible.
    assert!(!s["Service"].contains_key("ProtectKernelModules"));
}

#[test]
fn prelaunched_layout_follows_the_nri_plugin_dirs() {
    let dest = tempfile::tempdir().unwrap();
    ok(install(
        dest.path(),
        &["--layout", "prelaunched", "--plugin-mode", "enforce"],
    ));
    let defaults = Config::default();
    let file = format!("{}-{}", defaults.nri.index, defaults.nri.name);
    let plugin = dest.path().join("opt/nri/plugins").join(&file);
    assert!(is_executable(&plugin), "{}", plugin.display());
    let wrapper = std::fs::read_to_string(&plugin).unwrap();
    assert!(wrapper.starts_with("#!/bin/sh\n"), "{wrapper}");
    assert!(
        wrapper.contains("\nexec /usr/local/bin/image-compat nri-plugin \"$@\"\n"),
        "{wrapper}"
    );
    let conf = dest.path().join(format!("etc/nri/conf.d/{file}.conf"));
    let config = Config::from_file(&conf).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.mode, Mode::Enforce);
    assert!(is_executable(
        &dest.path().join("usr/local/bin/image-compat")
    ));
    assert!(
        !dest.path().join("etc/systemd").exists(),
        "no unit in this layout"
    );
}

#[test]
fn prelaunched_into_a_private_containerds_dirs() {
    let dest = tempfile::tempdir().unwrap();
    let d = "/srv/ctd";
    ok(install(
        dest.path(),
        &[
            "--layout",
            "prelaunched",
            "--bindir",
            &format!("{d}/bin"),
            "--plugin-dir",
            &format!("{d}/nri/plugins"),
            "--plugin-config-dir",
            &format!("{d}/nri/conf.d"),
            "--index",
            "42",
        ],
    ));
    let plugin = dest.path().join("srv/ctd/nri/plugins/42-image-compat");
    let wrapper = std::fs::read_to_string(&plugin).unwrap();
    assert!(
        wrapper.contains("exec /srv/ctd/bin/image-compat nri-plugin"),
        "{wrapper}"
    );
    assert!(is_executable(&dest.path().join("srv/ctd/bin/image-compat")));
    Config::from_file(&dest.path().join("srv/ctd/nri/conf.d/42-image-compat.conf"))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_edited_config_is_kept_unless_forced() {
    let dest = tempfile::tempdir().unwrap();
    ok(install(dest.path(), &[]));
    let path = dest.path().join("etc/image-compat/config.yaml");
    std::fs::write(&path, "mode: enforce\ndeadline: 500ms\n").unwrap();
    let log = ok(install(dest.path(), &[]));
    assert!(log.contains("kept"), "{log}");
    let kept = Config::from_file(&path).unwrap();
    assert_eq!(kept.deadline, std::time::Duration::from_millis(500));
    ok(install(dest.path(), &["--force", "--plugin-mode", "keep"]));
    assert_eq!(
        Config::from_file(&path).unwrap(),
        Config::default(),
        "--force writes the documented defaults, keep leaves their mode"
    );
}

#[test]
fn mistakes_are_refused_before_anything_is_written() {
    let dest = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["--layout", "docker"][..], "--layout"),
        (&["--index", "7"][..], "--index"),
        (&["--plugin-mode", "block"][..], "--plugin-mode"),
        (&["--plugin-dir", "relative/dir"][..], "absolute"),
        (&["--config", "/nonexistent.yaml"][..], "no such file"),
        (&["--bogus"][..], "unknown argument"),
        (&["--index"][..], "needs a value"),
    ] {
        let out = install(dest.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed; the unit was checked by parsing");
        return;
    };
    assert!(probe.status.success());
    // verify checks that ExecStart's binary exists: point it at the one cargo built.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root().join("deploy/host/image-compat.service"))
        .unwrap()
        .replace("/usr/local/bin/image-compat", BINARY);
    let path = dir.path().join("image-compat.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Without a running systemd it cannot load sysinit.target; anything else is a real finding.
    let findings: Vec<_> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("sysinit.target"))
        .collect();
    assert!(findings.is_empty(), "systemd-analyze verify: {err}");
}

#[test]
fn the_script_passes_shellcheck() {
    let Ok(out) = Command::new("shellcheck")
        .arg(root().join("scripts/install-host.sh"))
        .output()
    else {
        eprintln!("SKIPPED: shellcheck is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
