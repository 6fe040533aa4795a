//! containers/storage records (podman, CRI-O): container -> image name and ID, image ID -> digests.
//!
//! podman 4.3 writes no image annotation into config.json (seen: only `io.container.manager`,
//! `io.kubernetes.cri-o.Created`/`TTY`, `io.podman.annotations.*` and the image's stop signal),
//! and its `/run/.containerenv` names the image only for privileged containers. What it does
//! record is containers/storage's: `<graphroot>/<driver>-containers/containers.json` holds each
//! container's image ID and, in its `metadata`, the `image-name` it was created from; and
//! `<graphroot>/<driver>-images/images.json` holds each image's `digest` (the manifest or index
//! digest it was pulled by) and the digests of every manifest stored with it (`manifest-<digest>`
//! big-data items: the index and the platform manifest of a multi-platform pull). CRI-O uses
//! the same store. Both files are replaced atomically by containers/storage (write and rename),
//! so reading them without its lock sees a whole version.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::registry::Digest;

/// Largest store file read; a node with thousands of images or containers stays well under it.
const MAX_STORE_FILE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_STORE_FILE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path} is not a containers/storage record list: {source}")]
    Syntax {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Where one containers/storage store keeps its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// The graph root (`/var/lib/containers/storage`).
    pub graphroot: PathBuf,
    /// The graph driver (`overlay`, `vfs`, ...), the prefix of its record directories.
    pub driver: String,
}

impl Store {
    /// The store a container's root file system belongs to: containers/storage mounts it at
    /// `<graphroot>/<driver>/<layer>/merged` (overlay) or `<graphroot>/<driver>/dir/<layer>`
    /// (vfs). None when the path has neither shape or the record directories are not there.
    pub fn of_rootfs(root: &Path) -> Option<Store> {
        let mut candidates = Vec::new();
        if root.file_name().is_some_and(|n| n == "merged") {
            if let Some(driver_dir) = root.parent().and_then(Path::parent) {
                candidates.push(driver_dir);
            }
        }
        if let Some(dir) = root.parent() {
            if dir.file_name().is_some_and(|n| n == "dir") {
                candidates.extend(dir.parent());
            }
        }
        candidates.into_iter().find_map(|driver_dir| {
            let driver = driver_dir.file_name()?.to_str()?.to_string();
            let graphroot = driver_dir.parent()?.to_path_buf();
            let store = Store { graphroot, driver };
            store.images_file().is_file().then_some(store)
        })
    }

    /// The store of a podman bundle: podman's bundle is the container's directory in the store,
    /// `<graphroot>/<driver>-containers/<id>/userdata`.
    pub fn of_bundle(bundle: &Path, id: &str) -> Option<Store> {
        if bundle.file_name()? != "userdata" {
            return None;
        }
        let id_dir = bundle.parent()?;
        if id_dir.file_name()? != id {
            return None;
        }
        let containers_dir = id_dir.parent()?;
        let driver = containers_dir
            .file_name()?
            .to_str()?
            .strip_suffix("-containers")?
            .to_string();
        let graphroot = containers_dir.parent()?.to_path_buf();
        let store = Store { graphroot, driver };
        store.containers_file().is_file().then_some(store)
    }

    pub fn containers_file(&self) -> PathBuf {
        self.graphroot
            .join(format!("{}-containers", self.driver))
            .join("containers.json")
    }

    pub fn images_file(&self) -> PathBuf {
        self.graphroot
            .join(format!("{}-images", self.driver))
            .join("images.json")
    }

    /// The container record with this ID, if the store has it.
    pub fn container(&self, id: &str) -> Result<Option<ContainerRecord>, StorageError> {
        let records: Vec<RawContainer> = read_records(&self.containers_file())?;
        Ok(records.into_iter().find(|c| c.id == id).map(|c| {
            #[derive(Deserialize, Default)]
            struct Metadata {
                #[serde(rename = "image-name", default)]
                image_name: String,
            }
            // The metadata is a JSON document in a string, written by the container's creator
            // (podman, CRI-O): a malformed one only loses the name.
            let meta: Metadata = serde_json::from_str(&c.metadata).unwrap_or_default();
            ContainerRecord {
                image_id: c.image,
                image_name: Some(meta.image_name).filter(|n| !n.is_empty()),
            }
        }))
    }

    /// The image record with this ID (the config digest's hex, as containers/storage names
    /// images), if the store has it.
    pub fn image(&self, id: &str) -> Result<Option<ImageRecord>, StorageError> {
        let id = id.strip_prefix("sha256:").unwrap_or(id);
        let records: Vec<RawImage> = read_records(&self.images_file())?;
        Ok(records.into_iter().find(|i| i.id == id).map(|i| {
            let mut digests: Vec<Digest> = Vec::new();
            let stored = i
                .big_data_names
                .iter()
                .filter_map(|n| n.strip_prefix("manifest-"));
            for d in i.digest.iter().chain(i.digests.iter()).map(String::as_str) {
                push_digest(&mut digests, d);
            }
            for d in stored {
                push_digest(&mut digests, d);
            }
            ImageRecord {
                names: i.names,
                digests,
            }
        }))
    }
}

fn push_digest(out: &mut Vec<Digest>, text: &str) {
    if let Ok(d) = Digest::parse(text) {
        if !out.contains(&d) {
            out.push(d);
        }
    }
}

