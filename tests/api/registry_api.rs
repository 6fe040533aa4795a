//! The registry client against the in-process test registry (Referrers API path and more).
//!
//! Also: tag schema, artifact selection, content checks, auth, redirects, timeouts, errors and
//! hosts.toml mirrors.

use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use image_compat::registry::{
    media, AttachOptions, Client, ContentCheck, Credentials, Digest, Discovery, ErrorKind,
    Platform, Reference, RegistryConfig, RegistryError, RemoveWhich, SubjectKind,
};
use serde_json::json;
use support::oci_server::{sha256, AuthMode, Behaviour, TestRegistry};

const SPEC: &[u8] = b"version: v1alpha1\ncompatibilities:\n- rules: []\n";

fn config_for(reg: &TestRegistry) -> RegistryConfig {
    RegistryConfig {
        request_timeout: Duration::from_secs(5),
        ..reg.client_config()
    }
}

fn client_for(reg: &TestRegistry) -> Client {
    Client::new(config_for(reg)).expect("client")
}

fn reference(reg: &TestRegistry, name: &str) -> Reference {
    Reference::parse(&format!("{}/{name}", reg.host)).expect("reference")
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").expect("platform")
}

/// An artifact manifest as oras attach writes it, with `created` and a spec blob in `reg`.
pub(crate) fn artifact(
    reg: &TestRegistry,
    subject: &serde_json::Value,
    spec: &[u8],
    created: Option<&str>,
) -> serde_json::Value {
    let layer = reg.put_blob(spec);
    reg.put_blob(b"{}");
    let mut annotations = serde_json::Map::new();
    if let Some(c) = created {
        annotations.insert(media::ANNOTATION_CREATED.into(), c.into());
    }
    json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": media::ARTIFACT_TYPE,
        "config": {"mediaType": media::EMPTY_CONFIG, "digest": sha256(b"{}"), "size": 2, "data": "e30="},
        "layers": [{"mediaType": media::SPEC_LAYER, "digest": layer, "size": spec.len()}],
        "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]},
        "annotations": annotations,
    })
}

fn digest_of(v: &serde_json::Value) -> Digest {
    Digest::parse(v["digest"].as_str().expect("digest")).expect("digest")
}

fn check_of(e: &RegistryError) -> Option<ContentCheck> {
    match e {
        RegistryError::InvalidContent { check, .. } => Some(*check),
        _ => None,
    }
}

