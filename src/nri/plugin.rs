//! NRI plugin lifecycle: connect (external socket or pre-connected fd), register, serve, reconnect.

use std::collections::BTreeSet;
use std::future::Future;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::net::UnixStream;
use tracing::{debug, info, warn};
use ttrpc::r#async::transport::{Listener, Socket};
use ttrpc::r#async::{Client, Server};

use super::api;
use super::handler::Handler;
use super::mux::{Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
use super::service::PluginService;
use super::status::{Phase, StatusCell, StatusHandle};
use super::types::NRI_API_VERSION;
use super::NriError;

/// Where external plugins find the runtime by default.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/nri/nri.sock";
/// Set by the runtime for a plugin it launches: the number of the inherited, connected socket.
pub const ENV_PLUGIN_SOCKET: &str = "NRI_PLUGIN_SOCKET";
/// Set by the runtime for a plugin it launches: the name part of the plugin's file name.
pub const ENV_PLUGIN_NAME: &str = "NRI_PLUGIN_NAME";
/// Set by the runtime for a plugin it launches: the index part of the plugin's file name.
pub const ENV_PLUGIN_IDX: &str = "NRI_PLUGIN_IDX";

/// How the plugin reaches the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Dial the runtime's NRI socket; reconnect with backoff whenever the connection is lost.
    External { socket: PathBuf },
    /// Use the connected socket the runtime passed as an inherited fd; exit when it closes
    /// (the runtime launches the plugin again when it needs it). The plugin takes the fd over
    /// when it runs; a process adopts each fd number at most once.
    Preconnected { fd: RawFd },
}

/// Settings for [`Plugin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOptions {
    /// Plugin name: letters, digits and `_ . + -`.
    pub name: String,
    /// Two digits; the runtime calls plugins in ascending index order.
    pub idx: String,
    pub transport: Transport,
    /// How long to wait for the runtime to answer RegisterPlugin.
    pub registration_timeout: Duration,
    /// First delay before reconnecting (external mode); doubles on each failure.
    pub reconnect_initial: Duration,
    /// Longest delay between reconnection attempts.
    pub reconnect_max: Duration,
}

impl PluginOptions {
    /// An external plugin on the default socket.
    pub fn external(name: impl Into<String>, idx: impl Into<String>) -> PluginOptions {
        PluginOptions {
            name: name.into(),
            idx: idx.into(),
            transport: Transport::External {
                socket: PathBuf::from(DEFAULT_SOCKET_PATH),
            },
            registration_timeout: Duration::from_secs(5),
            reconnect_initial: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
        }
    }

    /// Pre-launched when the runtime set [`ENV_PLUGIN_SOCKET`] (name and index then come from
    /// the runtime's environment too), else external with the given name and index.
    pub fn from_env(
        name: impl Into<String>,
        idx: impl Into<String>,
    ) -> Result<PluginOptions, NriError> {
        Self::from_lookup(name, idx, |key| std::env::var(key).ok())
    }

    /// [`PluginOptions::from_env`] with the environment given as a lookup function.
    pub fn from_lookup(
        name: impl Into<String>,
        idx: impl Into<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<PluginOptions, NriError> {
        let mut opts = PluginOptions::external(name, idx);
        let Some(fd) = lookup(ENV_PLUGIN_SOCKET).filter(|v| !v.is_empty()) else {
            return Ok(opts);
        };
        let fd = fd
            .trim()
            .parse::<RawFd>()
            .ok()
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| {
                NriError::BadSocketFd(fd.clone(), "not a file descriptor number".into())
            })?;
        opts.transport = Transport::Preconnected { fd };
        if let Some(name) = lookup(ENV_PLUGIN_NAME).filter(|v| !v.is_empty()) {
            opts.name = name;
        }
        if let Some(idx) = lookup(ENV_PLUGIN_IDX).filter(|v| !v.is_empty()) {
            opts.idx = idx;
        }
        Ok(opts)
    }

    /// Checks name and index as the runtime will.
    pub fn validate(&self) -> Result<(), NriError> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
        if !name_ok {
            return Err(NriError::InvalidName(self.name.clone()));
        }
        if self.idx.len() != 2 || !self.idx.chars().all(|c| c.is_ascii_digit()) {
            return Err(NriError::InvalidIndex(self.idx.clone()));
        }
        Ok(())
    }
}

