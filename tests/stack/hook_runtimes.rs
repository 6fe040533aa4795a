//! The OCI hook under real runtimes: runc 1.1 (bookworm, the private stack) running a bundle whose
//! config.json lists the hook at createRuntime, and podman 4.3 (bookworm, installed by
//! integration/hook/install-podman.sh) with `--hooks-dir` holding hooks/podman's JSON. Images are
//! built with the harness (integration/lib/stack.sh), pushed to a real docker-registry 2.8 and
//! given specs with the real oras: one this node satisfies, one needing a kernel module no node
//! has loaded.
//!
//! Needs root and the private stack; skipped with a `SKIPPED:` line otherwise. podman runs with
//! runc, not Debian's default crun: crun 1.8 refuses this machine's hybrid cgroup layout. It
//! also runs with lowered rlimits (nofile, nproc): the test VM lacks CAP_SYS_RESOURCE, which
//! podman's defaults need.

use crate::support;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use image_compat::registry::media::{ARTIFACT_TYPE, SPEC_LAYER};
use support::stack::{stack, DockerRegistry, Oras};

/// Holds on every Linux node: the hook's discovery sees a kernel.version.
const COMPATIBLE_SPEC: &str = "version: v1alpha1\ncompatibilities:\n- description: any Linux 3 or newer\n  rules:\n  - name: kernel\n    matchFeatures:\n    - feature: kernel.version\n      matchExpressions:\n        major: {op: Gt, value: [\"2\"]}\n";
/// Needs an NVIDIA device (PCI vendor 10de), which this node lacks (checked in `env`).
const INCOMPATIBLE_SPEC: &str = "version: v1alpha1\ncompatibilities:\n- description: needs an NVIDIA GPU\n  rules:\n  - name: nvidia gpu\n    matchFeatures:\n    - feature: pci.device\n      matchExpressions:\n        vendor: {op: In, value: [\"10de\"]}\n";
const MISSING: &str = "vendor In [10de]";