#[tokio::test]
async fn attach_fetch_list_remove_through_the_referrers_api() {
    let reg = TestRegistry::start().await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");

    let attached = client
        .attach_spec(
            &r,
            SPEC,
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    assert_eq!(attached.discovery, Discovery::ReferrersApi);
    assert_eq!(attached.subject.digest, digest_of(&image));
    assert!(
        reg.tags("app").iter().all(|t| !t.starts_with("sha256-")),
        "a registry with the API needs no fallback tag: {:?}",
        reg.tags("app")
    );

    reg.clear_log();
    let spec = client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("a spec");
    assert_eq!(spec.bytes, SPEC);
    assert_eq!(spec.artifact.digest, attached.digest);
    assert_eq!(spec.artifact.discovery, Discovery::ReferrersApi);
    assert_eq!(spec.artifact.subject_kind, SubjectKind::PlatformManifest);
    assert_eq!(spec.image.manifest.digest, digest_of(&image));
    assert!(spec.image.index.is_none());
    // Unfiltered: the API filters by one artifact type, and both kinds are wanted.
    let asked_api = reg
        .requests()
        .iter()
        .any(|l| l.path.contains("/referrers/") && l.query.is_empty());
    assert!(asked_api, "{:#?}", reg.requests());

    let image_res = client.resolve(&r, &amd64()).await.expect("resolve");
    let list = client
        .list_compat_artifacts(&image_res)
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert!(list[0].selected);
    assert_eq!(
        list[0].created_raw.as_deref(),
        Some(attached.created.as_str())
    );

    let removed = client
        .remove_specs(&image_res, &RemoveWhich::All)
        .await
        .expect("remove");
    assert_eq!(removed, vec![attached.digest.clone()]);
    assert!(!reg.has_manifest("app", &attached.digest.to_string()));
    assert!(reg.has_manifest("app", image["digest"].as_str().unwrap_or_default()));
    assert!(client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .is_none());
}

#[tokio::test]
async fn unfiltered_and_paginated_referrers_are_handled() {
    let reg = TestRegistry::start_with(Behaviour {
        filter_referrers: false,
        referrers_page_size: Some(1),
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let mut signature = artifact(&reg, &image, b"sig", Some("2030-01-01T00:00:00Z"));
    signature["artifactType"] = "application/vnd.example.signature.v1".into();
    signature["layers"][0]["mediaType"] = "application/octet-stream".into();
    reg.put_artifact("app", &signature);
    for (i, created) in ["2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"]
        .iter()
        .enumerate()
    {
        let a = artifact(&reg, &image, format!("spec {i}").as_bytes(), Some(created));
        reg.put_artifact("app", &a);
    }
    let client = client_for(&reg);
    let resolved = client
        .resolve(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect("resolve");
    let list = client.list_compat_artifacts(&resolved).await.expect("list");
    // Three referrers on three pages, unfiltered by the server: two are compatibility artifacts.
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(list
        .iter()
        .all(|a| a.artifact_type.as_deref() == Some(media::ARTIFACT_TYPE)));
    let pages = reg
        .requests()
        .iter()
        .filter(|l| l.path.contains("/referrers/"))
        .count();
    assert_eq!(pages, 3);
    let spec = client
        .fetch_spec_for(&resolved)
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"spec 1");
}

#[tokio::test]
async fn tag_schema_fallback_keeps_other_referrers() {
    let reg = TestRegistry::start_with(Behaviour {
        referrers_api: false,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let mut signature = artifact(&reg, &image, b"sig", Some("2030-01-01T00:00:00Z"));
    signature["artifactType"] = "application/vnd.example.signature.v1".into();
    let sig = reg.put_artifact("app", &signature);
    let tag = digest_of(&image).referrers_tag();

    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");
    let first = client
        .attach_spec(
            &r,
            b"first: 1\n",
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    let second = client
        .attach_spec(
            &r,
            b"second: 2\n",
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    assert_eq!(first.discovery, Discovery::TagSchema);
    let index = reg.manifest_by_tag("app", &tag).expect("fallback index");
    let digests: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["digest"].as_str())
        .collect();
    assert_eq!(digests.len(), 3, "{index:#}");
    assert!(digests.contains(&sig["digest"].as_str().unwrap_or_default()));
    // Each attach replaced the index and deleted the superseded one, as oras does.
    let deletes = reg
        .requests()
        .iter()
        .filter(|l| l.method == "DELETE" && l.path.contains("/manifests/sha256:"))
        .count();
    assert_eq!(deletes, 2, "one superseded index deleted per attach");

    let spec = client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.artifact.discovery, Discovery::TagSchema);
    assert_eq!(spec.bytes, b"second: 2\n", "the newer attach wins");

    let resolved = client.resolve(&r, &amd64()).await.expect("resolve");
    let removed = client
        .remove_specs(&resolved, &RemoveWhich::Artifact(second.digest.clone()))
        .await
        .expect("remove one");
    assert_eq!(removed, vec![second.digest.clone()]);
    let spec = client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.artifact.digest, first.digest);

    client
        .remove_specs(&resolved, &RemoveWhich::All)
        .await
        .expect("remove all");
    let index = reg
        .manifest_by_tag("app", &tag)
        .expect("index kept for the signature");
    let left: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["digest"].as_str())
        .collect();
    assert_eq!(left, vec![sig["digest"].as_str().unwrap_or_default()]);
    assert!(reg.has_manifest("app", sig["digest"].as_str().unwrap_or_default()));
    assert!(client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .is_none());

    // An artifact that is not this image's is refused.
    let err = client
        .remove_specs(&resolved, &RemoveWhich::Artifact(digest_of(&sig)))
        .await
        .expect_err("a signature is not a compatibility artifact");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn removing_the_last_referrer_deletes_the_fallback_tag() {
    let reg = TestRegistry::start_with(Behaviour {
        referrers_api: false,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");
    client
        .attach_spec(
            &r,
            SPEC,
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    let tag = digest_of(&image).referrers_tag();
    assert!(reg.tags("app").contains(&tag));
    let resolved = client.resolve(&r, &amd64()).await.expect("resolve");
    client
        .remove_specs(&resolved, &RemoveWhich::All)
        .await
        .expect("remove");
    assert_eq!(reg.tags("app"), vec!["v1".to_string()]);
}

#[tokio::test]
async fn newest_created_wins_and_missing_or_invalid_is_oldest() {
    let reg = TestRegistry::start().await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    for (spec, created) in [
        (&b"old"[..], Some("2024-01-01T00:00:00Z")),
        (b"new", Some("2025-01-01T00:00:00.250Z")),
        (b"none", None),
        (b"bad", Some("last tuesday")),
        (b"older", Some("2025-01-01T00:00:00Z")),
    ] {
        let a = artifact(&reg, &image, spec, created);
        reg.put_artifact("app", &a);
    }
    let client = client_for(&reg);
    let spec = client
        .fetch_spec(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"new");
    assert_eq!(
        spec.artifact.created_raw.as_deref(),
        Some("2025-01-01T00:00:00.250Z")
    );
}

#[tokio::test]
async fn referrers_without_annotations_are_dated_from_their_manifests() {
    let reg = TestRegistry::start_with(Behaviour {
        omit_referrer_annotations: true,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    for (spec, created) in [
        (&b"a"[..], "2025-05-01T00:00:00Z"),
        (b"b", "2024-05-01T00:00:00Z"),
    ] {
        let a = artifact(&reg, &image, spec, Some(created));
        reg.put_artifact("app", &a);
    }
    let client = client_for(&reg);
    let spec = client
        .fetch_spec(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"a");
}

#[tokio::test]
async fn platform_manifest_artifact_beats_index_artifact() {
    let reg = TestRegistry::start().await;
    let (index, manifests) = reg.push_index("app", "v1", &["linux/amd64", "linux/arm64/v8"]);
    let on_index = artifact(&reg, &index, b"index spec", Some("2030-01-01T00:00:00Z"));
    reg.put_artifact("app", &on_index);
    let on_amd64 = artifact(
        &reg,
        &manifests[0],
        b"amd64 spec",
        Some("2020-01-01T00:00:00Z"),
    );
    reg.put_artifact("app", &on_amd64);

    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");
    let resolved = client.resolve(&r, &amd64()).await.expect("resolve");
    assert_eq!(
        resolved.index.as_ref().map(|i| &i.digest),
        Some(&digest_of(&index))
    );
    assert_eq!(resolved.manifest.digest, digest_of(&manifests[0]));
    assert_eq!(resolved.platform, Some(amd64()));

    let spec = client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"amd64 spec");
    assert_eq!(spec.artifact.subject_kind, SubjectKind::PlatformManifest);

    let arm = Platform::parse("linux/arm64").expect("platform");
    let spec = client
        .fetch_spec(&r, &arm)
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"index spec");
    assert_eq!(spec.artifact.subject_kind, SubjectKind::Index);
    assert_eq!(spec.artifact.subject, digest_of(&index));

    let list = client.list_compat_artifacts(&resolved).await.expect("list");
    let kinds: Vec<_> = list.iter().map(|a| (a.subject_kind, a.selected)).collect();
    assert_eq!(
        kinds,
        vec![
            (SubjectKind::PlatformManifest, true),
            (SubjectKind::Index, false)
        ]
    );

    // A digest reference to the index resolves the same way.
    let by_digest = reference(&reg, &format!("app@{}", digest_of(&index)));
    let spec = client
        .fetch_spec(&by_digest, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"amd64 spec");

    // Attach with a platform puts the artifact on that platform's manifest.
    let attached = client
        .attach_spec(
            &r,
            b"arm spec",
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions {
                platform: Some(arm.clone()),
                ..AttachOptions::default()
            },
        )
        .await
        .expect("attach");
    assert_eq!(attached.subject.digest, digest_of(&manifests[1]));
    assert_eq!(attached.subject_kind, SubjectKind::PlatformManifest);
    let spec = client
        .fetch_spec(&r, &arm)
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"arm spec");

    let err = client
        .resolve(&r, &Platform::parse("linux/s390x").expect("platform"))
        .await
        .expect_err("no such platform");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64/v8"),
        "{err}"
    );
}

#[tokio::test]
async fn no_artifact_is_none_but_a_missing_image_is_an_error() {
    let reg = TestRegistry::start().await;
    reg.push_image("app", Some("v1"), "linux", "amd64");
    let client = client_for(&reg);
    let none = client
        .fetch_spec(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect("fetch");
    assert!(none.is_none());
    let err = client
        .fetch_spec(&reference(&reg, "app:v2"), &amd64())
        .await
        .expect_err("no such tag");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
}

#[tokio::test]
async fn wrong_digests_are_refused() {
    let reg = TestRegistry::start().await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let a = artifact(&reg, &image, SPEC, Some("2025-01-01T00:00:00Z"));
    let desc = reg.put_artifact("app", &a);
    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");

    reg.behave(|b| {
        b.corrupt_manifests
            .insert(desc["digest"].as_str().unwrap_or_default().to_string());
    });
    let err = client
        .fetch_spec(&r, &amd64())
        .await
        .expect_err("corrupt manifest");
    assert_eq!(err.kind(), ErrorKind::InvalidContent);
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");

    reg.behave(|b| {
        b.corrupt_manifests.clear();
        b.corrupt_blobs.insert(sha256(SPEC));
    });
    let err = client
        .fetch_spec(&r, &amd64())
        .await
        .expect_err("corrupt blob");
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("spec layer"), "{err}");

    // A tag whose body does not match its Docker-Content-Digest.
    reg.behave(|b| {
        b.corrupt_blobs.clear();
        b.corrupt_manifests
            .insert(image["digest"].as_str().unwrap_or_default().to_string());
    });
    let err = client
        .resolve(&r, &amd64())
        .await
        .expect_err("corrupt image manifest");
    assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");
}

#[tokio::test]
async fn oversized_specs_and_manifests_are_refused() {
    let reg = TestRegistry::start().await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");

    // The descriptor already says it is too big (512 KiB, over the default 256 KiB): refused
    // without a blob request.
    let mut big = artifact(&reg, &image, SPEC, Some("2025-01-01T00:00:00Z"));
    big["layers"][0]["size"] = (512 * 1024).into();
    let big_desc = reg.put_artifact("app", &big);
    reg.clear_log();
    let err = client.fetch_spec(&r, &amd64()).await.expect_err("too big");
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                seen_in: "descriptor",
                ..
            }
        ),
        "{err}"
    );
    assert!(!reg.requests().iter().any(|l| l.path.contains("/blobs/")));

    // The descriptor lies; the server sends 512 KiB, with and without Content-Length.
    let digest = big_desc["digest"].as_str().unwrap_or_default().to_string();
    reg.behave(|b| {
        b.deletes = true;
    });
    client
        .remove_specs(
            &client.resolve(&r, &amd64()).await.expect("resolve"),
            &RemoveWhich::Artifact(Digest::parse(&digest).expect("digest")),
        )
        .await
        .expect("remove");
    let small = artifact(&reg, &image, SPEC, Some("2025-01-01T00:00:00Z"));
    reg.put_artifact("app", &small);
    for (chunked, seen) in [(false, "Content-Length"), (true, "body read so far")] {
        reg.behave(|b| {
            b.oversize_blobs.insert(sha256(SPEC), (512 * 1024, chunked));
        });
        let err = client.fetch_spec(&r, &amd64()).await.expect_err("too big");
        match &err {
            RegistryError::TooLarge { seen_in, limit, .. } => {
                assert_eq!(*seen_in, seen);
                assert_eq!(*limit, 256 * 1024);
            }
            other => panic!("expected TooLarge, got {other}"),
        }
        assert_eq!(err.kind(), ErrorKind::InvalidContent);
    }

    // Both caps are configurable.
    reg.behave(|b| b.oversize_blobs.clear());
    let tight = Client::new(RegistryConfig {
        max_spec_bytes: 8,
        ..config_for(&reg)
    })
    .expect("client");
    assert!(matches!(
        tight.fetch_spec(&r, &amd64()).await,
        Err(RegistryError::TooLarge { .. })
    ));
    let tiny = Client::new(RegistryConfig {
        max_manifest_bytes: 64,
        ..config_for(&reg)
    })
    .expect("client");
    let err = tiny
        .resolve(&r, &amd64())
        .await
        .expect_err("manifest over cap");
    assert!(
        matches!(err, RegistryError::TooLarge { limit: 64, .. }),
        "{err}"
    );
}

type Mutation = fn(&mut serde_json::Value);

#[tokio::test]
async fn media_type_checks_say_which_failed() {
    let reg = TestRegistry::start_with(Behaviour {
        referrers_api: false,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");
    let cases: Vec<(&str, Mutation, ContentCheck)> = vec![
        (
            "layer",
            |a| a["layers"][0]["mediaType"] = "text/plain".into(),
            ContentCheck::LayerMediaType,
        ),
        (
            "config",
            |a| a["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json".into(),
            ContentCheck::ConfigMediaType,
        ),
        // Listed as a compatibility artifact in the index, but the manifest says otherwise.
        (
            "type",
            |a| a["artifactType"] = "application/vnd.example.other".into(),
            ContentCheck::ArtifactType,
        ),
        (
            "layers",
            |a| a["layers"] = json!([]),
            ContentCheck::LayerCount,
        ),
    ];
    for (i, (name, mutate, expected)) in cases.into_iter().enumerate() {
        let mut a = artifact(&reg, &image, SPEC, Some(&format!("203{i}-01-01T00:00:00Z")));
        mutate(&mut a);
        let desc = reg.put_manifest("app", None, &a);
        let mut entry = desc.clone();
        entry["artifactType"] = media::ARTIFACT_TYPE.into();
        entry["annotations"] = a["annotations"].clone();
        reg.add_to_tag_index("app", image["digest"].as_str().unwrap_or_default(), entry);
        let err = client.fetch_spec(&r, &amd64()).await.expect_err(name);
        assert_eq!(check_of(&err), Some(expected), "{name}: {err}");
        assert!(err.to_string().contains(&expected.to_string()), "{err}");
    }
}

#[tokio::test]
async fn bearer_token_auth() {
    let reg = TestRegistry::start_with(Behaviour {
        auth: AuthMode::Bearer {
            username: "alice".into(),
            password: "s3cret".into(),
        },
        refresh_token: Some("refresh-me".into()),
        ..Behaviour::default()
    })
    .await;
    reg.push_image("app", Some("v1"), "linux", "amd64");
    let r = reference(&reg, "app:v1");

    let anonymous = client_for(&reg);
    let err = anonymous
        .fetch_spec(&r, &amd64())
        .await
        .expect_err("needs credentials");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(
        err.to_string().contains("bad or missing credentials"),
        "{err}"
    );

    let with = |c: Credentials| {
        let mut cfg = config_for(&reg);
        cfg.credentials.insert(reg.host.clone(), c);
        Client::new(cfg).expect("client")
    };
    let wrong = with(Credentials::Basic {
        username: "alice".into(),
        password: "nope".into(),
    });
    assert_eq!(
        wrong
            .fetch_spec(&r, &amd64())
            .await
            .expect_err("wrong password")
            .kind(),
        ErrorKind::Auth
    );

    let alice = with(Credentials::Basic {
        username: "alice".into(),
        password: "s3cret".into(),
    });
    let attached = alice
        .attach_spec(
            &r,
            SPEC,
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    reg.clear_log();
    for _ in 0..3 {
        let spec = alice
            .fetch_spec(&r, &amd64())
            .await
            .expect("fetch")
            .expect("spec");
        assert_eq!(spec.artifact.digest, attached.digest);
    }
    let token_requests = reg.requests().iter().filter(|l| l.path == "/token").count();
    assert!(
        token_requests <= 1,
        "tokens are cached: {token_requests} token requests"
    );

    // A docker config with an identity token (OAuth2 refresh token).
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"auths": {reg.host.clone(): {"identitytoken": "refresh-me"}}}).to_string(),
    )
    .expect("write");
    let from_file = Client::new(RegistryConfig {
        docker_config: Some(config),
        ..config_for(&reg)
    })
    .expect("client");
    assert!(from_file
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .is_some());

    // A registry access token given directly (--registry-token-stdin).
    let token: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "http://{}/token?service=test-registry&scope=repository:app:pull",
            reg.host
        ))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .expect("token")
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).expect("json"))
        .expect("body");
    let bearer = with(Credentials::Bearer(
        token["token"].as_str().unwrap_or_default().into(),
    ));
    reg.clear_log();
    assert!(bearer
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .is_some());
    assert!(!reg.requests().iter().any(|l| l.path == "/token"));
}

