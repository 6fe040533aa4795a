//! YAML 1.1 as NFD's inputs need it: nodes with positions, go-yaml v2's scalar resolution and
//! sigs.k8s.io/yaml's reading of scalars as strings. A leaf: it depends on nothing of ours.
//!
//! NFD parses specs with sigs.k8s.io/yaml, which decodes with go-yaml v2 (YAML 1.1) and then
//! converts every scalar whose target field is a string back to text. So an unquoted `y` or
//! `on` becomes "true", `0x10` becomes "16", `010` becomes "8" and `6.10` becomes "6.1". We
//! reproduce that reading exactly, so a spec means the same to image-compat as to NFD, and we
//! keep each scalar's original text and position so `validate-spec` can warn where the two
//! readings differ.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node came from in the source document (1-based); zero when built in code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A YAML node with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in document order; duplicate keys are kept (the decoder decides).
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The text as written (after YAML unescaping of quoted styles).
    pub text: String,
    /// What go-yaml v2 resolves it to.
    pub value: Value11,
}

/// A scalar as YAML 1.1 (go-yaml v2) types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value11 {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str,
}

impl Scalar {
    /// The string sigs.k8s.io/yaml hands to a Go string field, or None for null
    /// (which leaves the field empty).
    pub fn as_go_string(&self) -> Option<String> {
        match self.value {
            Value11::Null => None,
            Value11::Bool(b) => Some(b.to_string()),
            Value11::Int(i) => Some(i.to_string()),
            Value11::Float(f) => Some(go_format_float32(f)),
            Value11::Str => Some(self.text.clone()),
        }
    }

    /// True when NFD's reading of this scalar as a string differs from its text.
    pub fn reads_differently(&self) -> bool {
        // Strings, the common case, read as written: decided without building the reading.
        match self.value {
            Value11::Str => false,
            Value11::Null => !self.text.is_empty(),
            Value11::Bool(b) => self.text != if b { "true" } else { "false" },
            _ => self.as_go_string().is_some_and(|s| s != self.text),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value11::Null => "null",
            Value11::Bool(_) => "boolean",
            Value11::Int(_) => "integer",
            Value11::Float(_) => "float",
            Value11::Str => "string",
        }
    }
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(s) => s.type_name(),
            NodeKind::Seq(_) => "list",
            NodeKind::Map(_) => "map",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(
            &self.kind,
            NodeKind::Scalar(Scalar {
                value: Value11::Null,
                ..
            })
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("line {line} column {col}: {message}")]
    Syntax {
        line: usize,
        col: usize,
        message: String,
    },
    #[error("the document has more than one YAML document; a spec is one document")]
    MultipleDocuments,
    #[error("line {line} column {col}: {message}")]
    Invalid {
        line: usize,
        col: usize,
        message: String,
    },
}

/// Bounds on what one document may make the reader build: untrusted documents (specs from a
/// registry) must not expand into more memory or time than their bytes suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nodes (scalars, lists, maps) after aliases are expanded: each alias counts the nodes of
    /// what it refers to, so a few hundred bytes of nested aliases cannot become billions.
    pub max_nodes: usize,
    /// Scalar text after aliases are expanded, in bytes.
    pub max_text_bytes: usize,
    /// Nesting of lists and maps.
    pub max_depth: usize,
}

