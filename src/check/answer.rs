//! What the registry holds for one image (its compatibility artifact, or why there is none),
//! found once and then evaluated on the node as often as needed.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::verdict::{Outcome, Verdict};
use super::{cpu, evaluate, Candidates};
use crate::features::Features;
use crate::registry::{
    Client, ErrorKind, FetchedSpec, Platform, Reference, RegistryError, ResolvedImage,
};
use crate::rules::{CompiledSpec, Limits};
use crate::spec::{self, Reading};

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
    reading: Reading,
) -> Result<Inspection, Verdict> {
    let resolved = client
        .resolve(image, platform)
        .await
        .map_err(|e| Verdict::new(registry_outcome(&e, true)))?;
    inspect_resolved(client, resolved, reading).await
}

/// `inspect` for an image already resolved: the CLI resolves first so that a missing image is
/// reported as such (for the plugin it is just an image without an artifact).
pub async fn inspect_resolved(
    client: &Client,
    resolved: ResolvedImage,
    reading: Reading,
) -> Result<Inspection, Verdict> {
    let digest = Some(resolved.target().digest.to_string());
    let fetched = client
        .fetch_spec_for(&resolved)
        .await
        .map_err(|e| Verdict {
            digest: digest.clone(),
            ..Verdict::new(registry_outcome(&e, false))
        })?;
    let Some(fetched) = fetched else {
        return Ok(Inspection {
            resolved,
            artifact: None,
        });
    };
    let origin = format!("artifact {}", fetched.artifact.digest);
    // Reading and compiling is the CPU-bound part: off the async workers, bounded.
    let (fetched, loaded) = cpu::run(move || {
        let loaded = spec::load(&String::from_utf8_lossy(&fetched.bytes), &origin, reading)
            .map_err(|e| e.one_line(&origin));
        (fetched, loaded)
    })
    .await;
    match loaded {
        Ok(spec) => Ok(Inspection {
            resolved,
            artifact: Some(Found {
                fetched,
                spec: Arc::new(spec),
            }),
        }),
        Err(error) => Err(Verdict {
            artifact: Some(fetched.artifact.digest.to_string()),
            digest,
            ..Verdict::new(Outcome::InvalidSpec { error })
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

/// A compatibility artifact: its digest and its spec, compiled. Stored as the decoded spec
/// (serde), not as its YAML: reading it back compiles it again without parsing YAML or
/// validating, within the same budget.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub digest: String,
    pub spec: Arc<spec::Loaded>,
}

#[derive(Serialize, Deserialize)]
struct StoredArtifact {
    digest: String,
    spec: spec::Spec,
    /// What the evaluation reports as warnings when it does not reach it.
    #[serde(default)]
    unreached: Vec<spec::Diagnostic>,
}

impl Serialize for Artifact {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            digest: &'a str,
            spec: &'a spec::Spec,
            unreached: &'a [spec::Diagnostic],
        }
        Borrowed {
            digest: &self.digest,
            spec: self.spec.spec.spec(),
            unreached: &self.spec.unreached,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Artifact {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = StoredArtifact::deserialize(d)?;
        let compiled = CompiledSpec::compile(stored.spec, Limits::default())
            .map_err(serde::de::Error::custom)?;
        Ok(Artifact {
            digest: stored.digest,
            spec: Arc::new(spec::Loaded {
                spec: compiled,
                warnings: Vec::new(),
                unreached: stored.unreached,
            }),
        })
    }
}

impl Answer {
    /// An outcome that does not depend on the node (its warnings are not kept).
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
                artifact: Artifact {
                    digest: a.fetched.artifact.digest.to_string(),
                    spec: a.spec,
                },
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

    /// The verdict remembered for features generation `generation`, if any.
    pub fn memo(&self, generation: u64) -> Option<Verdict> {
        let memo = self.memo.0.lock().unwrap_or_else(|p| p.into_inner());
        memo.as_ref()
            .filter(|(g, _)| *g == generation)
            .map(|(_, v)| v.clone())
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
        let (outcome, artifact, warnings) = match &self.found {
            Content::Settled { outcome, artifact } => (outcome.clone(), artifact.clone(), vec![]),
            Content::Artifact { artifact: a } => {
                let outcome = evaluate(&a.spec, features, tags);
                let warnings = unreached(&a.spec, &outcome, &format!("artifact {}", a.digest));
                (outcome, Some(a.digest.clone()), warnings)
            }
        };
        Verdict {
            outcome,
            digest: self.digest.clone(),
            artifact,
            warnings,
        }
    }
}

/// The spec's lazy errors as warnings, when the evaluation did not fail on one of them.
pub fn unreached(loaded: &spec::Loaded, outcome: &Outcome, origin: &str) -> Vec<String> {
    if matches!(outcome, Outcome::InvalidSpec { .. }) {
        return Vec::new();
    }
    loaded
        .unreached
        .iter()
        .map(|d| d.unreached_in(origin))
        .collect()
}

/// Looks the candidates up in order: the first that has an artifact (or an invalid one) wins;
/// when none has, the first answer (no artifact, or the first candidate's error) stands.
pub async fn fetch(
    client: &Client,
    platform: &Platform,
    image: &Candidates,
    reading: Reading,
) -> Answer {
    let mut first = None;
    for r in &image.0 {
        let answer = Answer::of(inspect(client, r, platform, reading).await);
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
