//! CRI test driver for the real-stack scripts: one CRI v1 call per invocation, JSON on stdout.
//!
//! `cri --socket PATH <command>`; a gRPC error prints its status message alone on stderr and exits
//! 1 (tests read a plugin's rejection from there); any other failure (connect, timeout, bad
//! argument) exits 2.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ExecSyncRequest, ImageSpec, ImageStatusRequest, KeyValue,
    LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, ListContainersRequest, ListPodSandboxRequest, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PodSandboxState,
    PodSandboxStatusRequest, PullImageRequest, RemoveContainerRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
    VersionRequest,
};
use serde_json::{json, Map, Value};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Parser)]
#[command(name = "cri", about = "One CRI v1 call per invocation; JSON on stdout")]
struct Cli {
    /// The runtime's CRI (gRPC) unix socket, e.g. containerd's grpc.address.
    #[arg(long, env = "CRI_SOCKET")]
    socket: PathBuf,
    /// Deadline for the whole call, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runtime name and versions.
    Version,
    /// PullImage; prints the image ref the runtime returns.
    Pull { reference: String },
    /// ImageStatus: id, repo tags and repo digests (null when the image is absent).
    ImageStatus { reference: String },
    /// RunPodSandbox in the host network namespace, without a hostname; prints the pod id.
    RunPod {
        name: String,
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Pod uid; default `<namespace>-<name>`.
        #[arg(long)]
        uid: Option<String>,
        /// Pod label KEY=VALUE (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Pod annotation KEY=VALUE (repeatable).
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
        /// Runtime handler (runtime class); default the runtime's default.
        #[arg(long, default_value = "")]
        runtime_handler: String,
    },
    /// PodSandboxStatus.
    PodStatus { id: String },
    /// CreateContainer in a pod; prints the container id and the call's latency (create_us).
    ///
    /// Like the kubelet, the image is sent as the image id found by ImageStatus, with REF as
    /// user_specified_image (REF itself when the runtime does not know it); --raw-image sends REF
    /// as the image and no user_specified_image.
    Create {
        pod_id: String,
        name: String,
        reference: String,
        /// Container label KEY=VALUE (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Container annotation KEY=VALUE (repeatable).
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        envs: Vec<String>,
        /// Send REF as ImageSpec.image, without user_specified_image.
        #[arg(long)]
        raw_image: bool,
        /// Command (entrypoint override) and its arguments; takes the rest of the line.
        #[arg(long, num_args = 1.., allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// StartContainer.
    Start { id: String },
    /// ContainerStatus (verbose): state, exit code, reason, message, annotations, OCI spec
    /// annotations.
    Status { id: String },
    /// ExecSync; prints stdout, stderr and the exit code.
    Exec {
        id: String,
        /// Seconds; 0 means no limit.
        #[arg(long = "exec-timeout", default_value_t = 10)]
        exec_timeout: i64,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
        cmd: Vec<String>,
    },
    /// StopContainer.
    Stop {
        id: String,
        /// Grace period in seconds before SIGKILL.
        #[arg(long = "grace", default_value_t = 2)]
        grace: i64,
    },
    /// RemoveContainer.
    Rm { id: String },
    /// StopPodSandbox.
    StopPod { id: String },
    /// RemovePodSandbox.
    RmPod { id: String },
    /// ListPodSandbox and ListContainers.
    List,
}

/// How a run ended badly: a gRPC status from the runtime, or anything else.
enum Failure {
    Status(tonic::Status),
    Other(anyhow::Error),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        Failure::Status(s)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let deadline = Duration::from_secs(cli.timeout);
    let outcome = match tokio::time::timeout(deadline, run(&cli)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Other(anyhow!(
            "no answer within {}s",
            deadline.as_secs()
        ))),
    };
    match outcome {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(Failure::Status(s)) => {
            eprintln!("{}", s.message());
            ExitCode::from(1)
        }
        Err(Failure::Other(e)) => {
            // tonic's errors repeat their source in their own text: the outer context and the
            // root cause say it all.
            let (top, cause) = (e.to_string(), e.root_cause().to_string());
            if top == cause {
                eprintln!("cri: {top}");
            } else {
                eprintln!("cri: {top}: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

async fn connect(socket: &Path) -> anyhow::Result<Cri> {
    let path = socket.to_path_buf();
    // The URI is a placeholder: the connector always dials the unix socket.
    let channel = Endpoint::try_from("http://[::1]:1")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    Ok(Cri {
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
    })
}

async fn run(cli: &Cli) -> Result<Value, Failure> {
    let mut cri = connect(&cli.socket).await?;
    let rt = &mut cri.runtime;
    let v = match &cli.command {
        Command::Version => {
            let r = rt.version(VersionRequest::default()).await?.into_inner();
            json!({
                "runtime_name": r.runtime_name,
                "runtime_version": r.runtime_version,
                "runtime_api_version": r.runtime_api_version,
            })
        }
        Command::Pull { reference } => {
            let r = cri
                .images
                .pull_image(PullImageRequest {
                    image: Some(image_spec(reference, reference)),
                    ..Default::default()
                })
                .await?
                .into_inner();
            json!({ "image_ref": r.image_ref })
        }
        Command::ImageStatus { reference } => {
            let image = image_status(&mut cri.images, reference).await?;
            match image {
                Some(i) => json!({
                    "id": i.id,
                    "repo_tags": i.repo_tags,
                    "repo_digests": i.repo_digests,
                    "size": i.size,
                    "pinned": i.pinned,
                }),
                None => Value::Null,
            }
        }
        Command::RunPod {
            name,
            namespace,
            uid,
            labels,
            annotations,
            runtime_handler,
        } => {
            let config = PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: name.clone(),
                    uid: uid.clone().unwrap_or_else(|| format!("{namespace}-{name}")),
                    namespace: namespace.clone(),
                    attempt: 0,
                }),
                // No hostname: runc refuses one without a private UTS namespace, and a
                // host-network pod shares the host's.
                hostname: String::new(),
                labels: key_values(labels)?,
                annotations: key_values(annotations)?,
                linux: Some(LinuxPodSandboxConfig {
                    security_context: Some(LinuxSandboxSecurityContext {
                        namespace_options: Some(host_network()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let r = rt
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: runtime_handler.clone(),
                })
                .await?
                .into_inner();
            json!({ "pod_id": r.pod_sandbox_id })
        }
        Command::PodStatus { id } => {
            let r = rt
                .pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: id.clone(),
                    verbose: false,
                })
                .await?
                .into_inner();
            let s = r
                .status
                .ok_or_else(|| anyhow!("pod {id}: the runtime sent no status"))?;
            let m = s.metadata.unwrap_or_default();
            json!({
                "id": s.id,
                "name": m.name,
                "namespace": m.namespace,
                "uid": m.uid,
                "attempt": m.attempt,
                "state": pod_state(s.state),
                "created_at": s.created_at,
                "runtime_handler": s.runtime_handler,
                "labels": sorted(s.labels),
                "annotations": sorted(s.annotations),
            })
        }
        Command::Create {
            pod_id,
            name,
            reference,
            labels,
            annotations,
            envs,
            raw_image,
            cmd,
        } => {
            let sandbox_config = sandbox_config_of(rt, pod_id).await?;
            let image = if *raw_image {
                ImageSpec {
                    image: reference.clone(),
                    ..Default::default()
                }
            } else {
                // The kubelet sends the image id it got from ImageStatus and keeps what the
                // pod asked for in user_specified_image.
                let id = image_status(&mut cri.images, reference)
                    .await?
                    .map(|i| i.id)
                    .unwrap_or_else(|| reference.clone());
                image_spec(&id, reference)
            };
            let config = ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: name.clone(),
                    attempt: 0,
                }),
                image: Some(image.clone()),
                command: cmd.clone(),
                envs: key_values(envs)?
                    .into_iter()
                    .map(|(key, value)| KeyValue { key, value })
                    .collect(),
                labels: kubelet_labels(&sandbox_config, name, key_values(labels)?),
                annotations: key_values(annotations)?,
                linux: Some(LinuxContainerConfig {
                    security_context: Some(LinuxContainerSecurityContext {
                        namespace_options: Some(host_network()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            // The CreateContainer call alone, for latency measurements (scripts/bench-create.sh).
            let started = std::time::Instant::now();
            let r = rt
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod_id.clone(),
                    config: Some(config),
                    sandbox_config: Some(sandbox_config),
                })
                .await?
                .into_inner();
            let create_us = started.elapsed().as_micros() as u64;
            json!({ "container_id": r.container_id, "image": image.image, "create_us": create_us })
        }
        Command::Start { id } => {
            rt.start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
            json!({ "container_id": id })
        }
        Command::Status { id } => {
            let r = rt
                .container_status(ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: true,
                })
                .await?
                .into_inner();
            let s = r
                .status
                .ok_or_else(|| anyhow!("container {id}: the runtime sent no status"))?;
            // containerd puts its own view, the OCI runtime spec included, as JSON under "info".
            let info: Value = r
                .info
                .get("info")
                .and_then(|i| serde_json::from_str(i).ok())
                .unwrap_or(Value::Null);
            json!({
                "id": s.id,
                "pod_id": info.get("sandboxID").cloned().unwrap_or(Value::Null),
                "name": s.metadata.unwrap_or_default().name,
                "state": container_state(s.state),
                "exit_code": s.exit_code,
                "reason": s.reason,
                "message": s.message,
                "image": s.image.unwrap_or_default().image,
                "image_ref": s.image_ref,
                "created_at": s.created_at,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "pid": info.get("pid").cloned().unwrap_or(Value::Null),
                "labels": sorted(s.labels),
                "annotations": sorted(s.annotations),
                "spec_annotations": info
                    .pointer("/runtimeSpec/annotations")
                    .cloned()
                    .unwrap_or(Value::Null),
            })
        }
        Command::Exec {
            id,
            exec_timeout,
            cmd,
        } => {
            let r = rt
                .exec_sync(ExecSyncRequest {
                    container_id: id.clone(),
                    cmd: cmd.clone(),
                    timeout: *exec_timeout,
                })
                .await?
                .into_inner();
            json!({
                "exit_code": r.exit_code,
                "stdout": String::from_utf8_lossy(&r.stdout),
                "stderr": String::from_utf8_lossy(&r.stderr),
            })
        }
        Command::Stop { id, grace } => {
            rt.stop_container(StopContainerRequest {
                container_id: id.clone(),
                timeout: *grace,
            })
            .await?;
            json!({ "container_id": id })
        }
        Command::Rm { id } => {
            rt.remove_container(RemoveContainerRequest {
                container_id: id.clone(),
            })
            .await?;
            json!({ "container_id": id })
        }
        Command::StopPod { id } => {
            rt.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await?;
            json!({ "pod_id": id })
        }
        Command::RmPod { id } => {
            rt.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await?;
            json!({ "pod_id": id })
        }
        Command::List => {
            let mut pods = rt
                .list_pod_sandbox(ListPodSandboxRequest::default())
                .await?
                .into_inner()
                .items;
            pods.sort_by_key(|p| p.created_at);
            let mut containers = rt
                .list_containers(ListContainersRequest::default())
                .await?
                .into_inner()
                .containers;
            containers.sort_by_key(|c| c.created_at);
            let pods: Vec<Value> = pods
                .into_iter()
                .map(|p| {
                    let m = p.metadata.unwrap_or_default();
                    json!({
                        "id": p.id,
                        "name": m.name,
                        "namespace": m.namespace,
                        "uid": m.uid,
                        "state": pod_state(p.state),
                        "labels": sorted(p.labels),
                        "annotations": sorted(p.annotations),
                    })
                })
                .collect();
            let containers: Vec<Value> = containers
                .into_iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "pod_id": c.pod_sandbox_id,
                        "name": c.metadata.unwrap_or_default().name,
                        "image": c.image.unwrap_or_default().image,
                        "image_ref": c.image_ref,
                        "state": container_state(c.state),
                        "labels": sorted(c.labels),
                        "annotations": sorted(c.annotations),
                    })
                })
                .collect();
            json!({ "pods": pods, "containers": containers })
        }
    };
    Ok(v)
}

