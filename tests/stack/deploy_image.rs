//! The Containerfile's packaging path (ROOTFS_FROM=prebuilt) built with buildah: the image runs this package's binary as its entrypoint.
//!
//! The Rust build stage needs an image from a registry this machine cannot reach, so the file
//! tree comes from `scripts/image.sh rootfs` (what that stage runs too); everything else is the
//! Containerfile as shipped. The image is FROM scratch: the binary runs in a chroot of it, so
//! the libraries the script copies are all it needs.

use std::path::PathBuf;
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_image-compat");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).trim().to_string()
}

fn usable_buildah() -> Result<(), String> {
    let id = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        return Err("not root".into());
    }
    match Command::new("buildah").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("buildah is not installed".into()),
    }
}

/// Removes what the test created in buildah's storage, whatever happens.
struct Cleanup {
    images: Vec<String>,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("buildah").args(["umount", c]).output();
            let _ = Command::new("buildah").args(["rm", c]).output();
        }
        for i in &self.images {
            let _ = Command::new("buildah").args(["rmi", "-f", i]).output();
        }
    }
}

#[test]
fn the_image_entrypoint_is_this_packages_binary() {
    if let Err(why) = usable_buildah() {
        eprintln!("SKIPPED: cannot build the Containerfile here: {why}");
        return;
    }
    let tag = format!(
        "{}-{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()
    );
    let image = format!("localhost/image-compat-test:{tag}");
    let mut cleanup = Cleanup {
        images: vec![image.clone()],
        containers: Vec::new(),
    };

    // The build context: the shipped Containerfile and .dockerignore, and the image's file tree
    // where the prebuilt path takes it from; other files of target/ must stay out of the context.
    let ctx = tempfile::tempdir().unwrap();
    for f in ["Containerfile", ".dockerignore"] {
        std::fs::copy(root().join(f), ctx.path().join(f)).unwrap();
    }
    let tree = ctx.path().join("target/image/rootfs");
    run(Command::new("bash")
        .arg(root().join("scripts/image.sh"))
        .arg("rootfs")
        .arg(&tree)
        .arg(BINARY));
    std::fs::write(ctx.path().join("target/stray"), "not in the context").unwrap();
    run(Command::new("buildah")
        .args(["build", "-q", "-f", "Containerfile"])
        .args(["--build-arg", "ROOTFS_FROM=prebuilt"])
        .args(["-t", &image])
        .arg(ctx.path()));

    let inspect: serde_json::Value = serde_json::from_str(&stdout(
        Command::new("buildah").args(["inspect", "--type", "image", &image]),
    ))
    .unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/image-compat"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["nri-plugin"]));
    assert_eq!(config["User"], "0:0");

    let container = stdout(Command::new("buildah").args(["from", &image]));
    cleanup.containers.push(container.clone());
    let mnt = PathBuf::from(stdout(Command::new("buildah").args(["mount", &container])));
    let packaged = mnt.join("usr/local/bin/image-compat");
    assert_eq!(
        std::fs::read(&packaged).unwrap(),
        std::fs::read(tree.join("usr/local/bin/image-compat")).unwrap(),
        "the image holds this package's binary (stripped of debug info by scripts/image.sh)"
    );
    assert!(!mnt.join("stray").exists() && !mnt.join("target").exists());
    // It runs from the image's own filesystem.
    let inside = stdout(
        Command::new("chroot")
            .arg(&mnt)
            .args(["/usr/local/bin/image-compat", "--version"]),
    );
    assert_eq!(inside, stdout(Command::new(BINARY).arg("--version")));
    assert!(inside.contains(env!("CARGO_PKG_VERSION")), "{inside}");
    drop(cleanup);
}
