//! One NFD MatchExpression, compiled once (regexes, bounds) and evaluated against one element.
//!
//! The order of checks follows NFD's `evaluateMatchExpression` exactly, because it decides
//! what is an error and what is a plain no-match: an unknown op and a value given to
//! Any/Exists/DoesNotExist are errors even when the element is absent, while every value
//! check (In..IsFalse, including their malformed values) runs only when the element exists
//! and has a value. Flags have no value, so value ops on flags are false, never errors.

use std::collections::HashSet;

use regex_automata::meta::Regex;

use super::budget::{Budget, Limits};

use crate::spec::MatchExpression;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Any,
    In,
    NotIn,
    InRegexp,
    Exists,
    DoesNotExist,
    Gt,
    Ge,
    Lt,
    Le,
    GtLt,
    GeLe,
    IsTrue,
    IsFalse,
}

impl Op {
    pub const ALL: [Op; 14] = [
        Op::Any,
        Op::In,
        Op::NotIn,
        Op::InRegexp,
        Op::Exists,
        Op::DoesNotExist,
        Op::Gt,
        Op::Ge,
        Op::Lt,
        Op::Le,
        Op::GtLt,
        Op::GeLe,
        Op::IsTrue,
        Op::IsFalse,
    ];

    /// NFD's spelling; `""` is the Any op.
    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Any => "",
            Op::In => "In",
            Op::NotIn => "NotIn",
            Op::InRegexp => "InRegexp",
            Op::Exists => "Exists",
            Op::DoesNotExist => "DoesNotExist",
            Op::Gt => "Gt",
            Op::Ge => "Ge",
            Op::Lt => "Lt",
            Op::Le => "Le",
            Op::GtLt => "GtLt",
            Op::GeLe => "GeLe",
            Op::IsTrue => "IsTrue",
            Op::IsFalse => "IsFalse",
        }
    }
}

/// An expression that NFD would refuse to evaluate, or a feature value it cannot compare.
/// The texts follow NFD's so that a user comparing the two tools sees the same reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// NFD dereferences the nil expression and crashes (a Go panic) where image-compat stops.
    #[error("the expression is null: NFD's evaluation crashes on it (runtime error: invalid memory address or nil pointer dereference)")]
    Null,
    #[error("invalid Op \"{0}\" (valid: In, NotIn, InRegexp, Exists, DoesNotExist, Gt, Ge, Lt, Le, GtLt, GeLe, IsTrue, IsFalse, or empty for Any)")]
    InvalidOp(String),
    #[error("invalid expression, 'value' field must be empty for Op \"{op}\" (have {value})")]
    ValueMustBeEmpty { op: String, value: String },
    #[error("invalid expression, 'value' field must be non-empty for Op \"{op}\"")]
    ValueMustBeNonEmpty { op: String },
    #[error("invalid expression, 'value' field must contain exactly {count} for Op \"{op}\" (have {value})")]
    WrongValueCount {
        op: String,
        count: &'static str,
        value: String,
    },
    #[error("invalid expression, 'value' field must only contain valid regexps for Op \"InRegexp\": {pattern:?}: {reason}")]
    BadRegexp { pattern: String, reason: String },
    #[error("invalid expression, 'type' field only accepts \"version\" value for Op \"{op}\" (have \"{value_type}\")")]
    BadType { op: String, value_type: String },
    #[error("not a number {0:?}")]
    InputNotANumber(String),
    #[error("not a number {bound:?} in {expr}")]
    BoundNotANumber { bound: String, expr: String },
    #[error("not a version {0:?}")]
    InputNotAVersion(String),
    #[error("not a version {bound:?} in {expr}")]
    BoundNotAVersion { bound: String, expr: String },
    #[error(
        "invalid expression, value[0] must be less than Value[1] for Op \"{op}\" (have {value})"
    )]
    BoundsOrder { op: String, value: String },
}

/// A compiled expression. Cheap to evaluate: no parsing or regex compilation per call.
#[derive(Debug, Clone)]
pub struct Expr {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Unknown op, or a value given to Any/Exists/DoesNotExist: an error whenever evaluated.
    AlwaysError(ExprError),
    Any,
    Exists,
    DoesNotExist,
    /// A value op; its own errors surface only when an element with a value is checked.
    Valued(Result<Check, ExprError>),
}

