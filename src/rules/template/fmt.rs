//! Go's `fmt` printing of template values: Sprint, Sprintln, Sprintf and `%v`.
//!
//! A port of the parts of fmt/print.go and fmt/format.go that template values reach, so
//! `{{.}}`, `print` and `printf` print what Go prints (`map[a:1]`, `[x y]`, `1e+06`,
//! `%!d(string=x)`). Widths, precisions and nesting are bounded by the limits.

use super::uni;
use super::value::Value;
use super::{LimitKind, Limits};

/// Why printing stopped.
#[derive(Debug)]
pub(crate) enum FmtError {
    Limit(LimitKind, String),
    /// A verb image-compat does not implement (`%#v`, `%x` of a float).
    Unsupported(String),
}

type R = Result<(), FmtError>;

#[derive(Default, Clone)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

struct Pp<'l> {
    buf: String,
    f: Flags,
    lim: &'l Limits,
}

impl<'l> Pp<'l> {
    fn new(lim: &'l Limits) -> Pp<'l> {
        Pp {
            buf: String::new(),
            f: Flags::default(),
            lim,
        }
    }

    fn grow(&self, extra: usize) -> R {
        if self.buf.len() + extra > self.lim.max_string_bytes {
            return Err(FmtError::Limit(
                LimitKind::StringBytes,
                format!(
                    "formatted string longer than {} bytes",
                    self.lim.max_string_bytes
                ),
            ));
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> R {
        self.grow(s.len())?;
        self.buf.push_str(s);
        Ok(())
    }

    fn padding(&mut self, n: usize, zero: bool) -> R {
        self.grow(n)?;
        let c = if zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
        Ok(())
    }

    /// `fmt.pad`: width counts runes; `-` pads on the right with spaces.
    fn pad(&mut self, s: &str) -> R {
        let n = s.chars().count();
        let w = self.f.wid.unwrap_or(0);
        if w <= n {
            return self.write(s);
        }
        if self.f.minus {
            self.write(s)?;
            self.padding(w - n, false)
        } else {
            let z = self.f.zero;
            self.padding(w - n, z)?;
            self.write(s)
        }
    }

    fn bad_verb(&mut self, verb: char, v: &Value, depth: usize) -> R {
        self.write("%!")?;
        self.write(verb.encode_utf8(&mut [0; 4]))?;
        self.write("(")?;
        match v {
            Value::Invalid | Value::Nil => self.write("<nil>")?,
            v => {
                self.write(&v.type_name())?;
                self.write("=")?;
                let saved = std::mem::take(&mut self.f);
                self.print_value(v, 'v', depth)?;
                self.f = saved;
            }
        }
        self.write(")")
    }

    /// `printArg`: a top-level operand.
    fn print_arg(&mut self, v: &Value, verb: char) -> R {
        match v {
            Value::Invalid | Value::Nil => match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, v, 0),
            },
            _ if verb == 'T' => {
                let name = v.type_name();
                self.fmt_s(&name)
            }
            _ => self.print_value(v, verb, 0),
        }
    }

    /// `printValue`: any value, recursing into slices and maps.
    fn print_value(&mut self, v: &Value, verb: char, depth: usize) -> R {
        if depth > self.lim.max_depth {
            return Err(FmtError::Limit(
                LimitKind::Depth,
                format!("printing nests deeper than {} levels", self.lim.max_depth),
            ));
        }
        match v {
            Value::Invalid => self.write(if depth == 0 {
                "<invalid reflect.Value>"
            } else {
                "<nil>"
            }),
            Value::Nil => self.pad("<nil>"),
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(verb, v, depth),
            },
            Value::Int(i) | Value::Int64(i) => self.fmt_integer(*i as i128, verb, v, depth),
            Value::Uint8(u) => self.fmt_integer(*u as i128, verb, v, depth),
            Value::Float(x) => self.fmt_float(*x, verb, v, depth),
            Value::Str(s) => self.fmt_string(s, verb, v, depth),
            Value::List(l) => {
                self.write("[")?;
                let items = l.items.borrow().clone();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.write(" ")?;
                    }
                    self.print_value(item, verb, depth + 1)?;
                }
                self.write("]")
            }
            Value::Map(m) => {
                self.write("map[")?;
                let entries: Vec<(String, Value)> = m
                    .entries
                    .borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (i, (k, val)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.write(" ")?;
                    }
                    self.print_value(&Value::str(k), verb, depth + 1)?;
                    self.write(":")?;
                    self.print_value(val, verb, depth + 1)?;
                }
                self.write("]")
            }
        }
    }

    fn fmt_s(&mut self, s: &str) -> R {
        match self.f.prec {
            Some(p) => {
                let t: String = s.chars().take(p).collect();
                self.pad(&t)
            }
            None => self.pad(s),
        }
    }

    fn fmt_string(&mut self, s: &str, verb: char, v: &Value, depth: usize) -> R {
        match verb {
            'v' | 's' => self.fmt_s(s),
            'q' => {
                let t: String = match self.f.prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.to_string(),
                };
                let q = if self.f.sharp && can_backquote(&t) {
                    format!("`{t}`")
                } else if self.f.plus {
                    quote_ascii(&t)
                } else {
                    uni::quote(&t)
                };
                self.pad(&q)
            }
            'x' | 'X' => {
                let bytes = s.as_bytes();
                let n = self.f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
                let mut out = String::new();
                for (i, b) in bytes[..n].iter().enumerate() {
                    if self.f.space && i > 0 {
                        out.push(' ');
                    }
                    if self.f.sharp && (self.f.space || i == 0) {
                        out.push_str(if verb == 'x' { "0x" } else { "0X" });
                    }
                    if verb == 'x' {
                        out.push_str(&format!("{b:02x}"));
                    } else {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
                self.pad(&out)
            }
            _ => self.bad_verb(verb, v, depth),
        }
    }

    /// `fmtInteger` with the verb dispatch of `printArg` (signed and unsigned alike: every
    /// integer a template holds fits i128).
    fn fmt_integer(&mut self, n: i128, verb: char, v: &Value, depth: usize) -> R {
        let (base, upper) = match verb {
            'v' | 'd' => (10, false),
            'b' => (2, false),
            'o' | 'O' => (8, false),
            'x' => (16, false),
            'X' => (16, true),
            'c' => {
                let c = u32::try_from(n)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                return self.pad(c.encode_utf8(&mut [0; 4]));
            }
            'q' => {
                let c = u32::try_from(n)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                return self.pad(&uni::quote_rune(c));
            }
            'U' => {
                let mut s = format!("U+{:04X}", n);
                if self.f.sharp {
                    if let Some(c) = u32::try_from(n).ok().and_then(char::from_u32) {
                        if uni::is_print(c) {
                            s.push_str(&format!(" '{c}'"));
                        }
                    }
                }
                let z = std::mem::replace(&mut self.f.zero, false);
                let r = self.pad(&s);
                self.f.zero = z;
                return r;
            }
            _ => return self.bad_verb(verb, v, depth),
        };
        let negative = n < 0;
        let u = n.unsigned_abs();
        let digits = match (base, upper) {
            (2, _) => format!("{u:b}"),
            (8, _) => format!("{u:o}"),
            (16, false) => format!("{u:x}"),
            (16, true) => format!("{u:X}"),
            _ => u.to_string(),
        };
        let mut prec = 0;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let z = std::mem::replace(&mut self.f.zero, false);
                let w = self.f.wid.unwrap_or(0);
                let r = self.padding(w, false);
                self.f.zero = z;
                return r;
            }
        } else if self.f.zero && !self.f.minus && self.f.wid.is_some() {
            prec = self.f.wid.unwrap_or(0);
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        self.grow(prec)?;
        let mut body = String::new();
        if self.f.sharp {
            match base {
                2 => body.push_str("0b"),
                8 if !digits.starts_with('0') || prec > digits.len() => body.push('0'),
                16 => body.push_str(if upper { "0X" } else { "0x" }),
                _ => {}
            }
        }
        if verb == 'O' {
            body.push_str("0o");
        }
        body.extend(std::iter::repeat_n('0', prec.saturating_sub(digits.len())));
        body.push_str(&digits);
        let sign = if negative {
            "-"
        } else if self.f.plus {
            "+"
        } else if self.f.space {
            " "
        } else {
            ""
        };
        let z = std::mem::replace(&mut self.f.zero, false);
        let r = self.pad(&format!("{sign}{body}"));
        self.f.zero = z;
        r
    }

    fn fmt_float(&mut self, x: f64, verb: char, v: &Value, depth: usize) -> R {
        let (c, default_prec) = match verb {
            'v' => ('g', -1),
            'g' | 'G' => (verb, -1),
            'f' | 'F' | 'e' | 'E' => (verb, 6),
            'b' | 'x' | 'X' => {
                return Err(FmtError::Unsupported(format!(
                    "printf verb %{verb} for floats is not supported by image-compat"
                )))
            }
            _ => return self.bad_verb(verb, v, depth),
        };
        let prec = self.f.prec.map_or(default_prec, |p| p as i64);
        self.grow(prec.max(0) as usize)?;
        let mut num = format_float(x, if c == 'F' { 'f' } else { c }, prec);
        if !num.starts_with('-') && !num.starts_with('+') {
            num.insert(0, '+');
        }
        if self.f.space && num.starts_with('+') && !self.f.plus {
            num.replace_range(..1, " ");
        }
        if num[1..].starts_with('I') || num[1..].starts_with('N') {
            let z = std::mem::replace(&mut self.f.zero, false);
            let s = if num[1..].starts_with('N') && !self.f.space && !self.f.plus {
                &num[1..]
            } else {
                &num[..]
            };
            let s = s.to_string();
            let r = self.pad(&s);
            self.f.zero = z;
            return r;
        }
        if self.f.plus || !num.starts_with('+') {
            let w = self.f.wid.unwrap_or(0);
            if self.f.zero && !self.f.minus && w > num.len() {
                self.write(&num[..1])?;
                self.padding(w - num.len(), true)?;
                return self.write(&num[1..]);
            }
            return self.pad(&num);
        }
        self.pad(&num[1..])
    }
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !(c.is_control())))
}