fn read_records<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, StorageError> {
    let shown = || path.display().to_string();
    let io = |source| StorageError::Io {
        path: shown(),
        source,
    };
    let bytes = match crate::untrusted::read_file(
        path,
        MAX_STORE_FILE_BYTES,
        crate::untrusted::Links::Follow,
    ) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(StorageError::TooLarge { path: shown() })
        }
        Err(e) => return Err(io(e)),
    };
    serde_json::from_slice(&bytes).map_err(|source| StorageError::Syntax {
        path: shown(),
        source,
    })
}

#[derive(Deserialize)]
struct RawContainer {
    id: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    metadata: String,
}

#[derive(Deserialize)]
struct RawImage {
    id: String,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    digests: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(rename = "big-data-names", default)]
    big_data_names: Vec<String>,
}

/// A container as containers/storage records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// The image ID (the hex of its config digest); empty for a container made without an
    /// image (podman --rootfs).
    pub image_id: String,
    /// The name the creator gave (`image-name` of its metadata): podman writes the reference
    /// the image was created from, normalised (`docker.io/library/busybox:latest`).
    pub image_name: Option<String>,
}

/// An image as containers/storage records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// Its names (`registry/repo:tag`, `registry/repo@sha256:...`).
    pub names: Vec<String>,
    /// The digest it was pulled by first (the index of a multi-platform pull), then every
    /// other manifest digest stored with it.
    pub digests: Vec<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE_ID: &str = "993fc64e1c55d1d139784f5c21c7c06ed29e4c9c3440169fe8663b41b5ef1b8b";
    const INDEX: &str = "sha256:62e45dba9be230f1b2c965628617a01549d84d484a466014cb2602b3183357a9";
    const MANIFEST: &str =
        "sha256:22f77d2391c84ea298c7f46b4d96257b6ba6e8fed2edd3716baeaf7043f213b6";

    /// A store laid out as podman 4.3 left it after `podman pull` of a multi-platform image by
    /// tag and `podman create` (records trimmed to the fields read, values as seen).
    /// Returns the bundle and the container ID.
    fn podman_store(root: &Path) -> (PathBuf, &'static str) {
        let cid = "7f9afa8d32b80ce5a8664a13b5e9032eb56667eea7b41339bf292ba6b5ee719d";
        let containers = root.join("overlay-containers");
        std::fs::create_dir_all(containers.join(cid).join("userdata")).unwrap();
        std::fs::write(
            containers.join("containers.json"),
            format!(
                r#"[{{"id":"{cid}","names":["beautiful_goldstine"],"image":"{IMAGE_ID}","layer":"03e4","metadata":"{{\"image-name\":\"127.0.0.1:35911/hx/multi:1\",\"image-id\":\"{IMAGE_ID}\",\"name\":\"beautiful_goldstine\",\"created-at\":1795339577}}","created":"2026-11-22T09:26:17.110133356Z","flags":{{"MountLabel":""}}}}]"#
            ),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("overlay-images")).unwrap();
        std::fs::write(
            root.join("overlay-images/images.json"),
            format!(
                r#"[{{"id":"{IMAGE_ID}","digest":"{INDEX}","names":["127.0.0.1:35911/hx/multi:1"],"big-data-names":["sha256:{IMAGE_ID}","manifest-{INDEX}","manifest-{MANIFEST}","manifest","signature-x"]}}]"#
            ),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("overlay/03e4/merged")).unwrap();
        (containers.join(cid).join("userdata"), cid)
    }

    #[test]
    fn podman_container_to_image_digests() {
        let t = tempfile::tempdir().unwrap();
        let (bundle, cid) = podman_store(t.path());
        let store = Store::of_bundle(&bundle, cid).expect("store of the bundle");
        assert_eq!(store.driver, "overlay");
        assert_eq!(store.graphroot, t.path());
        let c = store.container(cid).unwrap().expect("record");
        assert_eq!(c.image_id, IMAGE_ID);
        assert_eq!(c.image_name.as_deref(), Some("127.0.0.1:35911/hx/multi:1"));
        let i = store.image(&c.image_id).unwrap().expect("image");
        let digests: Vec<String> = i.digests.iter().map(|d| d.to_string()).collect();
        assert_eq!(digests, [INDEX, MANIFEST]);
        // CRI-O's ImageRef annotation gives the same ID, found through the rootfs path.
        let by_root = Store::of_rootfs(&t.path().join("overlay/03e4/merged")).unwrap();
        assert_eq!(by_root, store);
        assert!(by_root
            .image(&format!("sha256:{IMAGE_ID}"))
            .unwrap()
            .is_some());
        assert_eq!(store.container("other").unwrap(), None);
    }

    #[test]
    fn paths_that_are_not_a_store() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(Store::of_bundle(t.path(), "x"), None);
        assert_eq!(Store::of_rootfs(&t.path().join("rootfs")), None);
        let (bundle, _) = podman_store(t.path());
        // The bundle's directory must be the container's own.
        assert_eq!(Store::of_bundle(&bundle, "another-id"), None);
    }

    #[test]
    fn a_broken_record_file_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let (bundle, cid) = podman_store(t.path());
        std::fs::write(t.path().join("overlay-containers/containers.json"), "{").unwrap();
        let store = Store::of_bundle(&bundle, cid).unwrap();
        let e = store.container(cid).unwrap_err().to_string();
        assert!(
            e.contains("containers.json") && e.contains("not a containers/storage"),
            "{e}"
        );
    }
}
