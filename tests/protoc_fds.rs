//! The protoc stand-in (tools/protoc) and its recorded descriptor sets (tools/protoc-fds/):
//! each set is answered without any protoc, and is what a real protoc writes for its inputs.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One recorded call: the crate whose build script made it, its key, and its arguments.
struct Recorded {
    krate: String,
    key: String,
    args: Vec<String>,
}

fn recorded() -> Vec<Recorded> {
    let store = Path::new(ROOT).join("tools/protoc-fds");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&store).expect("tools/protoc-fds is checked in") {
        let dir = dir.expect("readable tools/protoc-fds");
        let krate = dir.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(dir.path()).expect("readable crate directory") {
            let path = file.expect("readable entry").path();
            if path.extension().is_some_and(|e| e == "args") {
                let text = std::fs::read_to_string(&path).expect("readable .args");
                out.push(Recorded {
                    krate: krate.clone(),
                    key: path
                        .file_stem()
                        .expect("named")
                        .to_string_lossy()
                        .into_owned(),
                    args: text.lines().map(str::to_owned).collect(),
                });
            }
        }
    }
    out
}

/// The directory a crate's build script runs in: ours, or the dependency's source in the
/// registry as `cargo metadata` locates it (the version in Cargo.lock).
fn crate_dir(krate: &str) -> PathBuf {
    if krate == env!("CARGO_PKG_NAME") {
        return PathBuf::from(ROOT);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this platform's dependencies: the others' sources need not be downloaded.
    let host = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&host.stdout);
    let host = host
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc says its host");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", host])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let found: Vec<_> = packages.iter().filter(|p| p["name"] == krate).collect();
    assert_eq!(
        found.len(),
        1,
        "one {krate} in Cargo.lock (recorded sets are per crate)"
    );
    let manifest = found[0]["manifest_path"].as_str().expect("manifest_path");
    Path::new(manifest)
        .parent()
        .expect("manifest in a directory")
        .to_path_buf()
}

/// Runs tools/protoc as the crate's build script would, in `mode`, writing to `out`; it must
/// succeed.
fn stand_in(rec: &Recorded, mode: &str, real: &str, out: &Path) {
    let run = Command::new(Path::new(ROOT).join("tools/protoc"))
        .args(&rec.args)
        .arg("-o")
        .arg(out)
        .current_dir(crate_dir(&rec.krate))
        .env("CARGO_PKG_NAME", &rec.krate)
        .env("IC_PROTOC_MODE", mode)
        .env("IC_REAL_PROTOC", real)
        .env_remove("IC_PROTOC_FDS")
        .output()
        .expect("tools/protoc runs");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "{mode} {} {}: {err}",
        rec.krate,
        rec.key
    );
}

#[test]
fn every_build_script_call_has_a_set() {
    let crates: std::collections::BTreeSet<_> = recorded().into_iter().map(|r| r.krate).collect();
    let want = ["containerd-client", "image-compat", "k8s-cri", "ttrpc"];
    assert_eq!(crates.into_iter().collect::<Vec<_>>(), want);
}

#[test]
fn sets_are_answered_without_protoc() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for rec in recorded() {
        let out = tmp.path().join(format!("{}.pb", rec.key));
        // A real protoc that does not exist: answering must not need one.
        stand_in(&rec, "answer", "/nonexistent/protoc", &out);
        let stored = Path::new(ROOT).join(format!("tools/protoc-fds/{}/{}.pb", rec.krate, rec.key));
        assert_eq!(
            std::fs::read(&out).ok(),
            std::fs::read(&stored).ok(),
            "{} {}",
            rec.krate,
            rec.key
        );
    }
}

/// With a real protoc (IC_REAL_PROTOC: scripts/test.sh installs bookworm's privately), every set
/// is what it writes today. Without one there is nothing to compare with: the test says so.
#[test]
fn sets_are_what_a_real_protoc_writes() {
    let Ok(real) = std::env::var("IC_REAL_PROTOC") else {
        eprintln!("IC_REAL_PROTOC unset: the recorded sets were not compared with a real protoc");
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    for rec in recorded() {
        let out = tmp.path().join(format!("{}.pb", rec.key));
        stand_in(&rec, "check", &real, &out);
    }
}

/// An edited .proto has another key: never answered from the old set. With no set, the stand-in
/// runs a protoc from PATH; here that one fails, as it is absent where the build must not need it.
#[test]
fn a_changed_input_is_not_answered_from_a_stale_set() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let proto = tmp.path().join("api.proto");
    let original =
        std::fs::read_to_string(Path::new(ROOT).join("proto/nri/api.proto")).expect("proto");
    std::fs::write(&proto, original + "\n// edited\n").expect("write");
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    std::fs::write(bin.join("protoc"), "#!/bin/sh\necho absent >&2\nexit 1\n").expect("write");
    let chmod = Command::new("chmod")
        .arg("+x")
        .arg(bin.join("protoc"))
        .status();
    assert!(chmod.expect("chmod runs").success());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Command::new(Path::new(ROOT).join("tools/protoc"))
        .args(["--include_imports", "--include_source_info", "-o"])
        .arg(tmp.path().join("out.pb"))
        .arg("-I")
        .arg(tmp.path())
        .arg("--experimental_allow_proto3_optional")
        .arg(&proto)
        .env("CARGO_PKG_NAME", "image-compat")
        .env("PATH", path)
        .env_remove("IC_PROTOC_MODE")
        .env_remove("IC_REAL_PROTOC")
        .output()
        .expect("tools/protoc runs");
    assert!(!run.status.success());
    assert!(!tmp.path().join("out.pb").exists(), "no set written");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("no recorded"), "{err}");
}
