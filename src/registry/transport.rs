//! HTTP to registries: TLS per host, timeouts, auth challenges, redirects, capped reads, errors.
//!
//! This sits on reqwest directly rather than oci-client's `Client` because every call here needs
//! something that client does not offer: a cap enforced before and while reading a body,
//! response headers (`OCI-Subject`, `Link`, `Docker-Content-Digest`), DELETE, and TLS/plain-HTTP
//! settings per host (mirrors each have their own).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::auth::{parse_challenges, scope_for, Challenge, CredentialStore, TokenCache};
use super::config::{ConfigError, Credentials, RegistryConfig};
use super::error::{RegistryError, RegistrySaid};
use super::hosts::HostEndpoint;

/// The most of an error body read to build a message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Which access a request needs (its token scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    fn actions(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "pull,push",
            Action::Delete => "delete",
        }
    }
}

/// One request to a registry endpoint.
pub(crate) struct Request<'a> {
    /// What is being done, for messages ("GET manifest").
    pub op: &'static str,
    pub method: Method,
    pub ep: &'a HostEndpoint,
    pub registry: &'a str,
    pub repo: &'a str,
    pub url: String,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Option<Vec<u8>>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TlsKey {
    /// For a plain-HTTP endpoint: no TLS roots at all.
    plain: bool,
    skip_verify: bool,
    ca_files: Vec<PathBuf>,
    connect_timeout: Duration,
}

/// Shared HTTP state of a registry client.
pub(crate) struct Transport {
    pub(crate) cfg: Arc<RegistryConfig>,
    clients: Mutex<HashMap<TlsKey, reqwest::Client>>,
    /// Whether each host (`scheme://host/path`) has the Referrers API, once seen: later
    /// lookups ask only the right place.
    referrers_api: Mutex<HashMap<String, bool>>,
    creds: CredentialStore,
    tokens: TokenCache,
}

static CRYPTO_PROVIDER: Once = Once::new();

impl Transport {
    /// Whether the host at `root` has the Referrers API, if a lookup there has told.
    pub(crate) fn referrers_api_known(&self, root: &str) -> Option<bool> {
        self.referrers_api
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(root)
            .copied()
    }

    pub(crate) fn set_referrers_api(&self, root: &str, supported: bool) {
        self.referrers_api
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(root.to_string(), supported);
    }

    pub(crate) fn new(cfg: Arc<RegistryConfig>) -> Result<Self, RegistryError> {
        // reqwest is built without a bundled crypto provider (see Cargo.toml); install ring as
        // the process default unless something else already installed one.
        CRYPTO_PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let t = Transport {
            creds: CredentialStore::new(cfg.clone()),
            cfg,
            clients: Mutex::new(HashMap::new()),
            referrers_api: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
        };
        // Read the CA files now so a bad one fails at construction, not mid-request. The HTTPS
        // client itself is built at its first use: loading the system's roots takes tens of
        // milliseconds, which a run against plain-HTTP registries only would pay for nothing.
        load_ca_files(&t.cfg.ca_files)?;
        Ok(t)
    }

