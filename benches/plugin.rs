//! Decision latency of the NRI plugin for a cached image: `Guard::handle` as CreateContainer
//! calls it (identity, exemptions, cache lookup, policy, log line), with the artifact already
//! fetched from an in-process registry. Prints p50/p99/max over many calls, then criterion's
//! estimate of the mean. `cargo bench --bench benches -- '^plugin decision'`.

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use image_compat::check::NameResolver;
use image_compat::config::{Config, Overrides};
use image_compat::daemon::{Daemon, Options};
use image_compat::features::Features;
use image_compat::nri::{ConfigureInfo, Container, Guard, Handler, PodSandbox, Stage};
use tokio::runtime::Runtime;

use crate::oci_server;

const SPEC: &str = include_str!("../tests/fixtures/specs/realistic.yaml");

pub fn bench(c: &mut Criterion) {
    // Made for the benchmark's first call: not at all when the filter selects another area's.
    let ready = OnceCell::new();
    c.bench_function("plugin decision, cached image (Guard::handle)", |b| {
        let (rt, guard, pod, ctr) = ready.get_or_init(prepare);
        b.to_async(rt)
            .iter(|| async { black_box(denied(guard, pod, ctr).await) })
    });
}

/// The runtime and a Guard with the artifact cached, after timing 20,000 decisions one by one
/// and printing their percentiles.
fn prepare() -> (Runtime, Arc<Guard>, PodSandbox, Container) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (guard, pod, ctr) = rt.block_on(async {
        let reg = oci_server::TestRegistry::start().await;
        let (name, _) = reg
            .push_image_with_spec("app", "v1", Some(SPEC.as_bytes()))
            .await;
        let mut config = Config::default();
        config.registry.plain_http = vec![reg.host.clone()];
        config.node_name = Some("bench".into());
        let daemon = Daemon::new(Options {
            resolver: Some(Arc::new(NameResolver)),
            features: Some(Features::default()),
            ..Options::new(config, Overrides::default())
        })
        .expect("daemon");
        let guard = daemon.guard();
        guard
            .configure(ConfigureInfo {
                request_timeout: Some(Duration::from_secs(2)),
                ..Default::default()
            })
            .await
            .expect("configure");
        let pod = PodSandbox {
            name: "web".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        let ctr = Container {
            name: "app".into(),
            annotations: [("io.kubernetes.cri.image-name".to_string(), name)].into(),
            ..Default::default()
        };
        // The first decision fetches; every later one is answered from the cache.
        let first = guard.handle(&pod, &ctr, Stage::Create).await;
        assert!(
            first.decision.deny.is_some(),
            "the realistic spec does not match an empty node: {first:?}"
        );
        std::mem::forget(reg); // keep the registry up while the runtime lives
        (guard, pod, ctr)
    });

    let n = 20_000;
    let mut samples = Vec::with_capacity(n);
    rt.block_on(async {
        for _ in 0..n {
            let t = Instant::now();
            black_box(denied(&guard, &pod, &ctr).await);
            samples.push(t.elapsed());
        }
    });
    samples.sort();
    let pct = |p: f64| samples[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "\ncached decision over {n} calls: p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        samples[n - 1]
    );
    (rt, guard, pod, ctr)
}

async fn denied(guard: &Guard, pod: &PodSandbox, ctr: &Container) -> bool {
    guard
        .handle(pod, ctr, Stage::Create)
        .await
        .decision
        .deny
        .is_some()
}
