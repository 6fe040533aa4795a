//! Go's `unicode` predicates (IsLetter, IsDigit, IsPrint) and `strconv.Quote`.
//!
//! std has no general categories; the regex crate's Unicode tables do, so one-char regexes
//! answer the non-ASCII cases exactly as Go's category tables would (modulo Unicode version).

use std::sync::OnceLock;

use regex::Regex;

fn class(cell: &'static OnceLock<Regex>, pattern: &str, c: char) -> bool {
    let re =
        cell.get_or_init(|| Regex::new(pattern).expect("a fixed Unicode class pattern compiles"));
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

/// `unicode.IsLetter`: category L.
pub fn is_letter(c: char) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    class(&RE, r"^\p{L}$", c)
}

/// `unicode.IsDigit`: category Nd.
pub fn is_digit(c: char) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    class(&RE, r"^\p{Nd}$", c)
}

/// `unicode.IsPrint`: categories L, M, N, P, S and the ASCII space.
pub fn is_print(c: char) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    class(&RE, r"^[\p{L}\p{M}\p{N}\p{P}\p{S}]$", c)
}

/// `unicode.IsSpace` (Go's is the White_Space property, as Rust's is).
pub fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// The lexer's `isAlphaNumeric`.
pub fn is_alnum(c: char) -> bool {
    c == '_' || is_letter(c) || is_digit(c)
}

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    quote_with(s, '"')
}

/// `strconv.QuoteRune`-style quoting of one rune, for `%q` of an integer.
pub fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

fn quote_with(s: &str, q: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        push_escaped(&mut out, c, q);
    }
    out.push(q);
    out
}

fn push_escaped(out: &mut String, c: char, q: char) {
    if c == q || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str(r"\a"),
        '\x08' => out.push_str(r"\b"),
        '\x0c' => out.push_str(r"\f"),
        '\n' => out.push_str(r"\n"),
        '\r' => out.push_str(r"\r"),
        '\t' => out.push_str(r"\t"),
        '\x0b' => out.push_str(r"\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!(r"\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!(r"\u{:04x}", c as u32)),
        c => out.push_str(&format!(r"\U{:08x}", c as u32)),
    }
}

/// `strconv.Unquote` for the three Go literal forms (interpreted, raw, rune). Returns the
/// text, or None on Go's `invalid syntax`. A `\x` or octal escape that is not valid UTF-8
/// on its own also returns None here: Rust strings cannot hold it (image-compat difference).
pub fn unquote(lit: &str) -> Option<String> {
    let mut chars = lit.chars();
    let q = chars.next()?;
    if lit.len() < 2 || !lit.ends_with(q) {
        return None;
    }
    let body = &lit[q.len_utf8()..lit.len() - q.len_utf8()];
    match q {
        '`' => {
            if body.contains('`') {
                return None;
            }
            Some(body.replace('\r', ""))
        }
        '"' | '\'' => {
            let mut bytes = Vec::with_capacity(body.len());
            let mut rest = body;
            let mut count = 0;
            while !rest.is_empty() {
                let (piece, tail) = unquote_char(rest, q)?;
                bytes.extend_from_slice(&piece);
                rest = tail;
                count += 1;
            }
            if q == '\'' && count != 1 {
                return None;
            }
            String::from_utf8(bytes).ok()
        }
        _ => None,
    }
}

/// `strconv.UnquoteChar`: one (possibly escaped) character as bytes, and the rest.
pub fn unquote_char(s: &str, q: char) -> Option<(Vec<u8>, &str)> {
    let c = s.chars().next()?;
    if c == q && (q == '\'' || q == '"') {
        return None;
    }
    if c != '\\' {
        if c == '\n' && q != '`' {
            return None;
        }
        let mut buf = [0u8; 4];
        return Some((
            c.encode_utf8(&mut buf).as_bytes().to_vec(),
            &s[c.len_utf8()..],
        ));
    }
    let rest = &s[1..];
    let e = rest.chars().next()?;
    let after = &rest[e.len_utf8()..];
    let simple = |b: u8| Some((vec![b], after));
    match e {
        'a' => simple(7),
        'b' => simple(8),
        'f' => simple(12),
        'n' => simple(b'\n'),
        'r' => simple(b'\r'),
        't' => simple(b'\t'),
        'v' => simple(11),
        '\\' => simple(b'\\'),
        '\'' | '"' => {
            if e != q {
                return None;
            }
            simple(e as u8)
        }
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let hex = after.get(..n)?;
            let v = u32::from_str_radix(hex, 16).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let tail = &after[n..];
            if e == 'x' {
                return Some((vec![v as u8], tail));
            }
            let c = char::from_u32(v)?;
            let mut buf = [0u8; 4];
            Some((c.encode_utf8(&mut buf).as_bytes().to_vec(), tail))
        }
        '0'..='7' => {
            let oct = rest.get(..3)?;
            if !oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            let v = u32::from_str_radix(oct, 8).ok()?;
            if v > 255 {
                return None;
            }
            Some((vec![v as u8], &rest[3..]))
        }
        _ => None,
    }
}
