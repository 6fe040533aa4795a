//! The plugin's ttrpc service for one connection: NRI requests in, `Handler` calls out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tracing::{debug, info, warn};
use ttrpc::r#async::TtrpcContext;

use super::api;
use super::handler::Handler;
use super::status::{Phase, RuntimeInfo, StatusCell};
use super::types::{ConfigureInfo, Container, Event, PodSandbox, Validation, NRI_API_VERSION};

/// Pods and containers of a Synchronize split over several messages (`more`), until the last.
#[derive(Default)]
struct SyncBuffer {
    pods: Vec<PodSandbox>,
    containers: Vec<Container>,
    messages: usize,
}

pub(crate) struct PluginService {
    handler: Arc<dyn Handler>,
    status: Arc<StatusCell>,
    sync: Mutex<SyncBuffer>,
    configured: AtomicBool,
}

fn rpc_error(code: ttrpc::Code, message: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message.into()))
}

fn pod_of(pod: &Option<api::PodSandbox>) -> PodSandbox {
    pod.as_ref().map(PodSandbox::from).unwrap_or_default()
}

fn container_of(ctr: &Option<api::Container>) -> Option<Container> {
    ctr.as_ref().map(Container::from)
}

impl PluginService {
    pub(crate) fn new(handler: Arc<dyn Handler>, status: Arc<StatusCell>) -> PluginService {
        PluginService {
            handler,
            status,
            sync: Mutex::new(SyncBuffer::default()),
            configured: AtomicBool::new(false),
        }
    }

    /// Whether Configure succeeded on this connection.
    pub(crate) fn configured(&self) -> bool {
        self.configured.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.status.update(|s| s.requests += 1);
    }

    /// An event the handler only hears about; `method` is the RPC it came by (the event's own
    /// or StateChange).
    async fn notify(
        &self,
        method: &'static str,
        event: Event,
        pod: &Option<api::PodSandbox>,
        ctr: &Option<api::Container>,
    ) {
        self.count();
        let pod = pod.as_ref().map(PodSandbox::from);
        let ctr = container_of(ctr);
        debug!(
            method,
            event = event.name(),
            pod = pod.as_ref().map(|p| p.name.as_str()).unwrap_or(""),
            container = ctr.as_ref().map(|c| c.name.as_str()).unwrap_or(""),
            "NRI request"
        );
        self.handler.event(event, pod.as_ref(), ctr.as_ref()).await;
    }
}