impl Limits {
    /// Far above what any config or features file needs, far below what exhausts a node.
    /// Specs are read within tighter ones (`spec::MAX_BYTES`).
    pub const DEFAULT: Limits = Limits {
        max_nodes: 400_000,
        max_text_bytes: 8 << 20,
        max_depth: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Parses one YAML (or JSON) document within the default [`Limits`]. An empty document yields
/// `None`.
pub fn load(text: &str) -> Result<Option<Node>, YamlError> {
    load_with(text, &Limits::default())
}

/// Parses one YAML (or JSON) document within `limits`.
pub fn load_with(text: &str, limits: &Limits) -> Result<Option<Node>, YamlError> {
    // go-yaml (NFD's reader) skips a byte order mark and refuses control characters.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_characters(text)?;
    let mut builder = Builder {
        limits: *limits,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    // The event stream is driven here, not by `Parser::load`: that recurses once per level of
    // nesting, whatever the receiver says, so `- - - - ...` (500,000 levels in 1 MiB) overflows
    // the stack long before the builder's depth limit can stop it. Here the first error ends
    // the reading, the depth limit included.
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| YamlError::Syntax {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let end = ev == Event::StreamEnd;
        builder.on_event(ev, mark);
        if let Some(err) = builder.error.take() {
            return Err(err);
        }
        if end {
            break;
        }
    }
    match builder.docs.len() {
        0 => Ok(None),
        1 => Ok(builder.docs.pop()),
        _ => Err(YamlError::MultipleDocuments),
    }
}

enum Frame {
    Seq(Vec<Node>, Pos, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Pos, usize),
}

/// YAML 1.1's printable characters, as go-yaml v2 checks them: tab, LF, CR, NEL and
/// everything from space on except DEL, the C1 controls, surrogates and U+FFFE/U+FFFF. Any
/// other character (a NUL, an escape) is an error at its position, never the silent end of the
/// document.
fn check_characters(text: &str) -> Result<(), YamlError> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{85}')
            || ('\u{20}'..='\u{7e}').contains(&c)
            || ('\u{a0}'..='\u{d7ff}').contains(&c)
            || ('\u{e000}'..='\u{fffd}').contains(&c)
            || c >= '\u{10000}'
    };
    let Some(at) = text.find(|c: char| !printable(c)) else {
        return Ok(());
    };
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let c = text[at..].chars().next().unwrap_or_default();
    Err(YamlError::Invalid {
        line,
        col,
        message: format!(
            "control characters are not allowed (U+{:04X} here)",
            c as u32
        ),
    })
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    /// Anchored nodes with their expanded size (nodes, text bytes).
    anchors: HashMap<usize, (Node, usize, usize)>,
    error: Option<YamlError>,
    limits: Limits,
    /// Nodes and text built so far, aliases expanded.
    nodes: usize,
    text_bytes: usize,
    /// Size of each open frame's content so far, to know an anchored node's size.
    sizes: Vec<(usize, usize)>,
}

fn pos_of(mark: &Marker) -> Pos {
    Pos {
        line: mark.line(),
        col: mark.col() + 1,
    }
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError::Invalid {
                line: pos.line,
                col: pos.col,
                message,
            });
        }
    }

    /// Counts `nodes` nodes and `text` bytes against the limits; false (and the error set)
    /// when they are exceeded.
    fn count(&mut self, pos: Pos, nodes: usize, text: usize) -> bool {
        self.nodes = self.nodes.saturating_add(nodes);
        self.text_bytes = self.text_bytes.saturating_add(text);
        for s in &mut self.sizes {
            s.0 = s.0.saturating_add(nodes);
            s.1 = s.1.saturating_add(text);
        }
        let l = self.limits;
        let over = if self.nodes > l.max_nodes {
            Some(format!(
                "the document expands to more than {} nodes (aliases count the nodes they repeat)",
                l.max_nodes
            ))
        } else if self.text_bytes > l.max_text_bytes {
            Some(format!(
                "the document expands to more than {} bytes of text (aliases count the text they repeat)",
                l.max_text_bytes
            ))
        } else {
            None
        };
        match over {
            Some(message) => {
                self.fail(pos, message);
                false
            }
            None => true,
        }
    }

    fn open(&mut self, frame: Frame, pos: Pos) {
        if self.stack.len() >= self.limits.max_depth {
            self.fail(
                pos,
                format!(
                    "lists and maps nest deeper than {} levels",
                    self.limits.max_depth
                ),
            );
            return;
        }
        if self.count(pos, 1, 0) {
            self.stack.push(frame);
            self.sizes.push((1, 0));
        }
    }

    fn push(&mut self, node: Node, anchor: usize, size: (usize, usize)) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size.0, size.1));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(items, _, _)) => items.push(node),
            Some(Frame::Map(entries, key, _, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = pos_of(&mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => match resolve(&text, style, tag.as_ref()) {
                Ok(value) => {
                    let size = (1, text.len());
                    if self.count(pos, size.0, size.1) {
                        let node = Node {
                            kind: NodeKind::Scalar(Scalar { text, value }),
                            pos,
                        };
                        self.push(node, anchor, size);
                    }
                }
                Err(msg) => self.fail(pos, msg),
            },
            Event::SequenceStart(anchor, _) => self.open(Frame::Seq(Vec::new(), pos, anchor), pos),
            Event::MappingStart(anchor, _) => {
                self.open(Frame::Map(Vec::new(), None, pos, anchor), pos)
            }
            Event::SequenceEnd => {
                let size = self.sizes.pop().unwrap_or_default();
                if let Some(Frame::Seq(items, p, anchor)) = self.stack.pop() {
                    let node = Node {
                        kind: NodeKind::Seq(items),
                        pos: p,
                    };
                    self.push(node, anchor, size);
                }
            }
            Event::MappingEnd => {
                let size = self.sizes.pop().unwrap_or_default();
                if let Some(Frame::Map(entries, _, p, anchor)) = self.stack.pop() {
                    match merge_keys(entries) {
                        Ok(entries) => {
                            let node = Node {
                                kind: NodeKind::Map(entries),
                                pos: p,
                            };
                            self.push(node, anchor, size);
                        }
                        Err(msg) => self.fail(p, msg),
                    }
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                // Counted before it is copied: the copy is then bounded by the limits.
                Some(&(_, nodes, text)) => {
                    if self.count(pos, nodes, text) {
                        let node = self.anchors[&id].0.clone();
                        self.push(node, 0, (nodes, text));
                    }
                }
                None => self.fail(pos, "alias to an unknown anchor".into()),
            },
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
}

/// Applies YAML merge keys (`<<: *anchor` or `<<: [*a, *b]`), as go-yaml v2 does: keys already
/// in the mapping win over merged ones, earlier merged maps over later ones. Linear in the
/// number of keys.
fn merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, String> {
    let is_merge = |k: &Node| matches!(&k.kind, NodeKind::Scalar(Scalar { text, value: Value11::Str }) if text == "<<");
    if !entries.iter().any(|(k, _)| is_merge(k)) {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    let mut merged_keys = std::collections::HashSet::new();
    for (k, v) in entries {
        if !is_merge(&k) {
            own.push((k, v));
            continue;
        }
        let sources = match v.kind {
            NodeKind::Map(m) => vec![m],
            NodeKind::Seq(items) => items
                .into_iter()
                .map(|i| match i.kind {
                    NodeKind::Map(m) => Ok(m),
                    _ => Err("a merge key (<<) list must hold maps".to_string()),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err("a merge key (<<) needs a map or a list of maps".into()),
        };
        for src in sources {
            for (mk, mv) in src {
                // Keys that are not scalars never compare equal.
                let first = key_text(&mk).is_none_or(|t| merged_keys.insert(t));
                if first {
                    merged.push((mk, mv));
                }
            }
        }
    }
    let own_keys: std::collections::HashSet<Option<String>> =
        own.iter().filter_map(|(k, _)| key_text(k)).collect();
    for (mk, mv) in merged {
        if !key_text(&mk).is_some_and(|t| own_keys.contains(&t)) {
            own.push((mk, mv));
        }
    }
    Ok(own)
}

/// A scalar key as NFD compares keys (its Go string, None for null); None for a key that is
/// not a scalar, which equals no other key.
fn key_text(k: &Node) -> Option<Option<String>> {
    match &k.kind {
        NodeKind::Scalar(s) => Some(s.as_go_string()),
        _ => None,
    }
}

/// The node as JSON, with scalars read as sigs.k8s.io/yaml reads them into untyped data:
/// null, booleans and integers keep their type; floats become the text NFD would see.
pub fn to_json(node: &Node) -> Result<serde_json::Value, YamlError> {
    use serde_json::Value;
    Ok(match &node.kind {
        NodeKind::Scalar(s) => match s.value {
            Value11::Null => Value::Null,
            Value11::Bool(b) => Value::Bool(b),
            Value11::Int(i) => match (i64::try_from(i), u64::try_from(i)) {
                (Ok(v), _) => Value::from(v),
                (_, Ok(v)) => Value::from(v),
                _ => Value::String(i.to_string()),
            },
            Value11::Float(f) => Value::String(go_format_float32(f)),
            Value11::Str => Value::String(s.text.clone()),
        },
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        NodeKind::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (k, v) in entries {
                let key = match &k.kind {
                    NodeKind::Scalar(s) if s.value != Value11::Null => {
                        s.as_go_string().unwrap_or_default()
                    }
                    _ => {
                        return Err(YamlError::Invalid {
                            line: k.pos.line,
                            col: k.pos.col,
                            message: format!("a key must be a string, found a {}", k.type_name()),
                        })
                    }
                };
                map.insert(key, to_json(v)?);
            }
            Value::Object(map)
        }
    })
}

/// A string as a YAML scalar that every YAML 1.1 or 1.2 reader reads back as the same string:
/// plain when that is safe, double-quoted (JSON escaping, valid YAML) otherwise.
pub fn scalar(s: &str) -> String {
    let safe_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-/+@=".contains(c));
    let safe_start = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/');
    if safe_chars && safe_start && resolve_plain(s) == Value11::Str {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// go-yaml v2's `resolve` for one scalar: quoted and block scalars are strings; plain ones may
/// be null, bool (YAML 1.1 spellings), int (decimal, 0x, 0o, leading-0 octal, 0b, `_`
/// separators) or float.
fn resolve(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value11, String> {
    let plain = matches!(style, TScalarStyle::Plain);
    let explicit = tag.map(|t| {
        if t.handle == "!!" {
            format!("!!{}", t.suffix)
        } else if t.handle == "tag:yaml.org,2002:" || t.suffix.starts_with("tag:yaml.org,2002:") {
            format!("!!{}", t.suffix.trim_start_matches("tag:yaml.org,2002:"))
        } else {
            format!("{}{}", t.handle, t.suffix)
        }
    });
    let resolved = if plain || explicit.is_some() {
        resolve_plain(text)
    } else {
        Value11::Str
    };
    match explicit.as_deref() {
        None => Ok(if plain { resolved } else { Value11::Str }),
        Some("!!str") => Ok(Value11::Str),
        Some("!!null") if resolved == Value11::Null => Ok(resolved),
        Some("!!bool") if matches!(resolved, Value11::Bool(_)) => Ok(resolved),
        Some("!!int") if matches!(resolved, Value11::Int(_)) => Ok(resolved),
        Some("!!float") => match resolved {
            Value11::Float(_) => Ok(resolved),
            Value11::Int(i) => Ok(Value11::Float(i as f64)),
            _ => Err(format!("cannot decode `{text}` as a !!float")),
        },
        Some(t @ ("!!null" | "!!bool" | "!!int")) => {
            Err(format!("cannot decode `{text}` as a {t}"))
        }
        Some(t) => Err(format!("unsupported YAML tag {t}")),
    }
}

fn resolve_plain(text: &str) -> Value11 {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value11::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Value11::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Value11::Bool(false)
        }
        ".nan" | ".NaN" | ".NAN" => return Value11::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value11::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value11::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if first == b'.' {
        return go_parse_float(text).map_or(Value11::Str, Value11::Float);
    }
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return Value11::Str;
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(i) = go_parse_int_base0(&plain) {
        return Value11::Int(i);
    }
    if is_yaml_float(&plain) {
        if let Some(f) = go_parse_float(&plain) {
            return Value11::Float(f);
        }
    }
    Value11::Str
}

/// Go's `strconv.ParseInt(s, 0, 64)` falling back to `ParseUint(s, 0, 64)`: optional sign,
/// `0x`/`0o`/`0b` prefixes, a leading `0` meaning octal.
fn go_parse_int_base0(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if neg {
        (magnitude <= 1u128 << 63).then(|| -(magnitude as i128))
    } else {
        (magnitude <= u64::MAX as u128).then_some(magnitude as i128)
    }
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Decimal floats as Go's ParseFloat reads the forms that reach it here.
fn go_parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c))) {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, which sigs.k8s.io/yaml uses to turn a YAML float
/// into a string: the shortest digits that round-trip a float32, `%e` form when the exponent
/// is below -4 or at least 6 (so `6.10` -> "6.1", `1e6` -> "1e+06").
pub fn go_format_float32(f: f64) -> String {
    let x = f as f32;
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:e}", x.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if x < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (d0, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{d0}{frac}e{esign}{:02}", exp.abs());
    }
    let dp = exp + 1;
    let nd = digits.len() as i32;
    let s = if dp <= 0 {
        format!("0.{}{}", "0".repeat((-dp) as usize), digits)
    } else if dp >= nd {
        format!("{}{}", digits, "0".repeat((dp - nd) as usize))
    } else {
        let (a, b) = digits.split_at(dp as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(doc: &str) -> Scalar {
        let node = load(&format!("k: {doc}")).unwrap().unwrap();
        match node.kind {
            NodeKind::Map(mut e) => match e.remove(0).1.kind {
                NodeKind::Scalar(s) => s,
                other => panic!("not a scalar: {other:?}"),
            },
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn yaml11_scalars_read_as_nfd_reads_them() {
        for (doc, want) in [
            ("y", Some("true")),
            ("on", Some("true")),
            ("No", Some("false")),
            ("'y'", Some("y")),
            ("0x10", Some("16")),
            ("010", Some("8")),
            ("0o17", Some("15")),
            ("0b101", Some("5")),
            ("1_000", Some("1000")),
            ("08", Some("8")),
            ("6.10", Some("6.1")),
            ("1.0", Some("1")),
            ("1e6", Some("1e+06")),
            ("123456", Some("123456")),
            ("0.00001", Some("1e-05")),
            ("0.0001", Some("0.0001")),
            ("1.23456789", Some("1.2345679")),
            ("-2.5", Some("-2.5")),
            (".5", Some("0.5")),
            ("5.15.0", Some("5.15.0")),
            ("10de", Some("10de")),
            ("\"6.10\"", Some("6.10")),
            ("~", None),
            ("null", None),
            ("2024-01-02", Some("2024-01-02")),
            ("1:30", Some("1:30")),
            ("+5", Some("5")),
            ("-0x10", Some("-16")),
            ("18446744073709551615", Some("18446744073709551615")),
        ] {
            assert_eq!(scalar(doc).as_go_string().as_deref(), want, "scalar {doc}");
        }
    }

    #[test]
    fn flags_what_reads_differently() {
        assert!(scalar("y").reads_differently());
        assert!(scalar("6.10").reads_differently());
        assert!(!scalar("10").reads_differently());
        assert!(!scalar("true").reads_differently());
        assert!(!scalar("'y'").reads_differently());
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc = "a: &x {p: 1, q: 2}\nb: *x\nc:\n  <<: *x\n  q: 3\n";
        let node = load(doc).unwrap().unwrap();
        let NodeKind::Map(entries) = node.kind else {
            panic!("map expected")
        };
        assert_eq!(entries[0].1, entries[1].1);
        let NodeKind::Map(c) = &entries[2].1.kind else {
            panic!("map expected")
        };
        let keys: Vec<_> = c
            .iter()
            .map(|(k, v)| match (&k.kind, &v.kind) {
                (NodeKind::Scalar(k), NodeKind::Scalar(v)) => (k.text.clone(), v.text.clone()),
                _ => panic!("scalars expected"),
            })
            .collect();
        assert_eq!(
            keys,
            vec![("q".to_string(), "3".to_string()), ("p".into(), "1".into())]
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_deep_recursion() {
        // On a small stack: yaml-rust2's `Parser::load` recursed once per level and overflowed
        // here (the plugin parses on blocking-pool threads of 2 MiB).
        let text = format!("a:\n  {}x\n", "- ".repeat(200_000));
        let flow = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let errors = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || [load(&text).unwrap_err(), load(&flow).unwrap_err()])
            .unwrap()
            .join()
            .unwrap();
        assert!(
            errors[0].to_string().contains("deeper than 64 levels"),
            "{}",
            errors[0]
        );
        assert!(errors[1].to_string().contains("line 1"), "{}", errors[1]);
    }

    #[test]
    fn positions_and_errors() {
        let node = load("a:\n  - x\n  - y\n").unwrap().unwrap();
        let NodeKind::Map(entries) = node.kind else {
            panic!("map expected")
        };
        assert_eq!(entries[0].1.pos, Pos { line: 2, col: 3 });
        let err = load("a: [1, 2\n").unwrap_err();
        assert!(err.to_string().contains("line"), "{err}");
        assert!(matches!(
            load("a: 1\n---\nb: 2\n"),
            Err(YamlError::MultipleDocuments)
        ));
        assert!(load("").unwrap().is_none());
        assert!(load("a: !!int x").is_err());
    }

    #[test]
    fn scalars_round_trip() {
        for s in [
            "AVX",
            "vfio-pci",
            "10de",
            "y",
            "on",
            "0x10",
            "6.10",
            "",
            "a: b",
            "-x",
            "#c",
            "1_000",
            "é",
            "iommu_group/type",
            "true",
        ] {
            let doc = format!("k: {}", super::scalar(s));
            assert_eq!(scalar_text_of(&doc), s, "{doc}");
        }
        assert_eq!(super::scalar("AVX"), "AVX");
        assert_eq!(super::scalar("y"), "\"y\"");
    }

    fn scalar_text_of(doc: &str) -> String {
        let node = load(doc).unwrap().unwrap();
        let NodeKind::Map(e) = node.kind else {
            panic!("map")
        };
        match &e[0].1.kind {
            NodeKind::Scalar(s) => s.as_go_string().unwrap_or_default(),
            _ => panic!("scalar"),
        }
    }

    #[test]
    fn json_is_read_too() {
        let node = load(r#"{"version": "v1alpha1", "n": 6.10, "s": "6.10"}"#)
            .unwrap()
            .unwrap();
        let NodeKind::Map(entries) = node.kind else {
            panic!("map expected")
        };
        let text = |n: &Node| match &n.kind {
            NodeKind::Scalar(s) => s.as_go_string(),
            _ => None,
        };
        assert_eq!(text(&entries[1].1).as_deref(), Some("6.1"));
        assert_eq!(text(&entries[2].1).as_deref(), Some("6.10"));
    }
}
