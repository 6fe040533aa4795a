//! `image-compat nri-plugin`: the NRI plugin daemon (external or pre-launched by the runtime).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use image_compat::config::{Config, Mode, Overrides};
use image_compat::daemon;

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
    mode: Option<ModeArg>,
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
    /// Only compatibility sets with these tags count (comma-separated or repeated, as NFD
    /// reads them).
    #[arg(long)]
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

/// `--mode`: the config's `mode`.
#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Refuse incompatible containers, with the reason.
    Enforce,
    /// Let them start, annotated, with a warning log line.
    Audit,
}

impl NriPluginArgs {
    fn overrides(&self) -> anyhow::Result<Overrides> {
        Ok(Overrides {
            mode: self.mode.map(|m| match m {
                ModeArg::Enforce => Mode::Enforce,
                ModeArg::Audit => Mode::Audit,
            }),
            nri_socket: self.socket.clone(),
            nri_name: self.name.clone(),
            nri_index: self.idx.clone(),
            containerd_socket: self.containerd_socket.clone(),
            hosts_dir: self.hosts_dir.clone(),
            plain_http: self.plain_http.clone(),
            tags: self.tags.as_deref().map(super::parse_tags).transpose()?,
            features_file: self.features.clone(),
            metrics_listen: self.metrics_listen.clone(),
            host_prefix: self.host_prefix.clone(),
        })
    }
}

pub fn run(a: NriPluginArgs) -> anyhow::Result<ExitCode> {
    if a.print_config {
        print!("{}", Config::defaults_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let base = match &a.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    daemon::run(base, a.overrides()?)?;
    Ok(ExitCode::SUCCESS)
}
