//! Tests of the metrics: events recorded, scraped over HTTP from an ephemeral port, parsed back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::*;
use crate::nri::{Phase, Status};
use crate::registry::media::ArtifactKind;

/// One HTTP/1.1 exchange on a fresh connection: (status, headers lower-cased, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> (u16, BTreeMap<String, String>, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes within 10 s")
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// A parsed sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of an OpenMetrics text exposition (comments skipped). Label
/// values here never contain `,` or `"` escapes, so a plain split is enough.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics ends with # EOF: {text}"
    );
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    let labels = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once('=').expect("label=value");
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

/// The value of the sample with this name and exactly these labels, if present.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// The value of a histogram bucket: the sample with these labels whose `le` bound is `le`
/// (compared as a number: the text may be `0.00001` or `1e-5`).
fn bucket(samples: &[Sample], name: &str, labels: &[(&str, &str)], le: f64) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            let bound = match s.labels.get("le").map(String::as_str) {
                Some("+Inf") => f64::INFINITY,
                Some(t) => t.parse().unwrap_or(f64::NAN),
                None => f64::NAN,
            };
            s.name == name
                && bound == le
                && s.labels.len() == labels.len() + 1
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(metrics: Metrics, health: impl Fn() -> Health + Send + Sync + 'static) -> Running {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(metrics, health, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

impl Running {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the server stops when told")
            .unwrap();
    }
}

fn checked(outcome: Outcome) -> Verdict {
    Verdict {
        digest: Some("sha256:abc".into()),
        ..Verdict::new(outcome)
    }
}

fn allow() -> Decision {
    Decision {
        deny: None,
        annotations: Vec::new(),
        warn: false,
    }
}

fn deny() -> Decision {
    Decision {
        deny: Some("image-compat: no".into()),
        annotations: Vec::new(),
        warn: false,
    }
}

