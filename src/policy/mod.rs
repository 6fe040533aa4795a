//! Policy: exemptions, the verdict -> action mapping, and the decision for one container
//! ([`Gate`]) that every edge makes the same way.

mod gate;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::check::{Compat, Outcome, Verdict};
use crate::config::{Config, FailAction, Mode};
use crate::untrusted::escaped;
pub use gate::{
    Decided, Gate, Subject, DIGEST_FROM_NAME, DIGEST_FROM_RUNTIME, DIGEST_FROM_RUNTIME_THEN_STORE,
    DIGEST_FROM_STORE,
};

/// Annotation keys added to containers that were checked and allowed.
pub const ANNOTATION_COMPATIBLE: &str = "image-compat.io/compatible";
pub const ANNOTATION_REASON: &str = "image-compat.io/reason";
pub const ANNOTATION_ARTIFACT: &str = "image-compat.io/artifact";
/// Errors in the spec that NFD's evaluation did not reach on this node (audit mode).
pub const ANNOTATION_WARNINGS: &str = "image-compat.io/warnings";

/// What to do with one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// None: let it be created. Some(message): refuse it with this message.
    pub deny: Option<String>,
    /// Annotations to add to an allowed container.
    pub annotations: Vec<(String, String)>,
    /// Whether the decision deserves a warning log line (audit of an incompatible image,
    /// an unanswered check let through, ...).
    pub warn: bool,
}

/// The exemptions of a config, compiled once.
#[derive(Debug, Clone)]
pub struct Exemptions {
    namespaces: Vec<String>,
    images: GlobSet,
}

impl Exemptions {
    pub fn new(config: &Config) -> Result<Exemptions, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for p in &config.exempt_images {
            b.add(Glob::new(p)?);
        }
        Ok(Exemptions {
            namespaces: config.exempt_namespaces.clone(),
            images: b.build()?,
        })
    }

    /// Why this container is not checked, if it is exempt.
    pub fn exempt(&self, namespace: &str, image: &str) -> Option<String> {
        if self.namespaces.iter().any(|n| n == namespace) {
            return Some(format!("namespace {namespace} is exempt"));
        }
        if !image.is_empty() && self.images.is_match(image) {
            return Some(format!("image {image} is exempt"));
        }
        None
    }
}

