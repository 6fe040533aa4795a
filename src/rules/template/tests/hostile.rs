//! Hostile templates end quickly with an error naming the limit (or NFD's size cap).

use super::data;
use crate::rules::template::{
    expand_vars, LimitKind, Limits, Template, TemplateError, MAX_TEMPLATE_SIZE,
};

fn limit_of(src: &str) -> LimitKind {
    let e = expand_vars(src, &data(), &Limits::default()).unwrap_err();
    match e.limit() {
        Some(k) => {
            assert!(e.to_string().contains(k.field()), "{e}");
            k
        }
        None => panic!("{src:.60}: not a limit error: {e}"),
    }
}

#[test]
fn source_size_cap_is_nfds() {
    let ok = "a".repeat(MAX_TEMPLATE_SIZE);
    assert!(Template::parse(&ok).is_ok());
    let big = "a".repeat(MAX_TEMPLATE_SIZE + 1);
    assert_eq!(
        Template::parse(&big).unwrap_err(),
        TemplateError::TooLarge {
            size: 65537,
            max: 65536
        }
    );
    let e = expand_vars(&"{{if 1}}".repeat(600_000), &data(), &Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to parse template: template exceeds maximum allowed size: 4800000 bytes > 65536 limit"
    );
}

#[test]
fn huge_lists_output_and_loops() {
    assert_eq!(
        limit_of("{{range until 100000000}}x{{end}}"),
        LimitKind::ListLen
    );
    assert_eq!(
        limit_of(r#"{{range until 100000}}{{repeat 1000 "x"}}{{end}}"#),
        LimitKind::OutputBytes
    );
    assert_eq!(
        limit_of("{{range until 100000}}{{range until 100000}}{{end}}{{end}}"),
        LimitKind::Steps
    );
    assert_eq!(limit_of("{{range 1000000000}}{{end}}"), LimitKind::Steps);
    assert_eq!(
        limit_of("{{$l := list}}{{range until 100000}}{{$l = append $l 1}}{{end}}"),
        LimitKind::Steps
    );
}

#[test]
fn huge_strings() {
    assert_eq!(
        limit_of(r#"{{repeat 1000000000 "x"}}"#),
        LimitKind::StringBytes
    );
    assert_eq!(
        limit_of(r#"{{printf "%1000000d%1000000d" 1 2}}"#),
        LimitKind::StringBytes
    );
    assert_eq!(
        limit_of(r#"{{printf "%.900000f" 1.0}}{{printf "%.900000f" 1.0}}"#),
        LimitKind::OutputBytes
    );
    assert_eq!(
        limit_of(r#"{{$s := repeat 1000000 "x"}}{{replace "" $s "ab"}}"#),
        LimitKind::StringBytes
    );
}

#[test]
fn deep_nesting_and_recursion() {
    let parens = format!("{{{{{}1{}}}}}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(limit_of(&parens), LimitKind::Depth);
    let ifs = format!("{}{}", "{{if 1}}".repeat(4000), "{{end}}".repeat(4000));
    assert_eq!(limit_of(&ifs), LimitKind::Depth);
    assert_eq!(
        limit_of(r#"{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}"#),
        LimitKind::Depth
    );
    // A map that contains itself cannot be printed forever.
    assert_eq!(
        limit_of(r#"{{$d := dict}}{{$_ := set $d "d" $d}}{{$d}}"#),
        LimitKind::Depth
    );
    let e = expand_vars(
        r#"{{$d := dict}}{{$_ := set $d "d" $d}}x={{toJson $d}}"#,
        &data(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(e, vec![("x".to_string(), String::new())]);
}

#[test]
fn custom_limits_apply() {
    let tight = Limits {
        max_output_bytes: 4,
        ..Limits::default()
    };
    let e = Template::parse("hello")
        .unwrap()
        .execute(&data(), &tight)
        .unwrap_err();
    assert_eq!(e.limit(), Some(LimitKind::OutputBytes));
    let shallow = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let e = Template::parse_with("{{if 1}}{{if 1}}{{if 1}}{{end}}{{end}}{{end}}", &shallow)
        .unwrap_err();
    assert_eq!(e.limit(), Some(LimitKind::Depth));
}
