//! Sprig's regex functions over Go's regexp semantics (RE2 syntax, leftmost-first).
//!
//! Patterns go to the regex crate after translating what differs: Go's `\d \w \s \b` are
//! ASCII-only and `\Q..\E` quotes. Match iteration, `Split` and `ReplaceAll` (with `$1`,
//! `${name}` expansion) are ported from Go so empty matches fall where Go puts them.
//! Compile errors carry the regex crate's wording, not Go's.

use regex::Regex;

use super::funcs::Fail;
use super::sprig::{check_items, check_len};
use super::uni;
use super::value::Value;
use super::Limits;

type R = Result<Value, Fail>;

fn class_body(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "0-9",
        'w' => "0-9A-Za-z_",
        's' => "\\t\\n\\x0C\\r ",
        _ => return None,
    })
}

/// Go RE2 syntax to the regex crate's, keeping Go's meaning.
fn translate(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut in_class = false;
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                if e == 'Q' {
                    let mut lit = String::new();
                    while let Some(x) = chars.next() {
                        if x == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        lit.push(x);
                    }
                    out.push_str(&regex::escape(&lit));
                    continue;
                }
                let lower = e.to_ascii_lowercase();
                match (class_body(lower), e.is_ascii_uppercase(), in_class) {
                    (Some(b), false, false) => out.push_str(&format!("[{b}]")),
                    (Some(b), true, false) => out.push_str(&format!("[^{b}]")),
                    (Some(b), false, true) => out.push_str(b),
                    (Some(b), true, true) => out.push_str(&format!("[^{b}]")),
                    (None, _, false) if e == 'b' => out.push_str(r"(?-u:\b)"),
                    (None, _, false) if e == 'B' => out.push_str(r"(?-u:\B)"),
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str(r"\]");
                }
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // A POSIX class like [:alpha:] inside a bracket expression.
                out.push('[');
                for x in chars.by_ref() {
                    out.push(x);
                    if x == ']' {
                        break;
                    }
                }
            }
            '[' => out.push_str(r"\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

fn compile(p: &str) -> Result<Regex, String> {
    Regex::new(&translate(p)).map_err(|e| {
        let msg = e.to_string();
        let last = msg
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        format!(
            "error parsing regexp: {}",
            last.trim_start_matches("error: ")
        )
    })
}

/// `regexp.MustCompile`'s panic text.
fn must_compile(p: &str) -> Result<Regex, Fail> {
    compile(p).map_err(|e| {
        let q = if p.contains('`') {
            uni::quote(p)
        } else {
            format!("`{p}`")
        };
        Fail::go(format!("regexp: Compile({q}): {e}"))
    })
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn n(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

/// Go's `allMatches`: no empty match right after a previous match.
fn all_matches(re: &Regex, text: &str, n: i64) -> Vec<(usize, usize)> {
    let limit = if n < 0 { usize::MAX } else { n as usize };
    let mut out = Vec::new();
    let (mut pos, mut prev_end) = (0usize, None::<usize>);
    while out.len() < limit && pos <= text.len() {
        let Some(m) = re.find_at(text, pos) else {
            break;
        };
        let mut accept = true;
        if m.end() == pos {
            if Some(m.start()) == prev_end {
                accept = false;
            }
            pos += text[pos..].chars().next().map_or(1, |c| c.len_utf8());
        } else {
            pos = m.end();
        }
        prev_end = Some(m.end());
        if accept {
            out.push((m.start(), m.end()));
        }
    }
    out
}

pub(crate) fn regex_match(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(
        compile(s(&a[0])).is_ok_and(|re| re.is_match(s(&a[1]))),
    ))
}

pub(crate) fn must_regex_match(_: &Limits, a: Vec<Value>) -> R {
    let re = compile(s(&a[0])).map_err(Fail::Go)?;
    Ok(Value::Bool(re.is_match(s(&a[1]))))
}

pub(crate) fn find_all(lim: &Limits, a: Vec<Value>) -> R {
    let re = must_compile(s(&a[0]))?;
    let text = s(&a[1]);
    let ms = all_matches(&re, text, n(&a[2]));
    check_items(lim, ms.len() as u128)?;
    Ok(Value::strings(
        ms.iter().map(|&(x, y)| text[x..y].to_string()).collect(),
    ))
}

pub(crate) fn find(_: &Limits, a: Vec<Value>) -> R {
    let re = must_compile(s(&a[0]))?;
    Ok(Value::str(re.find(s(&a[1])).map_or("", |m| m.as_str())))
}

/// Go's `Regexp.expand` of `$1`, `${1}`, `$name`, `${name}` and `$$`.
fn expand(re: &Regex, template: &str, text: &str, caps: &regex::Captures, dst: &mut String) {
    let mut t = template;
    while let Some(i) = t.find('$') {
        dst.push_str(&t[..i]);
        t = &t[i + 1..];
        if let Some(rest) = t.strip_prefix('$') {
            dst.push('$');
            t = rest;
            continue;
        }
        let brace = t.starts_with('{');
        let body = if brace { &t[1..] } else { t };
        let len: usize = body
            .chars()
            .take_while(|c| *c == '_' || uni::is_letter(*c) || uni::is_digit(*c))
            .map(char::len_utf8)
            .sum();
        if len == 0 || (brace && !body[len..].starts_with('}')) {
            dst.push('$');
            continue;
        }
        let name = &body[..len];
        t = &body[len + usize::from(brace)..];
        let num = if name.bytes().all(|b| b.is_ascii_digit())
            && !(name.starts_with('0') && name.len() > 1)
            && name.len() < 9
        {
            name.parse::<usize>().ok()
        } else {
            None
        };
        let m = match num {
            Some(k) => caps.get(k),
            None => re
                .capture_names()
                .position(|c| c == Some(name))
                .and_then(|k| caps.get(k)),
        };
        if let Some(m) = m {
            dst.push_str(&text[m.start()..m.end()]);
        }
    }
    dst.push_str(t);
}

/// Go's `replaceAll` loop, with `repl` writing one replacement.
fn replace_loop(lim: &Limits, re: &Regex, src: &str, literal: Option<&str>, template: &str) -> R {
    let mut buf = String::new();
    let (mut last, mut search) = (0usize, 0usize);
    while search <= src.len() {
        let Some(caps) = re.captures_at(src, search) else {
            break;
        };
        let m = caps
            .get(0)
            .map(|m| (m.start(), m.end()))
            .unwrap_or((search, search));
        buf.push_str(&src[last..m.0]);
        if m.1 > last || m.0 == 0 {
            match literal {
                Some(l) => buf.push_str(l),
                None => expand(re, template, src, &caps, &mut buf),
            }
        }
        check_len(lim, buf.len() as u128)?;
        last = m.1;
        let width = src[search..].chars().next().map_or(0, char::len_utf8);
        if search + width > m.1 {
            search += width;
        } else if search + 1 > m.1 {
            search += 1;
        } else {
            search = m.1;
        }
    }
    buf.push_str(&src[last..]);
    check_len(lim, buf.len() as u128)?;
    Ok(Value::string(buf))
}

pub(crate) fn replace_all(lim: &Limits, a: Vec<Value>) -> R {
    let re = must_compile(s(&a[0]))?;
    replace_loop(lim, &re, s(&a[1]), None, s(&a[2]))
}

pub(crate) fn replace_all_literal(lim: &Limits, a: Vec<Value>) -> R {
    let re = must_compile(s(&a[0]))?;
    replace_loop(lim, &re, s(&a[1]), Some(s(&a[2])), "")
}

pub(crate) fn split(lim: &Limits, a: Vec<Value>) -> R {
    let re = must_compile(s(&a[0]))?;
    let (text, k) = (s(&a[1]), n(&a[2]));
    if k == 0 {
        return Ok(Value::List(std::rc::Rc::new(super::value::List::new(
            super::value::Type::slice(super::value::Type::String),
            Vec::new(),
            true,
        ))));
    }
    if !s(&a[0]).is_empty() && text.is_empty() {
        return Ok(Value::strings(vec![String::new()]));
    }
    let ms = all_matches(&re, text, k);
    let mut out: Vec<String> = Vec::new();
    let (mut beg, mut end) = (0usize, 0usize);
    for (x, y) in ms {
        if k > 0 && out.len() as i64 == k - 1 {
            break;
        }
        end = x;
        if y != 0 {
            out.push(text[beg..end].to_string());
        }
        beg = y;
    }
    if end != text.len() {
        out.push(text[beg..].to_string());
    }
    check_items(lim, out.len() as u128)?;
    Ok(Value::strings(out))
}

pub(crate) fn quote_meta(_: &Limits, a: Vec<Value>) -> R {
    // Go escapes exactly `\.+*?()|[]{}^$`.
    let mut out = String::new();
    for c in s(&a[0]).chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(Value::string(out))
}
