//! Which image a container runs: config.json annotations (CRI-O, containerd) or containers/storage.
//!
//! What each runtime writes (checked against their sources; podman and runc on this project's
//! machine):
//! - CRI-O: `io.kubernetes.cri-o.Image` is the image as the pod spec names it (tag or digest
//!   reference, or an image ID); `io.kubernetes.cri-o.ImageName` is *some* name of the image,
//!   unrelated to what the pod asked for (empty when it has none); `io.kubernetes.cri-o.ImageRef`
//!   is the image ID, i.e. the hex of the image's **config** digest, not a manifest digest (old
//!   CRI-O releases wrote `repo@sha256:<manifest>` there); recent releases add
//!   `io.kubernetes.cri-o.ImageRepoDigests` (`repo@sha256:...`, comma-separated).
//! - containerd CRI: `io.kubernetes.cri.image-name`, the name the pod asked for (a tag even when
//!   pulled by digest, see REAL-STACK.md); no digest. containerd does not read hooks.d: there the
//!   hook only runs if put into the runtime spec (e.g. `base_runtime_spec`); NRI is its route.
//! - podman 4.3: no image annotation at all; see [`super::storage`].

use std::collections::HashMap;
use std::path::Path;

use super::storage::{StorageError, Store};
use crate::check::ImageIdentity;
use crate::registry::Reference;

pub const CRIO_IMAGE: &str = "io.kubernetes.cri-o.Image";
pub const CRIO_IMAGE_NAME: &str = "io.kubernetes.cri-o.ImageName";
pub const CRIO_IMAGE_REF: &str = "io.kubernetes.cri-o.ImageRef";
pub const CRIO_IMAGE_REPO_DIGESTS: &str = "io.kubernetes.cri-o.ImageRepoDigests";
pub const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
pub const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
pub const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const CRI_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
pub const CONTAINER_MANAGER: &str = "io.container.manager";
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const CRI_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "config.json has no image annotation ({CRI_IMAGE_NAME}, {CRIO_IMAGE}, {CRIO_IMAGE_NAME}) \
         and containers/storage has no record of container {id}"
    )]
    NotFound { id: String },
    #[error(
        "containers/storage records container {id} with no image (made from a root file system?)"
    )]
    NoImage { id: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Whether the container is a pod sandbox (the pause/infra container): it runs the sandbox
/// image the runtime is configured with, not a workload image.
pub fn is_sandbox(annotations: &HashMap<String, String>) -> bool {
    [CRIO_CONTAINER_TYPE, CRI_CONTAINER_TYPE]
        .iter()
        .any(|k| annotations.get(*k).is_some_and(|v| v == "sandbox"))
}

/// The pod's namespace, when a Kubernetes runtime created the container.
pub fn namespace(annotations: &HashMap<String, String>) -> Option<&str> {
    [POD_NAMESPACE, CRI_SANDBOX_NAMESPACE]
        .iter()
        .find_map(|k| annotations.get(*k))
        .map(String::as_str)
        .filter(|n| !n.is_empty())
}

/// The pod's name, when a Kubernetes runtime created the container.
pub fn pod_name(annotations: &HashMap<String, String>) -> Option<&str> {
    first_of(annotations, &[POD_NAME, CRI_SANDBOX_NAME])
}

/// The container's name in its pod, when a Kubernetes runtime created it.
pub fn container_name(annotations: &HashMap<String, String>) -> Option<&str> {
    first_of(annotations, &[CONTAINER_NAME, CRI_CONTAINER_NAME])
}

fn first_of<'a>(annotations: &'a HashMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| annotations.get(*k))
        .map(String::as_str)
        .filter(|n| !n.is_empty())
}

/// Finds the image of container `id` from its annotations, else from containers/storage.
pub fn identify(
    id: &str,
    bundle: &Path,
    root: Option<&Path>,
    annotations: &HashMap<String, String>,
) -> Result<ImageIdentity, ImageError> {
    let get = |k: &str| {
        annotations
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if let Some(name) = get(CRI_IMAGE_NAME) {
        return Ok(ImageIdentity::new(name, CRI_IMAGE_NAME));
    }
    // CRI-O: what the pod asked for, unless it is a bare image ID; else some name of the image.
    let crio = get(CRIO_IMAGE)
        .filter(|n| !is_image_id(n))
        .map(|n| (n, CRIO_IMAGE))
        .or_else(|| get(CRIO_IMAGE_NAME).map(|n| (n, CRIO_IMAGE_NAME)));
    if let Some((name, key)) = crio {
        let mut identity = ImageIdentity::new(name, key);
        // The repository's own digests only: artifacts belong to a repository.
        if let Ok(repo) = identity.reference().map(|r| r.name()) {
            for entry in get(CRIO_IMAGE_REPO_DIGESTS)
                .unwrap_or("")
                .split([',', ' ', '\n'])
            {
                if let Ok(r) = Reference::parse(entry) {
                    if let (true, Some(d)) = (r.name() == repo, r.digest()) {
                        identity.add_digest(d.clone());
                    }
                }
            }
        }
        // The image ID leads to the pulled digests through the store CRI-O mounts the rootfs from.
        if let (Some(image_id), Some(store)) =
            (get(CRIO_IMAGE_REF), root.and_then(Store::of_rootfs))
        {
            if is_image_id(image_id) {
                match store.image(image_id) {
                    Ok(Some(img)) => img
                        .digests
                        .iter()
                        .for_each(|d| identity.add_digest(d.clone())),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "CRI-O image ID not resolved in containers/storage")
                    }
                }
            }
        }
        return Ok(identity);
    }
    // podman: the container's record in the store its bundle lives in.
    let store = Store::of_bundle(bundle, id)
        .or_else(|| root.and_then(Store::of_rootfs))
        .ok_or_else(|| ImageError::NotFound { id: id.to_string() })?;
    let record = store
        .container(id)?
        .ok_or_else(|| ImageError::NotFound { id: id.to_string() })?;
    if record.image_id.is_empty() {
        return Err(ImageError::NoImage { id: id.to_string() });
    }
    let image = store.image(&record.image_id)?;
    let name = record
        .image_name
        .or_else(|| image.as_ref().and_then(|i| i.names.first().cloned()))
        .ok_or_else(|| ImageError::NotFound { id: id.to_string() })?;
    let mut identity = ImageIdentity::new(name, "containers-storage");
    for d in image.iter().flat_map(|i| i.digests.iter()) {
        identity.add_digest(d.clone());
    }
    Ok(identity)
}