#[tokio::test]
async fn basic_auth_from_containers_auth_json() {
    let reg = TestRegistry::start_with(Behaviour {
        auth: AuthMode::Basic {
            username: "bob".into(),
            password: "pw".into(),
        },
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    reg.put_artifact("app", &artifact(&reg, &image, SPEC, None));
    let r = reference(&reg, "app:v1");

    let err = client_for(&reg)
        .fetch_spec(&r, &amd64())
        .await
        .expect_err("anonymous");
    assert!(
        matches!(err, RegistryError::CredentialsRequired { .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Auth);

    let dir = tempfile::tempdir().expect("tempdir");
    let auth = dir.path().join("auth.json");
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "bob:pw");
    std::fs::write(
        &auth,
        json!({"auths": {reg.host.clone(): {"auth": encoded}}}).to_string(),
    )
    .expect("write");
    let client = Client::new(RegistryConfig {
        containers_auth: Some(auth),
        ..config_for(&reg)
    })
    .expect("client");
    let spec = client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, SPEC);
}

#[tokio::test]
async fn blob_redirects_are_followed_without_credentials() {
    let reg = TestRegistry::start_with(Behaviour {
        auth: AuthMode::Bearer {
            username: "alice".into(),
            password: "s3cret".into(),
        },
        redirect_blobs: true,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    reg.put_artifact("app", &artifact(&reg, &image, SPEC, None));
    let mut cfg = config_for(&reg);
    cfg.credentials.insert(
        reg.host.clone(),
        Credentials::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        },
    );
    let client = Client::new(cfg).expect("client");
    let spec = client
        .fetch_spec(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, SPEC);
    let log = reg.requests();
    let redirected: Vec<_> = log.iter().filter(|l| l.redirected).collect();
    assert_eq!(redirected.len(), 1, "{log:#?}");
    assert_eq!(
        redirected[0].authorization, None,
        "credentials must not follow a redirect to another host"
    );
    assert!(log
        .iter()
        .any(|l| !l.redirected && l.path.contains("/blobs/") && l.authorization.is_some()));
}

#[tokio::test]
async fn slow_registry_times_out() {
    let reg = TestRegistry::start_with(Behaviour {
        delay: Some(("/referrers/".into(), Duration::from_secs(5))),
        ..Behaviour::default()
    })
    .await;
    reg.push_image("app", Some("v1"), "linux", "amd64");
    let client = Client::new(RegistryConfig {
        request_timeout: Duration::from_millis(400),
        ..config_for(&reg)
    })
    .expect("client");
    let started = Instant::now();
    let err = client
        .fetch_spec(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect_err("timeout");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(err.to_string().contains("/referrers/"), "{err}");
}

#[tokio::test]
async fn non_json_error_bodies_are_reported() {
    let reg = TestRegistry::start_with(Behaviour {
        fail: Some((
            "/manifests/".into(),
            502,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1>upstream down</body></html>".into(),
        )),
        ..Behaviour::default()
    })
    .await;
    let err = client_for(&reg)
        .fetch_spec(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect_err("502");
    assert_eq!(err.kind(), ErrorKind::Server);
    let said = err.registry_said().expect("what the registry said");
    assert_eq!(said.status, 502);
    assert!(err.to_string().contains("upstream down"), "{err}");
}

#[tokio::test]
async fn refused_deletes_are_a_clear_error_and_change_nothing() {
    let reg = TestRegistry::start_with(Behaviour {
        referrers_api: false,
        deletes: false,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");
    let attached = client
        .attach_spec(
            &r,
            SPEC,
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    let resolved = client.resolve(&r, &amd64()).await.expect("resolve");
    let err = client
        .remove_specs(&resolved, &RemoveWhich::All)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("does not allow deleting"), "{err}");
    assert!(err.to_string().contains("UNSUPPORTED"), "{err}");
    assert!(reg.has_manifest("app", &attached.digest.to_string()));
    let index = reg
        .manifest_by_tag("app", &digest_of(&image).referrers_tag())
        .expect("index");
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn registry_down_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let host = format!("127.0.0.1:{port}");
    let client = Client::new(RegistryConfig {
        plain_http: vec![host.clone()],
        ..RegistryConfig::without_credential_files()
    })
    .expect("client");
    let err = client
        .fetch_spec(
            &Reference::parse(&format!("{host}/app:v1")).expect("ref"),
            &amd64(),
        )
        .await
        .expect_err("down");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
}

#[tokio::test]
async fn hosts_toml_mirrors_are_tried_first() {
    let upstream = TestRegistry::start().await;
    let mirror = TestRegistry::start().await;
    let image = upstream.push_image("app", Some("v1"), "linux", "amd64");
    upstream.put_artifact("app", &artifact(&upstream, &image, b"upstream", None));

    let dir = tempfile::tempdir().expect("tempdir");
    let host_dir = dir.path().join("registry.test_5000_");
    std::fs::create_dir_all(&host_dir).expect("mkdir");
    std::fs::write(
        host_dir.join("hosts.toml"),
        format!(
            "server = \"http://{}\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            upstream.host, mirror.host
        ),
    )
    .expect("write");
    let client = Client::new(RegistryConfig {
        hosts_dir: Some(dir.path().to_path_buf()),
        request_timeout: Duration::from_secs(5),
        ..RegistryConfig::without_credential_files()
    })
    .expect("client");
    let r = Reference::parse("registry.test:5000/app:v1").expect("ref");

    // The mirror has nothing: the server answers.
    let spec = client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"upstream");
    assert_eq!(spec.served_by, upstream.host);
    let asked = mirror.requests();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|l| l.query.contains("ns=registry.test%3A5000")),
        "{asked:#?}"
    );

    // The mirror has the image and its own artifact: it answers first.
    let image_m = mirror.push_image("app", Some("v1"), "linux", "amd64");
    assert_eq!(image_m["digest"], image["digest"]);
    mirror.put_artifact("app", &artifact(&mirror, &image_m, b"mirrored", None));
    let spec = client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"mirrored");
    assert_eq!(spec.served_by, mirror.host);

    // Writes go to the server only.
    upstream.clear_log();
    mirror.clear_log();
    client
        .attach_spec(
            &r,
            SPEC,
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    assert!(mirror.requests().is_empty());
    assert!(upstream.requests().iter().any(|l| l.method == "PUT"));
}

#[tokio::test]
async fn attach_rejects_a_bad_created_annotation() {
    let reg = TestRegistry::start().await;
    reg.push_image("app", Some("v1"), "linux", "amd64");
    let mut annotations = BTreeMap::new();
    annotations.insert(media::ANNOTATION_CREATED.to_string(), "soon".to_string());
    annotations.insert("org.example.note".to_string(), "kept".to_string());
    let client = client_for(&reg);
    let r = reference(&reg, "app:v1");
    let err = client
        .attach_spec(
            &r,
            SPEC,
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions {
                annotations: annotations.clone(),
                ..AttachOptions::default()
            },
        )
        .await
        .expect_err("bad created");
    assert_eq!(err.kind(), ErrorKind::Config);

    annotations.insert(
        media::ANNOTATION_CREATED.to_string(),
        "2024-02-03T04:05:06Z".to_string(),
    );
    let attached = client
        .attach_spec(
            &r,
            SPEC,
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions {
                annotations,
                file_name: Some("spec.yaml".into()),
                ..AttachOptions::default()
            },
        )
        .await
        .expect("attach");
    assert_eq!(attached.created, "2024-02-03T04:05:06Z");
    let spec = client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(
        spec.artifact
            .annotations
            .get("org.example.note")
            .map(String::as_str),
        Some("kept")
    );
    assert_eq!(
        spec.layer
            .annotations
            .get(media::ANNOTATION_TITLE)
            .map(String::as_str),
        Some("spec.yaml")
    );
}

#[tokio::test]
async fn stale_tag_schema_entries_are_skipped() {
    let reg = TestRegistry::start_with(Behaviour {
        referrers_api: false,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    reg.put_artifact(
        "app",
        &artifact(&reg, &image, SPEC, Some("2024-01-01T00:00:00Z")),
    );
    // Newer, but its manifest was deleted without fixing the index.
    reg.add_to_tag_index(
        "app",
        image["digest"].as_str().unwrap_or_default(),
        json!({
            "mediaType": media::OCI_MANIFEST,
            "digest": sha256(b"gone"),
            "size": 100,
            "artifactType": media::ARTIFACT_TYPE,
            "annotations": {media::ANNOTATION_CREATED: "2030-01-01T00:00:00Z"}
        }),
    );
    let client = client_for(&reg);
    let spec = client
        .fetch_spec(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect("fetch")
        .expect("the existing artifact");
    assert_eq!(spec.bytes, SPEC);
    assert_eq!(
        spec.artifact.created_raw.as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
}

#[tokio::test]
async fn oversized_artifact_manifest_descriptor_is_refused_before_fetching() {
    let reg = TestRegistry::start_with(Behaviour {
        referrers_api: false,
        ..Behaviour::default()
    })
    .await;
    let image = reg.push_image("app", Some("v1"), "linux", "amd64");
    let a = artifact(&reg, &image, SPEC, Some("2024-01-01T00:00:00Z"));
    let desc = reg.put_manifest("app", None, &a);
    let mut entry = desc.clone();
    entry["size"] = (64 * 1024 * 1024).into();
    entry["artifactType"] = media::ARTIFACT_TYPE.into();
    entry["annotations"] = a["annotations"].clone();
    reg.add_to_tag_index("app", image["digest"].as_str().unwrap_or_default(), entry);
    reg.clear_log();
    let err = client_for(&reg)
        .fetch_spec(&reference(&reg, "app:v1"), &amd64())
        .await
        .expect_err("too big");
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                seen_in: "descriptor",
                ..
            }
        ),
        "{err}"
    );
    let asked_for_it = reg.requests().iter().any(|l| {
        l.path
            .ends_with(desc["digest"].as_str().unwrap_or_default())
    });
    assert!(!asked_for_it);
}

/// The first lookup on a host asks the Referrers API and the tag schema at once; what it
/// learns decides later lookups on that host: only the tag schema without the API, only the
/// API with it.
#[tokio::test]
async fn the_referrers_api_is_probed_once_per_host() {
    let count = |reg: &TestRegistry| {
        let log = reg.requests();
        let api = log
            .iter()
            .filter(|l| l.path.contains("/referrers/"))
            .count();
        let tag = log
            .iter()
            .filter(|l| l.path.contains("/manifests/sha256-"))
            .count();
        (api, tag)
    };
    for api in [false, true] {
        let reg = TestRegistry::start_with(Behaviour {
            referrers_api: api,
            ..Behaviour::default()
        })
        .await;
        reg.push_image("app", Some("v1"), "linux", "amd64");
        let client = client_for(&reg);
        let r = reference(&reg, "app:v1");
        client
            .attach_spec(
                &r,
                SPEC,
                image_compat::registry::media::ArtifactKind::Nfd,
                &AttachOptions::default(),
            )
            .await
            .expect("attach");
        // A fresh client knows nothing about the host: both at once.
        let client = client_for(&reg);
        reg.clear_log();
        let spec = client.fetch_spec(&r, &amd64()).await.expect("fetch");
        assert_eq!(spec.expect("a spec").bytes, SPEC);
        assert_eq!(count(&reg), (1, 1), "first lookup, API {api}");
        reg.clear_log();
        let spec = client.fetch_spec(&r, &amd64()).await.expect("fetch");
        assert_eq!(spec.expect("a spec").bytes, SPEC);
        let want = if api { (1, 0) } else { (0, 1) };
        assert_eq!(count(&reg), want, "second lookup, API {api}");
    }
}

/// Both kinds on one image, through the Referrers API and through the tag schema: each kind's
/// newest is fetched, both are listed (one selected per kind), other referrers are left alone,
/// and removing all removes both kinds.
#[tokio::test]
async fn nfd_and_proposal_f_artifacts_side_by_side() {
    for referrers_api in [true, false] {
        let reg = TestRegistry::start_with(Behaviour {
            referrers_api,
            ..Behaviour::default()
        })
        .await;
        let image = reg.push_image("app", Some("v1"), "linux", "amd64");
        let mut signature = artifact(&reg, &image, b"sig", Some("2030-01-01T00:00:00Z"));
        signature["artifactType"] = "application/vnd.example.signature.v1".into();
        let sig = reg.put_artifact("app", &signature);
        let client = client_for(&reg);
        let r = reference(&reg, "app:v1");
        let old_doc = br#"{"compatibilities": {"io.archspec": {"target": "x86_64"}}}"#;
        let new_doc = br#"{"compatibilities": {"io.archspec": {"target": "x86_64_v2"}}}"#;
        let mut attached = Vec::new();
        for (bytes, kind) in [
            (&old_doc[..], media::ArtifactKind::OciCompat),
            (SPEC, media::ArtifactKind::Nfd),
            (&new_doc[..], media::ArtifactKind::OciCompat),
        ] {
            let a = client
                .attach_spec(&r, bytes, kind, &AttachOptions::default())
                .await
                .expect("attach");
            attached.push(a.digest);
        }
        let fetched = client.fetch_artifacts(&r, &amd64()).await.expect("fetch");
        let kinds: Vec<(media::ArtifactKind, &[u8])> = fetched
            .iter()
            .map(|f| (f.artifact.kind, &f.bytes[..]))
            .collect();
        assert_eq!(
            kinds,
            [
                (media::ArtifactKind::Nfd, SPEC),
                (media::ArtifactKind::OciCompat, &new_doc[..])
            ],
            "api {referrers_api}"
        );
        assert_eq!(fetched[1].layer.media_type, media::OCI_COMPAT_LAYER);
        assert_eq!(fetched[1].artifact.digest, attached[2]);
        // The manifest as the registry holds it: Proposal F's artifact and layer types.
        let m = reg
            .manifest("app", &attached[2].to_string())
            .expect("artifact manifest");
        assert_eq!(m["artifactType"], media::OCI_COMPAT_ARTIFACT_TYPE);
        assert_eq!(m["layers"][0]["mediaType"], media::OCI_COMPAT_LAYER);

        let resolved = client.resolve(&r, &amd64()).await.expect("resolve");
        let list = client.list_compat_artifacts(&resolved).await.expect("list");
        let listed: Vec<(media::ArtifactKind, bool)> =
            list.iter().map(|a| (a.kind, a.selected)).collect();
        assert_eq!(list.len(), 3, "the signature is not listed: {list:#?}");
        assert_eq!(
            listed.iter().filter(|(_, s)| *s).count(),
            2,
            "one selected per kind: {listed:?}"
        );
        let spec = client
            .fetch_spec_for(&resolved)
            .await
            .expect("fetch")
            .expect("nfd");
        assert_eq!(spec.bytes, SPEC);

        let removed = client
            .remove_specs(&resolved, &RemoveWhich::All)
            .await
            .expect("remove");
        assert_eq!(removed.len(), 3);
        assert!(client
            .fetch_artifacts_for(&resolved)
            .await
            .expect("fetch")
            .is_empty());
        assert!(reg.has_manifest("app", sig["digest"].as_str().unwrap_or_default()));
    }
}
