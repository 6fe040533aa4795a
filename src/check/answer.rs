//! What the registry holds for one image (its compatibility artifact, or why there is none),
//! found once and then evaluated on the node as often as needed.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::verdict::{Outcome, Verdict};
use super::{cpu, evaluate, Candidates};
use crate::compat;
use crate::features::Features;
use crate::registry::media::ArtifactKind;
use crate::registry::{
    Client, ErrorKind, FetchedSpec, Platform, Reference, RegistryError, ResolvedImage,
};
use crate::rules::{CompiledSpec, Limits};
use crate::spec::{self, Reading};

/// An image's compatibility artifacts as found in its registry.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub resolved: ResolvedImage,
    /// The newest artifact of each kind, read; empty when the image has none.
    pub artifacts: Vec<Found>,
}

#[derive(Debug, Clone)]
pub struct Found {
    pub fetched: FetchedSpec,
    pub body: Body,
}

/// An artifact's content, read and ready to evaluate.
#[derive(Debug, Clone)]
pub enum Body {
    /// NFD's spec, compiled.
    Nfd(Arc<spec::Loaded>),
    /// A Proposal F document.
    OciCompat(Arc<compat::Parsed>),
}

impl Body {
    pub fn kind(&self) -> ArtifactKind {
        match self {
            Body::Nfd(_) => ArtifactKind::Nfd,
            Body::OciCompat(_) => ArtifactKind::OciCompat,
        }
    }
}

/// Reads an artifact's layer as its kind says (CPU-bound: the caller runs it off the async
/// workers). The error is one line, located.
pub fn read_body(
    kind: ArtifactKind,
    bytes: &[u8],
    origin: &str,
    reading: Reading,
) -> Result<Body, String> {
    let text = String::from_utf8_lossy(bytes);
    match kind {
        ArtifactKind::Nfd => spec::load(&text, origin, reading)
            .map(|l| Body::Nfd(Arc::new(l)))
            .map_err(|e| e.one_line(origin)),
        ArtifactKind::OciCompat => {
            // Every syntax problem, on one line.
            let parsed =
                compat::parse(&text, origin).map_err(|e| e.to_string().replace('\n', "; "))?;
            if !parsed.is_valid() {
                return Err(parsed
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.display_in(origin))
                    .collect::<Vec<_>>()
                    .join("; "));
            }
            Ok(Body::OciCompat(Arc::new(parsed)))
        }
    }
}

/// Resolves the image, finds its newest compatibility artifacts and reads them.
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
/// reported as such (for the plugin it is just an image without an artifact). One artifact
/// that cannot be read makes the image's claim unreadable: an invalid spec.
pub async fn inspect_resolved(
    client: &Client,
    resolved: ResolvedImage,
    reading: Reading,
) -> Result<Inspection, Verdict> {
    let digest = Some(resolved.target().digest.to_string());
    let fetched = client
        .fetch_artifacts_for(&resolved)
        .await
        .map_err(|e| Verdict {
            digest: digest.clone(),
            ..Verdict::new(registry_outcome(&e, false))
        })?;
    let mut artifacts = Vec::with_capacity(fetched.len());
    for f in fetched {
        let origin = format!("artifact {}", f.artifact.digest);
        // Reading and compiling is the CPU-bound part: off the async workers, bounded.
        let (f, body) = cpu::run(move || {
            let body = read_body(f.artifact.kind, &f.bytes, &origin, reading);
            (f, body)
        })
        .await;
        match body {
            Ok(body) => artifacts.push(Found { fetched: f, body }),
            Err(error) => {
                return Err(Verdict {
                    artifact: Some(f.artifact.digest.to_string()),
                    kinds: vec![f.artifact.kind],
                    digest,
                    ..Verdict::new(Outcome::InvalidSpec { error })
                })
            }
        }
    }
    Ok(Inspection {
        resolved,
        artifacts,
    })
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
    /// The newest compatibility artifact of each kind: evaluated on every use (once per
    /// features generation), so a change of the node's features applies at once.
    Artifacts { artifacts: Vec<Artifact> },
    /// No artifact, an invalid one, a registry failure or the deadline.
    Settled {
        outcome: Outcome,
        artifact: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kinds: Vec<ArtifactKind>,
    },
}