    fn client(
        &self,
        plain: bool,
        skip_verify: bool,
        extra_ca: &[PathBuf],
        dial_timeout: Option<Duration>,
    ) -> Result<reqwest::Client, RegistryError> {
        let mut ca_files = Vec::new();
        if !plain {
            ca_files = self.cfg.ca_files.clone();
            ca_files.extend_from_slice(extra_ca);
        }
        let key = TlsKey {
            plain,
            skip_verify: skip_verify && !plain,
            ca_files,
            connect_timeout: dial_timeout.unwrap_or(self.cfg.connect_timeout),
        };
        if let Ok(clients) = self.clients.lock() {
            if let Some(c) = clients.get(&key) {
                return Ok(c.clone());
            }
        }
        let mut builder = reqwest::Client::builder()
            // Redirects are followed by hand: per-target TLS settings and no Authorization
            // header across origins.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(key.connect_timeout)
            .timeout(self.cfg.request_timeout)
            .user_agent(self.cfg.user_agent.clone());
        let certs = load_ca_files(&key.ca_files)?;
        if key.plain {
            // No TLS on this endpoint (redirects elsewhere get their own client): skip the
            // system roots.
            builder = builder.tls_certs_only(Vec::new());
        } else if !certs.is_empty() {
            builder = builder.tls_certs_merge(certs);
        }
        if skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| ConfigError::HttpClient(error_chain(&e)))?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, client.clone());
        }
        Ok(client)
    }

    fn client_for_endpoint(&self, ep: &HostEndpoint) -> Result<reqwest::Client, RegistryError> {
        self.client(
            ep.scheme == "http",
            ep.skip_verify,
            &ep.ca_files,
            ep.dial_timeout,
        )
    }

    /// The client for a URL outside the endpoint (redirect target, token realm): the global
    /// settings, plus skip-verify when that host is listed as insecure.
    fn client_for_url(&self, url: &Url) -> Result<reqwest::Client, RegistryError> {
        let host = host_port(url);
        self.client(
            url.scheme() == "http",
            self.cfg.is_insecure(&host),
            &[],
            None,
        )
    }

    /// Sends `req`: answers one 401 challenge, follows redirects of GET/HEAD. Returns any
    /// other response as is (the caller decides what 404 means); 401/403 become errors.
    pub(crate) async fn send(&self, req: &Request<'_>) -> Result<reqwest::Response, RegistryError> {
        let scope = scope_for(req.repo, req.action.actions());
        let mut auth = self.tokens.get(&req.ep.host, &scope);
        let mut answered_challenge = false;
        let mut url = Url::parse(&req.url).map_err(|e| RegistryError::Protocol {
            op: req.op.to_string(),
            url: req.url.clone(),
            message: format!("bad URL: {e}"),
        })?;
        let ep_origin = Url::parse(&req.ep.origin()).ok();
        let mut redirects = 0usize;
        loop {
            let same_origin = ep_origin.as_ref().is_some_and(|o| same_origin(o, &url));
            let client = if same_origin {
                self.client_for_endpoint(req.ep)?
            } else {
                self.client_for_url(&url)?
            };
            let mut rb = client.request(req.method.clone(), url.clone());
            if let Some(a) = req.accept {
                rb = rb.header(ACCEPT, a);
            }
            if let Some(ct) = req.content_type {
                rb = rb.header(CONTENT_TYPE, ct);
            }
            if same_origin {
                for (k, v) in &req.ep.headers {
                    rb = rb.header(k.as_str(), v.as_str());
                }
                if let Some(a) = &auth {
                    rb = rb.header(AUTHORIZATION, a.as_str());
                }
            }
            if let Some(body) = &req.body {
                rb = rb.body(body.clone());
            }
            tracing::debug!(op = req.op, method = %req.method, url = %url, "registry request");
            let resp = rb
                .send()
                .await
                .map_err(|e| self.send_error(e, req.op, url.as_str()))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && same_origin && !answered_challenge {
                answered_challenge = true;
                let challenge = parse_challenges(
                    resp.headers()
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok()),
                );
                let Some(challenge) = challenge else {
                    return Err(self.error_from(resp, req.op, url.as_str()).await);
                };
                auth = Some(self.authorize(req, &url, &challenge, &scope).await?);
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(self.error_from(resp, req.op, url.as_str()).await);
            }
            if status.is_redirection()
                && status != StatusCode::NOT_MODIFIED
                && (req.method == Method::GET || req.method == Method::HEAD)
            {
                redirects += 1;
                if redirects > self.cfg.max_redirects {
                    return Err(RegistryError::Protocol {
                        op: req.op.to_string(),
                        url: req.url.clone(),
                        message: format!("more than {} redirects", self.cfg.max_redirects),
                    });
                }
                let next = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| RegistryError::Protocol {
                        op: req.op.to_string(),
                        url: url.to_string(),
                        message: format!("{status} without a usable Location header"),
                    })?;
                tracing::debug!(op = req.op, from = %url, to = %next, "following redirect");
                url = next;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Answers a challenge: fetches a bearer token or prepares Basic credentials, caches the
    /// header value, and returns it.
    async fn authorize(
        &self,
        req: &Request<'_>,
        url: &Url,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let creds = self.creds.lookup(req.ep, req.registry).await?;
        let host = &req.ep.host;
        match challenge {
            Challenge::Basic => match creds {
                Some(Credentials::Basic { username, password }) => {
                    let header = basic_header(&username, &password);
                    self.tokens.put(host, "", header.clone(), None);
                    Ok(header)
                }
                _ => Err(RegistryError::CredentialsRequired {
                    op: req.op.to_string(),
                    url: url.to_string(),
                    host: host.clone(),
                    scheme: "Basic".into(),
                }),
            },
            Challenge::Bearer {
                realm,
                service,
                scope: asked,
            } => {
                if let Some(Credentials::Bearer(token)) = &creds {
                    let header = format!("Bearer {token}");
                    self.tokens.put(host, "", header.clone(), None);
                    return Ok(header);
                }
                // The registry's own scope says what this request needs; ours is the fallback
                // for registries that do not send one.
                let token_scope = asked.clone().unwrap_or_else(|| scope.to_string());
                let (token, lifetime) = self
                    .fetch_token(url, realm, service.as_deref(), &token_scope, creds.as_ref())
                    .await?;
                let header = format!("Bearer {token}");
                self.tokens.put(host, scope, header.clone(), Some(lifetime));
                Ok(header)
            }
        }
    }

    async fn fetch_token(
        &self,
        asked_by: &Url,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<(String, Duration), RegistryError> {
        let realm_url = Url::parse(realm).map_err(|e| RegistryError::TokenResponse {
            realm: realm.to_string(),
            reason: format!("the challenge's realm is not a URL: {e}"),
        })?;
        // Never downgrade: credentials for a registry spoken to over HTTPS do not go to a token
        // service over plain HTTP (oras refuses the same).
        if creds.is_some() && asked_by.scheme() == "https" && realm_url.scheme() != "https" {
            return Err(RegistryError::InsecureRealm {
                url: asked_by.to_string(),
                realm: realm.to_string(),
            });
        }
        let client = self.client_for_url(&realm_url)?;
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            params.push(("service", s));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            params.push(("scope", s));
        }
        let rb = match creds {
            Some(Credentials::IdentityToken(refresh)) => {
                // docker's identitytoken is an OAuth2 refresh token: POST it to the realm.
                params.push(("grant_type", "refresh_token"));
                params.push(("refresh_token", refresh));
                params.push(("client_id", "image-compat"));
                client
                    .post(realm_url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form_encode(&params))
            }
            other => {
                let mut u = realm_url.clone();
                u.query_pairs_mut().extend_pairs(params.iter());
                let rb = client.get(u);
                match other {
                    Some(Credentials::Basic { username, password }) => {
                        rb.header(AUTHORIZATION, basic_header(username, password))
                    }
                    _ => rb,
                }
            }
        };
        let resp = rb
            .send()
            .await
            .map_err(|e| self.send_error(e, "GET token", realm))?;
        let status = resp.status();
        let body = read_capped_quiet(resp, ERROR_BODY_LIMIT).await;
        if !status.is_success() {
            return Err(RegistryError::TokenService {
                realm: realm.to_string(),
                said: RegistrySaid::from_body(status.as_u16(), &body),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| RegistryError::TokenResponse {
                realm: realm.to_string(),
                reason: format!("not a token document: {e}"),
            })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::TokenResponse {
                realm: realm.to_string(),
                reason: "the answer has neither token nor access_token".into(),
            })?;
        // Renew a little early so a token does not expire between check and use.
        let lifetime = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(self.cfg.default_token_lifetime)
            .saturating_sub(Duration::from_secs(5));
        Ok((token, lifetime))
    }

    fn send_error(&self, e: reqwest::Error, op: &str, url: &str) -> RegistryError {
        if e.is_timeout() {
            RegistryError::Timeout {
                op: op.to_string(),
                url: url.to_string(),
                after: self.cfg.request_timeout,
            }
        } else {
            RegistryError::Transport {
                op: op.to_string(),
                url: url.to_string(),
                message: error_chain(&e),
            }
        }
    }

    /// Turns a failed response into an error carrying what the registry said.
    pub(crate) async fn error_from(
        &self,
        resp: reqwest::Response,
        op: &str,
        url: &str,
    ) -> RegistryError {
        let status = resp.status();
        let body = read_capped_quiet(resp, ERROR_BODY_LIMIT).await;
        let said = RegistrySaid::from_body(status.as_u16(), &body);
        let (op, url) = (op.to_string(), url.to_string());
        match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound { op, url, said },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                RegistryError::Unauthorized { op, url, said }
            }
            _ => RegistryError::Status { op, url, said },
        }
    }

    /// Reads a body, refusing it when Content-Length or the bytes read pass `limit`.
    pub(crate) async fn read_capped(
        &self,
        mut resp: reqwest::Response,
        limit: u64,
        what: &str,
        op: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        if let Some(len) = resp.content_length() {
            RegistryError::check_size(what, len, limit, "Content-Length")?;
        }
        let url = resp.url().to_string();
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.send_error(e, op, &url))?
        {
            let size = buf.len() as u64 + chunk.len() as u64;
            RegistryError::check_size(what, size, limit, "body read so far")?;
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }
}

