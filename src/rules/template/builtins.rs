//! text/template's builtin functions (funcs.go): index, len, comparisons, print and the
//! html/js/urlquery escapers, with Go's error texts.

use super::fmt::{sprint, sprintf, sprintln, FmtError};
use super::funcs::Fail;
use super::uni;
use super::value::{Kind, Value};
use super::Limits;

type R = Result<Value, Fail>;

impl From<FmtError> for Fail {
    fn from(e: FmtError) -> Fail {
        match e {
            FmtError::Limit(k, m) => Fail::Limit(k, m),
            FmtError::Unsupported(m) => Fail::Unsupported(m),
        }
    }
}

pub(crate) fn len(_: &Limits, a: Vec<Value>) -> R {
    match &a[0] {
        Value::Nil => Err(Fail::go("len of nil pointer")),
        Value::Invalid => Err(Fail::go(
            "reflect: call of reflect.Value.Type on zero Value",
        )),
        v => match v.len() {
            Some(n) => Ok(Value::Int(n as i64)),
            None => Err(Fail::go(format!("len of type {}", v.type_name()))),
        },
    }
}

fn index_arg(index: &Value, len: usize) -> Result<usize, Fail> {
    let x: i64 = match index {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Uint8(u) => *u as i64,
        Value::Invalid => return Err(Fail::go("cannot index slice/array with nil")),
        v => {
            return Err(Fail::go(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            )))
        }
    };
    if x < 0 || x as u64 > len as u64 {
        return Err(Fail::go(format!("index out of range: {x}")));
    }
    Ok(x as usize)
}

pub(crate) fn index(_: &Limits, a: Vec<Value>) -> R {
    let mut it = a.into_iter();
    let mut item = it.next().unwrap_or(Value::Invalid).indirect();
    if let Value::Invalid = item {
        return Err(Fail::go("index of untyped nil"));
    }
    for index in it {
        let index = index.indirect();
        item = match &item {
            Value::Nil => return Err(Fail::go("index of nil pointer")),
            Value::Str(s) => {
                let x = index_arg(&index, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Uint8(*b),
                    None => return Err(Fail::go("reflect: string index out of range")),
                }
            }
            Value::List(l) => {
                let items = l.items.borrow();
                let x = index_arg(&index, items.len())?;
                match items.get(x) {
                    Some(v) => v.clone(),
                    None => return Err(Fail::go("reflect: slice index out of range")),
                }
            }
            Value::Map(m) => {
                let key = match &index {
                    Value::Str(k) => k.clone(),
                    Value::Invalid => {
                        return Err(Fail::go("value is nil; should be of type string"))
                    }
                    v => {
                        return Err(Fail::go(format!(
                            "value has type {}; should be string",
                            v.type_name()
                        )))
                    }
                };
                let found = m.entries.borrow().get(&*key).cloned();
                match found {
                    Some(v) => v,
                    None => m.ty.elem().map(|t| t.zero()).unwrap_or(Value::Nil),
                }
            }
            v => {
                return Err(Fail::go(format!(
                    "can't index item of type {}",
                    v.type_name()
                )))
            }
        };
    }
    Ok(item)
}

fn printable(a: &[Value]) -> Vec<Value> {
    a.iter()
        .map(|v| match v {
            Value::Nil | Value::Invalid => Value::str("<no value>"),
            v => v.clone(),
        })
        .collect()
}

/// `evalArgs`: a lone string as is, else Sprint of the printable values.
fn eval_args(lim: &Limits, a: &[Value]) -> Result<String, Fail> {
    if let [Value::Str(s)] = a {
        return Ok(s.to_string());
    }
    Ok(sprint(&printable(a), lim)?)
}

pub(crate) fn print(lim: &Limits, a: Vec<Value>) -> R {
    Ok(Value::string(sprint(&a, lim)?))
}

pub(crate) fn println(lim: &Limits, a: Vec<Value>) -> R {
    Ok(Value::string(sprintln(&a, lim)?))
}

pub(crate) fn printf(lim: &Limits, a: Vec<Value>) -> R {
    let format = a[0].as_str().unwrap_or_default().to_string();
    Ok(Value::string(sprintf(&format, &a[1..], lim)?))
}

pub(crate) fn html(lim: &Limits, a: Vec<Value>) -> R {
    let s = eval_args(lim, &a)?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Ok(Value::string(out))
}

