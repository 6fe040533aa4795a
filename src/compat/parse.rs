//! Reading a Proposal F document: strict JSON (the format says JSON; what people paste often is
//! not), then its shape, each problem located at line and column.

use serde::{Deserialize, Serialize};

use super::lint::{self, Problem};
use super::{GROUP_ARCHSPEC, GROUP_NFD};
use crate::features::{archspec, labels};
use crate::spec::diag::{Diagnostic, Diags, Severity};
use crate::yaml::{self, Node, NodeKind, Pos};

/// Largest document read (a Proposal F document is a few hundred bytes): the bound of NFD's
/// specs, the other artifact layer read on the request path.
pub const MAX_BYTES: usize = crate::spec::MAX_BYTES;

/// A compatibility document, in document order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub groups: Vec<Group>,
}

/// One compatibility interest group and what it requires.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub keys: Vec<Key>,
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub name: String,
    pub value: Scalar,
    #[serde(skip)]
    pub pos: Pos,
}

/// A value as JSON has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

impl std::fmt::Display for Scalar {
    /// As JSON writes it: strings quoted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
        }
    }
}

/// A document read, with every diagnostic (errors first).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub doc: Document,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// Not JSON: every problem found, where it is (one per line).
    #[error("{}", show_problems(origin, problems))]
    Syntax {
        origin: String,
        problems: Vec<Problem>,
    },
    #[error("{origin}: larger than {MAX_BYTES} bytes (256 KiB), the most image-compat reads")]
    TooLarge { origin: String },
}

fn show_problems(origin: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            format!(
                "{origin}:{}:{}: error: not valid JSON: {}",
                p.line, p.col, p.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a document: JSON syntax errors are all reported at once (line:column) and the
/// document is not read; shape problems are all collected as diagnostics.
pub fn parse(text: &str, origin: &str) -> Result<Parsed, CompatError> {
    if text.len() > MAX_BYTES {
        return Err(CompatError::TooLarge {
            origin: origin.to_string(),
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let found = lint::problems(text);
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        // Our pass names every slip; serde_json's first error stands in when it saw none.
        let problems = if found.is_empty() {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            vec![Problem {
                line: e.line(),
                col: e.column(),
                message: full.strip_suffix(&suffix).unwrap_or(&full).to_string(),
            }]
        } else {
            found.clone()
        };
        CompatError::Syntax {
            origin: origin.to_string(),
            problems,
        }
    })?;
    // JSON is YAML: the same text read again gives each node's position (and duplicate keys,
    // which JSON readers silently collapse).
    let positions = yaml::load(text).ok().flatten();
    let mut r = Reader {
        diags: Diags::default(),
    };
    // What JSON readers accept but our pass does not (a key twice) is an error of the
    // document.
    for p in found {
        r.error(
            Pos {
                line: p.line,
                col: p.col,
            },
            String::new(),
            p.message,
        );
    }
    let doc = r.document(&value, positions.as_ref());
    let mut diagnostics = r.diags.finish();
    diagnostics.sort_by_key(|d| (d.severity, d.pos));
    Ok(Parsed { doc, diagnostics })
}

struct Reader {
    diags: Diags,
}

/// The child of a YAML map node under `key`, for positions.
fn child<'a>(node: Option<&'a Node>, key: &str) -> Option<&'a Node> {
    let NodeKind::Map(entries) = &node?.kind else {
        return None;
    };
    entries
        .iter()
        .rev()
        .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar(s) if s.text == key))
        .map(|(_, v)| v)
}

fn key_pos(node: Option<&Node>, key: &str) -> Pos {
    let Some(NodeKind::Map(entries)) = node.map(|n| &n.kind) else {
        return Pos::default();
    };
    entries
        .iter()
        .rev()
        .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar(s) if s.text == key))
        .map(|(k, _)| k.pos)
        .unwrap_or_default()
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "object",
    }
}

impl Reader {
    fn push(&mut self, severity: Severity, pos: Pos, path: String, message: String) {
        self.diags.push(Diagnostic {
            severity,
            pos,
            path,
            message,
            lazy: false,
        });
    }

