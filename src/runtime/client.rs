//! containerd's gRPC API over its unix socket: a lazy channel, per-call deadlines, namespaced calls.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, GetImageRequest, Image, ListContainersRequest, ListImagesRequest, ListTasksRequest,
    ReadContentRequest, SubscribeRequest,
};
use containerd_client::tonic::codec::Streaming;
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::{Channel, Endpoint, Uri};
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::v1::Process;
use containerd_client::types::Envelope;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::RuntimeError;
use crate::registry::Descriptor;

/// containerd's gRPC metadata key selecting the namespace of a call.
const NAMESPACE_HEADER: &str = "containerd-namespace";

pub(crate) struct Client {
    socket: PathBuf,
    namespace: MetadataValue<containerd_client::tonic::metadata::Ascii>,
    call_timeout: Duration,
    connect_timeout: Duration,
    channel: RwLock<Channel>,
}

impl Client {
    /// Builds the client without touching the socket: the first call connects. Needs a tokio
    /// runtime (the channel's worker task starts here).
    pub(crate) fn new(
        socket: &Path,
        namespace: &str,
        call_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, RuntimeError> {
        let namespace = namespace
            .parse()
            .map_err(|_| RuntimeError::InvalidNamespace {
                namespace: namespace.to_string(),
            })?;
        Ok(Client {
            channel: RwLock::new(lazy_channel(socket, connect_timeout)),
            socket: socket.to_path_buf(),
            namespace,
            call_timeout,
            connect_timeout,
        })
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    fn channel(&self) -> Channel {
        match self.channel.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A fresh channel after a transport failure. tonic's channel reconnects by itself, but
    /// a new one costs nothing and cannot stay wedged on a connection containerd dropped.
    fn reset(&self) {
        let fresh = lazy_channel(&self.socket, self.connect_timeout);
        match self.channel.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace.clone());
        // containerd sees the deadline too and gives up on its side.
        r.set_timeout(self.call_timeout);
        r
    }

    /// Runs one idempotent call under the call deadline; a transport failure (containerd
    /// restarting, socket not there yet) resets the channel and the call is tried once more.
    async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, RuntimeError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut retried = false;
        loop {
            let r = tokio::time::timeout(self.call_timeout, f(self.channel())).await;
            match r {
                Err(_) => {
                    return Err(RuntimeError::Timeout {
                        what,
                        after: self.call_timeout,
                    })
                }
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(status)) if is_transport(&status) => {
                    self.reset();
                    if retried {
                        return Err(self.unavailable(&status));
                    }
                    tracing::debug!(what, error = %status.message(), "containerd call failed on the transport; reconnecting");
                    retried = true;
                }
                Ok(Err(status)) => return Err(rpc_error(what, status)),
            }
        }
    }

    pub(crate) fn unavailable(&self, status: &Status) -> RuntimeError {
        RuntimeError::Unavailable {
            socket: self.socket.clone(),
            message: status_text(status),
        }
    }

    pub(crate) async fn list_images(&self) -> Result<Vec<Image>, RuntimeError> {
        self.call("Images.List", |ch| async move {
            let r = ImagesClient::new(ch)
                .list(self.request(ListImagesRequest::default()))
                .await?;
            Ok(r.into_inner().images)
        })
        .await
    }

    pub(crate) async fn list_containers(&self) -> Result<Vec<Container>, RuntimeError> {
        self.call("Containers.List", |ch| async move {
            let r = ContainersClient::new(ch)
                .list(self.request(ListContainersRequest::default()))
                .await?;
            Ok(r.into_inner().containers)
        })
        .await
    }

    pub(crate) async fn list_tasks(&self) -> Result<Vec<Process>, RuntimeError> {
        self.call("Tasks.List", |ch| async move {
            let r = TasksClient::new(ch)
                .list(self.request(ListTasksRequest::default()))
                .await?;
            Ok(r.into_inner().tasks)
        })
        .await
    }

    /// The record of that name, or None.
    pub(crate) async fn get_image(&self, name: &str) -> Result<Option<Image>, RuntimeError> {
        let r = self
            .call("Images.Get", |ch| async move {
                let req = GetImageRequest {
                    name: name.to_string(),
                };
                match ImagesClient::new(ch).get(self.request(req)).await {
                    Ok(r) => Ok(r.into_inner().image),
                    Err(s) if s.code() == Code::NotFound => Ok(None),
                    Err(s) => Err(s),
                }
            })
            .await?;
        Ok(r)
    }

