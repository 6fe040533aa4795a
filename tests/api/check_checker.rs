//! The decision path against the in-process registry: verdicts, the plugin's cache, one fetch
//! per image under a burst, the deadline, stale answers, feature changes.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image_compat::check::{
    check_image, Candidates, Checker, MemoryStore, NodeFeatures, Outcome, Source,
};
use image_compat::config::CacheSettings;
use image_compat::features::Features;
use image_compat::registry::{Client, Platform, Reference, RegistryConfig};
use support::oci_server::TestRegistry;

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

fn features(x: &str) -> Features {
    let mut f = Features::default();
    f.set_attributes(
        "test.feature",
        BTreeMap::from([("x".to_string(), x.to_string())]),
    );
    f
}

fn client(reg: &TestRegistry) -> Client {
    Client::new(RegistryConfig {
        request_timeout: Duration::from_secs(5),
        ..reg.client_config()
    })
    .unwrap()
}

/// Pushes an image `repo:tag`, attaches `spec` when given; returns its `repo@digest`.
async fn image(reg: &TestRegistry, repo: &str, spec: Option<&[u8]>) -> Reference {
    let (_, digest) = reg.push_image_with_spec(repo, "v1", spec).await;
    Reference::parse(&format!("{}/{repo}@{digest}", reg.host)).unwrap()
}

fn settings() -> CacheSettings {
    CacheSettings {
        max_entries: 100,
        ttl: Duration::from_secs(3600),
        error_ttl: Duration::from_secs(30),
        ..CacheSettings::default()
    }
}

/// The plugin's checker: answers in memory.
fn checker(reg: &TestRegistry, features: Features, settings: CacheSettings) -> Arc<Checker> {
    Arc::new(Checker::new(
        RegistryConfig {
            request_timeout: Duration::from_secs(5),
            ..reg.client_config()
        },
        linux_amd64(),
        vec![],
        settings.clone(),
        NodeFeatures::new(features),
        Arc::new(MemoryStore::new(settings.max_entries)),
    ))
}