fn quote_ascii(s: &str) -> String {
    let q = uni::quote(s);
    let mut out = String::new();
    for c in q.chars() {
        if c.is_ascii() {
            out.push(c);
        } else if (c as u32) < 0x10000 {
            out.push_str(&format!(r"\u{:04x}", c as u32));
        } else {
            out.push_str(&format!(r"\U{:08x}", c as u32));
        }
    }
    out
}

/// Decimal digits (no leading/trailing zeros except a lone "0") and the decimal point
/// position, as strconv's `decimalSlice`: value = 0.d1d2... * 10^dp.
fn digits_of(sci: &str) -> (Vec<u8>, i64) {
    let (mant, exp) = sci.split_once(['e', 'E']).unwrap_or((sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(|b| b.is_ascii_digit()).collect();
    while d.len() > 1 && d.last() == Some(&b'0') {
        d.pop();
    }
    (d, exp + 1)
}

/// `strconv.FormatFloat(x, c, prec, 64)` for c in e, E, f, g, G.
pub(crate) fn format_float(x: f64, c: char, prec: i64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = x.is_sign_negative();
    let a = x.abs();
    let sign = if neg { "-" } else { "" };
    let shortest = prec < 0;
    // Rust's format! caps precision at u16::MAX; an f64 has at most 1074 fractional and
    // 767 significant digits, so rounding at 1100 is exact and the rest are zeros.
    const EXACT: i64 = 1100;
    let zeros = |n: i64| "0".repeat(n.max(0) as usize);
    let body = match c {
        'f' if !shortest => {
            let mut t = format!("{:.*}", prec.min(EXACT) as usize, a);
            t.push_str(&zeros(prec - EXACT));
            t
        }
        'f' => {
            let (d, dp) = digits_of(&format!("{a:e}"));
            let p = (d.len() as i64 - dp).max(0);
            fmt_f(&d, dp, p)
        }
        'e' | 'E' => {
            let (d, dp) = if shortest {
                digits_of(&format!("{a:e}"))
            } else {
                digits_of(&format!("{:.*e}", prec.min(EXACT) as usize, a))
            };
            let p = if shortest { d.len() as i64 - 1 } else { prec };
            fmt_e(&d, dp, p, c)
        }
        _ => {
            let (d, dp, mut p) = if shortest {
                let (d, dp) = digits_of(&format!("{a:e}"));
                let n = d.len() as i64;
                (d, dp, n)
            } else {
                let p = prec.max(1);
                let (d, dp) = digits_of(&format!("{:.*e}", (p - 1).min(EXACT) as usize, a));
                (d, dp, p)
            };
            let nd = d.len() as i64;
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            let e = if c == 'G' { 'E' } else { 'e' };
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fmt_e(&d, dp, p - 1, e)
            } else {
                if p > dp {
                    p = nd;
                }
                fmt_f(&d, dp, (p - dp).max(0))
            }
        }
    };
    format!("{sign}{body}")
}

fn fmt_e(d: &[u8], dp: i64, prec: i64, e: char) -> String {
    let mut s = String::new();
    let zero = d == b"0";
    s.push(if d.is_empty() { '0' } else { d[0] as char });
    if prec > 0 {
        s.push('.');
        for i in 1..=prec as usize {
            s.push(d.get(i).map_or('0', |b| *b as char));
        }
    }
    s.push(e);
    let exp = if zero { 0 } else { dp - 1 };
    s.push(if exp < 0 { '-' } else { '+' });
    let x = exp.abs();
    if x < 10 {
        s.push('0');
    }
    s.push_str(&x.to_string());
    s
}

fn fmt_f(d: &[u8], dp: i64, prec: i64) -> String {
    let mut s = String::new();
    if dp > 0 {
        for i in 0..dp as usize {
            s.push(d.get(i).map_or('0', |b| *b as char));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for i in 1..=prec {
            let j = dp + i - 1;
            let ch = if j >= 0 {
                d.get(j as usize).map_or('0', |b| *b as char)
            } else {
                '0'
            };
            s.push(ch);
        }
    }
    s
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub(crate) fn sprint(args: &[Value], lim: &Limits) -> Result<String, FmtError> {
    let mut p = Pp::new(lim);
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.write(" ")?;
        }
        p.print_arg(a, 'v')?;
        prev_string = is_string;
    }
    Ok(p.buf)
}

/// `fmt.Sprintln`: spaces between all operands, and a newline.
pub(crate) fn sprintln(args: &[Value], lim: &Limits) -> Result<String, FmtError> {
    let mut p = Pp::new(lim);
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.write(" ")?;
        }
        p.print_arg(a, 'v')?;
    }
    p.write("\n")?;
    Ok(p.buf)
}

