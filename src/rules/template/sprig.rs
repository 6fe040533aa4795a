//! Sprig v3.3.0's string, conversion, arithmetic and default functions (strings.go,
//! numeric.go, defaults.go, spf13/cast v1.7.0), sized by the limits before they allocate.

use std::collections::BTreeMap;

use base64::Engine;

use super::fmt::{sprint, sprintf};
use super::funcs::Fail;
use super::value::{Kind, Value};
use super::{LimitKind, Limits};

type R = Result<Value, Fail>;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn i(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        _ => 0,
    }
}

pub(crate) fn check_len(lim: &Limits, bytes: u128) -> Result<(), Fail> {
    if bytes > lim.max_string_bytes as u128 {
        return Err(Fail::Limit(
            LimitKind::StringBytes,
            format!(
                "a string of {bytes} bytes is longer than {}",
                lim.max_string_bytes
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_items(lim: &Limits, n: u128) -> Result<(), Fail> {
    if n > lim.max_list_len as u128 {
        return Err(Fail::Limit(
            LimitKind::ListLen,
            format!("a list of {n} elements is longer than {}", lim.max_list_len),
        ));
    }
    Ok(())
}

/// A byte range of `s` as a string; Go would carry a split UTF-8 sequence, Rust cannot.
fn byte_slice(s: &str, a: usize, b: usize) -> R {
    match s.get(a..b) {
        Some(t) => Ok(Value::str(t)),
        None => Err(Fail::Unsupported(format!(
            "slicing {} at bytes {a}..{b} splits a UTF-8 character, which image-compat cannot represent",
            super::uni::quote(s)
        ))),
    }
}

pub(crate) fn trunc(_: &Limits, a: Vec<Value>) -> R {
    let (c, st) = (i(&a[0]), s(&a[1]));
    let n = st.len() as i64;
    if c < 0 && n + c > 0 {
        return byte_slice(st, (n + c) as usize, st.len());
    }
    if c >= 0 && n > c {
        return byte_slice(st, 0, c as usize);
    }
    Ok(Value::str(st))
}

pub(crate) fn trim(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::str(s(&a[0]).trim_matches(super::uni::is_space)))
}

/// Go's per-rune simple case mapping (no `ß` -> `SS`).
fn map_case(st: &str, upper: bool) -> String {
    st.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 {
                m.pop().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

pub(crate) fn upper(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::string(map_case(s(&a[0]), true)))
}

pub(crate) fn lower(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::string(map_case(s(&a[0]), false)))
}

/// `strings.Title`: upper-cases letters that follow a separator (Go's `isSeparator`).
pub(crate) fn title(_: &Limits, a: Vec<Value>) -> R {
    let is_sep = |c: char| {
        if c.is_ascii() {
            return !(c.is_ascii_alphanumeric() || c == '_');
        }
        if super::uni::is_letter(c) || super::uni::is_digit(c) {
            return false;
        }
        super::uni::is_space(c)
    };
    let mut prev = ' ';
    let out: String = s(&a[0])
        .chars()
        .map(|c| {
            let r = if is_sep(prev) {
                map_case(&c.to_string(), true)
            } else {
                c.to_string()
            };
            prev = c;
            r
        })
        .collect();
    Ok(Value::string(out))
}

/// goutils `Uncapitalize`: lower-cases the first rune of each space-separated word.
pub(crate) fn untitle(_: &Limits, a: Vec<Value>) -> R {
    let mut prev_space = true;
    let out: String = s(&a[0])
        .chars()
        .map(|c| {
            let r = if prev_space {
                map_case(&c.to_string(), false)
            } else {
                c.to_string()
            };
            prev_space = super::uni::is_space(c);
            r
        })
        .collect();
    Ok(Value::string(out))
}

fn slice_panic(a: i64, b: i64, cap: i64) -> Fail {
    if b < 0 {
        Fail::go(format!("runtime error: slice bounds out of range [:{b}]"))
    } else if b > cap {
        Fail::go(format!(
            "runtime error: slice bounds out of range [:{b}] with length {cap}"
        ))
    } else {
        Fail::go(format!(
            "runtime error: slice bounds out of range [{a}:{b}]"
        ))
    }
}

pub(crate) fn substr(_: &Limits, a: Vec<Value>) -> R {
    let (start, end, st) = (i(&a[0]), i(&a[1]), s(&a[2]));
    let n = st.len() as i64;
    let (lo, hi) = if start < 0 {
        (0, end)
    } else if end < 0 || end > n {
        (start, n)
    } else {
        (start, end)
    };
    if lo < 0 || hi < 0 || lo > hi || hi > n {
        return Err(slice_panic(lo, hi, n));
    }
    byte_slice(st, lo as usize, hi as usize)
}

pub(crate) fn repeat(lim: &Limits, a: Vec<Value>) -> R {
    let (count, st) = (i(&a[0]), s(&a[1]));
    if count < 0 {
        return Err(Fail::go("strings: negative Repeat count"));
    }
    check_len(lim, count as u128 * st.len() as u128)?;
    Ok(Value::string(st.repeat(count as usize)))
}

pub(crate) fn trim_all(_: &Limits, a: Vec<Value>) -> R {
    let cut: Vec<char> = s(&a[0]).chars().collect();
    Ok(Value::str(s(&a[1]).trim_matches(|c| cut.contains(&c))))
}

pub(crate) fn trim_suffix(_: &Limits, a: Vec<Value>) -> R {
    let (suf, st) = (s(&a[0]), s(&a[1]));
    Ok(Value::str(st.strip_suffix(suf).unwrap_or(st)))
}

pub(crate) fn trim_prefix(_: &Limits, a: Vec<Value>) -> R {
    let (pre, st) = (s(&a[0]), s(&a[1]));
    Ok(Value::str(st.strip_prefix(pre).unwrap_or(st)))
}

/// goutils `DeleteWhiteSpace`: drops every `unicode.IsSpace` rune.
pub(crate) fn nospace(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::string(
        s(&a[0])
            .chars()
            .filter(|c| !super::uni::is_space(*c))
            .collect(),
    ))
}

pub(crate) fn contains(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(s(&a[1]).contains(s(&a[0]))))
}

pub(crate) fn has_prefix(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(s(&a[1]).starts_with(s(&a[0]))))
}

pub(crate) fn has_suffix(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Bool(s(&a[1]).ends_with(s(&a[0]))))
}

