//! Sprig functions, with Go's results and errors.

use super::{fail, run};

#[test]
fn strings() {
    assert_eq!(
        run(
            r#"{{upper "abé"}} {{lower "ABÉ"}} {{title "hello wide-world"}} {{untitle "Hello World"}}"#
        ),
        "ABÉ abé Hello Wide-World hello world"
    );
    assert_eq!(
        run(
            r#"{{trim "  a  "}}|{{trimAll "$" "$$a$"}}|{{trimPrefix "a" "aab"}}|{{trimSuffix "b" "abb"}}"#
        ),
        "a|a|ab|ab"
    );
    assert_eq!(
        run(r#"{{replace "a" "x" "banana"}} {{"banana" | replace "an" ""}}"#),
        "bxnxnx ba"
    );
    assert_eq!(
        run(r#"{{contains "an" "banana"}} {{hasPrefix "b" "banana"}} {{hasSuffix "x" "banana"}}"#),
        "true true false"
    );
    assert_eq!(
        run(r#"{{quote "a" 1 nil}} {{squote "a" 2}} {{cat "a" 1 nil "b"}}"#),
        r#""a" "1" 'a' '2' a 1 b"#
    );
    assert_eq!(
        run(r#"{{indent 2 "a\nb"}}|{{nindent 1 "x"}}|{{nospace " a b\tc "}}"#),
        "  a\n  b|\n x|abc"
    );
    assert_eq!(
        run(
            r#"{{repeat 3 "ab"}} {{substr 1 3 "hello"}} {{substr -1 2 "hello"}} {{substr 2 99 "hello"}}"#
        ),
        "ababab el he llo"
    );
    assert_eq!(
        run(r#"{{trunc 3 "hello"}} {{trunc -2 "hello"}} {{trunc 9 "hi"}}"#),
        "hel lo hi"
    );
    assert!(fail(r#"{{substr 4 2 "hello"}}"#)
        .ends_with("error calling substr: runtime error: slice bounds out of range [4:2]"));
    assert_eq!(
        run(r#"{{b64enc "hi!"}} {{b64dec "aGkh"}} {{b32enc "hi"}} {{b32dec "NBUQ===="}}"#),
        "aGkh hi! NBUQ==== hi"
    );
    assert_eq!(
        run(r#"{{plural "one" "many" 1}} {{plural "one" "many" 2}} {{toString 12}} {{hello}}"#),
        "one many 12 Hello!"
    );
}

#[test]
fn lists_of_strings() {
    assert_eq!(
        run(
            r#"{{join "," (list 1 "a" nil)}} {{split "," "a,b"}} {{splitList "," "a,b,c"}} {{splitn "," 2 "a,b,c"}}"#
        ),
        "1,a map[_0:a _1:b] [a b c] map[_0:a _1:b,c]"
    );
    assert_eq!(
        run(
            r#"{{(split "," "a,b")._1}} {{toStrings (list 1 2)}} {{sortAlpha (list "b" "a" "c")}}"#
        ),
        "b [1 2] [a b c]"
    );
    assert_eq!(run(r#"{{join "-" (splitList "" "abc")}}"#), "a-b-c");
}

#[test]
fn numbers() {
    assert_eq!(
        run("{{until 3}} {{untilStep 0 10 3}} {{untilStep 5 0 -2}} {{until -2}}"),
        "[0 1 2] [0 3 6 9] [5 3 1] [0 -1]"
    );
    assert_eq!(
        run("{{seq 3}}|{{seq 2 4}}|{{seq 5 -2 1}}|{{seq 0}}"),
        "1 2 3|2 3 4|5 3 1|1 0"
    );
    assert_eq!(
        run("{{add 1 2 3}} {{sub 5 7}} {{mul 2 3 4}} {{div 7 2}} {{mod 7 3}} {{add1 4}}"),
        "6 -2 24 3 1 5"
    );
    assert_eq!(
        run(r#"{{max 1 5 3}} {{min 4 -1}} {{maxf 1 2.5}} {{minf 1 2.5}} {{add "2" 1.9}}"#),
        "5 -1 2.5 1 3"
    );
    assert_eq!(
        run("{{floor 1.5}} {{ceil 1.2}} {{round 3.14159 2}} {{round 2.5 0}}"),
        "1 2 3.14 3"
    );
    assert_eq!(
        run(
            r#"{{atoi "42"}} {{atoi "x"}} {{int "0x10"}} {{int64 "1.0"}} {{int "08"}} {{float64 "1.5"}} {{int 3.9}}"#
        ),
        "42 0 16 1 0 1.5 3"
    );
    assert!(
        fail("{{div 1 0}}").ends_with("error calling div: runtime error: integer divide by zero")
    );
    assert_eq!(run("{{toDecimal \"777\"}}"), "511");
}

#[test]
fn defaults_and_flow() {
    assert_eq!(
        run(r#"{{default "d" ""}} {{default "d" "x"}} {{"" | default "p"}} {{default 5 0}}"#),
        "d x p 5"
    );
    assert_eq!(
        run(
            r#"{{empty ""}} {{empty 0}} {{empty (list)}} {{empty "a"}} {{coalesce "" 0 "c"}} {{coalesce ""}}"#
        ),
        "true true true false c <no value>"
    );
    assert_eq!(
        run(r#"{{ternary "a" "b" true}} {{ternary "a" "b" false}} {{all 1 "a"}} {{any 0 ""}}"#),
        "a b true false"
    );
    assert_eq!(
        fail(r#"{{fail "boom"}}"#),
        "template: :1:2: executing \"\" at <fail \"boom\">: error calling fail: boom"
    );
}

#[test]
fn dicts() {
    assert_eq!(
        run(
            r#"{{$d := dict "a" 1}}{{$_ := set $d "b" 2}}{{$d}} {{get $d "a"}}{{get $d "z"}} {{hasKey $d "b"}}"#
        ),
        "map[a:1 b:2] 1 true"
    );
    assert_eq!(
        run(r#"{{$d := dict "a" 1 "b" 2}}{{keys $d}} {{values $d}} {{unset $d "a"}} {{dict "x"}}"#),
        "[a b] [1 2] map[b:2] map[x:]"
    );
    assert_eq!(
        run(
            r#"{{pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3)}} {{pick (dict "a" 1 "b" 2) "b"}} {{omit (dict "a" 1 "b" 2) "b"}}"#
        ),
        "[1 3] map[b:2] map[a:1]"
    );
    assert_eq!(
        run(
            r#"{{dig "a" "b" "def" (dict "a" (dict "b" 7))}} {{dig "a" "x" "def" (dict "a" (dict "b" 7))}}"#
        ),
        "7 def"
    );
}

#[test]
fn lists() {
    assert_eq!(run("{{first (list 1 2)}} {{last (list 1 2)}} {{rest (list 1 2 3)}} {{initial (list 1 2 3)}} {{first (list)}}"), "1 2 [2 3] [1 2] <no value>");
    assert_eq!(
        run(
            "{{uniq (list 1 1 2 1)}} {{without (list 1 2 3) 2}} {{has 2 (list 1 2)}} {{has 2 nil}}"
        ),
        "[1 2] [1 3] true false"
    );
    assert_eq!(run("{{append (list 1) 2}} {{prepend (list 1) 0}} {{concat (list 1) (list 2 3)}} {{compact (list 0 1 \"\" 2)}} {{reverse (list 1 2 3)}}"), "[1 2] [0 1] [1 2 3] [1 2] [3 2 1]");
    assert_eq!(run("{{slice (list 1 2 3) 1}} {{slice (list 1 2 3) 0 2}} {{chunk 2 (list 1 2 3)}} {{deepCopy (list (dict))}}"), "[2 3] [1 2] [[1 2] [3]] [map[]]");
    assert!(fail(r#"{{first "abc"}}"#)
        .ends_with("error calling first: Cannot find first on type string"));
    assert!(fail(r#"{{slice "abc" 1}}"#)
        .ends_with("error calling slice: list should be type of slice or array but string"));
    assert!(fail(r#"{{first nil}}"#)
        .ends_with("runtime error: invalid memory address or nil pointer dereference"));
}

#[test]
fn regexes() {
    assert_eq!(
        run(
            r#"{{regexMatch "^[a-z]+\\d$" "abc1"}} {{regexMatch "(" "x"}} {{regexMatch "\\d" "٣"}}"#
        ),
        "true false false"
    );
    assert_eq!(
        run(
            r#"{{regexFind "b+" "abbbc"}} {{regexFindAll "a." "aXaYaZ" -1}} {{regexFindAll "a." "aXaYaZ" 2}} {{regexFindAll "a*" "baaa" -1}}"#
        ),
        "bbb [aX aY aZ] [aX aY] [ aaa]"
    );
    assert_eq!(
        run(
            r#"{{regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W"}} {{regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W"}} {{regexReplaceAllLiteral "a(x*)b" "-ab-" "$1"}}"#
        ),
        "-W-xxW- --- -$1-"
    );
    assert_eq!(
        run(
            r#"{{regexReplaceAll "a*" "baaac" "-"}} {{regexSplit "z+" "pizza" -1}} {{regexSplit "" "abc" -1}} {{regexQuoteMeta "a.b*c"}}"#
        ),
        "-b-c- [pi a] [a b c] a\\.b\\*c"
    );
    assert!(fail(r#"{{regexFind "(" "x"}}"#)
        .contains("error calling regexFind: regexp: Compile(`(`): error parsing regexp"));
    assert!(fail(r#"{{mustRegexMatch "(" "x"}}"#)
        .contains("error calling mustRegexMatch: error parsing regexp"));
}

#[test]
fn json_and_reflection() {
    assert_eq!(
        run(r#"{{toJson (dict "b" (list 1 "<x>" 2.5 nil) "a" true)}}"#),
        r#"{"a":true,"b":[1,"\u003cx\u003e",2.5,null]}"#
    );
    assert_eq!(
        run(r#"{{toRawJson (list "<")}} {{toJson 1e21}} {{toJson 0.0000001}}"#),
        r#"["<"] 1e+21 1e-7"#
    );
    assert_eq!(
        run(r#"{{toPrettyJson (dict "a" (list 1))}}"#),
        "{\n  \"a\": [\n    1\n  ]\n}"
    );
    assert_eq!(
        run(r#"{{(fromJson "{\"a\":[1,2]}").a}} {{fromJson "nope"}}"#),
        "[1 2] <no value>"
    );
    assert_eq!(
        run(
            r#"{{typeOf 1}} {{typeOf (list)}} {{kindOf (dict)}} {{kindIs "string" "x"}} {{typeIs "int64" (add 1)}} {{deepEqual (list 1) (list 1)}}"#
        ),
        "int []interface {} map true true true"
    );
}
