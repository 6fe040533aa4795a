//! What the check concludes about one image on this node.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
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
    /// The registry could not give an answer; `kind` classifies it (for metrics).
    RegistryError {
        error: String,
        #[serde(skip)]
        kind: Option<crate::registry::ErrorKind>,
    },
    /// No answer within the decision deadline (the fetch goes on in the background).
    DeadlineExceeded {
        #[serde(with = "humantime_serde")]
        waited: Duration,
    },
    /// The image name could not be turned into a digest.
    UnknownImage { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The image digest the artifact was looked up for.
    pub digest: Option<String>,
    /// The compatibility artifact's manifest digest, when one was found.
    pub artifact: Option<String>,
}

impl Verdict {
    pub fn new(outcome: Outcome) -> Self {
        Verdict {
            outcome,
            digest: None,
            artifact: None,
        }
    }

    /// `compatible`, `incompatible`, or `unknown` (no answer): the annotation value and the
    /// verdict label of logs and metrics.
    pub fn label(&self) -> &'static str {
        match self.outcome {
            Outcome::Compatible { .. } => "true",
            Outcome::Incompatible { .. } => "false",
            _ => "unknown",
        }
    }

    /// `compatible`, `incompatible` or `unknown`, for logs and metrics.
    pub fn word(&self) -> &'static str {
        match self.outcome {
            Outcome::Compatible { .. } => "compatible",
            Outcome::Incompatible { .. } => "incompatible",
            _ => "unknown",
        }
    }

    /// A short stable name of the case, for metrics and logs.
    pub fn case(&self) -> &'static str {
        match self.outcome {
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

    /// One line a person reads in logs and annotations.
    pub fn reason(&self) -> String {
        match &self.outcome {
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
