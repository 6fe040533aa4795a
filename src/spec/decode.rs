//! Turns a YAML tree into a `Spec` the way NFD's sigs.k8s.io/yaml + encoding/json would,
//! collecting every error and warning with its location instead of stopping at the first.

use super::diag::{Diagnostic, Diags, Path, Severity};
use super::types::*;
use crate::yaml::{Node, NodeKind, Scalar, Value11};

pub(crate) struct Decoder {
    pub diags: Diags,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            diags: Diags::default(),
        }
    }

    fn push(&mut self, severity: Severity, pos: Pos, path: &Path, message: String) {
        self.diags.push(Diagnostic {
            severity,
            pos,
            path: path.to_string(),
            message,
            lazy: false,
        });
    }

    fn error(&mut self, node: &Node, path: &Path, message: String) {
        self.push(Severity::Error, node.pos, path, message);
    }

    fn warn(&mut self, pos: Pos, path: &Path, message: String) {
        self.push(Severity::Warning, pos, path, message);
    }

    pub fn spec(&mut self, root: Option<&Node>) -> Spec {
        let mut spec = Spec::default();
        let Some(root) = root else {
            return spec;
        };
        let root_path = Path::ROOT;
        let Some(fields) = self.fields(root, &root_path, &["version", "compatibilities"]) else {
            return spec;
        };
        for (name, node) in fields {
            let p = root_path.field(name);
            match name {
                "version" => spec.version = self.string(node, &p),
                _ => spec.compatibilities = self.list(node, &p, |d, n, p| d.compatibility(n, p)),
            }
        }
        spec
    }

    fn compatibility(&mut self, node: &Node, path: &Path) -> Compatibility {
        let mut c = Compatibility {
            pos: node.pos,
            ..Default::default()
        };
        let Some(fields) = self.fields(node, path, &["rules", "weight", "tag", "description"])
        else {
            return c;
        };
        for (name, n) in fields {
            let p = path.field(name);
            match name {
                "rules" => c.rules = self.list(n, &p, |d, n, p| d.rule(n, p)),
                "weight" => c.weight = self.int(n, &p),
                "tag" => c.tag = self.string(n, &p),
                _ => c.description = self.string(n, &p),
            }
        }
        c
    }

    fn rule(&mut self, node: &Node, path: &Path) -> GroupRule {
        let mut r = GroupRule {
            pos: node.pos,
            ..Default::default()
        };
        // The name labels every location below it, so read it first.
        let name = peek(node, "name");
        let label = match &name {
            Some(name) => path.quoted(name),
            None => *path,
        };
        let known = ["name", "vars", "varsTemplate", "matchFeatures", "matchAny"];
        let Some(fields) = self.fields(node, &label, &known) else {
            return r;
        };
        for (name, n) in fields {
            let p = label.field(name);
            match name {
                "name" => r.name = self.string(n, &p),
                "vars" => r.vars = self.string_map(n, &p),
                "varsTemplate" => r.vars_template = self.string(n, &p),
                "matchFeatures" => {
                    r.match_features =
                        (!n.is_null()).then(|| self.list(n, &p, |d, n, p| d.term(n, p)))
                }
                _ => r.match_any = self.list(n, &p, |d, n, p| d.match_any(n, p)),
            }
        }
        r
    }

    fn match_any(&mut self, node: &Node, path: &Path) -> MatchAnyElem {
        let mut m = MatchAnyElem {
            pos: node.pos,
            ..Default::default()
        };
        if let Some(fields) = self.fields(node, path, &["matchFeatures"]) {
            for (_, n) in fields {
                let p = path.field("matchFeatures");
                m.match_features = self.list(n, &p, |d, n, p| d.term(n, p));
            }
        }
        m
    }

    fn term(&mut self, node: &Node, path: &Path) -> FeatureMatcherTerm {
        let mut t = FeatureMatcherTerm {
            pos: node.pos,
            ..Default::default()
        };
        let feature = peek(node, "feature");
        let label = match &feature {
            Some(f) => path.paren(f),
            None => *path,
        };
        let known = ["feature", "matchExpressions", "matchName"];
        let Some(fields) = self.fields(node, &label, &known) else {
            return t;
        };
        for (name, n) in fields {
            let p = label.field(name);
            match name {
                "feature" => t.feature = self.string(n, &p),
                "matchExpressions" => t.match_expressions = self.expression_set(n, &p),
                _ => t.match_name = (!n.is_null()).then(|| self.expression(n, &p)),
            }
        }
        t
    }

    fn expression_set(
        &mut self,
        node: &Node,
        path: &Path,
    ) -> Option<Vec<(String, MatchExpression)>> {
        if node.is_null() {
            return None;
        }
        let NodeKind::Map(entries) = &node.kind else {
            self.error(
                node,
                path,
                format!(
                    "expected a map of element names to expressions, found a {}",
                    node.type_name()
                ),
            );
            return None;
        };
        let mut out: LastWins<MatchExpression> = LastWins::default();
        for (k, v) in entries {
            let Some(key) = self.key(k, path) else {
                continue;
            };
            let p = path.field(&key);
            let e = if v.is_null() {
                // NFD reads it (a nil expression) and crashes where its evaluation reaches it.
                self.diags.push(Diagnostic {
                    severity: Severity::Error,
                    pos: v.pos,
                    path: p.to_string(),
                    message: "the expression is empty (null); write {op: Exists} or another \
                              expression"
                        .into(),
                    lazy: true,
                });
                MatchExpression {
                    null: true,
                    pos: v.pos,
                    ..Default::default()
                }
            } else {
                self.expression(v, &p)
            };
            if out.contains(&key) {
                self.warn(
                    k.pos,
                    &p,
                    "duplicate element name; the later expression replaces the earlier one".into(),
                );
            }
            out.insert(key, e);
        }
        Some(out.into_vec())
    }

    fn expression(&mut self, node: &Node, path: &Path) -> MatchExpression {
        let mut e = MatchExpression {
            pos: node.pos,
            ..Default::default()
        };
        let Some(fields) = self.fields(node, path, &["op", "value", "type"]) else {
            return e;
        };
        for (name, n) in fields {
            let p = path.field(name);
            match name {
                "op" => e.op = self.string(n, &p),
                "value" => e.value = self.list(n, &p, |d, n, p| d.string(n, p)),
                _ => e.value_type = self.string(n, &p),
            }
        }
        e
    }

    /// A map's fields matched to `known` names as Go's encoding/json does (exact, else
    /// case-insensitive); unknown fields are warnings, a repeated key keeps the last value.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &Path,
        known: &[&'static str],
    ) -> Option<Vec<(&'static str, &'n Node)>> {
        let entries = match &node.kind {
            NodeKind::Map(e) => e,
            _ if node.is_null() => return Some(Vec::new()),
            _ => {
                let want = known.join(", ");
                self.error(
                    node,
                    path,
                    format!("expected a map (with {want}), found a {}", node.type_name()),
                );
                return None;
            }
        };
        let mut out: Vec<(&'static str, &'n Node)> = Vec::new();
        for (k, v) in entries {
            let Some(key) = self.key(k, path) else {
                continue;
            };
            let here = path.field(&key);
            let field = known.iter().find(|f| **f == key).or_else(|| {
                let f = known.iter().find(|f| f.eq_ignore_ascii_case(&key))?;
                self.warn(
                    k.pos,
                    &here,
                    format!(
                        "field \"{key}\" read as \"{f}\" (NFD matches field names ignoring case)"
                    ),
                );
                Some(f)
            });
            let Some(field) = field else {
                self.warn(
                    k.pos,
                    &here,
                    format!(
                        "unknown field \"{key}\" is ignored (known here: {})",
                        known.join(", ")
                    ),
                );
                continue;
            };
            if let Some(i) = out.iter().position(|(f, _)| f == field) {
                self.warn(
                    k.pos,
                    &here,
                    format!("\"{field}\" is set twice; the last one is used"),
                );
                out.remove(i);
            }
            out.push((field, v));
        }
        Some(out)
    }

    /// A map key as sigs.k8s.io/yaml turns it into a JSON key.
    fn key(&mut self, k: &Node, path: &Path) -> Option<String> {
        match &k.kind {
            NodeKind::Scalar(s) if s.value != Value11::Null => {
                let text = s.as_go_string().unwrap_or_default();
                self.yaml11_warning(s, k.pos, &path.field(&text));
                Some(text)
            }
            _ => {
                self.error(
                    k,
                    path,
                    format!("a key must be a string, found a {}", k.type_name()),
                );
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &Path) -> String {
        match &node.kind {
            NodeKind::Scalar(s) => {
                self.yaml11_warning(s, node.pos, path);
                s.as_go_string().unwrap_or_default()
            }
            _ => {
                self.error(
                    node,
                    path,
                    format!("expected a string, found a {}", node.type_name()),
                );
                String::new()
            }
        }
    }

    fn yaml11_warning(&mut self, s: &Scalar, pos: Pos, path: &Path) {
        if !s.reads_differently() {
            return;
        }
        if !self.diags.room() {
            self.diags.drop_one(Severity::Warning, false);
            return;
        }
        let reading = match s.as_go_string() {
            Some(v) => format!("the string \"{v}\""),
            None => "an empty string".to_string(),
        };
        self.warn(
            pos,
            path,
            format!(
                "unquoted `{}` is a YAML 1.1 {}: NFD (and image-compat) read it as {reading}; \
                 quote it ('{}') if you mean the text",
                s.text,
                s.type_name(),
                s.text
            ),
        );
    }

    fn int(&mut self, node: &Node, path: &Path) -> i64 {
        let value = match &node.kind {
            NodeKind::Scalar(s) => match s.value {
                Value11::Null => Some(0),
                Value11::Int(i) => i64::try_from(i).ok(),
                Value11::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
                _ => None,
            },
            _ => None,
        };
        value.unwrap_or_else(|| {
            self.error(
                node,
                path,
                format!("expected an integer, found a {}", node.type_name()),
            );
            0
        })
    }

    fn list<T>(
        &mut self,
        node: &Node,
        path: &Path,
        mut item: impl FnMut(&mut Self, &Node, &Path) -> T,
    ) -> Vec<T> {
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| item(self, n, &path.index(i)))
                .collect(),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.error(
                    node,
                    path,
                    format!("expected a list, found a {}", node.type_name()),
                );
                Vec::new()
            }
        }
    }

    fn string_map(&mut self, node: &Node, path: &Path) -> Vec<(String, String)> {
        match &node.kind {
            NodeKind::Map(entries) => {
                let mut out: LastWins<String> = LastWins::default();
                for (k, v) in entries {
                    if let Some(key) = self.key(k, path) {
                        let value = self.string(v, &path.field(&key));
                        out.insert(key, value);
                    }
                }
                out.into_vec()
            }
            _ if node.is_null() => Vec::new(),
            _ => {
                self.error(
                    node,
                    path,
                    format!("expected a map, found a {}", node.type_name()),
                );
                Vec::new()
            }
        }
    }
}

