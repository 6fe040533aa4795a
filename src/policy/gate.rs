//! The decision for one container, the same on every edge (NRI plugin, OCI hook): exemptions,
//! the image checked within the deadline, the verdict mapped to an action, one log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{decide, Decision, Exemptions};
use crate::check::{Checker, ImageIdentity, Lookup, NameResolver, Outcome, Resolver, Verdict};
use crate::config::{Config, Mode};
use crate::untrusted::escape;

/// The container being created, as the runtime describes it.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The pod's namespace (empty outside Kubernetes).
    pub namespace: String,
    /// `namespace/name` of the pod, or empty.
    pub pod: String,
    /// The container's name, else its ID.
    pub container: String,
    /// The image, or why it cannot be told.
    pub image: Result<ImageIdentity, String>,
}

/// What was decided about one container, and how.
#[derive(Debug, Clone)]
pub struct Decided {
    pub pod: String,
    pub container: String,
    /// The image as the runtime names it (empty when it names none).
    pub image: String,
    /// Where that name came from (annotation key, NRI's `Container.image`, ...).
    pub image_source: &'static str,
    /// Who named the digests looked up: [`DIGEST_FROM_RUNTIME`] and the others (empty when no
    /// lookup was made).
    pub digest_source: &'static str,
    /// Why the container was not checked, when it is exempt.
    pub exempt: Option<String>,
    /// The check's verdict (None when exempt).
    pub verdict: Option<Verdict>,
    pub decision: Decision,
    /// How the verdict was obtained (None: no lookup was made).
    pub lookup: Option<Lookup>,
    pub latency: Duration,
}

impl Decided {
    /// A container that is not checked, and why.
    pub fn exempt(subject: Subject, why: String) -> Decided {
        let mut d = Decided::new(subject);
        d.exempt = Some(why);
        d
    }

    fn new(subject: Subject) -> Decided {
        let (image, image_source) = match &subject.image {
            Ok(id) => (id.name.clone(), id.source),
            Err(_) => (String::new(), ""),
        };
        Decided {
            pod: subject.pod,
            container: subject.container,
            image,
            image_source,
            digest_source: "",
            exempt: None,
            verdict: None,
            decision: Decision::default(),
            lookup: None,
            latency: Duration::ZERO,
        }
    }

    /// `allow`, `deny` or `exempt`.
    pub fn action(&self) -> &'static str {
        if self.exempt.is_some() {
            "exempt"
        } else if self.decision.deny.is_some() {
            "deny"
        } else {
            "allow"
        }
    }

    /// Problems that did not change the decision.
    pub fn warnings(&self) -> &[String] {
        self.lookup.as_ref().map_or(&[], |l| &l.warnings)
    }

    /// The decision's log line, the same fields on every edge: `edge` is `nri` or `oci-hook`,
    /// `stage` where in the runtime's sequence it was made. An exempt container logs an
    /// `exempt` line instead (no decision was made).
    pub fn log(&self, edge: &str, stage: &str) {
        if let Some(why) = &self.exempt {
            tracing::info!(
                edge,
                stage,
                pod = self.pod.as_str(),
                container = self.container.as_str(),
                image = self.image.as_str(),
                reason = why.as_str(),
                "exempt"
            );
            return;
        }
        let none = Verdict::new(Outcome::NoArtifact);
        let verdict = self.verdict.as_ref().unwrap_or(&none);
        let reason = match &self.decision.deny {
            Some(message) => message.clone(),
            None => verdict.reason(),
        };
        let answer = self.lookup.as_ref().map_or("none", |l| l.source.as_str());
        let warnings = verdict.warnings.join("; ");
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    edge,
                    stage,
                    pod = self.pod.as_str(),
                    container = self.container.as_str(),
                    image = self.image.as_str(),
                    image_source = self.image_source,
                    digest_source = self.digest_source,
                    digest = verdict.digest.as_deref().unwrap_or(""),
                    verdict = verdict.compat().as_str(),
                    case = verdict.case(),
                    action = self.action(),
                    reason = reason.as_str(),
                    artifact = verdict.artifact.as_deref().unwrap_or(""),
                    artifact_kind = verdict.kinds_label(),
                    answer,
                    warnings = warnings.as_str(),
                    latency_us = self.latency.as_micros() as u64,
                    "decision"
                )
            };
        }
        if self.decision.deny.is_some() || self.decision.warn {
            line!(warn);
        } else {
            line!(info);
        }
    }

    /// The problems that did not change the decision, one warning line each.
    pub fn log_warnings(&self, edge: &str) {
        for w in self.warnings() {
            tracing::warn!(edge, container = self.container.as_str(), "{}", escape(w));
        }
    }
}

