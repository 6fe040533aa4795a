//! Registry authentication: credential sources, WWW-Authenticate challenges, the token cache.
//!
//! Credential sources, first hit wins: explicit credentials for the registry's own server,
//! docker's config.json (`auths` with `auth`/`identitytoken`, `credHelpers`, `credsStore`), then
//! containers' auth.json. The docker_credential crate reads both formats and runs helpers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::{Credentials, RegistryConfig};
use super::error::RegistryError;
use super::hosts::HostEndpoint;

/// A parsed `WWW-Authenticate` challenge we know how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

/// Picks the challenge to answer from all `WWW-Authenticate` values: Bearer over Basic.
pub(crate) fn parse_challenges<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for value in values {
        // A header the parser rejects may still carry a usable challenge before the error.
        for challenge in http_auth::parser::ChallengeParser::new(value).flatten() {
            if challenge.scheme.eq_ignore_ascii_case("bearer") {
                let get = |name: &str| {
                    challenge
                        .params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.to_unescaped())
                };
                if let Some(realm) = get("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: get("service"),
                        scope: get("scope"),
                    });
                }
            } else if challenge.scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

/// The token scope of a repository operation.
pub(crate) fn scope_for(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

#[derive(Clone)]
struct CachedAuth {
    header: String,
    expires: Option<Instant>,
}

/// Authorization header values by (host, scope); the empty scope holds Basic credentials,
/// which are valid for every request to the host.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<(String, String), CachedAuth>>,
}

impl TokenCache {
    pub(crate) fn get(&self, host: &str, scope: &str) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        let now = Instant::now();
        [scope, ""].iter().find_map(|s| {
            entries
                .get(&(host.to_string(), s.to_string()))
                .filter(|c| c.expires.is_none_or(|e| e > now))
                .map(|c| c.header.clone())
        })
    }

    pub(crate) fn put(&self, host: &str, scope: &str, header: String, lifetime: Option<Duration>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                (host.to_string(), scope.to_string()),
                CachedAuth {
                    header,
                    expires: lifetime.map(|l| Instant::now() + l),
                },
            );
        }
    }
}

/// Looks credentials up once per host and remembers the answer (helpers are processes).
pub(crate) struct CredentialStore {
    cfg: Arc<RegistryConfig>,
    cache: tokio::sync::Mutex<HashMap<String, Option<Credentials>>>,
}

impl CredentialStore {
    pub(crate) fn new(cfg: Arc<RegistryConfig>) -> Self {
        CredentialStore {
            cfg,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Credentials for requests to `ep` on behalf of `registry`.
    pub(crate) async fn lookup(
        &self,
        ep: &HostEndpoint,
        registry: &str,
    ) -> Result<Option<Credentials>, RegistryError> {
        if ep.is_server {
            if let Some(c) = self.cfg.credentials.get(registry) {
                return Ok(Some(c.clone()));
            }
        }
        let cache_key = format!("{}|{}", ep.host, if ep.is_server { registry } else { "" });
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(&cache_key) {
            return Ok(c.clone());
        }
        let keys = if ep.is_server {
            credential_keys(registry, &ep.host)
        } else {
            vec![ep.host.clone()]
        };
        let mut found = None;
        for file in [&self.cfg.docker_config, &self.cfg.containers_auth]
            .into_iter()
            .flatten()
        {
            found = self.read_file(file, &keys, &ep.host).await?;
            if found.is_some() {
                break;
            }
        }
        tracing::debug!(host = %ep.host, found = found.is_some(), "registry credentials looked up");
        cache.insert(cache_key, found.clone());
        Ok(found)
    }

    async fn read_file(
        &self,
        file: &Path,
        keys: &[String],
        host: &str,
    ) -> Result<Option<Credentials>, RegistryError> {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(RegistryError::Credentials {
                    host: host.to_string(),
                    reason: format!("{}: {e}", file.display()),
                })
            }
        };
        let path: PathBuf = file.to_path_buf();
        let keys = keys.to_vec();
        let host_owned = host.to_string();
        // Credential helpers are external processes and docker_credential runs them blocking.
        let job =
            tokio::task::spawn_blocking(move || lookup_keys(&bytes, &keys, &path, &host_owned));
        match tokio::time::timeout(self.cfg.credential_helper_timeout, job).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(RegistryError::Credentials {
                host: host.to_string(),
                reason: format!("credential lookup failed: {join}"),
            }),
            Err(_) => Err(RegistryError::Credentials {
                host: host.to_string(),
                reason: format!(
                    "credential helper for {} did not answer within {:?}",
                    file.display(),
                    self.cfg.credential_helper_timeout
                ),
            }),
        }
    }
}

