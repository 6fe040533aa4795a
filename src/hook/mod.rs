//! OCI runtime hook: state on stdin -> bundle config.json -> image -> check -> policy decision.
//!
//! The same protection as the NRI plugin where there is no NRI (CRI-O and podman through
//! hooks.d, any runtime whose spec lists the hook). It runs at `createRuntime` (or `prestart`),
//! during the runtime's `create`, before the container's process runs anything of the image, and
//! a non-zero exit makes the runtime fail the creation with the hook's stderr (runc) or at least
//! its exit code (crun). It shares the NRI plugin's config file, the decision path
//! ([`crate::check`]) and the verdict -> action mapping ([`crate::policy::decide`]); what differs:
//! - Each container is a new process, so what the plugin keeps in memory the hook keeps on disk
//!   ([`cache`]: registry answers by image digest, names -> digests; [`features`]: the node's
//!   discovery), shared by all hook processes and safe under concurrent ones.
//! - The image comes from config.json annotations or containers/storage ([`image`]).
//! - A decision can only let the container be created or not: a hook cannot add annotations to
//!   a container, so audit mode (and every "allow with a warning") only logs.
//! - There is no background fetch after the deadline: a deadline miss is an answer (onRegistryError),
//!   remembered for `cache.errorTtl`.
//! - Anything that keeps the hook from identifying the image (bad state, missing bundle or
//!   config.json, no image annotation) is `UnknownImage`, decided by `onUnknownImage`; a cache
//!   that cannot be used is a warning, never a failure.

pub mod cache;
pub mod features;
pub mod image;
pub mod input;
pub mod storage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::check::{self, Inspection, Outcome, Verdict};
use crate::features::Features;
use crate::policy::{self, config::DEFAULT_HOOK_CACHE_DIR, Config, Decision, Exemptions};
use crate::registry::{Client, Digest, Platform, Reference};
use cache::{Answer, Cache, NameAnswer};
use features::{FeaturesOrigin, NodeFeaturesError};
use image::ImageIdentity;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Features(#[from] NodeFeaturesError),
    #[error("exemptImages: {0}")]
    Exemptions(#[from] globset::Error),
}

/// How the check of one container used the disk cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Answered from the cache: no registry round trip.
    Hit,
    /// Asked the registry (and saved its answer).
    Miss,
    /// No cache (unusable directory): asked the registry.
    Disabled,
    /// No lookup was needed (exempt, or the image could not be identified).
    NotNeeded,
}

impl CacheUse {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
            CacheUse::Disabled => "disabled",
            CacheUse::NotNeeded => "not-needed",
        }
    }
}

/// What the hook decided about one container, and why.
#[derive(Debug, Clone)]
pub struct HookReport {
    /// The container ID from the state (empty when the state was unreadable).
    pub container: String,
    /// The image as the runtime names it, when found.
    pub image: Option<String>,
    /// Where the image name came from (annotation key, containers-storage).
    pub image_source: Option<&'static str>,
    /// Why the container was not checked, when exempt.
    pub exempt: Option<String>,
    /// The check's verdict (None when exempt).
    pub verdict: Option<Verdict>,
    pub decision: Decision,
    pub cache: CacheUse,
    pub features: Option<FeaturesOrigin>,
    /// Problems that did not change the decision (an unusable cache, ...).
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

impl HookReport {
    /// Whether the runtime must refuse the container.
    pub fn denied(&self) -> bool {
        self.decision.deny.is_some()
    }

