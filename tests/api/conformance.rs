//! NFD conformance: every vector of tests/fixtures/nfd through the engine and the CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use image_compat::features::Features;
use image_compat::rules::{CompiledSpec, Expr};
use image_compat::spec::{self, MatchExpression};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nfd")
}

/// The vectors' neutral feature form -> NFD's NodeFeatureSpec features shape.
fn nfd_features(neutral: &Value) -> Value {
    let mut out = json!({"flags": {}, "attributes": {}, "instances": {}});
    for (name, elems) in neutral["flags"].as_object().into_iter().flatten() {
        let set: BTreeMap<String, Value> = elems
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (e.as_str().unwrap_or_default().to_string(), json!({})))
            .collect();
        out["flags"][name] = json!({"elements": set});
    }
    for (name, attrs) in neutral["attributes"].as_object().into_iter().flatten() {
        out["attributes"][name] = json!({"elements": attrs});
    }
    for (name, insts) in neutral["instances"].as_object().into_iter().flatten() {
        let list: Vec<Value> = insts
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| json!({"attributes": a}))
            .collect();
        out["instances"][name] = json!({"elements": list});
    }
    out
}

fn features(neutral: &Value) -> Features {
    serde_json::from_value(nfd_features(neutral)).expect("conformance features are well formed")
}

fn outcome(r: Result<bool, String>) -> Value {
    match r {
        Ok(m) => json!({"match": m}),
        Err(_) => json!({"error": true}),
    }
}

#[test]
fn every_case_agrees_with_nfd() {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 347, "the vector file changed");
    let (mut expressions, mut rules, mut failures) = (0, 0, Vec::new());
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let got = if let Some(e) = case.get("expression") {
            expressions += 1;
            let m = MatchExpression {
                op: e["op"].as_str().unwrap_or_default().into(),
                value: serde_json::from_value(e["value"].clone()).unwrap_or_default(),
                value_type: e["type"].as_str().unwrap_or_default().into(),
                ..Default::default()
            };
            let input = &case["input"];
            let valid = input["valid"].as_bool().unwrap_or(false);
            outcome(
                Expr::compile(&m)
                    .eval(valid, input["value"].as_str())
                    .map_err(|e| e.to_string()),
            )
        } else {
            rules += 1;
            let doc =
                json!({"version": "v1alpha1", "compatibilities": [{"rules": [case["rule"]]}]});
            let checked = spec::check(&doc.to_string(), id).unwrap();
            let compiled = CompiledSpec::new(checked.spec().clone());
            outcome(
                compiled
                    .evaluate(&features(&case["features"]), &[])
                    .map(|e| e.sets[0].rules[0].is_match)
                    .map_err(|e| e.to_string()),
            )
        };
        if got != case["expect"] {
            failures.push(format!("{id}: expected {}, got {got}", case["expect"]));
        }
    }
    assert_eq!((expressions, rules), (209, 138));
    assert!(
        failures.is_empty(),
        "{} of 347 cases disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn spec_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("specs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 3);
    dirs
}

/// The features file of a spec vector in NFD's shape, written for the CLI.
fn features_file(dir: &Path, tmp: &Path) -> (Features, PathBuf) {
    let neutral_yaml = std::fs::read_to_string(dir.join("features.yaml")).unwrap();
    let node = image_compat::yaml::load(&neutral_yaml).unwrap().unwrap();
    let neutral = image_compat::yaml::to_json(&node).unwrap();
    let nfd = nfd_features(&neutral);
    let path = tmp.join(format!(
        "{}.json",
        dir.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, nfd.to_string()).unwrap();
    (serde_json::from_value(nfd).unwrap(), path)
}

#[test]
fn every_spec_agrees_with_nfd() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in spec_dirs() {
        let text = std::fs::read_to_string(dir.join("spec.yaml")).unwrap();
        let loaded = spec::load(&text, "spec.yaml", spec::Reading::Strict).unwrap();
        let (features, _) = features_file(&dir, tmp.path());
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        for run in expected["runs"].as_array().unwrap() {
            let tags: Vec<String> = serde_json::from_value(run["tags"].clone()).unwrap();
            let eval = loaded.spec.evaluate(&features, &tags).unwrap();
            assert_eq!(run["error"], json!(false));
            let got: Vec<Value> = eval
                .sets
                .iter()
                .map(|s| {
                    let c = &loaded.spec.spec().compatibilities[s.index];
                    json!({
                        "description": c.description, "tag": c.tag, "weight": c.weight,
                        "rules": c.rules.iter().zip(&s.rules)
                            .map(|(r, o)| json!({"name": r.name, "isMatch": o.is_match}))
                            .collect::<Vec<_>>(),
                        "isMatch": s.is_match,
                    })
                })
                .collect();
            assert_eq!(
                Value::Array(got),
                run["compatibilities"],
                "{}",
                dir.display()
            );
        }
    }
}