    fn error(&mut self, pos: Pos, path: String, message: String) {
        self.push(Severity::Error, pos, path, message);
    }

    fn warn(&mut self, pos: Pos, path: String, message: String) {
        self.push(Severity::Warning, pos, path, message);
    }

    fn document(&mut self, v: &serde_json::Value, node: Option<&Node>) -> Document {
        let mut doc = Document::default();
        let pos = node.map(|n| n.pos).unwrap_or_default();
        let Some(top) = v.as_object() else {
            self.error(
                pos,
                String::new(),
                format!(
                    "expected an object with \"compatibilities\", found a {}",
                    type_name(v)
                ),
            );
            return doc;
        };
        for k in top.keys().filter(|k| *k != "compatibilities") {
            self.warn(
                key_pos(node, k),
                k.clone(),
                format!(
                    "unknown field \"{k}\" is ignored (the document has only \"compatibilities\")"
                ),
            );
        }
        let Some(groups) = top.get("compatibilities") else {
            self.error(
                pos,
                String::new(),
                "no \"compatibilities\": the document says nothing".into(),
            );
            return doc;
        };
        let gnode = child(node, "compatibilities");
        let Some(groups) = groups.as_object() else {
            self.error(
                gnode.map(|n| n.pos).unwrap_or_default(),
                "compatibilities".into(),
                format!(
                    "expected an object of interest groups, found a {}",
                    type_name(groups)
                ),
            );
            return doc;
        };
        if groups.is_empty() {
            self.warn(
                gnode.map(|n| n.pos).unwrap_or_default(),
                "compatibilities".into(),
                "no interest group: the document matches every node".into(),
            );
        }
        for (name, keys) in groups {
            let g = self.group(name, keys, child(gnode, name), key_pos(gnode, name));
            doc.groups.extend(g);
        }
        doc
    }

    fn group(
        &mut self,
        name: &str,
        keys: &serde_json::Value,
        node: Option<&Node>,
        pos: Pos,
    ) -> Option<Group> {
        let path = format!("compatibilities.{name}");
        let Some(keys) = keys.as_object() else {
            self.error(
                node.map(|n| n.pos).unwrap_or(pos),
                path,
                format!(
                    "expected an object of keys and values, found a {}",
                    type_name(keys)
                ),
            );
            return None;
        };
        if keys.is_empty() {
            self.warn(
                pos,
                path.clone(),
                "no key: the group requires nothing".into(),
            );
        }
        let mut group = Group {
            name: name.to_string(),
            keys: Vec::new(),
            pos,
        };
        for (k, v) in keys {
            let kpos = key_pos(node, k);
            let vpos = child(node, k).map(|n| n.pos).unwrap_or(kpos);
            let kpath = format!("{path}.{k}");
            let value = match v {
                serde_json::Value::Bool(b) => Scalar::Bool(*b),
                serde_json::Value::Number(n) => Scalar::Number(n.clone()),
                serde_json::Value::String(s) => Scalar::String(s.clone()),
                other => {
                    self.error(
                        vpos,
                        kpath,
                        format!(
                            "a value must be a string, a number or a boolean, found a {}",
                            type_name(other)
                        ),
                    );
                    continue;
                }
            };
            self.check_key(name, k, &value, kpos, vpos, &kpath);
            group.keys.push(Key {
                name: k.clone(),
                value,
                pos: kpos,
            });
        }
        Some(group)
    }

