//! The NRI plugin against an in-process runtime peer speaking the runtime side of the protocol.

use std::collections::BTreeMap;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support;

use support::nri_peer::*;

use async_trait::async_trait;
use image_compat::nri::api;
use image_compat::nri::{
    Adjustment, ConfigureInfo, Container, Event, EventSet, Handler, HandlerError, NriError, Phase,
    Plugin, PluginOptions, PodSandbox, Rejection, StatusHandle, Transport, Validation,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const VERDICT: &str = "test.image-compat/verdict";
const DELAY: &str = "test.image-compat/delay-ms";
const CHECKED: &str = "image-compat.test/checked";

// ---------------------------------------------------------------------------------------------
// The handler under test: rejects containers whose annotation says so.

/// What the handler's synchronize received.
type Synced = (Vec<PodSandbox>, Vec<Container>);

#[derive(Default)]
struct TestHandler {
    events: Mutex<Option<EventSet>>,
    configs: Mutex<Vec<ConfigureInfo>>,
    syncs: Mutex<Option<mpsc::UnboundedSender<Synced>>>,
    shutdowns: AtomicUsize,
    notified: Mutex<Vec<(Event, String, String)>>,
}

impl TestHandler {
    fn with_events(events: EventSet) -> Arc<TestHandler> {
        let h = TestHandler::default();
        *h.events.lock().expect("test lock") = Some(events);
        Arc::new(h)
    }

    fn sync_channel(&self) -> mpsc::UnboundedReceiver<Synced> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.syncs.lock().expect("test lock") = Some(tx);
        rx
    }

    fn configs(&self) -> Vec<ConfigureInfo> {
        self.configs.lock().expect("test lock").clone()
    }
}

fn verdict_of(annotations: &BTreeMap<String, String>) -> Option<&str> {
    annotations.get(VERDICT).map(String::as_str)
}

#[async_trait]
impl Handler for TestHandler {
    fn events(&self) -> EventSet {
        self.events
            .lock()
            .expect("test lock")
            .unwrap_or_else(|| [Event::CreateContainer].into_iter().collect())
    }

    async fn configure(&self, cfg: ConfigureInfo) -> Result<(), HandlerError> {
        let fail = cfg.config == "fail";
        self.configs.lock().expect("test lock").push(cfg);
        if fail {
            return Err(HandlerError::new("test config says fail"));
        }
        Ok(())
    }

    async fn synchronize(&self, pods: Vec<PodSandbox>, containers: Vec<Container>) {
        if let Some(tx) = self.syncs.lock().expect("test lock").as_ref() {
            let _ = tx.send((pods, containers));
        }
    }

