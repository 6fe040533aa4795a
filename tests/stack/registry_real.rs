//! The tag schema path against the real docker-registry 2.8 and the real oras CLI.
//!
//! Artifacts attached by either are seen by the other, removals keep other referrers. Skipped,
//! with a message, when integration/lib/install.sh cannot provide the binaries.

use crate::support;

use std::time::Duration;

use image_compat::registry::{
    media, AttachOptions, Client, Discovery, ErrorKind, Platform, Reference, RegistryConfig,
    RemoveWhich, SubjectKind,
};
use support::stack::RegistryEnv;

const SPEC: &str = "version: v1alpha1\ncompatibilities:\n- description: needs avx\n  rules: []\n";
const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1";

struct Env {
    base: RegistryEnv,
    client: Client,
}

// The registry, oras and scratch directory are read through `env.` as if they were Env's own.
impl std::ops::Deref for Env {
    type Target = RegistryEnv;
    fn deref(&self) -> &RegistryEnv {
        &self.base
    }
}

fn env() -> Option<Env> {
    let base = RegistryEnv::start()?;
    let client = Client::new(RegistryConfig {
        plain_http: vec![base.reg.host.clone()],
        request_timeout: Duration::from_secs(10),
        ..RegistryConfig::without_credential_files()
    })
    .expect("client");
    Some(Env { base, client })
}

impl Env {
    fn reference(&self, name: &str) -> Reference {
        Reference::parse(&self.r(name)).expect("reference")
    }

    fn oras(&self, args: &[&str]) -> String {
        self.oras.run(args, self.dir())
    }

    /// Pushes a one-layer linux image with oras; returns its manifest digest.
    fn push_image(&self, name: &str, arch: &str) -> String {
        self.oras.push_image(&self.r(name), arch, self.dir())
    }

    fn digest_of(&self, name: &str) -> String {
        self.oras.digest_of(&self.r(name), self.dir())
    }

    /// `oras attach` of a file with an artifact type and layer media type.
    fn oras_attach(
        &self,
        name: &str,
        artifact_type: &str,
        file: &str,
        content: &str,
        layer_type: &str,
    ) {
        self.oras.attach(
            &self.r(name),
            artifact_type,
            (file, content),
            layer_type,
            self.dir(),
        );
    }

    /// (digest, artifactType) of the referrers `oras discover` lists.
    fn discover(&self, name: &str) -> Vec<(String, String)> {
        self.oras.referrers(&self.r(name), self.dir())
    }
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").expect("platform")
}

