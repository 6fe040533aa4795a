//! The evaluate and validate-spec commands as a user runs them: exit codes, stdout, stderr.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_image-compat"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the binary runs")
}

/// `image-compat evaluate --spec SPEC --features FEATURES EXTRA...`
fn evaluate(spec: &str, features: &str, extra: &[&str]) -> Output {
    let mut args = vec!["evaluate", "--spec", spec, "--features", features];
    args.extend_from_slice(extra);
    run(&args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn compatible_and_not_compatible_exit_codes() {
    let out = evaluate(
        "examples/vfio-cpu-nic.yaml",
        "examples/features/intel-vfio-nic.json",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("verdict:  COMPATIBLE"),
        "{}",
        text(&out.stdout)
    );

    let out = evaluate(
        "examples/vfio-cpu-nic.yaml",
        "examples/features/intel-vm.json",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("NOT COMPATIBLE: set \"my image requirements\" rule \"kernel and cpu\": kernel.loadedmodule: vfio-pci Exists did not match (vfio-pci is not present)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pci.device: vendor In [0eee] did not match (node has vendor 1234, 1af4)"),
        "{stdout}"
    );
}

#[test]
fn best_set_is_the_highest_weight_match() {
    let out = evaluate(
        "examples/preferred-fallback.yaml",
        "examples/features/intel-vfio-nic.json",
        &["-o", "json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["compatible"], true);
    assert_eq!(v["bestSet"]["tag"], "prefered");
    assert_eq!(v["compatibilities"].as_array().unwrap().len(), 2);
    assert_eq!(v["compatibilities"][0]["rules"][0]["isMatch"], true);

    let out = evaluate(
        "examples/preferred-fallback.yaml",
        "examples/features/intel-vm.json",
        &["-o", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bestSet"]["tag"], "fallback");
    assert_eq!(v["sets"][0]["failures"][0]["rule"], "kernel and cpu");
    assert_eq!(
        v["sets"][0]["failures"][0]["feature"],
        "kernel.loadedmodule"
    );
}

#[test]
fn tags_select_sets() {
    let out = evaluate(
        "examples/preferred-fallback.yaml",
        "examples/features/intel-vm.json",
        &["--tags", "prefered", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sets"].as_array().unwrap().len(), 1);
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .starts_with("set \"prefered\" rule \"kernel and cpu\""));

    let out = evaluate(
        "examples/preferred-fallback.yaml",
        "examples/features/intel-vm.json",
        &["--tags", "gpu"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "no compatibility set has a tag in [gpu] (tags in the spec: [prefered, fallback])"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_input_is_exit_2_with_the_reason_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| -> String {
        let p = tmp.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let features = "examples/features/intel-vm.json";
    let cases: Vec<(String, String, &str)> = vec![
        (write("syntax.yaml", "version: [v1alpha1\n"), features.into(), "not valid YAML or JSON"),
        ("examples/invalid/broken.yaml".into(), features.into(), "invalid Op \"Inn\""),
        ("examples/vfio-cpu-nic.yaml".into(), write("f.json", "{\"x\": 1}"), "not a features file"),
        ("missing.yaml".into(), features.into(), "missing.yaml: cannot read"),
        (
            write("gt.yaml", "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: r\n    matchFeatures:\n    - feature: cpu.model\n      matchExpressions:\n        vendor_id: {op: Gt, value: [\"5\"]}\n"),
            features.into(),
            "compatibility set 0, rule \"r\", feature \"cpu.model\" element \"vendor_id\": not a number \"Intel\"",
        ),
    ];
    for (spec, features, want) in cases {
        let out = evaluate(&spec, &features, &[]);
        assert_eq!(out.status.code(), Some(2), "{spec}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{spec}: nothing on stdout on error");
        assert!(
            text(&out.stderr).contains(want),
            "{spec}: want {want:?} in {}",
            text(&out.stderr)
        );
    }
}

/// NFD reads a spec without sets and answers with an empty report: so do we, and the missing
/// answer is the exit status (2) with the reason.
#[test]
fn a_spec_without_sets_has_no_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("nosets.yaml");
    std::fs::write(&spec, "version: v1alpha1\n").unwrap();
    let spec = spec.display().to_string();
    let features = "examples/features/intel-vm.json";
    let out = evaluate(&spec, features, &["-o", "nfd-json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "[]", "NFD's empty report, byte for byte");
    assert!(
        text(&out.stderr).contains("the spec has no compatibility sets"),
        "{}",
        text(&out.stderr)
    );
    let out = evaluate(&spec, features, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("verdict:  NO ANSWER"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn validate_spec_exit_codes() {
    let out = run(&[
        "validate-spec",
        "examples/vfio-cpu-nic.yaml",
        "examples/preferred-fallback.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = run(&[
        "validate-spec",
        "examples/vfio-cpu-nic.yaml",
        "examples/invalid/broken.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("examples/invalid/broken.yaml:10:17: error:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("examples/vfio-cpu-nic.yaml: valid"),
        "{stdout}"
    );
}

/// A refused spec's errors are shown one per line under a heading, each escaped on its own
/// line (a rule name cannot start a line or drive the terminal); a spec over the bound is
/// refused for its size.
#[test]
fn a_refused_spec_shows_its_errors_one_per_line_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("two.yaml");
    std::fs::write(
        &spec,
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: \"evil\\nimage-compat: error: forged\\e[31m\"\n    matchFeatures:\n    - feature: cpu.model\n      matchExpressions:\n        vendor_id: {op: Inn}\n  - name: second\n    matchFeatures:\n    - feature: cpu.model\n      matchExpressions:\n        family: {op: Gt, value: [x]}\n",
    )
    .unwrap();
    let spec = spec.display().to_string();
    let out = evaluate(&spec, "examples/features/intel-vm.json", &["--strict"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!("image-compat: error: {spec}: invalid compatibility spec:"),
        "{err}"
    );
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[1..].iter().all(|l| l.starts_with("  ")), "{err}");
    assert!(lines[1].contains("invalid Op \"Inn\""), "{err}");
    assert!(lines[2].contains("rules[1](\"second\")"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("evil\\nimage-compat"), "{err}");

    let big = tmp.path().join("big.yaml");
    let mut body = "version: v1alpha1\ncompatibilities: []\n".to_string();
    body.push_str(&format!("#{}\n", "x".repeat(300 << 10)));
    std::fs::write(&big, &body).unwrap();
    let out = evaluate(
        &big.display().to_string(),
        "examples/features/intel-vm.json",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("too large: {} bytes", body.len())) && err.contains("262144"),
        "{err}"
    );
}