    async fn create_container(
        &self,
        pod: &PodSandbox,
        ctr: &Container,
    ) -> Result<Adjustment, Rejection> {
        if let Some(ms) = ctr
            .annotations
            .get(DELAY)
            .and_then(|v| v.parse::<u64>().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match verdict_of(&ctr.annotations) {
            Some(reason) if reason.starts_with("reject") => Err(Rejection::new(format!(
                "image of {}/{} is not compatible with this node: {reason}",
                pod.namespace, ctr.name
            ))),
            _ => Ok(Adjustment::default().annotate(CHECKED, format!("{}/{}", pod.name, ctr.name))),
        }
    }

    async fn validate(&self, v: &Validation) -> Result<(), Rejection> {
        match verdict_of(&v.container.annotations) {
            Some(reason) if reason.starts_with("reject") => {
                Err(Rejection::new(format!("validation: {reason}")))
            }
            _ => Ok(()),
        }
    }

    async fn event(&self, event: Event, pod: Option<&PodSandbox>, ctr: Option<&Container>) {
        let name = |n: Option<String>| n.unwrap_or_else(|| "-".into());
        self.notified.lock().expect("test lock").push((
            event,
            name(pod.map(|p| p.name.clone())),
            name(ctr.map(|c| c.name.clone())),
        ));
    }

    async fn shutdown(&self) {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
    }
}

async fn wait_status(
    status: &mut StatusHandle,
    what: &str,
    pred: impl FnMut(&image_compat::nri::Status) -> bool,
) {
    timeout(WAIT, status.wait_for(pred))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", status.get()))
        .expect("plugin alive");
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_with_split_sync_concurrent_creates_and_runtime_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let handler = Arc::new(TestHandler::default());
    let mut syncs = handler.sync_channel();
    let plugin = Plugin::new(external_opts(&socket), handler.clone()).expect("valid options");
    let mut status = plugin.status();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let running = tokio::spawn(plugin.run_until(async move {
        let _ = stop_rx.await;
    }));

    // Registration and Configure.
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("plugin dials")
        .expect("accept");
    let peer = PeerConn::start(stream).await;
    assert_eq!(peer.registration.plugin_name, "image-compat");
    assert_eq!(peer.registration.plugin_idx, "42");
    wait_status(&mut status, "registration", |s| s.registrations == 1).await;
    let configured = peer
        .configure("containerd", "v2.1.9", "")
        .await
        .expect("Configure succeeds");
    // containerd 2.1 (NRI 0.8) gets only CreateContainer: nothing it does not know.
    assert_eq!(configured.events, 1 << (Event::CreateContainer as i32 - 1));
    let cfg = handler.configs().pop().expect("handler saw Configure");
    assert_eq!(cfg.runtime_name, "containerd");
    assert_eq!(cfg.request_timeout, Some(Duration::from_secs(2)));
    assert_eq!(cfg.registration_timeout, Some(Duration::from_secs(5)));

    // Synchronize split into three messages, as NRI >= 0.7 does for large states.
    let first = peer
        .sync(
            vec![pod("a"), pod("b")],
            vec![
                container("a1", &[]),
                container("a2", &[]),
                container("b1", &[]),
            ],
            true,
        )
        .await;
    assert!(first.more, "a split message is acknowledged with more=true");
    assert!(first.update.is_empty());
    let second = peer.sync(vec![pod("c")], vec![], true).await;
    assert!(second.more);
    assert!(
        timeout(Duration::from_millis(100), syncs.recv())
            .await
            .is_err(),
        "handler waits for the last part"
    );
    let last = peer
        .sync(
            vec![],
            vec![container("c1", &[]), container("c2", &[])],
            false,
        )
        .await;
    assert!(!last.more);
    let (pods, ctrs) = timeout(WAIT, syncs.recv())
        .await
        .expect("in time")
        .expect("synchronize called");
    assert_eq!(
        pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(
        ctrs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["a1", "a2", "b1", "c1", "c2"]
    );
    assert_eq!(pods[0].labels.get("app").map(String::as_str), Some("a"));
    wait_status(&mut status, "synchronized", |s| {
        s.phase == Phase::Synchronized
    })
    .await;

    // Several CreateContainer at once; a slow one must not hold up the others.
    let web = pod("web");
    let slow = {
        let (client, web) = (peer.plugin.clone(), web.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let res = create(&client, &web, container("slow", &[(DELAY, "2000")])).await;
            (res, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let mut quick = Vec::new();
    for i in 0..6 {
        let (client, web) = (peer.plugin.clone(), web.clone());
        let annotations: Vec<(&str, &str)> = if i % 3 == 0 {
            vec![(VERDICT, "reject: cpu feature avx512f missing")]
        } else {
            vec![]
        };
        let ctr = container(&format!("c{i}"), &annotations);
        quick.push(tokio::spawn(async move {
            (i, create(&client, &web, ctr).await)
        }));
    }
    for task in quick {
        let (i, res) = task.await.expect("create task");
        if i % 3 == 0 {
            let status = rpc_status(res.expect_err("rejected container fails"));
            assert_eq!(status.code, ttrpc::Code::FAILED_PRECONDITION as i32);
            assert_eq!(status.message, format!("image of default/c{i} is not compatible with this node: reject: cpu feature avx512f missing"));
        } else {
            let adjust = res
                .expect("accepted container")
                .adjust
                .expect("adjustment sent");
            assert_eq!(adjust.annotations.get(CHECKED), Some(&format!("web/c{i}")));
        }
    }
    let quick_took = started.elapsed();
    assert!(
        !slow.is_finished(),
        "quick requests waited for the slow one: {quick_took:?}"
    );
    let (slow_res, slow_took) = slow.await.expect("slow task");
    assert!(slow_res.expect("slow container accepted").adjust.is_some());
    assert!(slow_took >= Duration::from_millis(2000));

    let before = status.get().requests;
    assert!(
        before >= 11,
        "Configure + 3 Synchronize + 7 CreateContainer counted, got {before}"
    );

    // Shutdown reaches the handler.
    peer.plugin
        .shutdown(ctx(), &api::Empty {})
        .await
        .expect("Shutdown succeeds");
    assert_eq!(handler.shutdowns.load(Ordering::SeqCst), 1);

    // The runtime restarts: it drops the connection, the plugin dials again and re-registers.
    peer.mux.close();
    drop(peer);
    wait_status(&mut status, "disconnect", |s| {
        s.phase == Phase::Disconnected || s.connections == 2
    })
    .await;
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("plugin redials")
        .expect("accept");
    let peer = PeerConn::start(stream).await;
    assert_eq!(peer.registration.plugin_name, "image-compat");
    let configured = peer
        .configure("containerd", "v2.1.9", "")
        .await
        .expect("Configure again");
    assert_eq!(configured.events, 1 << 3);
    // The runtime may call Configure before the plugin has read RegisterPlugin's answer.
    wait_status(&mut status, "second registration", |s| s.registrations == 2).await;
    let s = status.get();
    assert_eq!((s.connections, s.reconnects, s.registrations), (2, 1, 2));
    assert!(s.is_ready());
    assert_eq!(
        s.runtime.as_ref().map(|r| r.version.as_str()),
        Some("v2.1.9")
    );
    assert_eq!(handler.configs().len(), 2);
    let res = peer
        .create(&web, container("after-restart", &[]))
        .await
        .expect("served after reconnect");
    assert!(res.adjust.is_some());

    // Stopping the plugin ends run_until and tells the handler.
    stop_tx.send(()).expect("plugin still running");
    timeout(WAIT, running)
        .await
        .expect("plugin stops")
        .expect("task")
        .expect("clean stop");
    assert_eq!(handler.shutdowns.load(Ordering::SeqCst), 2);
    assert_eq!(status.get().phase, Phase::Stopped);
}

#[tokio::test]
async fn validation_is_subscribed_and_answered_when_the_runtime_knows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let wanted: EventSet = [Event::CreateContainer, Event::ValidateContainerAdjustment]
        .into_iter()
        .collect();
    let handler = TestHandler::with_events(wanted);
    let plugin = Plugin::new(external_opts(&socket), handler.clone()).expect("valid options");
    let running = tokio::spawn(plugin.run());
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("dial")
        .expect("accept");
    let peer = PeerConn::start(stream).await;

    let configured = peer
        .configure("containerd", "v2.2.0", "")
        .await
        .expect("Configure");
    assert_eq!(configured.events, wanted.bits());

    let validate = |annotations: &[(&str, &str)]| api::ValidateContainerAdjustmentRequest {
        pod: Some(pod("web")),
        container: Some(container("app", annotations)),
        adjust: Some(api::ContainerAdjustment {
            annotations: [("added.by/other".to_string(), "x".to_string())].into(),
            ..Default::default()
        }),
        plugins: vec![api::PluginInstance {
            name: "image-compat".into(),
            index: "42".into(),
        }],
        ..Default::default()
    };
    let ok = peer
        .plugin
        .validate_container_adjustment(ctx(), &validate(&[]))
        .await
        .expect("validate");
    assert!(!ok.reject);
    let no = peer
        .plugin
        .validate_container_adjustment(ctx(), &validate(&[(VERDICT, "reject: no gpu")]))
        .await
        .expect("validate");
    assert!(no.reject);
    assert_eq!(no.reason, "validation: reject: no gpu");
    running.abort();
}

#[tokio::test]
async fn an_empty_subscription_is_refused_rather_than_sent_as_all_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let handler =
        TestHandler::with_events([Event::ValidateContainerAdjustment].into_iter().collect());
    let plugin = Plugin::new(external_opts(&socket), handler).expect("valid options");
    let running = tokio::spawn(plugin.run());
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("dial")
        .expect("accept");
    let peer = PeerConn::start(stream).await;
    // containerd 1.7 (NRI 0.6) does not know validation, and 0 would mean "everything".
    let err = peer
        .configure("containerd", "v1.7.24", "")
        .await
        .expect_err("refused");
    assert!(rpc_status(err)
        .message
        .contains("ValidateContainerAdjustment"));
    running.abort();
}

#[tokio::test]
async fn a_failed_configure_is_reported_and_the_external_plugin_tries_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let handler = Arc::new(TestHandler::default());
    let plugin = Plugin::new(external_opts(&socket), handler.clone()).expect("valid options");
    let mut status = plugin.status();
    let running = tokio::spawn(plugin.run());

    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("dial")
        .expect("accept");
    let peer = PeerConn::start(stream).await;
    let err = peer
        .configure("containerd", "v2.1.9", "fail")
        .await
        .expect_err("configure fails");
    let st = rpc_status(err);
    assert_eq!(st.message, "test config says fail");
    assert_eq!(
        status.get().last_error.as_deref(),
        Some("configure: test config says fail")
    );
    // The runtime answers a failed Configure by closing the connection.
    peer.mux.close();
    drop(peer);

    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("redial")
        .expect("accept");
    let peer = PeerConn::start(stream).await;
    peer.configure("containerd", "v2.1.9", "")
        .await
        .expect("second Configure succeeds");
    wait_status(&mut status, "ready", |s| s.is_ready()).await;
    assert_eq!(status.get().reconnects, 1);
    running.abort();
}

#[tokio::test]
async fn preconnected_plugin_serves_the_socketpair_and_exits_when_it_closes() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    // The runtime's side of a launch: the socket's number and the name from the file name.
    let fd = theirs.into_raw_fd();
    let opts = PluginOptions::from_lookup("ignored", "99", |key| match key {
        "NRI_PLUGIN_SOCKET" => Some(fd.to_string()),
        "NRI_PLUGIN_NAME" => Some("compat".into()),
        "NRI_PLUGIN_IDX" => Some("07".into()),
        _ => None,
    })
    .expect("options from env");
    assert_eq!(opts.transport, Transport::Preconnected { fd });
    let handler = Arc::new(TestHandler::default());
    let mut syncs = handler.sync_channel();
    let plugin = Plugin::new(opts, handler.clone()).expect("valid options");
    let running = tokio::spawn(plugin.run());

    ours.set_nonblocking(true).expect("non-blocking");
    let peer = PeerConn::start(UnixStream::from_std(ours).expect("tokio stream")).await;
    assert_eq!(peer.registration.plugin_name, "compat");
    assert_eq!(peer.registration.plugin_idx, "07");
    peer.configure("containerd", "v2.1.9", "mode: enforce\n")
        .await
        .expect("Configure");
    assert_eq!(handler.configs()[0].config, "mode: enforce\n");
    peer.sync(vec![pod("web")], vec![container("app", &[])], false)
        .await;
    let (pods, _) = timeout(WAIT, syncs.recv())
        .await
        .expect("in time")
        .expect("synchronized");
    assert_eq!(pods.len(), 1);
    let res = peer
        .create(&pod("web"), container("app", &[]))
        .await
        .expect("CreateContainer");
    assert!(res.adjust.is_some());

    peer.mux.close();
    let result = timeout(WAIT, running)
        .await
        .expect("plugin exits when the socket closes")
        .expect("task");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(handler.shutdowns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn connected_socket_closed_before_configure_is_an_error() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let plugin = Plugin::new(
        PluginOptions::external("compat", "07"),
        Arc::new(TestHandler::default()),
    )
    .expect("valid options");
    let running = tokio::spawn(plugin.run_connected(theirs, std::future::pending()));
    ours.set_nonblocking(true).expect("non-blocking");
    let peer = PeerConn::start(UnixStream::from_std(ours).expect("tokio stream")).await;
    peer.mux.close();
    let result = timeout(WAIT, running)
        .await
        .expect("plugin exits")
        .expect("task");
    assert!(
        matches!(result, Err(NriError::NotConfigured(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn notifications_reach_the_handler_by_their_own_rpc_and_by_state_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let wanted: EventSet = [
        Event::CreateContainer,
        Event::RunPodSandbox,
        Event::RemoveContainer,
    ]
    .into_iter()
    .collect();
    let handler = TestHandler::with_events(wanted);
    let plugin = Plugin::new(external_opts(&socket), handler.clone()).expect("valid options");
    let running = tokio::spawn(plugin.run());
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("dial")
        .expect("accept");
    let peer = PeerConn::start(stream).await;
    let configured = peer
        .configure("containerd", "v2.1.9", "")
        .await
        .expect("Configure");
    assert_eq!(configured.events, wanted.bits());

    // NRI >= 0.12 sends RunPodSandbox as its own RPC; older runtimes use StateChange.
    let run = api::RunPodSandboxRequest {
        pod: Some(pod("web")),
    };
    peer.plugin
        .run_pod_sandbox(ctx(), &run)
        .await
        .expect("RunPodSandbox");
    let removed = api::StateChangeEvent {
        event: api::Event::RemoveContainer as i32,
        pod: Some(pod("web")),
        container: Some(container("app", &[])),
    };
    peer.plugin
        .state_change(ctx(), &removed)
        .await
        .expect("StateChange");
    let unknown = api::StateChangeEvent {
        event: 99,
        ..Default::default()
    };
    peer.plugin
        .state_change(ctx(), &unknown)
        .await
        .expect("an unknown event is acknowledged");
    assert_eq!(
        *handler.notified.lock().expect("test lock"),
        [
            (Event::RunPodSandbox, "web".to_string(), "-".to_string()),
            (Event::RemoveContainer, "web".to_string(), "app".to_string()),
        ]
    );
    running.abort();
}