/// `strval`: a string as is, anything else through `%v`.
pub(crate) fn strval(v: &Value, lim: &Limits) -> Result<String, Fail> {
    match v {
        Value::Str(s) => Ok(s.to_string()),
        v => Ok(sprintf("%v", std::slice::from_ref(v), lim)?),
    }
}

pub(crate) fn to_string(lim: &Limits, a: Vec<Value>) -> R {
    Ok(Value::string(strval(&a[0], lim)?))
}

fn not_nil(v: &&Value) -> bool {
    !matches!(v, Value::Nil | Value::Invalid)
}

pub(crate) fn quote(lim: &Limits, a: Vec<Value>) -> R {
    let mut out = Vec::new();
    for v in a.iter().filter(not_nil) {
        out.push(super::uni::quote(&strval(v, lim)?));
    }
    let total: usize = out.iter().map(|s| s.len() + 1).sum();
    check_len(lim, total as u128)?;
    Ok(Value::string(out.join(" ")))
}

pub(crate) fn squote(lim: &Limits, a: Vec<Value>) -> R {
    let mut out = Vec::new();
    for v in a.iter().filter(not_nil) {
        out.push(format!(
            "'{}'",
            sprintf("%v", std::slice::from_ref(v), lim)?
        ));
    }
    Ok(Value::string(out.join(" ")))
}

pub(crate) fn cat(lim: &Limits, a: Vec<Value>) -> R {
    let v: Vec<Value> = a.iter().filter(not_nil).cloned().collect();
    let format = "%v ".repeat(v.len());
    Ok(Value::string(sprintf(format.trim_matches(' '), &v, lim)?))
}

