//! `image-compat audit`: images x nodes against an in-process registry, every cell checked
//! against `validate-node` on the same node's features file.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use image_compat::registry::{AttachOptions, Client, Reference};
use support::oci_server::TestRegistry;

const NEEDS_EXT4: &str = "version: v1alpha1\ncompatibilities:\n- description: runs where ext4 is loaded\n  rules:\n  - name: filesystem\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n        ext4: {op: Exists}\n";
const NEEDS_VFIO: &str = "version: v1alpha1\ncompatibilities:\n- description: needs vfio\n  rules:\n  - name: vfio driver\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n        vfio-pci: {op: Exists}\n";
const NEEDS_SVE: &str = "version: v1alpha1\ncompatibilities:\n- description: arm64 with SVE\n  rules:\n  - name: sve\n    matchFeatures:\n    - feature: cpu.cpuid\n      matchExpressions:\n        SVE: {op: Exists}\n";

/// The nodes: plain x86 with ext4; x86 with ext4 and vfio (a NodeFeature object); in a
/// NodeFeatureList, an arm64 node with SVE and one without ext4.
fn write_nodes(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("plain.json"),
        r#"{"flags":{"cpu.cpuid":{"elements":{"SSE2":{}}},"kernel.loadedmodule":{"elements":{"ext4":{}}}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("gpu.yaml"),
        "apiVersion: nfd.k8s-sigs.io/v1alpha1\nkind: NodeFeature\nmetadata:\n  name: gpu-xyz\n  labels:\n    nfd.node.kubernetes.io/node-name: gpu-node\nspec:\n  features:\n    flags:\n      cpu.cpuid: {elements: {SSE2: {}}}\n      kernel.loadedmodule: {elements: {ext4: {}, vfio-pci: {}}}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("list.json"),
        r#"{"apiVersion":"v1","kind":"List","items":[
          {"kind":"NodeFeature","metadata":{"name":"arm-a","labels":{"nfd.node.kubernetes.io/node-name":"arm-a"}},
           "spec":{"features":{"flags":{"cpu.cpuid":{"elements":{"ASIMD":{},"SVE":{}}},"kernel.loadedmodule":{"elements":{"ext4":{}}}}}}},
          {"kind":"NodeFeature","metadata":{"name":"bare"},
           "spec":{"features":{"flags":{"cpu.cpuid":{"elements":{"X86_64_V1":{}}}}}}}]}"#,
    )
    .unwrap();
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_image-compat"))
        .args(args)
        .env_remove("IMAGE_COMPAT_HOST_PREFIX")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run image-compat");
    if let Some(text) = stdin {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Fleet {
    reg: TestRegistry,
    dir: tempfile::TempDir,
    images: Vec<String>,
}

async fn fleet() -> Fleet {
    let reg = TestRegistry::start().await;
    let mut images = Vec::new();
    for (repo, spec) in [
        ("fleet/ok", Some(NEEDS_EXT4)),
        ("fleet/vfio", Some(NEEDS_VFIO)),
        ("fleet/plain", None),
    ] {
        images.push(
            reg.push_image_with_spec(repo, "1", spec.map(str::as_bytes))
                .await
                .0,
        );
    }
    // A multi-platform image whose arm64 manifest alone has an artifact.
    let (_, manifests) = reg.push_index("fleet/multi", "1", &["linux/amd64", "linux/arm64/v8"]);
    let arm = format!(
        "{}/fleet/multi@{}",
        reg.host,
        manifests[1]["digest"].as_str().unwrap()
    );
    Client::new(reg.client_config())
        .unwrap()
        .attach_spec(
            &Reference::parse(&arm).unwrap(),
            NEEDS_SVE.as_bytes(),
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    images.push(format!("{}/fleet/multi:1", reg.host));
    let dir = tempfile::tempdir().unwrap();
    write_nodes(&dir.path().join("nodes"));
    Fleet { reg, dir, images }
}

impl Fleet {
    fn audit(&self, extra: &[&str], stdin: Option<&str>) -> Output {
        let plain = format!("--plain-http={}", self.reg.host);
        let nodes = self.dir.path().join("nodes");
        let nodes = nodes.to_str().unwrap();
        let mut args = vec!["audit", plain.as_str(), "--nodes", nodes];
        args.extend_from_slice(extra);
        run(&args, stdin)
    }

    /// validate-node's exit code for one image on one node's features, as a verdict.
    fn validate_node(&self, image: &str, features: &Path, platform: &str) -> &'static str {
        let plain = format!("--plain-http={}", self.reg.host);
        let out = run(
            &[
                "validate-node",
                &plain,
                "--image",
                image,
                "--platform",
                platform,
                "--features",
                features.to_str().unwrap(),
            ],
            None,
        );
        match out.status.code() {
            Some(0) => "compatible",
            Some(1) => "incompatible",
            // validate-node has no answer for an image without an artifact.
            Some(2) if text(&out.stderr).contains("no compatibility artifact") => "unknown",
            other => panic!("validate-node {image}: {other:?}: {}", text(&out.stderr)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_agrees_with_validate_node_cell_by_cell() {
    let f = fleet().await;
    let mut args = vec!["--no-cache", "-o", "json"];
    let images: Vec<&str> = f.images.iter().map(String::as_str).collect();
    args.extend_from_slice(&images);
    f.reg.clear_log();
    let out = f.audit(&args, None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let nodes: Vec<(&str, &str)> = m["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["platform"].as_str().unwrap()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("gpu-node", "linux/amd64"),
            ("arm-a", "linux/arm64/v8"),
            ("bare", "linux/amd64"),
            ("plain", "linux/amd64"),
        ]
    );
    // Each node's features as its own file, to ask validate-node the same question.
    let single = f.dir.path().join("single");
    std::fs::create_dir_all(&single).unwrap();
    let list: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.dir.path().join("nodes/list.json")).unwrap(),
    )
    .unwrap();
    std::fs::write(single.join("arm-a.json"), list["items"][0].to_string()).unwrap();
    std::fs::write(single.join("bare.json"), list["items"][1].to_string()).unwrap();
    std::fs::copy(
        f.dir.path().join("nodes/gpu.yaml"),
        single.join("gpu-node.yaml"),
    )
    .unwrap();
    std::fs::copy(
        f.dir.path().join("nodes/plain.json"),
        single.join("plain.json"),
    )
    .unwrap();
    let file = |name: &str| {
        let yaml = single.join(format!("{name}.yaml"));
        if yaml.exists() {
            yaml
        } else {
            single.join(format!("{name}.json"))
        }
    };
    let rows = m["images"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let mut seen = std::collections::BTreeMap::new();
    for row in rows {
        let image = row["image"].as_str().unwrap();
        for (cell, (node, platform)) in row["cells"].as_array().unwrap().iter().zip(&nodes) {
            assert_eq!(cell["node"], *node);
            let want = f.validate_node(image, &file(node), platform);
            assert_eq!(cell["verdict"], want, "{image} on {node}: {cell}");
            seen.insert((image.rsplit('/').next().unwrap().to_string(), *node), want);
        }
    }
    // The answers themselves, so that agreement is not agreement on nothing.
    let at = |i: &str, n: &str| seen[&(i.to_string(), n)];
    assert_eq!(at("ok:1", "plain"), "compatible");
    assert_eq!(at("ok:1", "bare"), "incompatible");
    assert_eq!(at("vfio:1", "gpu-node"), "compatible");
    assert_eq!(at("vfio:1", "plain"), "incompatible");
    assert_eq!(at("plain:1", "arm-a"), "unknown");
    // The arm64 manifest's artifact decides for the arm64 node only.
    assert_eq!(at("multi:1", "arm-a"), "compatible");
    assert_eq!(at("multi:1", "plain"), "unknown");
    let s = &m["summary"];
    assert_eq!(
        (
            s["images"].as_u64(),
            s["nodes"].as_u64(),
            s["compatibleEverywhere"].as_u64(),
            s["someNodes"].as_u64(),
            s["unknown"].as_u64()
        ),
        (Some(4), Some(4), Some(0), Some(2), Some(2)),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_registry_lookup_per_image_and_platform_whatever_the_nodes() {
    let f = fleet().await;
    let image = &f.images[0];
    let referrers = |reg: &TestRegistry| {
        reg.requests()
            .into_iter()
            .filter(|r| r.path.contains("/referrers/"))
            .count()
    };
    // Four nodes of one platform: one lookup, evaluated four times.
    f.reg.clear_log();
    let out = f.audit(
        &[
            "--no-cache",
            "-o",
            "json",
            "--platform",
            "linux/amd64",
            image,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["summary"]["fetched"], 1, "{}", m["summary"]);
    assert_eq!(m["images"][0]["cells"].as_array().unwrap().len(), 4);
    assert_eq!(referrers(&f.reg), 1, "{:?}", f.reg.requests());
    // Two platforms (the NodeFeatureList's arm64 node): one lookup each.
    f.reg.clear_log();
    let out = f.audit(&["--no-cache", "-o", "json", image], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["summary"]["fetched"], 2, "{}", m["summary"]);
    assert_eq!(referrers(&f.reg), 2, "{:?}", f.reg.requests());
    // A cache directory: the second run asks the registry nothing.
    let cache = f.dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let first = f.audit(&["--cache-dir", cache, "-o", "json", image], None);
    assert_eq!(first.status.code(), Some(1));
    f.reg.clear_log();
    let second = f.audit(&["--cache-dir", cache, "-o", "json", image], None);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(f.reg.requests().is_empty(), "{:?}", f.reg.requests());
    let m2: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(m2["summary"]["cached"], 2, "{}", m2["summary"]);
    assert_eq!(m2["images"], m["images"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_list_gives_the_same_answers_with_the_pods_using_each_image() {
    let f = fleet().await;
    let pods = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"metadata": {"name": "web", "namespace": "prod"}, "spec": {
            "initContainers": [{"name": "init", "image": f.images[2]}],
            "containers": [{"name": "app", "image": f.images[0]}]}},
        {"metadata": {"name": "dpdk", "namespace": "net"}, "spec": {
            "containers": [{"name": "fwd", "image": f.images[1]}, {"name": "app", "image": f.images[0]}]}},
    ]})
    .to_string();
    let by_list = f.audit(
        &[
            "--no-cache",
            "-o",
            "json",
            &f.images[2],
            &f.images[0],
            &f.images[1],
        ],
        None,
    );
    let by_pods = f.audit(&["--no-cache", "-o", "json", "--pods", "-"], Some(&pods));
    assert_eq!(by_pods.status.code(), Some(1), "{}", text(&by_pods.stderr));
    let a: serde_json::Value = serde_json::from_slice(&by_list.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&by_pods.stdout).unwrap();
    for (x, y) in a["images"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["images"].as_array().unwrap())
    {
        assert_eq!(x["image"], y["image"]);
        assert_eq!(x["cells"], y["cells"]);
    }
    assert_eq!(
        b["images"][0]["usedBy"],
        serde_json::json!(["prod/web/init"])
    );
    assert_eq!(
        b["images"][1]["usedBy"],
        serde_json::json!(["prod/web/app", "net/dpdk/app"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_names_the_failing_rule_and_sums_up() {
    let f = fleet().await;
    let out = f.audit(&["--no-cache", &f.images[0], &f.images[2]], None);
    assert_eq!(out.status.code(), Some(1));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines.iter().all(|l| *l == l.trim_end()),
        "trailing blanks:\n{table}"
    );
    assert!(
        lines[0].starts_with("IMAGE") && lines[0].contains("gpu-node"),
        "{table}"
    );
    let ok = lines.iter().find(|l| l.contains("fleet/ok:1")).unwrap();
    let cols: Vec<&str> = ok.split_whitespace().collect();
    assert_eq!(cols[1..], ["ok", "ok", "NO[1]", "ok"], "{table}");
    assert!(
        table.contains(
            "[1] set \"runs where ext4 is loaded\" rule \"filesystem\": kernel.loadedmodule:"
        ),
        "{table}"
    );
    assert!(
        table.contains("[2] the image has no compatibility artifact"),
        "{table}"
    );
    assert!(
        table.contains("2 images x 4 nodes: 0 compatible everywhere, 0 nowhere, 1 on some nodes only, 1 unknown"),
        "{table}"
    );
    // A pipe gets no progress bar.
    assert!(
        !text(&out.stderr).contains("images checked"),
        "{}",
        text(&out.stderr)
    );
    // Unknown fails the run only when asked; compatible everywhere exits 0.
    let plain_only = f.audit(&["--no-cache", &f.images[2]], None);
    assert_eq!(
        plain_only.status.code(),
        Some(0),
        "{}",
        text(&plain_only.stderr)
    );
    let deny = f.audit(&["--no-cache", "--on-unknown", "deny", &f.images[2]], None);
    assert_eq!(deny.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error() {
    let f = fleet().await;
    let empty = f.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let plain = format!("--plain-http={}", f.reg.host);
    let out = run(
        &[
            "audit",
            &plain,
            "--nodes",
            empty.to_str().unwrap(),
            &f.images[0],
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no features files"),
        "{}",
        text(&out.stderr)
    );
    // The same node twice.
    let twice = f.dir.path().join("nodes/plain.json");
    let out = f.audit(&["--nodes", twice.to_str().unwrap(), &f.images[0]], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("node \"plain\" is given twice"),
        "{}",
        text(&out.stderr)
    );
    let out = f.audit(&["--pods", "-"], Some("{\"items\": 3}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a pod list"),
        "{}",
        text(&out.stderr)
    );
    let out = f.audit(&[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no images to audit"),
        "{}",
        text(&out.stderr)
    );
    // An image that is not a reference, and one the registry lacks: error cells, exit 2.
    let missing = format!("{}/fleet/none:1", f.reg.host);
    let out = f.audit(&["--no-cache", "-o", "json", "Not A Ref", &missing], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["images"][0]["cells"][0]["case"], "unknown-image");
    assert_eq!(m["images"][0]["cells"][0]["verdict"], "error");
}
