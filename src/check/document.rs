//! A compatibility document of either kind checked strictly, as `validate-spec` and
//! `attach-spec` check files and artifacts: NFD's spec, or Proposal F's JSON.

use crate::compat;
use crate::registry::media::ArtifactKind;
use crate::spec::{self, Diagnostic};

/// Every diagnostic of a document and what it holds.
#[derive(Debug, Clone)]
pub struct Checked {
    pub kind: ArtifactKind,
    /// Errors first, then warnings, each in document order.
    pub diagnostics: Vec<Diagnostic>,
    /// What the document holds, for the verdict line (`1 compatibility set`, `2 interest
    /// groups`).
    pub summary: String,
}

impl Checked {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

/// Which kind a document is: Proposal F's JSON (a top-level `compatibilities` object), else
/// NFD's spec.
pub fn detect(text: &str) -> ArtifactKind {
    if compat::looks_like(text) {
        ArtifactKind::OciCompat
    } else {
        ArtifactKind::Nfd
    }
}

/// Checks a document of `kind` (detected when None). The error: the document cannot be read
/// at all (YAML or JSON syntax), located.
pub fn check(text: &str, origin: &str, kind: Option<ArtifactKind>) -> Result<Checked, String> {
    let kind = kind.unwrap_or_else(|| detect(text));
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match kind {
        ArtifactKind::Nfd => {
            let c = spec::check(text, origin).map_err(|e| e.to_string())?;
            let summary = plural(c.spec().compatibilities.len(), "compatibility set");
            Ok(Checked {
                kind,
                diagnostics: c.diagnostics,
                summary,
            })
        }
        ArtifactKind::OciCompat => {
            let p = compat::parse(text, origin).map_err(|e| e.to_string())?;
            let keys: usize = p.doc.groups.iter().map(|g| g.keys.len()).sum();
            let summary = format!(
                "{}, {}",
                plural(p.doc.groups.len(), "interest group"),
                plural(keys, "key")
            );
            Ok(Checked {
                kind,
                diagnostics: p.diagnostics,
                summary,
            })
        }
    }
}