#[async_trait]
impl api::Plugin for PluginService {
    async fn configure(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConfigureRequest,
    ) -> ttrpc::Result<api::ConfigureResponse> {
        self.count();
        let cfg = ConfigureInfo::from_wire(&req);
        debug!(method = "Configure", "NRI request");
        info!(
            runtime = %cfg.runtime_name,
            runtime_version = %cfg.runtime_version,
            nri_version = cfg.nri_version.as_deref().unwrap_or("(not sent)"),
            registration_timeout_ms = req.registration_timeout,
            request_timeout_ms = req.request_timeout,
            config_bytes = cfg.config.len(),
            "NRI runtime configures the plugin"
        );
        let wanted = self.handler.events();
        let supported = cfg.supported_events();
        let protocol = cfg.protocol();
        let runtime = RuntimeInfo {
            name: cfg.runtime_name.clone(),
            version: cfg.runtime_version.clone(),
            nri_version: cfg.nri_version.clone(),
        };
        if let Err(err) = self.handler.configure(cfg).await {
            warn!(error = %err, "plugin configuration failed");
            self.status
                .update(|s| s.last_error = Some(format!("configure: {err}")));
            return Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, err.message));
        }
        let events = wanted.intersection(supported);
        let dropped = wanted.difference(supported);
        if !dropped.is_empty() {
            info!(events = %dropped.names(), "the runtime does not offer these events; not subscribing");
        }
        // The runtime reads an empty mask as "every event": never send one.
        if events.is_empty() {
            let msg = format!(
                "none of the wanted events ({}) is offered by the runtime",
                wanted.names()
            );
            self.status.update(|s| s.last_error = Some(msg.clone()));
            return Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, msg));
        }
        info!(
            events = %events.names(),
            nri_protocol = %protocol,
            plugin_nri_version = NRI_API_VERSION,
            "subscribing"
        );
        self.configured.store(true, Ordering::SeqCst);
        self.status.update(|s| {
            s.phase = Phase::Configured;
            s.runtime = Some(runtime);
            s.subscribed = events;
            s.last_error = None;
        });
        Ok(api::ConfigureResponse {
            events: events.bits(),
        })
    }

    async fn synchronize(
        &self,
        _ctx: &TtrpcContext,
        req: api::SynchronizeRequest,
    ) -> ttrpc::Result<api::SynchronizeResponse> {
        self.count();
        debug!(
            method = "Synchronize",
            pods = req.pods.len(),
            containers = req.containers.len(),
            more = req.more,
            "NRI request"
        );
        let complete = {
            let mut buf = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
            buf.pods.extend(req.pods.iter().map(PodSandbox::from));
            buf.containers
                .extend(req.containers.iter().map(Container::from));
            buf.messages += 1;
            (!req.more).then(|| std::mem::take(&mut *buf))
        };
        // A split request is acknowledged by echoing `more` with no updates.
        let Some(all) = complete else {
            return Ok(api::SynchronizeResponse {
                update: Vec::new(),
                more: true,
            });
        };
        info!(
            pods = all.pods.len(),
            containers = all.containers.len(),
            messages = all.messages,
            "runtime state synchronized"
        );
        self.status.update(|s| s.phase = Phase::Synchronized);
        let handler = Arc::clone(&self.handler);
        tokio::spawn(async move { handler.synchronize(all.pods, all.containers).await });
        Ok(api::SynchronizeResponse {
            update: Vec::new(),
            more: false,
        })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: api::Empty) -> ttrpc::Result<api::Empty> {
        self.count();
        debug!(method = "Shutdown", "NRI request");
        info!("the runtime is shutting down");
        self.handler.shutdown().await;
        Ok(api::Empty {})
    }

    async fn create_container(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateContainerRequest,
    ) -> ttrpc::Result<api::CreateContainerResponse> {
        self.count();
        let pod = pod_of(&req.pod);
        let Some(ctr) = container_of(&req.container) else {
            return Err(rpc_error(
                ttrpc::Code::INVALID_ARGUMENT,
                "CreateContainer without a container",
            ));
        };
        debug!(
            method = "CreateContainer",
            namespace = %pod.namespace,
            pod = %pod.name,
            container = %ctr.name,
            id = %ctr.id,
            "NRI request"
        );
        match self.handler.create_container(&pod, &ctr).await {
            Ok(adjustment) => Ok(adjustment.into_wire()),
            Err(rejection) => {
                debug!(container = %ctr.name, id = %ctr.id, reason = %rejection, "CreateContainer rejected");
                Err(rpc_error(
                    ttrpc::Code::FAILED_PRECONDITION,
                    rejection.message,
                ))
            }
        }
    }

    async fn validate_container_adjustment(
        &self,
        _ctx: &TtrpcContext,
        req: api::ValidateContainerAdjustmentRequest,
    ) -> ttrpc::Result<api::ValidateContainerAdjustmentResponse> {
        self.count();
        let validation = Validation::from(&req);
        debug!(
            method = "ValidateContainerAdjustment",
            namespace = %validation.pod.namespace,
            pod = %validation.pod.name,
            container = %validation.container.name,
            id = %validation.container.id,
            "NRI request"
        );
        Ok(match self.handler.validate(&validation).await {
            Ok(()) => api::ValidateContainerAdjustmentResponse {
                reject: false,
                reason: String::new(),
            },
            Err(rejection) => api::ValidateContainerAdjustmentResponse {
                reject: true,
                reason: rejection.message,
            },
        })
    }

    async fn update_container(
        &self,
        _ctx: &TtrpcContext,
        req: api::UpdateContainerRequest,
    ) -> ttrpc::Result<api::UpdateContainerResponse> {
        self.notify(
            "UpdateContainer",
            Event::UpdateContainer,
            &req.pod,
            &req.container,
        )
        .await;
        Ok(api::UpdateContainerResponse::default())
    }

    async fn stop_container(
        &self,
        _ctx: &TtrpcContext,
        req: api::StopContainerRequest,
    ) -> ttrpc::Result<api::StopContainerResponse> {
        self.notify(
            "StopContainer",
            Event::StopContainer,
            &req.pod,
            &req.container,
        )
        .await;
        Ok(api::StopContainerResponse::default())
    }

    async fn update_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: api::UpdatePodSandboxRequest,
    ) -> ttrpc::Result<api::UpdatePodSandboxResponse> {
        self.notify("UpdatePodSandbox", Event::UpdatePodSandbox, &req.pod, &None)
            .await;
        Ok(api::UpdatePodSandboxResponse {})
    }

    async fn post_update_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: api::PostUpdatePodSandboxRequest,
    ) -> ttrpc::Result<api::PostUpdatePodSandboxResponse> {
        self.notify(
            "PostUpdatePodSandbox",
            Event::PostUpdatePodSandbox,
            &req.pod,
            &None,
        )
        .await;
        Ok(api::PostUpdatePodSandboxResponse {})
    }

    async fn run_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: api::RunPodSandboxRequest,
    ) -> ttrpc::Result<api::RunPodSandboxResponse> {
        self.notify("RunPodSandbox", Event::RunPodSandbox, &req.pod, &None)
            .await;
        Ok(api::RunPodSandboxResponse {})
    }

    async fn stop_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: api::StopPodSandboxRequest,
    ) -> ttrpc::Result<api::StopPodSandboxResponse> {
        self.notify("StopPodSandbox", Event::StopPodSandbox, &req.pod, &None)
            .await;
        Ok(api::StopPodSandboxResponse {})
    }

    async fn remove_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: api::RemovePodSandboxRequest,
    ) -> ttrpc::Result<api::RemovePodSandboxResponse> {
        self.notify("RemovePodSandbox", Event::RemovePodSandbox, &req.pod, &None)
            .await;
        Ok(api::RemovePodSandboxResponse {})
    }

    async fn post_create_container(
        &self,
        _ctx: &TtrpcContext,
        req: api::PostCreateContainerRequest,
    ) -> ttrpc::Result<api::PostCreateContainerResponse> {
        self.notify(
            "PostCreateContainer",
            Event::PostCreateContainer,
            &req.pod,
            &req.container,
        )
        .await;
        Ok(api::PostCreateContainerResponse {})
    }

    async fn start_container(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartContainerRequest,
    ) -> ttrpc::Result<api::StartContainerResponse> {
        self.notify(
            "StartContainer",
            Event::StartContainer,
            &req.pod,
            &req.container,
        )
        .await;
        Ok(api::StartContainerResponse {})
    }

    async fn post_start_container(
        &self,
        _ctx: &TtrpcContext,
        req: api::PostStartContainerRequest,
    ) -> ttrpc::Result<api::PostStartContainerResponse> {
        self.notify(
            "PostStartContainer",
            Event::PostStartContainer,
            &req.pod,
            &req.container,
        )
        .await;
        Ok(api::PostStartContainerResponse {})
    }

    async fn post_update_container(
        &self,
        _ctx: &TtrpcContext,
        req: api::PostUpdateContainerRequest,
    ) -> ttrpc::Result<api::PostUpdateContainerResponse> {
        self.notify(
            "PostUpdateContainer",
            Event::PostUpdateContainer,
            &req.pod,
            &req.container,
        )
        .await;
        Ok(api::PostUpdateContainerResponse {})
    }

    async fn remove_container(
        &self,
        _ctx: &TtrpcContext,
        req: api::RemoveContainerRequest,
    ) -> ttrpc::Result<api::RemoveContainerResponse> {
        self.notify(
            "RemoveContainer",
            Event::RemoveContainer,
            &req.pod,
            &req.container,
        )
        .await;
        Ok(api::RemoveContainerResponse {})
    }

    /// Runtimes before NRI 0.12 send every notification-only event this way.
    async fn state_change(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateChangeEvent,
    ) -> ttrpc::Result<api::Empty> {
        match Event::from_wire(req.event) {
            Some(event) => {
                self.notify("StateChange", event, &req.pod, &req.container)
                    .await
            }
            None => {
                self.count();
                debug!(
                    method = "StateChange",
                    event = req.event,
                    "NRI request for an unknown event"
                );
            }
        }
        Ok(api::Empty {})
    }
}