#[tokio::test]
async fn recorded_events_are_scraped_with_their_labels() {
    let metrics = Metrics::new();
    let running = start(metrics.clone(), || Health::Ready).await;

    let incompatible = Verdict {
        kinds: vec![ArtifactKind::OciCompat],
        ..checked(Outcome::Incompatible {
            reason: "rule failed".into(),
        })
    };
    let compatible = Verdict {
        kinds: vec![ArtifactKind::Nfd, ArtifactKind::OciCompat],
        ..checked(Outcome::Compatible {
            detail: "best set 0".into(),
        })
    };
    metrics.record_checked(&incompatible, &deny(), Duration::from_micros(20));
    metrics.record_checked(&incompatible, &deny(), Duration::from_micros(30));
    metrics.record_checked(&compatible, &allow(), Duration::from_millis(3));
    metrics.record_checked(
        &checked(Outcome::RegistryError {
            error: "connection refused".into(),
            kind: None,
        }),
        &allow(),
        Duration::from_millis(700),
    );
    metrics.record_checked(
        &checked(Outcome::DeadlineExceeded {
            waited: Duration::from_secs(1),
        }),
        &allow(),
        Duration::from_secs(1),
    );
    metrics.record_exempt(Duration::from_micros(5));
    metrics.record_cache(true);
    metrics.record_cache(true);
    metrics.record_cache(false);
    metrics.record_fetch(FetchResult::Found, Duration::from_millis(40));
    metrics.record_fetch(FetchResult::Error, Duration::from_secs(3));
    metrics.record_registry_error(ErrorKind::Transport);
    metrics.record_registry_error(ErrorKind::Transport);
    metrics.record_registry_error(ErrorKind::Auth);
    metrics.record_discovery(Duration::from_micros(2660));
    metrics.set_mode(Mode::Audit);

    let (status, headers, body) = http(running.addr, "GET", METRICS_PATH).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], METRICS_CONTENT_TYPE);
    let s = parse_exposition(&body);

    let decisions = |verdict, action, case, kind| {
        value(
            &s,
            "image_compat_decisions_total",
            &[
                ("verdict", verdict),
                ("action", action),
                ("case", case),
                ("artifact_kind", kind),
            ],
        )
    };
    assert_eq!(
        decisions("incompatible", "deny", "incompatible", "oci-compat"),
        Some(2.0)
    );
    assert_eq!(
        decisions("compatible", "allow", "compatible", "nfd+oci-compat"),
        Some(1.0)
    );
    assert_eq!(
        decisions("unknown", "allow", "registry-error", "none"),
        Some(1.0)
    );
    assert_eq!(
        decisions("unknown", "allow", "deadline-exceeded", "none"),
        Some(1.0)
    );
    assert_eq!(decisions("unknown", "exempt", "exempt", "none"), Some(1.0));
    assert_eq!(decisions("compatible", "deny", "compatible", "nfd"), None);

    // Histogram buckets are cumulative: 5 us and 20 us and 30 us fall under 50 us.
    let decision_bucket =
        |le: f64| bucket(&s, "image_compat_decision_duration_seconds_bucket", &[], le);
    assert_eq!(decision_bucket(0.000_01), Some(1.0), "{body}");
    assert_eq!(decision_bucket(0.000_025), Some(2.0));
    assert_eq!(decision_bucket(0.000_05), Some(3.0));
    assert_eq!(decision_bucket(0.005), Some(4.0));
    assert_eq!(decision_bucket(0.5), Some(4.0));
    assert_eq!(decision_bucket(1.0), Some(6.0));
    assert_eq!(decision_bucket(f64::INFINITY), Some(6.0));
    assert_eq!(
        value(&s, "image_compat_decision_duration_seconds_count", &[]),
        Some(6.0)
    );
    let sum = value(&s, "image_compat_decision_duration_seconds_sum", &[]).unwrap();
    assert!((sum - 1.703_055).abs() < 1e-9, "{sum}");

    let cache = |r| value(&s, "image_compat_cache_lookups_total", &[("result", r)]);
    assert_eq!(cache("hit"), Some(2.0));
    assert_eq!(cache("miss"), Some(1.0));

    let fetch_count = |r| {
        value(
            &s,
            "image_compat_artifact_fetch_duration_seconds_count",
            &[("result", r)],
        )
    };
    assert_eq!(fetch_count("found"), Some(1.0));
    assert_eq!(fetch_count("error"), Some(1.0));
    assert_eq!(fetch_count("none"), None);
    let fetch_bucket = |r, le| {
        bucket(
            &s,
            "image_compat_artifact_fetch_duration_seconds_bucket",
            &[("result", r)],
            le,
        )
    };
    assert_eq!(fetch_bucket("error", 2.5), Some(0.0));
    assert_eq!(fetch_bucket("error", 10.0), Some(1.0));
    assert_eq!(fetch_bucket("found", 0.025), Some(0.0));
    assert_eq!(fetch_bucket("found", 0.05), Some(1.0));

    let errors = |k| value(&s, "image_compat_registry_errors_total", &[("kind", k)]);
    assert_eq!(errors("transport"), Some(2.0));
    assert_eq!(errors("auth"), Some(1.0));

    assert_eq!(
        value(&s, "image_compat_discovery_duration_seconds", &[]),
        Some(0.00266)
    );
    assert_eq!(
        value(&s, "image_compat_discoveries_total", &[("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "image_compat_mode", &[("mode", "audit")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "image_compat_mode", &[("mode", "enforce")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "image_compat_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // Every family has its HELP and TYPE, as Prometheus expects.
    assert!(
        body.contains("# TYPE image_compat_decisions counter\n"),
        "{body}"
    );
    assert!(body.contains("# TYPE image_compat_decision_duration_seconds histogram\n"));
    running.stop().await;
}

#[tokio::test]
async fn nri_status_sets_the_gauge_and_moves_counters_forward_only() {
    let metrics = Metrics::new();
    let mut status = Status {
        phase: Phase::Synchronized,
        reconnects: 3,
        requests: 40,
        ..Status::default()
    };
    metrics.set_nri_status(&status);
    let s = parse_exposition(&metrics.encode());
    assert_eq!(value(&s, "image_compat_nri_connected", &[]), Some(1.0));
    assert_eq!(
        value(&s, "image_compat_nri_reconnects_total", &[]),
        Some(3.0)
    );
    assert_eq!(
        value(&s, "image_compat_nri_requests_total", &[]),
        Some(40.0)
    );

    status.phase = Phase::Connecting;
    status.reconnects = 4;
    metrics.set_nri_status(&status);
    // A fresh plugin instance starts its totals again: the counters must not go down.
    status.reconnects = 1;
    status.requests = 2;
    metrics.set_nri_status(&status);
    let s = parse_exposition(&metrics.encode());
    assert_eq!(value(&s, "image_compat_nri_connected", &[]), Some(0.0));
    assert_eq!(
        value(&s, "image_compat_nri_reconnects_total", &[]),
        Some(4.0)
    );
    assert_eq!(
        value(&s, "image_compat_nri_requests_total", &[]),
        Some(40.0)
    );
}

#[tokio::test]
async fn healthz_follows_the_health_function() {
    let ready = Arc::new(AtomicBool::new(false));
    let r = ready.clone();
    let running = start(Metrics::new(), move || {
        if r.load(Ordering::SeqCst) {
            Health::Ready
        } else {
            Health::NotReady("not connected to the runtime (phase Connecting)".into())
        }
    })
    .await;
    let (status, _, body) = http(running.addr, "GET", HEALTH_PATH).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "not ready: not connected to the runtime (phase Connecting)\n"
    );
    ready.store(true, Ordering::SeqCst);
    let (status, _, body) = http(running.addr, "GET", "/healthz?verbose=1").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    running.stop().await;
}

#[tokio::test]
async fn only_get_on_the_two_paths() {
    let running = start(Metrics::new(), || Health::Ready).await;
    let (status, _, _) = http(running.addr, "GET", "/").await;
    assert_eq!(status, 404);
    let (status, _, _) = http(running.addr, "GET", "/metrics/extra").await;
    assert_eq!(status, 404);
    let (status, headers, _) = http(running.addr, "POST", METRICS_PATH).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET");
    let (status, _, _) = http(running.addr, "DELETE", HEALTH_PATH).await;
    assert_eq!(status, 405);
    // Garbage instead of HTTP closes that connection; the server keeps serving.
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    s.write_all(b"\x00\x01 not http\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
    let (status, _, _) = http(running.addr, "GET", HEALTH_PATH).await;
    assert_eq!(status, 200);
    running.stop().await;
}

#[tokio::test]
async fn a_busy_address_is_a_clear_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Server::bind(&addr.to_string())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&addr.to_string())
            && err.contains("metrics.listen")
            && err.contains("/metrics"),
        "{err}"
    );
    let err = serve(&addr.to_string(), Metrics::new(), || Health::Ready, async {
    })
    .await
    .unwrap_err();
    assert!(matches!(err, MetricsError::Bind { .. }), "{err}");
}

