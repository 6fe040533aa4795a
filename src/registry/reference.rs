//! Image references (`[registry[:port]/]repo[:tag][@digest]`) and content digests.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// Why a reference or digest did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest { input: String, reason: String },
}

/// A digest algorithm the client can compute (the ones the OCI image spec registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest `<algorithm>:<lowercase hex>`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 hex>` (also sha384, sha512).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let bad = |reason: &str| ReferenceError::InvalidDigest {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (alg, hex) = input
            .split_once(':')
            .ok_or_else(|| bad("expected <algorithm>:<hex>"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => return Err(bad("unsupported algorithm (sha256, sha384, sha512)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(bad(&format!(
                "{} needs {} hex characters, got {}",
                alg,
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("the encoded part must be lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self::compute(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn compute(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let hex = match algorithm {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sha384 => hex::encode(sha2::Sha384::digest(bytes)),
            Algorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        Digest { algorithm, hex }
    }

    /// The digest of `bytes` with this digest's algorithm (to compare against it).
    pub fn recompute(&self, bytes: &[u8]) -> Self {
        Self::compute(self.algorithm, bytes)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (hex) part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The tag under which the referrers tag schema keeps this digest's referrers index:
    /// algorithm truncated to 32 characters, `-`, encoded part truncated to 64 characters.
    pub fn referrers_tag(&self) -> String {
        let alg: String = self.algorithm.name().chars().take(32).collect();
        let enc: String = self.hex.chars().take(64).collect();
        format!("{alg}-{enc}")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

/// A parsed image reference, normalised like docker does: no registry means `docker.io`, a
/// single-component name on docker.io gets `library/`, no tag and no digest means `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference by distribution's grammar (as oci-spec's port of it does), then
    /// validates the digest itself.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let input = input.trim();
        let invalid = |reason: String| ReferenceError::Invalid {
            input: input.to_string(),
            reason,
        };
        let (name, tag, digest) = split_reference(input).map_err(invalid)?;
        let (registry, repository) = split_domain(name);
        if repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(format!(
                "repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters"
            )));
        }
        // The grammar lets an uppercase first component pass as a "domain" that split_domain
        // then files under docker.io; docker rejects such names, and so do we.
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(format!(
                "repository name {repository:?} must be lowercase"
            )));
        }
        let digest = digest.map(Digest::parse).transpose()?;
        // distribution's grammar accepts `name:tag@digest`; the digest is what identifies the
        // content then, the tag is kept for display only.
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// A reference to `digest` in `registry/repository`.
    pub fn with_digest(registry: &str, repository: &str, digest: Digest) -> Self {
        Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The registry host as written (`docker.io`, `localhost:5000`, `ghcr.io`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// This repository at `digest` (the tag dropped).
    pub fn at_digest(&self, digest: Digest) -> Self {
        Reference::with_digest(&self.registry, &self.repository, digest)
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to put after `/manifests/`: the digest when there is one, else the tag.
    pub(crate) fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

/// The longest repository name distribution accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const DEFAULT_TAG: &str = "latest";

// A hand-written matcher of distribution's reference grammar (reference/regexp.go), not the
// regex oci-spec uses: compiling that regex costs ~40 ms of CPU, most of a CLI run.

/// Splits `name[:tag][@digest]` and checks the name and tag (the digest is checked by
/// `Digest::parse`).
fn split_reference(input: &str) -> Result<(&str, Option<&str>, Option<&str>), String> {
    if input.is_empty() {
        return Err("empty reference".into());
    }
    let (rest, digest) = match input.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (input, None),
    };
    // A port's colon is always followed by a path (`host:5000/repo`), a tag's never.
    let (name, tag) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        if !is_tag(t) {
            return Err(format!(
                "invalid tag {t:?} (1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
            ));
        }
    }
    let components: Vec<&str> = name.split('/').collect();
    let all_paths = |c: &[&str]| c.iter().all(|p| is_path_component(p));
    let valid = all_paths(&components)
        || (components.len() > 1 && is_domain(components[0]) && all_paths(&components[1..]));
    if !valid {
        return Err(format!(
            "invalid repository name {name:?} ([registry[:port]/]path, path components of a-z 0-9 joined by . _ __ or -)"
        ));
    }
    Ok((name, tag, digest))
}

/// `[\w][\w.-]{0,127}` with Go's ASCII `\w`.
fn is_tag(t: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `[a-z0-9]+` runs joined by one separator each: `.`, `_`, `__` or any number of `-`.
fn is_path_component(p: &str) -> bool {
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' if b.get(i + 1) == Some(&b'_') => i += 2,
            b'_' => i += 1,
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `host[:port]`, host being dot-separated labels of letters, digits and inner hyphens.
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    };
    host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// distribution's normalisation (reference/normalize.go): the first component is a registry
/// when it looks like a host (a `.` or `:`, or `localhost`); otherwise docker.io, where a
/// one-component name is an official image under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    if domain == "docker.io" && !rest.contains('/') {
        rest = format!("library/{rest}");
    }
    (domain, rest)
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parts(r: &Reference) -> (String, String, Option<String>, Option<String>) {
        (
            r.registry().to_string(),
            r.repository().to_string(),
            r.tag().map(str::to_string),
            r.digest().map(|d| d.to_string()),
        )
    }

    #[test]
    fn docker_hub_defaults() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            parts(&r),
            (
                "docker.io".into(),
                "library/busybox".into(),
                Some("latest".into()),
                None
            )
        );
        let r = Reference::parse("someone/app:1.0").unwrap();
        assert_eq!(parts(&r).0, "docker.io");
        assert_eq!(parts(&r).1, "someone/app");
        assert_eq!(r.tag(), Some("1.0"));
        let r = Reference::parse("index.docker.io/busybox:1").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1");
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        let r = Reference::parse("localhost:5000/team/app:v2").unwrap();
        assert_eq!(
            parts(&r),
            (
                "localhost:5000".into(),
                "team/app".into(),
                Some("v2".into()),
                None
            )
        );
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!(r.registry(), "localhost");
        assert_eq!(r.tag(), Some("latest"));
        let r = Reference::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        // A port-like tag on a docker.io name is a tag, not a registry.
        let r = Reference::parse("app:5000").unwrap();
        assert_eq!(parts(&r).1, "library/app");
        assert_eq!(r.tag(), Some("5000"));
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("ghcr.io/o/app@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_ref(), format!("sha256:{HEX}"));
        let r = Reference::parse(&format!("ghcr.io/o/app:1@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.manifest_ref(), format!("sha256:{HEX}"));
        assert!(Reference::parse("ghcr.io/o/app@sha256:abc").is_err());
        assert!(Reference::parse(&format!("ghcr.io/o/app@md5:{HEX}")).is_err());
    }

    #[test]
    fn agrees_with_oci_spec_grammar() {
        let long = "a".repeat(256);
        let inputs = [
            "busybox",
            "test.com:tag",
            "test.com:5000",
            "test.com/repo:tag",
            "test:5000/repo",
            "test:5000/repo:tag",
            "lowercase:Uppercase",
            "sub-dom1.foo.com/bar/baz/quux",
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "xn--n3h.com/myimage:xn--n3h.com",
            "foo_bar.com:8080",
            "foo/foo_bar.com:8080",
            "a__b/c--d/e.f_g:1_.-x",
            "a___b",
            "a._b",
            "a.-b",
            "-a/b",
            "a-/b",
            "a/b-",
            ":justtag",
            "repo:",
            "repo:-tag",
            "repo:.tag",
            "a/b:c/d",
            "host:port/x",
            "host:80a/x",
            "-host.com/x",
            "host-.com/x",
            "ho_st.com/x",
            "ho_st.com:5000/x",
            "Host.example.com:5000/x",
            "localhost/x",
            "localhost:5000/x/y/z:1",
            "127.0.0.1:5000/app",
            "a//b",
            "a/",
            "/a",
            "a b",
            "Foo/bar",
            "example.com/Foo",
            "[::1]:5000/app",
            long.as_str(),
        ];
        for input in inputs {
            let ours = Reference::parse(input);
            let theirs = oci_client::Reference::try_from(input);
            match (&ours, &theirs) {
                (Ok(o), Ok(t)) => assert_eq!(
                    parts(o),
                    (
                        t.registry().to_string(),
                        t.repository().to_string(),
                        t.tag().map(str::to_string),
                        None
                    ),
                    "{input:?}"
                ),
                // We also refuse uppercase repositories, which oci-spec lets through.
                (Err(_), Ok(t)) if t.repository().chars().any(|c| c.is_ascii_uppercase()) => {}
                (Err(_), Err(_)) => {}
                _ => panic!("{input:?}: ours {ours:?}, oci-spec {theirs:?}"),
            }
        }
        let tag = format!("r:{}", "t".repeat(128));
        assert!(Reference::parse(&tag).is_ok());
        assert!(Reference::parse(&format!("{tag}t")).is_err());
    }

    #[test]
    fn invalid_references() {
        for bad in ["", "UPPER/case", "a b", "ghcr.io/o/app:", "-bad/x"] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn digest_parse_compute_and_tag() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(Digest::sha256_of(b""), d);
        assert_eq!(d.referrers_tag(), format!("sha256-{HEX}"));
        assert!(Digest::parse(&format!("sha256:{}", HEX.to_uppercase())).is_err());
        let long = Digest::compute(Algorithm::Sha512, b"x");
        assert_eq!(long.referrers_tag().len(), "sha512-".len() + 64);
        assert_eq!(Digest::parse(&long.to_string()).unwrap(), long);
    }
}
