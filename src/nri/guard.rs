//! The image-compat NRI handler: CreateContainer (and ValidateContainerAdjustment) -> the
//! container's [`Subject`] -> the [`Gate`] -> allow with annotations, or reject; Synchronize
//! warms the cache; the containers that run are kept ([`Running`]) and re-checked on demand.
//! What a Configure builds is the program's business ([`Configurator`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tracing::{debug, info, warn};

use super::handler::{Handler, HandlerError, Rejection};
use super::recent::Recent;
use super::running::{Recheck, Running};
use super::types::{
    Adjustment, ConfigureInfo, Container, ContainerState, Event, EventSet, PodSandbox, Validation,
};
use crate::check::{image_of, Compat};
use crate::hook::image::{CONTAINER_NAME, CRI_CONTAINER_NAME};
use crate::policy::{Decided, Gate, Subject};

/// Builds the [`Gate`] for a configuration: the config a runtime passes a pre-launched plugin
/// (empty: the plugin's own), within the runtime's request timeout.
#[async_trait]
pub trait Configurator: Send + Sync {
    async fn configure(
        &self,
        runtime_config: &str,
        request_timeout: Duration,
    ) -> Result<Arc<Gate>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Observes decisions (metrics); called once per container, at CreateContainer.
pub trait Observer: Send + Sync {
    fn decided(&self, d: &Decided);
}

/// Where in the runtime's sequence a decision is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// CreateContainer: refusing fails the creation with the reason.
    Create,
    /// ValidateContainerAdjustment (NRI >= 0.10): the runtime's last word before creating.
    /// A plugin that times out here fails the creation: enforcing here fails closed.
    Validate,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Create => "create",
            Stage::Validate => "validate",
        }
    }
}

/// Test fault: ValidateContainerAdjustment answers only after this long (e.g. `5s`, past the
/// runtime's request timeout), to prove the runtime then fails the creation. Unset in
/// production; the plugin warns at start when it is set.
pub const ENV_FAULT_VALIDATE_DELAY: &str = "IMAGE_COMPAT_FAULT_VALIDATE_DELAY";

pub struct Guard {
    configurator: Arc<dyn Configurator>,
    observer: Option<Arc<dyn Observer>>,
    gate: RwLock<Option<Arc<Gate>>>,
    running: Running,
    validate_delay: Option<Duration>,
    /// Creation decisions, for the validation that follows each.
    recent: Recent,
}

impl Guard {
    pub fn new(configurator: Arc<dyn Configurator>, observer: Option<Arc<dyn Observer>>) -> Guard {
        Guard {
            configurator,
            observer,
            gate: RwLock::new(None),
            running: Running::default(),
            validate_delay: None,
            // A validation follows its creation within the runtime's request timeout.
            recent: Recent::new(4096, Duration::from_secs(60)),
        }
    }

    /// Delays every validation answer by `delay` (the [`ENV_FAULT_VALIDATE_DELAY`] fault).
    pub fn with_validate_delay(mut self, delay: Option<Duration>) -> Guard {
        if let Some(d) = delay {
            warn!(
                delay_ms = d.as_millis() as u64,
                "fault injection: validation answers are delayed ({ENV_FAULT_VALIDATE_DELAY})"
            );
        }
        self.validate_delay = delay;
        self
    }

    /// The containers this plugin knows to run.
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// Decides again about every running container, from the answers stored (a stale one is
    /// refreshed in the background, so a changed artifact shows at the next re-check), on the
    /// node's features as they are now. A container that has become incompatible is logged
    /// once (at warn), one that is compatible again too; nothing is stopped.
    pub async fn recheck(&self) -> Recheck {
        let mut r = Recheck::default();
        let Some(gate) = self.gate() else {
            return r;
        };
        for t in self.running.snapshot() {
            let d = gate.admit(t.subject).await;
            let Some(v) = &d.verdict else { continue };
            r.checked += 1;
            let now = v.compat();
            if now == Compat::Incompatible {
                *r.incompatible.entry(d.image.clone()).or_default() += 1;
            }
            let before = self.running.record(&t.id, now);
            match (before, now) {
                (Some(Compat::Incompatible), Compat::Incompatible) => {}
                (_, Compat::Incompatible) => warn!(
                    pod = d.pod.as_str(),
                    container = d.container.as_str(),
                    image = d.image.as_str(),
                    reason = v.reason().as_str(),
                    "running container is not compatible with this node (any more)"
                ),
                (Some(Compat::Incompatible), _) => info!(
                    pod = d.pod.as_str(),
                    container = d.container.as_str(),
                    image = d.image.as_str(),
                    "running container is compatible with this node again"
                ),
                _ => {}
            }
        }
        r
    }

