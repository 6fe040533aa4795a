//! The README's main command (scripts/demo.sh) and the single-host deployment
//! (integration/host-install.sh) on the private containerd + registry, as root.

use std::path::Path;
use std::process::Command;

/// Why the real-stack scripts cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    (String::from_utf8_lossy(&uid.stdout).trim() != "0")
        .then(|| "not root (containerd and runc need it)".to_string())
}

fn run(script: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join(script))
        .current_dir(root)
        .env("IC_IMAGE_COMPAT", env!("CARGO_BIN_EXE_image-compat"))
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

#[test]
fn demo_and_single_host_deployment() {
    if let Some(why) = unavailable() {
        println!("SKIPPED: real-stack scripts: {why}");
        return;
    }
    let demo = run("scripts/demo.sh");
    // Enforce: the GPU image refused with the reason, the portable one running annotated.
    let refused = demo
        .lines()
        .find(|l| l.contains("REFUSED") || l.contains("refused: "))
        .unwrap_or_default();
    assert!(
        refused.contains("is not compatible with node")
            && refused.contains(
                "set \"gpu\" rule \"nvidia gpu\": pci.device: vendor In [10de] did not match"
            ),
        "{demo}"
    );
    assert_eq!(
        demo.matches("image-compat.io/compatible=true").count(),
        2,
        "{demo}"
    );
    // Audit: the GPU image runs, annotated incompatible; the metrics count it.
    assert!(demo.contains("image-compat.io/compatible=false"), "{demo}");
    assert!(
        demo.contains(r#"image_compat_decisions_total{verdict="incompatible",action="allow",case="incompatible",artifact_kind="nfd"} 1"#),
        "{demo}"
    );
    let host = run("integration/host-install.sh");
    assert!(
        host.contains("host-install: prelaunched: refused the GPU image"),
        "{host}"
    );
    assert!(
        host.contains("host-install: external: refused the GPU image"),
        "{host}"
    );
}