#[tokio::test]
async fn spec_attached_by_oras_is_found() {
    let Some(env) = env() else { return };
    let image = env.push_image("app:v1", "amd64");
    env.oras_attach(
        "app:v1",
        media::ARTIFACT_TYPE,
        "spec.yaml",
        SPEC,
        media::SPEC_LAYER,
    );

    let spec = env
        .client
        .fetch_spec(&env.reference("app:v1"), &amd64())
        .await
        .expect("fetch")
        .expect("the oras-attached spec");
    assert_eq!(spec.bytes, SPEC.as_bytes());
    assert_eq!(spec.artifact.discovery, Discovery::TagSchema);
    assert_eq!(spec.artifact.subject.to_string(), image);
    assert_eq!(spec.artifact.subject_kind, SubjectKind::PlatformManifest);
    assert!(
        spec.artifact.created.is_some(),
        "oras sets the created annotation"
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
async fn spec_attached_by_client_is_seen_by_oras_and_removal_keeps_other_referrers() {
    let Some(env) = env() else { return };
    let image = env.push_image("app:v1", "amd64");
    env.oras_attach(
        "app:v1",
        SIGNATURE_TYPE,
        "sig.txt",
        "signed\n",
        "application/octet-stream",
    );
    let signature = env.discover("app:v1");
    assert_eq!(signature.len(), 1);

    let r = env.reference("app:v1");
    let attached = env
        .client
        .attach_spec(
            &r,
            SPEC.as_bytes(),
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    assert_eq!(attached.discovery, Discovery::TagSchema);
    let mut seen = env.discover("app:v1");
    seen.sort();
    let mut expected = vec![
        signature[0].clone(),
        (
            attached.digest.to_string(),
            media::ARTIFACT_TYPE.to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected, "oras discover lists both referrers");

    let manifest = env.oras.run_json(
        &[
            "manifest",
            "fetch",
            "--plain-http",
            &env.r(&format!("app@{}", attached.digest)),
        ],
        env.dir(),
    );
    assert_eq!(manifest["artifactType"], media::ARTIFACT_TYPE);
    assert_eq!(manifest["config"]["mediaType"], media::EMPTY_CONFIG);
    assert_eq!(manifest["subject"]["digest"], image.as_str());
    assert_eq!(manifest["layers"][0]["mediaType"], media::SPEC_LAYER);

    let resolved = env.client.resolve(&r, &amd64()).await.expect("resolve");
    let removed = env
        .client
        .remove_specs(&resolved, &RemoveWhich::All)
        .await
        .expect("remove");
    assert_eq!(removed, vec![attached.digest.clone()]);
    assert_eq!(
        env.discover("app:v1"),
        signature,
        "only the signature is left"
    );
    assert!(env
        .client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .is_none());
    let gone = env.oras.try_run(
        &[
            "manifest",
            "fetch",
            "--plain-http",
            &env.r(&format!("app@{}", attached.digest)),
        ],
        env.dir(),
    );
    assert!(!gone.status.success(), "the artifact manifest is deleted");
    // The image and the signature are untouched.
    assert_eq!(env.digest_of("app:v1"), image);
    env.oras(&[
        "manifest",
        "fetch",
        "--plain-http",
        &env.r(&format!("app@{}", signature[0].0)),
    ]);
}

#[tokio::test]
async fn specs_from_both_tools_share_the_index_and_the_newest_wins() {
    let Some(env) = env() else { return };
    env.push_image("app:v1", "amd64");
    env.oras_attach(
        "app:v1",
        media::ARTIFACT_TYPE,
        "spec.yaml",
        "from: oras\n",
        media::SPEC_LAYER,
    );
    // oras truncates created to whole seconds, ours keeps the fraction: ours is newer.
    let r = env.reference("app:v1");
    let ours = env
        .client
        .attach_spec(
            &r,
            b"from: image-compat\n",
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    let resolved = env.client.resolve(&r, &amd64()).await.expect("resolve");
    let list = env
        .client
        .list_compat_artifacts(&resolved)
        .await
        .expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].digest, ours.digest);
    assert!(list[0].selected && !list[1].selected);
    let spec = env
        .client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"from: image-compat\n");

    // Removing ours by digest leaves the oras one in the index.
    env.client
        .remove_specs(&resolved, &RemoveWhich::Artifact(ours.digest.clone()))
        .await
        .expect("remove");
    let spec = env
        .client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"from: oras\n");
    assert_eq!(env.discover("app:v1").len(), 1);
}

#[tokio::test]
async fn removing_the_last_referrer_drops_the_fallback_tag_like_oras() {
    let Some(env) = env() else { return };
    let image = env.push_image("app:v1", "amd64");
    let r = env.reference("app:v1");
    env.client
        .attach_spec(
            &r,
            SPEC.as_bytes(),
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    let fallback_tag = image.replace(':', "-");
    let tags = env.oras(&["repo", "tags", "--plain-http", &env.r("app")]);
    assert!(tags.lines().any(|t| t == fallback_tag), "{tags}");
    let resolved = env.client.resolve(&r, &amd64()).await.expect("resolve");
    env.client
        .remove_specs(&resolved, &RemoveWhich::All)
        .await
        .expect("remove");
    let tags = env.oras(&["repo", "tags", "--plain-http", &env.r("app")]);
    assert_eq!(tags.lines().collect::<Vec<_>>(), vec!["v1"]);
    assert!(env.discover("app:v1").is_empty());
}

#[tokio::test]
async fn multi_arch_index_artifacts_on_index_and_platform() {
    let Some(env) = env() else { return };
    let (index, amd, arm) = env.push_index("app", "v1");
    env.oras_attach(
        "app:v1",
        media::ARTIFACT_TYPE,
        "spec.yaml",
        "on: index\n",
        media::SPEC_LAYER,
    );

    let r = env.reference("app:v1");
    let arm64 = Platform::parse("linux/arm64").expect("platform");
    let attached = env
        .client
        .attach_spec(
            &r,
            b"on: arm64\n",
            image_compat::registry::media::ArtifactKind::Nfd,
            &AttachOptions {
                platform: Some(arm64.clone()),
                ..AttachOptions::default()
            },
        )
        .await
        .expect("attach");
    assert_eq!(attached.subject.digest.to_string(), arm);
    let on_arm = env.discover(&format!("app@{arm}"));
    assert_eq!(
        on_arm,
        vec![(
            attached.digest.to_string(),
            media::ARTIFACT_TYPE.to_string()
        )]
    );

    let spec = env
        .client
        .fetch_spec(&r, &amd64())
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"on: index\n");
    assert_eq!(spec.artifact.subject_kind, SubjectKind::Index);
    assert_eq!(spec.artifact.subject.to_string(), index);
    assert_eq!(spec.image.manifest.digest.to_string(), amd);

    let spec = env
        .client
        .fetch_spec(&r, &arm64)
        .await
        .expect("fetch")
        .expect("spec");
    assert_eq!(spec.bytes, b"on: arm64\n");
    assert_eq!(spec.artifact.subject_kind, SubjectKind::PlatformManifest);

    let resolved = env.client.resolve(&r, &arm64).await.expect("resolve");
    let list = env
        .client
        .list_compat_artifacts(&resolved)
        .await
        .expect("list");
    let kinds: Vec<_> = list.iter().map(|a| (a.subject_kind, a.selected)).collect();
    assert_eq!(
        kinds,
        vec![
            (SubjectKind::PlatformManifest, true),
            (SubjectKind::Index, false)
        ]
    );
}

#[tokio::test]
async fn stopped_registry_is_a_clear_transport_error() {
    let Some(env) = env() else { return };
    env.push_image("app:v1", "amd64");
    let r = env.reference("app:v1");
    let Env { base, client } = env;
    drop(base.reg);
    let err = client
        .fetch_spec(&r, &amd64())
        .await
        .expect_err("registry is down");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("Connection refused") || msg.contains("connect"),
        "{msg}"
    );
    assert!(msg.contains(r.registry()), "{msg}");
}

