//! Prometheus metrics of the plugin (decisions, latencies, cache, registry, NRI, discovery) and the /metrics + /healthz endpoint.
//!
//! The plugin records events on a [`Metrics`] (a cheap clone over one shared registry) and runs
//! [`serve`] when `metrics.listen` is set. Label values are fixed names (the verdict, case and
//! action of the decision log line), never image names or error texts, so the number of series
//! stays fixed whatever the cluster runs.

mod server;
mod slots;

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::check::{Outcome, Source, Verdict};
use crate::config::Mode;
use crate::policy::{Decided, Decision};
use crate::registry::ErrorKind;

pub use server::{
    parse_listen, serve, Health, Server, HEALTH_PATH, METRICS_CONTENT_TYPE, METRICS_PATH,
};

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics.listen {listen:?}: {reason} (expected IP:PORT, [IPv6]:PORT, localhost:PORT, or a bare PORT for loopback)")]
    InvalidListen { listen: String, reason: String },
    #[error("cannot listen on {addr} for /metrics and /healthz (metrics.listen): {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Bucket bounds in seconds, 1-2.5-5 per decade: a cache hit is tens of microseconds, a
/// decision is capped by the deadline (1 s by default) and the runtime gives up at 2 s.
const DECISION_BUCKETS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Registry round trips: a local mirror answers in milliseconds, a slow registry in seconds;
/// past 30 s the request timeout has fired.
const FETCH_BUCKETS: [f64; 13] = [
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// How an artifact fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchResult {
    /// A compatibility artifact was found and its spec fetched.
    Found,
    /// The image has no compatibility artifact.
    None,
    Error,
}

impl FetchResult {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchResult::Found => "found",
            FetchResult::None => "none",
            FetchResult::Error => "error",
        }
    }
}

fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    }
}