/// Maps a verdict to an action under the config's mode and failure policies.
pub fn decide(config: &Config, node: &str, image: &str, verdict: &Verdict) -> Decision {
    let image = if image.is_empty() { "?" } else { image };
    let shown = match &verdict.digest {
        Some(d) => format!("{image} ({d})"),
        None => image.to_string(),
    };
    let (fail_action, policy_key) = match verdict.outcome {
        Outcome::Compatible { .. } => (FailAction::Allow, ""),
        Outcome::Incompatible { .. } => (FailAction::Deny, ""),
        Outcome::NoArtifact | Outcome::NoSetSelected { .. } => {
            (config.on_missing_artifact, "onMissingArtifact")
        }
        Outcome::InvalidSpec { .. } => (config.on_invalid_spec, "onInvalidSpec"),
        Outcome::RegistryError { .. } | Outcome::DeadlineExceeded { .. } => {
            (config.on_registry_error, "onRegistryError")
        }
        Outcome::UnknownImage { .. } => (config.on_unknown_image, "onUnknownImage"),
        Outcome::Unknown { .. } => (config.on_unknown, "onUnknown"),
    };
    // The message reaches the kubelet's events and people's terminals: what image authors,
    // registries and runtimes wrote into it is shown escaped.
    let deny = (config.mode == Mode::Enforce && fail_action == FailAction::Deny).then(|| {
        escaped(&match &verdict.outcome {
            Outcome::Incompatible { reason } => {
                format!("image-compat: image {shown} is not compatible with node {node}: {reason}")
            }
            _ => format!(
                "image-compat: image {shown} could not be checked on node {node}: {} \
                 ({policy_key}: deny)",
                verdict.reason()
            ),
        })
    });
    let mut annotations = Vec::new();
    if deny.is_none() {
        let value = match verdict.compat() {
            Compat::Compatible => "true",
            Compat::Incompatible => "false",
            Compat::Unknown => "unknown",
        };
        annotations.push((ANNOTATION_COMPATIBLE.to_string(), value.to_string()));
        annotations.push((ANNOTATION_REASON.to_string(), escaped(&verdict.reason())));
        if let Some(a) = &verdict.artifact {
            annotations.push((ANNOTATION_ARTIFACT.to_string(), a.clone()));
        }
        if config.mode == Mode::Audit && !verdict.warnings.is_empty() {
            annotations.push((
                ANNOTATION_WARNINGS.to_string(),
                escaped(&verdict.warnings.join("; ")),
            ));
        }
    }
    let quiet = matches!(
        verdict.outcome,
        Outcome::Compatible { .. } | Outcome::NoArtifact
    );
    Decision {
        warn: !quiet && deny.is_none(),
        deny,
        annotations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn verdict(outcome: Outcome) -> Verdict {
        Verdict {
            digest: Some("sha256:abc".into()),
            artifact: Some("sha256:art".into()),
            ..Verdict::new(outcome)
        }
    }

    fn incompatible() -> Verdict {
        verdict(Outcome::Incompatible {
            reason:
                "set \"gpu\" rule \"nvidia driver\": pci.device: vendor In [10de] did not match"
                    .into(),
        })
    }

    #[test]
    fn enforce_denies_incompatible_with_a_readable_message() {
        let d = decide(
            &Config::default(),
            "n1",
            "registry/app:1.2",
            &incompatible(),
        );
        assert_eq!(
            d.deny.as_deref(),
            Some("image-compat: image registry/app:1.2 (sha256:abc) is not compatible with node n1: set \"gpu\" rule \"nvidia driver\": pci.device: vendor In [10de] did not match")
        );
        assert!(d.annotations.is_empty());
    }

    #[test]
    fn audit_allows_annotated_and_warns() {
        let config = Config {
            mode: Mode::Audit,
            on_invalid_spec: FailAction::Deny,
            ..Config::default()
        };
        let d = decide(&config, "n1", "app", &incompatible());
        assert_eq!(d.deny, None);
        assert!(d.warn);
        assert!(d
            .annotations
            .contains(&(ANNOTATION_COMPATIBLE.into(), "false".into())));
        assert!(d
            .annotations
            .contains(&(ANNOTATION_ARTIFACT.into(), "sha256:art".into())));
        // Audit never denies, whatever the failure policy says.
        let d = decide(
            &config,
            "n1",
            "app",
            &verdict(Outcome::InvalidSpec { error: "x".into() }),
        );
        assert_eq!(d.deny, None);
        assert!(d
            .annotations
            .contains(&(ANNOTATION_COMPATIBLE.into(), "unknown".into())));
    }

    #[test]
    fn failure_policies() {
        let deny_all = Config {
            on_missing_artifact: FailAction::Deny,
            on_registry_error: FailAction::Deny,
            on_unknown_image: FailAction::Deny,
            ..Config::default()
        };
        let defaults = Config::default();
        let cases = [
            (Outcome::NoArtifact, false, "onMissingArtifact"),
            (
                Outcome::RegistryError {
                    error: "connection refused".into(),
                    kind: None,
                },
                false,
                "onRegistryError",
            ),
            (
                Outcome::DeadlineExceeded {
                    waited: Duration::from_millis(900),
                },
                false,
                "onRegistryError",
            ),
            (
                Outcome::InvalidSpec {
                    error: "bad".into(),
                },
                true,
                "onInvalidSpec",
            ),
            (
                Outcome::UnknownImage {
                    error: "not found".into(),
                },
                false,
                "onUnknownImage",
            ),
        ];
        for (outcome, denied_by_default, key) in cases {
            let v = verdict(outcome);
            assert_eq!(
                decide(&defaults, "n", "i", &v).deny.is_some(),
                denied_by_default,
                "{v:?}"
            );
            let d = decide(&deny_all, "n", "i", &v);
            let msg = d.deny.expect("deny configured");
            assert!(
                msg.contains(&format!("({key}: deny)"))
                    && msg.contains("could not be checked on node n"),
                "{msg}"
            );
        }
        let ok = decide(
            &defaults,
            "n",
            "i",
            &verdict(Outcome::Compatible {
                detail: "best set #0".into(),
            }),
        );
        assert_eq!(ok.deny, None);
        assert!(!ok.warn);
    }

    #[test]
    fn exemptions() {
        let config = Config {
            exempt_images: vec!["registry.k8s.io/pause:*".into()],
            ..Config::default()
        };
        let e = Exemptions::new(&config).unwrap();
        assert!(e.exempt("kube-system", "x").is_some());
        assert!(e.exempt("default", "registry.k8s.io/pause:3.10").is_some());
        assert!(e.exempt("default", "registry.k8s.io/etcd:3.5").is_none());
    }
}
