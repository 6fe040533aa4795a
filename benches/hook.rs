//! OCI hook wall time per container: the whole `image-compat oci-hook` process, as a runtime
//! runs it (exec, state on stdin, exit status).
//!
//! `cargo bench --bench benches -- '^oci-hook/'`. Cases:
//! - `cached`: the registry's answer and the node's features are in the disk cache (every
//!   container of an image after its first).
//! - `cold-registry`: empty answer cache, saved features: one round trip to a loopback registry
//!   (the first container of an image on a running node).
//! - `cold-all`: nothing cached: discovery and the registry (the first container after a boot).
//!
//! The bundle is CRI-O's shape (image by tag and digest); discovery is this machine's, all sources.

use std::cell::OnceCell;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion};

use crate::oci_server;

const SPEC: &str = "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: kernel\n    matchFeatures:\n    - feature: kernel.version\n      matchExpressions:\n        major: {op: Gt, value: [\"2\"]}\n";

struct Setup {
    _runtime: tokio::runtime::Runtime,
    _reg: oci_server::TestRegistry,
    dir: tempfile::TempDir,
    state: String,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (reg, name, digest) = runtime.block_on(async {
        let reg = oci_server::TestRegistry::start().await;
        let (name, digest) = reg
            .push_image_with_spec("bench/app", "1", Some(SPEC.as_bytes()))
            .await;
        (reg, name, digest)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).expect("mkdir");
    let repo = name.rsplit_once(':').map(|(r, _)| r).unwrap_or(&name);
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"cwd": "/", "args": ["/bin/sh"], "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "annotations": {
            "io.kubernetes.cri-o.Image": name,
            "io.kubernetes.cri-o.ImageName": name,
            "io.kubernetes.cri-o.ImageRepoDigests": format!("{repo}@{digest}"),
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.pod.namespace": "default",
        },
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).expect("write");
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "nodeName: bench\nregistry: {{plainHttp: ['{}']}}\n",
            reg.host
        ),
    )
    .expect("write");
    let state = serde_json::json!({"ociVersion": "1.0.2", "id": "bench", "status": "creating", "pid": 1, "bundle": bundle}).to_string();
    Setup {
        _runtime: runtime,
        _reg: reg,
        dir,
        state,
    }
}

/// One hook process (config from `with_cache_dir`); panics unless it allows.
fn hook(s: &Setup) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_image-compat"))
        .args(["oci-hook", "--config"])
        .arg(s.dir.path().join("config.yaml"))
        .env("IMAGE_COMPAT_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(s.state.as_bytes())
        .expect("state");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_cache_dir(s: &Setup, cache: &Path) {
    std::fs::write(
        s.dir.path().join("config.yaml"),
        format!(
            "nodeName: bench\nregistry: {{plainHttp: ['{}']}}\ncache: {{dir: {}}}\n",
            s._reg.host,
            cache.display()
        ),
    )
    .expect("write");
}

pub fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("oci-hook");
    g.sample_size(30).measurement_time(Duration::from_secs(5));

    // The registry, the bundle and the warm cache, made for the first benchmark of the group
    // the filter selects: not at all when it selects another area's.
    let ready = OnceCell::new();
    let ready = || {
        ready.get_or_init(|| {
            let s = setup();
            let warm: PathBuf = s.dir.path().join("warm");
            with_cache_dir(&s, &warm);
            hook(&s);
            (s, warm)
        })
    };
    g.bench_function("cached", |b| {
        let (s, _) = ready();
        b.iter(|| hook(s))
    });

    // A fresh cache directory per run.
    let n = AtomicUsize::new(0);
    let fresh = |s: &Setup| {
        let d = s
            .dir
            .path()
            .join(format!("cold-{}", n.fetch_add(1, Ordering::Relaxed)));
        with_cache_dir(s, &d);
        d
    };
    g.bench_function("cold-registry", |b| {
        let (s, warm) = ready();
        // Only the registry's answer missing: the features saved by the warm run are copied in.
        let features = image_compat::hook::features::saved_path(warm);
        b.iter_batched(
            || {
                let saved = image_compat::hook::features::saved_path(&fresh(s));
                std::fs::create_dir_all(saved.parent().expect("parent")).expect("mkdir");
                std::fs::copy(&features, &saved).expect("copy features");
            },
            |_| hook(s),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("cold-all", |b| {
        let (s, _) = ready();
        b.iter_batched(|| fresh(s), |_| hook(s), BatchSize::PerIteration)
    });
    g.finish();
}
