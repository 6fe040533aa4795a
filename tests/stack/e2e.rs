//! The end-to-end suite, `integration/e2e.sh`, as a cargo test: the NRI plugin on the real
//! containerd 2.1 and 1.7, and (when the checkout has ../shared/runtimes) containerd 2.3.4 and main
//! and CRI-O 1.36.3, external and pre-launched, with faults (README: "End-to-end suite").
//!
//! It runs when the test runs as root and the real stack is unpacked (`IMAGE_COMPAT_STACK`,
//! default `.work/stack`, which `scripts/test.sh` installs as root); otherwise it prints
//! `SKIPPED: ...` and passes. `IMAGE_COMPAT_E2E=0` skips it on purpose; `IMAGE_COMPAT_E2E_ARGS`
//! passes arguments to the suite (e.g. `--versions 2.1 --scenarios enforce`). The suite takes
//! minutes, so its progress goes straight to the terminal rather than through the test harness's
//! capture; on a failure it prints each failed scenario's checks and the logs' tails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What integration/lib/install.sh unpacks, each with a `.installed` marker once complete.
const COMPONENTS: [&str; 6] = [
    "containerd-2.1",
    "containerd-1.7",
    "runc",
    "registry",
    "oras",
    "busybox",
];

/// Written to the process's stderr itself: the harness captures `eprintln!`, and a skip must be
/// seen.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn is_root() -> bool {
    // The real uid is the second field of /proc/self/status's "Uid:" line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn stack_prefix(root: &Path) -> PathBuf {
    std::env::var_os("IMAGE_COMPAT_STACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".work/stack"))
}

/// The CRI driver `cargo test` builds with the examples, beside this test's binary.
fn cri_driver() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let debug = exe.parent()?.parent()?;
    Some(debug.join("examples/cri")).filter(|p| p.is_file())
}

#[test]
fn e2e_suite_on_real_containerd() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var("IMAGE_COMPAT_E2E").is_ok_and(|v| v == "0") {
        say("SKIPPED: e2e suite: IMAGE_COMPAT_E2E=0");
        return;
    }
    if !is_root() {
        say("SKIPPED: e2e suite: needs root (containerd and runc); run `bash scripts/test.sh` as root");
        return;
    }
    let prefix = stack_prefix(root);
    let missing: Vec<&str> = COMPONENTS
        .iter()
        .copied()
        .filter(|c| !prefix.join(c).join(".installed").is_file())
        .collect();
    if !missing.is_empty() {
        say(&format!(
            "SKIPPED: e2e suite: the real stack is not unpacked in {} (missing: {}); \
             run `bash integration/lib/install.sh` or `bash scripts/test.sh` as root",
            prefix.display(),
            missing.join(", ")
        ));
        return;
    }
    let cri = cri_driver().unwrap_or_else(|| {
        panic!("the CRI driver (examples/cri) is not built: cargo build --example cri")
    });
    let args: Vec<String> = std::env::var("IMAGE_COMPAT_E2E_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    say(&format!(
        "e2e suite: integration/e2e.sh {} (stack {})",
        args.join(" "),
        prefix.display()
    ));
    let status = Command::new("bash")
        .arg(root.join("integration/e2e.sh"))
        .args(&args)
        .current_dir(root)
        .env("IMAGE_COMPAT_STACK", &prefix)
        .env("IC_IMAGE_COMPAT", env!("CARGO_BIN_EXE_image-compat"))
        .env("IC_CRI", &cri)
        .status()
        .expect("bash runs integration/e2e.sh");
    assert!(
        status.success(),
        "the e2e suite failed ({status}): the failed scenarios and the logs' tails are above"
    );
}
