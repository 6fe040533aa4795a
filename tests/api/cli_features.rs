//! `image-compat features` on this machine: its outputs read back and feed `evaluate`.

use std::process::{Command, Output};

use image_compat::features::file;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_image-compat"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

#[test]
fn json_and_yaml_outputs_are_the_same_features() {
    let json = run(&["features", "--output", "json"]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let yaml = run(&["features", "--output", "yaml"]);
    assert!(yaml.status.success());
    let from_json = file::parse(&String::from_utf8_lossy(&json.stdout), "json").unwrap();
    let from_yaml = file::parse(&String::from_utf8_lossy(&yaml.stdout), "yaml").unwrap();
    assert_eq!(from_json, from_yaml);
    // Every source that always creates features did.
    for name in [
        "cpu.cpuid",
        "cpu.model",
        "kernel.version",
        "system.osrelease",
        "memory.numa",
    ] {
        assert!(from_json.exists(name), "{name} missing");
    }
}

#[test]
fn sources_select_and_unknown_sources_are_errors() {
    let out = run(&["features", "--sources", "kernel,system"]);
    assert!(out.status.success());
    let f = file::parse(&String::from_utf8_lossy(&out.stdout), "out").unwrap();
    let names: Vec<&String> = f
        .flags
        .keys()
        .chain(f.attributes.keys())
        .chain(f.instances.keys())
        .collect();
    assert!(!names.is_empty());
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("kernel.") || n.starts_with("system.")),
        "{names:?}"
    );

    let out = run(&["features", "--sources", "kernel,gpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown feature source \"gpu\""));
}

#[test]
fn evaluate_reads_this_nodes_features() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("node.yaml");
    let out = run(&["features", "--output", "yaml"]);
    std::fs::write(&path, &out.stdout).unwrap();
    // The fallback set only needs an Intel or AMD CPU; the verdict must follow the node.
    let out = run(&[
        "evaluate",
        "-o",
        "json",
        "--spec",
        "examples/preferred-fallback.yaml",
        "--features",
        path.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = file::parse(&std::fs::read_to_string(&path).unwrap(), "node").unwrap();
    let vendor = f.attributes["cpu.model"]
        .elements
        .get("vendor_id")
        .cloned()
        .unwrap_or_default();
    let expect = vendor == "Intel" || vendor == "AMD";
    assert_eq!(v["compatible"], expect, "vendor {vendor}: {v}");
    assert_eq!(out.status.code(), Some(if expect { 0 } else { 1 }));
}

/// `features --output labels` on each fixture host's features is the reviewed
/// `nfd export labels` output; `labels-env` is nfd-worker's labels, unprefixed, one per line.
#[test]
fn labels_of_the_fixture_hosts() {
    for host in ["x86-server", "arm64-graviton", "minimal-vm"] {
        let dir = format!("tests/fixtures/hosts/{host}");
        let features = format!("{dir}/expected.json");
        let out = run(&["features", "--features", &features, "--output", "labels"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = std::fs::read(format!(
            "{}/{dir}/expected-export-labels.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&want),
            "{host}"
        );

        let out = run(&[
            "features",
            "--features",
            &features,
            "--output",
            "labels-env",
        ]);
        assert!(out.status.success());
        let worker: std::collections::BTreeMap<String, String> = serde_json::from_slice(
            &std::fs::read(format!(
                "{}/{dir}/expected-labels.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let want: String = worker.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{host}");
        assert!(
            !want.contains("feature.node.kubernetes.io/"),
            "{host}: unprefixed"
        );
    }
}

/// A Proposal F document evaluated against saved features and a compat directory: declared
/// groups come from the directory (through the features file, so what-if runs work), a group
/// nobody declares is `unknown`, which `--on-unknown` turns into a failure or not.
#[test]
fn proposal_f_documents_against_saved_features() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("node.json");
    let out = run(&[
        "features",
        "--compat-dir",
        "tests/fixtures/compat/compat.d",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&node, &out.stdout).unwrap();
    let node = node.to_str().unwrap();
    let doc = tmp.path().join("mpi.json");
    std::fs::write(
        &doc,
        r#"{"compatibilities": {"org.supercontainers": {"mpi.implementation": "openmpi", "mpi.version": "v4.1.6"}}}"#,
    )
    .unwrap();
    let doc = doc.to_str().unwrap();
    // compat.d declares mpi.version 4.1.6: versions compare as NFD's do (a `v` is no part).
    let out = run(&["evaluate", "--spec", doc, "--features", node]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        table.starts_with("verdict:  COMPATIBLE (oci-compat: 2 of 2 keys match)"),
        "{table}"
    );

    let other = tmp.path().join("other.json");
    std::fs::write(&other, r#"{"compatibilities": {"org.other": {"k": 1}}}"#).unwrap();
    let other = other.to_str().unwrap();
    let out = run(&[
        "evaluate",
        "--spec",
        other,
        "--features",
        node,
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "unknown is not a failure by default"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "unknown");
    assert_eq!(v["compatible"], false);
    assert_eq!(v["ociCompat"]["keys"][0]["result"], "unknown");
    let out = run(&[
        "evaluate",
        "--spec",
        other,
        "--features",
        node,
        "--on-unknown",
        "deny",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("UNKNOWN: oci-compat: group \"org.other\" key \"k\""));
}

/// The proposal's two examples as printed: every slip located, nothing evaluated.
#[test]
fn the_proposals_examples_as_printed_are_located() {
    let out = run(&[
        "validate-spec",
        "tests/fixtures/compat/proposal-nfd.as-printed.json",
        "tests/fixtures/compat/proposal-hpc.as-printed.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let nfd = "tests/fixtures/compat/proposal-nfd.as-printed.json";
    let hpc = "tests/fixtures/compat/proposal-hpc.as-printed.json";
    let want = format!(
        "{nfd}:6:32: error: not valid JSON: missing `,` before the next member
{nfd}:8:32: error: not valid JSON: missing `,` before the next member
{nfd}:10:28: error: not valid JSON: missing `,` before the next member
{nfd}:14:2: error: not valid JSON: the `{{` opened at 1:1 is never closed: `}}` missing
{hpc}:4:24: error: not valid JSON: trailing comma before `}}`
{hpc}:10:2: error: not valid JSON: the `{{` opened at 1:1 is never closed: `}}` missing
"
    );
    assert_eq!(err, want);
    for fixed in ["proposal-nfd.json", "proposal-hpc.json"] {
        let out = run(&["validate-spec", &format!("tests/fixtures/compat/{fixed}")]);
        assert!(
            out.status.success(),
            "{fixed}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