    /// The one structured line every decision logs: image, digest, verdict, reason, action.
    pub fn log(&self) {
        let digest = self
            .verdict
            .as_ref()
            .and_then(|v| v.digest.clone())
            .unwrap_or_default();
        let case = self.verdict.as_ref().map(Verdict::case).unwrap_or("exempt");
        let reason = match (&self.decision.deny, &self.verdict, &self.exempt) {
            (Some(m), _, _) => m.clone(),
            (None, Some(v), _) => v.reason(),
            (None, None, Some(e)) => e.clone(),
            (None, None, None) => String::new(),
        };
        let action = if self.denied() { "deny" } else { "allow" };
        let image = self.image.as_deref().unwrap_or("");
        let source = self.image_source.unwrap_or("");
        let elapsed_ms = self.elapsed.as_secs_f64() * 1000.0;
        let cache = self.cache.as_str();
        if self.denied() || self.decision.warn {
            tracing::warn!(container = %self.container, image, source, digest, verdict = case, action, cache, elapsed_ms, reason, "oci-hook decision");
        } else {
            tracing::info!(container = %self.container, image, source, digest, verdict = case, action, cache, elapsed_ms, reason, "oci-hook decision");
        }
    }
}

/// The hook's cache directory for a config.
pub fn cache_dir(config: &Config) -> PathBuf {
    config
        .cache
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HOOK_CACHE_DIR))
}