pub(crate) fn js(lim: &Limits, a: Vec<Value>) -> R {
    let s = eval_args(lim, &a)?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str(r"\u003C"),
            '>' => out.push_str(r"\u003E"),
            '&' => out.push_str(r"\u0026"),
            '=' => out.push_str(r"\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!(r"\u00{:02X}", c as u32)),
            c if c.is_ascii() => out.push(c),
            c if uni::is_print(c) => out.push(c),
            c => out.push_str(&format!(r"\u{:04X}", c as u32)),
        }
    }
    Ok(Value::string(out))
}

pub(crate) fn urlquery(lim: &Limits, a: Vec<Value>) -> R {
    let s = eval_args(lim, &a)?;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    Ok(Value::string(out))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BK {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    Str,
}

fn basic_kind(v: &Value) -> BK {
    match v {
        Value::Bool(_) => BK::Bool,
        Value::Int(_) | Value::Int64(_) => BK::Int,
        Value::Uint8(_) => BK::Uint,
        Value::Float(_) => BK::Float,
        Value::Str(_) => BK::Str,
        _ => BK::Invalid,
    }
}

fn int_of(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Uint8(u) => *u as i64,
        _ => 0,
    }
}

fn is_nil(v: &Value) -> bool {
    match v {
        Value::Invalid | Value::Nil => true,
        Value::List(l) => l.is_nil,
        Value::Map(m) => m.is_nil,
        _ => false,
    }
}

fn show(v: &Value) -> String {
    sprint(std::slice::from_ref(v), &Limits::default()).unwrap_or_default()
}

fn eq_values(a1: &Value, rest: &[Value]) -> Result<bool, Fail> {
    let a1 = a1.clone().indirect();
    if rest.is_empty() {
        return Err(Fail::go("missing argument for comparison"));
    }
    let k1 = basic_kind(&a1);
    for arg in rest {
        let arg = arg.clone().indirect();
        let k2 = basic_kind(&arg);
        let truth = if k1 != k2 {
            match (k1, k2) {
                (BK::Int, BK::Uint) | (BK::Uint, BK::Int) => int_of(&a1) == int_of(&arg),
                _ => {
                    if !matches!(a1, Value::Invalid) && !matches!(arg, Value::Invalid) {
                        return Err(Fail::go(format!(
                            "incompatible types for comparison: {} and {}",
                            a1.type_name(),
                            arg.type_name()
                        )));
                    }
                    false
                }
            }
        } else {
            match (&a1, &arg) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                _ if k1 == BK::Int || k1 == BK::Uint => int_of(&a1) == int_of(&arg),
                _ => {
                    let (ka, kb) = (a1.kind(), arg.kind());
                    if ka != kb && ka != Kind::Invalid && kb != Kind::Invalid {
                        return Err(Fail::go(format!(
                            "non-comparable types {}: {}, {}: {}",
                            show(&a1),
                            a1.type_name(),
                            arg.type_name(),
                            show(&arg)
                        )));
                    }
                    if is_nil(&a1) || is_nil(&arg) {
                        is_nil(&a1) == is_nil(&arg)
                    } else {
                        return Err(Fail::go(format!(
                            "non-comparable type {}: {}",
                            show(&arg),
                            arg.type_name()
                        )));
                    }
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt_values(a1: &Value, a2: &Value) -> Result<bool, Fail> {
    let (a1, a2) = (a1.clone().indirect(), a2.clone().indirect());
    let (k1, k2) = (basic_kind(&a1), basic_kind(&a2));
    if k1 == BK::Invalid || k2 == BK::Invalid {
        return Err(Fail::go("invalid type for comparison"));
    }
    if k1 != k2 {
        return match (k1, k2) {
            (BK::Int, BK::Uint) | (BK::Uint, BK::Int) => Ok(int_of(&a1) < int_of(&a2)),
            _ => Err(Fail::go(format!(
                "incompatible types for comparison: {} and {}",
                a1.type_name(),
                a2.type_name()
            ))),
        };
    }
    Ok(match (&a1, &a2) {
        (Value::Bool(_), _) => return Err(Fail::go("invalid type for comparison")),
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        _ => int_of(&a1) < int_of(&a2),
    })
}

pub(crate) fn eq(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(eq_values(&a[0], &a[1..])?))
}

pub(crate) fn ne(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(!eq_values(&a[0], &a[1..])?))
}

pub(crate) fn lt(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(lt_values(&a[0], &a[1])?))
}

pub(crate) fn le(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(
        lt_values(&a[0], &a[1])? || eq_values(&a[0], &a[1..])?,
    ))
}

pub(crate) fn gt(_: &Limits, a: Vec<Value>) -> R {
    let le = lt_values(&a[0], &a[1])? || eq_values(&a[0], &a[1..])?;
    Ok(Value::Bool(!le))
}

pub(crate) fn ge(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(!lt_values(&a[0], &a[1])?))
}