/// How one connection ended.
enum SessionEnd {
    /// The caller asked the plugin to stop.
    Shutdown,
    /// The connection was lost or registration failed.
    Closed { configured: bool, reason: String },
}

/// An NRI plugin: connects to the runtime and serves it with a [`Handler`].
pub struct Plugin {
    opts: PluginOptions,
    handler: Arc<dyn Handler>,
    status: Arc<StatusCell>,
}

/// Runs a plugin until the runtime closes a pre-connected socket (external plugins run forever).
pub async fn run(opts: PluginOptions, handler: Arc<dyn Handler>) -> Result<(), NriError> {
    Plugin::new(opts, handler)?.run().await
}

impl Plugin {
    pub fn new(opts: PluginOptions, handler: Arc<dyn Handler>) -> Result<Plugin, NriError> {
        opts.validate()?;
        Ok(Plugin {
            opts,
            handler,
            status: StatusCell::new(),
        })
    }

    /// A reader of the connection state, usable while [`Plugin::run`] runs.
    pub fn status(&self) -> StatusHandle {
        self.status.handle()
    }

    /// Runs until the runtime closes a pre-connected socket; an external plugin runs forever.
    pub async fn run(self) -> Result<(), NriError> {
        self.run_until(std::future::pending()).await
    }

    /// Runs until `shutdown` resolves (or as [`Plugin::run`]); then calls the handler's
    /// `shutdown` once.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NriError> {
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown: Pin<&mut (dyn Future<Output = ()> + Send)> = shutdown;
        let result = match self.opts.transport.clone() {
            Transport::External { socket } => self.run_external(socket, &mut shutdown).await,
            Transport::Preconnected { fd } => match adopt_socket(fd) {
                Ok(stream) => {
                    info!(fd, "using the pre-connected NRI socket");
                    self.run_single(stream, &mut shutdown).await
                }
                Err(err) => Err(err),
            },
        };
        self.finish().await;
        result
    }

    /// Serves the runtime on an already connected socket, ignoring [`PluginOptions::transport`]:
    /// pre-connected semantics (one connection, return when it closes). For runtimes that hand
    /// over the socket some other way, and for tests.
    pub async fn run_connected(
        self,
        stream: std::os::unix::net::UnixStream,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NriError> {
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown: Pin<&mut (dyn Future<Output = ()> + Send)> = shutdown;
        let result = match stream
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(stream))
        {
            Ok(stream) => self.run_single(stream, &mut shutdown).await,
            Err(err) => Err(NriError::Socket(err.to_string())),
        };
        self.finish().await;
        result
    }

    async fn finish(&self) {
        self.handler.shutdown().await;
        self.status.update(|s| s.phase = Phase::Stopped);
    }

    async fn run_external(
        &self,
        socket: PathBuf,
        shutdown: &mut Pin<&mut (dyn Future<Output = ()> + Send)>,
    ) -> Result<(), NriError> {
        let mut delay = self.opts.reconnect_initial;
        loop {
            self.status.update(|s| s.phase = Phase::Connecting);
            let connected = tokio::select! {
                connected = UnixStream::connect(&socket) => connected,
                () = shutdown.as_mut() => return Ok(()),
            };
            match connected {
                Err(err) => {
                    warn!(socket = %socket.display(), error = %err, retry_in_ms = delay.as_millis() as u64,
                        "cannot connect to the NRI socket");
                    self.status.update(|s| {
                        s.last_error = Some(format!("connect {}: {err}", socket.display()))
                    });
                }
                Ok(stream) => {
                    info!(socket = %socket.display(), "connected to the NRI socket");
                    match self.session(stream, shutdown).await {
                        SessionEnd::Shutdown => return Ok(()),
                        SessionEnd::Closed { configured, reason } => {
                            warn!(reason = %reason, retry_in_ms = delay.as_millis() as u64,
                                "NRI connection lost; reconnecting");
                            self.status.update(|s| s.last_error = Some(reason));
                            // A connection that got as far as Configure was healthy: the runtime
                            // restarted or dropped us, so come back quickly.
                            if configured {
                                delay = self.opts.reconnect_initial;
                            }
                        }
                    }
                }
            }
            self.status.update(|s| s.phase = Phase::Disconnected);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.as_mut() => return Ok(()),
            }
            delay = (delay * 2).min(self.opts.reconnect_max);
        }
    }

    async fn run_single(
        &self,
        stream: UnixStream,
        shutdown: &mut Pin<&mut (dyn Future<Output = ()> + Send)>,
    ) -> Result<(), NriError> {
        match self.session(stream, shutdown).await {
            SessionEnd::Shutdown => Ok(()),
            SessionEnd::Closed {
                configured: true,
                reason,
            } => {
                info!(reason = %reason, "the runtime closed the connection; exiting");
                Ok(())
            }
            SessionEnd::Closed {
                configured: false,
                reason,
            } => {
                self.status.update(|s| s.last_error = Some(reason.clone()));
                Err(NriError::NotConfigured(reason))
            }
        }
    }

    /// One connection: multiplex, serve the plugin API, register, then wait for the end.
    async fn session(
        &self,
        stream: UnixStream,
        shutdown: &mut Pin<&mut (dyn Future<Output = ()> + Send)>,
    ) -> SessionEnd {
        // The runtime sends nothing before we register, but opening before reading is free.
        let mux = Mux::blocked(stream);
        let conns = mux
            .open(PLUGIN_SERVICE_CONN)
            .and_then(|p| Ok((p, mux.open(RUNTIME_SERVICE_CONN)?)));
        let (plugin_conn, runtime_conn) = match conns {
            Ok(conns) => conns,
            Err(err) => {
                return SessionEnd::Closed {
                    configured: false,
                    reason: err.to_string(),
                }
            }
        };
        mux.unblock();
        self.status.update(|s| {
            s.phase = Phase::Connected;
            s.connections += 1;
            if s.connections > 1 {
                s.reconnects += 1;
            }
        });

        let service = Arc::new(PluginService::new(
            Arc::clone(&self.handler),
            Arc::clone(&self.status),
        ));
        // ttrpc's server takes a listener; ours yields the one connection, then never ends,
        // because the server's shutdown expects its accept loop to still be running.
        let incoming =
            stream::iter([Ok::<_, std::io::Error>(plugin_conn)]).chain(stream::pending());
        let mut server = Server::new()
            .register_service(api::create_plugin(
                Arc::clone(&service) as Arc<dyn api::Plugin + Send + Sync>
            ))
            .add_listener(Listener::new(incoming));
        if let Err(err) = server.start().await {
            mux.close();
            return SessionEnd::Closed {
                configured: false,
                reason: format!("ttrpc server: {err}"),
            };
        }
        let runtime = api::RuntimeClient::new(Client::new(Socket::new(runtime_conn)));

        let closed = mux.closed();
        tokio::pin!(closed);
        let register = api::RegisterPluginRequest {
            plugin_name: self.opts.name.clone(),
            plugin_idx: self.opts.idx.clone(),
            // The runtime only logs it ("registered ... with NRI version").
            nri_version: NRI_API_VERSION.to_string(),
        };
        let ctx = ttrpc::context::with_duration(self.opts.registration_timeout);
        let end = tokio::select! {
            registered = runtime.register_plugin(ctx, &register) => match registered {
                Ok(_) => {
                    info!(name = %self.opts.name, idx = %self.opts.idx, nri_version = NRI_API_VERSION, "registered with the runtime");
                    self.status.update(|s| {
                        if s.phase == Phase::Connected {
                            s.phase = Phase::Registered;
                        }
                        s.registrations += 1;
                    });
                    tokio::select! {
                        reason = &mut closed => SessionEnd::Closed {
                            configured: service.configured(),
                            reason: reason.map_or_else(|| "the runtime closed the connection".to_string(), |e| e.to_string()),
                        },
                        () = shutdown.as_mut() => SessionEnd::Shutdown,
                    }
                }
                Err(err) => SessionEnd::Closed { configured: false, reason: format!("RegisterPlugin failed: {err}") },
            },
            reason = &mut closed => SessionEnd::Closed {
                configured: false,
                reason: reason.map_or_else(|| "the runtime closed the connection before registration".to_string(), |e| e.to_string()),
            },
            () = shutdown.as_mut() => SessionEnd::Shutdown,
        };

        mux.close();
        drop(runtime);
        // Bounded: in-flight handlers are cancelled by the server, but never hang teardown.
        if tokio::time::timeout(Duration::from_secs(2), server.shutdown())
            .await
            .is_err()
        {
            debug!("ttrpc server shutdown timed out");
        }
        end
    }
}