#[derive(Debug, Clone)]
enum Check {
    In(Values),
    NotIn(Values),
    /// Each pattern with the literal prefix every match must start with, if it has one.
    Regexp(Vec<(Regex, Option<String>)>),
    Int(Op, Result<Bounds<i64>, ExprError>),
    Version(Op, Result<Bounds<Version>, ExprError>),
    IsTrue,
    IsFalse,
}

#[derive(Debug, Clone, Copy)]
enum Bounds<T> {
    One(T),
    Two(T, T),
}

impl Expr {
    /// Compiles one expression without bounds (checks of a single expression, tests).
    pub fn compile(m: &MatchExpression) -> Expr {
        Expr::compile_within(m, &mut Budget::new(Limits::unlimited()))
    }

    /// Compiles one expression, counting it against `budget`. Once the budget is exceeded
    /// (`budget.exceeded`), nothing more is compiled: the caller refuses the spec.
    pub fn compile_within(m: &MatchExpression, budget: &mut Budget) -> Expr {
        if !budget.expression(m.value.len()) {
            return Expr {
                kind: Kind::AlwaysError(ExprError::InvalidOp(String::new())),
            };
        }
        if m.null {
            return Expr {
                kind: Kind::AlwaysError(ExprError::Null),
            };
        }
        let Some(op) = Op::parse(&m.op) else {
            return Expr {
                kind: Kind::AlwaysError(ExprError::InvalidOp(m.op.clone())),
            };
        };
        let must_be_empty = || ExprError::ValueMustBeEmpty {
            op: op.as_str().into(),
            value: go_list(&m.value),
        };
        let kind = match op {
            Op::Any | Op::Exists | Op::DoesNotExist if !m.value.is_empty() => {
                Kind::AlwaysError(must_be_empty())
            }
            Op::Any => Kind::Any,
            Op::Exists => Kind::Exists,
            Op::DoesNotExist => Kind::DoesNotExist,
            _ => Kind::Valued(compile_check(op, m, budget)),
        };
        Expr { kind }
    }

    /// Evaluates against one element: `valid` = the element exists, `value` = its value
    /// (None for a flag, which has no value).
    pub fn eval(&self, valid: bool, value: Option<&str>) -> Result<bool, ExprError> {
        match &self.kind {
            Kind::AlwaysError(e) => Err(e.clone()),
            Kind::Any => Ok(true),
            Kind::Exists => Ok(valid),
            Kind::DoesNotExist => Ok(!valid),
            Kind::Valued(check) => match (valid, value) {
                (true, Some(v)) => check.as_ref().map_err(Clone::clone)?.eval(v),
                _ => Ok(false),
            },
        }
    }

    pub fn is_does_not_exist(&self) -> bool {
        matches!(self.kind, Kind::DoesNotExist)
    }

    /// The error NFD would raise for this expression whatever the node's features, if any
    /// (for validate-spec). Errors about the node's own values are not known here.
    pub fn static_error(&self) -> Option<ExprError> {
        match &self.kind {
            Kind::AlwaysError(e) | Kind::Valued(Err(e)) => Some(e.clone()),
            Kind::Valued(Ok(Check::Int(_, Err(e)) | Check::Version(_, Err(e)))) => Some(e.clone()),
            _ => None,
        }
    }

    /// Whether evaluating against a present value can fail: numbers and versions are parsed
    /// from the node's value; every other op fails the same way for every value, or never.
    pub fn input_can_fail(&self) -> bool {
        matches!(
            self.kind,
            Kind::Valued(Ok(Check::Int(..) | Check::Version(..)))
        )
    }

    /// For InRegexp whose every pattern is anchored with a literal start (`^VFIO_`), the
    /// prefixes a matching value must start with: lets matchName scan only the sorted names
    /// that can match instead of all of them.
    pub fn literal_prefixes(&self) -> Option<Vec<&str>> {
        match &self.kind {
            Kind::Valued(Ok(Check::Regexp(res))) => res.iter().map(|(_, p)| p.as_deref()).collect(),
            _ => None,
        }
    }

    /// A version range whose bounds are reversed: valid for NFD, but it never matches.
    pub fn never_matches(&self) -> bool {
        match &self.kind {
            Kind::Valued(Ok(Check::Version(op, Ok(Bounds::Two(lo, hi))))) => match op {
                Op::GtLt => lo >= hi,
                _ => lo > hi,
            },
            _ => false,
        }
    }
}