/// Decides about the container whose OCI state is `state` (the bytes on the hook's stdin).
/// Errors are configuration errors only (features file, feature sources); everything about the
/// container itself ends in a decision.
pub fn run(config: &Config, state: &[u8]) -> Result<HookReport, HookError> {
    let started = Instant::now();
    let exemptions = Exemptions::new(config)?;
    let node = config.node_name();
    let mut report = HookReport {
        container: String::new(),
        image: None,
        image_source: None,
        exempt: None,
        verdict: None,
        decision: Decision {
            deny: None,
            annotations: Vec::new(),
            warn: false,
        },
        cache: CacheUse::NotNeeded,
        features: None,
        warnings: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let unknown = |report: &mut HookReport, error: String| {
        let v = Verdict::new(Outcome::UnknownImage { error });
        report.decision = policy::decide(config, &node, report.image.as_deref().unwrap_or("?"), &v);
        report.verdict = Some(v);
    };
    let state = match input::parse_state(state) {
        Ok(s) => s,
        Err(e) => {
            unknown(&mut report, e.to_string());
            return Ok(finish(report, started));
        }
    };
    report.container = state.id.clone();
    let bundle = match input::read_bundle_config(&state.bundle) {
        Ok(b) => b,
        Err(e) => {
            unknown(&mut report, e.to_string());
            return Ok(finish(report, started));
        }
    };
    // config.json is what the container is created from; the state repeats its annotations
    // (runc, crun), so it only fills gaps.
    let mut annotations: HashMap<String, String> = state.annotations.clone();
    annotations.extend(bundle.annotations);
    if image::is_sandbox(&annotations) {
        report.exempt = Some("pod sandbox (infra) container".into());
        return Ok(finish(report, started));
    }
    let namespace = image::namespace(&annotations).unwrap_or("");
    if let Some(why) = exemptions.exempt(namespace, "") {
        report.exempt = Some(why);
        return Ok(finish(report, started));
    }
    let identity = match image::identify(
        &state.id,
        &state.bundle,
        bundle.root.as_deref(),
        &annotations,
    ) {
        Ok(i) => i,
        Err(e) => {
            unknown(&mut report, e.to_string());
            return Ok(finish(report, started));
        }
    };
    report.image = Some(identity.name.clone());
    report.image_source = Some(identity.source);
    if let Some(why) = exemptions.exempt(namespace, &identity.name) {
        report.exempt = Some(why);
        return Ok(finish(report, started));
    }

    let dir = cache_dir(config);
    let cache = match Cache::open(&dir, &config.cache) {
        Ok(c) => Some(c),
        Err(e) => {
            report
                .warnings
                .push(format!("{e}; checking without the cache"));
            None
        }
    };
    let mut warnings = Vec::new();
    let (features, origin) = features::node_features(
        &config.features,
        cache.as_ref().map(|_| dir.as_path()),
        &mut |w| warnings.push(w),
    )?;
    report.warnings.extend(warnings);
    report.features = Some(origin);

    let (verdict, cache_use) = verdict(
        config,
        &identity,
        cache.as_ref(),
        &features,
        &mut report.warnings,
    );
    report.cache = cache_use;
    report.decision = policy::decide(config, &node, &identity.name, &verdict);
    report.verdict = Some(verdict);
    Ok(finish(report, started))
}

fn finish(mut report: HookReport, started: Instant) -> HookReport {
    report.elapsed = started.elapsed();
    for w in &report.warnings {
        tracing::warn!(container = %report.container, "{w}");
    }
    report
}

/// The verdict for an identified image: from the cache when it has a fresh answer, else from
/// the registry within the deadline (the answer then saved).
fn verdict(
    config: &Config,
    identity: &ImageIdentity,
    cache: Option<&Cache>,
    features: &Features,
    warnings: &mut Vec<String>,
) -> (Verdict, CacheUse) {
    let repo = identity.repository.as_str();
    // Held until this process has saved the registry's answer (end of this function).
    let mut _fetching = None;
    if let Some(cache) = cache {
        if let Some(v) = cached(config, identity, cache, features, warnings) {
            return (v, CacheUse::Hit);
        }
        let key = match identity.digests.first() {
            Some(d) => format!("{repo}@{d}"),
            None => identity.name.clone(),
        };
        _fetching = cache.fetch_lock(&key);
        // Another hook may have asked while this one waited for the lock.
        if let Some(v) = cached(config, identity, cache, features, warnings) {
            return (v, CacheUse::Hit);
        }
    }
    let reference = match identity.lookup_reference() {
        Ok(r) => r,
        Err(e) => {
            let v = Verdict::new(Outcome::UnknownImage {
                error: e.to_string(),
            });
            return (v, CacheUse::NotNeeded);
        }
    };
    let asked_by_name = reference.digest().is_none();
    let (verdict, answer) = ask_registry(config, &reference, features);
    let Some(cache) = cache else {
        return (verdict, CacheUse::Disabled);
    };
    let mut save = |r: Result<(), cache::CacheError>| {
        if let Err(e) = r {
            warnings.push(format!("{e}; the answer is not saved"));
        }
    };
    let digest = verdict
        .digest
        .as_deref()
        .and_then(|d| Digest::parse(d).ok());
    match (&digest, &answer) {
        (Some(d), Some(a)) => {
            save(cache.store_answer(repo, d, a));
            if asked_by_name {
                save(cache.store_name(
                    &identity.name,
                    &NameAnswer::Digest {
                        digest: d.to_string(),
                    },
                ));
            }
        }
        // No digest: the name did not resolve.
        (None, Some(a)) if asked_by_name => {
            let name_answer = match a {
                Answer::NoArtifact => NameAnswer::NotFound,
                other => NameAnswer::Failed {
                    answer: other.clone(),
                },
            };
            save(cache.store_name(&identity.name, &name_answer));
        }
        _ => {}
    }
    (verdict, CacheUse::Miss)
}

/// The verdict from a fresh cached answer: by the digests the runtime knows, else by the
/// digest the name resolved to lately (or the name's cached failure).
fn cached(
    config: &Config,
    identity: &ImageIdentity,
    cache: &Cache,
    features: &Features,
    warnings: &mut Vec<String>,
) -> Option<Verdict> {
    let mut warn_cache = |e: cache::CacheError| warnings.push(format!("{e}; ignored"));
    let mut known: Vec<Digest> = identity.digests.clone();
    if known.is_empty() {
        match cache.name(&identity.name) {
            Ok(Some(NameAnswer::Digest { digest })) => known.extend(Digest::parse(&digest).ok()),
            Ok(Some(NameAnswer::NotFound)) => return Some(Verdict::new(Outcome::NoArtifact)),
            Ok(Some(NameAnswer::Failed { answer })) => {
                return Some(from_answer(&answer, None, features, &config.tags))
            }
            Ok(None) => {}
            Err(e) => warn_cache(e),
        }
    }
    for d in &known {
        match cache.answer(&identity.repository, d) {
            Ok(Some(answer)) => return Some(from_answer(&answer, Some(d), features, &config.tags)),
            Ok(None) => {}
            Err(e) => warn_cache(e),
        }
    }
    None
}

/// A cached answer evaluated on this node's features: a cached spec is evaluated again on
/// every use, so new features apply at once.
fn from_answer(
    answer: &Answer,
    digest: Option<&Digest>,
    features: &Features,
    tags: &[String],
) -> Verdict {
    let digest = digest.map(Digest::to_string);
    let (outcome, artifact) = match answer {
        Answer::Spec { artifact, spec } => {
            let outcome = match crate::spec::load(spec, &format!("artifact {artifact}")) {
                Ok(loaded) => check::evaluate(&loaded, features, tags),
                Err(e) => Outcome::InvalidSpec {
                    error: e.to_string().replace('\n', " "),
                },
            };
            (outcome, Some(artifact.clone()))
        }
        Answer::NoArtifact => (Outcome::NoArtifact, None),
        Answer::InvalidSpec { artifact, error } => (
            Outcome::InvalidSpec {
                error: error.clone(),
            },
            artifact.clone(),
        ),
        Answer::RegistryError { error } => (
            Outcome::RegistryError {
                error: error.clone(),
                kind: None,
            },
            None,
        ),
        Answer::DeadlineExceeded { waited_ms } => (
            Outcome::DeadlineExceeded {
                waited: Duration::from_millis(*waited_ms),
            },
            None,
        ),
    };
    Verdict {
        outcome,
        digest,
        artifact,
    }
}

/// Asks the registry within `config.deadline`. Returns the verdict and the answer to save (None
/// for failures that are not the registry's, e.g. a bad local TLS setting).
fn ask_registry(
    config: &Config,
    reference: &Reference,
    features: &Features,
) -> (Verdict, Option<Answer>) {
    let known_digest = reference.digest().map(Digest::to_string);
    let client = match Client::new(config.registry.client_config()) {
        Ok(c) => c,
        Err(e) => {
            let v = Verdict {
                outcome: Outcome::RegistryError {
                    error: e.to_string(),
                    kind: Some(e.kind()),
                },
                digest: known_digest,
                artifact: None,
            };
            return (v, None);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let v = Verdict {
                outcome: Outcome::RegistryError {
                    error: format!("cannot start the async runtime: {e}"),
                    kind: None,
                },
                digest: known_digest,
                artifact: None,
            };
            return (v, None);
        }
    };
    let deadline = config.deadline;
    let platform = Platform::host();
    let inspected = runtime.block_on(async {
        tokio::time::timeout(deadline, check::inspect(&client, reference, &platform)).await
    });
    match inspected {
        Err(_elapsed) => {
            let v = Verdict {
                outcome: Outcome::DeadlineExceeded { waited: deadline },
                digest: known_digest,
                artifact: None,
            };
            let a = Answer::DeadlineExceeded {
                waited_ms: deadline.as_millis() as u64,
            };
            (v, Some(a))
        }
        Ok(Ok(inspection)) => {
            let answer = answer_of(&inspection);
            (
                check::decide(&inspection, features, &config.tags),
                Some(answer),
            )
        }
        Ok(Err(v)) => {
            let answer = match &v.outcome {
                Outcome::NoArtifact => Some(Answer::NoArtifact),
                Outcome::InvalidSpec { error } => Some(Answer::InvalidSpec {
                    artifact: v.artifact.clone(),
                    error: error.clone(),
                }),
                Outcome::RegistryError { error, .. } => Some(Answer::RegistryError {
                    error: error.clone(),
                }),
                _ => None,
            };
            (v, answer)
        }
    }
}

fn answer_of(inspection: &Inspection) -> Answer {
    match &inspection.artifact {
        Some(a) => Answer::Spec {
            artifact: a.fetched.artifact.digest.to_string(),
            spec: String::from_utf8_lossy(&a.fetched.bytes).into_owned(),
        },
        None => Answer::NoArtifact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Mode;

    const SPEC_OK: &str = "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: kernel\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n        ext4: {op: Exists}\n";

    fn features() -> Features {
        let mut f = Features::default();
        f.set_flags("kernel.loadedmodule", ["ext4".to_string()]);
        f
    }

    #[test]
    fn cached_answers_are_evaluated_on_the_node() {
        let d = Digest::sha256_of(b"image");
        let spec = Answer::Spec {
            artifact: "sha256:art".into(),
            spec: SPEC_OK.into(),
        };
        let v = from_answer(&spec, Some(&d), &features(), &[]);
        assert_eq!(v.case(), "compatible");
        assert_eq!(v.digest, Some(d.to_string()));
        assert_eq!(v.artifact.as_deref(), Some("sha256:art"));
        let v = from_answer(&spec, Some(&d), &Features::default(), &[]);
        assert_eq!(v.case(), "incompatible");
        assert!(v.reason().contains("kernel.loadedmodule"), "{}", v.reason());
        let broken = Answer::Spec {
            artifact: "sha256:art".into(),
            spec: "version: v9\n".into(),
        };
        assert_eq!(
            from_answer(&broken, None, &features(), &[]).case(),
            "invalid-spec"
        );
        let late = Answer::DeadlineExceeded { waited_ms: 900 };
        assert_eq!(
            from_answer(&late, None, &features(), &[]).case(),
            "deadline-exceeded"
        );
    }

    #[test]
    fn bad_input_is_an_unknown_image_decided_by_policy() {
        let t = tempfile::tempdir().unwrap();
        let config = Config {
            node_name: Some("n1".into()),
            cache: crate::policy::config::CacheSettings {
                dir: Some(t.path().join("cache")),
                ..Default::default()
            },
            ..Config::default()
        };
        let r = run(&config, b"not json").unwrap();
        assert!(!r.denied());
        assert!(r.decision.warn);
        assert_eq!(r.verdict.as_ref().map(Verdict::case), Some("unknown-image"));
        let deny = Config {
            on_unknown_image: policy::FailAction::Deny,
            ..config.clone()
        };
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"c1","status":"creating","bundle":"{}"}}"#,
            t.path().join("missing").display()
        );
        let r = run(&deny, state.as_bytes()).unwrap();
        let msg = r.decision.deny.expect("denied");
        assert!(
            msg.contains("cannot read the bundle's config.json"),
            "{msg}"
        );
        assert!(msg.contains("onUnknownImage: deny"), "{msg}");
        // Audit mode never denies.
        let audit = Config {
            mode: Mode::Audit,
            ..deny
        };
        assert!(!run(&audit, state.as_bytes()).unwrap().denied());
    }

    #[test]
    fn sandboxes_and_exempt_namespaces_are_not_checked() {
        let t = tempfile::tempdir().unwrap();
        let bundle = t.path().join("b");
        std::fs::create_dir_all(&bundle).unwrap();
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"c1","status":"creating","bundle":"{}"}}"#,
            bundle.display()
        );
        let config = Config {
            cache: crate::policy::config::CacheSettings {
                dir: Some(t.path().join("cache")),
                ..Default::default()
            },
            ..Config::default()
        };
        std::fs::write(
            bundle.join("config.json"),
            r#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri-o.ContainerType":"sandbox"}}"#,
        )
        .unwrap();
        let r = run(&config, state.as_bytes()).unwrap();
        assert_eq!(r.exempt.as_deref(), Some("pod sandbox (infra) container"));
        std::fs::write(
            bundle.join("config.json"),
            r#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.pod.namespace":"kube-system","io.kubernetes.cri-o.Image":"x/y:1"}}"#,
        )
        .unwrap();
        let r = run(&config, state.as_bytes()).unwrap();
        assert_eq!(r.exempt.as_deref(), Some("namespace kube-system is exempt"));
        assert!(r.verdict.is_none() && !r.denied());
    }
}
