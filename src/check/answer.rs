//! What the registry holds for one image (its compatibility artifact, or why there is none),
//! found once and then evaluated on the node as often as needed.

use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::verdict::{Outcome, Verdict};
use super::{evaluate, Candidates};
use crate::features::Features;
use crate::registry::{
    Client, ErrorKind, FetchedSpec, Platform, Reference, RegistryError, ResolvedImage,
};
use crate::spec;

/// An image's compatibility artifact as found in its registry.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub resolved: ResolvedImage,
    /// The winning artifact and its spec, or None when the image has none.
    pub artifact: Option<Found>,
}

#[derive(Debug, Clone)]
pub struct Found {
    pub fetched: FetchedSpec,
    pub spec: Arc<spec::Loaded>,
}

/// Resolves the image, finds its newest compatibility artifact and loads its spec.
/// Errors are already classified as the outcome they lead to (registry error or invalid spec),
/// with the image digest when it resolved.
pub async fn inspect(
    client: &Client,
    image: &Reference,
    platform: &Platform,
) -> Result<Inspection, Verdict> {
    let resolved = client
        .resolve(image, platform)
        .await
        .map_err(|e| Verdict::new(registry_outcome(&e, true)))?;
    inspect_resolved(client, resolved).await
}

/// `inspect` for an image already resolved: the CLI resolves first so that a missing image is
/// reported as such (for the plugin it is just an image without an artifact).
pub async fn inspect_resolved(
    client: &Client,
    resolved: ResolvedImage,
) -> Result<Inspection, Verdict> {
    let digest = Some(resolved.target().digest.to_string());
    let fetched = client
        .fetch_spec_for(&resolved)
        .await
        .map_err(|e| Verdict {
            outcome: registry_outcome(&e, false),
            digest: digest.clone(),
            artifact: None,
        })?;
    let Some(fetched) = fetched else {
        return Ok(Inspection {
            resolved,
            artifact: None,
        });
    };
    let origin = format!("artifact {}", fetched.artifact.digest);
    let text = String::from_utf8_lossy(&fetched.bytes);
    match spec::load(&text, &origin) {
        Ok(spec) => Ok(Inspection {
            resolved,
            artifact: Some(Found {
                fetched,
                spec: Arc::new(spec),
            }),
        }),
        Err(e) => Err(Verdict {
            outcome: Outcome::InvalidSpec {
                error: e.one_line(&origin),
            },
            digest,
            artifact: Some(fetched.artifact.digest.to_string()),
        }),
    }
}

/// A registry failure as an outcome: a malformed artifact is an invalid spec (the image's
/// claim cannot be read); an image the registry does not have (`resolving`) cannot have an
/// artifact there; anything else is a registry error.
fn registry_outcome(e: &RegistryError, resolving: bool) -> Outcome {
    match e.kind() {
        ErrorKind::InvalidContent => Outcome::InvalidSpec {
            error: format!("invalid compatibility artifact: {e}"),
        },
        ErrorKind::NotFound if resolving => Outcome::NoArtifact,
        kind => Outcome::RegistryError {
            error: e.to_string(),
            kind: Some(kind),
        },
    }
}

/// What the registry said about one image, kept by the plugin in memory and by the hook on
/// disk: the artifact to evaluate, or an outcome the node's features cannot change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// The image digest the artifact was looked up for, when the image resolved.
    pub digest: Option<String>,
    #[serde(flatten)]
    pub found: Content,
    #[serde(skip)]
    memo: Memo,
}

/// The verdict last computed from an answer, and for which features generation.
#[derive(Debug, Default)]
struct Memo(Mutex<Option<(u64, Verdict)>>);

