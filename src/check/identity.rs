//! Which image a container runs (its name and the digests the runtime knows), and the
//! references its compatibility artifact may hang on.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::Candidates;
use crate::registry::{Digest, Reference};

/// Annotations runtimes put on a container that name its image, most reliable first.
/// containerd's CRI writes `io.kubernetes.cri.image-name` (the tag the pod asked for, or the
/// image's first reference: see docs/runtimes.md); CRI-O writes `io.kubernetes.cri-o.ImageName`
/// (the name) and `io.kubernetes.cri-o.ImageRef` (the image ID).
pub const IMAGE_NAME_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.image-name",
    "io.kubernetes.cri-o.ImageName",
];

/// Where the image of an NRI container came from, when `Container.image` named it.
pub const SOURCE_NRI_IMAGE: &str = "nri-container-image";

/// The image of one container, as far as the runtime tells. Kept as the runtime wrote it:
/// the name is parsed (and refused when it is no registry reference) only when it is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIdentity {
    /// What the runtime calls the image: shown in messages, matched against `exemptImages`.
    pub name: String,
    /// Manifest or index digests the runtime knows for it, the one it was pulled by first
    /// (NRI >= 0.12 `Container.image`, CRI-O's annotations, containers/storage). When there are
    /// any, the registry is asked about them, not about the tag (which may have moved).
    pub digests: Vec<Digest>,
    /// Where the name came from (an annotation key, NRI's `Container.image`,
    /// containers-storage), for logs.
    pub source: &'static str,
}

impl ImageIdentity {
    /// The image named `name`; a name pinned to a digest (`repo@sha256:...`) knows it.
    pub fn new(name: impl Into<String>, source: &'static str) -> ImageIdentity {
        let name = name.into();
        let digests = name
            .rsplit_once('@')
            .and_then(|(_, d)| Digest::parse(d.trim()).ok())
            .into_iter()
            .collect();
        ImageIdentity {
            name,
            digests,
            source,
        }
    }

    /// Adds a digest the runtime knows, once.
    pub fn add_digest(&mut self, d: Digest) {
        if !self.digests.contains(&d) {
            self.digests.push(d);
        }
    }

    /// The runtime itself named the image's digest (NRI's `Container.image`), so no image store
    /// needs asking for it.
    pub fn digest_from_runtime(&self) -> bool {
        self.source == SOURCE_NRI_IMAGE && !self.digests.is_empty()
    }

    /// The name as a registry reference (docker's defaults applied).
    pub fn reference(&self) -> Result<Reference, ResolveError> {
        Reference::parse(&self.name).map_err(|e| ResolveError::Failed {
            name: self.name.clone(),
            reason: e.to_string(),
        })
    }
}

/// The image of an NRI container: `Container.image` when the runtime sends it (NRI >= 0.12),
/// else the runtimes' annotations. None when nothing names it. A digest that does not parse is
/// left out (the name is still looked up).
pub fn image_of(
    image: Option<(&str, &str)>,
    annotations: &BTreeMap<String, String>,
) -> Option<ImageIdentity> {
    if let Some((name, digest)) = image.filter(|(n, _)| !n.is_empty()) {
        let mut identity = ImageIdentity::new(name, SOURCE_NRI_IMAGE);
        if !digest.is_empty() {
            match Digest::parse(digest) {
                Ok(d) => identity.add_digest(d),
                Err(e) => tracing::debug!(error = %e, "the runtime's image digest is ignored"),
            }
        }
        return Some(identity);
    }
    IMAGE_NAME_ANNOTATIONS.iter().find_map(|k| {
        annotations
            .get(*k)
            .filter(|v| !v.is_empty())
            .map(|name| ImageIdentity::new(name.clone(), k))
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

/// Resolution without a runtime to ask: the image's digests in its repository, or the name
/// itself when the runtime knows none (a tag is then resolved in the registry at fetch time).
/// Used by the hook, when no containerd socket is configured, and by runtimes that send the
/// digest.
pub struct NameResolver;

impl NameResolver {
    /// [`Resolver::candidates`] without an executor (the hook is synchronous).
    pub fn resolve(image: &ImageIdentity) -> Result<Candidates, ResolveError> {
        let r = image.reference()?;
        if image.digests.is_empty() {
            return Ok(Candidates::one(r));
        }
        Ok(Candidates(
            image
                .digests
                .iter()
                .map(|d| r.at_digest(d.clone()))
                .collect(),
        ))
    }
}

#[async_trait]
impl Resolver for NameResolver {
    async fn candidates(&self, image: &ImageIdentity) -> Result<Candidates, ResolveError> {
        NameResolver::resolve(image)
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
        let digest = format!("sha256:{}", "a".repeat(64));
        let a = ann(&[
            ("io.kubernetes.cri.image-name", "reg/app:1"),
            ("io.kubernetes.cri-o.ImageName", "reg/other:2"),
        ]);
        let id = image_of(None, &a).unwrap();
        assert_eq!(
            (id.name.as_str(), id.source),
            ("reg/app:1", "io.kubernetes.cri.image-name")
        );
        let id = image_of(Some(("reg/x:3", &digest)), &a).unwrap();
        assert_eq!(id.name, "reg/x:3");
        assert_eq!(id.source, SOURCE_NRI_IMAGE);
        assert_eq!(id.digests, vec![Digest::parse(&digest).unwrap()]);
        // A digest that is no digest is left out; the name still counts.
        let id = image_of(Some(("reg/x:3", "sha256:abc")), &a).unwrap();
        assert!(id.digests.is_empty());
        assert_eq!(image_of(Some(("", "")), &a).unwrap().name, "reg/app:1");
        let crio = ann(&[("io.kubernetes.cri-o.ImageName", "quay.io/a/b:c")]);
        assert_eq!(image_of(None, &crio).unwrap().name, "quay.io/a/b:c");
        assert_eq!(image_of(None, &ann(&[])), None);
    }

    #[test]
    fn name_resolver() {
        let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let c = NameResolver::resolve(&ImageIdentity::new("busybox", "t")).unwrap();
        assert_eq!(c.0[0].to_string(), "docker.io/library/busybox:latest");
        let c =
            NameResolver::resolve(&ImageIdentity::new("index.docker.io/org/app:1", "t")).unwrap();
        assert_eq!(c.0[0].to_string(), "docker.io/org/app:1");
        let mut id = ImageIdentity::new("reg:5000/app:1", "t");
        id.add_digest(digest.clone());
        id.add_digest(digest.clone());
        let c = NameResolver::resolve(&id).unwrap();
        assert_eq!(c.0.len(), 1);
        assert_eq!(c.0[0].digest(), Some(&digest));
        assert_eq!(c.0[0].name(), "reg:5000/app");
        assert!(NameResolver::resolve(&ImageIdentity::new("UPPER/Case", "t")).is_err());
    }
}