    /// The gate in force since the last Configure (a pre-launched plugin learns its config only
    /// then); None before the first.
    pub fn gate(&self) -> Option<Arc<Gate>> {
        self.gate.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Decides one container at `stage`, logs the decision line, and counts it at creation.
    pub async fn handle(&self, pod: &PodSandbox, ctr: &Container, stage: Stage) -> Decided {
        let subject = subject(pod, ctr);
        let Some(gate) = self.gate() else {
            // Cannot happen: the runtime sends Configure before any container.
            warn!(container = %subject.container, "CreateContainer before Configure: allowed unchecked");
            return Decided::exempt(subject, "the plugin is not configured yet".into());
        };
        let decided = gate.admit(subject).await;
        decided.log("nri", stage.as_str());
        decided.log_warnings("nri");
        if stage == Stage::Create {
            if let Some(o) = &self.observer {
                o.decided(&decided);
            }
        }
        decided
    }

    /// Starts fetching the artifacts of these containers' images in the background.
    pub async fn prefetch(&self, containers: &[Container]) {
        let Some(gate) = self.gate() else {
            return;
        };
        for ctr in containers {
            if let Ok(image) = subject(&PodSandbox::default(), ctr).image {
                gate.prefetch(&image).await;
            }
        }
    }
}

/// The container as the gate sees it: its pod, its name, and its image (NRI's
/// `Container.image` when the runtime sends it, else the runtimes' annotations).
fn subject(pod: &PodSandbox, ctr: &Container) -> Subject {
    let image = ctr
        .image
        .as_ref()
        .map(|i| (i.name.as_str(), i.digest.as_str()));
    Subject {
        namespace: pod.namespace.clone(),
        pod: if pod.name.is_empty() {
            String::new()
        } else {
            format!("{}/{}", pod.namespace, pod.name)
        },
        container: container_name(ctr),
        image: image_of(image, &ctr.annotations)
            .ok_or_else(|| "the runtime names no image for this container".to_string()),
    }
}

/// The container's name in its pod. CRI-O (1.36) sends NRI no name; the kubelet's label (or an
/// annotation) then has it. The ID when nothing names it.
fn container_name(ctr: &Container) -> String {
    if !ctr.name.is_empty() {
        return ctr.name.clone();
    }
    [CONTAINER_NAME, CRI_CONTAINER_NAME]
        .iter()
        .find_map(|k| ctr.labels.get(*k).or_else(|| ctr.annotations.get(*k)))
        .filter(|n| !n.is_empty())
        .unwrap_or(&ctr.id)
        .clone()
}

fn rejection(d: &Decided) -> Option<Rejection> {
    d.decision
        .deny
        .as_ref()
        .map(|m| Rejection::new(m.clone()).with_case(d.verdict.as_ref().map_or("", |v| v.case())))
}

#[async_trait]
impl Handler for Guard {
    /// CreateContainer everywhere; ValidateContainerAdjustment too where the runtime has it
    /// (the transport drops what the runtime does not know).
    fn events(&self) -> EventSet {
        [
            Event::CreateContainer,
            Event::ValidateContainerAdjustment,
            // To know which containers run, for re-checks.
            Event::StopContainer,
            Event::RemoveContainer,
        ]
        .into_iter()
        .collect()
    }

