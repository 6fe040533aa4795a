//! What the check concludes about one image on this node.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::registry::media::ArtifactKind;
use crate::registry::ErrorKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "case", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every artifact says the node runs the image; `detail` says what matched (NFD's best
    /// set, Proposal F's keys).
    Compatible { detail: String },
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
    /// A Proposal F artifact needs a group or key the node declares nothing about (and no
    /// key mismatches); `reason` names the first.
    Unknown { reason: String },
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
            Outcome::Unknown { .. } => "unknown",
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
            Outcome::Compatible { detail } => format!("compatible ({detail})"),
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
            Outcome::Unknown { reason } => reason.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The image digest the artifact was looked up for.
    pub digest: Option<String>,
    /// The compatibility artifact's manifest digest, when one was found (the one that decided;
    /// all of them, comma-separated, when every one says compatible).
    pub artifact: Option<String>,
    /// The kinds of those artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<ArtifactKind>,
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
            kinds: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The artifact kinds decided on, as a label: `nfd`, `oci-compat`, `nfd+oci-compat`, or
    /// `none`.
    pub fn kinds_label(&self) -> &'static str {
        match self.kinds.as_slice() {
            [] => "none",
            [ArtifactKind::Nfd] => "nfd",
            [ArtifactKind::OciCompat] => "oci-compat",
            _ => "nfd+oci-compat",
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
