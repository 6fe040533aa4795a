//! Image names as CRI stores them: normalisation and the record name to look up.

use super::RuntimeError;
use crate::registry::{Digest, Reference};

/// What an image name asks for, once normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImageName {
    /// A registry reference; `key` is the containerd record name CRI gives it.
    Reference { key: String, reference: Reference },
    /// An image id (`sha256:<config digest>`), as CRI accepts in place of a name.
    Id(Digest),
}

impl ImageName {
    /// The containerd record name to look up.
    pub(crate) fn key(&self) -> String {
        match self {
            ImageName::Reference { key, .. } => key.clone(),
            ImageName::Id(d) => d.to_string(),
        }
    }
}

/// Parses an image name the way CRI resolves one (containerd's `docker.ParseDockerRef`):
/// `busybox` -> `docker.io/library/busybox:latest`; a name with both a tag and a digest keeps
/// only the digest, since that is the record CRI creates; `sha256:<hex>` is an image id.
pub(crate) fn parse(name: &str) -> Result<ImageName, RuntimeError> {
    let name = name.trim();
    let invalid = |reason: String| RuntimeError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty".to_string()));
    }
    // An id must be caught before reference parsing, which would read `sha256` as a repository.
    if name.starts_with("sha256:") {
        return Digest::parse(name)
            .map(ImageName::Id)
            .map_err(|e| invalid(e.to_string()));
    }
    let reference = Reference::parse(name).map_err(|e| invalid(e.to_string()))?;
    let key = match (reference.digest(), reference.tag()) {
        (Some(d), _) => format!("{}@{d}", reference.name()),
        (None, Some(t)) => format!("{}:{t}", reference.name()),
        (None, None) => format!("{}:latest", reference.name()),
    };
    Ok(ImageName::Reference { key, reference })
}

/// The record name CRI would use for `name` (`busybox` -> `docker.io/library/busybox:latest`).
pub fn normalize_name(name: &str) -> Result<String, RuntimeError> {
    parse(name).map(|n| n.key())
}

/// The repository of a record name, when the name is a registry reference exactly as CRI
/// writes one. Ids and names that only normalise to a reference (a bare `app` made with
/// `ctr images tag`) are not: CRI never looks them up, and their repository would be a guess.
pub(crate) fn repository_of(record_name: &str) -> Option<Reference> {
    match parse(record_name) {
        Ok(ImageName::Reference { key, reference }) if key == record_name => Some(reference),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_cri() {
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox:1", "docker.io/library/busybox:1"),
            ("someone/app:2", "docker.io/someone/app:2"),
            ("localhost/t/app:1", "localhost/t/app:1"),
            ("127.0.0.1:5000/t/app", "127.0.0.1:5000/t/app:latest"),
            (" registry.k8s.io/pause:3.10 ", "registry.k8s.io/pause:3.10"),
        ] {
            assert_eq!(normalize_name(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn digest_references_drop_the_tag() {
        assert_eq!(
            normalize_name(&format!("busybox:1@sha256:{HEX}")).unwrap(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );
        assert_eq!(
            normalize_name(&format!("ghcr.io/o/app@sha256:{HEX}")).unwrap(),
            format!("ghcr.io/o/app@sha256:{HEX}")
        );
    }

    #[test]
    fn ids_and_invalid_names() {
        assert_eq!(
            parse(&format!("sha256:{HEX}")).unwrap(),
            ImageName::Id(Digest::parse(&format!("sha256:{HEX}")).unwrap())
        );
        for bad in ["", "sha256:abc", "UPPER/x", "a b", "x:"] {
            assert!(
                matches!(parse(bad), Err(RuntimeError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn repositories_only_of_normalised_names() {
        let r = repository_of("localhost/t/app:1").unwrap();
        assert_eq!(r.name(), "localhost/t/app");
        assert!(repository_of(&format!("ghcr.io/o/app@sha256:{HEX}")).is_some());
        assert!(repository_of(&format!("sha256:{HEX}")).is_none());
        assert!(repository_of("app:1").is_none());
        assert!(repository_of("docker.io/library/busybox").is_none());
    }
}
