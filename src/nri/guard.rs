//! The image-compat NRI handler: CreateContainer -> image -> check -> policy -> allow,
//! annotate or reject; Synchronize warms the cache.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::{debug, info, warn};

use super::handler::{Handler, HandlerError, Rejection};
use super::types::{Adjustment, ConfigureInfo, Container, Event, EventSet, PodSandbox, Validation};
use crate::check::{
    image_of, CacheSettings, Checker, ImageIdentity, Lookup, NameResolver, Outcome, Resolver,
    Verdict,
};
use crate::features::Features;
use crate::policy::config::{FeatureSettings, FeaturesError};
use crate::policy::{self, Config, Exemptions};
use crate::registry::{Client, Platform};
use crate::runtime::{ContainerdResolver, ImageEventKind, Runtime};

/// Changes the command line makes to any config, including one the runtime passes.
pub type Overrides = Box<dyn Fn(&mut Config) + Send + Sync>;

/// What happened to one container, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub image: String,
    /// `allow`, `deny` or `exempt`.
    pub action: &'static str,
    pub verdict: Option<Verdict>,
    pub latency: Duration,
}

/// Where in the runtime's sequence a decision is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// CreateContainer: refusing fails the creation with the reason. On a plugin timeout the
    /// runtime creates the container unchecked.
    Create,
    /// ValidateContainerAdjustment (NRI >= 0.10): the runtime's last word before creating.
    /// A plugin that times out here fails the creation: enforcing here fails closed.
    Validate,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Create => "create",
            Stage::Validate => "validate",
        }
    }
}

/// Observes decisions (metrics); called once per CreateContainer.
pub trait Observer: Send + Sync {
    fn decided(&self, d: &Decided, lookup: Option<&Lookup>);
}

pub struct Guard {
    base: Config,
    overrides: Overrides,
    /// A resolver to use whatever the config says (tests); None: built from the config in
    /// force (`containerd.socket`), on each Configure that changes it.
    fixed_resolver: Option<Arc<dyn Resolver>>,
    observer: Option<Arc<dyn Observer>>,
    features: RwLock<Features>,
    /// The settings `features` came from: a runtime config with other settings (a pre-launched
    /// plugin's conf.d file) makes the plugin load its features again.
    features_from: RwLock<FeatureSettings>,
    state: RwLock<Option<Arc<State>>>,
}

struct State {
    config: Config,
    exemptions: Exemptions,
    checker: Arc<Checker>,
    resolver: Arc<dyn Resolver>,
    deadline: Duration,
    node: String,
    /// Prefetches the artifacts of images containerd pulls; stopped with this state.
    watcher: Option<tokio::task::AbortHandle>,
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(w) = &self.watcher {
            w.abort();
        }
    }
}

impl Guard {
    /// `base` is the config from the file and flags; a config string sent by the runtime
    /// (pre-launched plugins) replaces it, and `overrides` (the flags) apply on top of either.
    /// Image names resolve through containerd (`containerd.socket` of the config in force:
    /// every repository and digest the image is known under), or by name in the registry when
    /// the socket is empty; `resolver` replaces that choice (tests).
    pub fn new(
        base: Config,
        overrides: Overrides,
        resolver: Option<Arc<dyn Resolver>>,
        features: Features,
        observer: Option<Arc<dyn Observer>>,
    ) -> Guard {
        Guard {
            features_from: RwLock::new(base.features.clone()),
            base,
            overrides,
            fixed_resolver: resolver,
            observer,
            features: RwLock::new(features),
            state: RwLock::new(None),
        }
    }

    /// Replaces the node's features after a rediscovery.
    pub fn set_features(&self, features: Features) {
        if let Some(s) = self.current() {
            s.checker.set_features(features.clone());
        }
        *self.features.write().unwrap_or_else(|p| p.into_inner()) = features;
    }

    /// Loads the node's features again with the settings in force (discovery, or the
    /// configured file); blocking, a few milliseconds.
    pub fn refresh_features(&self) -> Result<(), FeaturesError> {
        let settings = self
            .features_from
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.set_features(settings.load()?);
        Ok(())
    }

    /// Whether Configure has been received and a checker is ready.
    pub fn is_configured(&self) -> bool {
        self.current().is_some()
    }

    /// The config in force since the last Configure (a pre-launched plugin learns its config
    /// only then).
    pub fn config(&self) -> Option<Config> {
        self.current().map(|s| s.config.clone())
    }