    /// The creation's own decision, at the point where a timeout fails the creation instead of
    /// letting it through: taken from [`Recent`] (no second wait on the registry), or made now
    /// when this process did not make it (it started between the two calls). Audit mode never
    /// refuses, so it answers at once.
    async fn validate(&self, v: &Validation) -> Result<(), Rejection> {
        if !self.gate().is_some_and(|g| g.enforcing()) {
            return Ok(());
        }
        let outcome = match self.recent.take(&v.container.id) {
            Some(outcome) => {
                let s = subject(&v.pod, &v.container);
                info!(
                    edge = "nri",
                    stage = Stage::Validate.as_str(),
                    pod = s.pod.as_str(),
                    container = s.container.as_str(),
                    action = if outcome.is_some() { "deny" } else { "allow" },
                    "validated with the creation's decision"
                );
                outcome
            }
            None => rejection(&self.handle(&v.pod, &v.container, Stage::Validate).await),
        };
        if let Some(delay) = self.validate_delay {
            tokio::time::sleep(delay).await;
        }
        outcome.map_or(Ok(()), Err)
    }

    async fn configure(&self, cfg: ConfigureInfo) -> Result<(), HandlerError> {
        let gate = self
            .configurator
            .configure(&cfg.config, cfg.effective_request_timeout())
            .await
            .map_err(HandlerError::from)?;
        let unchanged = self.gate().is_some_and(|g| Arc::ptr_eq(&g, &gate));
        if !unchanged {
            info!(
                runtime = %cfg.runtime_name,
                version = %cfg.runtime_version,
                mode = ?gate.config().mode,
                deadline_ms = gate.deadline().as_millis() as u64,
                node = %gate.node(),
                "configured"
            );
        }
        *self.gate.write().unwrap_or_else(|p| p.into_inner()) = Some(gate);
        Ok(())
    }

    async fn synchronize(&self, pods: Vec<PodSandbox>, containers: Vec<Container>) {
        debug!(
            pods = pods.len(),
            containers = containers.len(),
            "synchronize: prefetching"
        );
        // The containers that run or are about to, as the gate sees them.
        let pod_of: std::collections::HashMap<&str, &PodSandbox> =
            pods.iter().map(|p| (p.id.as_str(), p)).collect();
        let none = PodSandbox::default();
        self.running.sync(
            containers
                .iter()
                .filter(|c| matches!(c.state, ContainerState::Running | ContainerState::Created))
                .map(|c| {
                    let pod = pod_of
                        .get(c.pod_sandbox_id.as_str())
                        .copied()
                        .unwrap_or(&none);
                    (c.id.clone(), subject(pod, c))
                }),
        );
        self.prefetch(&containers).await;
    }

    async fn event(&self, event: Event, _pod: Option<&PodSandbox>, ctr: Option<&Container>) {
        if let (Event::StopContainer | Event::RemoveContainer, Some(c)) = (event, ctr) {
            self.running.remove(&c.id);
        }
    }

    async fn create_container(
        &self,
        pod: &PodSandbox,
        ctr: &Container,
    ) -> Result<Adjustment, Rejection> {
        let d = self.handle(pod, ctr, Stage::Create).await;
        let refused = rejection(&d);
        self.recent.put(&ctr.id, refused.clone());
        if let Some(r) = refused {
            return Err(r);
        }
        self.running.add(&ctr.id, subject(pod, ctr));
        let mut adj = Adjustment::default();
        for (k, v) in d.decision.annotations {
            adj = adj.annotate(k, v);
        }
        Ok(adj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Container {
        let map = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Container {
            id: "0123abcd".into(),
            name: name.into(),
            labels: map(labels),
            annotations: map(annotations),
            ..Default::default()
        }
    }

    #[test]
    fn the_container_is_named_by_the_runtime_then_the_kubelet_then_its_id() {
        assert_eq!(
            container_name(&ctr("app", &[(CONTAINER_NAME, "x")], &[])),
            "app"
        );
        // CRI-O 1.36: no NRI name, the kubelet's label.
        assert_eq!(
            container_name(&ctr("", &[(CONTAINER_NAME, "app")], &[])),
            "app"
        );
        assert_eq!(
            container_name(&ctr("", &[], &[(CRI_CONTAINER_NAME, "app")])),
            "app"
        );
        assert_eq!(
            container_name(&ctr("", &[(CONTAINER_NAME, "")], &[])),
            "0123abcd"
        );
        assert_eq!(container_name(&ctr("", &[], &[])), "0123abcd");
    }
}
