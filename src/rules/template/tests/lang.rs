//! The text/template language and Go's printing.

use super::{data, fail, fail_on, run, run_on};
use crate::rules::template::{Template, TemplateError, Value};

#[test]
fn text_actions_and_trim_markers() {
    assert_eq!(run("a{{.s}}b"), "ahellob");
    assert_eq!(run("a  {{- .n -}}  \n b"), "a3b");
    assert_eq!(run("{{- /* comment */ -}} x {{/* c2 */}}"), "x ");
    assert_eq!(run("{{-3}}"), "-3");
    assert_eq!(run("x {{- 3}}"), "x3");
}

#[test]
fn literals() {
    assert_eq!(run(r#"{{"a\tb\u00e9\x41"}}"#), "a\tbéA");
    assert_eq!(run(r"{{`raw\n`}}"), r"raw\n");
    assert_eq!(run("{{'a'}} {{'\\n'}}"), "97 10");
    assert_eq!(
        run("{{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}}"),
        "31 15 15 5 1000"
    );
    assert_eq!(
        run("{{1.5}} {{1e6}} {{.5}} {{1e-7}} {{100000.0}}"),
        "1.5 1e+06 0.5 1e-07 100000"
    );
    assert_eq!(run("{{true}} {{false}}"), "true false");
    assert!(fail("{{nil}}").ends_with("nil is not a command"));
    assert_eq!(fail("{{08}}"), "template: :1: integer overflow: \"08\"");
}

#[test]
fn pipelines_variables_and_parens() {
    assert_eq!(run("{{.s | printf \"%s!\"}}"), "hello!");
    assert_eq!(run("{{$x := 1}}{{$x = 2}}{{$x}}"), "2");
    assert!(run("{{$}}").starts_with("map[empty: l:[a b]"));
    assert_eq!(run("{{(len .l)}} {{print (len .s) 1}}"), "2 5 1");
    assert_eq!(run("{{with $x := .s}}{{$x}}{{.}}{{end}}"), "hellohello");
    assert_eq!(
        fail("{{if true}}{{$x := 1}}{{end}}{{$x}}"),
        "template: :1: undefined variable \"$x\""
    );
    assert_eq!(
        fail("{{1 | 2}}"),
        "template: :1: non executable command in pipeline stage 2"
    );
}

#[test]
fn conditionals() {
    assert_eq!(run("{{if 0}}a{{else if .empty}}b{{else}}c{{end}}"), "c");
    assert_eq!(run("{{if .l}}y{{end}}{{if .empty}}n{{end}}"), "y");
    assert_eq!(run("{{with 0}}a{{else with 1}}b{{.}}{{end}}"), "b1");
    assert_eq!(run("{{with .empty}}a{{else}}e{{end}}"), "e");
    assert_eq!(
        run("{{if and 1 0}}a{{else}}b{{end}}{{or 0 \"\" 5}}{{and 1 2}}{{not 0}}"),
        "b52true"
    );
    // and/or stop at the deciding argument, like Go 1.18+.
    assert_eq!(run(r#"{{and 0 (fail "x")}}{{or 1 (fail "x")}}"#), "01");
}

#[test]
fn range_forms() {
    assert_eq!(
        run("{{range $i, $e := .l}}{{$i}}={{$e}} {{end}}"),
        "0=a 1=b "
    );
    assert_eq!(run("{{range .l}}[{{.}}]{{else}}none{{end}}"), "[a][b]");
    assert_eq!(run("{{range list}}x{{else}}none{{end}}"), "none");
    assert!(fail("{{range .empty}}{{end}}").ends_with("range can't iterate over "));
    assert_eq!(
        run("{{range $k, $v := dict \"b\" 1 \"a\" 2}}{{$k}}{{$v}}{{end}}"),
        "a2b1"
    );
    assert_eq!(
        run("{{range 3}}{{.}}{{end}}{{range $v := 2}}{{$v}}{{end}}{{range 0}}x{{else}}z{{end}}"),
        "01201z"
    );
    assert!(fail("{{range $i, $v := 3}}{{end}}")
        .ends_with("can't use 3 to iterate over more than one variable"));
    assert_eq!(run("{{range until 6}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}"), "013");
    assert!(fail("{{range .s}}{{end}}").ends_with("range can't iterate over hello"));
    assert_eq!(
        fail("{{break}}"),
        "template: :1: {{break}} outside {{range}}"
    );
}

#[test]
fn define_template_block() {
    assert_eq!(
        run("{{define \"t\"}}[{{.}}]{{end}}{{template \"t\" 5}}{{template \"t\"}}"),
        "[5][<no value>]"
    );
    assert_eq!(run("{{block \"b\" .s}}<{{.}}>{{end}}"), "<hello>");
    assert!(fail("{{template \"nope\"}}").ends_with("template \"nope\" not defined"));
    assert_eq!(
        fail("{{define \"a\"}}x{{end}}{{define \"a\"}}y{{end}}"),
        "template: :1: template: multiple definition of template \"a\""
    );
}

#[test]
fn parse_errors_use_go_text() {
    assert_eq!(
        fail("{{foo}}"),
        "template: :1: function \"foo\" not defined"
    );
    assert_eq!(
        fail("{{env \"HOME\"}}"),
        "template: :1: function \"env\" not defined"
    );
    assert_eq!(
        fail("{{getHostByName \"x\"}}"),
        "template: :1: function \"getHostByName\" not defined"
    );
    assert_eq!(fail("a\n{{if .}}"), "template: :2: unexpected EOF");
    assert_eq!(fail("{{end}}"), "template: :1: unexpected {{end}}");
    assert_eq!(fail("{{"), "template: :1: unclosed action");
    assert!(fail("{{.a b}}").contains("function \"b\" not defined"));
    assert_eq!(fail("{{\"x}}"), "template: :1: unterminated quoted string");
    assert_eq!(fail("{{)}}"), "template: :1: unexpected right paren");
}

#[test]
fn unsupported_functions_are_refused_at_parse_time() {
    for f in [
        "now",
        "date",
        "randAlpha",
        "uuidv4",
        "semverCompare",
        "sha256sum",
        "call",
        "merge",
    ] {
        let e = Template::parse(&format!("{{{{if false}}}}{{{{{f}}}}}{{{{end}}}}")).unwrap_err();
        assert!(matches!(e, TemplateError::Unsupported { .. }), "{f}: {e}");
        assert!(
            e.to_string().contains(&format!(
                "function \"{f}\" is not supported by image-compat"
            )),
            "{e}"
        );
    }
}

#[test]
fn printing_follows_go_fmt() {
    assert_eq!(run("{{list 1 \"a\" nil 2.5 true}}"), "[1 a <nil> 2.5 true]");
    assert_eq!(run("{{dict \"b\" 2 \"a\" (list 1)}}"), "map[a:[1] b:2]");
    assert_eq!(run("{{index (dict) \"x\"}}"), "<no value>");
    assert_eq!(
        run("{{print 1 2 \"a\" \"b\" 3}} {{println 1 \"a\"}}"),
        "1 2ab3 1 a\n"
    );
    assert_eq!(
        run(
            r#"{{printf "%5.2f|%-4d|%q|%x|%X|%v|%t|%05d|%+d|%e|%g|%s" 3.14159 7 "hi" 255 "hi" true false -42 3 1234.5678 0.000012 .l}}"#
        ),
        " 3.14|7   |\"hi\"|ff|6869|true|false|-0042|+3|1.234568e+03|1.2e-05|[a b]"
    );
    assert_eq!(
        run(r#"{{printf "%d|%d|%s" "x"}}"#),
        "%!d(string=x)|%!d(MISSING)|%!s(MISSING)"
    );
    assert_eq!(run(r#"{{printf "x" 1 "y"}}"#), "x%!(EXTRA int=1, string=y)");
    assert_eq!(
        run(r#"{{printf "%%|%c|%U|%o|%b|%8.3s|" 65 65 8 5 "abcdef"}}"#),
        "%|A|U+0041|10|101|     abc|"
    );
    assert_eq!(
        run(r#"{{printf "%T %T %T %T" 1 (add 1 1) .l (dict)}}"#),
        "int int64 []interface {} map[string]interface {}"
    );
    assert_eq!(
        run(r#"{{printf "%v %.3g %g %g" 1e21 2.0 1e20 123456789.0}}"#),
        "1e+21 2 1e+20 1.23456789e+08"
    );
    assert_eq!(
        run(r#"{{printf "%q" "a\"b\n\u00e9\x01"}}"#),
        r#""a\"b\né\x01""#
    );
}

#[test]
fn comparisons_follow_go_rules() {
    assert_eq!(run("{{eq 1 1}} {{eq 1 2 1}} {{ne \"a\" \"b\"}} {{lt 1 2}} {{le 2 2}} {{gt 1.5 1.0}} {{ge \"b\" \"a\"}}"), "true true true true true true true");
    assert_eq!(
        run("{{eq (add 1 1) 2}} {{eq nil nil}} {{eq .s nil}}"),
        "true true false"
    );
    assert_eq!(
        fail(r#"{{eq "a" 1}}"#),
        "template: :1:2: executing \"\" at <eq \"a\" 1>: error calling eq: incompatible types for comparison: string and int"
    );
    assert!(fail("{{lt 1 2.0}}").ends_with("incompatible types for comparison: int and float64"));
    assert!(fail("{{lt true false}}").ends_with("invalid type for comparison"));
    assert!(fail("{{eq .l .l}}").ends_with("non-comparable type [a b]: []interface {}"));
}

#[test]
fn missing_keys_and_index() {
    assert_eq!(
        fail("{{.cpu.model}}"),
        "template: :1:6: executing \"\" at <.cpu.model>: map has no entry for key \"cpu\""
    );
    assert!(fail("{{.s.x}}").ends_with("can't evaluate field x in type string"));
    assert_eq!(
        run("{{index . \"cpu\"}}|{{index .l 1}}|{{index .s 0}}"),
        "<no value>|b|104"
    );
    assert!(fail("{{index .l 5}}").ends_with("error calling index: index out of range: 5"));
    assert!(fail("{{$x := index . \"zz\"}}{{$x.a}}").ends_with("nil data; no entry for key \"a\""));
    let d = run_on("{{len .}}", &data());
    assert_eq!(d, "4");
}

#[test]
fn argument_types_are_checked_like_go() {
    assert_eq!(
        fail(r#"{{repeat (add 1 2) "x"}}"#),
        "template: :1:10: executing \"\" at <add 1 2>: wrong type for value; expected int; got int64"
    );
    assert!(fail(r#"{{upper 3}}"#).ends_with("expected string; found 3"));
    assert!(fail(r#"{{.n | upper}}"#).ends_with("wrong type for value; expected string; got int"));
    assert!(
        fail(r#"{{printf}}"#).ends_with("wrong number of args for printf: want at least 1 got 0")
    );
    assert!(fail(r#"{{upper "a" "b"}}"#).ends_with("wrong number of args for upper: want 1 got 2"));
    assert!(fail(r#"{{first (list) | upper}}"#).ends_with("invalid value; expected string"));
    assert!(fail(r#"{{.s 1}}"#).contains("s is not a method but has arguments"));
    let _ = fail_on("{{.x}}", &Value::Invalid);
}

#[test]
fn escapers() {
    assert_eq!(
        run(r#"{{html "<a href='x'>&</a>"}}"#),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
    );
    assert_eq!(run(r#"{{js "a'b\"<=>"}}"#), r#"a\'b\"\u003C\u003D\u003E"#);
    assert_eq!(run(r#"{{urlquery "a b&c/é"}}"#), "a+b%26c%2F%C3%A9");
    assert_eq!(run(r#"{{html nil}}"#), "&lt;no value&gt;");
}