impl Clone for Memo {
    /// A copy of an answer computes its own verdicts.
    fn clone(&self) -> Self {
        Memo::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Content {
    /// The newest compatibility artifact: evaluated on every use (once per features
    /// generation), so a change of the node's features applies at once.
    Artifact { artifact: Artifact },
    /// No artifact, an invalid one, a registry failure or the deadline.
    Settled {
        outcome: Outcome,
        artifact: Option<String>,
    },
}

/// A compatibility artifact: its digest and spec. Stored as the spec's text; loaded once per
/// process, on first use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    pub digest: String,
    pub source: String,
    #[serde(skip)]
    loaded: OnceLock<Result<Arc<spec::Loaded>, String>>,
}

impl Artifact {
    pub fn new(digest: String, source: String, loaded: Arc<spec::Loaded>) -> Artifact {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(loaded));
        Artifact {
            digest,
            source,
            loaded: cell,
        }
    }

    /// The spec, loaded on first use (an answer read back from disk holds its text only).
    pub fn spec(&self) -> Result<Arc<spec::Loaded>, String> {
        self.loaded
            .get_or_init(|| {
                let origin = format!("artifact {}", self.digest);
                spec::load(&self.source, &origin)
                    .map(Arc::new)
                    .map_err(|e| e.one_line(&origin))
            })
            .clone()
    }
}

impl Answer {
    /// An outcome that does not depend on the node.
    pub fn settled(verdict: Verdict) -> Answer {
        Answer {
            digest: verdict.digest,
            found: Content::Settled {
                outcome: verdict.outcome,
                artifact: verdict.artifact,
            },
            memo: Memo::default(),
        }
    }

    /// What an inspection found.
    pub fn of(inspected: Result<Inspection, Verdict>) -> Answer {
        let inspection = match inspected {
            Ok(i) => i,
            Err(v) => return Answer::settled(v),
        };
        let digest = Some(inspection.resolved.target().digest.to_string());
        let found = match inspection.artifact {
            Some(a) => Content::Artifact {
                artifact: Artifact::new(
                    a.fetched.artifact.digest.to_string(),
                    String::from_utf8_lossy(&a.fetched.bytes).into_owned(),
                    a.spec,
                ),
            },
            None => Content::Settled {
                outcome: Outcome::NoArtifact,
                artifact: None,
            },
        };
        Answer {
            digest,
            found,
            memo: Memo::default(),
        }
    }

    /// Whether this is a failure to get an answer (kept `cache.errorTtl`, never over a good one).
    pub fn is_transient(&self) -> bool {
        matches!(&self.found, Content::Settled { outcome, .. } if outcome.is_transient())
    }

    /// The verdict for features generation `generation`, computed by `verdict` once per
    /// generation.
    pub fn verdict_memo(&self, generation: u64, verdict: impl FnOnce() -> Verdict) -> Verdict {
        let mut memo = self.memo.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*memo {
            Some((g, v)) if *g == generation => v.clone(),
            _ => {
                let v = verdict();
                *memo = Some((generation, v.clone()));
                v
            }
        }
    }

    /// The verdict on a node with these features.
    pub fn verdict(&self, features: &Features, tags: &[String]) -> Verdict {
        let (outcome, artifact) = match &self.found {
            Content::Settled { outcome, artifact } => (outcome.clone(), artifact.clone()),
            Content::Artifact { artifact: a } => {
                let outcome = match a.spec() {
                    Ok(loaded) => evaluate(&loaded, features, tags),
                    Err(error) => Outcome::InvalidSpec { error },
                };
                (outcome, Some(a.digest.clone()))
            }
        };
        Verdict {
            outcome,
            digest: self.digest.clone(),
            artifact,
        }
    }
}

/// Looks the candidates up in order: the first that has an artifact (or an invalid one) wins;
/// when none has, the first answer (no artifact, or the first candidate's error) stands.
pub async fn fetch(client: &Client, platform: &Platform, image: &Candidates) -> Answer {
    let mut first = None;
    for r in &image.0 {
        let answer = Answer::of(inspect(client, r, platform).await);
        match &answer.found {
            Content::Artifact { .. } => return answer,
            Content::Settled {
                outcome: Outcome::InvalidSpec { .. },
                ..
            } => return answer,
            Content::Settled { .. } => {}
        }
        first.get_or_insert(answer);
    }
    first.unwrap_or_else(|| {
        Answer::settled(Verdict::new(Outcome::UnknownImage {
            error: "no image reference to look up".into(),
        }))
    })
}