fn linux_amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[tokio::test]
async fn verdict_kinds() {
    let reg = TestRegistry::start().await;
    let c = client(&reg);
    let p = linux_amd64();
    let with = image(&reg, "app", Some(NEEDS_X1)).await;
    let v = check_image(&c, &with, &p, &features("1"), &[]).await;
    assert_eq!(
        v.outcome,
        Outcome::Compatible {
            detail: "best set \"main\"".into()
        }
    );
    assert!(
        v.artifact.is_some()
            && v.digest.as_deref() == with.digest().map(|d| d.to_string()).as_deref()
    );

    let v = check_image(&c, &with, &p, &features("2"), &[]).await;
    match v.outcome {
        Outcome::Incompatible { reason } => assert!(
            reason.contains(
                "rule \"needs x\": test.feature: x In [1] did not match (node has x=\"2\")"
            ),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    let v = check_image(&c, &with, &p, &features("1"), &["other".into()]).await;
    assert!(matches!(v.outcome, Outcome::NoSetSelected { .. }), "{v:?}");

    let without = image(&reg, "plain", None).await;
    let v = check_image(&c, &without, &p, &features("1"), &[]).await;
    assert_eq!(v.outcome, Outcome::NoArtifact);

    let broken = image(
        &reg,
        "broken",
        Some(b"version: v1alpha1\ncompatibilities: []\n"),
    )
    .await;
    // NFD reads a spec without sets (and answers with an empty report): no answer.
    let v = check_image(&c, &broken, &p, &features("1"), &[]).await;
    match v.outcome {
        Outcome::NoSetSelected { message } => {
            assert!(message.contains("no compatibility sets"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let missing = Reference::parse(&format!("{}/nothing:v1", reg.host)).unwrap();
    let v = check_image(&c, &missing, &p, &features("1"), &[]).await;
    assert_eq!(v.outcome, Outcome::NoArtifact);

    let down = Client::new(RegistryConfig {
        plain_http: vec!["127.0.0.1:9".into()],
        ..RegistryConfig::without_credential_files()
    })
    .unwrap();
    let v = check_image(
        &down,
        &Reference::parse("127.0.0.1:9/app:v1").unwrap(),
        &p,
        &features("1"),
        &[],
    )
    .await;
    assert!(matches!(v.outcome, Outcome::RegistryError { .. }), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_30_shares_one_fetch() {
    let reg = TestRegistry::start().await;
    let r = image(&reg, "burst", Some(NEEDS_X1)).await;
    reg.behave(|b| b.delay = Some(("/manifests/".into(), Duration::from_millis(150))));
    reg.clear_log();
    let checker = checker(&reg, features("1"), settings());
    let image = Candidates::one(r);
    let calls = (0..30).map(|_| {
        let (checker, image) = (checker.clone(), image.clone());
        tokio::spawn(async move { checker.verdict(&image, Duration::from_secs(5)).await })
    });
    let results = futures::future::join_all(calls).await;
    for r in results {
        let l = r.unwrap();
        assert!(
            matches!(l.verdict.outcome, Outcome::Compatible { .. }),
            "{l:?}"
        );
    }
    let manifest_gets = |reg: &TestRegistry| {
        reg.requests()
            .iter()
            .filter(|l| l.method == "GET" && l.path.contains("/manifests/"))
            .count()
    };
    let first = manifest_gets(&reg);
    assert!(first > 0);
    // One fetch: a single resolve and artifact read, whatever the number of callers.
    let single = {
        reg.clear_log();
        let fresh = self::checker(&reg, features("1"), settings());
        fresh.verdict(&image, Duration::from_secs(5)).await;
        manifest_gets(&reg)
    };
    assert_eq!(
        first, single,
        "30 concurrent callers made more requests than one caller"
    );
    // And now it is cached: no request at all.
    reg.clear_log();
    let l = checker.verdict(&image, Duration::from_secs(5)).await;
    assert_eq!(l.source, Source::Cached);
    assert!(reg.requests().is_empty());
}

#[tokio::test]
async fn the_deadline_answers_and_the_fetch_goes_on() {
    let reg = TestRegistry::start().await;
    let r = image(&reg, "slow", Some(NEEDS_X1)).await;
    reg.behave(|b| b.delay = Some(("/manifests/".into(), Duration::from_millis(400))));
    let checker = checker(&reg, features("1"), settings());
    let image = Candidates::one(r);
    let started = Instant::now();
    let l = checker.verdict(&image, Duration::from_millis(100)).await;
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(l.source, Source::Deadline);
    assert!(matches!(
        l.verdict.outcome,
        Outcome::DeadlineExceeded { .. }
    ));
    // The fetch finished in the background: a later container gets the real answer at once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = Instant::now();
    let l = checker.verdict(&image, Duration::from_millis(100)).await;
    assert_eq!(l.source, Source::Cached, "{l:?}");
    assert!(matches!(l.verdict.outcome, Outcome::Compatible { .. }));
    assert!(started.elapsed() < Duration::from_millis(50));
}

#[tokio::test]
async fn feature_changes_reevaluate_without_the_registry() {
    let reg = TestRegistry::start().await;
    let r = image(&reg, "feat", Some(NEEDS_X1)).await;
    let checker = checker(&reg, features("1"), settings());
    let image = Candidates::one(r);
    let l = checker.verdict(&image, Duration::from_secs(5)).await;
    assert!(matches!(l.verdict.outcome, Outcome::Compatible { .. }));
    reg.clear_log();
    checker.features().set(features("2"));
    let l = checker.verdict(&image, Duration::from_secs(5)).await;
    assert!(
        matches!(l.verdict.outcome, Outcome::Incompatible { .. }),
        "{l:?}"
    );
    assert_eq!(l.source, Source::Cached);
    assert!(reg.requests().is_empty());
}

#[tokio::test]
async fn expired_answers_are_served_while_refreshing_and_failures_expire() {
    let reg = TestRegistry::start().await;
    let r = image(&reg, "stale", Some(NEEDS_X1)).await;
    let short = CacheSettings {
        max_entries: 100,
        ttl: Duration::from_millis(50),
        error_ttl: Duration::from_millis(200),
        ..CacheSettings::default()
    };
    let checker = checker(&reg, features("1"), short);
    let image = Candidates::one(r);
    assert!(matches!(
        checker
            .verdict(&image, Duration::from_secs(5))
            .await
            .verdict
            .outcome,
        Outcome::Compatible { .. }
    ));
    tokio::time::sleep(Duration::from_millis(80)).await;
    // The registry breaks; the expired good answer still stands.
    reg.behave(|b| b.fail = Some(("/".into(), 503, "text/plain", "down".into())));
    let l = checker.verdict(&image, Duration::from_secs(5)).await;
    assert_eq!(l.source, Source::Stale);
    assert!(matches!(l.verdict.outcome, Outcome::Compatible { .. }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let l = checker.verdict(&image, Duration::from_secs(5)).await;
    assert!(
        matches!(l.verdict.outcome, Outcome::Compatible { .. }),
        "a failed refresh replaced a good answer: {l:?}"
    );

    // A failure with nothing good to fall back on is remembered only error_ttl.
    let other = Candidates::one(
        Reference::parse(&format!("{}/other@sha256:{}", reg.host, "0".repeat(64))).unwrap(),
    );
    let l = checker.verdict(&other, Duration::from_secs(5)).await;
    assert!(
        matches!(l.verdict.outcome, Outcome::RegistryError { .. }),
        "{l:?}"
    );
    assert_eq!(
        checker.verdict(&other, Duration::from_secs(5)).await.source,
        Source::Cached
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        checker.verdict(&other, Duration::from_secs(5)).await.source,
        Source::Fetched
    );
}

#[tokio::test]
async fn alternates_are_tried_and_the_cache_is_bounded() {
    let reg = TestRegistry::start().await;
    let without = image(&reg, "name-a", None).await;
    let with = image(&reg, "name-b", Some(NEEDS_X1)).await;
    let checker = checker(
        &reg,
        features("1"),
        CacheSettings {
            max_entries: 2,
            ..settings()
        },
    );
    let both = Candidates(vec![without.clone(), with.clone()]);
    let l = checker.verdict(&both, Duration::from_secs(5)).await;
    assert!(
        matches!(l.verdict.outcome, Outcome::Compatible { .. }),
        "{l:?}"
    );
    for r in [without, with] {
        checker
            .verdict(&Candidates::one(r), Duration::from_secs(5))
            .await;
    }
    assert_eq!(checker.cached_images(), 2);
    let _ = Arc::clone(&checker);
}

/// An image with an NFD spec and a Proposal F document: one verdict, compatible only when both
/// say so, naming the artifact and the group/key that decided; a key the node declares nothing
/// about is `unknown`, which `onUnknown` decides. The answer survives the hook's on-disk form.
#[tokio::test]
async fn both_kinds_make_one_verdict() {
    use image_compat::check::answer::Answer;
    use image_compat::config::{Config, FailAction, Mode};
    use image_compat::registry::{media::ArtifactKind, AttachOptions};

    let reg = TestRegistry::start().await;
    let c = client(&reg);
    let p = linux_amd64();
    let r = image(&reg, "both", Some(NEEDS_X1)).await;
    let doc = br#"{"compatibilities": {"org.example": {"gpu": "a100"}}}"#;
    let oci = c
        .attach_spec(&r, doc, ArtifactKind::OciCompat, &AttachOptions::default())
        .await
        .unwrap();
    let mut node = features("1");
    let declare = |f: &mut Features, v: &str| {
        f.set_attributes(
            "compat.org.example",
            BTreeMap::from([("gpu".to_string(), v.to_string())]),
        )
    };

    declare(&mut node, "a100");
    let v = check_image(&c, &r, &p, &node, &[]).await;
    match &v.outcome {
        Outcome::Compatible { detail } => assert_eq!(
            detail, "best set \"main\"; oci-compat: 1 of 1 keys match",
            "{v:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(v.kinds, [ArtifactKind::Nfd, ArtifactKind::OciCompat]);
    assert_eq!(v.kinds_label(), "nfd+oci-compat");

    declare(&mut node, "h100");
    let v = check_image(&c, &r, &p, &node, &[]).await;
    assert_eq!(
        v.outcome,
        Outcome::Incompatible {
            reason: "oci-compat: group \"org.example\" key \"gpu\": needs gpu=a100, the node has gpu=h100".into()
        },
        "the compatible NFD spec does not outvote the document"
    );
    assert_eq!(v.artifact.as_deref(), Some(oci.digest.to_string().as_str()));
    assert_eq!(v.kinds, [ArtifactKind::OciCompat]);

    // NFD's spec failing decides too, on its own artifact.
    let v = check_image(
        &c,
        &r,
        &p,
        &{
            let mut f = features("2");
            declare(&mut f, "a100");
            f
        },
        &[],
    )
    .await;
    assert!(matches!(v.outcome, Outcome::Incompatible { .. }), "{v:?}");
    assert_eq!(v.kinds, [ArtifactKind::Nfd]);

    // Nothing declared about org.example: unknown, allowed by default, denied on request.
    let v = check_image(&c, &r, &p, &features("1"), &[]).await;
    assert!(matches!(v.outcome, Outcome::Unknown { .. }), "{v:?}");
    assert_eq!(v.case(), "unknown");
    let mut config = Config {
        mode: Mode::Enforce,
        ..Config::default()
    };
    let d = image_compat::policy::decide(&config, "node-1", "img", &v);
    assert!(d.deny.is_none(), "onUnknown defaults to allow: {d:?}");
    assert!(d
        .annotations
        .iter()
        .any(|(k, val)| k.ends_with("/compatible") && val == "unknown"));
    config.on_unknown = FailAction::Deny;
    let d = image_compat::policy::decide(&config, "node-1", "img", &v);
    let msg = d.deny.expect("onUnknown: deny refuses");
    assert!(
        msg.contains("group \"org.example\" key \"gpu\"") && msg.ends_with("(onUnknown: deny)"),
        "{msg}"
    );

    // The hook keeps answers on disk: the same verdicts after a round trip.
    let answer = Answer::of(
        image_compat::check::answer::inspect(&c, &r, &p, image_compat::spec::Reading::Nfd).await,
    );
    let back: Answer = serde_json::from_str(&serde_json::to_string(&answer).unwrap()).unwrap();
    declare(&mut node, "h100");
    assert_eq!(back.verdict(&node, &[]), answer.verdict(&node, &[]));
    assert_eq!(back.verdict(&node, &[]).kinds, [ArtifactKind::OciCompat]);
}
