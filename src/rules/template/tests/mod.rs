//! Tests of the template engine: language, printing, functions, NFD's cases, hostile input.

mod funcs;
mod hostile;
mod lang;
mod nfd;

use std::collections::BTreeMap;

use super::{expand_vars, Limits, Template, TemplateError, Value};

/// Data with one map of everything the language tests need.
fn data() -> Value {
    let mut m = BTreeMap::new();
    m.insert("s".to_string(), Value::str("hello"));
    m.insert("n".to_string(), Value::Int(3));
    m.insert(
        "l".to_string(),
        Value::list(vec![Value::str("a"), Value::str("b")]),
    );
    m.insert("empty".to_string(), Value::str(""));
    Value::dict(m)
}

fn run_on(src: &str, d: &Value) -> String {
    match Template::parse(src).and_then(|t| t.execute(d, &Limits::default())) {
        Ok(s) => s,
        Err(e) => panic!("{src:?} failed: {e}"),
    }
}

fn run(src: &str) -> String {
    run_on(src, &data())
}

fn fail_on(src: &str, d: &Value) -> TemplateError {
    match Template::parse(src).and_then(|t| t.execute(d, &Limits::default())) {
        Ok(s) => panic!("{src:?} should fail, printed {s:?}"),
        Err(e) => e,
    }
}

fn fail(src: &str) -> String {
    fail_on(src, &data()).to_string()
}

#[test]
fn expand_vars_wraps_errors_like_nfd() {
    let d = data();
    let l = Limits::default();
    let e = expand_vars("foo", &d, &l).unwrap_err().to_string();
    assert_eq!(
        e,
        "failed to expand template: missing value in expanded template line \"foo\", (format must be '<key>=<value>')"
    );
    let e = expand_vars("{{", &d, &l).unwrap_err().to_string();
    assert_eq!(
        e,
        "failed to parse template: invalid template: template: :1: unclosed action"
    );
    let e = expand_vars("{{.nope}}", &d, &l).unwrap_err().to_string();
    assert_eq!(
        e,
        "failed to expand template: template: :1:2: executing \"\" at <.nope>: map has no entry for key \"nope\""
    );
}

#[test]
fn output_lines_follow_expand_map() {
    let d = data();
    let got = expand_vars(
        "  a = b \r\n\n \t\n=x\nc=\nk=1\nk=2\nu=v=w\n",
        &d,
        &Limits::default(),
    )
    .unwrap();
    let want: Vec<(String, String)> =
        [("a ", " b"), ("", "x"), ("c", ""), ("k", "2"), ("u", "v=w")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(got, want);
    assert_eq!(
        expand_vars("foo=bar", &d, &Limits::default()).unwrap(),
        vec![("foo".into(), "bar".into())]
    );
}