/// The keys a registry's credentials may be stored under in docker config / auth.json.
fn credential_keys(registry: &str, api_host: &str) -> Vec<String> {
    let mut keys: Vec<String> = if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        // docker login stores Docker Hub under its legacy v1 URL.
        [
            "https://index.docker.io/v1/",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    } else {
        vec![registry.to_string()]
    };
    if !keys.iter().any(|k| k == api_host) {
        keys.push(api_host.to_string());
    }
    keys
}

fn lookup_keys(
    config: &[u8],
    keys: &[String],
    path: &Path,
    host: &str,
) -> Result<Option<Credentials>, RegistryError> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    for key in keys {
        match docker_credential::get_credential_from_reader(config, key) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Some(Credentials::Basic { username, password }))
            }
            Ok(DockerCredential::IdentityToken(t)) => {
                return Ok(Some(Credentials::IdentityToken(t)))
            }
            Err(E::NoCredentialConfigured) => continue,
            // Helpers answer "credentials not found" for hosts they hold nothing for.
            Err(E::HelperFailure { stdout, stderr, .. })
                if (stdout.to_ascii_lowercase() + &stderr.to_ascii_lowercase())
                    .contains("credentials not found") =>
            {
                continue
            }
            Err(e) => {
                let reason = match e {
                    E::HelperFailure {
                        helper,
                        stdout,
                        stderr,
                    } => format!("{helper} failed: {} {}", stdout.trim(), stderr.trim()),
                    E::HelperCommunicationError => {
                        "the credential helper named in it could not be run".to_string()
                    }
                    other => other.to_string(),
                };
                return Err(RegistryError::Credentials {
                    host: host.to_string(),
                    reason: format!("{} (key {key}): {reason}", path.display()),
                });
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn challenges() {
        let c = parse_challenges(
            [r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#]
                .into_iter(),
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(
            parse_challenges([r#"Basic realm="x""#].into_iter()),
            Some(Challenge::Basic)
        );
        assert!(matches!(
            parse_challenges([r#"Basic realm="x""#, r#"Bearer realm="r""#].into_iter()),
            Some(Challenge::Bearer { .. })
        ));
        assert_eq!(parse_challenges(["Negotiate"].into_iter()), None);
        assert_eq!(parse_challenges(["garbage ,,, ="].into_iter()), None);
    }

    #[test]
    fn token_cache_expiry_and_basic_fallback() {
        let cache = TokenCache::default();
        cache.put(
            "h",
            "repository:a:pull",
            "Bearer t".into(),
            Some(Duration::from_secs(60)),
        );
        assert_eq!(
            cache.get("h", "repository:a:pull").as_deref(),
            Some("Bearer t")
        );
        assert_eq!(cache.get("h", "repository:b:pull"), None);
        cache.put(
            "h",
            "repository:c:pull",
            "Bearer old".into(),
            Some(Duration::ZERO),
        );
        assert_eq!(cache.get("h", "repository:c:pull"), None);
        cache.put("h", "", "Basic x".into(), None);
        assert_eq!(
            cache.get("h", "repository:b:pull").as_deref(),
            Some("Basic x")
        );
    }

    #[test]
    fn docker_config_entries() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let config = format!(
            r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{auth}"}},
                "reg.example:5000":{{"identitytoken":"refresh-me"}}
            }}}}"#
        );
        let p = Path::new("config.json");
        let hub = lookup_keys(
            config.as_bytes(),
            &credential_keys("docker.io", "registry-1.docker.io"),
            p,
            "h",
        )
        .unwrap();
        assert_eq!(
            hub,
            Some(Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            })
        );
        let other = lookup_keys(
            config.as_bytes(),
            &credential_keys("reg.example:5000", "reg.example:5000"),
            p,
            "h",
        )
        .unwrap();
        assert_eq!(other, Some(Credentials::IdentityToken("refresh-me".into())));
        let none = lookup_keys(config.as_bytes(), &["quay.io".to_string()], p, "h").unwrap();
        assert_eq!(none, None);
        let err = lookup_keys(b"{not json", &["quay.io".to_string()], p, "h").unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