fn compile_check(op: Op, m: &MatchExpression, budget: &mut Budget) -> Result<Check, ExprError> {
    let count_error = |count| ExprError::WrongValueCount {
        op: op.as_str().into(),
        count,
        value: go_list(&m.value),
    };
    match op {
        Op::In | Op::NotIn | Op::InRegexp if m.value.is_empty() => {
            Err(ExprError::ValueMustBeNonEmpty {
                op: op.as_str().into(),
            })
        }
        Op::In => Ok(Check::In(Values::new(&m.value))),
        Op::NotIn => Ok(Check::NotIn(Values::new(&m.value))),
        Op::InRegexp => {
            let mut res = Vec::with_capacity(m.value.len());
            for p in &m.value {
                if !budget.regex() {
                    break;
                }
                let re =
                    go_regex_within(p, budget.limits.max_regex_nfa_bytes).map_err(|reason| {
                        ExprError::BadRegexp {
                            pattern: p.clone(),
                            reason,
                        }
                    })?;
                if !budget.regex_bytes(re.memory_usage()) {
                    break;
                }
                res.push((re, anchored_prefix(p)));
            }
            Ok(Check::Regexp(res))
        }
        Op::IsTrue | Op::IsFalse if !m.value.is_empty() => Err(ExprError::ValueMustBeEmpty {
            op: op.as_str().into(),
            value: go_list(&m.value),
        }),
        Op::IsTrue => Ok(Check::IsTrue),
        Op::IsFalse => Ok(Check::IsFalse),
        Op::Gt | Op::Ge | Op::Lt | Op::Le | Op::GtLt | Op::GeLe => {
            let two = matches!(op, Op::GtLt | Op::GeLe);
            match (two, m.value.len()) {
                (false, 1) | (true, 2) => {}
                (false, _) => return Err(count_error("one element")),
                (true, _) => return Err(count_error("two elements")),
            }
            let shown = go_expr(m);
            match m.value_type.as_str() {
                "version" => {
                    let parse = |b: &String| {
                        Version::parse(b).ok_or_else(|| ExprError::BoundNotAVersion {
                            bound: b.clone(),
                            expr: shown.clone(),
                        })
                    };
                    let bounds = if two {
                        parse(&m.value[0]).and_then(|lo| Ok(Bounds::Two(lo, parse(&m.value[1])?)))
                    } else {
                        parse(&m.value[0]).map(Bounds::One)
                    };
                    Ok(Check::Version(op, bounds))
                }
                "" => {
                    let parse = |b: &String| {
                        go_atoi(b).ok_or_else(|| ExprError::BoundNotANumber {
                            bound: b.clone(),
                            expr: shown.clone(),
                        })
                    };
                    let bounds = if two {
                        parse(&m.value[0]).and_then(|lo| {
                            let hi = parse(&m.value[1])?;
                            if lo >= hi {
                                return Err(ExprError::BoundsOrder {
                                    op: op.as_str().into(),
                                    value: go_list(&m.value),
                                });
                            }
                            Ok(Bounds::Two(lo, hi))
                        })
                    } else {
                        parse(&m.value[0]).map(Bounds::One)
                    };
                    Ok(Check::Int(op, bounds))
                }
                other => Err(ExprError::BadType {
                    op: op.as_str().into(),
                    value_type: other.into(),
                }),
            }
        }
        Op::Any | Op::Exists | Op::DoesNotExist => {
            unreachable!("compile_check is only called for value ops")
        }
    }
}

impl Check {
    fn eval(&self, v: &str) -> Result<bool, ExprError> {
        Ok(match self {
            Check::In(list) => list.contains(v),
            Check::NotIn(list) => !list.contains(v),
            Check::Regexp(res) => res.iter().any(|(re, _)| re.is_match(v)),
            Check::IsTrue => v == "true",
            Check::IsFalse => v == "false",
            Check::Int(op, bounds) => {
                // NFD parses the node's value before the bound: its error wins.
                let x = go_atoi(v).ok_or_else(|| ExprError::InputNotANumber(v.into()))?;
                compare(*op, &x, bounds.as_ref().map_err(Clone::clone)?)
            }
            Check::Version(op, bounds) => {
                let x = Version::parse(v).ok_or_else(|| ExprError::InputNotAVersion(v.into()))?;
                compare(*op, &x, bounds.as_ref().map_err(Clone::clone)?)
            }
        })
    }
}

