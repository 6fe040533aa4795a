//! The image-compat NRI plugin (Guard behind the real transport) driven by an in-process
//! runtime peer, with artifacts in an in-process registry: enforce, audit, exemptions, no
//! artifact, registry down, the deadline, Synchronize warming the cache, the runtime's config.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image_compat::check::NameResolver;
use image_compat::config::{Config, FailAction, Mode, Overrides};
use image_compat::daemon::{Daemon, Options};
use image_compat::features::Features;
use image_compat::nri::{api, Handler, Plugin};
use support::nri_peer::*;
use support::oci_server::TestRegistry;
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::time::timeout;

const NEEDS_X1: &[u8] = b"version: v1alpha1
compatibilities:
- tag: main
  rules:
  - name: needs x
    matchFeatures:
    - feature: test.feature
      matchExpressions:
        x: {op: In, value: ['1']}
";

fn features() -> Features {
    let mut f = Features::default();
    f.set_attributes(
        "test.feature",
        BTreeMap::from([("x".to_string(), "2".to_string())]),
    );
    f
}

struct Setup {
    reg: TestRegistry,
    /// Images by role: `incompatible`, `compatible` (spec asks x=2), `plain` (no artifact).
    images: BTreeMap<&'static str, String>,
}

impl Setup {
    async fn new() -> Setup {
        let reg = TestRegistry::start().await;
        let compatible = String::from_utf8_lossy(NEEDS_X1).replace("['1']", "['2']");
        let mut images = BTreeMap::new();
        for (role, spec) in [
            ("incompatible", Some(NEEDS_X1.to_vec())),
            ("compatible", Some(compatible.into_bytes())),
            ("plain", None),
        ] {
            let (name, _) = reg.push_image_with_spec(role, "v1", spec.as_deref()).await;
            images.insert(role, name);
        }
        Setup { reg, images }
    }

    fn config(&self) -> Config {
        let mut c = Config {
            node_name: Some("test-node".into()),
            ..Config::default()
        };
        c.registry.plain_http = vec![self.reg.host.clone()];
        c
    }
}