    fn current(&self) -> Option<Arc<State>> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn build(&self, config: Config, request_timeout: Duration) -> Result<State, String> {
        let exemptions = Exemptions::new(&config).map_err(|e| format!("exemptImages: {e}"))?;
        let client = Client::new(config.registry.client_config()).map_err(|e| e.to_string())?;
        let features = self
            .features
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let checker = Checker::new(
            client,
            Platform::host(),
            config.tags.clone(),
            features,
            CacheSettings {
                max_entries: config.cache.max_entries,
                ttl: config.cache.ttl,
                error_ttl: config.cache.error_ttl,
            },
        );
        // The runtime creates the container unchecked when we answer late, so decide well
        // before its request timeout.
        let deadline = config.deadline.min(request_timeout / 2);
        let (resolver, runtime): (Arc<dyn Resolver>, Option<Runtime>) = match &self.fixed_resolver {
            Some(r) => (r.clone(), None),
            None if config.containerd.socket.as_os_str().is_empty() => {
                (Arc::new(NameResolver), None)
            }
            None => {
                let rt = Runtime::connect(&config.containerd.socket, &config.containerd.namespace)
                    .map_err(|e| format!("containerd.socket: {e}"))?;
                (Arc::new(ContainerdResolver::new(rt.clone())), Some(rt))
            }
        };
        let watcher = runtime.map(|rt| {
            let (resolver, checker) = (resolver.clone(), checker.clone());
            tokio::spawn(prefetch_pulled_images(rt, resolver, checker)).abort_handle()
        });
        Ok(State {
            node: config.node_name(),
            exemptions,
            checker,
            resolver,
            deadline,
            config,
            watcher,
        })
    }

    /// Decides one container; the rejection message when it must not be created.
    pub async fn decide(
        &self,
        pod: &PodSandbox,
        ctr: &Container,
    ) -> Result<Vec<(String, String)>, String> {
        self.decide_at(pod, ctr, Stage::Create).await
    }

    async fn decide_at(
        &self,
        pod: &PodSandbox,
        ctr: &Container,
        stage: Stage,
    ) -> Result<Vec<(String, String)>, String> {
        let started = Instant::now();
        let Some(state) = self.current() else {
            // Cannot happen: the runtime sends Configure before any container.
            warn!(container = %ctr.name, "CreateContainer before Configure: allowed unchecked");
            return Ok(Vec::new());
        };
        let image = ctr
            .image
            .as_ref()
            .map(|i| (i.name.as_str(), i.digest.as_str()));
        let identity = image_of(image, &ctr.annotations);
        let shown = identity
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_default();
        if let Some(why) = state.exemptions.exempt(&pod.namespace, &shown) {
            debug!(image = %shown, pod = %format!("{}/{}", pod.namespace, pod.name), %why, "exempt");
            if stage == Stage::Create {
                self.observe(&shown, "exempt", None, None, started);
            }
            return Ok(Vec::new());
        }
        let (verdict, lookup) = match &identity {
            None => (
                Verdict::new(Outcome::UnknownImage {
                    error: "the runtime names no image for this container".into(),
                }),
                None,
            ),
            Some(id) => self.check(&state, id).await,
        };
        let decision = policy::decide(&state.config, &state.node, &shown, &verdict);
        let action = if decision.deny.is_some() {
            "deny"
        } else {
            "allow"
        };
        let latency = started.elapsed();
        let pod_name = format!("{}/{}", pod.namespace, pod.name);
        let source = lookup
            .as_ref()
            .map(|l| format!("{:?}", l.source))
            .unwrap_or_default();
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    image = %shown,
                    digest = verdict.digest.as_deref().unwrap_or(""),
                    pod = %pod_name,
                    container = %ctr.name,
                    verdict = verdict.word(),
                    case = verdict.case(),
                    action,
                    reason = %verdict.reason(),
                    artifact = verdict.artifact.as_deref().unwrap_or(""),
                    source = %source,
                    latency_us = latency.as_micros() as u64,
                    stage = stage.as_str(),
                    "decision"
                )
            };
        }
        if decision.deny.is_some() || decision.warn {
            line!(warn);
        } else {
            line!(info);
        }
        // Metrics count containers, so only at the first decision point of each.
        if stage == Stage::Create {
            self.observe(&shown, action, Some(verdict), lookup.as_ref(), started);
        }
        match decision.deny {
            Some(message) => Err(message),
            None => Ok(decision.annotations),
        }
    }

    async fn check(&self, state: &State, id: &ImageIdentity) -> (Verdict, Option<Lookup>) {
        let resolve = tokio::time::timeout(state.deadline, state.resolver.candidates(id)).await;
        let candidates = match resolve {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return (
                    Verdict::new(Outcome::UnknownImage {
                        error: e.to_string(),
                    }),
                    None,
                );
            }
            Err(_) => {
                let v = Verdict::new(Outcome::DeadlineExceeded {
                    waited: state.deadline,
                });
                return (v, None);
            }
        };
        let lookup = state.checker.verdict(&candidates, state.deadline).await;
        (lookup.verdict.clone(), Some(lookup))
    }

    fn observe(
        &self,
        image: &str,
        action: &'static str,
        verdict: Option<Verdict>,
        lookup: Option<&Lookup>,
        started: Instant,
    ) {
        if let Some(o) = &self.observer {
            let d = Decided {
                image: image.to_string(),
                action,
                verdict,
                latency: started.elapsed(),
            };
            o.decided(&d, lookup);
        }
    }

    /// Starts fetching the artifacts of these containers' images in the background.
    pub async fn prefetch(&self, containers: &[Container]) {
        let Some(state) = self.current() else {
            return;
        };
        for ctr in containers {
            let image = ctr
                .image
                .as_ref()
                .map(|i| (i.name.as_str(), i.digest.as_str()));
            if let Some(id) = image_of(image, &ctr.annotations) {
                if let Ok(c) = state.resolver.candidates(&id).await {
                    state.checker.prefetch(&c);
                }
            }
        }
    }
}

