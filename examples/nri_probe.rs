//! NRI probe: runs as an NRI plugin and reports, one JSON object a line, what the runtime sends.
//!
//! External: `nri_probe --socket /var/run/nri/nri.sock`. Pre-launched: install it (or a script
//! that execs it with `--out`) as `NN-name` in the runtime's plugin_path; it then also reports
//! the environment and inherited socket the runtime gave it. Diagnostics and real-stack tests.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use clap::Parser;
use image_compat::nri::{
    self, Adjustment, ConfigureInfo, Container, Event, EventSet, Handler, HandlerError,
    PluginOptions, PodSandbox, Rejection, Transport,
};
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// The runtime's NRI socket (external mode; ignored when pre-launched).
    #[arg(long, default_value = nri::DEFAULT_SOCKET_PATH)]
    socket: PathBuf,
    #[arg(long, default_value = "nri-probe")]
    name: String,
    #[arg(long, default_value = "50")]
    idx: String,
    /// Append reports here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write logs here instead of stderr.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Reject containers that carry this annotation, with its value as the reason.
    #[arg(long)]
    reject_annotation: Option<String>,
}

struct Report {
    started: Instant,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Report {
    fn emit(&self, kind: &str, mut fields: Value) {
        if let Value::Object(map) = &mut fields {
            map.insert("kind".into(), kind.into());
            map.insert(
                "ms".into(),
                (self.started.elapsed().as_millis() as u64).into(),
            );
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{fields}");
        let _ = out.flush();
    }
}

struct Probe {
    report: Arc<Report>,
    reject_annotation: Option<String>,
}

fn container_json(pod: &PodSandbox, ctr: &Container) -> Value {
    json!({
        "pod": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid, "annotations": pod.annotations},
        "container": {"id": ctr.id, "name": ctr.name, "annotations": ctr.annotations,
            "image": ctr.image.as_ref().map(|i| json!({"name": i.name, "digest": i.digest, "config_digest": i.config_digest}))},
    })
}

#[async_trait]
impl Handler for Probe {
    fn events(&self) -> EventSet {
        [
            Event::CreateContainer,
            Event::ValidateContainerAdjustment,
            Event::RemoveContainer,
        ]
        .into_iter()
        .collect()
    }

    async fn configure(&self, cfg: ConfigureInfo) -> Result<(), HandlerError> {
        self.report.emit(
            "configure",
            json!({
                "runtime_name": cfg.runtime_name,
                "runtime_version": cfg.runtime_version,
                "nri_version": cfg.nri_version,
                "registration_timeout_ms": cfg.registration_timeout.map(|d| d.as_millis() as u64),
                "request_timeout_ms": cfg.request_timeout.map(|d| d.as_millis() as u64),
                "supported_events": cfg.supported_events().names(),
                "config": cfg.config,
            }),
        );
        Ok(())
    }

    async fn synchronize(&self, pods: Vec<PodSandbox>, containers: Vec<Container>) {
        self.report.emit(
            "synchronize",
            json!({
                "pods": pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect::<Vec<_>>(),
                "containers": containers.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            }),
        );
    }

    async fn create_container(
        &self,
        pod: &PodSandbox,
        ctr: &Container,
    ) -> Result<Adjustment, Rejection> {
        self.report
            .emit("create_container", container_json(pod, ctr));
        let reason = self
            .reject_annotation
            .as_ref()
            .and_then(|key| ctr.annotations.get(key));
        match reason {
            Some(reason) => Err(Rejection::new(reason.clone())),
            None => Ok(Adjustment::default().annotate("image-compat.probe/seen", "true")),
        }
    }

    async fn event(&self, event: Event, pod: Option<&PodSandbox>, ctr: Option<&Container>) {
        self.report.emit(
            "event",
            json!({"event": event.name(), "pod": pod.map(|p| p.name.clone()), "container": ctr.map(|c| c.name.clone())}),
        );
    }

    async fn shutdown(&self) {
        self.report.emit("shutdown", json!({}));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let out: Box<dyn Write + Send> = match &args.out {
        Some(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        None => Box::new(std::io::stdout()),
    };
    let report = Arc::new(Report {
        started,
        out: Mutex::new(out),
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
    match &args.log {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init();
        }
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }

    let mut opts = PluginOptions::from_env(&args.name, &args.idx)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let fd_target = match opts.transport {
        Transport::Preconnected { fd } => std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|t| t.display().to_string())
            .unwrap_or_else(|e| format!("error: {e}")),
        Transport::External { .. } => {
            opts.transport = Transport::External {
                socket: args.socket.clone(),
            };
            String::new()
        }
    };
    report.emit(
        "start",
        json!({"pid": std::process::id(), "env": env, "transport": format!("{:?}", opts.transport),
               "fd_target": fd_target, "name": opts.name, "idx": opts.idx}),
    );
    let plugin = nri::Plugin::new(
        opts,
        Arc::new(Probe {
            report: Arc::clone(&report),
            reject_annotation: args.reject_annotation.clone(),
        }),
    )?;
    let mut status = plugin.status();
    let watcher = {
        let report = Arc::clone(&report);
        tokio::spawn(async move {
            let mut last = None;
            while let Some(s) = status
                .wait_for(|s| Some((s.phase, s.reconnects)) != last)
                .await
            {
                last = Some((s.phase, s.reconnects));
                report.emit(
                    "status",
                    json!({"phase": format!("{:?}", s.phase), "connections": s.connections,
                           "reconnects": s.reconnects, "registrations": s.registrations,
                           "subscribed": s.subscribed.names(), "last_error": s.last_error}),
                );
                if s.phase == nri::Phase::Stopped {
                    break;
                }
            }
        })
    };
    let result = plugin.run().await;
    let _ = watcher.await;
    report.emit("exit", json!({"result": format!("{result:?}")}));
    Ok(result?)
}