/// A compatibility artifact: its digest and its content, read. Stored decoded (serde), not as
/// the registry's bytes: reading it back compiles an NFD spec again without parsing YAML or
/// validating, within the same budget.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub digest: String,
    pub body: Body,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum StoredBody {
    Nfd {
        spec: spec::Spec,
        /// What the evaluation reports as warnings when it does not reach it.
        #[serde(default)]
        unreached: Vec<spec::Diagnostic>,
    },
    OciCompat {
        document: compat::Document,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredArtifact {
    digest: String,
    #[serde(flatten)]
    body: StoredBody,
}

impl Serialize for Artifact {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let body = match &self.body {
            Body::Nfd(l) => StoredBody::Nfd {
                spec: l.spec.spec().clone(),
                unreached: l.unreached.clone(),
            },
            Body::OciCompat(p) => StoredBody::OciCompat {
                document: p.doc.clone(),
            },
        };
        StoredArtifact {
            digest: self.digest.clone(),
            body,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Artifact {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = StoredArtifact::deserialize(d)?;
        let body = match stored.body {
            StoredBody::Nfd { spec, unreached } => {
                let compiled = CompiledSpec::compile(spec, Limits::default())
                    .map_err(serde::de::Error::custom)?;
                Body::Nfd(Arc::new(spec::Loaded {
                    spec: compiled,
                    warnings: Vec::new(),
                    unreached,
                }))
            }
            StoredBody::OciCompat { document } => Body::OciCompat(Arc::new(compat::Parsed {
                doc: document,
                diagnostics: Vec::new(),
            })),
        };
        Ok(Artifact {
            digest: stored.digest,
            body,
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
                kinds: verdict.kinds,
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
        let found = if inspection.artifacts.is_empty() {
            Content::Settled {
                outcome: Outcome::NoArtifact,
                artifact: None,
                kinds: Vec::new(),
            }
        } else {
            Content::Artifacts {
                artifacts: inspection
                    .artifacts
                    .into_iter()
                    .map(|a| Artifact {
                        digest: a.fetched.artifact.digest.to_string(),
                        body: a.body,
                    })
                    .collect(),
            }
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

    /// The verdict on a node with these features: every artifact's, combined.
    pub fn verdict(&self, features: &Features, tags: &[String]) -> Verdict {
        let (outcome, artifact, kinds, warnings) = match &self.found {
            Content::Settled {
                outcome,
                artifact,
                kinds,
            } => (outcome.clone(), artifact.clone(), kinds.clone(), vec![]),
            Content::Artifacts { artifacts } => {
                let mut each = Vec::with_capacity(artifacts.len());
                let mut warnings = Vec::new();
                for a in artifacts {
                    let (o, w) = a.evaluate(features, tags);
                    each.push((a.digest.clone(), a.body.kind(), o));
                    warnings.extend(w);
                }
                let (outcome, artifact, kinds) = combine(&each);
                (outcome, artifact, kinds, warnings)
            }
        };
        Verdict {
            outcome,
            digest: self.digest.clone(),
            artifact,
            kinds,
            warnings,
        }
    }
}

impl Artifact {
    /// This artifact's outcome on the node, and its warnings.
    pub fn evaluate(&self, features: &Features, tags: &[String]) -> (Outcome, Vec<String>) {
        match &self.body {
            Body::Nfd(loaded) => {
                let outcome = evaluate(loaded, features, tags);
                let warnings = unreached(loaded, &outcome, &format!("artifact {}", self.digest));
                (outcome, warnings)
            }
            Body::OciCompat(p) => (compat_outcome(&compat::evaluate(&p.doc, features)), vec![]),
        }
    }
}

/// A Proposal F evaluation as an outcome: any key the node does not match makes it
/// incompatible; else any key it declares nothing about makes it unknown.
pub fn compat_outcome(e: &compat::Evaluation) -> Outcome {
    let at = |r: &compat::KeyResult| format!("group \"{}\" key \"{}\": {}", r.group, r.key, r.why);
    if let Some(r) = e.first_mismatch() {
        return Outcome::Incompatible {
            reason: format!("{}: {}", ArtifactKind::OciCompat.as_str(), at(r)),
        };
    }
    if let Some(r) = e.first_unknown() {
        return Outcome::Unknown {
            reason: format!("{}: {}", ArtifactKind::OciCompat.as_str(), at(r)),
        };
    }
    Outcome::Compatible {
        detail: format!(
            "{}: {} of {} keys match",
            ArtifactKind::OciCompat.as_str(),
            e.matches(),
            e.results.len()
        ),
    }
}

/// One verdict for an image with several artifacts (digest, kind, outcome): compatible only
/// when every one says so. The first incompatible one decides, else the first invalid, unknown
/// or silent one (no selected set); the artifact named, and its kind, is the one that decided
/// (all of them when compatible).
pub fn combine(
    each: &[(String, ArtifactKind, Outcome)],
) -> (Outcome, Option<String>, Vec<ArtifactKind>) {
    let rank = |o: &Outcome| match o {
        Outcome::Incompatible { .. } => 0,
        Outcome::InvalidSpec { .. } => 1,
        Outcome::Unknown { .. } => 2,
        Outcome::NoSetSelected { .. } => 3,
        Outcome::Compatible { .. } => 5,
        _ => 4,
    };
    let decisive = each
        .iter()
        .min_by_key(|(_, _, o)| rank(o))
        .filter(|(_, _, o)| rank(o) < 5);
    if let Some((d, k, o)) = decisive {
        return (o.clone(), Some(d.clone()), vec![*k]);
    }
    let detail = each
        .iter()
        .map(|(_, _, o)| match o {
            Outcome::Compatible { detail } => detail.clone(),
            other => other.reason(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let digests = each
        .iter()
        .map(|(d, _, _)| d.clone())
        .collect::<Vec<_>>()
        .join(",");
    let kinds = each.iter().map(|(_, k, _)| *k).collect();
    (Outcome::Compatible { detail }, Some(digests), kinds)
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
            Content::Artifacts { .. } => return answer,
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
