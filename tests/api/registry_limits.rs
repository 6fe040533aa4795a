//! Bounds on what a hostile registry can make a client do: the CLI's overall `--deadline`, and
//! referrers lists that repeat a digest or list thousands of unannotated entries.

use crate::support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use image_compat::registry::{
    Client, ContentCheck, FetchedSpec, Platform, Reference, RegistryError,
};
use support::oci_server::{Behaviour, TestRegistry, OCI_INDEX};

fn cli(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_image-compat"))
        .args(args)
        .env_remove("IMAGE_COMPAT_CONFIG")
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .expect("run image-compat")
}

/// Every request answers well within `--timeout`, but there are enough of them that the
/// command as a whole would take longer than its `--deadline`: the deadline ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_deadline_bounds_a_registry_that_answers_slowly() {
    let reg = TestRegistry::start().await;
    reg.push_image("app", Some("v1"), "linux", "amd64");
    reg.behave(|b| b.delay = Some(("/v2/app/".into(), Duration::from_millis(700))));
    let image = format!("{}/app:v1", reg.host);
    let args = |deadline: Option<&str>| {
        let mut a: Vec<String> = ["discover", "--image", &image, "--platform", "linux/amd64"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(format!("--plain-http={}", reg.host));
        a.extend(["--timeout".to_string(), "5s".to_string()]);
        if let Some(d) = deadline {
            a.extend(["--deadline".to_string(), d.to_string()]);
        }
        a
    };
    let slow = args(Some("1s"));
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cli(&slow))
        .await
        .expect("join");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("did not finish within 1s (--deadline)"),
        "{err}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The same command with the default deadline finishes: the requests themselves are fine.
    let fine = args(None);
    let out = tokio::task::spawn_blocking(move || cli(&fine))
        .await
        .expect("join");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `app:v1`'s spec, fetched as the plugin fetches it.
async fn fetch(reg: &TestRegistry) -> Result<Option<FetchedSpec>, RegistryError> {
    Client::new(reg.client_config())
        .expect("client")
        .fetch_spec(
            &Reference::parse(&format!("{}/app:v1", reg.host)).expect("ref"),
            &Platform::parse("linux/amd64").expect("platform"),
        )
        .await
}

fn unannotated(digest: &str, size: usize) -> serde_json::Value {
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.nfd.image-compatibility.v1alpha1",
        "digest": digest,
        "size": size,
    })
}

/// Pushes `app:v1` with one spec artifact; returns the image's and the artifact's manifest
/// digests and the artifact manifest's size.
async fn image_with_spec(reg: &TestRegistry) -> (String, String, usize) {
    let (_, image) = reg
        .push_image_with_spec(
            "app",
            "v1",
            Some(b"version: v1alpha1\ncompatibilities: []\n"),
        )
        .await;
    let listed = fetch(reg).await.expect("fetch").expect("spec");
    let digest = listed.artifact.digest.to_string();
    let size = reg
        .manifest("app", &digest)
        .map(|m| serde_json::to_vec(&m).expect("json").len())
        .expect("artifact manifest");
    (image, digest, size)
}

/// A referrers list of thousands of entries without annotations, all one digest: its manifest
/// is read once, not once per entry.
#[tokio::test]
async fn a_repeated_referrer_is_read_once() {
    let reg = TestRegistry::start().await;
    let (_, artifact, size) = image_with_spec(&reg).await;
    let entries: Vec<_> = (0..5000).map(|_| unannotated(&artifact, size)).collect();
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    reg.behave(|b| b.fail = Some(("/referrers/".into(), 200, OCI_INDEX, index.to_string())));
    reg.clear_log();
    let fetched = fetch(&reg).await.expect("fetch").expect("spec");
    assert_eq!(fetched.artifact.digest.to_string(), artifact);
    let reads = reg
        .requests()
        .iter()
        .filter(|l| l.method == "GET" && l.path.ends_with(&format!("/manifests/{artifact}")))
        .count();
    // Once for its annotations, once more to fetch the winner's spec.
    assert!(reads <= 2, "the artifact manifest was read {reads} times");
    assert!(
        reg.requests().len() < 20,
        "{} requests",
        reg.requests().len()
    );
}

/// Thousands of distinct unannotated referrers are refused before reading any of them.
#[tokio::test]
async fn thousands_of_unannotated_referrers_are_refused_unread() {
    let reg = TestRegistry::start().await;
    let (_, artifact, size) = image_with_spec(&reg).await;
    let entries: Vec<_> = (0..3000u32)
        .map(|i| unannotated(&format!("sha256:{:064x}", i), size))
        .chain([unannotated(&artifact, size)])
        .collect();
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    reg.behave(|b| b.fail = Some(("/referrers/".into(), 200, OCI_INDEX, index.to_string())));
    reg.clear_log();
    let err = fetch(&reg).await.expect_err("refused");
    assert!(
        matches!(
            err,
            RegistryError::InvalidContent {
                check: ContentCheck::ReferrersIndex,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("3001 referrers without annotations"),
        "{err}"
    );
    let manifest_reads = manifest_reads_by_digest(&reg);
    assert_eq!(manifest_reads, 0);
}

/// Unannotated referrers are read a few at a time, not one after another: with each manifest
/// read taking 300 ms, 40 of them take well under the 12 s a sequential client would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unannotated_referrers_are_read_concurrently() {
    let reg = TestRegistry::start_with(Behaviour {
        omit_referrer_annotations: true,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    for i in 0..40u32 {
        let spec = format!("version: v1alpha1\ncompatibilities: [] # {i}\n");
        let created = format!("2025-01-01T00:00:{i:02}Z");
        let m = crate::registry_api::artifact(&reg, &image, spec.as_bytes(), Some(&created));
        reg.put_artifact("app", &m);
    }
    reg.behave(|b| b.delay = Some(("/manifests/sha256:".into(), Duration::from_millis(300))));
    reg.clear_log();
    let started = Instant::now();
    let fetched = fetch(&reg).await.expect("fetch").expect("spec");
    let took = started.elapsed();
    // The newest wins, which only the manifests' annotations tell.
    assert_eq!(
        String::from_utf8_lossy(&fetched.bytes),
        "version: v1alpha1\ncompatibilities: [] # 39\n"
    );
    let reads = manifest_reads_by_digest(&reg);
    assert!(reads >= 40, "{reads} manifest reads");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

/// Manifest requests by digest the registry logged (the referrers' own manifests).
fn manifest_reads_by_digest(reg: &TestRegistry) -> usize {
    reg.requests()
        .iter()
        .filter(|l| l.path.contains("/manifests/sha256:"))
        .count()
}
