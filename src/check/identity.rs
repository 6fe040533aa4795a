//! Which image a container runs: its name and digest from what the runtime tells us, and the
//! references its compatibility artifact may hang on.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::Candidates;
use crate::registry::{Digest, Reference};

/// Annotations runtimes put on a container that name its image, most reliable first.
/// containerd's CRI writes `io.kubernetes.cri.image-name` (the tag the pod asked for, or the
/// image's first reference: see REAL-STACK.md); CRI-O writes `io.kubernetes.cri-o.ImageName`
/// (the name) and `io.kubernetes.cri-o.ImageRef` (the image ID).
pub const IMAGE_NAME_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.image-name",
    "io.kubernetes.cri-o.ImageName",
];

/// The image of one container, as far as the runtime says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIdentity {
    /// The image name (`registry/repo:tag` or `registry/repo@sha256:...`).
    pub name: String,
    /// The image's digest when the runtime sends it (NRI >= 0.12 `Container.image`).
    pub digest: Option<String>,
}

/// The image of a container: NRI's `Container.image` when the runtime sends it, else the
/// runtimes' annotations. None when nothing names it.
pub fn image_of(
    image: Option<(&str, &str)>,
    annotations: &BTreeMap<String, String>,
) -> Option<ImageIdentity> {
    if let Some((name, digest)) = image.filter(|(n, _)| !n.is_empty()) {
        return Some(ImageIdentity {
            name: name.to_string(),
            digest: (!digest.is_empty()).then(|| digest.to_string()),
        });
    }
    IMAGE_NAME_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.get(*k).filter(|v| !v.is_empty()))
        .map(|name| ImageIdentity {
            name: name.clone(),
            digest: None,
        })
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error("image {name:?} is not known to the runtime: {reason}")]
    NotFound { name: String, reason: String },
    #[error("cannot resolve image {name:?}: {reason}")]
    Failed { name: String, reason: String },
}

/// Turns an image identity into the references to look artifacts up for.
#[async_trait]
pub trait Resolver: Send + Sync {
    async fn candidates(&self, image: &ImageIdentity) -> Result<Candidates, ResolveError>;
}

/// Resolution without a runtime to ask: the name itself (a tag is resolved in the registry
/// at fetch time), pinned to the runtime's digest when it sent one. Used when no containerd
/// socket is configured, and by runtimes that send the digest.
pub struct NameResolver;

#[async_trait]
impl Resolver for NameResolver {
    async fn candidates(&self, image: &ImageIdentity) -> Result<Candidates, ResolveError> {
        let failed = |reason: String| ResolveError::Failed {
            name: image.name.clone(),
            reason,
        };
        let r = Reference::parse(&image.name).map_err(|e| failed(e.to_string()))?;
        let r = match &image.digest {
            Some(d) => {
                let d = Digest::parse(d).map_err(|e| failed(e.to_string()))?;
                r.at_digest(d)
            }
            None => r,
        };
        Ok(Candidates::one(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn identity_sources_in_order() {
        let a = ann(&[
            ("io.kubernetes.cri.image-name", "reg/app:1"),
            ("io.kubernetes.cri-o.ImageName", "reg/other:2"),
        ]);
        assert_eq!(image_of(None, &a).unwrap().name, "reg/app:1");
        let id = image_of(Some(("reg/x:3", "sha256:abc")), &a).unwrap();
        assert_eq!(
            (id.name.as_str(), id.digest.as_deref()),
            ("reg/x:3", Some("sha256:abc"))
        );
        assert_eq!(image_of(Some(("", "")), &a).unwrap().name, "reg/app:1");
        let crio = ann(&[("io.kubernetes.cri-o.ImageName", "quay.io/a/b:c")]);
        assert_eq!(image_of(None, &crio).unwrap().name, "quay.io/a/b:c");
        assert_eq!(image_of(None, &ann(&[])), None);
    }

    #[tokio::test]
    async fn name_resolver() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let c = NameResolver
            .candidates(&ImageIdentity {
                name: "busybox".into(),
                digest: None,
            })
            .await
            .unwrap();
        assert_eq!(c.0[0].to_string(), "docker.io/library/busybox:latest");
        let c = NameResolver
            .candidates(&ImageIdentity {
                name: "reg:5000/app:1".into(),
                digest: Some(digest.clone()),
            })
            .await
            .unwrap();
        assert_eq!(c.0[0].digest().map(|d| d.to_string()), Some(digest));
        assert!(NameResolver
            .candidates(&ImageIdentity {
                name: "UPPER/Case".into(),
                digest: None
            })
            .await
            .is_err());
    }
}