/// The namespaces of a host-network pod as the kubelet asks for them: node network, pod IPC,
/// a PID namespace per container.
fn host_network() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn image_spec(image: &str, user_specified: &str) -> ImageSpec {
    ImageSpec {
        image: image.to_string(),
        user_specified_image: user_specified.to_string(),
        ..Default::default()
    }
}

async fn image_status(
    images: &mut ImageServiceClient<Channel>,
    reference: &str,
) -> Result<Option<k8s_cri::v1::Image>, Failure> {
    let r = images
        .image_status(ImageStatusRequest {
            image: Some(image_spec(reference, reference)),
            verbose: false,
        })
        .await?
        .into_inner();
    Ok(r.image)
}

/// CreateContainer wants the pod's config again; rebuild it from what the runtime reports,
/// which holds everything run-pod sets.
async fn sandbox_config_of(
    rt: &mut RuntimeServiceClient<Channel>,
    pod_id: &str,
) -> Result<PodSandboxConfig, Failure> {
    let s = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.to_string(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .ok_or_else(|| anyhow!("pod {pod_id}: the runtime sent no status"))?;
    let namespaces = s
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options)
        .unwrap_or_else(host_network);
    Ok(PodSandboxConfig {
        metadata: s.metadata,
        labels: s.labels,
        annotations: s.annotations,
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn key_values(pairs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("expected KEY=VALUE, got {p:?}"))
        })
        .collect()
}

/// Maps in key order, so output is stable across runs.
fn sorted(m: HashMap<String, String>) -> Value {
    let mut pairs: Vec<_> = m.into_iter().collect();
    pairs.sort();
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<Map<_, _>>(),
    )
}

fn container_state(s: i32) -> String {
    ContainerState::try_from(s)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| format!("UNKNOWN({s})"))
}

fn pod_state(s: i32) -> String {
    PodSandboxState::try_from(s)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| format!("UNKNOWN({s})"))
}

/// The labels the kubelet puts on every container (its pod and its name), then `extra`.
fn kubelet_labels(
    sandbox: &PodSandboxConfig,
    name: &str,
    extra: HashMap<String, String>,
) -> HashMap<String, String> {
    let m = sandbox.metadata.clone().unwrap_or_default();
    let mut labels: HashMap<String, String> = [
        ("io.kubernetes.pod.name", m.name),
        ("io.kubernetes.pod.namespace", m.namespace),
        ("io.kubernetes.pod.uid", m.uid),
        ("io.kubernetes.container.name", name.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    labels.extend(extra);
    labels
}