struct Env {
    root: PathBuf,
    reg: DockerRegistry,
    work: tempfile::TempDir,
    prefix: PathBuf,
    /// `127.0.0.1:PORT/hook/ok:1`, `.../hook/bad:1`
    compatible: String,
    incompatible: String,
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn env() -> Option<Env> {
    if !is_root() {
        eprintln!("SKIPPED: the OCI hook runtime tests need root (runc, podman)");
        return None;
    }
    let has_nvidia = std::fs::read_dir("/sys/bus/pci/devices")
        .into_iter()
        .flatten()
        .flatten()
        .any(|d| {
            std::fs::read_to_string(d.path().join("vendor")).is_ok_and(|v| v.trim() == "0x10de")
        });
    if has_nvidia {
        eprintln!("SKIPPED: this node has an NVIDIA PCI device, which the incompatible spec needs");
        return None;
    }
    let stack = stack()?;
    // The stack prefix: <prefix>/registry/usr/bin/docker-registry.
    let prefix = stack
        .registry
        .ancestors()
        .nth(4)
        .expect("stack prefix")
        .to_path_buf();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reg = DockerRegistry::start(stack);
    let work = tempfile::tempdir().expect("tempdir");
    let oras = Oras::new(stack);
    let mut names = Vec::new();
    for (repo, variant, spec) in [
        ("hook/ok", "hook-ok", COMPATIBLE_SPEC),
        ("hook/bad", "hook-bad", INCOMPATIBLE_SPEC),
    ] {
        let name = format!("{}/{repo}:1", reg.host);
        let layout = work.path().join(variant);
        // The harness builds and pushes (oras cp from the OCI layout).
        ok(Command::new("bash")
            .arg("-c")
            .arg(r#"set -euo pipefail; source integration/lib/stack.sh; ic_build_image "$1" "localhost/$2" "$3" >/dev/null; ic_push_image "$1" "$4""#)
            .arg("bash")
            .arg(&layout)
            .arg(format!("{repo}:1"))
            .arg(variant)
            .arg(&name)
            .current_dir(&root)
            .env("IMAGE_COMPAT_STACK", &prefix));
        std::fs::write(work.path().join("spec.yaml"), spec).expect("write spec");
        oras.run(
            &[
                "attach",
                "--plain-http",
                "--artifact-type",
                ARTIFACT_TYPE,
                &name,
                &format!("spec.yaml:{SPEC_LAYER}"),
            ],
            work.path(),
        );
        names.push(name);
    }
    let incompatible = names.pop().expect("name");
    let compatible = names.pop().expect("name");
    Some(Env {
        root,
        reg,
        work,
        prefix,
        compatible,
        incompatible,
    })
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.work.path().join(p)
    }

    fn runc(&self) -> PathBuf {
        self.prefix.join("runc/usr/sbin/runc")
    }

    /// The hook's config: this registry over plain HTTP, a private cache, real discovery.
    fn hook_config(&self, extra: &str) -> PathBuf {
        let p = self.path("image-compat.yaml");
        std::fs::write(
            &p,
            format!(
                "nodeName: hook-test-node\nregistry: {{plainHttp: ['{}']}}\ncache: {{dir: {}}}\n{extra}",
                self.reg.host,
                self.path("cache").display()
            ),
        )
        .expect("write config");
        p
    }

    fn hook_args(&self, config: &Path) -> Vec<String> {
        vec![
            "image-compat".into(),
            "--log-file".into(),
            self.path("hook.log").display().to_string(),
            "--log-level".into(),
            "info".into(),
            "oci-hook".into(),
            "--config".into(),
            config.display().to_string(),
        ]
    }

    fn hook_log(&self) -> String {
        std::fs::read_to_string(self.path("hook.log")).unwrap_or_default()
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A runc bundle: a busybox rootfs, `runc spec`'s defaults, the image named as CRI-O names it,
/// the hook at createRuntime.
fn runc_bundle(e: &Env, image: &str, config: &Path) -> (PathBuf, String) {
    let id = format!(
        "ic-hook-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let bundle = e.path(&id);
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::copy(e.prefix.join("busybox/bin/busybox"), bin.join("busybox")).expect("busybox");
    ok(Command::new(e.runc())
        .args(["spec", "--bundle"])
        .arg(&bundle));
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/busybox", "true"]);
    spec["root"]["readonly"] = false.into();
    spec["annotations"] = serde_json::json!({
        "io.kubernetes.cri-o.Image": image,
        "io.kubernetes.cri-o.ImageName": image,
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.pod.namespace": "default",
    });
    spec["hooks"] = serde_json::json!({"createRuntime": [{
        "path": env!("CARGO_BIN_EXE_image-compat"),
        "args": e.hook_args(config),
        "timeout": 10,
    }]});
    std::fs::write(&path, spec.to_string()).expect("write");
    (bundle, id)
}

/// `runc create`; returns whether it succeeded and its stderr.
fn runc_create(e: &Env, bundle: &Path, id: &str) -> (bool, String) {
    // Files, not pipes: the created container's init inherits runc's stdio and holds it open
    // until the container is started or deleted, so reading a pipe to its end would hang.
    let err_path = bundle.join("runc.stderr");
    let err_file = std::fs::File::create(&err_path).expect("stderr file");
    let status = Command::new(e.runc())
        .arg("--root")
        .arg(e.path("runc-state"))
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .status()
        .expect("run runc");
    // Whatever happened, leave no container, cgroup or state behind.
    let _ = run(Command::new(e.runc())
        .arg("--root")
        .arg(e.path("runc-state"))
        .args(["delete", "--force", id]));
    (
        status.success(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

#[test]
fn runc_create_refuses_an_incompatible_image_and_creates_a_compatible_one() {
    let Some(e) = env() else { return };
    let config = e.hook_config("");
    let (bundle, id) = runc_bundle(&e, &e.incompatible, &config);
    let (created, err) = runc_create(&e, &bundle, &id);
    assert!(!created, "runc create succeeded: {err}");
    assert!(
        err.contains("error running hook")
            && err.contains(&format!("image-compat: image {}", e.incompatible))
            && err.contains("is not compatible with node hook-test-node")
            && err.contains(MISSING),
        "runc's error: {err}"
    );

    let (bundle, id) = runc_bundle(&e, &e.compatible, &config);
    let (created, err) = runc_create(&e, &bundle, &id);
    assert!(
        created,
        "runc create failed: {err}\nhook log:\n{}",
        e.hook_log()
    );
    let log = e.hook_log();
    assert!(
        log.contains(&format!("image=\"{}\"", e.compatible))
            && log.contains("verdict=\"compatible\""),
        "{log}"
    );

    // Audit mode: the incompatible image's container is created, the verdict logged.
    let audit = e.hook_config("mode: audit\n");
    let (bundle, id) = runc_bundle(&e, &e.incompatible, &audit);
    let (created, err) = runc_create(&e, &bundle, &id);
    assert!(created, "{err}");
    assert!(
        e.hook_log().contains("WARN") && e.hook_log().contains("verdict=\"incompatible\""),
        "{}",
        e.hook_log()
    );
}

/// podman with private storage, the stack's runc, host network, rlimits this VM allows, and
/// its own parent cgroup (removed at the end).
struct Podman<'a> {
    e: &'a Env,
    hooks: PathBuf,
    cgroup: String,
}

impl Podman<'_> {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.e.path("podman/root"))
            .arg("--runroot")
            .arg(self.e.path("podman/run"))
            .arg("--tmpdir")
            .arg(self.e.path("podman/tmp"))
            .args(["--storage-driver", "overlay"])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--runtime")
            .arg(self.e.runc())
            .arg("--hooks-dir")
            .arg(&self.hooks)
            .env("CONTAINERS_CONF", "/dev/null")
            .env("CONTAINERS_REGISTRIES_CONF", "/dev/null");
        c
    }

    fn run(&self, image: &str) -> Output {
        run(self.cmd().args([
            "run",
            "--rm",
            "--network",
            "host",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            "--cgroup-parent",
            &self.cgroup,
            image,
            "echo",
            "hello from the container",
        ]))
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        // Containers are --rm; images go, so nothing stays mounted under the tempdir.
        let _ = run(self.cmd().args(["rm", "--all", "--force"]));
        let _ = run(self.cmd().args(["rmi", "--all", "--force"]));
        // podman (cgroupfs) makes <parent>/conmon in every controller and leaves it.
        for controller in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let parent = controller.path().join(self.cgroup.trim_start_matches('/'));
            let _ = std::fs::remove_dir(parent.join("conmon"));
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[test]
fn podman_run_refuses_an_incompatible_image_and_runs_a_compatible_one() {
    let Some(e) = env() else { return };
    let install = run(Command::new("bash").arg(e.root.join("integration/hook/install-podman.sh")));
    if !install.status.success() {
        eprintln!(
            "SKIPPED: podman unavailable: {}",
            String::from_utf8_lossy(&install.stderr).trim()
        );
        return;
    }
    // The shipped hooks.d file, with this build's binary and the test's config and log.
    let config = e.hook_config("");
    let hooks = e.path("hooks.d");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    let shipped = e.root.join("hooks/podman/50-image-compat.json");
    let mut hook: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&shipped).expect("read")).expect("json");
    assert_eq!(hook["stages"], serde_json::json!(["createRuntime"]));
    hook["hook"]["path"] = env!("CARGO_BIN_EXE_image-compat").into();
    hook["hook"]["args"] = serde_json::json!(e.hook_args(&config));
    std::fs::write(hooks.join("50-image-compat.json"), hook.to_string()).expect("write");
    let podman = Podman {
        e: &e,
        hooks,
        cgroup: format!("/ic-hook-test-{}", std::process::id()),
    };
    for image in [&e.compatible, &e.incompatible] {
        ok(podman
            .cmd()
            .args(["pull", "--quiet", "--tls-verify=false", image.as_str()]));
    }

    let out = podman.run(&e.incompatible);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "podman run succeeded: {err}");
    assert!(
        err.contains(&format!("image-compat: image {}", e.incompatible))
            && err.contains("is not compatible with node hook-test-node")
            && err.contains(MISSING),
        "podman's error: {err}\nhook log:\n{}",
        e.hook_log()
    );
    eprintln!("podman's refusal: {err}");
    // podman names no image in config.json: the hook found it in containers/storage, and
    // asked the registry about the digest podman pulled (the log file has the refusal too).
    let log = e.hook_log();
    assert!(
        log.contains("action=\"deny\"")
            && log.contains("image_source=\"containers-storage\"")
            && log.contains(&format!("image=\"{}\"", e.incompatible)),
        "{log}"
    );

    let out = podman.run(&e.compatible);
    assert!(
        out.status.success(),
        "podman run failed: {}\nhook log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        e.hook_log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello from the container"
    );
    assert!(
        e.hook_log().contains("verdict=\"compatible\""),
        "{}",
        e.hook_log()
    );
}