fn compare<T: PartialOrd>(op: Op, x: &T, bounds: &Bounds<T>) -> bool {
    match (op, bounds) {
        (Op::Gt, Bounds::One(b)) => x > b,
        (Op::Ge, Bounds::One(b)) => x >= b,
        (Op::Lt, Bounds::One(b)) => x < b,
        (Op::Le, Bounds::One(b)) => x <= b,
        (Op::GtLt, Bounds::Two(lo, hi)) => x > lo && x < hi,
        (Op::GeLe, Bounds::Two(lo, hi)) => x >= lo && x <= hi,
        _ => false,
    }
}

/// Go's `strconv.Atoi`: optional sign, ASCII digits only (leading zeros fine), fits in i64.
pub fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// A version as NFD compares it (Masterminds/semver `NewVersion`, then the prerelease
/// dropped): `v?MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]`, compared on the three numbers.
/// So `5.15.0-91-generic` equals `5.15.0`, `6.1` is `6.1.0`, and `1.2.3.4` is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let end = s.find(['-', '+']).unwrap_or(s.len());
        let (core, rest) = s.split_at(end);
        let mut nums = [0u64; 3];
        for (i, part) in core.split('.').enumerate() {
            if i == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            nums[i] = part.parse().ok()?;
        }
        let (pre, build) = match rest.strip_prefix('-') {
            Some(r) => match r.split_once('+') {
                Some((p, b)) => (Some(p), Some(b)),
                None => (Some(r), None),
            },
            None => (None, rest.strip_prefix('+')),
        };
        let ident_ok =
            |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if let Some(p) = pre {
            for id in p.split('.') {
                let numeric = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
                if !ident_ok(id) || (numeric && id.len() > 1 && id.starts_with('0')) {
                    return None;
                }
            }
        }
        if let Some(b) = build {
            if !b.split('.').all(ident_ok) {
                return None;
            }
        }
        Some(Version(nums[0], nums[1], nums[2]))
    }
}

/// Compiles a Go RE2 pattern with the same meaning in Rust's regex crate. The syntaxes agree
/// except that Go's `\d \w \s \b` are ASCII-only (Rust's are Unicode) and Go has `\Q...\E`.
/// A Go regexp (RE2 syntax and meaning) compiled with the default size bound.
pub fn go_regex(pattern: &str) -> Result<Regex, String> {
    go_regex_within(pattern, Limits::default().max_regex_nfa_bytes)
}

/// Patterns are matched against short feature values and names: a small lazy-DFA cache per
/// pattern is plenty, and keeps thousands of patterns from each growing megabytes of it.
const REGEX_CACHE_BYTES: usize = 64 << 10;

/// A Go regexp whose compiled form may take at most `nfa_bytes` (larger: an error, as Go's
/// "expression too large").
fn go_regex_within(pattern: &str, nfa_bytes: usize) -> Result<Regex, String> {
    let config = Regex::config()
        .nfa_size_limit(Some(nfa_bytes))
        .onepass_size_limit(Some(nfa_bytes))
        .dfa_size_limit(Some(nfa_bytes))
        .hybrid_cache_capacity(REGEX_CACHE_BYTES);
    Regex::builder()
        .configure(config)
        .build(&translate_go_regex(pattern))
        .map_err(|e| {
            if let Some(limit) = e.size_limit() {
                return format!("expression too large (compiled it exceeds {limit} bytes)");
            }
            let text = match e.syntax_error() {
                Some(s) => s.to_string(),
                None => e.to_string(),
            };
            text.lines()
                .last()
                .unwrap_or("invalid pattern")
                .trim_start_matches("error: ")
                .to_string()
        })
}

/// The values of `In`/`NotIn`: a list for the usual few, a set for long lists (a spec may list
/// thousands, checked against every element of a feature).
#[derive(Debug, Clone)]
enum Values {
    List(Vec<String>),
    Set(HashSet<String>),
}

impl Values {
    fn new(v: &[String]) -> Values {
        if v.len() > 16 {
            Values::Set(v.iter().cloned().collect())
        } else {
            Values::List(v.to_vec())
        }
    }