pub(crate) fn indent(lim: &Limits, a: Vec<Value>) -> R {
    let (n, st) = (i(&a[0]).max(0) as u128, s(&a[1]));
    let lines = st.matches('\n').count() as u128 + 1;
    check_len(lim, st.len() as u128 + n * lines)?;
    let pad = " ".repeat(n as usize);
    Ok(Value::string(format!(
        "{pad}{}",
        st.replace('\n', &format!("\n{pad}"))
    )))
}

pub(crate) fn nindent(lim: &Limits, a: Vec<Value>) -> R {
    let v = indent(lim, a)?;
    Ok(Value::string(format!("\n{}", s(&v))))
}

pub(crate) fn replace(lim: &Limits, a: Vec<Value>) -> R {
    let (old, new, src) = (s(&a[0]), s(&a[1]), s(&a[2]));
    let n = if old.is_empty() {
        src.chars().count() + 1
    } else {
        src.matches(old).count()
    } as u128;
    check_len(lim, src.len() as u128 + n * new.len() as u128)?;
    if old.is_empty() {
        // Go inserts `new` before every rune and at the end.
        let mut out = String::from(new);
        for c in src.chars() {
            out.push(c);
            out.push_str(new);
        }
        return Ok(Value::string(out));
    }
    Ok(Value::string(src.replace(old, new)))
}

pub(crate) fn plural(_: &Limits, a: Vec<Value>) -> R {
    Ok(if i(&a[2]) == 1 {
        a[0].clone()
    } else {
        a[1].clone()
    })
}

pub(crate) fn b64enc(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::string(
        base64::engine::general_purpose::STANDARD.encode(s(&a[0])),
    ))
}

pub(crate) fn b64dec(_: &Limits, a: Vec<Value>) -> R {
    let st = s(&a[0]);
    match base64::engine::general_purpose::STANDARD.decode(st) {
        Ok(b) => match String::from_utf8(b) {
            Ok(t) => Ok(Value::string(t)),
            Err(_) => Err(Fail::Unsupported(
                "b64dec produced bytes that are not UTF-8, which image-compat cannot represent"
                    .into(),
            )),
        },
        // Sprig returns Go's error text as the result; base64's position may differ.
        Err(_) => Ok(Value::string(format!(
            "illegal base64 data at input byte {}",
            bad_b64_offset(st)
        ))),
    }
}

fn bad_b64_offset(s: &str) -> usize {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let body = s.trim_end_matches('=');
    body.bytes()
        .position(|b| !ok(b))
        .unwrap_or(body.len().min(s.len().saturating_sub(1)))
}

