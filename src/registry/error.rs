//! Registry errors: what failed, what the registry said, and a kind a failure policy can match on.

use std::fmt;
use std::time::Duration;

use super::config::ConfigError;
use super::platform::PlatformError;
use super::reference::ReferenceError;

/// The class of a failure, for a caller's failure policy (e.g. "registry down: allow + warn",
/// "invalid content: deny").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The image, tag, repository or a referenced manifest/blob does not exist.
    NotFound,
    /// Credentials missing, rejected, or the token service refused them.
    Auth,
    /// The registry could not be reached or the connection broke.
    Transport,
    /// A request took longer than the configured timeout.
    Timeout,
    /// The registry answered with an unexpected status (5xx, 400, ...).
    Server,
    /// Content is wrong: digest mismatch, over a size cap, wrong media type, bad JSON.
    InvalidContent,
    /// The registry refuses an operation (e.g. DELETE disabled).
    Unsupported,
    /// Bad input or local configuration: reference, platform, hosts.toml, CA files.
    Config,
}

impl ErrorKind {
    /// The kind's name in logs, metrics labels and cached answers (`not-found`, `auth`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::Auth => "auth",
            ErrorKind::Transport => "transport",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Server => "server",
            ErrorKind::InvalidContent => "invalid-content",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Config => "config",
        }
    }
}

/// One entry of an OCI error body (`{"errors":[{"code":..,"message":..}]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryErrorCode {
    pub code: String,
    pub message: String,
}

/// What a registry answered to a request that failed: the status, and either the OCI error
/// codes of its body or, when the body is not an OCI error document, an excerpt of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySaid {
    pub status: u16,
    pub errors: Vec<RegistryErrorCode>,
    /// The start of a body that was not an OCI error document (HTML from a proxy, plain text).
    pub body: Option<String>,
}

/// The longest body excerpt kept in an error: enough to recognise a proxy page.
const BODY_EXCERPT_CHARS: usize = 300;

impl RegistrySaid {
    /// Builds from a status and a (possibly empty, possibly non-JSON) body.
    pub fn from_body(status: u16, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Envelope {
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
            if !env.errors.is_empty() {
                return RegistrySaid {
                    status,
                    errors: env
                        .errors
                        .into_iter()
                        .map(|e| RegistryErrorCode {
                            code: e.code,
                            message: e.message,
                        })
                        .collect(),
                    body: None,
                };
            }
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let body = if text.is_empty() {
            None
        } else {
            let mut excerpt: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
            if text.chars().count() > BODY_EXCERPT_CHARS {
                excerpt.push_str("...");
            }
            Some(excerpt.replace(['\n', '\r'], " "))
        };
        RegistrySaid {
            status,
            errors: Vec::new(),
            body,
        }
    }

    /// True when one of the OCI error codes is `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.errors
            .iter()
            .any(|e| e.code.eq_ignore_ascii_case(code))
    }
}

impl fmt::Display for RegistrySaid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(f, "HTTP {} {}", self.status, reason)?;
        for (i, e) in self.errors.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{}: {}", e.code, e.message)?;
        }
        if let Some(body) = &self.body {
            write!(f, ": {body}")?;
        }
        Ok(())
    }
}

/// Which content check failed, so an error says exactly what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCheck {
    /// The document is not the JSON it should be.
    Json,
    /// The manifest's media type is not an OCI image manifest.
    ManifestMediaType,
    /// The artifact type is not the compatibility artifact type.
    ArtifactType,
    /// The config descriptor is not the empty config (nor a config we accept).
    ConfigMediaType,
    /// The manifest does not have exactly one layer.
    LayerCount,
    /// The layer is not a compatibility spec.
    LayerMediaType,
    /// The manifest's subject is not the image it was listed for.
    Subject,
    /// A referrers list is not an image index.
    ReferrersIndex,
    /// A descriptor is malformed (bad digest, negative size).
    Descriptor,
}

impl fmt::Display for ContentCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContentCheck::Json => "json",
            ContentCheck::ManifestMediaType => "manifest media type",
            ContentCheck::ArtifactType => "artifact type",
            ContentCheck::ConfigMediaType => "config media type",
            ContentCheck::LayerCount => "layer count",
            ContentCheck::LayerMediaType => "layer media type",
            ContentCheck::Subject => "subject",
            ContentCheck::ReferrersIndex => "referrers index",
            ContentCheck::Descriptor => "descriptor",
        })
    }
}

