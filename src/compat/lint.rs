//! Every JSON syntax problem of a document at once, each located, for the mistakes people make
//! pasting JSON by hand (a comma missing or left over, a brace not closed, a key twice), where
//! a JSON reader stops at the first.
//!
//! A single pass over tokens with a stack of open containers; after a problem it carries on as
//! if the likely fix were made (the comma there, the extra one gone), so one slip gives one
//! message. It only finds problems: the document is read by `serde_json` once it has none.

use std::collections::HashMap;

/// One problem, 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Stop after this many: past it the text is likely not JSON at all.
const MAX_PROBLEMS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Open(char),
    Close(char),
    Colon,
    Comma,
    /// A string; `true` when it is not terminated.
    Str,
    /// A number or a literal (`true`, `false`, `null`), or a word that is neither.
    Word,
    /// A character JSON does not have here.
    Stray(char),
}

#[derive(Debug, Clone, Copy)]
struct At {
    line: usize,
    col: usize,
}

struct Token<'a> {
    tok: Tok,
    text: &'a str,
    start: At,
    /// Just past the token's last character.
    end: At,
}

/// Splits `text` into tokens with positions.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut col = 1;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let start = At { line, col };
        col += 1;
        let tok = match c {
            '\n' => {
                line += 1;
                col = 1;
                continue;
            }
            ' ' | '\t' | '\r' => continue,
            '{' | '[' => Tok::Open(c),
            '}' | ']' => Tok::Close(c),
            ':' => Tok::Colon,
            ',' => Tok::Comma,
            '"' => {
                let mut escaped = false;
                let mut closed = false;
                for (_, c) in it.by_ref() {
                    if c == '\n' {
                        // A string cannot hold a newline: take it as unterminated here.
                        line += 1;
                        col = 1;
                        break;
                    }
                    col += 1;
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    out.push(Token {
                        tok: Tok::Stray('"'),
                        text: "\"",
                        start,
                        end: At { line, col },
                    });
                    continue;
                }
                Tok::Str
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.') => {
                while let Some(&(_, n)) = it.peek() {
                    if !(n.is_ascii_alphanumeric() || matches!(n, '-' | '+' | '.' | '_')) {
                        break;
                    }
                    it.next();
                    col += 1;
                }
                Tok::Word
            }
            other => Tok::Stray(other),
        };
        let end_byte = it.peek().map_or(text.len(), |&(j, _)| j);
        out.push(Token {
            tok,
            text: &text[i..end_byte],
            start,
            end: At { line, col },
        });
    }
    out
}

fn is_json_word(w: &str) -> bool {
    matches!(w, "true" | "false" | "null") || serde_json::from_str::<serde_json::Number>(w).is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (the top, after `:`, in a list).
    Value,
    /// An object's key or its end (just opened).
    KeyOrEnd,
    /// An object's key (after a comma).
    Key,
    Colon,
    /// `,` or the container's end, after a member.
    CommaOrEnd,
    /// Nothing more: the top value is complete.
    Done,
}

struct Frame {
    open: char,
    at: At,
    keys: HashMap<String, At>,
    /// The comma just read, for a trailing-comma message.
    comma: Option<At>,
}