const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub(crate) fn b32enc(_: &Limits, a: Vec<Value>) -> R {
    let data = s(&a[0]).as_bytes();
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for k in 0..8 {
            if k < chars {
                out.push(B32[((bits >> (35 - 5 * k)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    Ok(Value::string(out))
}

pub(crate) fn b32dec(_: &Limits, a: Vec<Value>) -> R {
    let st = s(&a[0]);
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for (idx, c) in st.trim_end_matches('=').bytes().enumerate() {
        let Some(v) = B32.iter().position(|b| *b == c) else {
            return Ok(Value::string(format!(
                "illegal base32 data at input byte {idx}"
            )));
        };
        bits = (bits << 5) | v as u64;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    match String::from_utf8(out) {
        Ok(t) => Ok(Value::string(t)),
        Err(_) => Err(Fail::Unsupported(
            "b32dec produced bytes that are not UTF-8, which image-compat cannot represent".into(),
        )),
    }
}

/// `strconv.ParseInt(s, base, 64)` with Go's base-0 prefixes and underscores.
fn parse_int(st: &str, base: u32) -> Option<i64> {
    let (neg, body) = match st.as_bytes().first() {
        Some(b'-') => (true, &st[1..]),
        Some(b'+') => (false, &st[1..]),
        _ => (false, st),
    };
    let (radix, digits) = if base == 0 {
        let l = body.to_ascii_lowercase();
        if let Some(d) = l.strip_prefix("0x") {
            (16, d.replace('_', ""))
        } else if let Some(d) = l.strip_prefix("0b") {
            (2, d.replace('_', ""))
        } else if let Some(d) = l.strip_prefix("0o") {
            (8, d.replace('_', ""))
        } else if l.len() > 1 && l.starts_with('0') {
            (8, l[1..].replace('_', ""))
        } else {
            (10, l.replace('_', ""))
        }
    } else {
        (base, body.to_string())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if base == 0
        && body.contains('_')
        && (body.starts_with('_') || body.ends_with('_') || body.contains("__"))
    {
        return None;
    }
    let v = i128::from_str_radix(&digits, radix).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// cast's `trimZeroDecimal`: "1.00" -> "1".
fn trim_zero_decimal(st: &str) -> &str {
    let b = st.as_bytes();
    let mut found_zero = false;
    for k in (1..=b.len()).rev() {
        match b[k - 1] {
            b'.' => {
                if found_zero {
                    return &st[..k - 1];
                }
            }
            b'0' => found_zero = true,
            _ => return st,
        }
    }
    st
}

/// `cast.ToInt64` (errors become 0, as sprig ignores them).
pub(crate) fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Uint8(u) => *u as i64,
        Value::Float(f) => *f as i64,
        Value::Str(st) => parse_int(trim_zero_decimal(st), 0).unwrap_or(0),
        Value::Bool(b) => *b as i64,
        _ => 0,
    }
}

/// `strconv.ParseFloat(s, 64)`, as cast uses it.
fn parse_float(st: &str) -> Option<f64> {
    let l = st.to_ascii_lowercase();
    let body = l.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        let neg = l.starts_with('-');
        return Some(match (body, neg) {
            ("nan", _) => f64::NAN,
            (_, true) => f64::NEG_INFINITY,
            _ => f64::INFINITY,
        });
    }
    if !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b"._e+-".contains(&b))
    {
        return st.replace('_', "").parse::<f64>().ok();
    }
    parse_int(st, 0).map(|i| i as f64)
}

/// `cast.ToFloat64`.
pub(crate) fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Uint8(u) => *u as f64,
        Value::Float(f) => *f,
        Value::Str(st) => parse_float(st).unwrap_or(0.0),
        Value::Bool(b) => *b as i64 as f64,
        _ => 0.0,
    }
}

pub(crate) fn atoi(_: &Limits, a: Vec<Value>) -> R {
    let st = s(&a[0]);
    let body = st.strip_prefix(['+', '-']).unwrap_or(st);
    let ok = !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit());
    Ok(Value::Int(if ok {
        st.parse::<i64>().unwrap_or(0)
    } else {
        0
    }))
}

pub(crate) fn to_decimal(lim: &Limits, a: Vec<Value>) -> R {
    let text = sprint(&a, lim)?;
    Ok(Value::Int64(parse_int(&text, 8).unwrap_or(0)))
}

/// sprig's `untilStep`, counting first so a huge range is refused before it is built.
fn until_step_vec(lim: &Limits, start: i64, stop: i64, step: i64) -> Result<Vec<i64>, Fail> {
    let count: u128 = if stop < start {
        if step >= 0 {
            return Ok(Vec::new());
        }
        ((start as i128 - stop as i128 - 1) / (-(step as i128)) + 1) as u128
    } else {
        if step <= 0 || stop == start {
            return Ok(Vec::new());
        }
        ((stop as i128 - start as i128 - 1) / step as i128 + 1) as u128
    };
    check_items(lim, count)?;
    let mut v = Vec::with_capacity(count as usize);
    let mut x = start as i128;
    for _ in 0..count {
        v.push(x as i64);
        x += step as i128;
    }
    Ok(v)
}

fn ints(v: Vec<i64>) -> Value {
    Value::typed_list(
        super::value::Type::slice(super::value::Type::Int),
        v.into_iter().map(Value::Int).collect(),
    )
}

pub(crate) fn until(lim: &Limits, a: Vec<Value>) -> R {
    let n = i(&a[0]);
    Ok(ints(until_step_vec(lim, 0, n, if n < 0 { -1 } else { 1 })?))
}

pub(crate) fn until_step(lim: &Limits, a: Vec<Value>) -> R {
    Ok(ints(until_step_vec(lim, i(&a[0]), i(&a[1]), i(&a[2]))?))
}

pub(crate) fn seq(lim: &Limits, a: Vec<Value>) -> R {
    let p: Vec<i64> = a.iter().map(i).collect();
    let v = match p.len() {
        1 => {
            let (start, end) = (1, p[0]);
            let inc = if end < start { -1 } else { 1 };
            until_step_vec(lim, start, end + inc, inc)?
        }
        2 => {
            let (start, end) = (p[0], p[1]);
            let step = if end < start { -1 } else { 1 };
            until_step_vec(lim, start, end + step, step)?
        }
        3 => {
            let (start, step, end) = (p[0], p[1], p[2]);
            let mut inc = 1;
            if end < start {
                inc = -1;
                if step > 0 {
                    return Ok(Value::str(""));
                }
            }
            until_step_vec(lim, start, end + inc, step)?
        }
        _ => return Ok(Value::str("")),
    };
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    Ok(Value::string(parts.join(" ")))
}

pub(crate) fn add(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Int64(
        a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_int64(v))),
    ))
}

