//! The registry client's configuration: every knob with its default, and credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A local configuration problem (hosts.toml, CA files, credential files).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: invalid hosts.toml: {reason}")]
    HostsToml { path: PathBuf, reason: String },
    #[error("building the HTTP client: {0}")]
    HttpClient(String),
}

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Username and password: sent to the token service (bearer flow) or as Basic auth.
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token service.
    IdentityToken(String),
    /// A registry access token, sent as `Authorization: Bearer` when the registry asks for a
    /// bearer token (NFD's `--registry-token-stdin`).
    Bearer(String),
}

impl fmt::Debug for Credentials {
    // Never print secrets, even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Everything the registry client can be told. `Default` gives working values; the ambient
/// credential files are found from the environment the way docker and podman find them.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// TCP + TLS connect timeout, per connection.
    pub connect_timeout: Duration,
    /// Total time for one HTTP request including reading its body.
    pub request_timeout: Duration,
    /// Largest manifest, index or referrers list read (the spec says clients should accept 4 MiB).
    pub max_manifest_bytes: u64,
    /// Largest compatibility spec blob read.
    pub max_spec_bytes: u64,
    /// Pages of a paginated referrers API answer followed (`Link: rel="next"`).
    pub max_referrers_pages: usize,
    /// Redirects followed on one GET/HEAD.
    pub max_redirects: usize,
    /// Extra CA certificate files (PEM) trusted for every HTTPS host, besides the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Registry hosts (`host[:port]`) reached over plain HTTP; `*` means every host.
    pub plain_http: Vec<String>,
    /// Registry hosts reached over HTTPS without certificate verification; `*` means every host.
    pub insecure_skip_verify: Vec<String>,
    /// A containerd registry config directory (`<dir>/<host>/hosts.toml`, `_default`).
    pub hosts_dir: Option<PathBuf>,
    /// Explicit credentials by registry host as written in references (`docker.io`,
    /// `localhost:5000`); they win over credential files and go only to that registry's
    /// server, never to mirrors.
    pub credentials: BTreeMap<String, Credentials>,
    /// Docker's config.json (`auths`, `credHelpers`, `credsStore`). Default:
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. `None`: not read.
    pub docker_config: Option<PathBuf>,
    /// containers' auth.json (podman, skopeo, CRI-O). Default: `$REGISTRY_AUTH_FILE`, else
    /// `$XDG_RUNTIME_DIR/containers/auth.json`. `None`: not read.
    pub containers_auth: Option<PathBuf>,
    /// How long a `docker-credential-<name> get` may run.
    pub credential_helper_timeout: Duration,
    /// Token lifetime assumed when a token service gives no `expires_in`.
    pub default_token_lifetime: Duration,
    pub user_agent: String,
}

/// 4 MiB: the manifest size the distribution spec says clients should support.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// 256 KiB, the most the spec reader takes (`spec::MAX_BYTES`, equal by a test there; the
/// registry client depends on nothing above it): a compatibility spec is a few KiB of YAML;
/// far more is a mistake or an attack.
pub const DEFAULT_MAX_SPEC_BYTES: u64 = 256 << 10;

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_spec_bytes: DEFAULT_MAX_SPEC_BYTES,
            max_referrers_pages: 16,
            max_redirects: 5,
            ca_files: Vec::new(),
            plain_http: Vec::new(),
            insecure_skip_verify: Vec::new(),
            hosts_dir: None,
            credentials: BTreeMap::new(),
            docker_config: default_docker_config(),
            containers_auth: default_containers_auth(),
            credential_helper_timeout: Duration::from_secs(10),
            default_token_lifetime: Duration::from_secs(60),
            user_agent: format!("image-compat/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl RegistryConfig {
    /// Defaults without any ambient credential file: for tests and for callers that pass
    /// credentials explicitly.
    pub fn without_credential_files() -> Self {
        RegistryConfig {
            docker_config: None,
            containers_auth: None,
            ..RegistryConfig::default()
        }
    }

    pub(crate) fn is_plain_http(&self, host: &str) -> bool {
        host_listed(&self.plain_http, host)
    }

    pub(crate) fn is_insecure(&self, host: &str) -> bool {
        host_listed(&self.insecure_skip_verify, host)
    }
}

fn host_listed(list: &[String], host: &str) -> bool {
    list.iter()
        .any(|h| h == "*" || h.eq_ignore_ascii_case(host))
}

fn default_docker_config() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    Some(dir.join("config.json"))
}

fn default_containers_auth() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(|d| PathBuf::from(d).join("containers").join("auth.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = RegistryConfig::without_credential_files();
        assert_eq!(c.max_manifest_bytes, 4 << 20);
        assert_eq!(c.max_spec_bytes, 256 << 10);
        assert!(c.docker_config.is_none());
        assert!(!c.is_plain_http("localhost:5000"));
    }

    #[test]
    fn host_lists() {
        let c = RegistryConfig {
            plain_http: vec!["localhost:5000".into()],
            insecure_skip_verify: vec!["*".into()],
            ..RegistryConfig::without_credential_files()
        };
        assert!(c.is_plain_http("LOCALHOST:5000"));
        assert!(!c.is_plain_http("localhost:5001"));
        assert!(c.is_insecure("anything.example"));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("tok".into())).contains("tok"));
    }
}