#[test]
fn nfd_json_output_is_byte_for_byte_nfds() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in spec_dirs() {
        let (_, features) = features_file(&dir, tmp.path());
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let tags: Vec<String> =
            serde_json::from_value(expected["runs"][0]["tags"].clone()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_image-compat"));
        cmd.args(["evaluate", "--output", "nfd-json", "--spec"])
            .arg(dir.join("spec.yaml"))
            .arg("--features")
            .arg(&features);
        if !tags.is_empty() {
            cmd.arg("--tags").arg(tags.join(","));
        }
        let out = cmd.output().unwrap();
        let want = std::fs::read(dir.join("expected_report.json")).unwrap();
        assert!(
            out.stdout == want,
            "{}:\n got: {}\nwant: {}\nstderr: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&out.stderr)
        );
        let any_set_matches = expected["runs"][0]["compatibilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["isMatch"] == json!(true));
        assert_eq!(out.status.code(), Some(if any_set_matches { 0 } else { 1 }));
    }
}

/// image-compat's own vectors (tests/fixtures/nfd/lazy): NFD's answer when its evaluation would
/// refuse an expression only where it reaches it, and varsTemplate; each derived from NFD's
/// code (cited in the file). Read as NFD reads specs, the verdict is NFD's; read strictly, the
/// same specs are refused wherever an expression is invalid.
#[test]
fn lazy_errors_and_templates_as_nfd_decides() {
    let text = std::fs::read_to_string(fixtures().join("lazy/cases.yaml")).unwrap();
    let doc =
        image_compat::yaml::to_json(&image_compat::yaml::load(&text).unwrap().unwrap()).unwrap();
    let features: Features = serde_json::from_value(doc["node"].clone()).unwrap();
    let mut failures = Vec::new();
    let cases = doc["cases"].as_array().unwrap();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let sets = match case.get("sets") {
            Some(s) => s.clone(),
            None => json!([{"rules": case["rules"]}]),
        };
        let spec_text = json!({"version": "v1alpha1", "compatibilities": sets}).to_string();
        let tags: Vec<String> = serde_json::from_value(case["tags"].clone()).unwrap_or_default();
        let loaded = match spec::load(&spec_text, id, spec::Reading::Nfd) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{id}: refused as NFD reads it: {e}"));
                continue;
            }
        };
        let got = match loaded.spec.evaluate(&features, &tags) {
            Ok(e) if e.compatible => "match".to_string(),
            Ok(_) => "no-match".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let want = case["expect"].as_str().unwrap();
        let agrees = match want.strip_prefix("error: ") {
            Some(text) => got.starts_with("error: ") && got.contains(text),
            None => got == want,
        };
        if !agrees {
            failures.push(format!("{id}: expected {want}, got {got}"));
        }
        // An invalid expression the evaluation did not reach is a warning, not the answer;
        // read strictly, it refuses the spec.
        let has_lazy_error = !loaded.unreached.is_empty();
        let strict = spec::load(&spec_text, id, spec::Reading::Strict);
        if has_lazy_error == strict.is_ok() {
            failures.push(format!(
                "{id}: strict reading {} a spec with {} lazy errors",
                if strict.is_ok() { "accepts" } else { "refuses" },
                loaded.unreached.len()
            ));
        }
        if !want.starts_with("error") && has_lazy_error {
            let report =
                image_compat::check::report(&loaded, &features, &tags, Default::default(), id)
                    .unwrap();
            if report.warnings.is_empty() {
                failures.push(format!(
                    "{id}: the unreached error is not reported as a warning"
                ));
            }
        }
    }
    assert_eq!(cases.len(), 35, "vectors read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