/// Entries of a map where a repeated key replaces the earlier entry and moves to the end, as
/// Go's map-then-order reading does here; linear in the number of entries.
struct LastWins<V> {
    entries: Vec<Option<(String, V)>>,
    at: std::collections::HashMap<String, usize>,
}

impl<V> Default for LastWins<V> {
    fn default() -> Self {
        LastWins {
            entries: Vec::new(),
            at: std::collections::HashMap::new(),
        }
    }
}

impl<V> LastWins<V> {
    /// Adds an entry; true when it replaced one with the same key.
    fn insert(&mut self, key: String, value: V) -> bool {
        let replaced = match self.at.insert(key.clone(), self.entries.len()) {
            Some(i) => {
                self.entries[i] = None;
                true
            }
            None => false,
        };
        self.entries.push(Some((key, value)));
        replaced
    }

    fn contains(&self, key: &str) -> bool {
        self.at.contains_key(key)
    }

    fn into_vec(self) -> Vec<(String, V)> {
        self.entries.into_iter().flatten().collect()
    }
}

/// The string value of `key` in a map node, if it is a scalar (for labelling paths).
fn peek(node: &Node, key: &str) -> Option<String> {
    let NodeKind::Map(entries) = &node.kind else {
        return None;
    };
    entries
        .iter()
        .rev()
        .find_map(|(k, v)| match (&k.kind, &v.kind) {
            (NodeKind::Scalar(k), NodeKind::Scalar(v))
                if k.as_go_string().as_deref() == Some(key) =>
            {
                v.as_go_string()
            }
            _ => None,
        })
}
