//! What an image's manifests in containerd's content store say: config digest, platform entries.

use serde::Deserialize;

use crate::registry::{media, Descriptor, Digest, Platform};

/// Manifests and indexes are small; anything past this is not one (containerd's own limit for
/// manifests it fetches is 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// The parts of a manifest or index the lookup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    Manifest { config: Digest },
    Index(Vec<IndexEntry>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub descriptor: Descriptor,
    pub platform: Option<Platform>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    size: i64,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Parses a manifest or an index. `media_type` is the descriptor's; when it is neither kind
/// (empty, or unknown), the document's own `mediaType` and shape decide, as containerd does.
pub(crate) fn parse(media_type: &str, bytes: &[u8]) -> Result<Parsed, String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
    let kind = if media::is_index(media_type) || media::is_manifest(media_type) {
        media_type.to_string()
    } else {
        match (&raw.media_type, &raw.manifests, &raw.config) {
            (Some(t), _, _) => t.clone(),
            (None, Some(_), None) => media::OCI_INDEX.to_string(),
            (None, None, Some(_)) => media::OCI_MANIFEST.to_string(),
            _ => return Err(format!("unsupported media type {media_type:?}")),
        }
    };
    if media::is_manifest(&kind) {
        let config = raw
            .config
            .ok_or_else(|| "image manifest without a config".to_string())?;
        let config = Digest::parse(&config.digest).map_err(|e| e.to_string())?;
        return Ok(Parsed::Manifest { config });
    }
    if media::is_index(&kind) {
        let entries = raw
            .manifests
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                let digest = Digest::parse(&d.digest).map_err(|e| e.to_string())?;
                let size =
                    u64::try_from(d.size).map_err(|_| format!("negative size for {}", d.digest))?;
                let platform = d.platform.map(|p| {
                    Platform::new(
                        &p.os,
                        &p.architecture,
                        p.variant.as_deref().filter(|v| !v.is_empty()),
                    )
                });
                Ok(IndexEntry {
                    descriptor: Descriptor::new(
                        d.media_type.as_deref().unwrap_or(""),
                        digest,
                        size,
                    ),
                    platform,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        return Ok(Parsed::Index(entries));
    }
    Err(format!("unsupported media type {kind:?}"))
}

/// The index entry a client on `platform` would run: os/architecture match, the exact
/// (normalised) variant preferred, the first in index order among equals. Entries without a
/// platform (attestations, other artifacts) never match.
pub(crate) fn select<'a>(entries: &'a [IndexEntry], platform: &Platform) -> Option<&'a IndexEntry> {
    entries
        .iter()
        .filter(|e| e.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .min_by_key(|e| e.platform.as_ref().map_or(u8::MAX, |p| platform.rank(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn index(entries: &[(&str, &str, Option<&str>, u8)]) -> Vec<u8> {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(os, arch, variant, n)| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    p["variant"] = serde_json::json!(v);
                }
                serde_json::json!({"mediaType": media::OCI_MANIFEST, "digest": d(*n), "size": 10, "platform": p})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests})).unwrap()
    }

    #[test]
    fn manifest_config() {
        let m = serde_json::json!({"schemaVersion": 2, "config": {"mediaType": "x", "digest": d(1), "size": 3}, "layers": []});
        let bytes = serde_json::to_vec(&m).unwrap();
        let want = Parsed::Manifest {
            config: Digest::parse(&d(1)).unwrap(),
        };
        assert_eq!(parse(media::OCI_MANIFEST, &bytes).unwrap(), want);
        assert_eq!(parse(media::DOCKER_MANIFEST, &bytes).unwrap(), want);
        // No media type anywhere: the shape decides.
        assert_eq!(parse("", &bytes).unwrap(), want);
        assert!(parse(media::OCI_MANIFEST, b"{}").is_err());
        assert!(parse(media::OCI_MANIFEST, b"not json").is_err());
    }

    #[test]
    fn picks_the_platform_like_a_client() {
        let bytes = index(&[
            ("linux", "arm64", Some("v8"), 1),
            ("linux", "arm", Some("v6"), 2),
            ("linux", "arm", Some("v7"), 3),
            ("unknown", "unknown", None, 4),
            ("linux", "amd64", None, 5),
            ("linux", "amd64", None, 6),
        ]);
        let Parsed::Index(entries) = parse(media::OCI_INDEX, &bytes).unwrap() else {
            panic!("not an index");
        };
        let pick = |p: &str| {
            select(&entries, &Platform::parse(p).unwrap()).map(|e| e.descriptor.digest.to_string())
        };
        assert_eq!(pick("linux/amd64"), Some(d(5)), "first of equals");
        assert_eq!(pick("linux/arm64"), Some(d(1)));
        assert_eq!(pick("linux/arm/v7"), Some(d(3)));
        assert_eq!(pick("linux/arm"), Some(d(3)), "arm means v7 first");
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
    }

    #[test]
    fn docker_manifest_list_by_shape() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&index(&[("linux", "amd64", None, 7)])).unwrap();
        v["mediaType"] = serde_json::json!(media::DOCKER_MANIFEST_LIST);
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(matches!(parse("", &bytes).unwrap(), Parsed::Index(e) if e.len() == 1));
        assert!(matches!(
            parse(media::DOCKER_MANIFEST_LIST, &bytes).unwrap(),
            Parsed::Index(_)
        ));
    }
}