/// A containers/storage image ID: 64 hex digits, optionally `sha256:`-prefixed.
fn is_image_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::NameResolver;

    fn lookup(i: &ImageIdentity) -> String {
        NameResolver::resolve(i).unwrap().0[0].to_string()
    }

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const D: &str = "sha256:81a0df9eb6c74826773dcccb9e6da6bf3d34fe0638c521531abd80a62153f414";
    const ID: &str = "84e0bad94bb6db570c1fa3b1cb62c41899683c26315f3e6a80cc8b89eb3495d4";

    #[test]
    fn containerd_name() {
        let t = tempfile::tempdir().unwrap();
        let i = identify(
            "c",
            t.path(),
            None,
            &ann(&[(CRI_IMAGE_NAME, "registry.example/app:1")]),
        )
        .unwrap();
        assert_eq!(i.name, "registry.example/app:1");
        assert!(i.digests.is_empty());
        assert_eq!(lookup(&i), "registry.example/app:1");
        assert_eq!(i.source, CRI_IMAGE_NAME);
    }

    #[test]
    fn crio_prefers_what_the_pod_asked_for_and_its_digest() {
        let t = tempfile::tempdir().unwrap();
        let a = ann(&[
            (CRIO_IMAGE, &format!("quay.io/org/app@{D}")),
            (CRIO_IMAGE_NAME, "quay.io/org/app:other-tag"),
            (CRIO_IMAGE_REF, ID),
        ]);
        let i = identify("c", t.path(), None, &a).unwrap();
        assert_eq!(i.source, CRIO_IMAGE);
        assert_eq!(i.digests.len(), 1);
        assert_eq!(lookup(&i), format!("quay.io/org/app@{D}"));
        // An image ID in io.kubernetes.cri-o.Image (the pod named the image by ID) is no
        // registry reference: ImageName is used, and ImageRepoDigests gives its digest.
        let a = ann(&[
            (CRIO_IMAGE, ID),
            (CRIO_IMAGE_NAME, "quay.io/org/app:1"),
            (CRIO_IMAGE_REF, ID),
            (
                CRIO_IMAGE_REPO_DIGESTS,
                &format!("quay.io/other/x@{D},quay.io/org/app@{D}"),
            ),
        ]);
        let i = identify("c", t.path(), None, &a).unwrap();
        assert_eq!(i.source, CRIO_IMAGE_NAME);
        assert_eq!(i.name, "quay.io/org/app:1");
        assert_eq!(lookup(&i), format!("quay.io/org/app@{D}"));
    }

    #[test]
    fn nothing_to_go_by() {
        let t = tempfile::tempdir().unwrap();
        let e = identify("c1", t.path(), None, &ann(&[(CONTAINER_MANAGER, "libpod")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no image annotation") && e.contains("c1"), "{e}");
        // A name that is no reference fails when the registry would be asked.
        let i = identify("c1", t.path(), None, &ann(&[(CRI_IMAGE_NAME, "Not A Ref")])).unwrap();
        let e = NameResolver::resolve(&i).unwrap_err().to_string();
        assert!(e.contains("invalid image reference"), "{e}");
    }

    #[test]
    fn sandbox_and_namespace() {
        assert!(is_sandbox(&ann(&[(CRIO_CONTAINER_TYPE, "sandbox")])));
        assert!(is_sandbox(&ann(&[(CRI_CONTAINER_TYPE, "sandbox")])));
        assert!(!is_sandbox(&ann(&[(CRIO_CONTAINER_TYPE, "container")])));
        assert_eq!(namespace(&ann(&[(POD_NAMESPACE, "team")])), Some("team"));
        assert_eq!(
            namespace(&ann(&[(CRI_SANDBOX_NAMESPACE, "kube-system")])),
            Some("kube-system")
        );
        assert_eq!(namespace(&ann(&[])), None);
        let a = ann(&[(POD_NAME, "web-1"), (CONTAINER_NAME, "app")]);
        assert_eq!(
            (pod_name(&a), container_name(&a)),
            (Some("web-1"), Some("app"))
        );
        assert_eq!(container_name(&ann(&[(CONTAINER_NAME, "")])), None);
    }
}