/// Proposal F's artifact as an author attaches it with oras (`oras attach --artifact-type
/// application/vnd.oci.image-compatibility.v1 IMG f.json:application/vnd.oci.image-compatibility.spec.v1+json`)
/// is read beside an NFD spec attached by image-compat, and ours of that kind is seen by oras.
#[tokio::test]
async fn proposal_f_from_oras_and_nfd_from_image_compat_are_both_read() {
    let Some(env) = env() else { return };
    env.push_image("hpc:v1", "amd64");
    let doc = "{\"compatibilities\": {\"io.archspec\": {\"target\": \"x86_64_v2\"},\n  \"org.supercontainers\": {\"mpi.implementation\": \"openmpi\"}}}\n";
    env.oras_attach(
        "hpc:v1",
        "application/vnd.oci.image-compatibility.v1",
        "f.json",
        doc,
        "application/vnd.oci.image-compatibility.spec.v1+json",
    );
    let r = env.reference("hpc:v1");
    let nfd = env
        .client
        .attach_spec(
            &r,
            SPEC.as_bytes(),
            media::ArtifactKind::Nfd,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    let fetched = env
        .client
        .fetch_artifacts(&r, &amd64())
        .await
        .expect("fetch");
    assert_eq!(fetched.len(), 2, "{fetched:#?}");
    assert_eq!(fetched[0].artifact.digest, nfd.digest);
    assert_eq!(fetched[1].artifact.kind, media::ArtifactKind::OciCompat);
    assert_eq!(fetched[1].bytes, doc.as_bytes());
    let parsed = image_compat::compat::parse(doc, "f.json").expect("parse");
    assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);

    // And the other way: ours of Proposal F's kind, as oras discover lists it.
    let ours = env
        .client
        .attach_spec(
            &r,
            doc.as_bytes(),
            media::ArtifactKind::OciCompat,
            &AttachOptions::default(),
        )
        .await
        .expect("attach");
    let seen = env.discover("hpc:v1");
    assert!(
        seen.contains(&(
            ours.digest.to_string(),
            media::OCI_COMPAT_ARTIFACT_TYPE.to_string()
        )),
        "{seen:?}"
    );
    let manifest = env.oras.run_json(
        &[
            "manifest",
            "fetch",
            "--plain-http",
            &env.r(&format!("hpc@{}", ours.digest)),
        ],
        env.dir(),
    );
    assert_eq!(manifest["layers"][0]["mediaType"], media::OCI_COMPAT_LAYER);
}