    fn contains(&self, v: &str) -> bool {
        match self {
            Values::List(l) => l.iter().any(|x| x == v),
            Values::Set(s) => s.contains(v),
        }
    }
}

fn translate_go_regex(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let class = match e {
                    'd' => Some("[0-9]"),
                    'D' => Some("[^0-9]"),
                    'w' => Some("[0-9A-Za-z_]"),
                    'W' => Some("[^0-9A-Za-z_]"),
                    's' => Some("[\\t\\n\\x0C\\r ]"),
                    'S' => Some("[^\\t\\n\\x0C\\r ]"),
                    _ => None,
                };
                match (e, class) {
                    (_, Some(cls)) => out.push_str(cls),
                    ('b' | 'B', _) if !in_class => {
                        out.push_str("(?-u:\\");
                        out.push(e);
                        out.push(')');
                    }
                    ('Q', _) if !in_class => {
                        let mut lit = String::new();
                        while let Some(q) = chars.next() {
                            if q == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            lit.push(q);
                        }
                        out.push_str(&regex::escape(&lit));
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // A POSIX class like [:alpha:] inside a bracket expression.
                out.push('[');
                for q in chars.by_ref() {
                    out.push(q);
                    if q == ']' {
                        break;
                    }
                }
            }
            '[' if in_class => out.push_str("\\["),
            ']' if in_class && !at_class_start => {
                in_class = false;
                out.push(']');
            }
            ']' if in_class => out.push_str("\\]"),
            _ => out.push(c),
        }
    }
    out
}

/// The literal text a pattern's matches must start with: `^VFIO_` -> `VFIO_`, `^AVX512(F|BW)`
/// -> `AVX512`, `^ab?` -> `a`. None when the pattern is not anchored with a literal or uses
/// flags or alternation at the top level that could change that.
fn anchored_prefix(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix('^')?;
    if rest.contains('|') && !rest.contains('(') {
        return None;
    }
    let mut prefix = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if "\\.+*?()|[]{}^$".contains(c) {
            break;
        }
        prefix.push(c);
        chars.next();
    }
    // A quantifier makes the last literal optional or repeatable.
    if matches!(chars.peek(), Some('*' | '?' | '{' | '+')) {
        prefix.pop();
    }
    // A top-level alternation after a group (`^a(b)|c`) could match without the prefix.
    if has_top_level_alternation(rest) {
        return None;
    }
    (!prefix.is_empty()).then_some(prefix)
}

