//! The compatibility artifact: descriptors, which one wins, checking and building its manifest.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageManifest};

use super::error::{ContentCheck, RegistryError};
use super::media;
use super::platform::Platform;
use super::reference::Digest;

/// A content descriptor (OCI image spec), with a validated digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub(crate) fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }

    fn checked(
        media_type: &str,
        digest: &str,
        size: i64,
        artifact_type: Option<&String>,
        annotations: Option<&BTreeMap<String, String>>,
        what: &str,
    ) -> Result<Self, RegistryError> {
        let bad = |detail: String| RegistryError::InvalidContent {
            what: what.to_string(),
            check: ContentCheck::Descriptor,
            detail,
        };
        let digest = Digest::parse(digest).map_err(|e| bad(e.to_string()))?;
        let size = u64::try_from(size).map_err(|_| bad(format!("negative size {size}")))?;
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            artifact_type: artifact_type.cloned(),
            annotations: annotations.cloned().unwrap_or_default(),
        })
    }

    pub(crate) fn from_entry(e: &ImageIndexEntry, what: &str) -> Result<Self, RegistryError> {
        Self::checked(
            &e.media_type,
            &e.digest,
            e.size,
            e.artifact_type.as_ref(),
            e.annotations.as_ref(),
            what,
        )
    }

    pub(crate) fn from_oci(d: &OciDescriptor, what: &str) -> Result<Self, RegistryError> {
        Self::checked(
            &d.media_type,
            &d.digest,
            d.size,
            d.artifact_type.as_ref(),
            d.annotations.as_ref(),
            what,
        )
    }

    /// As JSON for a manifest or referrers index.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("mediaType".into(), self.media_type.clone().into());
        m.insert("digest".into(), self.digest.to_string().into());
        m.insert("size".into(), self.size.into());
        if let Some(a) = &self.artifact_type {
            m.insert("artifactType".into(), a.clone().into());
        }
        if !self.annotations.is_empty() {
            m.insert(
                "annotations".into(),
                serde_json::to_value(&self.annotations).unwrap_or_default(),
            );
        }
        serde_json::Value::Object(m)
    }
}

/// Which descriptor of a resolved image an artifact refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    /// The platform's image manifest.
    PlatformManifest,
    /// The multi-platform index the reference points at.
    Index,
}

/// How an artifact was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// The registry's Referrers API.
    ReferrersApi,
    /// The referrers tag schema (`<alg>-<hex>` tag holding an index), for registries without
    /// the API.
    TagSchema,
}

/// A resolved image: the index the reference points at (if any) and the platform's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The reference as asked (registry, repository, tag/digest).
    pub reference: super::reference::Reference,
    /// The index or manifest list, when the reference points at one.
    pub index: Option<Descriptor>,
    /// The image manifest of the requested platform (or the only manifest).
    pub manifest: Descriptor,
    /// The platform of `manifest` as the index lists it.
    pub platform: Option<Platform>,
}

impl ResolvedImage {
    /// What the reference points at: the index when there is one, else the manifest.
    pub fn target(&self) -> &Descriptor {
        self.index.as_ref().unwrap_or(&self.manifest)
    }

    /// The subjects artifacts are looked up on, in precedence order.
    pub fn subjects(&self) -> Vec<(SubjectKind, &Descriptor)> {
        let mut s = vec![(SubjectKind::PlatformManifest, &self.manifest)];
        if let Some(i) = &self.index {
            s.push((SubjectKind::Index, i));
        }
        s
    }
}

/// One compatibility artifact of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// The artifact manifest's digest.
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub artifact_type: Option<String>,
    /// `org.opencontainers.image.created`, when present and RFC 3339.
    pub created: Option<DateTime<Utc>>,
    /// The raw `org.opencontainers.image.created` value, valid or not.
    pub created_raw: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub subject_kind: SubjectKind,
    pub subject: Digest,
    pub discovery: Discovery,
    /// Which kind of compatibility artifact it is (from its artifact type).
    pub kind: media::ArtifactKind,
    /// The artifact `fetch_artifacts_for` uses: the first of its kind in precedence order.
    pub selected: bool,
}

