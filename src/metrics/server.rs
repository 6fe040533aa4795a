//! The HTTP endpoint: GET /metrics (OpenMetrics text) and GET /healthz (200 or 503 with the reason).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::slots::Slots;
use super::{Metrics, MetricsError};
use crate::nri::Status;

pub const METRICS_PATH: &str = "/metrics";
pub const HEALTH_PATH: &str = "/healthz";
/// What Prometheus expects for the format `prometheus-client` writes.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Scrapers and probes are few (Prometheus, the kubelet); past this many open connections a
/// new one closes the oldest (see `slots`), so a client holding connections can neither use up
/// the plugin nor keep the probe out.
const MAX_CONNECTIONS: usize = 32;
/// A client that has not sent its request headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection lives longer, keep-alive or not: scrapers reconnect at no cost.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What /healthz answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// 200: the plugin is connected to the runtime and knows the node's features.
    Ready,
    /// 503, with the reason as the body.
    NotReady(String),
}

impl Health {
    /// The plugin's health from its NRI status and whether the node's features are known:
    /// ready only when the runtime sends it events and it can evaluate specs.
    pub fn of_plugin(status: &Status, features_discovered: bool) -> Health {
        if !status.is_ready() {
            let mut reason = format!("not connected to the runtime (phase {:?})", status.phase);
            if let Some(e) = &status.last_error {
                reason.push_str(": ");
                reason.push_str(e);
            }
            return Health::NotReady(reason);
        }
        if !features_discovered {
            return Health::NotReady("the node's features are not discovered yet".into());
        }
        Health::Ready
    }
}

/// `metrics.listen` as a socket address: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`, or a
/// bare `PORT` / `:PORT`, which means loopback: the endpoint is never exposed by accident.
pub fn parse_listen(listen: &str) -> Result<SocketAddr, MetricsError> {
    let text = listen.trim();
    let invalid = |reason: String| MetricsError::InvalidListen {
        listen: listen.to_string(),
        reason,
    };
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port_text = match text.rsplit_once(':') {
        Some(("" | "localhost", port)) => port,
        Some((host, _)) => return Err(invalid(format!("{host:?} is not an IP address"))),
        None => text,
    };
    let port = port_text
        .parse::<u16>()
        .map_err(|_| invalid(format!("{port_text:?} is not a port number")))?;
    Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

/// Binds `listen` and serves /metrics and /healthz until `shutdown` completes.
/// `health` is asked at every /healthz request.
pub async fn serve<H, F>(
    listen: &str,
    metrics: Metrics,
    health: H,
    shutdown: F,
) -> Result<(), MetricsError>
where
    H: Fn() -> Health + Send + Sync + 'static,
    F: Future<Output = ()> + Send,
{
    Server::bind(listen)
        .await?
        .run(metrics, health, shutdown)
        .await;
    Ok(())
}

/// A bound endpoint, not yet serving: binding first lets a caller report a bad or busy
/// address at start-up, and learn the port when it asked for port 0.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local: SocketAddr,
}

impl Server {
    pub async fn bind(listen: &str) -> Result<Server, MetricsError> {
        let addr = parse_listen(listen)?;
        let bind_error = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        Ok(Server { listener, local })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` completes; then stops accepting and drops open connections
    /// (a scrape in flight is cut: nothing here needs finishing).
    pub async fn run<H, F>(self, metrics: Metrics, health: H, shutdown: F)
    where
        H: Fn() -> Health + Send + Sync + 'static,
        F: Future<Output = ()> + Send,
    {
        info!(listen = %self.local, "metrics: serving {METRICS_PATH} and {HEALTH_PATH}");
        let health = Arc::new(health);
        let slots = Slots::new(MAX_CONNECTIONS);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let (slot, shed) = slots.take();
            if shed > 0 {
                debug!(%peer, shed, "metrics: too many connections, closed the oldest");
            }
            let metrics = metrics.clone();
            let health = health.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = respond(&req, &metrics, health.as_ref());
                    async move { Ok::<_, Infallible>(response) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let conn = http.serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    () = slot.closed.cancelled() => {
                        debug!(%peer, "metrics: connection closed for a newer one");
                    }
                    done = tokio::time::timeout(CONNECTION_LIFETIME, conn) => match done {
                        Ok(Err(e)) => debug!(%peer, error = %e, "metrics: connection error"),
                        Err(_) => debug!(%peer, "metrics: connection closed after its lifetime"),
                        Ok(Ok(())) => {}
                    },
                }
                drop(slot);
            });
        }
        connections.shutdown().await;
        info!(listen = %self.local, "metrics: stopped");
    }
}

fn respond<H: Fn() -> Health>(
    req: &Request<Incoming>,
    metrics: &Metrics,
    health: &H,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != METRICS_PATH && path != HEALTH_PATH {
        return text(StatusCode::NOT_FOUND, format!("not found: {path}\n"));
    }
    if req.method() != Method::GET {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} not allowed: GET only\n", req.method()),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    if path == METRICS_PATH {
        let mut r = Response::new(Full::new(Bytes::from(metrics.encode())));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
        return r;
    }
    match health() {
        Health::Ready => text(StatusCode::OK, "ok\n".into()),
        Health::NotReady(reason) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
