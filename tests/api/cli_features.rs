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