/// Reads at most `limit` bytes of a body, ignoring failures (for error messages).
async fn read_capped_quiet(mut resp: reqwest::Response, limit: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = (limit as usize).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() as u64 >= limit {
            break;
        }
    }
    buf
}

/// The certificates of PEM CA files; a file that cannot be read or holds none is an error.
fn load_ca_files(paths: &[PathBuf]) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let mut certs = Vec::new();
    for path in paths {
        let pem = std::fs::read(path).map_err(|e| ConfigError::File {
            path: path.clone(),
            reason: format!("CA file: {e}"),
        })?;
        let bundle =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::File {
                path: path.clone(),
                reason: format!("CA file is not PEM certificates: {e}"),
            })?;
        if bundle.is_empty() {
            return Err(ConfigError::File {
                path: path.clone(),
                reason: "CA file holds no PEM certificate".into(),
            }
            .into());
        }
        certs.extend(bundle);
    }
    Ok(certs)
}

fn basic_header(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn form_encode(params: &[(&str, &str)]) -> String {
    // Url's query serializer is application/x-www-form-urlencoded; borrow it.
    let mut u = Url::parse("http://localhost/").expect("a constant URL parses");
    u.query_pairs_mut().extend_pairs(params.iter());
    u.query().unwrap_or_default().to_string()
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// An error and its sources on one line ("error sending request: ... Connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// A header value as a string, if present and ASCII.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[("scope", "repository:a/b:pull"), ("x", "a b&c")]),
            "scope=repository%3Aa%2Fb%3Apull&x=a+b%26c"
        );
    }

    #[test]
    fn origins() {
        let a = Url::parse("http://127.0.0.1:5000/v2/x").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("http://127.0.0.1:5000/other").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("http://127.0.0.1:5001/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://127.0.0.1:5000/v2/x").unwrap()
        ));
        assert_eq!(host_port(&a), "127.0.0.1:5000");
    }

    #[test]
    fn bad_ca_file_fails_construction() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let cfg = RegistryConfig {
            ca_files: vec![ca],
            ..RegistryConfig::without_credential_files()
        };
        let err = Transport::new(Arc::new(cfg))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ca.pem"), "{err}");
    }
}
