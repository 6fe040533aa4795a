//! The runtime side of NRI, in process: accepts the plugin's connection, serves
//! Runtime.RegisterPlugin and calls the plugin's services, as containerd would.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use image_compat::nri::api;
use image_compat::nri::mux::{Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
use image_compat::nri::{PluginOptions, Transport};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use ttrpc::r#async::transport::{Listener, Socket};
use ttrpc::r#async::{Client, Server, TtrpcContext};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct RuntimeService {
    pub registrations: mpsc::UnboundedSender<api::RegisterPluginRequest>,
}

#[async_trait]
impl api::Runtime for RuntimeService {
    async fn register_plugin(
        &self,
        _ctx: &TtrpcContext,
        req: api::RegisterPluginRequest,
    ) -> ttrpc::Result<api::Empty> {
        let _ = self.registrations.send(req);
        Ok(api::Empty {})
    }
}

pub struct PeerConn {
    pub mux: Mux,
    pub plugin: api::PluginClient,
    _server: Server,
    pub registration: api::RegisterPluginRequest,
}

impl PeerConn {
    /// Sets up the runtime side on `stream` and waits for the plugin to register.
    pub async fn start(stream: UnixStream) -> PeerConn {
        // The plugin may have sent RegisterPlugin before we accepted: open before reading,
        // as the Go runtime does (WithBlockedRead).
        let mux = Mux::blocked(stream);
        let plugin_conn = mux.open(PLUGIN_SERVICE_CONN).expect("peer opens conn 1");
        let runtime_conn = mux.open(RUNTIME_SERVICE_CONN).expect("peer opens conn 2");
        mux.unblock();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let service =
            Arc::new(RuntimeService { registrations: tx }) as Arc<dyn api::Runtime + Send + Sync>;
        let incoming =
            stream::iter([Ok::<_, std::io::Error>(runtime_conn)]).chain(stream::pending());
        let mut server = Server::new()
            .register_service(api::create_runtime(service))
            .add_listener(Listener::new(incoming));
        server.start().await.expect("peer ttrpc server starts");
        let plugin = api::PluginClient::new(Client::new(Socket::new(plugin_conn)));
        let registration = timeout(WAIT, rx.recv())
            .await
            .expect("plugin registers in time")
            .expect("registration");
        PeerConn {
            mux,
            plugin,
            _server: server,
            registration,
        }
    }

    pub async fn configure(
        &self,
        runtime: &str,
        version: &str,
        config: &str,
    ) -> ttrpc::Result<api::ConfigureResponse> {
        let req = api::ConfigureRequest {
            config: config.into(),
            runtime_name: runtime.into(),
            runtime_version: version.into(),
            registration_timeout: 5000,
            request_timeout: 2000,
            nri_version: String::new(),
        };
        self.plugin.configure(ctx(), &req).await
    }

    pub async fn sync(
        &self,
        pods: Vec<api::PodSandbox>,
        containers: Vec<api::Container>,
        more: bool,
    ) -> api::SynchronizeResponse {
        let req = api::SynchronizeRequest {
            pods,
            containers,
            more,
        };
        self.plugin
            .synchronize(ctx(), &req)
            .await
            .expect("Synchronize succeeds")
    }

    pub async fn create(
        &self,
        pod: &api::PodSandbox,
        ctr: api::Container,
    ) -> ttrpc::Result<api::CreateContainerResponse> {
        create(&self.plugin, pod, ctr).await
    }
}

pub async fn create(
    plugin: &api::PluginClient,
    pod: &api::PodSandbox,
    ctr: api::Container,
) -> ttrpc::Result<api::CreateContainerResponse> {
    let req = api::CreateContainerRequest {
        pod: Some(pod.clone()),
        container: Some(ctr),
    };
    plugin.create_container(ctx(), &req).await
}

pub fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_duration(Duration::from_secs(5))
}

pub fn pod(name: &str) -> api::PodSandbox {
    api::PodSandbox {
        id: format!("pod-{name}"),
        name: name.into(),
        uid: format!("uid-{name}"),
        namespace: "default".into(),
        labels: [("app".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

pub fn container(name: &str, annotations: &[(&str, &str)]) -> api::Container {
    api::Container {
        id: format!("ctr-{name}"),
        pod_sandbox_id: "pod-web".into(),
        name: name.into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

pub fn external_opts(socket: &Path) -> PluginOptions {
    let mut opts = PluginOptions::external("image-compat", "42");
    opts.transport = Transport::External {
        socket: socket.to_path_buf(),
    };
    opts.reconnect_initial = Duration::from_millis(50);
    opts.reconnect_max = Duration::from_millis(200);
    opts
}

pub fn rpc_status(err: ttrpc::Error) -> ttrpc::Status {
    match err {
        ttrpc::Error::RpcStatus(status) => status,
        other => panic!("expected an RPC status, got {other:?}"),
    }
}