    /// What the groups image-compat understands say about their keys.
    fn check_key(
        &mut self,
        group: &str,
        key: &str,
        value: &Scalar,
        kpos: Pos,
        vpos: Pos,
        path: &str,
    ) {
        match group {
            GROUP_ARCHSPEC if key == "target" => match value {
                Scalar::String(t) => {
                    if archspec::database().get(t).is_none() {
                        self.error(
                            vpos,
                            path.to_string(),
                            format!(
                                "\"{t}\" is not an archspec microarchitecture (e.g. x86_64_v3, \
                                 zen3, skylake, aarch64, neoverse_v1)"
                            ),
                        );
                    }
                }
                other => self.error(
                    vpos,
                    path.to_string(),
                    format!("target must be a string naming an archspec microarchitecture, found {other}"),
                ),
            },
            GROUP_ARCHSPEC => self.warn(
                kpos,
                path.to_string(),
                format!(
                    "io.archspec defines \"target\" only: \"{key}\" is compared with what the \
                     node's admin declares for io.archspec"
                ),
            ),
            GROUP_NFD => {
                let prefix = format!("{}/", labels::FEATURE_LABEL_NS);
                if let Some(bare) = key.strip_prefix(&prefix) {
                    self.warn(
                        kpos,
                        path.to_string(),
                        format!(
                            "nfd keys are label names without the {prefix} prefix: write \"{bare}\""
                        ),
                    );
                } else if !labels::is_label_key(&format!("{prefix}{key}")) {
                    self.warn(
                        kpos,
                        path.to_string(),
                        format!("\"{key}\" is not a valid node label name, so no node has it"),
                    );
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proposals_examples_as_printed_get_located_errors() {
        // Proposal F's first example, as printed: commas missing between keys.
        let nfd = "{\"compatibilities\": {\"nfd\": {\"cpu-hardware_multithreading\": true \"cpu-pstate.status\": \"passive\"}}}";
        let e = parse(nfd, "f.json").unwrap_err().to_string();
        assert!(
            e == "f.json:1:65: error: not valid JSON: missing `,` before the next member",
            "{e}"
        );
        // The second: a trailing comma.
        let hpc = "{\"compatibilities\": {\"io.archspec\": {\"target\": \"arm64\",},\n  \"org.supercontainers\": {\"mpi.version\": \"4.1.6\"}}}";
        let e = parse(hpc, "f.json").unwrap_err().to_string();
        assert_eq!(
            e,
            "f.json:1:55: error: not valid JSON: trailing comma before `}`"
        );
        // A key twice: JSON readers keep one silently; here it is an error.
        let p = parse(r#"{"compatibilities": {"g": {"k": 1, "k": 2}}}"#, "f.json").unwrap();
        assert!(!p.is_valid());
        assert!(
            p.diagnostics[0]
                .message
                .starts_with("duplicate key \"k\" (first at 1:28)"),
            "{:?}",
            p.diagnostics
        );
    }

    #[test]
    fn shapes_and_groups_are_checked() {
        let doc = r#"{"compatibilities": {
  "io.archspec": {"target": "nosuchcpu"},
  "nfd": {"feature.node.kubernetes.io/cpu-x": true, "ok-label": "1"},
  "org.example": {"list": [1], "v": 4}
}, "extra": 1}"#;
        let p = parse(doc, "d.json").unwrap();
        assert!(!p.is_valid());
        let shown: Vec<String> = p
            .diagnostics
            .iter()
            .map(|d| d.display_in("d.json"))
            .collect();
        let has = |s: &str| shown.iter().any(|d| d.contains(s));
        assert!(has("d.json:2:29: error: compatibilities.io.archspec.target: \"nosuchcpu\" is not an archspec"), "{shown:#?}");
        assert!(
            has("d.json:4:27: error: compatibilities.org.example.list: a value must be"),
            "{shown:#?}"
        );
        assert!(has("warning: compatibilities.nfd.feature.node.kubernetes.io/cpu-x: nfd keys are label names"), "{shown:#?}");
        assert!(
            has("d.json:5:4: warning: extra: unknown field"),
            "{shown:#?}"
        );
        let groups: Vec<&str> = p.doc.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["io.archspec", "nfd", "org.example"]);
        assert_eq!(p.doc.groups[2].keys.len(), 1);
    }

    #[test]
    fn the_fixed_examples_are_valid() {
        let hpc = r#"{"compatibilities": {"io.archspec": {"target": "arm64"},
  "org.supercontainers": {"mpi.implementation": "openmpi", "mpi.version": "4.1.6"}}}"#;
        let p = parse(hpc, "f.json").unwrap();
        assert!(p.is_valid(), "{:?}", p.diagnostics);
        assert_eq!(
            p.doc.groups[1].keys[1].value,
            Scalar::String("4.1.6".into())
        );
        assert!(super::super::looks_like(hpc));
        assert!(!super::super::looks_like(
            "version: v1alpha1\ncompatibilities: []\n"
        ));
    }
}
