//! Diagnostics about a spec: what is wrong or suspicious, and exactly where.

use serde::{Deserialize, Serialize};

use super::types::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    #[serde(skip)]
    pub pos: Pos,
    /// Where in the document: `compatibilities[0].rules[1]("gpu").matchFeatures[0](pci.device)...`
    pub path: String,
    pub message: String,
    /// An error NFD does not refuse the spec for: it fails NFD's evaluation only where the
    /// evaluation reaches it (a bad expression), or never (a wrong `version`). Strict readers
    /// (`validate-spec`, `attach-spec`, `strictSpecs`) refuse it; evaluation as NFD does
    /// reports it as a warning when the evaluation did not reach it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lazy: bool,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// An error that refuses the spec even as NFD reads it.
    pub fn is_fatal(&self) -> bool {
        self.is_error() && !self.lazy
    }

    /// A lazy error that the evaluation did not reach, as the warning it then is.
    pub fn unreached_in(&self, origin: &str) -> String {
        let mut d = self.clone();
        d.severity = Severity::Warning;
        format!(
            "{} (NFD's evaluation did not reach it on this node; it fails where it does)",
            d.display_in(origin)
        )
    }

    /// `spec.yaml:12:9: error: compatibilities[0]...: message`
    pub fn display_in(&self, origin: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let at = if self.pos.line > 0 {
            format!("{origin}:{}:{}", self.pos.line, self.pos.col)
        } else {
            origin.to_string()
        };
        if self.path.is_empty() {
            format!("{at}: {sev}: {}", self.message)
        } else {
            format!("{at}: {sev}: {}: {}", self.path, self.message)
        }
    }
}

/// A place in the document (`compatibilities[0].rules[1]("gpu").matchFeatures[0](pci.device)`),
/// built as the reader descends and written out only when a diagnostic names it: most places
/// never need their text, and a large spec has hundreds of thousands of them.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Field(&'a str),
    Index(usize),
    /// `("name")`: a rule, by its name.
    Quoted(&'a str),
    /// `(pci.device)`: a term, by its feature.
    Paren(&'a str),
}

impl<'a> Path<'a> {
    pub const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    fn child(&'a self, seg: Seg<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            seg,
        }
    }

    pub fn field(&'a self, name: &'a str) -> Path<'a> {
        self.child(Seg::Field(name))
    }

    pub fn index(&'a self, i: usize) -> Path<'a> {
        self.child(Seg::Index(i))
    }

    pub fn quoted(&'a self, label: &'a str) -> Path<'a> {
        self.child(Seg::Quoted(label))
    }

    pub fn paren(&'a self, label: &'a str) -> Path<'a> {
        self.child(Seg::Paren(label))
    }

    fn is_root(&self) -> bool {
        matches!(self.seg, Seg::Root)
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = self.parent {
            p.fmt(f)?;
        }
        match self.seg {
            Seg::Root => Ok(()),
            Seg::Field(name) => {
                if self.parent.is_some_and(|p| !p.is_root()) {
                    f.write_str(".")?;
                }
                f.write_str(name)
            }
            Seg::Index(i) => write!(f, "[{i}]"),
            Seg::Quoted(label) => write!(f, "(\"{label}\")"),
            Seg::Paren(label) => write!(f, "({label})"),
        }
    }
}

/// Diagnostics as they are found, at most [`Diags::MAX`] kept with their text: a hostile spec
/// may have one problem per node, and each costs its message. The rest are counted, and one
/// summary per kind says how many were left out (so a dropped error still makes the spec
/// invalid).
#[derive(Debug, Default)]
pub struct Diags {
    pub list: Vec<Diagnostic>,
    /// Left out: warnings, lazy errors, errors.
    dropped: [usize; 3],
}

impl Diags {
    pub const MAX: usize = 200;

    /// Whether a diagnostic would still be kept (callers skip building its text otherwise).
    pub fn room(&self) -> bool {
        self.list.len() < Self::MAX
    }

    pub fn push(&mut self, d: Diagnostic) {
        if self.room() {
            self.list.push(d);
        } else {
            self.drop_one(d.severity, d.lazy);
        }
    }

    /// Counts one diagnostic whose text was not built.
    pub fn drop_one(&mut self, severity: Severity, lazy: bool) {
        let i = match (severity, lazy) {
            (Severity::Warning, _) => 0,
            (Severity::Error, true) => 1,
            (Severity::Error, false) => 2,
        };
        self.dropped[i] += 1;
    }

    /// The diagnostics kept, then a summary for each kind left out.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        for (i, n) in self.dropped.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            let (severity, lazy, what) = match i {
                0 => (Severity::Warning, false, "warnings"),
                1 => (
                    Severity::Error,
                    true,
                    "errors NFD reports only where its evaluation reaches them",
                ),
                _ => (Severity::Error, false, "errors"),
            };
            self.list.push(Diagnostic {
                severity,
                pos: Pos::default(),
                path: String::new(),
                message: format!("{n} more {what} not shown"),
                lazy,
            });
        }
        self.list
    }
}