/// Every syntax problem of `text`, in order (at most [`MAX_PROBLEMS`]). Empty when the text
/// is JSON as far as this pass sees (it does not check string escapes).
pub fn problems(text: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut push = |at: At, message: String| {
        if out.len() < MAX_PROBLEMS {
            out.push(Problem {
                line: at.line,
                col: at.col,
                message,
            });
        }
    };
    let toks = tokens(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect = Expect::Value;
    // The end of the last value or key read, where a missing comma goes.
    let mut last_end = At { line: 1, col: 1 };
    let after_value = |stack: &[Frame]| {
        if stack.is_empty() {
            Expect::Done
        } else {
            Expect::CommaOrEnd
        }
    };
    for t in &toks {
        // A key or a value where `,` was due: the comma is missing. Carry on as if it were
        // there.
        if expect == Expect::CommaOrEnd && matches!(t.tok, Tok::Str | Tok::Word | Tok::Open(_)) {
            push(last_end, "missing `,` before the next member".into());
            expect = if stack.last().is_some_and(|f| f.open == '{') {
                Expect::Key
            } else {
                Expect::Value
            };
        }
        match (t.tok, expect) {
            (Tok::Stray(c), _) => {
                let why = match c {
                    '\'' => "strings take double quotes in JSON".to_string(),
                    '/' | '#' => "JSON has no comments".to_string(),
                    '"' => "unterminated string".to_string(),
                    c => format!("unexpected character `{}`", c.escape_debug()),
                };
                push(t.start, why);
            }
            (_, Expect::Done) => {
                push(t.start, "more after the document's end".into());
                break;
            }
            (
                Tok::Close(c),
                Expect::KeyOrEnd | Expect::CommaOrEnd | Expect::Key | Expect::Value,
            ) if !stack.is_empty() => {
                let f = stack.pop().expect("checked");
                if matches!(expect, Expect::Key | Expect::Value) {
                    if let Some(comma) = f.comma {
                        push(comma, format!("trailing comma before `{c}`"));
                    } else if expect == Expect::Value && f.open == '{' {
                        push(t.start, format!("a value is missing before `{c}`"));
                    }
                }
                let want = if f.open == '{' { '}' } else { ']' };
                if c != want {
                    push(
                        t.start,
                        format!(
                            "`{c}` closes the `{}` opened at {}:{}: expected `{want}`",
                            f.open, f.at.line, f.at.col
                        ),
                    );
                }
                last_end = t.end;
                expect = after_value(&stack);
            }
            (Tok::Close(c), _) => push(t.start, format!("unexpected `{c}`")),
            (Tok::Comma, Expect::CommaOrEnd) => {
                if let Some(f) = stack.last_mut() {
                    f.comma = Some(t.start);
                    expect = if f.open == '{' {
                        Expect::Key
                    } else {
                        Expect::Value
                    };
                }
            }
            (Tok::Comma, _) => push(t.start, "unexpected `,`".into()),
            (Tok::Colon, Expect::Colon) => expect = Expect::Value,
            (Tok::Colon, _) => push(t.start, "unexpected `:`".into()),
            (Tok::Str, Expect::Key | Expect::KeyOrEnd) => {
                let key = serde_json::from_str::<String>(t.text).unwrap_or_default();
                if let Some(f) = stack.last_mut() {
                    if let Some(first) = f.keys.get(&key) {
                        push(
                            t.start,
                            format!(
                                "duplicate key {} (first at {}:{}): which one counts is not defined",
                                t.text, first.line, first.col
                            ),
                        );
                    } else {
                        f.keys.insert(key, t.start);
                    }
                    f.comma = None;
                }
                last_end = t.end;
                expect = Expect::Colon;
            }
            (Tok::Word, Expect::Key | Expect::KeyOrEnd) => {
                push(
                    t.start,
                    format!("a key must be a string in double quotes: \"{}\"", t.text),
                );
                last_end = t.end;
                expect = Expect::Colon;
            }
            (Tok::Open(_) | Tok::Str | Tok::Word, Expect::Colon) => {
                push(last_end, "missing `:` after the key".into());
                // Read the token as the value.
                if let Tok::Open(c) = t.tok {
                    stack.push(frame(c, t.start));
                    expect = if c == '{' {
                        Expect::KeyOrEnd
                    } else {
                        Expect::Value
                    };
                } else {
                    last_end = t.end;
                    expect = after_value(&stack);
                }
            }
            (Tok::Open(c), Expect::Value) => {
                if let Some(f) = stack.last_mut() {
                    f.comma = None;
                }
                stack.push(frame(c, t.start));
                expect = if c == '{' {
                    Expect::KeyOrEnd
                } else {
                    Expect::Value
                };
            }
            (Tok::Str | Tok::Word, Expect::Value) => {
                if t.tok == Tok::Word && !is_json_word(t.text) {
                    push(
                        t.start,
                        format!(
                            "`{}` is not a JSON value (a string takes double quotes)",
                            t.text
                        ),
                    );
                }
                if let Some(f) = stack.last_mut() {
                    f.comma = None;
                }
                last_end = t.end;
                expect = after_value(&stack);
            }
            (Tok::Open(c), _) => push(t.start, format!("unexpected `{c}`")),
            (Tok::Str | Tok::Word, _) => push(t.start, "unexpected value".into()),
        }
    }
    let end = toks.last().map_or(At { line: 1, col: 1 }, |t| t.end);
    if toks.is_empty() {
        push(end, "empty document".into());
    }
    for f in stack.iter().rev() {
        let close = if f.open == '{' { '}' } else { ']' };
        push(
            end,
            format!(
                "the `{}` opened at {}:{} is never closed: `{close}` missing",
                f.open, f.at.line, f.at.col
            ),
        );
    }
    out
}

fn frame(open: char, at: At) -> Frame {
    Frame {
        open,
        at,
        keys: HashMap::new(),
        comma: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> Vec<String> {
        problems(text)
            .into_iter()
            .map(|p| format!("{}:{}: {}", p.line, p.col, p.message))
            .collect()
    }

    #[test]
    fn valid_json_has_no_problem() {
        for t in [
            "{}",
            "[]",
            r#"{"a": [1, 2.5e3, -1, true, false, null, "x\"y"], "b": {"c": {}}}"#,
            "  \"s\"  ",
        ] {
            assert_eq!(shown(t), Vec::<String>::new(), "{t}");
        }
    }

    #[test]
    fn each_slip_gets_one_located_message() {
        let t = "{\n  \"a\": 1\n  \"b\": 2,\n  \"c\": [1, 2,],\n  \"a\": 'x'\n";
        assert_eq!(
            shown(t),
            [
                "2:9: missing `,` before the next member",
                "4:13: trailing comma before `]`",
                "5:3: duplicate key \"a\" (first at 2:3): which one counts is not defined",
                "5:8: strings take double quotes in JSON",
                "5:9: `x` is not a JSON value (a string takes double quotes)",
                "5:10: strings take double quotes in JSON",
                "5:11: the `{` opened at 1:1 is never closed: `}` missing",
            ]
        );
    }

    #[test]
    fn more_slips() {
        assert_eq!(shown("{\"a\" 1}"), ["1:5: missing `:` after the key"]);
        assert_eq!(
            shown("{a: 1}"),
            ["1:2: a key must be a string in double quotes: \"a\""]
        );
        assert_eq!(shown("{\"a\": 1}}"), ["1:9: more after the document's end"]);
        assert_eq!(
            shown("{\"a\": [1}"),
            [
                "1:9: `}` closes the `[` opened at 1:7: expected `]`",
                "1:10: the `{` opened at 1:1 is never closed: `}` missing"
            ]
        );
        assert_eq!(shown(""), ["1:1: empty document"]);
        assert_eq!(
            shown("{\"a\": \"x}"),
            [
                "1:7: unterminated string",
                "1:10: the `{` opened at 1:1 is never closed: `}` missing"
            ]
        );
    }

    #[test]
    fn problems_are_capped() {
        let t = "[".to_string() + &"1 ".repeat(1000) + "]";
        assert_eq!(problems(&t).len(), MAX_PROBLEMS);
    }
}
