//! NFD's own template cases (grouprule_test.go TestGroupRuleTemplating) and the data model of
//! `matchedFeatures`, with the outputs NFD's Go code gives for them.

use std::collections::BTreeMap;

use crate::rules::template::{
    expand_vars, matched_element, matched_features, Limits, TemplateError, Value,
};

fn elem(pairs: &[(&str, &str)]) -> Value {
    matched_element(
        &pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn features(items: &[(&str, &str, Vec<Value>)]) -> Value {
    let mut m: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
    for (dom, name, elems) in items {
        m.entry(dom.to_string())
            .or_default()
            .insert(name.to_string(), elems.clone());
    }
    matched_features(&m)
}

fn vars(src: &str, data: &Value) -> Vec<(String, String)> {
    match expand_vars(src, data, &Limits::default()) {
        Ok(v) => v,
        Err(e) => panic!("{src:?}: {e}"),
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// r1 of TestGroupRuleTemplating: flags (with a DoesNotExist), attributes (with a
/// DoesNotExist on a missing key), and instances matched by two terms on one feature.
#[test]
fn group_rule_templating_r1() {
    let data = features(&[
        (
            "domain_1",
            "kf_1",
            vec![
                elem(&[("Name", "foo")]),
                elem(&[("Name", "key-a")]),
                elem(&[("Name", "key-c")]),
            ],
        ),
        (
            "domain_1",
            "vf_1",
            vec![
                elem(&[("Name", "bar"), ("Value", "")]),
                elem(&[("Name", "key-1"), ("Value", "val-1")]),
            ],
        ),
        (
            "domain_1",
            "if_1",
            vec![
                elem(&[("attr-1", "1"), ("attr-2", "val-2")]),
                elem(&[("attr-1", "10"), ("attr-2", "val-20")]),
                elem(&[
                    ("attr-1", "1000"),
                    ("attr-2", "val-2000"),
                    ("attr-3", "3000"),
                ]),
            ],
        ),
    ]);
    let src = "\nvar-1=will-be-overridden\nvar-2=\n{{range .domain_1.kf_1}}kf-{{.Name}}=true\n{{end}}\n{{range .domain_1.vf_1}}vf-{{.Name}}=vf-{{.Value}}\n{{end}}\n{{range .domain_1.if_1}}if-{{index . \"attr-1\"}}_{{index . \"attr-2\"}}=present\n{{end}}";
    assert_eq!(
        vars(src, &data),
        pairs(&[
            ("var-1", "will-be-overridden"),
            ("var-2", ""),
            ("kf-foo", "true"),
            ("kf-key-a", "true"),
            ("kf-key-c", "true"),
            ("vf-bar", "vf-"),
            ("vf-key-1", "vf-val-1"),
            ("if-1_val-2", "present"),
            ("if-10_val-20", "present"),
            ("if-1000_val-2000", "present"),
        ])
    );
}

/// r3: a feature with both flags and attributes ("multi-type").
#[test]
fn group_rule_templating_multi_type() {
    let data = features(&[(
        "domain",
        "mf",
        vec![
            elem(&[("Name", "key-a")]),
            elem(&[("Name", "key-d"), ("Value", "val-d")]),
        ],
    )]);
    assert_eq!(
        vars("\n{{range .domain.mf}}mf-{{.Name}}=found\n{{end}}", &data),
        pairs(&[("mf-key-a", "found"), ("mf-key-d", "found")])
    );
}

/// r5: matchName elements come after the matchExpressions ones.
#[test]
fn group_rule_templating_match_name() {
    let data = features(&[(
        "domain_1",
        "vf_1",
        vec![
            elem(&[("Name", "key-5"), ("Value", "")]),
            elem(&[("Name", "key-1"), ("Value", "val-1")]),
            elem(&[("Name", "key-4"), ("Value", "val-4")]),
        ],
    )]);
    assert_eq!(
        vars(
            "{{range .domain_1.vf_1}}{{.Name}}={{.Value}}\n{{end}}",
            &data
        ),
        pairs(&[("key-5", ""), ("key-1", "val-1"), ("key-4", "val-4")])
    );
}

/// r4: plain text, a line without '=', and an unclosed action.
#[test]
fn group_rule_templating_errors() {
    let data = features(&[("domain_1", "kf_1", vec![elem(&[("Name", "key-a")])])]);
    assert_eq!(vars("foo=bar", &data), pairs(&[("foo", "bar")]));
    let e = expand_vars("foo", &data, &Limits::default()).unwrap_err();
    assert!(matches!(e.root(), TemplateError::MissingValue { .. }));
    let e = expand_vars("{{", &data, &Limits::default()).unwrap_err();
    assert!(matches!(e.root(), TemplateError::Parse { .. }));
}

#[test]
fn missing_keys_in_nfd_data() {
    let data = features(&[("kernel", "loadedmodule", vec![elem(&[("Name", "nvme")])])]);
    let err = |src: &str| {
        expand_vars(src, &data, &Limits::default())
            .unwrap_err()
            .to_string()
    };
    // A domain the matcher had no term for.
    assert_eq!(
        err("{{.cpu.model}}"),
        "failed to expand template: template: :1:6: executing \"\" at <.cpu.model>: map has no entry for key \"cpu\""
    );
    // `.Value` of a flag element; `index` gives "" instead, since MatchedElement holds strings.
    assert!(err("{{range .kernel.loadedmodule}}{{.Value}}{{end}}")
        .ends_with("map has no entry for key \"Value\""));
    assert_eq!(
        vars(
            "{{range .kernel.loadedmodule}}{{.Name}}=[{{index . \"Value\"}}]{{end}}",
            &data
        ),
        pairs(&[("nvme", "[]")])
    );
    // index on the typed maps gives their zero values: a nil slice and an empty domain.
    assert_eq!(
        vars(
            "a={{index .kernel \"nope\"}}\nb={{index . \"nope\"}}",
            &data
        ),
        pairs(&[("a", "[]"), ("b", "map[]")])
    );
    // sprig's dict functions want map[string]interface {}, which MatchedElement is not.
    assert!(err("{{range .kernel.loadedmodule}}{{hasKey . \"Name\"}}{{end}}")
        .ends_with("wrong type for value; expected map[string]interface {}; got nodefeaturerule.MatchedElement"));
    // Printing NFD's typed values and their types.
    assert_eq!(
        vars(
            "x={{.kernel}}\nt={{printf \"%T\" .kernel.loadedmodule}}\nj={{toJson .}}",
            &data
        ),
        pairs(&[
            ("x", "map[loadedmodule:[map[Name:nvme]]]"),
            ("t", "[]nodefeaturerule.MatchedElement"),
            ("j", r#"{"kernel":{"loadedmodule":[{"Name":"nvme"}]}}"#),
        ])
    );
}

#[test]
fn nil_element_lists_range_as_empty() {
    let data = features(&[("usb", "device", vec![])]);
    assert_eq!(
        vars(
            "{{range .usb.device}}x=1{{else}}none=1{{end}}\nj={{toJson .usb.device}}",
            &data
        ),
        pairs(&[("none", "1"), ("j", "null")])
    );
}
