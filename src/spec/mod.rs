//! Image compatibility spec v1alpha1: types, parsing (YAML/JSON as NFD reads them), validation.

mod decode;
pub mod diag;
pub mod types;
pub mod validate;

pub use diag::{Diagnostic, Severity};
pub use types::*;

use crate::rules::{CompiledSpec, Limits};

/// The largest spec read, in bytes (256 KiB). NFD's own examples are 1-2 KiB and a spec of a
/// hundred sets some tens of KiB; the bound keeps the reading of any spec (parse, compile, validate
/// and evaluate) within 100 ms and 64 MiB (issue 12; BENCHMARKS.md, "Hostile specs"), which
/// 1 MiB of YAML is not. `registry.maxSpecBytes` may lower it, not raise it.
pub const MAX_BYTES: usize = 256 << 10;

/// What the YAML reader may build from a spec, aliases expanded: about what a document of
/// [`MAX_BYTES`] holds written out (a node takes two bytes, `x,`, but for the implicit nulls
/// of a flow map's bare keys; text never grows when unescaped), so that aliases cannot make a
/// small spec cost more than the largest one.
const YAML_LIMITS: crate::yaml::Limits = crate::yaml::Limits {
    max_nodes: MAX_BYTES / 2,
    max_text_bytes: MAX_BYTES,
    ..crate::yaml::Limits::DEFAULT
};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "{origin}: too large: {bytes} bytes; image-compat reads specs of at most {} bytes (256 KiB)",
        MAX_BYTES
    )]
    TooLarge { origin: String, bytes: usize },
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
    pub diagnostics: Vec<Diagnostic>,
    body: Body,
}

/// The spec compiled (what validation looked at), or as decoded when it exceeds the budget.
#[derive(Debug, Clone)]
enum Body {
    Compiled(CompiledSpec),
    TooLarge(Spec),
}

impl Checked {
    pub fn spec(&self) -> &Spec {
        match &self.body {
            Body::Compiled(c) => c.spec(),
            Body::TooLarge(s) => s,
        }
    }

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

/// Parses, compiles and validates a spec, collecting every problem (the strict reading of
/// `validate-spec`). Only a YAML syntax error stops early (nothing after it can be read
/// reliably); a spec over the budget is one error.
pub fn check(text: &str, origin: &str) -> Result<Checked, SpecError> {
    check_within(text, origin, &Limits::default())
}

fn check_within(text: &str, origin: &str, limits: &Limits) -> Result<Checked, SpecError> {
    if text.len() > MAX_BYTES {
        return Err(SpecError::TooLarge {
            origin: origin.to_string(),
            bytes: text.len(),
        });
    }
    let root = crate::yaml::load_with(text, &YAML_LIMITS).map_err(|source| SpecError::Syntax {
        origin: origin.to_string(),
        source,
    })?;
    let mut decoder = decode::Decoder::new();
    let spec = decoder.spec(root.as_ref());
    drop(root);
    let mut diagnostics = decoder.diags.finish();
    let body = match CompiledSpec::compile_with(spec, *limits) {
        Ok(c) => {
            diagnostics.extend(validate::validate(&c));
            Body::Compiled(c)
        }
        Err((spec, e)) => {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                pos: Pos::default(),
                path: String::new(),
                message: format!("{e}: image-compat refuses specs this large"),
                lazy: false,
            });
            Body::TooLarge(spec)
        }
    };
    diagnostics.sort_by_key(|d| (d.severity, d.pos));
    Ok(Checked { diagnostics, body })
}

/// How a spec is read before it is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reading {
    /// As NFD reads it: refused only for what NFD's reader refuses (YAML, types); an invalid
    /// expression fails the evaluation only where the evaluation reaches it.
    #[default]
    Nfd,
    /// Every error refuses the spec, wherever it is (`evaluate --strict`, `strictSpecs`).
    Strict,
}

/// A spec ready to evaluate, with what reading it found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub spec: CompiledSpec,
    /// Warnings of the strict reading (YAML 1.1 scalars, unknown features, ...).
    pub warnings: Vec<Diagnostic>,
    /// Errors NFD does not refuse the spec for (read as NFD does): an evaluation that does not
    /// reach them reports them as warnings; one that does fails.
    pub unreached: Vec<Diagnostic>,
}

/// Parses, validates and compiles a spec as `reading` says, within the default budget.
pub fn load(text: &str, origin: &str, reading: Reading) -> Result<Loaded, SpecError> {
    let checked = check(text, origin)?;
    let refused = match reading {
        Reading::Strict => !checked.is_valid(),
        Reading::Nfd => checked.diagnostics.iter().any(Diagnostic::is_fatal),
    };
    let compiled = match checked.body {
        Body::Compiled(c) if !refused => c,
        _ => {
            return Err(SpecError::Invalid {
                origin: origin.to_string(),
                diagnostics: checked.diagnostics,
            })
        }
    };
    let (unreached, warnings) = checked.diagnostics.into_iter().partition(|d| d.is_error());
    Ok(Loaded {
        spec: compiled,
        warnings,
        unreached,
    })
}
