//! Go's `encoding/json` Marshal of template values, for sprig's toJson family.
//!
//! Go's output, not serde's: sorted keys, `<>&` escaped as `\u003c` unless raw, nil slices
//! and maps as `null`, floats in Go's `'f'`/`'e'` choice, NaN and Inf refused. A cycle made
//! with `set` is refused like Go's cycle check; nesting is bounded by the depth limit.

use std::collections::HashSet;

use super::fmt::format_float;
use super::funcs::Fail;
use super::value::Value;
use super::{LimitKind, Limits};

struct Enc<'l> {
    out: String,
    raw: bool,
    pretty: bool,
    seen: HashSet<usize>,
    lim: &'l Limits,
}

/// Ok(Ok(json)), Ok(Err(Go's json error)), or Err for a limit.
pub(crate) fn marshal(
    v: &Value,
    raw: bool,
    pretty: bool,
    lim: &Limits,
) -> Result<Result<String, String>, Fail> {
    let mut e = Enc {
        out: String::new(),
        raw,
        pretty,
        seen: HashSet::new(),
        lim,
    };
    match e.value(v, 0) {
        Ok(()) => Ok(Ok(e.out)),
        Err(Err::Go(m)) => Ok(Err(m)),
        Err(Err::Limit(f)) => Err(f),
    }
}

/// A `must*` result: the JSON, or the Go error as the call's error.
pub(crate) fn must(r: Result<String, String>) -> Result<Value, Fail> {
    r.map(Value::string).map_err(Fail::Go)
}

enum Err {
    Go(String),
    Limit(Fail),
}

impl Enc<'_> {
    fn newline(&mut self, depth: usize) {
        if self.pretty {
            self.out.push('\n');
            self.out.push_str(&"  ".repeat(depth));
        }
    }

    fn check(&self, depth: usize) -> Result<(), Err> {
        if depth > self.lim.max_depth {
            return Err(Err::Limit(Fail::Limit(
                LimitKind::Depth,
                format!("JSON nests deeper than {} levels", self.lim.max_depth),
            )));
        }
        if self.out.len() > self.lim.max_string_bytes {
            return Err(Err::Limit(Fail::Limit(
                LimitKind::StringBytes,
                format!("JSON longer than {} bytes", self.lim.max_string_bytes),
            )));
        }
        Ok(())
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<(), Err> {
        self.check(depth)?;
        match v {
            Value::Invalid | Value::Nil => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) | Value::Int64(i) => self.out.push_str(&i.to_string()),
            Value::Uint8(u) => self.out.push_str(&u.to_string()),
            Value::Float(f) => {
                if !f.is_finite() {
                    let t = if f.is_nan() {
                        "NaN".to_string()
                    } else {
                        format_float(*f, 'g', -1)
                    };
                    return Err(Err::Go(format!("json: unsupported value: {t}")));
                }
                let a = f.abs();
                let e = a != 0.0 && !(1e-6..1e21).contains(&a);
                let mut s = format_float(*f, if e { 'e' } else { 'f' }, -1);
                if e {
                    // Go cleans e-09 to e-9.
                    let b = s.as_bytes();
                    let n = b.len();
                    if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
                        s.remove(n - 2);
                    }
                }
                self.out.push_str(&s);
            }
            Value::Str(s) => self.string(s),
            Value::List(l) => {
                if l.is_nil {
                    self.out.push_str("null");
                    return Ok(());
                }
                let key = std::rc::Rc::as_ptr(l) as usize;
                if !self.seen.insert(key) {
                    return Err(Err::Go(
                        "json: unsupported value: encountered a cycle".into(),
                    ));
                }
                let items = l.items.borrow().clone();
                self.out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    self.value(x, depth + 1)?;
                }
                if !items.is_empty() {
                    self.newline(depth);
                }
                self.out.push(']');
                self.seen.remove(&key);
            }
            Value::Map(m) => {
                if m.is_nil {
                    self.out.push_str("null");
                    return Ok(());
                }
                let key = std::rc::Rc::as_ptr(m) as usize;
                if !self.seen.insert(key) {
                    return Err(Err::Go(
                        "json: unsupported value: encountered a cycle".into(),
                    ));
                }
                let entries: Vec<(String, Value)> = m
                    .entries
                    .borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.out.push('{');
                for (i, (k, x)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    self.string(k);
                    self.out.push(':');
                    if self.pretty {
                        self.out.push(' ');
                    }
                    self.value(x, depth + 1)?;
                }
                if !entries.is_empty() {
                    self.newline(depth);
                }
                self.out.push('}');
                self.seen.remove(&key);
            }
        }
        Ok(())
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                '<' | '>' | '&' if !self.raw => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                '\u{2028}' | '\u{2029}' => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}
