//! The audit benchmark: `image-compat audit` over IMAGES images (a fifth with an artifact) x
//! NODES saved nodes against an in-process loopback registry, cold (empty cache) then warm.
//! Prints per run the wall time, the registry requests and the audit process's peak RSS.
//! `scripts/bench-audit.sh` builds both in release and runs it (BENCHMARKS.md, "Audit").
//!
//! Usage: bench_audit IMAGE_COMPAT_BINARY [IMAGES [NODES [JOBS]]]   (default 1000 100 8)

#[path = "../tests/support/oci_server.rs"]
#[allow(dead_code)]
mod oci_server;

use std::process::{Command, Stdio};
use std::time::Instant;

use image_compat::registry::media;

const NEEDS_EXT4: &str = "version: v1alpha1\ncompatibilities:\n- description: runs where ext4 is loaded\n  rules:\n  - name: filesystem\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n        ext4: {op: Exists}\n    - feature: cpu.cpuid\n      matchExpressions:\n        AVX2: {op: Exists}\n";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .expect("usage: bench_audit IMAGE_COMPAT [IMAGES [NODES [JOBS]]]");
    let arg = |i: usize, d: usize| args.get(i).map_or(d, |v| v.parse().expect("a number"));
    let (images, nodes, jobs) = (arg(2, 1000), arg(3, 100), arg(4, 8));
    let reg = oci_server::TestRegistry::start().await;
    let layer = reg.put_blob(NEEDS_EXT4.as_bytes());
    reg.put_blob(b"{}");
    let mut refs = String::new();
    for i in 0..images {
        let repo = format!("bench/app{i}");
        let desc = reg.push_image(&repo, Some("1"), "linux", "amd64");
        if i % 5 == 0 {
            let artifact = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media::OCI_MANIFEST,
                "artifactType": media::ARTIFACT_TYPE,
                "config": {"mediaType": media::EMPTY_CONFIG, "digest": oci_server::sha256(b"{}"), "size": 2},
                "layers": [{"mediaType": media::SPEC_LAYER, "digest": layer, "size": NEEDS_EXT4.len()}],
                "subject": {"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"]},
            });
            reg.put_artifact(&repo, &artifact);
        }
        refs.push_str(&format!("{}/{repo}:1\n", reg.host));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("images.txt");
    std::fs::write(&list, refs).expect("write");
    let node_dir = dir.path().join("nodes");
    std::fs::create_dir_all(&node_dir).expect("mkdir");
    for n in 0..nodes {
        // Half the nodes lack AVX2: every artifact image is compatible on some nodes only.
        let avx2 = if n % 2 == 0 { r#","AVX2":{}"# } else { "" };
        let modules: String = (0..150).map(|m| format!(r#","mod{m}":{{}}"#)).collect();
        std::fs::write(
            node_dir.join(format!("node{n:03}.json")),
            format!(
                r#"{{"flags":{{"cpu.cpuid":{{"elements":{{"SSE2":{{}},"AVX":{{}}{avx2}}}}},"kernel.loadedmodule":{{"elements":{{"ext4":{{}}{modules}}}}}}}}}"#
            ),
        )
        .expect("write node");
    }
    let cache = dir.path().join("cache");
    println!(
        "audit of {images} images ({} with an artifact) x {nodes} nodes, --jobs {jobs}, loopback registry",
        images.div_ceil(5)
    );
    for run in ["cold", "warm"] {
        reg.clear_log();
        let started = Instant::now();
        let plain = format!("--plain-http={}", reg.host);
        let status = tokio::task::spawn_blocking({
            let (bin, list, node_dir, cache) =
                (bin.clone(), list.clone(), node_dir.clone(), cache.clone());
            move || {
                Command::new(bin)
                    .args(["audit", &plain, "-o", "json", "--jobs", &jobs.to_string()])
                    .arg("--images-from")
                    .arg(&list)
                    .arg("--nodes")
                    .arg(&node_dir)
                    .arg("--cache-dir")
                    .arg(&cache)
                    .stdout(Stdio::null())
                    .status()
                    .expect("run audit")
            }
        })
        .await
        .expect("join");
        let took = started.elapsed();
        let requests = reg.requests().len();
        // The largest RSS of any waited-for child so far: the cold run is first, and the warm
        // run's figure is the larger of the two.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes the struct it is given.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
        println!(
            "{run}: {:>8.1} ms, {requests:>5} registry requests, exit {}, peak RSS (so far) {:.1} MiB",
            took.as_secs_f64() * 1e3,
            status.code().unwrap_or(-1),
            usage.ru_maxrss as f64 / 1024.0
        );
    }
}