/// Takes ownership of the socket the runtime passed (`NRI_PLUGIN_SOCKET`), once per process.
fn adopt_socket(fd: RawFd) -> Result<UnixStream, NriError> {
    static ADOPTED: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());
    let bad = |why: String| NriError::BadSocketFd(fd.to_string(), why);
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map_err(|e| bad(format!("not open: {e}")))?;
    if !target.to_string_lossy().starts_with("socket:") {
        return Err(bad(format!("not a socket ({})", target.display())));
    }
    if !ADOPTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(fd)
    {
        return Err(bad("already in use by this process".into()));
    }
    // SAFETY: the descriptor is open and a socket (checked above), the runtime handed it to
    // this process for the plugin alone, and the set above lets us take it only once, so no
    // other owner closes it behind our back.
    let inherited = std::os::unix::net::UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // The inherited descriptor lacks close-on-exec; a duplicate gets it, so programs we may
    // start later do not hold the runtime's connection open.
    let stream = inherited
        .try_clone()
        .map_err(|e| bad(format!("dup: {e}")))?;
    drop(inherited);
    stream
        .set_nonblocking(true)
        .map_err(|e| bad(format!("non-blocking: {e}")))?;
    UnixStream::from_std(stream).map_err(|e| bad(format!("tokio: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn without_socket_env_the_plugin_is_external() {
        let opts =
            PluginOptions::from_lookup("image-compat", "10", env(&[(ENV_PLUGIN_NAME, "other")]))
                .expect("valid");
        assert_eq!(
            opts.transport,
            Transport::External {
                socket: PathBuf::from(DEFAULT_SOCKET_PATH)
            }
        );
        assert_eq!(opts.name, "image-compat");
    }

    #[test]
    fn socket_env_makes_a_preconnected_plugin_named_by_the_runtime() {
        let opts = PluginOptions::from_lookup(
            "image-compat",
            "10",
            env(&[
                (ENV_PLUGIN_SOCKET, "3"),
                (ENV_PLUGIN_NAME, "compat"),
                (ENV_PLUGIN_IDX, "05"),
            ]),
        )
        .expect("valid");
        assert_eq!(opts.transport, Transport::Preconnected { fd: 3 });
        assert_eq!((opts.name.as_str(), opts.idx.as_str()), ("compat", "05"));
    }

    #[test]
    fn a_bad_socket_env_is_an_error() {
        let err = PluginOptions::from_lookup("x", "10", env(&[(ENV_PLUGIN_SOCKET, "three")]))
            .expect_err("bad fd");
        assert!(matches!(err, NriError::BadSocketFd(..)), "{err}");
    }

    #[test]
    fn names_and_indexes_are_checked_like_the_runtime_does() {
        let mut opts = PluginOptions::external("image-compat", "10");
        assert!(opts.validate().is_ok());
        opts.idx = "1".into();
        assert!(matches!(opts.validate(), Err(NriError::InvalidIndex(_))));
        opts.idx = "1a".into();
        assert!(matches!(opts.validate(), Err(NriError::InvalidIndex(_))));
        opts.idx = "99".into();
        opts.name = "has space".into();
        assert!(matches!(opts.validate(), Err(NriError::InvalidName(_))));
        opts.name = String::new();
        assert!(matches!(opts.validate(), Err(NriError::InvalidName(_))));
    }

    #[test]
    fn adopting_something_that_is_not_a_socket_fails() {
        let file = std::fs::File::open("/proc/self/status").expect("open a file");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let err = adopt_socket(fd).expect_err("a regular file is refused");
        assert!(err.to_string().contains("not a socket"), "{err}");
        let err = adopt_socket(100_000).expect_err("a closed fd is refused");
        assert!(err.to_string().contains("not open"), "{err}");
    }
}
