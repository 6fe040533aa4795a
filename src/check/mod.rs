//! The one decision path: image identity -> cached spec -> evaluate -> Verdict.
//!
//! `inspect` finds and loads an image's compatibility spec; `decide` evaluates it against the
//! node. The CLI (validate-node), the OCI hook and the NRI plugin all go through these two;
//! they differ only in what they put around them (reports, a disk cache, an in-memory cache
//! with a deadline).

pub mod checker;
pub mod identity;
pub mod verdict;

use crate::features::Features;
use crate::registry::{
    Client, ErrorKind, FetchedSpec, Platform, Reference, RegistryError, ResolvedImage,
};
use crate::rules::report::{reason, set_label};
use crate::spec;
pub use checker::{CacheSettings, Candidates, Checker, Lookup, Source};
pub use identity::{image_of, ImageIdentity, NameResolver, ResolveError, Resolver};
pub use verdict::{Outcome, Verdict};

/// An image's compatibility spec as found in its registry.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub resolved: ResolvedImage,
    /// The winning artifact and its spec, or None when the image has none.
    pub artifact: Option<Artifact>,
}

#[derive(Debug, Clone)]
pub struct Artifact {
    pub fetched: FetchedSpec,
    pub spec: spec::Loaded,
}

/// Resolves the image, finds its newest compatibility artifact and loads its spec.
/// Errors are already classified as the verdict they lead to (registry error or invalid spec).
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
    let with_digest = |outcome| Verdict {
        outcome,
        digest: digest.clone(),
        artifact: None,
    };
    let fetched = client
        .fetch_spec_for(&resolved)
        .await
        .map_err(|e| with_digest(registry_outcome(&e, false)))?;
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
            artifact: Some(Artifact { fetched, spec }),
        }),
        Err(e) => Err(Verdict {
            outcome: Outcome::InvalidSpec {
                error: one_line(&e, &origin),
            },
            digest,
            artifact: Some(fetched.artifact.digest.to_string()),
        }),
    }
}

/// A spec error on one line: the located errors joined, without the multi-line form's
/// "invalid compatibility spec:" heading, which `Verdict::reason` already says.
fn one_line(e: &spec::SpecError, origin: &str) -> String {
    match e {
        spec::SpecError::Invalid { diagnostics, .. } => diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.display_in(origin))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// Evaluates an inspected image on this node's features.
pub fn decide(inspection: &Inspection, features: &Features, tags: &[String]) -> Verdict {
    let digest = Some(inspection.resolved.target().digest.to_string());
    let Some(artifact) = &inspection.artifact else {
        return Verdict {
            outcome: Outcome::NoArtifact,
            digest,
            artifact: None,
        };
    };
    Verdict {
        outcome: evaluate(&artifact.spec, features, tags),
        digest,
        artifact: Some(artifact.fetched.artifact.digest.to_string()),
    }
}

/// The outcome of evaluating a loaded spec.
pub fn evaluate(loaded: &spec::Loaded, features: &Features, tags: &[String]) -> Outcome {
    let compiled = &loaded.spec;
    match compiled.evaluate(features, tags) {
        Err(e) => Outcome::InvalidSpec {
            error: format!("evaluation failed: {e}"),
        },
        Ok(eval) if eval.sets.is_empty() => Outcome::NoSetSelected {
            message: format!(
                "the compatibility spec has no set tagged [{}]",
                tags.join(", ")
            ),
        },
        Ok(eval) => match eval.best {
            Some(b) => {
                let i = eval.sets[b].index;
                Outcome::Compatible {
                    best_set: set_label(i, &compiled.spec().compatibilities[i]),
                }
            }
            None => Outcome::Incompatible {
                reason: reason(compiled, &eval).unwrap_or_else(|| "no set matches".into()),
            },
        },
    }
}

/// `inspect` then `decide`: the verdict for one image reference.
pub async fn check_image(
    client: &Client,
    image: &Reference,
    platform: &Platform,
    features: &Features,
    tags: &[String],
) -> Verdict {
    match inspect(client, image, platform).await {
        Ok(inspection) => decide(&inspection, features, tags),
        Err(verdict) => verdict,
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
