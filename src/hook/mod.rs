//! OCI runtime hook: state on stdin -> bundle config.json -> image identity -> the check
//! ([`crate::policy::Gate`], answers in a [`cache::DiskStore`]) -> the decision.
//!
//! The same protection as the NRI plugin where there is no NRI (CRI-O and podman through
//! hooks.d, any runtime whose spec lists the hook). It runs at `createRuntime` (or `prestart`),
//! during the runtime's `create`, before the container's process runs anything of the image, and
//! a non-zero exit makes the runtime fail the creation with the hook's stderr (runc) or at least
//! its exit code (crun). It shares the NRI plugin's config file and decision path; what differs:
//! - Each container is a new process, so what the plugin keeps in memory the hook keeps on disk
//!   ([`cache`]: answers by image; [`features`]: the node's discovery), shared by all hook
//!   processes and safe under concurrent ones.
//! - The image comes from config.json annotations or containers/storage ([`image`]).
//! - A decision can only let the container be created or not: a hook cannot add annotations to
//!   a container, so audit mode (and every "allow with a warning") only logs.
//! - There is no fetch after the deadline (the process ends): a deadline miss is an answer
//!   (onRegistryError), remembered for `cache.errorTtl`; a stale answer is refreshed by one
//!   process within the deadline while the others serve it.
//! - Anything that keeps the hook from identifying the image (bad state, missing bundle or
//!   config.json, no image annotation) is `UnknownImage`, decided by `onUnknownImage`; a cache
//!   that cannot be used is a warning, never a failure.