impl ArtifactInfo {
    pub(crate) fn new(
        d: Descriptor,
        subject_kind: SubjectKind,
        subject: Digest,
        discovery: Discovery,
    ) -> Self {
        let created_raw = d.annotations.get(media::ANNOTATION_CREATED).cloned();
        let created = created_raw.as_deref().and_then(parse_created);
        let kind = d
            .artifact_type
            .as_deref()
            .and_then(media::ArtifactKind::of)
            .unwrap_or(media::ArtifactKind::Nfd);
        ArtifactInfo {
            kind,
            digest: d.digest,
            size: d.size,
            media_type: d.media_type,
            artifact_type: d.artifact_type,
            created,
            created_raw,
            annotations: d.annotations,
            subject_kind,
            subject,
            discovery,
            selected: false,
        }
    }
}

/// Parses an RFC 3339 timestamp (fractional seconds allowed, as Go's time.RFC3339 parse does).
pub(crate) fn parse_created(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a creation time the way attach writes it.
pub(crate) fn format_created(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Sorts artifacts in precedence order and marks the winner.
///
/// Precedence: an artifact on the platform manifest beats any on the index (it is the more
/// specific statement, and the index's one is the default for all platforms); within a subject
/// the newest `created` wins, a missing or invalid `created` counting as oldest (as NFD's sort
/// does); equal times are ordered by digest, highest first, so the choice is stable.
pub(crate) fn rank(artifacts: &mut [ArtifactInfo]) {
    artifacts.sort_by(|a, b| {
        let kind = |k: SubjectKind| match k {
            SubjectKind::PlatformManifest => 0,
            SubjectKind::Index => 1,
        };
        kind(a.subject_kind)
            .cmp(&kind(b.subject_kind))
            .then_with(|| b.created.cmp(&a.created))
            .then_with(|| b.digest.cmp(&a.digest))
    });
    let mut seen = std::collections::BTreeSet::new();
    for a in artifacts.iter_mut() {
        a.selected = seen.insert(a.kind);
    }
}

/// Checks a fetched artifact manifest; returns its spec layer descriptor.
pub(crate) fn check_artifact_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    digest: &Digest,
    subject: &Digest,
    kind: media::ArtifactKind,
) -> Result<Descriptor, RegistryError> {
    let what = format!("compatibility artifact {digest}");
    let fail = |check: ContentCheck, detail: String| RegistryError::InvalidContent {
        what: what.clone(),
        check,
        detail,
    };
    let m: OciImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| fail(ContentCheck::Json, format!("not an image manifest: {e}")))?;
    let media_type = m.media_type.as_deref().or(content_type);
    if media_type != Some(media::OCI_MANIFEST) {
        return Err(fail(
            ContentCheck::ManifestMediaType,
            format!(
                "expected {}, got {}",
                media::OCI_MANIFEST,
                media_type.unwrap_or("none")
            ),
        ));
    }
    // The image spec: artifactType, else the config's media type, is the artifact's type.
    let artifact_type = m.artifact_type.as_deref().unwrap_or(&m.config.media_type);
    if artifact_type != kind.artifact_type() {
        return Err(fail(
            ContentCheck::ArtifactType,
            format!("expected {}, got {artifact_type}", kind.artifact_type()),
        ));
    }
    // oras attach and NFD write the empty config; an artifact typed by its config media type
    // (the pre-1.1 way) is accepted too.
    let config = &m.config;
    let empty_ok = config.media_type == media::EMPTY_CONFIG
        && config.digest == Digest::sha256_of(media::EMPTY_JSON).to_string()
        && config.size == media::EMPTY_JSON.len() as i64;
    if !(empty_ok || config.media_type == kind.artifact_type()) {
        return Err(fail(
            ContentCheck::ConfigMediaType,
            format!(
                "expected the empty config ({}, {}, size 2), got {} {} size {}",
                media::EMPTY_CONFIG,
                Digest::sha256_of(media::EMPTY_JSON),
                config.media_type,
                config.digest,
                config.size
            ),
        ));
    }
    if m.layers.len() != 1 {
        return Err(fail(
            ContentCheck::LayerCount,
            format!("expected exactly one spec layer, got {}", m.layers.len()),
        ));
    }
    let layer = &m.layers[0];
    if layer.media_type != kind.layer_media_type() {
        return Err(fail(
            ContentCheck::LayerMediaType,
            format!(
                "expected {}, got {}",
                kind.layer_media_type(),
                layer.media_type
            ),
        ));
    }
    match &m.subject {
        Some(s) if s.digest == subject.to_string() => {}
        Some(s) => {
            return Err(fail(
                ContentCheck::Subject,
                format!(
                    "listed as a referrer of {subject}, but its subject is {}",
                    s.digest
                ),
            ))
        }
        None => {
            return Err(fail(
                ContentCheck::Subject,
                format!("listed as a referrer of {subject}, but it has no subject"),
            ))
        }
    }
    Descriptor::from_oci(layer, &what)
}

