//! The decoders of what a registry sends, each behind a pub entry point for fuzz/: the same
//! functions the client runs on manifests, indexes and referrers lists, without the network.

use super::artifact::check_artifact_manifest;
use super::client::{compat_entries, manifest_media_type, select_platform};
use super::ops::FetchedManifest;
use super::{media, Descriptor, Digest, Platform, Reference, RegistryError};

fn placeholder_digest(byte: char) -> Digest {
    Digest::parse(&format!("sha256:{}", byte.to_string().repeat(64)))
        .expect("a well-formed constant digest")
}

fn fetched(bytes: &[u8], content_type: Option<&str>) -> FetchedManifest {
    FetchedManifest {
        bytes: bytes.to_vec(),
        digest: placeholder_digest('a'),
        content_type: content_type.map(str::to_string),
    }
}

/// The media type the client takes a fetched manifest for.
pub fn media_type(bytes: &[u8], content_type: Option<&str>) -> Option<String> {
    manifest_media_type(&fetched(bytes, content_type))
}

/// Checks `bytes` as a compatibility artifact manifest of `kind` whose subject is a fixed
/// digest; returns its spec layer.
pub fn artifact_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    kind: media::ArtifactKind,
) -> Result<Descriptor, RegistryError> {
    check_artifact_manifest(
        bytes,
        content_type,
        &placeholder_digest('a'),
        &placeholder_digest('b'),
        kind,
    )
}

/// The compatibility artifacts a referrers tag schema index lists, and those a Referrers API
/// answer lists (both read as the client reads them).
pub fn referrers(bytes: &[u8]) -> Result<(Vec<Descriptor>, Vec<Descriptor>), RegistryError> {
    let what = "referrers";
    let invalid = |e: serde_json::Error| RegistryError::InvalidContent {
        what: what.into(),
        check: super::ContentCheck::ReferrersIndex,
        detail: e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    let tag = compat_entries(&value, what)?;
    let index: oci_client::manifest::OciImageIndex =
        serde_json::from_slice(bytes).map_err(invalid)?;
    let api = index
        .manifests
        .iter()
        .filter(|m| {
            m.artifact_type
                .as_deref()
                .and_then(media::ArtifactKind::of)
                .is_some()
        })
        .map(|e| Descriptor::from_entry(e, what))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((tag, api))
}

/// The platform manifest the client picks from an image index for `platform`.
pub fn platform_manifest(
    bytes: &[u8],
    platform: &Platform,
) -> Result<(Descriptor, Platform), RegistryError> {
    let reference = Reference::parse("registry.example/app:v1").expect("a constant reference");
    select_platform(
        &fetched(bytes, Some(media::OCI_INDEX)),
        platform,
        &reference,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decoder_reads_what_the_client_reads() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","size":7,"platform":{"os":"linux","architecture":"amd64"}}]}"#;
        assert_eq!(media_type(index, None).as_deref(), Some(media::OCI_INDEX));
        let (d, p) = platform_manifest(index, &Platform::parse("linux/amd64").unwrap()).unwrap();
        assert_eq!((d.size, p.to_string().as_str()), (7, "linux/amd64"));
        assert!(platform_manifest(index, &Platform::parse("linux/arm64").unwrap()).is_err());
        let (tag, api) = referrers(index).unwrap();
        assert!(tag.is_empty() && api.is_empty(), "no artifact types");
        assert!(artifact_manifest(b"{}", None, media::ArtifactKind::Nfd).is_err());
        assert!(referrers(b"[").is_err());
    }
}