struct Running {
    peer: PeerConn,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), image_compat::nri::NriError>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// The plugin with `config`, connected to a fresh runtime peer that sends Configure with
    /// `runtime_config` (what a pre-launched plugin gets) and the given request timeout.
    async fn start(config: Config, runtime_config: &str) -> Running {
        Running::start_as(config, runtime_config, "2.1.9").await
    }

    /// As `start`, with the runtime reporting containerd `version` in Configure.
    async fn start_as(config: Config, runtime_config: &str, version: &str) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("nri.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let daemon = Daemon::new(Options {
            resolver: Some(Arc::new(NameResolver)),
            features: Some(features()),
            ..Options::new(config, Overrides::default())
        })
        .unwrap();
        let handler: Arc<dyn Handler> = daemon.guard();
        let plugin = Plugin::new(external_opts(&socket), handler).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(plugin.run_until(async move {
            let _ = stopped.await;
        }));
        let (stream, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        let peer = PeerConn::start(stream).await;
        let configured = peer
            .configure("containerd", version, runtime_config)
            .await
            .expect("configure");
        assert_ne!(configured.events, 0);
        peer.sync(vec![], vec![], false).await;
        Running {
            peer,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// CreateContainer in namespace `ns` for `image`: Ok(annotations added) or Err(message).
    async fn create(&self, ns: &str, image: &str) -> Result<BTreeMap<String, String>, String> {
        let mut p = pod("web");
        p.namespace = ns.into();
        let c = container("app", &[("io.kubernetes.cri.image-name", image)]);
        match self.peer.create(&p, c).await {
            Ok(resp) => Ok(resp
                .adjust
                .map(|a| a.annotations.into_iter().collect())
                .unwrap_or_default()),
            Err(e) => Err(rpc_status(e).message),
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = timeout(WAIT, self.task).await;
    }
}

fn compatible(a: &BTreeMap<String, String>) -> Option<&str> {
    a.get("image-compat.io/compatible").map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_rejects_with_a_readable_reason_and_annotates_the_rest() {
    let s = Setup::new().await;
    let run = Running::start(s.config(), "").await;
    let err = run
        .create("default", &s.images["incompatible"])
        .await
        .unwrap_err();
    let want_start = format!("image-compat: image {} (sha256:", s.images["incompatible"]);
    assert!(err.starts_with(&want_start), "{err}");
    assert!(
        err.ends_with(") is not compatible with node test-node: set \"main\" rule \"needs x\": test.feature: x In [1] did not match (node has x=\"2\")"),
        "{err}"
    );
    let ok = run
        .create("default", &s.images["compatible"])
        .await
        .unwrap();
    assert_eq!(compatible(&ok), Some("true"));
    assert!(ok["image-compat.io/artifact"].starts_with("sha256:"));
    // No artifact: allowed by default, marked unknown.
    let ok = run.create("default", &s.images["plain"]).await.unwrap();
    assert_eq!(compatible(&ok), Some("unknown"));
    assert_eq!(
        ok["image-compat.io/reason"],
        "the image has no compatibility artifact"
    );
    // kube-system is exempt by default: no check, no annotation.
    let ok = run
        .create("kube-system", &s.images["incompatible"])
        .await
        .unwrap();
    assert!(ok.is_empty(), "{ok:?}");
    // A container whose image nobody names: unknown, allowed by default.
    let c = container("nameless", &[]);
    let resp = run.peer.create(&pod("web"), c).await.unwrap();
    let a: BTreeMap<String, String> = resp.adjust.unwrap().annotations.into_iter().collect();
    assert_eq!(compatible(&a), Some("unknown"));
    run.stop().await;
}

/// A rule name and tag written to forge a second line and drive a terminal reach the
/// refusal (enforce) and the reason annotation (audit) escaped, on one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_text_in_refusals_and_annotations_is_escaped() {
    let s = Setup::new().await;
    let spec = String::from_utf8_lossy(NEEDS_X1)
        .replace("tag: main", "tag: \"m\\e[2J\"")
        .replace(
            "name: needs x",
            "name: \"needs x\\nimage-compat: image ok is compatible\\e[31m\"",
        );
    let (image, _) = s
        .reg
        .push_image_with_spec("forger", "v1", Some(spec.as_bytes()))
        .await;
    let run = Running::start(s.config(), "").await;
    let err = run.create("default", &image).await.unwrap_err();
    assert!(!err.contains('\n') && !err.contains('\u{1b}'), "{err:?}");
    assert!(
        err.contains(
            r#"set "m\u{1b}[2J" rule "needs x\nimage-compat: image ok is compatible\u{1b}[31m""#
        ),
        "{err}"
    );
    run.stop().await;
    let config = Config {
        mode: Mode::Audit,
        ..s.config()
    };
    let run = Running::start(config, "").await;
    let ok = run.create("default", &image).await.unwrap();
    assert_eq!(compatible(&ok), Some("false"));
    let reason = &ok["image-compat.io/reason"];
    assert!(
        !reason.contains('\n') && !reason.contains('\u{1b}') && reason.contains(r"\u{1b}[31m"),
        "{reason:?}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lets_it_run_annotated() {
    let s = Setup::new().await;
    let config = Config {
        mode: Mode::Audit,
        ..s.config()
    };
    let run = Running::start(config, "").await;
    let ok = run
        .create("default", &s.images["incompatible"])
        .await
        .unwrap();
    assert_eq!(compatible(&ok), Some("false"));
    assert!(
        ok["image-compat.io/reason"].contains("rule \"needs x\""),
        "{ok:?}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_config_replaces_the_file_config() {
    let s = Setup::new().await;
    // Pre-launched: the runtime passes the config file's content in Configure.
    let runtime_config = format!(
        "mode: audit\nnodeName: from-runtime\nregistry: {{plainHttp: ['{}']}}\n",
        s.reg.host
    );
    let run = Running::start(s.config(), &runtime_config).await;
    let ok = run
        .create("default", &s.images["incompatible"])
        .await
        .unwrap();
    assert_eq!(compatible(&ok), Some("false"));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policies_for_missing_artifacts_and_a_down_registry() {
    let s = Setup::new().await;
    let strict = Config {
        on_missing_artifact: FailAction::Deny,
        on_registry_error: FailAction::Deny,
        ..s.config()
    };
    let run = Running::start(strict, "").await;
    let err = run.create("default", &s.images["plain"]).await.unwrap_err();
    assert!(
        err.contains("the image has no compatibility artifact (onMissingArtifact: deny)"),
        "{err}"
    );
    let down = "127.0.0.1:9/app:v1";
    let err = run.create("default", down).await.unwrap_err();
    assert!(
        err.contains("could not be checked on node test-node: registry error:")
            && err.ends_with("(onRegistryError: deny)"),
        "{err}"
    );
    run.stop().await;

    // The defaults let both through, marked unknown.
    let run = Running::start(s.config(), "").await;
    let ok = run.create("default", "127.0.0.1:9/app:v1").await.unwrap();
    assert_eq!(compatible(&ok), Some("unknown"));
    assert!(
        ok["image-compat.io/reason"].starts_with("registry error:"),
        "{ok:?}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_every_decision() {
    let s = Setup::new().await;
    s.reg
        .behave(|b| b.delay = Some(("/manifests/".into(), Duration::from_millis(1500))));
    let config = Config {
        deadline: Duration::from_millis(300),
        ..s.config()
    };
    let run = Running::start(config, "").await;
    let started = Instant::now();
    let ok = run
        .create("default", &s.images["incompatible"])
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(900), "took {took:?}");
    assert_eq!(compatible(&ok), Some("unknown"));
    assert!(
        ok["image-compat.io/reason"].starts_with("no answer from the registry within 300ms"),
        "{ok:?}"
    );
    run.stop().await;

    // A deadline longer than half the runtime's request timeout (2 s) is cut to 1 s.
    let config = Config {
        deadline: Duration::from_secs(10),
        ..s.config()
    };
    let run = Running::start(config, "").await;
    let started = Instant::now();
    let ok = run
        .create("default", &s.images["compatible"])
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1600),
        "{:?}",
        started.elapsed()
    );
    assert!(
        ok["image-compat.io/reason"].starts_with("no answer from the registry within 1s"),
        "{ok:?}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronize_warms_the_cache() {
    let s = Setup::new().await;
    let run = Running::start(s.config(), "").await;
    let existing = api::Container {
        annotations: [(
            "io.kubernetes.cri.image-name".to_string(),
            s.images["incompatible"].clone(),
        )]
        .into(),
        ..container("old", &[])
    };
    run.peer.sync(vec![pod("web")], vec![existing], false).await;
    // Wait until the prefetch has fetched the artifact, then expect no registry request.
    let deadline = Instant::now() + WAIT;
    while !s
        .reg
        .requests()
        .iter()
        .any(|r| r.path.contains("/manifests/sha256-") || r.path.contains("/referrers/"))
    {
        assert!(Instant::now() < deadline, "no prefetch happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.reg.clear_log();
    let err = run
        .create("default", &s.images["incompatible"])
        .await
        .unwrap_err();
    assert!(err.contains("is not compatible"), "{err}");
    let asked = s.reg.requests();
    assert!(
        asked.is_empty(),
        "the decision went to the registry: {asked:?}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_refuses_too_where_the_runtime_has_it() {
    let s = Setup::new().await;
    let validate = |image: &str| api::ValidateContainerAdjustmentRequest {
        pod: Some(pod("web")),
        container: Some(container("app", &[("io.kubernetes.cri.image-name", image)])),
        ..Default::default()
    };
    // containerd 2.2 has NRI 0.10: the plugin also validates, and refuses there as well.
    let run = Running::start_as(s.config(), "", "2.2.0").await;
    let no = run
        .peer
        .plugin
        .validate_container_adjustment(ctx(), &validate(&s.images["incompatible"]))
        .await
        .unwrap();
    assert!(no.reject);
    assert!(
        no.reason.contains("is not compatible with node test-node"),
        "{}",
        no.reason
    );
    let yes = run
        .peer
        .plugin
        .validate_container_adjustment(ctx(), &validate(&s.images["compatible"]))
        .await
        .unwrap();
    assert!(!yes.reject, "{}", yes.reason);
    run.stop().await;
    // Audit never refuses, at either point.
    let config = Config {
        mode: Mode::Audit,
        ..s.config()
    };
    let run = Running::start_as(config, "", "2.2.0").await;
    let ok = run
        .peer
        .plugin
        .validate_container_adjustment(ctx(), &validate(&s.images["incompatible"]))
        .await
        .unwrap();
    assert!(!ok.reject);
    run.stop().await;
}

/// Validation answers with the creation's own decision for that container (no second lookup):
/// a container created compatible is validated so even when its annotations now name the
/// incompatible image; another container is decided afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_reuses_the_creation_decision() {
    let s = Setup::new().await;
    let run = Running::start_as(s.config(), "", "2.3.4").await;
    let ctr = |id: &str, image: &str| {
        let mut c = container("app", &[("io.kubernetes.cri.image-name", image)]);
        c.id = id.into();
        c
    };
    run.peer
        .create(&pod("web"), ctr("c1", &s.images["compatible"]))
        .await
        .expect("the compatible container is created");
    let validate = |id: &str| api::ValidateContainerAdjustmentRequest {
        pod: Some(pod("web")),
        container: Some(ctr(id, &s.images["incompatible"])),
        ..Default::default()
    };
    let reused = run
        .peer
        .plugin
        .validate_container_adjustment(ctx(), &validate("c1"))
        .await
        .unwrap();
    assert!(
        !reused.reject,
        "not the creation's decision: {}",
        reused.reason
    );
    // Taken once: the same container validated again is decided again (and refused).
    for id in ["c1", "c2"] {
        let fresh = run
            .peer
            .plugin
            .validate_container_adjustment(ctx(), &validate(id))
            .await
            .unwrap();
        assert!(fresh.reject, "{id}: not decided afresh");
    }
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_settings_in_the_runtime_config_apply() {
    let s = Setup::new().await;
    // The plugin started with features x=2 (incompatible); the runtime's config (a pre-launched
    // plugin's conf.d file) points at a features file where x=1: that one must be used.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.json");
    std::fs::write(
        &file,
        r#"{"attributes":{"test.feature":{"elements":{"x":"1"}}}}"#,
    )
    .unwrap();
    let runtime_config = format!(
        "nodeName: test-node\nregistry: {{plainHttp: ['{}']}}\nfeatures: {{file: {}}}\n",
        s.reg.host,
        file.display()
    );
    let run = Running::start(s.config(), &runtime_config).await;
    let ok = run
        .create("default", &s.images["incompatible"])
        .await
        .unwrap();
    assert_eq!(compatible(&ok), Some("true"), "{ok:?}");
    run.stop().await;
}

/// While hostile specs (256 KiB of expressions, the largest read: some hundreds of ms each in
/// this unoptimised build, six of them through two pool slots) are read for some containers,
/// the plugin answers those at its deadline and every other container at once: the reading
/// runs on the bounded blocking pool, not on the async workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_containers_are_answered_while_hostile_specs_are_read() {
    let s = Setup::new().await;
    let (_, make) = crate::hostile_specs::hostile::shapes()
        .into_iter()
        .find(|(n, _)| *n == "many-expressions")
        .expect("shape");
    let spec = make(crate::hostile_specs::hostile::MAX);
    let mut hostile = Vec::new();
    for i in 0..6 {
        let (name, _) = s
            .reg
            .push_image_with_spec(&format!("hostile{i}"), "v1", Some(spec.as_bytes()))
            .await;
        hostile.push(name);
    }
    let config = Config {
        deadline: Duration::from_millis(100),
        ..s.config()
    };
    let run = Running::start(config, "").await;
    // The compatible image's answer is cached before the hostile ones arrive.
    let ok = run
        .create("default", &s.images["compatible"])
        .await
        .unwrap();
    assert_eq!(compatible(&ok), Some("true"));
    let started = Instant::now();
    let slow = futures::future::join_all(hostile.iter().map(|name| async {
        let t = Instant::now();
        let r = run.create("default", name).await;
        (t.elapsed(), r)
    }))
    .await;
    for (took, r) in &slow {
        assert!(*took < Duration::from_millis(1500), "took {took:?}: {r:?}");
        let a = r.as_ref().expect("allowed: no answer within the deadline");
        assert_eq!(compatible(a), Some("unknown"), "{a:?}");
    }
    // Once the hostile specs are being read (both pool slots taken, the other four queued),
    // a cached image's decision does not wait for them. (Measured once the fetches are done,
    // so that what is measured is the reading, not this build's slow transfer of 1.5 MiB
    // through the test registry on the same two workers.)
    use image_compat::check::cpu;
    let reading = Instant::now();
    while cpu::busy() < cpu::MAX_JOBS {
        assert!(
            reading.elapsed() < Duration::from_secs(10),
            "the hostile specs are never read"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut waits = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let ok = run
            .create("default", &s.images["compatible"])
            .await
            .unwrap();
        assert_eq!(compatible(&ok), Some("true"));
        waits.push(t.elapsed());
    }
    assert!(
        cpu::busy() > 0,
        "the hostile specs were read before the cached decisions were measured"
    );
    for w in &waits {
        assert!(
            *w < Duration::from_millis(300),
            "a cached image waited {w:?} behind hostile specs: {waits:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(12));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_containers_are_rechecked_when_the_features_change() {
    let s = Setup::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.json");
    let write = |x: &str| {
        let tmp = dir.path().join("node.json.tmp");
        std::fs::write(
            &tmp,
            format!(r#"{{"attributes":{{"test.feature":{{"elements":{{"x":"{x}"}}}}}}}}"#),
        )
        .unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    write("2");
    let mut config = s.config();
    config.features.file = Some(file.clone());
    config.features.refresh = Duration::from_millis(200);
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let daemon = Daemon::new(Options {
        resolver: Some(Arc::new(NameResolver)),
        ..Options::new(config, Overrides::default())
    })
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(daemon.clone().serve(external_opts(&socket), async move {
        let _ = stopped.await;
    }));
    let (stream, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let peer = PeerConn::start(stream).await;
    peer.configure("containerd", "2.1.9", "").await.unwrap();
    peer.sync(vec![], vec![], false).await;
    // Two containers of the image that needs x=2 start; one of them stops again.
    let image = s.images["compatible"].clone();
    for name in ["app", "other"] {
        let c = container(name, &[("io.kubernetes.cri.image-name", image.as_str())]);
        peer.create(&pod("web"), c).await.expect("allowed");
    }
    let stopped_req = api::StopContainerRequest {
        pod: Some(pod("web")),
        container: Some(container("other", &[])),
    };
    peer.plugin
        .stop_container(ctx(), &stopped_req)
        .await
        .unwrap();
    let gauge = format!("image_compat_running_incompatible{{image=\"{image}\"}}");
    let wait_for = |want: Option<&'static str>| {
        let (daemon, gauge) = (daemon.clone(), gauge.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let text = daemon.metrics().encode();
                let line = text
                    .lines()
                    .find(|l| l.starts_with(&gauge))
                    .map(str::to_string);
                let got = line
                    .as_deref()
                    .map(|l| l.rsplit(' ').next().unwrap().to_string());
                if got.as_deref() == want {
                    return Instant::now();
                }
                assert!(
                    Instant::now() < deadline,
                    "gauge {gauge} is {got:?}, expected {want:?}:\n{text}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Re-checks run, and find nothing incompatible.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for(None).await;
    // The node loses x=2: the running container (the stopped one no longer counts) is
    // reported within a refresh interval or so.
    let changed = Instant::now();
    write("1");
    let seen = wait_for(Some("1")).await;
    assert!(
        seen - changed < Duration::from_millis(1500),
        "reported after {:?}",
        seen - changed
    );
    // Back: the gauge drops the image.
    write("2");
    wait_for(None).await;
    let _ = stop.send(());
    let _ = timeout(WAIT, task).await;
}