/// A label value written as a fixed string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Label(&'static str);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    verdict: Label,
    action: Label,
    case: Label,
    /// The kinds of the artifacts decided on (`Verdict::kinds_label`).
    artifact_kind: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ImageLabel {
    image: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ModeLabel {
    mode: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: Label,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn fetch_histogram() -> Histogram {
    Histogram::new(FETCH_BUCKETS)
}

struct Inner {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: Histogram,
    cache: Family<ResultLabel, Counter>,
    fetch_seconds: HistogramFamily<ResultLabel>,
    registry_errors: Family<KindLabel, Counter>,
    nri_connected: Gauge,
    nri_reconnects: Counter,
    nri_requests: Counter,
    discovery_seconds: Gauge<f64, AtomicU64>,
    discoveries: Family<ResultLabel, Counter>,
    mode: Family<ModeLabel, Gauge>,
    running_incompatible: Family<ImageLabel, Gauge>,
    nri_update: std::sync::Mutex<()>,
}

/// The plugin's metrics. Cloning is cheap (one `Arc`); every clone records into the same
/// registry, so the NRI handler, the fetcher tasks and the HTTP endpoint share one set.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "image_compat_decisions",
            "Container creations decided, by verdict, action and case",
            decisions.clone(),
        );
        let decision_seconds = Histogram::new(DECISION_BUCKETS);
        registry.register_with_unit(
            "image_compat_decision_duration",
            "Time from the runtime's request to the decision",
            Unit::Seconds,
            decision_seconds.clone(),
        );
        let cache = Family::<ResultLabel, Counter>::default();
        registry.register(
            "image_compat_cache_lookups",
            "Verdict cache lookups by image digest, by result (hit, miss)",
            cache.clone(),
        );
        let fetch_seconds: HistogramFamily<ResultLabel> =
            Family::new_with_constructor(fetch_histogram);
        registry.register_with_unit(
            "image_compat_artifact_fetch_duration",
            "Time to find and fetch an image's compatibility artifact, by result (found, none, error)",
            Unit::Seconds,
            fetch_seconds.clone(),
        );
        let registry_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "image_compat_registry_errors",
            "Registry failures, by kind",
            registry_errors.clone(),
        );
        let nri_connected = Gauge::default();
        registry.register(
            "image_compat_nri_connected",
            "1 when the runtime sends this plugin its events (registered and configured), else 0",
            nri_connected.clone(),
        );
        let nri_reconnects = Counter::default();
        registry.register(
            "image_compat_nri_reconnects",
            "Connections to the runtime made after the first one",
            nri_reconnects.clone(),
        );
        let nri_requests = Counter::default();
        registry.register(
            "image_compat_nri_requests",
            "NRI requests received from the runtime",
            nri_requests.clone(),
        );
        let discovery_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "image_compat_discovery_duration",
            "Duration of the last discovery of the node's features",
            Unit::Seconds,
            discovery_seconds.clone(),
        );
        let discoveries = Family::<ResultLabel, Counter>::default();
        registry.register(
            "image_compat_discoveries",
            "Discoveries of the node's features, by result (ok, error)",
            discoveries.clone(),
        );
        let mode = Family::<ModeLabel, Gauge>::default();
        registry.register(
            "image_compat_mode",
            "1 for the mode in force (enforce, audit), 0 for the other",
            mode.clone(),
        );
        let running_incompatible = Family::<ImageLabel, Gauge>::default();
        registry.register(
            "image_compat_running_incompatible",
            "Running containers the last re-check found not compatible with this node, by image",
            running_incompatible.clone(),
        );
        registry.register(
            "image_compat_build",
            "The running image-compat",
            Info::new(BuildLabels {
                version: Label(env!("CARGO_PKG_VERSION")),
            }),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                decisions,
                decision_seconds,
                cache,
                fetch_seconds,
                registry_errors,
                nri_connected,
                nri_reconnects,
                nri_requests,
                discovery_seconds,
                discoveries,
                mode,
                running_incompatible,
                nri_update: std::sync::Mutex::new(()),
            }),
        }
    }

    /// One container decision: counted by its labels (the verdict, the action, the case, the
    /// artifact kind; the same names as the decision log line's), its latency observed.
    pub fn record_decision(
        &self,
        verdict: &'static str,
        action: &'static str,
        case: &'static str,
        artifact_kind: &'static str,
        latency: Duration,
    ) {
        self.inner
            .decisions
            .get_or_create(&DecisionLabels {
                verdict: Label(verdict),
                action: Label(action),
                case: Label(case),
                artifact_kind: Label(artifact_kind),
            })
            .inc();
        self.inner.decision_seconds.observe(latency.as_secs_f64());
    }

    /// A checked container: the verdict and what the policy did with it.
    pub fn record_checked(&self, verdict: &Verdict, decision: &Decision, latency: Duration) {
        let action = if decision.deny.is_some() {
            "deny"
        } else {
            "allow"
        };
        self.record_decision(
            verdict.compat().as_str(),
            action,
            verdict.case(),
            verdict.kinds_label(),
            latency,
        );
    }

    /// A container that was not checked because its namespace or image is exempt.
    pub fn record_exempt(&self, latency: Duration) {
        self.record_decision("unknown", "exempt", "exempt", "none", latency);
    }

    /// A verdict cache lookup by digest.
    pub fn record_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.inner
            .cache
            .get_or_create(&ResultLabel {
                result: Label(result),
            })
            .inc();
    }

    /// One artifact lookup against the registry (referrers, artifact manifest, spec blob).
    pub fn record_fetch(&self, result: FetchResult, took: Duration) {
        self.inner
            .fetch_seconds
            .get_or_create(&ResultLabel {
                result: Label(result.as_str()),
            })
            .observe(took.as_secs_f64());
    }

    /// One registry failure, by the registry client's classification.
    pub fn record_registry_error(&self, kind: ErrorKind) {
        self.inner
            .registry_errors
            .get_or_create(&KindLabel {
                kind: Label(kind.as_str()),
            })
            .inc();
    }

    /// The plugin's NRI connection state, from its status: whether the runtime sends events,
    /// and the plugin's running totals of reconnections and requests. Totals only move
    /// forward: a lower total (a new plugin instance) leaves the counters where they are.
    pub fn set_nri_status(&self, status: &crate::nri::Status) {
        // One updater at a time, so two callers cannot both add the same difference.
        let _one = self
            .inner
            .nri_update
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.inner.nri_connected.set(i64::from(status.is_ready()));
        catch_up(&self.inner.nri_reconnects, status.reconnects);
        catch_up(&self.inner.nri_requests, status.requests);
    }

    /// A discovery of the node's features that completed, and how long it took.
    pub fn record_discovery(&self, took: Duration) {
        self.inner.discovery_seconds.set(took.as_secs_f64());
        self.count_discovery("ok");
    }

    /// A discovery of the node's features that failed.
    pub fn record_discovery_error(&self) {
        self.count_discovery("error");
    }

    fn count_discovery(&self, result: &'static str) {
        self.inner
            .discoveries
            .get_or_create(&ResultLabel {
                result: Label(result),
            })
            .inc();
    }

    /// The mode in force (it can change when the runtime's Configure brings a config).
    pub fn set_mode(&self, mode: Mode) {
        for m in [Mode::Enforce, Mode::Audit] {
            self.inner
                .mode
                .get_or_create(&ModeLabel {
                    mode: Label(mode_label(m)),
                })
                .set(i64::from(m == mode));
        }
    }

    /// What the last re-check of the running containers found: incompatible ones per image
    /// (images with none are dropped from the gauge).
    pub fn set_running_incompatible(&self, by_image: &std::collections::BTreeMap<String, usize>) {
        let family = &self.inner.running_incompatible;
        family.clear();
        for (image, n) in by_image {
            family
                .get_or_create(&ImageLabel {
                    image: image.clone(),
                })
                .set(*n as i64);
        }
    }

    /// The metrics in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            // Writing to a String cannot fail; an encoder error would be a bug in a metric.
            tracing::error!(error = %e, "metrics: encoding failed");
            let _ = writeln!(out, "# encoding failed: {e}");
        }
        out
    }
}

fn catch_up(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

#[cfg(test)]
mod tests;

/// The plugin reports each decision here: counts, latency, cache use, fetches, registry errors.
impl crate::nri::Observer for Metrics {
    fn decided(&self, d: &Decided) {
        let Some(verdict) = &d.verdict else {
            self.record_exempt(d.latency);
            return;
        };
        self.record_checked(verdict, &d.decision, d.latency);
        let Some(lookup) = &d.lookup else {
            return;
        };
        self.record_cache(matches!(lookup.source, Source::Cached | Source::Stale));
        // A fetch is counted once, by the call that waited for it; stored failures are not
        // counted again as registry errors.
        if let Some(took) = lookup.fetch_time {
            let result = match &verdict.outcome {
                Outcome::NoArtifact => FetchResult::None,
                Outcome::RegistryError { kind, .. } => {
                    if let Some(k) = kind {
                        self.record_registry_error(*k);
                    }
                    FetchResult::Error
                }
                _ => FetchResult::Found,
            };
            self.record_fetch(result, took);
        }
    }
}