pub(crate) fn mul(_: &Limits, a: Vec<Value>) -> R {
    let first = to_int64(&a[0]);
    Ok(Value::Int64(
        a[1..]
            .iter()
            .fold(first, |acc, v| acc.wrapping_mul(to_int64(v))),
    ))
}

pub(crate) fn div(_: &Limits, a: Vec<Value>) -> R {
    let (x, y) = (to_int64(&a[0]), to_int64(&a[1]));
    if y == 0 {
        return Err(Fail::go("runtime error: integer divide by zero"));
    }
    Ok(Value::Int64(x.wrapping_div(y)))
}

pub(crate) fn modulo(_: &Limits, a: Vec<Value>) -> R {
    let (x, y) = (to_int64(&a[0]), to_int64(&a[1]));
    if y == 0 {
        return Err(Fail::go("runtime error: integer divide by zero"));
    }
    Ok(Value::Int64(x.wrapping_rem(y)))
}

pub(crate) fn max(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Int64(
        a.iter().map(to_int64).fold(to_int64(&a[0]), i64::max),
    ))
}

pub(crate) fn min(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Int64(
        a.iter().map(to_int64).fold(to_int64(&a[0]), i64::min),
    ))
}

/// Go's `math.Max`: NaN wins, +0 beats -0.
fn go_max(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    x.max(y)
}

fn go_min(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    x.min(y)
}

pub(crate) fn maxf(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Float(
        a[1..]
            .iter()
            .map(to_float64)
            .fold(to_float64(&a[0]), go_max),
    ))
}

pub(crate) fn minf(_: &Limits, a: Vec<Value>) -> R {
    Ok(Value::Float(
        a[1..]
            .iter()
            .map(to_float64)
            .fold(to_float64(&a[0]), go_min),
    ))
}

pub(crate) fn round(_: &Limits, a: Vec<Value>) -> R {
    let round_on = a.get(2).map(to_float64).unwrap_or(0.5);
    let val = to_float64(&a[0]);
    let pow = 10f64.powf(i(&a[1]) as f64);
    let digit = pow * val;
    let frac = digit - digit.trunc();
    let r = if frac >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::Float(r / pow))
}

fn split_map(parts: Vec<&str>) -> Value {
    let entries: BTreeMap<String, Value> = parts
        .into_iter()
        .enumerate()
        .map(|(k, p)| (format!("_{k}"), Value::str(p)))
        .collect();
    Value::typed_map(super::value::Type::map(super::value::Type::String), entries)
}

