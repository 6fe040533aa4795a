//! What the check concludes about one image on this node.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::registry::ErrorKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "case", rename_all = "kebab-case")]
pub enum Outcome {
    /// A selected compatibility set matches; `best_set` names the best one.
    Compatible { best_set: String },
    /// No selected set matches; `reason` says which rule failed and why.
    Incompatible { reason: String },
    /// The image has no compatibility artifact.
    NoArtifact,
    /// The spec has no set with the configured tags: it says nothing about this case.
    NoSetSelected { message: String },
    /// The artifact or its spec is invalid, or NFD's evaluation fails on this node.
    InvalidSpec { error: String },
    /// The registry could not give an answer; `kind` classifies it (metrics, failure policy).
    RegistryError {
        error: String,
        #[serde(default)]
        kind: Option<ErrorKind>,
    },
    /// No answer within the decision deadline (the plugin's fetch goes on in the background).
    DeadlineExceeded {
        #[serde(with = "humantime_serde")]
        waited: Duration,
    },
    /// The image name could not be turned into something to look up.
    UnknownImage { error: String },
}

/// The answer to "can this node run the image": yes, no, or no answer (any other outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    Compatible,
    Incompatible,
    Unknown,
}

impl Compat {
    /// `compatible`, `incompatible` or `unknown`: the `verdict` of logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Compat::Compatible => "compatible",
            Compat::Incompatible => "incompatible",
            Compat::Unknown => "unknown",
        }
    }
}

impl Outcome {
    pub fn compat(&self) -> Compat {
        match self {
            Outcome::Compatible { .. } => Compat::Compatible,
            Outcome::Incompatible { .. } => Compat::Incompatible,
            _ => Compat::Unknown,
        }
    }

    /// A short stable name of the case, for metrics and logs.
    pub fn case(&self) -> &'static str {
        match self {
            Outcome::Compatible { .. } => "compatible",
            Outcome::Incompatible { .. } => "incompatible",
            Outcome::NoArtifact => "no-artifact",
            Outcome::NoSetSelected { .. } => "no-set-selected",
            Outcome::InvalidSpec { .. } => "invalid-spec",
            Outcome::RegistryError { .. } => "registry-error",
            Outcome::DeadlineExceeded { .. } => "deadline-exceeded",
            Outcome::UnknownImage { .. } => "unknown-image",
        }
    }

    /// Whether the outcome is a failure to get an answer that a later try may not have (a
    /// registry failure, the deadline): kept for `cache.errorTtl`, never over a good answer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Outcome::RegistryError { .. } | Outcome::DeadlineExceeded { .. }
        )
    }

    /// One line a person reads in logs and annotations.
    pub fn reason(&self) -> String {
        match self {
            Outcome::Compatible { best_set } => format!("compatible (best set {best_set})"),
            Outcome::Incompatible { reason } => reason.clone(),
            Outcome::NoArtifact => "the image has no compatibility artifact".into(),
            Outcome::NoSetSelected { message } => message.clone(),
            Outcome::InvalidSpec { error } => format!("invalid compatibility spec: {error}"),
            Outcome::RegistryError { error, .. } => format!("registry error: {error}"),
            Outcome::DeadlineExceeded { waited } => format!(
                "no answer from the registry within {}",
                humantime::format_duration(*waited)
            ),
            Outcome::UnknownImage { error } => format!("cannot identify the image: {error}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The image digest the artifact was looked up for.
    pub digest: Option<String>,
    /// The compatibility artifact's manifest digest, when one was found.
    pub artifact: Option<String>,
    /// Errors in the spec that NFD's evaluation did not reach on this node (so not the
    /// answer), worth telling the image's author.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn new(outcome: Outcome) -> Self {
        Verdict {
            outcome,
            digest: None,
            artifact: None,
            warnings: Vec::new(),
        }
    }

    pub fn compat(&self) -> Compat {
        self.outcome.compat()
    }

    pub fn case(&self) -> &'static str {
        self.outcome.case()
    }

    pub fn reason(&self) -> String {
        self.outcome.reason()
    }
}