fn parsenum(s: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    if start >= end {
        return (0, false, end);
    }
    let (mut num, mut isnum, mut i) = (0usize, false, start);
    while i < end && s[i].is_ascii_digit() {
        if num > 1_000_000 {
            return (0, false, end);
        }
        num = num * 10 + (s[i] - b'0') as usize;
        isnum = true;
        i += 1;
    }
    (num, isnum, i)
}

fn int_from_arg(a: &[Value], n: usize) -> (i64, bool, usize) {
    match a.get(n) {
        Some(Value::Int(i)) | Some(Value::Int64(i)) if i.abs() <= 1_000_000 => (*i, true, n + 1),
        Some(Value::Uint8(u)) => (*u as i64, true, n + 1),
        Some(_) => (0, false, n + 1),
        None => (0, false, n),
    }
}

/// `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, a: &[Value], lim: &Limits) -> Result<String, FmtError> {
    let mut p = Pp::new(lim);
    let s = format.as_bytes();
    let end = s.len();
    let mut arg = 0usize;
    let mut reordered = false;
    let mut i = 0;
    while i < end {
        let mut good = true;
        let last = i;
        while i < end && s[i] != b'%' {
            i += 1;
        }
        if i > last {
            p.write(&format[last..i])?;
        }
        if i >= end {
            break;
        }
        i += 1;
        p.f = Flags::default();
        while i < end {
            match s[i] {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = !p.f.minus,
                b'+' => p.f.plus = true,
                b'-' => {
                    p.f.minus = true;
                    p.f.zero = false;
                }
                b' ' => p.f.space = true,
                _ => break,
            }
            i += 1;
        }
        // Explicit argument index [n].
        let mut arg_number = |arg: usize, i: usize, p: &mut Pp| -> (usize, usize, bool, bool) {
            if i >= end || s[i] != b'[' {
                return (arg, i, false, true);
            }
            reordered = true;
            let rest = &s[i..];
            let close = rest.iter().position(|&b| b == b']');
            match close {
                Some(c) if c >= 2 => {
                    let (n, ok, ni) = parsenum(rest, 1, c);
                    if ok && ni == c && n >= 1 && n - 1 < a.len() {
                        return (n - 1, i + c + 1, true, true);
                    }
                    let _ = p;
                    (arg, i + c + 1, ok && ni == c, false)
                }
                Some(c) => (arg, i + c + 1, false, false),
                None => (arg, i + 1, false, false),
            }
        };
        let (na, ni, mut after_index, ok) = arg_number(arg, i, &mut p);
        arg = na;
        i = ni;
        good &= ok;
        if i < end && s[i] == b'*' {
            i += 1;
            let (w, isint, na) = int_from_arg(a, arg);
            arg = na;
            if !isint {
                p.write("%!(BADWIDTH)")?;
            } else if w < 0 {
                p.f.wid = Some((-w) as usize);
                p.f.minus = true;
                p.f.zero = false;
            } else {
                p.f.wid = Some(w as usize);
            }
            after_index = false;
        } else {
            let (w, present, ni) = parsenum(s, i, end);
            i = ni;
            if present {
                p.f.wid = Some(w);
                if after_index {
                    good = false;
                }
            }
        }
        if i + 1 < end && s[i] == b'.' {
            i += 1;
            if after_index {
                good = false;
            }
            let (na, ni, ai, ok) = arg_number(arg, i, &mut p);
            arg = na;
            i = ni;
            after_index = ai;
            good &= ok;
            if i < end && s[i] == b'*' {
                i += 1;
                let (pr, isint, na) = int_from_arg(a, arg);
                arg = na;
                if isint && pr >= 0 {
                    p.f.prec = Some(pr as usize);
                } else if !isint {
                    p.write("%!(BADPREC)")?;
                }
                after_index = false;
            } else {
                let (pr, present, ni) = parsenum(s, i, end);
                i = ni;
                p.f.prec = Some(if present { pr } else { 0 });
            }
        }
        if !after_index {
            let (na, ni, _, ok) = arg_number(arg, i, &mut p);
            arg = na;
            i = ni;
            good &= ok;
        }
        if i >= end {
            p.write("%!(NOVERB)")?;
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('%');
        i += verb.len_utf8();
        if let (Some(w), Some(pr)) = (p.f.wid, p.f.prec) {
            p.grow(w.max(pr))?;
        } else if let Some(w) = p.f.wid.or(p.f.prec) {
            p.grow(w)?;
        }
        match verb {
            '%' => p.write("%")?,
            _ if !good => {
                p.write("%!")?;
                p.write(verb.encode_utf8(&mut [0; 4]))?;
                p.write("(BADINDEX)")?;
            }
            _ if arg >= a.len() => {
                p.write("%!")?;
                p.write(verb.encode_utf8(&mut [0; 4]))?;
                p.write("(MISSING)")?;
            }
            'v' if p.f.sharp => {
                return Err(FmtError::Unsupported(
                    "printf verb %#v is not supported by image-compat".into(),
                ))
            }
            'v' => {
                p.f.plus = false;
                p.print_arg(&a[arg], 'v')?;
                arg += 1;
            }
            'w' => {
                p.write("%!w(")?;
                p.write(&a[arg].type_name())?;
                p.write("=")?;
                p.print_arg(&a[arg], 'v')?;
                p.write(")")?;
                arg += 1;
            }
            _ => {
                p.print_arg(&a[arg], verb)?;
                arg += 1;
            }
        }
    }
    if !reordered && arg < a.len() {
        p.f = Flags::default();
        p.write("%!(EXTRA ")?;
        for (k, v) in a[arg..].iter().enumerate() {
            if k > 0 {
                p.write(", ")?;
            }
            match v {
                Value::Invalid | Value::Nil => p.write("<nil>")?,
                v => {
                    p.write(&v.type_name())?;
                    p.write("=")?;
                    p.print_arg(v, 'v')?;
                }
            }
        }
        p.write(")")?;
    }
    Ok(p.buf)
}