    /// A blob of the content store, size-capped and digest-checked; None when it is absent.
    pub(crate) async fn read_blob(
        &self,
        desc: &Descriptor,
        max: u64,
    ) -> Result<Option<Vec<u8>>, RuntimeError> {
        if desc.size > max {
            return Err(RuntimeError::Content {
                digest: desc.digest.to_string(),
                reason: format!("{} bytes, over the {max}-byte limit", desc.size),
            });
        }
        let digest = desc.digest.to_string();
        let bytes = self
            .call("Content.Read", |ch| {
                let digest = digest.clone();
                async move {
                    let req = ReadContentRequest {
                        digest,
                        offset: 0,
                        size: 0,
                    };
                    let mut stream = match ContentClient::new(ch).read(self.request(req)).await {
                        Ok(r) => r.into_inner(),
                        Err(s) if s.code() == Code::NotFound => return Ok(None),
                        Err(s) => return Err(s),
                    };
                    let mut out = Vec::new();
                    loop {
                        match stream.message().await {
                            Ok(Some(chunk)) => {
                                if out.len() as u64 + chunk.data.len() as u64 > max {
                                    return Ok(Some(Err(out.len() + chunk.data.len())));
                                }
                                out.extend_from_slice(&chunk.data);
                            }
                            Ok(None) => return Ok(Some(Ok(out))),
                            Err(s) if s.code() == Code::NotFound => return Ok(None),
                            Err(s) => return Err(s),
                        }
                    }
                }
            })
            .await?;
        let bytes = match bytes {
            None => return Ok(None),
            Some(Err(read)) => {
                return Err(RuntimeError::Content {
                    digest: desc.digest.to_string(),
                    reason: format!("over the {max}-byte limit ({read} bytes read)"),
                })
            }
            Some(Ok(b)) => b,
        };
        if desc.digest.recompute(&bytes) != desc.digest {
            return Err(RuntimeError::Content {
                digest: desc.digest.to_string(),
                reason: "the content store returned bytes of another digest".to_string(),
            });
        }
        Ok(Some(bytes))
    }

    /// Starts an event subscription. The returned future resolves when containerd sends its
    /// response headers, which it does with the first event only: callers must not wait on it
    /// before doing anything else.
    pub(crate) fn subscribe(
        &self,
        filters: Vec<String>,
    ) -> impl Future<Output = Result<Streaming<Envelope>, RuntimeError>> + Send + 'static {
        let channel = self.channel();
        let socket = self.socket.clone();
        // No deadline: the stream lives as long as the connection.
        let req = Request::new(SubscribeRequest { filters });
        async move {
            match EventsClient::new(channel).subscribe(req).await {
                Ok(r) => Ok(r.into_inner()),
                Err(s) if is_transport(&s) => Err(RuntimeError::Unavailable {
                    socket,
                    message: status_text(&s),
                }),
                Err(s) => Err(rpc_error("Events.Subscribe", s)),
            }
        }
    }

    /// Call after a broken event stream: the next calls get a new connection.
    pub(crate) fn connection_lost(&self) {
        self.reset();
    }
}

fn lazy_channel(socket: &Path, connect_timeout: Duration) -> Channel {
    let path = socket.to_path_buf();
    // The URI is required by the API and ignored by the connector.
    Endpoint::from_static("http://containerd.invalid")
        .connect_timeout(connect_timeout)
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
}

/// Whether the call failed below gRPC: no socket, refused, connection dropped mid-call.
pub(crate) fn is_transport(s: &Status) -> bool {
    match s.code() {
        Code::Unavailable => true,
        // hyper's "connection closed before message completed" and the like surface as
        // Unknown with a transport source, not as a status containerd sent.
        Code::Unknown => {
            std::error::Error::source(s).is_some() || s.message().contains("transport error")
        }
        _ => false,
    }
}

fn status_text(s: &Status) -> String {
    let mut text = s.message().to_string();
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        let msg = e.to_string();
        if !text.contains(&msg) {
            text.push_str(": ");
            text.push_str(&msg);
        }
        source = e.source();
    }
    text
}

fn rpc_error(what: &'static str, s: Status) -> RuntimeError {
    RuntimeError::Rpc {
        what,
        code: s.code(),
        message: status_text(&s),
    }
}
