//! Image compatibility spec v1alpha1: types, parsing (YAML/JSON as NFD reads them), validation.

mod decode;
pub mod diag;
pub mod types;
pub mod validate;

pub use diag::{Diagnostic, Severity};
pub use types::*;

use crate::rules::CompiledSpec;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{origin}: not valid YAML or JSON: {source}")]
    Syntax {
        origin: String,
        #[source]
        source: crate::yaml::YamlError,
    },
    #[error(
        "{origin}: invalid compatibility spec:\n{}",
        render(origin, diagnostics)
    )]
    Invalid {
        origin: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl SpecError {
    /// The error on one line: the located errors joined, without the multi-line form's
    /// "invalid compatibility spec:" heading (verdict reasons say it already).
    pub fn one_line(&self, origin: &str) -> String {
        match self {
            SpecError::Invalid { diagnostics, .. } => diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.display_in(origin))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }
}

fn render(origin: &str, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("  {}", d.display_in(origin)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A spec read and checked: the data, and every diagnostic (errors first, then warnings,
/// each group in document order).
#[derive(Debug, Clone)]
pub struct Checked {
    pub spec: Spec,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    pub fn is_valid(&self) -> bool {
        self.errors().next().is_none()
    }
}

/// Parses and validates a spec, collecting every problem. Only a YAML syntax error stops
/// early (nothing after it can be read reliably).
pub fn check(text: &str, origin: &str) -> Result<Checked, SpecError> {
    let root = crate::yaml::load(text).map_err(|source| SpecError::Syntax {
        origin: origin.to_string(),
        source,
    })?;
    let mut decoder = decode::Decoder::new();
    let spec = decoder.spec(root.as_ref());
    let mut diagnostics = decoder.diags;
    diagnostics.extend(validate::validate(&spec));
    diagnostics.sort_by_key(|d| (d.severity, d.pos));
    Ok(Checked { spec, diagnostics })
}

/// A spec ready to evaluate, with the warnings found while reading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub spec: CompiledSpec,
    pub warnings: Vec<Diagnostic>,
}

/// Parses, validates and compiles a spec; any error makes it invalid.
pub fn load(text: &str, origin: &str) -> Result<Loaded, SpecError> {
    let checked = check(text, origin)?;
    if !checked.is_valid() {
        return Err(SpecError::Invalid {
            origin: origin.to_string(),
            diagnostics: checked.diagnostics,
        });
    }
    let warnings = checked.diagnostics;
    Ok(Loaded {
        spec: CompiledSpec::new(checked.spec),
        warnings,
    })
}