/// Builds the artifact manifest to attach: empty config, one spec layer, `subject`, and the
/// annotations (which carry `org.opencontainers.image.created`).
pub(crate) fn build_artifact_manifest(
    subject: &Descriptor,
    layer: &Descriptor,
    annotations: &BTreeMap<String, String>,
    kind: media::ArtifactKind,
) -> Vec<u8> {
    let empty = Descriptor::new(
        media::EMPTY_CONFIG,
        Digest::sha256_of(media::EMPTY_JSON),
        media::EMPTY_JSON.len() as u64,
    );
    let mut config = empty.to_json();
    // oras writes the empty config's content inline too (`data`, base64 of `{}`).
    if let Some(o) = config.as_object_mut() {
        o.insert("data".into(), "e30=".into());
    }
    let subject = Descriptor {
        artifact_type: None,
        annotations: BTreeMap::new(),
        ..subject.clone()
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": kind.artifact_type(),
        "config": config,
        "layers": [layer.to_json()],
        "subject": subject.to_json(),
        "annotations": annotations,
    });
    serde_json::to_vec(&manifest).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(hex_byte: &str, created: Option<&str>, kind: SubjectKind) -> ArtifactInfo {
        let mut d = Descriptor::new(
            media::OCI_MANIFEST,
            Digest::sha256_of(hex_byte.as_bytes()),
            1,
        );
        if let Some(c) = created {
            d.annotations
                .insert(media::ANNOTATION_CREATED.into(), c.into());
        }
        ArtifactInfo::new(d, kind, Digest::sha256_of(b"subject"), Discovery::TagSchema)
    }

    #[test]
    fn newest_wins_missing_and_invalid_are_oldest() {
        let mut a = vec![
            info("a", Some("2024-01-01T00:00:00Z"), SubjectKind::Index),
            info("b", Some("2025-06-01T10:00:00.5+02:00"), SubjectKind::Index),
            info("c", None, SubjectKind::Index),
            info("d", Some("yesterday"), SubjectKind::Index),
            info("e", Some("2025-06-01T08:00:00.4Z"), SubjectKind::Index),
        ];
        rank(&mut a);
        let order: Vec<_> = a
            .iter()
            .map(|x| x.created_raw.clone().unwrap_or_default())
            .collect();
        assert_eq!(order[0], "2025-06-01T10:00:00.5+02:00");
        assert_eq!(order[1], "2025-06-01T08:00:00.4Z");
        assert_eq!(order[2], "2024-01-01T00:00:00Z");
        assert!(a[0].selected && a.iter().filter(|x| x.selected).count() == 1);
        assert!(a[3].created.is_none() && a[4].created.is_none());
    }

    #[test]
    fn ties_break_by_digest_and_platform_beats_index() {
        let t = Some("2024-01-01T00:00:00Z");
        let mut a = vec![
            info("x", t, SubjectKind::Index),
            info("y", t, SubjectKind::Index),
        ];
        rank(&mut a);
        assert!(a[0].digest > a[1].digest);
        let mut b = vec![
            info("new", Some("2030-01-01T00:00:00Z"), SubjectKind::Index),
            info(
                "old",
                Some("2000-01-01T00:00:00Z"),
                SubjectKind::PlatformManifest,
            ),
        ];
        rank(&mut b);
        assert_eq!(b[0].subject_kind, SubjectKind::PlatformManifest);
    }

    fn manifest_json(f: impl FnOnce(&mut serde_json::Value)) -> (Vec<u8>, Digest) {
        let subject = Descriptor::new(media::OCI_MANIFEST, Digest::sha256_of(b"img"), 10);
        let layer = Descriptor::new(media::SPEC_LAYER, Digest::sha256_of(b"spec"), 4);
        let mut ann = BTreeMap::new();
        ann.insert(
            media::ANNOTATION_CREATED.to_string(),
            "2024-01-01T00:00:00Z".to_string(),
        );
        let bytes = build_artifact_manifest(&subject, &layer, &ann, media::ArtifactKind::Nfd);
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        f(&mut v);
        (serde_json::to_vec(&v).unwrap(), subject.digest)
    }

    fn check(bytes: &[u8], subject: &Digest) -> Result<Descriptor, RegistryError> {
        check_artifact_manifest(
            bytes,
            None,
            &Digest::sha256_of(bytes),
            subject,
            media::ArtifactKind::Nfd,
        )
    }

    fn failed_check(e: RegistryError) -> ContentCheck {
        match e {
            RegistryError::InvalidContent { check, .. } => check,
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn each_kind_is_built_and_checked_as_itself() {
        let subject = Descriptor::new(media::OCI_MANIFEST, Digest::sha256_of(b"img"), 10);
        let layer = Descriptor::new(media::OCI_COMPAT_LAYER, Digest::sha256_of(b"{}"), 2);
        let bytes = build_artifact_manifest(
            &subject,
            &layer,
            &BTreeMap::new(),
            media::ArtifactKind::OciCompat,
        );
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["artifactType"], media::OCI_COMPAT_ARTIFACT_TYPE);
        assert_eq!(v["layers"][0]["mediaType"], media::OCI_COMPAT_LAYER);
        let d = Digest::sha256_of(&bytes);
        let ok = check_artifact_manifest(
            &bytes,
            None,
            &d,
            &subject.digest,
            media::ArtifactKind::OciCompat,
        );
        assert_eq!(ok.unwrap().media_type, media::OCI_COMPAT_LAYER);
        let e =
            check_artifact_manifest(&bytes, None, &d, &subject.digest, media::ArtifactKind::Nfd);
        assert_eq!(failed_check(e.unwrap_err()), ContentCheck::ArtifactType);
    }

    #[test]
    fn built_manifest_passes_its_own_checks() {
        let (bytes, subject) = manifest_json(|_| {});
        let layer = check(&bytes, &subject).unwrap();
        assert_eq!(layer.digest, Digest::sha256_of(b"spec"));
        assert_eq!(layer.size, 4);
    }

    type Mutation = Box<dyn FnOnce(&mut serde_json::Value)>;

    #[test]
    fn each_check_says_what_failed() {
        let cases: Vec<(Mutation, ContentCheck)> = vec![
            (
                Box::new(|v| v["mediaType"] = "application/x".into()),
                ContentCheck::ManifestMediaType,
            ),
            (
                Box::new(|v| v["artifactType"] = "application/vnd.other".into()),
                ContentCheck::ArtifactType,
            ),
            (
                Box::new(|v| {
                    v["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json".into()
                }),
                ContentCheck::ConfigMediaType,
            ),
            (
                Box::new(|v| v["config"]["size"] = 3.into()),
                ContentCheck::ConfigMediaType,
            ),
            (
                Box::new(|v| v["layers"] = serde_json::json!([])),
                ContentCheck::LayerCount,
            ),
            (
                Box::new(|v| v["layers"][0]["mediaType"] = "text/plain".into()),
                ContentCheck::LayerMediaType,
            ),
            (
                Box::new(|v| {
                    v["subject"]["digest"] = Digest::sha256_of(b"else").to_string().into()
                }),
                ContentCheck::Subject,
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("subject");
                }),
                ContentCheck::Subject,
            ),
            (
                Box::new(|v| v["layers"][0]["digest"] = "sha256:nothex".into()),
                ContentCheck::Descriptor,
            ),
        ];
        for (mutate, expected) in cases {
            let (bytes, subject) = manifest_json(mutate);
            assert_eq!(failed_check(check(&bytes, &subject).unwrap_err()), expected);
        }
        let subject = Digest::sha256_of(b"img");
        assert_eq!(
            failed_check(check(b"[1,2]", &subject).unwrap_err()),
            ContentCheck::Json
        );
    }

    #[test]
    fn config_typed_artifacts_are_accepted() {
        let (bytes, subject) = manifest_json(|v| {
            v.as_object_mut().unwrap().remove("artifactType");
            v["config"] = serde_json::json!({
                "mediaType": media::ARTIFACT_TYPE,
                "digest": Digest::sha256_of(b"{}").to_string(),
                "size": 2
            });
        });
        assert!(check(&bytes, &subject).is_ok());
    }
}
