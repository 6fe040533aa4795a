//! The NRI plugin process: the node's features, a [`Gate`] built at each Configure from the
//! config in force, feature rediscovery, the metrics endpoint and the NRI status.
//!
//! A pre-launched plugin learns its config (containerd socket, features, metrics address) only
//! in Configure, from the runtime; so everything that depends on the config is built there,
//! never at start: the gate, the image-store resolver and its pull watcher, the endpoint (when
//! the start-up config has none), the rediscovery period.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::check::{Checker, ClientError, ImageIdentity, MemoryStore, NodeFeatures, Resolver};
use crate::config::{Config, ConfigError, FeatureSettings, FeaturesError, Overrides};
use crate::features::Features;
use crate::metrics::{self, Health, Metrics, MetricsError};
use crate::nri::{Configurator, Guard, NriError, Observer, Plugin, PluginOptions, Transport};
use crate::policy::{Exemptions, Gate};
use crate::registry::Platform;
use crate::runtime::{ContainerdResolver, ImageEventKind, Runtime, RuntimeError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Features(#[from] FeaturesError),
    #[error("exemptImages: {0}")]
    Exemptions(#[from] globset::Error),
    #[error("registry: {0}")]
    Registry(#[from] ClientError),
    #[error("containerd.socket: {0}")]
    Containerd(#[from] RuntimeError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Nri(#[from] NriError),
    #[error("feature discovery failed: {0}")]
    Discovery(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// How the daemon is set up.
pub struct Options {
    /// The config file's settings (or the defaults); a config the runtime passes replaces it.
    pub base: Config,
    /// The command line's settings, applied over either.
    pub overrides: Overrides,
    /// A resolver to use whatever the config says (tests); None: containerd's image store
    /// when `containerd.socket` is set, else image names.
    pub resolver: Option<Arc<dyn Resolver>>,
    /// The node's features to start with instead of loading them as the settings say (tests,
    /// benchmarks); a runtime config with other feature settings still loads them.
    pub features: Option<Features>,
}

impl Options {
    /// The config file's settings and the command line's, as `image-compat nri-plugin` runs.
    pub fn new(base: Config, overrides: Overrides) -> Options {
        Options {
            base,
            overrides,
            resolver: None,
            features: None,
        }
    }
}

/// The plugin's state. Cheap to clone.
#[derive(Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

struct Inner {
    base: Config,
    overrides: Overrides,
    fixed_resolver: Option<Arc<dyn Resolver>>,
    features: Arc<NodeFeatures>,
    /// The settings `features` came from: a runtime config with other settings (a
    /// pre-launched plugin's conf.d file) makes the plugin load its features again.
    features_from: Mutex<FeatureSettings>,
    metrics: Metrics,
    built: tokio::sync::Mutex<Option<Built>>,
    /// The config of the gate in force, for the endpoint and the rediscovery loop.
    configured: watch::Sender<Option<Config>>,
}

struct Built {
    gate: Arc<Gate>,
    config: Config,
    request_timeout: Duration,
    /// Prefetches the artifacts of images containerd pulls; stopped with this gate.
    watcher: Option<tokio::task::AbortHandle>,
}

impl Drop for Built {
    fn drop(&mut self) {
        if let Some(w) = &self.watcher {
            w.abort();
        }
    }
}

/// Runs the plugin until SIGTERM or SIGINT (or, pre-launched, until the runtime closes the
/// connection): the whole `image-compat nri-plugin` command.
pub fn run(base: Config, overrides: Overrides) -> Result<(), DaemonError> {
    let daemon = Daemon::new(Options::new(base, overrides))?;
    let config = daemon.start_config();
    let mut plugin = PluginOptions::from_env(&config.nri.name, &config.nri.index)?;
    match &mut plugin.transport {
        Transport::External { socket } => {
            *socket = config.nri.socket.clone();
            info!(socket = %socket.display(), "external mode");
        }
        Transport::Preconnected { fd } => info!(fd = *fd, "pre-launched by the runtime"),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(daemon.serve(plugin, shutdown_signal()))?;
    info!("stopped");
    Ok(())
}

impl Daemon {
    /// Loads the node's features with the start-up settings (blocking: a discovery reads
    /// hundreds of files, a few milliseconds).
    pub fn new(opts: Options) -> Result<Daemon, DaemonError> {
        let start = opts.overrides.apply(opts.base.clone());
        let metrics = Metrics::new();
        metrics.set_mode(start.mode);
        let features = match opts.features {
            Some(f) => f,
            None => load_features(&start.features, &metrics)?,
        };
        Ok(Daemon {
            inner: Arc::new(Inner {
                base: opts.base,
                overrides: opts.overrides,
                fixed_resolver: opts.resolver,
                features: NodeFeatures::new(features),
                features_from: Mutex::new(start.features),
                metrics,
                built: tokio::sync::Mutex::new(None),
                configured: watch::channel(None).0,
            }),
        })
    }

    /// The config before any Configure: the file's (or the defaults), with the overrides.
    pub fn start_config(&self) -> Config {
        self.inner.overrides.apply(self.inner.base.clone())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn features(&self) -> &Arc<NodeFeatures> {
        &self.inner.features
    }

    /// The NRI handler over this daemon, counting decisions in its metrics.
    pub fn guard(&self) -> Arc<Guard> {
        let observer: Arc<dyn Observer> = Arc::new(self.inner.metrics.clone());
        Arc::new(Guard::new(self.inner.clone(), Some(observer)))
    }

    /// Loads the node's features again with the settings in force; returns whether they
    /// changed (cached answers are then evaluated again on their next use).
    pub async fn refresh_features(&self) -> Result<bool, DaemonError> {
        let settings = self.inner.lock_features_from().clone();
        let metrics = self.inner.metrics.clone();
        let features = tokio::task::spawn_blocking(move || load_features(&settings, &metrics))
            .await
            .map_err(|e| DaemonError::Discovery(e.to_string()))??;
        Ok(self.inner.features.set(features))
    }

    /// Serves the runtime with the plugin until `shutdown` (or the end of a pre-connected
    /// socket); meanwhile rediscovers the features every `features.refresh`, serves /metrics
    /// and /healthz at `metrics.listen`, and keeps the NRI status in the metrics.
    pub async fn serve(
        self,
        plugin: PluginOptions,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), DaemonError> {
        let guard = self.guard();
        let plugin = Plugin::new(plugin, guard.clone())?;
        let status = plugin.status();
        // Bind before connecting: a bad or busy address in the start-up config is a start-up
        // error, not a log line. A pre-launched plugin's address comes with Configure.
        let start = self.start_config();
        let endpoint = match start.metrics.listen.as_deref().filter(|l| !l.is_empty()) {
            Some(listen) => Some(metrics::Server::bind(listen).await?),
            None => None,
        };
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().endpoint(endpoint, status.clone()));
        tasks.spawn(self.clone().rediscover(guard));
        let metrics = self.inner.metrics.clone();
        tasks.spawn(async move {
            loop {
                metrics.set_nri_status(&status.get());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let result = plugin.run_until(shutdown).await;
        tasks.abort_all();
        Ok(result?)
    }

    /// The /metrics and /healthz endpoint: bound already, or at the first Configure whose
    /// config has `metrics.listen`.
    async fn endpoint(self, bound: Option<metrics::Server>, status: crate::nri::StatusHandle) {
        let server = match bound {
            Some(s) => s,
            None => {
                let mut configured = self.inner.configured.subscribe();
                let listen = loop {
                    let listen = configured
                        .borrow_and_update()
                        .as_ref()
                        .map(|c| c.metrics.listen.clone());
                    match listen {
                        Some(Some(l)) if !l.is_empty() => break l,
                        // Configured without an endpoint: none, unless a later config asks.
                        _ => {
                            if configured.changed().await.is_err() {
                                return;
                            }
                        }
                    }
                };
                match metrics::Server::bind(&listen).await {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "no /metrics and /healthz");
                        return;
                    }
                }
            }
        };
        info!(addr = %server.local_addr(), "serving /metrics and /healthz");
        server
            .run(
                self.inner.metrics.clone(),
                move || Health::of_plugin(&status.get(), true),
                std::future::pending(),
            )
            .await;
    }

    /// Rediscovery every `features.refresh` of the config in force (a pre-launched plugin's
    /// comes from the runtime; a features file is read again), none with a zero period; after
    /// each, the running containers are re-checked (the features or an image's artifact may
    /// have changed) and the `image_compat_running_incompatible` gauge set.
    async fn rediscover(self, guard: Arc<Guard>) {
        let mut configured = self.inner.configured.subscribe();
        loop {
            let settings = configured
                .borrow_and_update()
                .as_ref()
                .map(|c| c.features.clone())
                .unwrap_or_else(|| self.start_config().features);
            if settings.refresh.is_zero() {
                if configured.changed().await.is_err() {
                    return;
                }
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(settings.refresh) => {}
                changed = configured.changed() => {
                    if changed.is_err() { return; }
                    continue;
                }
            }
            match self.refresh_features().await {
                Ok(changed) => debug!(changed, "node features rediscovered"),
                Err(e) => {
                    self.inner.metrics.record_discovery_error();
                    warn!(error = %e, "feature rediscovery failed");
                }
            }
            let r = guard.recheck().await;
            debug!(
                checked = r.checked,
                incompatible = r.incompatible.values().sum::<usize>(),
                "running containers re-checked"
            );
            self.inner.metrics.set_running_incompatible(&r.incompatible);
        }
    }
}

impl Inner {
    fn lock_features_from(&self) -> std::sync::MutexGuard<'_, FeatureSettings> {
        self.features_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Everything a config needs: exemptions, the registry client, the checker over the
    /// node's features, the resolver (and its pull watcher).
    fn build(&self, config: Config, request_timeout: Duration) -> Result<Built, DaemonError> {
        let exemptions = Exemptions::new(&config)?;
        let checker = Arc::new(
            Checker::new(
                config.registry.client_config(),
                Platform::host(),
                config.tags.clone(),
                config.cache.clone(),
                self.features.clone(),
                Arc::new(MemoryStore::new(config.cache.max_entries)),
            )
            .with_reading(config.reading()),
        );
        checker.client()?;
        let (resolver, runtime): (Option<Arc<dyn Resolver>>, Option<Runtime>) = match &self
            .fixed_resolver
        {
            Some(r) => (Some(r.clone()), None),
            None if config.containerd.socket.as_os_str().is_empty() => (None, None),
            None => {
                let rt = Runtime::connect(&config.containerd.socket, &config.containerd.namespace)?;
                (
                    Some(Arc::new(ContainerdResolver::new(rt.clone()))),
                    Some(rt),
                )
            }
        };
        // The runtime creates the container unchecked when we answer late, so decide well
        // before its request timeout.
        let deadline = config.deadline.min(request_timeout / 2);
        let gate = Arc::new(Gate::new(
            config.clone(),
            exemptions,
            checker,
            resolver,
            deadline,
        ));
        let watcher =
            runtime.map(|rt| tokio::spawn(prefetch_pulled_images(rt, gate.clone())).abort_handle());
        Ok(Built {
            gate,
            config,
            request_timeout,
            watcher,
        })
    }

    async fn configure_config(
        &self,
        runtime_config: &str,
        request_timeout: Duration,
    ) -> Result<Arc<Gate>, DaemonError> {
        let config = if runtime_config.trim().is_empty() {
            self.base.clone()
        } else {
            Config::parse(runtime_config, "the config the runtime passed")?
        };
        let config = self.overrides.apply(config);
        let current = self.lock_features_from().clone();
        if config.features != current {
            let (settings, metrics) = (config.features.clone(), self.metrics.clone());
            let loaded = tokio::task::spawn_blocking(move || load_features(&settings, &metrics))
                .await
                .map_err(|e| DaemonError::Discovery(e.to_string()))??;
            info!(
                features = loaded.len(),
                "node features loaded with the runtime's config"
            );
            self.features.set(loaded);
            *self.lock_features_from() = config.features.clone();
        }
        let mut built = self.built.lock().await;
        if let Some(b) = built.as_ref() {
            if b.config == config && b.request_timeout == request_timeout {
                return Ok(b.gate.clone());
            }
        }
        let new = self.build(config, request_timeout)?;
        self.metrics.set_mode(new.config.mode);
        let gate = new.gate.clone();
        self.configured.send_replace(Some(new.config.clone()));
        *built = Some(new);
        Ok(gate)
    }
}

#[async_trait]
impl Configurator for Inner {
    async fn configure(
        &self,
        runtime_config: &str,
        request_timeout: Duration,
    ) -> Result<Arc<Gate>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self
            .configure_config(runtime_config, request_timeout)
            .await?)
    }
}

/// The node's features as the settings ask: the file when set, else a discovery (timed for
/// the metrics).
fn load_features(settings: &FeatureSettings, metrics: &Metrics) -> Result<Features, DaemonError> {
    let started = Instant::now();
    let features = match &settings.file {
        Some(f) => crate::features::file::read(f).map_err(FeaturesError::from)?,
        None => {
            let f = crate::features::discover(&settings.discover_options()?);
            metrics.record_discovery(started.elapsed());
            f
        }
    };
    info!(
        features = features.len(),
        took_us = started.elapsed().as_micros() as u64,
        "node features loaded"
    );
    Ok(features)
}

/// Fetches the artifact of each image containerd pulls (or retags), before its first container.
async fn prefetch_pulled_images(rt: Runtime, gate: Arc<Gate>) {
    use futures::StreamExt;
    let events = rt.watch_images();
    futures::pin_mut!(events);
    while let Some(ev) = events.next().await {
        if ev.kind == ImageEventKind::Deleted || ev.name.starts_with("sha256:") {
            continue;
        }
        let mut id = ImageIdentity::new(ev.name.clone(), "containerd-event");
        if let Some(t) = ev.target {
            id.add_digest(t.digest);
        }
        debug!(image = %ev.name, "prefetching the artifact of a pulled image");
        gate.prefetch(&id).await;
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the plugin runs until killed, as a plain process would.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM"),
        _ = int.recv() => info!("SIGINT"),
    }
}