/// The runtime named the digest (NRI's `Container.image`): containerd's image store was not asked.
pub const DIGEST_FROM_RUNTIME: &str = "runtime";
/// The runtime's digest had no artifact under the name it gave, so the image store was asked for
/// the image's other names (two names sharing one image: README, "Runtimes").
pub const DIGEST_FROM_RUNTIME_THEN_STORE: &str = "runtime+image-store";
/// containerd's image store named the digests (the runtime sent only a name).
pub const DIGEST_FROM_STORE: &str = "image-store";
/// No store to ask: the name itself (a digest in it, or a tag resolved in the registry).
pub const DIGEST_FROM_NAME: &str = "name";

/// Everything one config needs to decide containers: built once per config (the plugin on
/// each Configure that changes it, the hook once per process).
pub struct Gate {
    config: Config,
    exemptions: Exemptions,
    checker: Arc<Checker>,
    /// How image names become references (containerd's image store); None: by name.
    resolver: Option<Arc<dyn Resolver>>,
    deadline: Duration,
    node: String,
}

impl Gate {
    /// `deadline` bounds each decision (the config's `deadline`, cut to what the runtime
    /// allows).
    pub fn new(
        config: Config,
        exemptions: Exemptions,
        checker: Arc<Checker>,
        resolver: Option<Arc<dyn Resolver>>,
        deadline: Duration,
    ) -> Gate {
        Gate {
            node: config.node_name(),
            config,
            exemptions,
            checker,
            resolver,
            deadline,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn checker(&self) -> &Arc<Checker> {
        &self.checker
    }

    pub fn resolver(&self) -> Option<&Arc<dyn Resolver>> {
        self.resolver.as_ref()
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn enforcing(&self) -> bool {
        self.config.mode == Mode::Enforce
    }

    /// Starts fetching the artifact of an image in the background, so that its containers find
    /// the answer stored (images the runtime reports at Synchronize or just pulled).
    pub async fn prefetch(&self, image: &ImageIdentity) {
        let candidates = match &self.resolver {
            Some(r) if !image.digest_from_runtime() => r.candidates(image).await,
            _ => NameResolver::resolve(image),
        };
        if let Ok(c) = candidates {
            self.checker.prefetch(&c);
        }
    }

    /// Decides one container (the plugin): the resolver and the registry within the deadline.
    pub async fn admit(&self, subject: Subject) -> Decided {
        let started = Instant::now();
        let (mut decided, identity) = match self.begin(subject) {
            Ok(pending) => pending,
            Err(done) => return self.finish(*done, started),
        };
        if identity.digest_from_runtime() {
            return self.admit_runtime_digest(decided, &identity, started).await;
        }
        decided.digest_source = if self.resolver.is_some() {
            DIGEST_FROM_STORE
        } else {
            DIGEST_FROM_NAME
        };
        let candidates = match &self.resolver {
            None => NameResolver::resolve(&identity),
            Some(r) => match tokio::time::timeout(self.deadline, r.candidates(&identity)).await {
                Ok(c) => c,
                Err(_) => {
                    let v = Verdict::new(Outcome::DeadlineExceeded {
                        waited: self.deadline,
                    });
                    return self.conclude(decided, v, None, started);
                }
            },
        };
        match candidates {
            Ok(c) => {
                let lookup = self.checker.verdict_since(&c, self.deadline, started).await;
                self.conclude(decided, lookup.verdict.clone(), Some(lookup), started)
            }
            Err(e) => self.conclude(decided, unknown(e.to_string()), None, started),
        }
    }

    /// The runtime named the digest (NRI >= 0.12 `Container.image`): looked up under the name it
    /// gave, without asking the image store. Only when that finds no artifact is the store asked
    /// for the image's other names: a runtime may name the image by another reference sharing
    /// it (containerd main does, for a request without `user_specified_image`), and the artifact
    /// may hang under the one the pod asked for.
    async fn admit_runtime_digest(
        &self,
        mut decided: Decided,
        identity: &ImageIdentity,
        started: Instant,
    ) -> Decided {
        decided.digest_source = DIGEST_FROM_RUNTIME;
        let own = match NameResolver::resolve(identity) {
            Ok(c) => c,
            Err(e) => return self.conclude(decided, unknown(e.to_string()), None, started),
        };
        let lookup = self
            .checker
            .verdict_since(&own, self.deadline, started)
            .await;
        let Some(resolver) = self
            .resolver
            .as_ref()
            .filter(|_| lookup.verdict.outcome == Outcome::NoArtifact)
        else {
            return self.conclude(decided, lookup.verdict.clone(), Some(lookup), started);
        };
        let left = self.deadline.saturating_sub(started.elapsed());
        let others = match tokio::time::timeout(left, resolver.candidates(identity)).await {
            Ok(Ok(c)) if c.0 != own.0 => c,
            _ => return self.conclude(decided, lookup.verdict.clone(), Some(lookup), started),
        };
        decided.digest_source = DIGEST_FROM_RUNTIME_THEN_STORE;
        let lookup = self
            .checker
            .verdict_since(&others, self.deadline, started)
            .await;
        self.conclude(decided, lookup.verdict.clone(), Some(lookup), started)
    }

    /// Decides one container without an executor (the hook): images by name and the digests
    /// the runtime knows, the registry within the deadline.
    pub fn admit_blocking(&self, subject: Subject) -> Decided {
        let started = Instant::now();
        let (mut decided, identity) = match self.begin(subject) {
            Ok(pending) => pending,
            Err(done) => return self.finish(*done, started),
        };
        decided.digest_source = DIGEST_FROM_NAME;
        match NameResolver::resolve(&identity) {
            Ok(c) => {
                let lookup = self.checker.verdict_blocking(&c, self.deadline);
                self.conclude(decided, lookup.verdict.clone(), Some(lookup), started)
            }
            Err(e) => self.conclude(decided, unknown(e.to_string()), None, started),
        }
    }

    /// Exemptions, and the image named: the decision when nothing is left to check (`Err`),
    /// else the identity to check.
    fn begin(&self, subject: Subject) -> Result<(Decided, ImageIdentity), Box<Decided>> {
        let (namespace, image) = (subject.namespace.clone(), subject.image.clone());
        let mut decided = Decided::new(subject);
        decided.exempt = self.exemptions.exempt(&namespace, &decided.image);
        if decided.exempt.is_some() {
            return Err(Box::new(decided));
        }
        match image {
            Ok(identity) => Ok((decided, identity)),
            Err(why) => Err(Box::new(self.conclude(
                decided,
                unknown(why),
                None,
                Instant::now(),
            ))),
        }
    }

    fn conclude(
        &self,
        mut decided: Decided,
        verdict: Verdict,
        lookup: Option<Lookup>,
        started: Instant,
    ) -> Decided {
        decided.decision = decide(&self.config, &self.node, &decided.image, &verdict);
        decided.verdict = Some(verdict);
        decided.lookup = lookup;
        self.finish(decided, started)
    }

    fn finish(&self, mut decided: Decided, started: Instant) -> Decided {
        decided.latency = decided.latency.max(started.elapsed());
        decided
    }
}

fn unknown(error: String) -> Verdict {
    Verdict::new(Outcome::UnknownImage { error })
}