fn has_top_level_alternation(p: &str) -> bool {
    let (mut depth, mut escaped, mut in_class) = (0i32, false, false);
    for c in p.chars() {
        match (escaped, in_class, c) {
            (true, _, _) => escaped = false,
            (_, _, '\\') => escaped = true,
            (_, false, '[') => in_class = true,
            (_, true, ']') => in_class = false,
            (_, false, '(') => depth += 1,
            (_, false, ')') => depth -= 1,
            (_, false, '|') if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// Go's `%v` of a `[]string`: `[a b]`.
pub fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// NFD's `MatchExpression.String()`: `{op: "In", value: ["a" "b"]}` or `{op: "Exists"}`.
pub fn go_expr(m: &MatchExpression) -> String {
    if m.value.is_empty() {
        format!("{{op: {}}}", go_quote(&m.op))
    } else {
        let vals: Vec<String> = m.value.iter().map(|v| go_quote(v)).collect();
        format!("{{op: {}, value: [{}]}}", go_quote(&m.op), vals.join(" "))
    }
}

/// Go's `%q` of a string (strconv.Quote) for the characters specs contain.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(op: &str, value: &[&str], ty: &str) -> Expr {
        let mut m = MatchExpression::new(op, value);
        m.value_type = ty.into();
        Expr::compile(&m)
    }

    #[test]
    fn errors_vs_no_match() {
        // Unknown op and a value on Exists are errors even for an absent element.
        assert!(expr("Foo", &[], "").eval(false, None).is_err());
        assert!(expr("Exists", &["x"], "").eval(false, None).is_err());
        // A malformed value op on an absent element or a flag is a plain no-match.
        assert_eq!(expr("Gt", &["x"], "").eval(false, None), Ok(false));
        assert_eq!(expr("In", &[], "").eval(true, None), Ok(false));
        assert!(expr("Gt", &["x"], "").eval(true, Some("1")).is_err());
        // NotIn on an absent element is false.
        assert_eq!(expr("NotIn", &["a"], "").eval(false, None), Ok(false));
        assert_eq!(expr("NotIn", &["a"], "").eval(true, Some("b")), Ok(true));
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(go_atoi("+007"), Some(7));
        assert_eq!(go_atoi("-3"), Some(-3));
        for bad in ["", " 1", "1 ", "0x10", "1.5", "+", "99999999999999999999"] {
            assert_eq!(go_atoi(bad), None, "{bad:?}");
        }
        assert_eq!(
            expr("GtLt", &["5", "1"], "")
                .eval(true, Some("3"))
                .unwrap_err(),
            ExprError::BoundsOrder {
                op: "GtLt".into(),
                value: "[5 1]".into()
            }
        );
        assert_eq!(
            expr("GeLe", &["1", "3"], "").eval(true, Some("3")),
            Ok(true)
        );
        // The node's value is parsed before the bound, so its error is the one reported.
        assert_eq!(
            expr("Gt", &["x"], "").eval(true, Some("y")),
            Err(ExprError::InputNotANumber("y".into()))
        );
    }

    #[test]
    fn versions_compare_like_nfd() {
        let v = |s| Version::parse(s);
        assert_eq!(v("5.15.0-91-generic"), v("5.15.0"));
        assert_eq!(v("6.1"), Some(Version(6, 1, 0)));
        assert_eq!(v("v2"), Some(Version(2, 0, 0)));
        assert_eq!(v("1.2.3+build.1"), Some(Version(1, 2, 3)));
        assert_eq!(v("010.02"), Some(Version(10, 2, 0)));
        for bad in [
            "1.2.3.4",
            "",
            "v",
            "1.",
            "1..2",
            "5.15.0-091",
            "1.2-",
            "1.2+",
            "x1",
            "1.2.3-a..b",
        ] {
            assert_eq!(v(bad), None, "{bad:?}");
        }
        assert_eq!(
            expr("Ge", &["5.15"], "version").eval(true, Some("6.1.0-rpi7")),
            Ok(true)
        );
        assert!(expr("GtLt", &["2", "1"], "version").never_matches());
        assert!(expr("Gt", &["1"], "semver").eval(true, Some("2")).is_err());
    }

    #[test]
    fn regexes_behave_like_go() {
        let m = |p: &str, s: &str| go_regex(p).unwrap().is_match(s);
        assert!(m("val-[0-9]$", "val-1"));
        assert!(!m(r"^\d+$", "١٢")); // Arabic-Indic digits: not \d in Go
        assert!(m(r"^\w+$", "a_1"));
        assert!(!m(r"^\w+$", "é"));
        assert!(m(r"[\d.]+", "1.2"));
        assert!(m(r"^\Qa.b\E$", "a.b"));
        assert!(!m(r"^\Qa.b\E$", "axb"));
        assert!(m(r"[[:alpha:]]", "x"));
        assert!(m(r"[]a]", "]"));
        assert!(m(r"\bfoo\b", "a foo b"));
        assert!(go_regex("(").is_err());
    }

    #[test]
    fn anchored_prefixes() {
        let p = |s: &str| anchored_prefix(s);
        assert_eq!(p("^VFIO_").as_deref(), Some("VFIO_"));
        assert_eq!(p("^AVX512(F|BW)$").as_deref(), Some("AVX512"));
        assert_eq!(p("^ab?c").as_deref(), Some("a"));
        assert_eq!(p("^a|b"), None);
        assert_eq!(p("^(a)|b"), None);
        assert_eq!(p("AVX"), None);
        assert_eq!(p("^(?i)avx"), None);
        assert_eq!(p("^[A]"), None);
        assert_eq!(p("^a\\.b").as_deref(), Some("a"));
    }

    #[test]
    fn go_strings() {
        let m = MatchExpression::new("In", &["a", "b\"c"]);
        assert_eq!(go_expr(&m), r#"{op: "In", value: ["a" "b\"c"]}"#);
        assert_eq!(
            go_expr(&MatchExpression::new("Exists", &[])),
            r#"{op: "Exists"}"#
        );
    }
}