/// `strings.Split` (an empty separator splits into runes), counted first.
fn go_split<'a>(lim: &Limits, orig: &'a str, sep: &str, n: i64) -> Result<Vec<&'a str>, Fail> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let count = if sep.is_empty() {
        orig.chars().count()
    } else {
        orig.matches(sep).count() + 1
    };
    let count = if n > 0 { count.min(n as usize) } else { count };
    check_items(lim, count as u128)?;
    if sep.is_empty() {
        let mut out: Vec<&str> = Vec::new();
        let mut rest = orig;
        while !rest.is_empty() {
            if n > 0 && out.len() + 1 == n as usize {
                out.push(rest);
                break;
            }
            let w = rest.chars().next().map_or(1, |c| c.len_utf8());
            out.push(&rest[..w]);
            rest = &rest[w..];
        }
        return Ok(out);
    }
    Ok(if n > 0 {
        orig.splitn(n as usize, sep).collect()
    } else {
        orig.split(sep).collect()
    })
}

pub(crate) fn split(lim: &Limits, a: Vec<Value>) -> R {
    Ok(split_map(go_split(lim, s(&a[1]), s(&a[0]), -1)?))
}

pub(crate) fn splitn(lim: &Limits, a: Vec<Value>) -> R {
    Ok(split_map(go_split(lim, s(&a[2]), s(&a[0]), i(&a[1]))?))
}

pub(crate) fn split_list(lim: &Limits, a: Vec<Value>) -> R {
    let parts = go_split(lim, s(&a[1]), s(&a[0]), -1)?;
    Ok(Value::strings(
        parts.into_iter().map(String::from).collect(),
    ))
}

/// sprig's `strslice`: []string as is, other slices element-wise (nils dropped), a lone
/// value as a one-element list, nil as empty.
pub(crate) fn strslice(v: &Value) -> Vec<String> {
    let lim = Limits::default();
    match v {
        Value::List(l) => l
            .items
            .borrow()
            .iter()
            .filter(|x| !matches!(x, Value::Nil | Value::Invalid))
            .map(|x| strval(x, &lim).unwrap_or_default())
            .collect(),
        Value::Nil | Value::Invalid => Vec::new(),
        v => vec![strval(v, &lim).unwrap_or_default()],
    }
}

pub(crate) fn join(lim: &Limits, a: Vec<Value>) -> R {
    let parts = strslice(&a[1]);
    let sep = s(&a[0]);
    let total: usize = parts.iter().map(|p| p.len() + sep.len()).sum();
    check_len(lim, total as u128)?;
    Ok(Value::string(parts.join(sep)))
}

pub(crate) fn sort_alpha(lim: &Limits, a: Vec<Value>) -> R {
    match &a[0] {
        Value::List(l) if l.ty.elem() == Some(&super::value::Type::String) => {
            // Go sorts a []string in place and returns it.
            l.items
                .borrow_mut()
                .sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            Ok(a[0].clone())
        }
        Value::List(_) => {
            let mut v = strslice(&a[0]);
            v.sort();
            Ok(Value::strings(v))
        }
        v => Ok(Value::strings(vec![strval(v, lim)?])),
    }
}

/// sprig's `empty`: the zero value of its type.
pub(crate) fn empty(v: &Value) -> bool {
    match v {
        Value::Invalid | Value::Nil => true,
        v if v.kind() == Kind::Interface => true,
        v => !v.truth(),
    }
}

pub(crate) fn dfault(_: &Limits, a: Vec<Value>) -> R {
    match a.get(1) {
        Some(g) if !empty(g) => Ok(g.clone()),
        _ => Ok(a[0].clone()),
    }
}

pub(crate) fn coalesce(_: &Limits, a: Vec<Value>) -> R {
    Ok(a.into_iter().find(|v| !empty(v)).unwrap_or(Value::Nil))
}

fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::list(a.iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => {
            Value::dict(o.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect())
        }
    }
}

pub(crate) fn from_json(_: &Limits, a: Vec<Value>) -> R {
    Ok(serde_json::from_str::<serde_json::Value>(s(&a[0]))
        .map(|v| from_serde(&v))
        .unwrap_or(Value::Nil))
}

pub(crate) fn must_from_json(_: &Limits, a: Vec<Value>) -> R {
    match serde_json::from_str::<serde_json::Value>(s(&a[0])) {
        Ok(v) => Ok(from_serde(&v)),
        // Go's encoding/json words this differently; the failure is the same.
        Err(e) => Err(Fail::go(format!("invalid JSON: {e}"))),
    }
}
