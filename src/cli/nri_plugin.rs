//! `image-compat nri-plugin`: the NRI plugin daemon (external or pre-launched by the runtime).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use image_compat::features::Features;
use image_compat::metrics::{self, Health, Metrics};
use image_compat::nri::{Guard, Handler, Observer, Plugin, PluginOptions, Transport};
use image_compat::policy::{Config, Mode};
use tracing::{info, warn};

#[derive(Args, Clone)]
pub struct NriPluginArgs {
    /// The plugin config (YAML; every key documented by --print-config). A pre-launched
    /// plugin gets its config from the runtime instead; the flags below apply over either.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the documented default config and exit.
    #[arg(long)]
    print_config: bool,
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// The runtime's NRI socket (external mode).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Plugin name registered with the runtime.
    #[arg(long)]
    name: Option<String>,
    /// Plugin index (two digits): the order among NRI plugins.
    #[arg(long)]
    idx: Option<String>,
    /// containerd's gRPC socket, to resolve image names to digests.
    #[arg(long)]
    containerd_socket: Option<PathBuf>,
    /// containerd hosts.toml directory for registry mirrors, CAs and plain HTTP.
    #[arg(long)]
    hosts_dir: Option<PathBuf>,
    /// A registry (host:port) spoken to over plain HTTP; repeatable.
    #[arg(long = "plain-http", value_name = "HOST")]
    plain_http: Vec<String>,
    /// Only compatibility sets with these tags count (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tags: Option<Vec<String>>,
    /// Evaluate against this saved features file instead of discovering this node.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Serve /metrics and /healthz on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Read the host's /sys, /proc, ... under this prefix (`/host-` in a container).
    #[arg(long)]
    host_prefix: Option<String>,
}

impl NriPluginArgs {
    /// The flags, applied over a config (the file's or the runtime's).
    fn apply(&self, c: &mut Config) {
        if let Some(m) = self.mode {
            c.mode = m;
        }
        if let Some(s) = &self.socket {
            c.nri.socket = s.clone();
        }
        if let Some(n) = &self.name {
            c.nri.name = n.clone();
        }
        if let Some(i) = &self.idx {
            c.nri.index = i.clone();
        }
        if let Some(s) = &self.containerd_socket {
            c.containerd.socket = s.clone();
        }
        if let Some(d) = &self.hosts_dir {
            c.registry.hosts_dir = Some(d.clone());
        }
        for h in &self.plain_http {
            if !c.registry.plain_http.contains(h) {
                c.registry.plain_http.push(h.clone());
            }
        }
        if let Some(t) = &self.tags {
            c.tags = t.iter().filter(|t| !t.is_empty()).cloned().collect();
        }
        if let Some(f) = &self.features {
            c.features.file = Some(f.clone());
        }
        if let Some(m) = &self.metrics_listen {
            c.metrics.listen = Some(m.clone());
        }
        if let Some(p) = &self.host_prefix {
            c.features.host_prefix = Some(p.clone());
        }
    }
}

pub fn run(a: NriPluginArgs) -> anyhow::Result<ExitCode> {
    if a.print_config {
        print!("{}", Config::defaults_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = match &a.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    a.apply(&mut config);
    let metrics = Metrics::new();
    metrics.set_mode(config.mode);
    let features = node_features(&config, &metrics)?;
    let mut opts = PluginOptions::from_env(&config.nri.name, &config.nri.index)?;
    match &mut opts.transport {
        Transport::External { socket } => {
            *socket = config.nri.socket.clone();
            info!(socket = %socket.display(), "external mode");
        }
        Transport::Preconnected { fd } => info!(fd = *fd, "pre-launched by the runtime"),
    }
    serve(a, config, features, opts, metrics)
}

fn serve(
    a: NriPluginArgs,
    config: Config,
    features: Features,
    opts: PluginOptions,
    metrics: Metrics,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let base_features = config.features.clone();
        let flags = a.clone();
        let observer: Arc<dyn Observer> = Arc::new(metrics.clone());
        let guard = Arc::new(Guard::new(
            config.clone(),
            Box::new(move |c| flags.apply(c)),
            None,
            features,
            Some(observer),
        ));
        {
            // Rediscovery follows the settings in force: a pre-launched plugin's come from the
            // runtime's config, known only after Configure.
            let (guard, metrics) = (guard.clone(), metrics.clone());
            tokio::spawn(async move {
                loop {
                    let settings = guard
                        .config()
                        .map(|c| c.features)
                        .unwrap_or_else(|| base_features.clone());
                    if settings.refresh.is_zero() || settings.file.is_some() {
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        continue;
                    }
                    tokio::time::sleep(settings.refresh).await;
                    let g = guard.clone();
                    let started = Instant::now();
                    match tokio::task::spawn_blocking(move || g.refresh_features()).await {
                        Ok(Ok(())) => metrics.record_discovery(started.elapsed()),
                        Ok(Err(e)) => {
                            metrics.record_discovery_error();
                            warn!(error = %e, "feature rediscovery failed")
                        }
                        Err(e) => warn!(error = %e, "feature rediscovery panicked"),
                    }
                }
            });
        }
        let handler: Arc<dyn Handler> = guard.clone();
        let plugin = Plugin::new(opts, handler)?;
        // The endpoint's address comes from the start-up config, or for a pre-launched plugin
        // from the config the runtime sends in Configure.
        let endpoint = match config.metrics.listen.as_deref().filter(|l| !l.is_empty()) {
            // Bind before connecting: a bad or busy address is a start-up error, not a log line.
            Some(listen) => Some(metrics::Server::bind(listen).await?),
            None => None,
        };
        let (status, metrics, guard) = (plugin.status(), metrics.clone(), guard.clone());
        tokio::spawn(async move {
            let server = match endpoint {
                Some(s) => s,
                None => {
                    while !guard.is_configured() {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    let Some(listen) = guard
                        .config()
                        .and_then(|c| c.metrics.listen)
                        .filter(|l| !l.is_empty())
                    else {
                        return;
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
            let health_status = status.clone();
            tokio::spawn(server.run(
                metrics.clone(),
                move || Health::of_plugin(&health_status.get(), true),
                std::future::pending(),
            ));
            loop {
                metrics.set_nri_status(&status.get());
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        plugin.run_until(shutdown_signal()).await?;
        info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The node's features at start: the configured file, or a discovery (timed for metrics).
fn node_features(config: &Config, metrics: &Metrics) -> anyhow::Result<Features> {
    let started = Instant::now();
    let f = config.features.load()?;
    if config.features.file.is_none() {
        metrics.record_discovery(started.elapsed());
    }
    info!(
        features = f.len(),
        took_us = started.elapsed().as_micros() as u64,
        "node features loaded"
    );
    Ok(f)
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