#[test]
fn listen_addresses() {
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(parse_listen("127.0.0.1:9464").unwrap(), loopback(9464));
    assert_eq!(parse_listen("9464").unwrap(), loopback(9464));
    assert_eq!(parse_listen(":9464").unwrap(), loopback(9464));
    assert_eq!(parse_listen("localhost:9464").unwrap(), loopback(9464));
    assert_eq!(
        parse_listen("0.0.0.0:9464").unwrap(),
        SocketAddr::from(([0, 0, 0, 0], 9464))
    );
    assert_eq!(
        parse_listen("[::1]:9464").unwrap(),
        "[::1]:9464".parse::<SocketAddr>().unwrap()
    );
    for bad in [
        "",
        "metrics.example:9464",
        "127.0.0.1:http",
        "70000",
        "127.0.0.1",
    ] {
        let err = parse_listen(bad).unwrap_err().to_string();
        assert!(
            err.contains("metrics.listen") && err.contains(bad),
            "{bad}: {err}"
        );
    }
}

#[test]
fn health_of_the_plugin() {
    let mut status = Status {
        phase: Phase::Connecting,
        last_error: Some("connect /var/run/nri/nri.sock: No such file or directory".into()),
        ..Status::default()
    };
    let Health::NotReady(reason) = Health::of_plugin(&status, true) else {
        panic!("not ready while connecting");
    };
    assert!(
        reason.contains("Connecting") && reason.contains("/var/run/nri/nri.sock"),
        "{reason}"
    );
    status.phase = Phase::Synchronized;
    assert!(matches!(
        Health::of_plugin(&status, false),
        Health::NotReady(r) if r.contains("features")
    ));
    assert_eq!(Health::of_plugin(&status, true), Health::Ready);
}

/// A local process holding more connections than the endpoint keeps (idle ones, and ones that
/// sent half a request) does not keep /healthz from answering, again and again.
#[tokio::test]
async fn held_connections_do_not_starve_healthz() {
    let running = start(Metrics::new(), || Health::Ready).await;
    let mut held = Vec::new();
    for i in 0..80 {
        let mut s = TcpStream::connect(running.addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: te")
                .await
                .unwrap();
        }
        held.push(s);
    }
    for _ in 0..3 {
        let (status, _, body) = tokio::time::timeout(
            Duration::from_secs(2),
            http(running.addr, "GET", HEALTH_PATH),
        )
        .await
        .expect("/healthz answers within 2 s while connections are held");
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        // The holder takes its connections back between probes.
        for _ in 0..40 {
            held.push(TcpStream::connect(running.addr).await.unwrap());
        }
    }
    drop(held);
    running.stop().await;
}