/// Fetches the artifact of each image containerd pulls (or retags), before its first container.
async fn prefetch_pulled_images(rt: Runtime, resolver: Arc<dyn Resolver>, checker: Arc<Checker>) {
    use futures::StreamExt;
    let events = rt.watch_images();
    futures::pin_mut!(events);
    while let Some(ev) = events.next().await {
        if ev.kind == ImageEventKind::Deleted || ev.name.starts_with("sha256:") {
            continue;
        }
        let id = ImageIdentity {
            name: ev.name.clone(),
            digest: ev.target.as_ref().map(|t| t.digest.to_string()),
        };
        if let Ok(c) = resolver.candidates(&id).await {
            debug!(image = %ev.name, "prefetching the artifact of a pulled image");
            checker.prefetch(&c);
        }
    }
}

#[async_trait]
impl Handler for Guard {
    /// CreateContainer everywhere; ValidateContainerAdjustment too where the runtime has it
    /// (the transport drops what the runtime does not know).
    fn events(&self) -> EventSet {
        [Event::CreateContainer, Event::ValidateContainerAdjustment]
            .into_iter()
            .collect()
    }

    /// The same decision again (from the cache by now), at the point where a timeout fails the
    /// creation instead of letting it through. Audit mode never refuses, so it answers at once.
    async fn validate(&self, v: &Validation) -> Result<(), Rejection> {
        if self
            .current()
            .is_none_or(|s| s.config.mode != crate::policy::Mode::Enforce)
        {
            return Ok(());
        }
        self.decide_at(&v.pod, &v.container, Stage::Validate)
            .await
            .map(|_| ())
            .map_err(Rejection::new)
    }

    async fn configure(&self, cfg: ConfigureInfo) -> Result<(), HandlerError> {
        let mut config = if cfg.config.trim().is_empty() {
            self.base.clone()
        } else {
            Config::parse(&cfg.config, "the config the runtime passed")
                .map_err(|e| HandlerError::new(e.to_string()))?
        };
        (self.overrides)(&mut config);
        let current = self
            .features_from
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if config.features != current {
            let settings = config.features.clone();
            let loaded = tokio::task::spawn_blocking(move || settings.load())
                .await
                .map_err(|e| HandlerError::new(format!("feature discovery failed: {e}")))?
                .map_err(|e| HandlerError::new(e.to_string()))?;
            info!(
                features = loaded.len(),
                "node features loaded with the runtime's config"
            );
            self.set_features(loaded);
            *self
                .features_from
                .write()
                .unwrap_or_else(|p| p.into_inner()) = config.features.clone();
        }
        let request_timeout = cfg.effective_request_timeout();
        let unchanged = self.current().filter(|s| {
            s.config == config && s.deadline == config.deadline.min(request_timeout / 2)
        });
        if unchanged.is_none() {
            let state = self
                .build(config, request_timeout)
                .map_err(HandlerError::new)?;
            info!(
                runtime = %cfg.runtime_name,
                version = %cfg.runtime_version,
                mode = ?state.config.mode,
                deadline_ms = state.deadline.as_millis() as u64,
                node = %state.node,
                "configured"
            );
            *self.state.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(state));
        }
        Ok(())
    }

    async fn synchronize(&self, pods: Vec<PodSandbox>, containers: Vec<Container>) {
        debug!(
            pods = pods.len(),
            containers = containers.len(),
            "synchronize: prefetching"
        );
        self.prefetch(&containers).await;
    }

    async fn create_container(
        &self,
        pod: &PodSandbox,
        ctr: &Container,
    ) -> Result<Adjustment, Rejection> {
        match self.decide(pod, ctr).await {
            Ok(annotations) => {
                let mut adj = Adjustment::default();
                for (k, v) in annotations {
                    adj = adj.annotate(k, v);
                }
                Ok(adj)
            }
            Err(message) => Err(Rejection::new(message)),
        }
    }
}