/// Everything the registry client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{op} {url}: not found: {said}")]
    NotFound {
        op: String,
        url: String,
        said: RegistrySaid,
    },
    #[error("{op} {url}: authentication failed: {said}")]
    Unauthorized {
        op: String,
        url: String,
        said: RegistrySaid,
    },
    #[error("{op} {url}: the registry requires credentials ({scheme} auth) and none are configured for {host}")]
    CredentialsRequired {
        op: String,
        url: String,
        host: String,
        scheme: String,
    },
    #[error("credentials for {host}: {reason}")]
    Credentials { host: String, reason: String },
    #[error("token service {realm}: {said}")]
    TokenService { realm: String, said: RegistrySaid },
    #[error("{url}: the registry asks for credentials at {realm}, a plain-HTTP token service: refusing to send them in clear text (a registry reached over HTTPS must keep its token service on HTTPS)")]
    InsecureRealm { url: String, realm: String },
    #[error("token service {realm}: {reason}")]
    TokenResponse { realm: String, reason: String },
    #[error("{op} {url}: {said}")]
    Status {
        op: String,
        url: String,
        said: RegistrySaid,
    },
    #[error("{op} {url}: the registry does not allow deleting manifests: {said}")]
    DeleteRefused {
        op: String,
        url: String,
        said: RegistrySaid,
    },
    #[error("{op} {url}: timed out after {after:?}")]
    Timeout {
        op: String,
        url: String,
        after: Duration,
    },
    #[error("{op} {url}: {message}")]
    Transport {
        op: String,
        url: String,
        message: String,
    },
    #[error("{op} {url}: {message}")]
    Protocol {
        op: String,
        url: String,
        message: String,
    },
    #[error("{what}: {check} check failed: {detail}")]
    InvalidContent {
        what: String,
        check: ContentCheck,
        detail: String,
    },
    #[error("{what}: {size} bytes (from {seen_in}) is over the limit of {limit} bytes")]
    TooLarge {
        what: String,
        size: u64,
        limit: u64,
        seen_in: &'static str,
    },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{image}: no manifest for platform {platform} in the index (available: {available})")]
    NoMatchingPlatform {
        image: String,
        platform: String,
        available: String,
    },
    #[error("{image}: {detail}")]
    NotAnArtifactOfImage { image: String, detail: String },
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: String, reason: String },
    #[error("{registry}: no registry host with the {capability} capability is configured")]
    NoEndpoint {
        registry: String,
        capability: &'static str,
    },
}

impl RegistryError {
    /// Refuses `size` bytes of `what` over `limit`; `seen_in` says where the size was read
    /// (descriptor, Content-Length, body read so far).
    pub(crate) fn check_size(
        what: &str,
        size: u64,
        limit: u64,
        seen_in: &'static str,
    ) -> Result<(), RegistryError> {
        if size > limit {
            return Err(RegistryError::TooLarge {
                what: what.to_string(),
                size,
                limit,
                seen_in,
            });
        }
        Ok(())
    }

    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Reference(_)
            | RegistryError::Platform(_)
            | RegistryError::Config(_)
            | RegistryError::InvalidInput { .. }
            | RegistryError::NoEndpoint { .. } => ErrorKind::Config,
            RegistryError::NotFound { .. }
            | RegistryError::NoMatchingPlatform { .. }
            | RegistryError::NotAnArtifactOfImage { .. } => ErrorKind::NotFound,
            RegistryError::Unauthorized { .. }
            | RegistryError::CredentialsRequired { .. }
            | RegistryError::Credentials { .. }
            | RegistryError::TokenService { .. }
            | RegistryError::InsecureRealm { .. }
            | RegistryError::TokenResponse { .. } => ErrorKind::Auth,
            RegistryError::Status { .. } | RegistryError::Protocol { .. } => ErrorKind::Server,
            RegistryError::DeleteRefused { .. } => ErrorKind::Unsupported,
            RegistryError::Timeout { .. } => ErrorKind::Timeout,
            RegistryError::Transport { .. } => ErrorKind::Transport,
            RegistryError::InvalidContent { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::DigestMismatch { .. } => ErrorKind::InvalidContent,
        }
    }

    /// What the registry answered, when the failure is an HTTP answer.
    pub fn registry_said(&self) -> Option<&RegistrySaid> {
        match self {
            RegistryError::NotFound { said, .. }
            | RegistryError::Unauthorized { said, .. }
            | RegistryError::TokenService { said, .. }
            | RegistryError::Status { said, .. }
            | RegistryError::DeleteRefused { said, .. } => Some(said),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_error_body_is_parsed() {
        let said = RegistrySaid::from_body(
            404,
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#,
        );
        assert!(said.has_code("MANIFEST_UNKNOWN"));
        assert_eq!(
            said.to_string(),
            "HTTP 404 Not Found: MANIFEST_UNKNOWN: manifest unknown"
        );
    }

    #[test]
    fn non_json_body_is_kept_as_excerpt() {
        let html = format!("<html>\n<b>Bad gateway</b>{}</html>", "x".repeat(1000));
        let said = RegistrySaid::from_body(502, html.as_bytes());
        assert!(said.errors.is_empty());
        let body = said.body.clone().unwrap_or_default();
        assert!(body.starts_with("<html> <b>Bad gateway</b>"), "{body}");
        assert!(body.ends_with("..."));
        assert!(body.len() < 400);
        assert!(said.to_string().starts_with("HTTP 502 Bad Gateway: <html>"));
    }

    #[test]
    fn empty_body_says_only_the_status() {
        let said = RegistrySaid::from_body(405, b"");
        assert_eq!(said.to_string(), "HTTP 405 Method Not Allowed");
    }
}