pub mod cache;
pub mod features;
pub mod image;
pub mod input;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::check::{Checker, MemoryStore, NodeFeatures, Store};
use crate::config::{Config, DEFAULT_HOOK_CACHE_DIR};
use crate::policy::{Decided, Exemptions, Gate, Subject};
use crate::registry::Platform;
use cache::DiskStore;
use features::{FeaturesOrigin, NodeFeaturesError};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Features(#[from] NodeFeaturesError),
    #[error("exemptImages: {0}")]
    Exemptions(#[from] globset::Error),
}

/// What the hook decided about one container, and why.
#[derive(Debug, Clone)]
pub struct HookReport {
    pub decided: Decided,
    /// Where the node's features came from (None when the container was not checked).
    pub features: Option<FeaturesOrigin>,
    /// Whether answers were read from and saved to the disk cache.
    pub cache_used: bool,
    /// Problems that did not change the decision (an unusable cache, ...).
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

impl HookReport {
    /// Whether the runtime must refuse the container.
    pub fn denied(&self) -> bool {
        self.decided.decision.deny.is_some()
    }

    /// The decision's log line, the plugin's fields.
    pub fn log(&self) {
        self.decided.log("oci-hook", "create-runtime");
    }

    /// What did not change the decision but should be fixed (an unusable cache, ...); logged
    /// whatever the decision, also beside a refusal.
    pub fn log_warnings(&self) {
        self.decided.log_warnings("oci-hook");
        for w in &self.warnings {
            tracing::warn!(
                edge = "oci-hook",
                container = self.decided.container.as_str(),
                "{}",
                crate::untrusted::escape(w)
            );
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

/// The settings an answer depends on: answers fetched under other registry settings (or for
/// another platform) are not served from the cache.
fn answer_scope(config: &Config, platform: &Platform) -> String {
    let mut r = config.registry.clone();
    r.timeout = None;
    format!("{platform} strict={} {r:?}", config.strict_specs)
}

/// Decides about the container whose OCI state is `state` (the bytes on the hook's stdin).
/// Errors are configuration errors only (features file, feature sources); everything about the
/// container itself ends in a decision.
pub fn run(config: &Config, state: &[u8]) -> Result<HookReport, HookError> {
    let started = Instant::now();
    let exemptions = Exemptions::new(config)?;
    let mut warnings = Vec::new();
    let container = input::Container::read(state);
    let subject = container.subject();
    // Sandboxes and exempt namespaces need no features, store or registry.
    let needs_check = container.sandbox.is_none()
        && exemptions.exempt(&subject.namespace, "").is_none()
        && subject.image.is_ok();
    let platform = Platform::host();
    let dir = cache_dir(config);
    let mut store: Option<DiskStore> = None;
    let mut origin = None;
    let features = if needs_check {
        store = match DiskStore::open(
            &dir,
            &answer_scope(config, &platform),
            config.cache.max_entries,
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                warnings.push(format!("{e}; checking without the cache"));
                None
            }
        };
        let (f, o) = features::node_features(
            &config.features,
            store.as_ref().map(|_| dir.as_path()),
            &mut |w| warnings.push(w),
        )?;
        origin = Some(o);
        f
    } else {
        Default::default()
    };
    let cache_used = store.is_some();
    let store: Arc<dyn Store> = match store {
        Some(s) => Arc::new(s),
        None => Arc::new(MemoryStore::new(1)),
    };
    let checker = Arc::new(
        Checker::new(
            config.registry.client_config(),
            platform,
            config.tags.clone(),
            config.cache.clone(),
            NodeFeatures::new(features),
            store,
        )
        .with_reading(config.reading()),
    );
    let gate = Gate::new(config.clone(), exemptions, checker, None, config.deadline);
    let mut decided = match container.sandbox {
        Some(why) => Decided::exempt(subject, why),
        None => gate.admit_blocking(subject),
    };
    decided.latency = started.elapsed();
    Ok(HookReport {
        features: origin,
        cache_used,
        warnings,
        elapsed: started.elapsed(),
        decided,
    })
}

/// The container the state describes, from the state and the bundle's config.json.
impl input::Container {
    fn subject(&self) -> Subject {
        let namespace = image::namespace(&self.annotations)
            .unwrap_or("")
            .to_string();
        let pod = image::pod_name(&self.annotations)
            .map(|n| format!("{namespace}/{n}"))
            .unwrap_or_default();
        let container = image::container_name(&self.annotations)
            .unwrap_or(&self.id)
            .to_string();
        Subject {
            namespace,
            pod,
            container,
            image: self.image.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FailAction, Mode};

    fn config(dir: &std::path::Path) -> Config {
        Config {
            node_name: Some("n1".into()),
            cache: crate::config::CacheSettings {
                dir: Some(dir.join("cache")),
                ..Default::default()
            },
            ..Config::default()
        }
    }

    #[test]
    fn bad_input_is_an_unknown_image_decided_by_policy() {
        let t = tempfile::tempdir().unwrap();
        let config = config(t.path());
        let r = run(&config, b"not json").unwrap();
        assert!(!r.denied());
        assert!(r.decided.decision.warn);
        assert_eq!(
            r.decided.verdict.as_ref().map(|v| v.case()),
            Some("unknown-image")
        );
        let deny = Config {
            on_unknown_image: FailAction::Deny,
            ..config.clone()
        };
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"c1","status":"creating","bundle":"{}"}}"#,
            t.path().join("missing").display()
        );
        let r = run(&deny, state.as_bytes()).unwrap();
        let msg = r.decided.decision.deny.expect("denied");
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
        let config = config(t.path());
        std::fs::write(
            bundle.join("config.json"),
            r#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri-o.ContainerType":"sandbox"}}"#,
        )
        .unwrap();
        let r = run(&config, state.as_bytes()).unwrap();
        assert_eq!(
            r.decided.exempt.as_deref(),
            Some("pod sandbox (infra) container")
        );
        std::fs::write(
            bundle.join("config.json"),
            r#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.pod.namespace":"kube-system","io.kubernetes.cri-o.Image":"x/y:1"}}"#,
        )
        .unwrap();
        let r = run(&config, state.as_bytes()).unwrap();
        assert_eq!(
            r.decided.exempt.as_deref(),
            Some("namespace kube-system is exempt")
        );
        assert!(r.decided.verdict.is_none() && !r.denied());
        assert!(r.features.is_none(), "no discovery for an exempt container");
    }
}
