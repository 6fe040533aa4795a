//! Diagnostics about a spec: what is wrong or suspicious, and exactly where.

use serde::Serialize;

use super::types::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    #[serde(skip)]
    pub pos: Pos,
    /// Where in the document: `compatibilities[0].rules[1]("gpu").matchFeatures[0](pci.device)...`
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
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
