//! Media types, annotation keys and fixed values of the OCI specs and NFD's artifact.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (also the referrers list).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The OCI empty descriptor's media type (image spec 1.1), content `{}`.
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The content of the empty config blob.
pub const EMPTY_JSON: &[u8] = b"{}";
/// NFD's image compatibility artifact type.
pub const ARTIFACT_TYPE: &str = "application/vnd.nfd.image-compatibility.v1alpha1";
/// NFD's compatibility spec layer (YAML).
pub const SPEC_LAYER: &str = "application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml";
/// The OCI image-compatibility working group's generic artifact (Proposal F).
pub const OCI_COMPAT_ARTIFACT_TYPE: &str = "application/vnd.oci.image-compatibility.v1";
/// Its one layer: the JSON document.
pub const OCI_COMPAT_LAYER: &str = "application/vnd.oci.image-compatibility.spec.v1+json";

/// The kinds of compatibility artifact an image may carry; the newest of each kind is used.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// NFD's image compatibility spec (YAML, `version: v1alpha1`).
    Nfd,
    /// Proposal F's compatibility document (JSON).
    OciCompat,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 2] = [ArtifactKind::Nfd, ArtifactKind::OciCompat];

    pub fn artifact_type(self) -> &'static str {
        match self {
            ArtifactKind::Nfd => ARTIFACT_TYPE,
            ArtifactKind::OciCompat => OCI_COMPAT_ARTIFACT_TYPE,
        }
    }

    pub fn layer_media_type(self) -> &'static str {
        match self {
            ArtifactKind::Nfd => SPEC_LAYER,
            ArtifactKind::OciCompat => OCI_COMPAT_LAYER,
        }
    }

    /// The kind of an artifact type, if it is one of ours.
    pub fn of(artifact_type: &str) -> Option<ArtifactKind> {
        ArtifactKind::ALL
            .into_iter()
            .find(|k| k.artifact_type() == artifact_type)
    }

    /// `nfd` or `oci-compat`: in tables, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Nfd => "nfd",
            ArtifactKind::OciCompat => "oci-compat",
        }
    }
}

/// RFC 3339 creation time; NFD uses the newest artifact by it.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// File name of a layer (oras sets it from the pushed file).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// Accept header for resolving a reference: indexes and manifests, OCI and docker.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
/// Accept header for a referrers index.
pub(crate) const INDEX_ACCEPT: &str = OCI_INDEX;

/// Whether `media_type` is a multi-platform index.
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` is a single-platform image manifest.
pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}
