//! An in-process OCI registry for tests, with switches to make it misbehave.
//!
//! Blobs, uploads, manifests, tags, deletes, the Referrers API (artifactType filter,
//! `OCI-Subject`, pagination), a bearer token service or Basic auth; misbehaviour: bad digests,
//! oversized or redirected blobs, delays, odd errors, refused deletes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use image_compat::registry::{AttachOptions, Client, Reference, RegistryConfig};
use sha2::Digest as _;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How the registry authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    None,
    /// Bearer tokens from `/token`, which wants these Basic credentials.
    Bearer {
        username: String,
        password: String,
    },
    /// Basic credentials on every request.
    Basic {
        username: String,
        password: String,
    },
}

/// How the registry behaves; change it through `TestRegistry::behave`.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// `false`: `/referrers/` answers 404 text/plain and manifest PUTs carry no `OCI-Subject`,
    /// like Distribution 2.8.
    pub referrers_api: bool,
    /// `false`: the Referrers API ignores `artifactType` (no `OCI-Filters-Applied`).
    pub filter_referrers: bool,
    /// Referrers per page (`Link: rel="next"` for more).
    pub referrers_page_size: Option<usize>,
    /// Leave annotations out of referrers descriptors.
    pub omit_referrer_annotations: bool,
    /// `false`: DELETE answers 405 UNSUPPORTED.
    pub deletes: bool,
    pub auth: AuthMode,
    /// Blob digests served with altered bytes.
    pub corrupt_blobs: HashSet<String>,
    /// Manifest digests served with altered bytes.
    pub corrupt_manifests: HashSet<String>,
    /// Blob digests served as this many bytes instead (bool: without Content-Length).
    pub oversize_blobs: HashMap<String, (usize, bool)>,
    /// Blob GETs answer 307 to the second listener (another port, no auth there).
    pub redirect_blobs: bool,
    /// Requests whose path contains the string wait this long first.
    pub delay: Option<(String, Duration)>,
    /// Requests whose path contains the string get this status, content type and body.
    pub fail: Option<(String, u16, &'static str, String)>,
    /// An OAuth2 refresh token `/token` accepts in a POST (docker's identitytoken).
    pub refresh_token: Option<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            referrers_api: true,
            filter_referrers: true,
            referrers_page_size: None,
            omit_referrer_annotations: false,
            deletes: true,
            auth: AuthMode::None,
            corrupt_blobs: HashSet::new(),
            corrupt_manifests: HashSet::new(),
            oversize_blobs: HashMap::new(),
            redirect_blobs: false,
            delay: None,
            fail: None,
            refresh_token: None,
        }
    }
}

/// One request the registry saw.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    /// Which listener: false the registry, true the redirect target.
    pub redirected: bool,
}

#[derive(Default)]
struct Store {
    blobs: HashMap<String, Vec<u8>>,
    /// (repo, digest) -> (media type, bytes)
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    tags: HashMap<(String, String), String>,
    uploads: HashMap<String, Vec<u8>>,
    tokens: HashSet<String>,
    log: Vec<Logged>,
    next_id: u64,
}

struct Shared {
    store: Mutex<Store>,
    behaviour: Mutex<Behaviour>,
    host: String,
    cdn_host: String,
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    cdn: bool,
}

/// A running test registry on 127.0.0.1; stopped on drop.
pub struct TestRegistry {
    /// `127.0.0.1:<port>`, the registry name to use in references.
    pub host: String,
    /// The redirect target listener.
    pub cdn_host: String,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl TestRegistry {
    pub async fn start() -> Self {
        Self::start_with(Behaviour::default()).await
    }

    pub async fn start_with(behaviour: Behaviour) -> Self {
        let main = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let cdn = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = main.local_addr().expect("addr");
        let cdn_addr: SocketAddr = cdn.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            behaviour: Mutex::new(behaviour),
            host: addr.to_string(),
            cdn_host: cdn_addr.to_string(),
        });
        let mut tasks = Vec::new();
        for (listener, is_cdn) in [(main, false), (cdn, true)] {
            let app = Router::new().fallback(handle).with_state(Ctx {
                shared: shared.clone(),
                cdn: is_cdn,
            });
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        TestRegistry {
            host: addr.to_string(),
            cdn_host: cdn_addr.to_string(),
            shared,
            tasks,
        }
    }

    /// Changes the behaviour.
    pub fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.shared.behaviour.lock().expect("lock"));
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.shared.store.lock().expect("lock").log.clone()
    }

    pub fn clear_log(&self) {
        self.shared.store.lock().expect("lock").log.clear();
    }

    pub fn put_blob(&self, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        self.shared
            .store
            .lock()
            .expect("lock")
            .blobs
            .insert(d.clone(), bytes.to_vec());
        d
    }

    /// Stores a manifest (bytes as given) and optionally tags it; returns its descriptor.
    pub fn put_manifest_bytes(
        &self,
        repo: &str,
        tag: Option<&str>,
        bytes: Vec<u8>,
    ) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("manifest JSON");
        let mt = v["mediaType"].as_str().unwrap_or(OCI_MANIFEST).to_string();
        let d = sha256(&bytes);
        let size = bytes.len();
        let mut s = self.shared.store.lock().expect("lock");
        s.manifests
            .insert((repo.into(), d.clone()), (mt.clone(), bytes));
        if let Some(t) = tag {
            s.tags.insert((repo.into(), t.into()), d.clone());
        }
        serde_json::json!({"mediaType": mt, "digest": d, "size": size})
    }

    pub fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        v: &serde_json::Value,
    ) -> serde_json::Value {
        self.put_manifest_bytes(repo, tag, serde_json::to_vec(v).expect("json"))
    }

    /// A one-layer image for `os/arch`; returns its manifest descriptor.
    pub fn push_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        os: &str,
        arch: &str,
    ) -> serde_json::Value {
        let config = serde_json::json!({"architecture": arch, "os": os, "rootfs": {"type": "layers", "diff_ids": []}});
        let config_bytes = serde_json::to_vec(&config).expect("json");
        let cd = self.put_blob(&config_bytes);
        let layer = format!("layer of {repo} {os}/{arch}").into_bytes();
        let ld = self.put_blob(&layer);
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config_bytes.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}]
        });
        self.put_manifest(repo, tag, &m)
    }

    /// What a client of this server needs: plain HTTP, no credential files.
    pub fn client_config(&self) -> RegistryConfig {
        RegistryConfig {
            plain_http: vec![self.host.clone()],
            ..RegistryConfig::without_credential_files()
        }
    }

    /// Pushes the linux/amd64 image `repo:tag` and, when `spec` is given, attaches it with the
    /// crate's client (as `image-compat attach-spec` does); returns the image's name by tag
    /// (`host/repo:tag`) and its manifest digest.
    pub async fn push_image_with_spec(
        &self,
        repo: &str,
        tag: &str,
        spec: Option<&[u8]>,
    ) -> (String, String) {
        let desc = self.push_image(repo, Some(tag), "linux", "amd64");
        let name = format!("{}/{repo}:{tag}", self.host);
        if let Some(spec) = spec {
            Client::new(self.client_config())
                .expect("client")
                .attach_spec(
                    &Reference::parse(&name).expect("reference"),
                    spec,
                    image_compat::registry::media::ArtifactKind::Nfd,
                    &AttachOptions::default(),
                )
                .await
                .expect("attach");
        }
        let digest = desc["digest"].as_str().expect("digest").to_string();
        (name, digest)
    }

    /// An index of one image per platform (`os/arch[/variant]`); returns (index, manifests).
    pub fn push_index(
        &self,
        repo: &str,
        tag: &str,
        platforms: &[&str],
    ) -> (serde_json::Value, Vec<serde_json::Value>) {
        let mut entries = Vec::new();
        let mut descs = Vec::new();
        for p in platforms {
            let parts: Vec<&str> = p.split('/').collect();
            let desc = self.push_image(repo, None, parts[0], parts[1]);
            let mut entry = desc.clone();
            let mut platform = serde_json::json!({"os": parts[0], "architecture": parts[1]});
            if let Some(v) = parts.get(2) {
                platform["variant"] = (*v).into();
            }
            entry["platform"] = platform;
            entries.push(entry);
            descs.push(desc);
        }
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        (self.put_manifest(repo, Some(tag), &index), descs)
    }

    /// Stores an artifact manifest with `subject`, and lists it in the tag schema index too when
    /// the Referrers API is off (what oras would do). Returns its descriptor.
    pub fn put_artifact(&self, repo: &str, artifact: &serde_json::Value) -> serde_json::Value {
        let desc = self.put_manifest(repo, None, artifact);
        if !self.shared.behaviour.lock().expect("lock").referrers_api {
            let subject = artifact["subject"]["digest"]
                .as_str()
                .expect("subject")
                .to_string();
            let mut entry = desc.clone();
            entry["artifactType"] = artifact
                .get("artifactType")
                .cloned()
                .unwrap_or_else(|| artifact["config"]["mediaType"].clone());
            if let Some(a) = artifact.get("annotations") {
                entry["annotations"] = a.clone();
            }
            self.add_to_tag_index(repo, &subject, entry);
        }
        desc
    }

    /// Appends an entry to the referrers tag schema index of `subject`.
    pub fn add_to_tag_index(&self, repo: &str, subject: &str, entry: serde_json::Value) {
        let tag = subject.replace(':', "-");
        let mut index = self.manifest_by_tag(repo, &tag).unwrap_or_else(
            || serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
        );
        index["manifests"]
            .as_array_mut()
            .expect("manifests")
            .push(entry);
        self.put_manifest(repo, Some(&tag), &index);
    }

    pub fn manifest_by_tag(&self, repo: &str, tag: &str) -> Option<serde_json::Value> {
        let s = self.shared.store.lock().expect("lock");
        let d = s.tags.get(&(repo.to_string(), tag.to_string()))?;
        let (_, bytes) = s.manifests.get(&(repo.to_string(), d.clone()))?;
        serde_json::from_slice(bytes).ok()
    }

    pub fn manifest(&self, repo: &str, digest: &str) -> Option<serde_json::Value> {
        let s = self.shared.store.lock().expect("lock");
        let (_, bytes) = s.manifests.get(&(repo.to_string(), digest.to_string()))?;
        serde_json::from_slice(bytes).ok()
    }

    pub fn has_manifest(&self, repo: &str, digest: &str) -> bool {
        self.shared
            .store
            .lock()
            .expect("lock")
            .manifests
            .contains_key(&(repo.to_string(), digest.to_string()))
    }

    pub fn tags(&self, repo: &str) -> Vec<String> {
        let s = self.shared.store.lock().expect("lock");
        let mut t: Vec<String> = s
            .tags
            .keys()
            .filter(|(r, _)| r == repo)
            .map(|(_, t)| t.clone())
            .collect();
        t.sort();
        t
    }
}

fn path_parts(path: &str) -> Option<(String, &'static str, String)> {
    let rest = path.strip_prefix("/v2/")?;
    for kind in ["/manifests/", "/blobs/uploads/", "/blobs/", "/referrers/"] {
        if let Some(i) = rest.rfind(kind) {
            let name = rest[..i].to_string();
            let reference = rest[i + kind.len()..].to_string();
            let k: &'static str = match kind {
                "/manifests/" => "manifests",
                "/blobs/uploads/" => "uploads",
                "/blobs/" => "blobs",
                _ => "referrers",
            };
            return Some((name, k, reference));
        }
    }
    None
}

fn query_param(query: &str, key: &str) -> Option<String> {
    url_decode_pairs(query)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    let u = reqwest::Url::parse(&format!("http://x/?{query}")).expect("url");
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let shared = ctx.shared.clone();
    shared.store.lock().expect("lock").log.push(Logged {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        redirected: ctx.cdn,
    });
    let behaviour = shared.behaviour.lock().expect("lock").clone();
    if let Some((needle, d)) = &behaviour.delay {
        if path.contains(needle.as_str()) {
            tokio::time::sleep(*d).await;
        }
    }
    if let Some((needle, status, ct, text)) = &behaviour.fail {
        if path.contains(needle.as_str()) {
            let status = StatusCode::from_u16(*status).expect("status");
            return (status, [("content-type", *ct)], text.clone()).into_response();
        }
    }
    if ctx.cdn {
        let digest = path.trim_start_matches("/cdn/");
        let s = shared.store.lock().expect("lock");
        return match s.blobs.get(digest) {
            Some(b) => (StatusCode::OK, b.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if path == "/token" {
        let form = if method == Method::POST {
            String::from_utf8_lossy(&body).into_owned()
        } else {
            String::new()
        };
        return token(&shared, &behaviour, &headers, &query, &form);
    }
    if let Some(denied) = check_auth(&shared, &behaviour, &headers, &path, &method) {
        return denied;
    }
    if path == "/v2/" || path == "/v2" {
        return (StatusCode::OK, "{}").into_response();
    }
    let Some((name, kind, reference)) = path_parts(&path) else {
        return oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "no such route");
    };
    match (kind, method.clone()) {
        ("manifests", Method::GET) | ("manifests", Method::HEAD) => get_manifest(
            &shared,
            &behaviour,
            &name,
            &reference,
            method == Method::HEAD,
        ),
        ("manifests", Method::PUT) => {
            put_manifest(&shared, &behaviour, &name, &reference, &headers, body)
        }
        ("manifests", Method::DELETE) => delete_manifest(&shared, &behaviour, &name, &reference),
        ("blobs", Method::GET) | ("blobs", Method::HEAD) => {
            get_blob(&shared, &behaviour, &reference, method == Method::HEAD)
        }
        ("uploads", Method::POST) => {
            let mut s = shared.store.lock().expect("lock");
            s.next_id += 1;
            let id = format!("upload-{}", s.next_id);
            s.uploads.insert(id.clone(), Vec::new());
            let loc = format!("/v2/{name}/blobs/uploads/{id}?state=opaque");
            (StatusCode::ACCEPTED, [("location", loc)]).into_response()
        }
        ("uploads", Method::PUT) => {
            let Some(digest) = query_param(&query, "digest") else {
                return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "no digest");
            };
            if query_param(&query, "state").as_deref() != Some("opaque") {
                return oci_error(
                    StatusCode::BAD_REQUEST,
                    "BLOB_UPLOAD_INVALID",
                    "upload state lost",
                );
            }
            let mut s = shared.store.lock().expect("lock");
            let Some(mut data) = s.uploads.remove(&reference) else {
                return oci_error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UPLOAD_UNKNOWN",
                    "unknown upload",
                );
            };
            data.extend_from_slice(&body);
            if sha256(&data) != digest {
                return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "digest mismatch");
            }
            s.blobs.insert(digest.clone(), data);
            (
                StatusCode::CREATED,
                [("location", format!("/v2/{name}/blobs/{digest}"))],
            )
                .into_response()
        }
        ("referrers", Method::GET) => referrers(&shared, &behaviour, &name, &reference, &query),
        _ => oci_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "not here"),
    }
}

fn token(shared: &Shared, b: &Behaviour, headers: &HeaderMap, query: &str, form: &str) -> Response {
    let AuthMode::Bearer { username, password } = &b.auth else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    );
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    let params = if form.is_empty() { query } else { form };
    let refreshed = !form.is_empty()
        && query_param(form, "grant_type").as_deref() == Some("refresh_token")
        && b.refresh_token.is_some()
        && query_param(form, "refresh_token") == b.refresh_token;
    if given != Some(expected.as_str()) && !refreshed {
        return oci_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "token service: bad or missing credentials",
        );
    }
    if query_param(params, "service").as_deref() != Some("test-registry") {
        return oci_error(StatusCode::BAD_REQUEST, "DENIED", "unknown service");
    }
    let mut s = shared.store.lock().expect("lock");
    s.next_id += 1;
    let t = format!("tok-{}", s.next_id);
    s.tokens.insert(t.clone());
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        serde_json::json!({"token": t, "expires_in": 300}).to_string(),
    )
        .into_response()
}

fn check_auth(
    shared: &Shared,
    b: &Behaviour,
    headers: &HeaderMap,
    path: &str,
    method: &Method,
) -> Option<Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match &b.auth {
        AuthMode::None => None,
        AuthMode::Basic { username, password } => {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            );
            (given != expected).then(|| {
                let mut r = oci_error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                );
                r.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("Basic realm=\"test\""),
                );
                r
            })
        }
        AuthMode::Bearer { .. } => {
            let ok = given
                .strip_prefix("Bearer ")
                .is_some_and(|t| shared.store.lock().expect("lock").tokens.contains(t));
            if ok {
                return None;
            }
            let name = path_parts(path).map(|(n, _, _)| n).unwrap_or_default();
            let actions = if method == Method::GET || method == Method::HEAD {
                "pull"
            } else {
                "pull,push"
            };
            let challenge = format!(
                "Bearer realm=\"http://{}/token\",service=\"test-registry\",scope=\"repository:{name}:{actions}\"",
                shared.host
            );
            let mut r = oci_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            );
            r.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_str(&challenge).expect("header"),
            );
            Some(r)
        }
    }
}

fn get_manifest(
    shared: &Shared,
    b: &Behaviour,
    name: &str,
    reference: &str,
    head: bool,
) -> Response {
    let s = shared.store.lock().expect("lock");
    let digest = if reference.starts_with("sha256:") {
        reference.to_string()
    } else {
        match s.tags.get(&(name.to_string(), reference.to_string())) {
            Some(d) => d.clone(),
            None => {
                return oci_error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                )
            }
        }
    };
    let Some((mt, bytes)) = s.manifests.get(&(name.to_string(), digest.clone())) else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    };
    let mut bytes = bytes.clone();
    if b.corrupt_manifests.contains(&digest) {
        bytes.extend_from_slice(b"  ");
    }
    let len = bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", mt.as_str())
        .header("docker-content-digest", digest)
        .header("content-length", len)
        .body(body)
        .expect("response")
}

fn put_manifest(
    shared: &Shared,
    b: &Behaviour,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let digest = sha256(&body);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return oci_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", "not JSON");
    };
    let mt = v["mediaType"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            headers
                .get("content-type")
                .and_then(|c| c.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    if reference.starts_with("sha256:") && reference != digest {
        return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "digest mismatch");
    }
    let mut s = shared.store.lock().expect("lock");
    s.manifests
        .insert((name.to_string(), digest.clone()), (mt, body.to_vec()));
    if !reference.starts_with("sha256:") {
        s.tags
            .insert((name.to_string(), reference.to_string()), digest.clone());
    }
    let mut r = Response::builder()
        .status(StatusCode::CREATED)
        .header("location", format!("/v2/{name}/manifests/{digest}"))
        .header("docker-content-digest", digest.as_str());
    if b.referrers_api {
        if let Some(subject) = v["subject"]["digest"].as_str() {
            r = r.header("oci-subject", subject);
        }
    }
    r.body(Body::empty()).expect("response")
}

fn delete_manifest(shared: &Shared, b: &Behaviour, name: &str, reference: &str) -> Response {
    if !b.deletes {
        return oci_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "The operation is unsupported.",
        );
    }
    let mut s = shared.store.lock().expect("lock");
    if s.manifests
        .remove(&(name.to_string(), reference.to_string()))
        .is_none()
    {
        return oci_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    }
    s.tags.retain(|(r, _), d| !(r == name && d == reference));
    StatusCode::ACCEPTED.into_response()
}

fn get_blob(shared: &Shared, b: &Behaviour, digest: &str, head: bool) -> Response {
    let s = shared.store.lock().expect("lock");
    let Some(bytes) = s.blobs.get(digest) else {
        return oci_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown");
    };
    if head {
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-length", bytes.len())
            .header("docker-content-digest", digest)
            .body(Body::empty())
            .expect("response");
    }
    if b.redirect_blobs {
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(
                "location",
                format!("http://{}/cdn/{digest}", shared.cdn_host),
            )
            .body(Body::empty())
            .expect("response");
    }
    if let Some((size, chunked)) = b.oversize_blobs.get(digest) {
        let data = vec![b'x'; *size];
        if *chunked {
            let chunks: Vec<Result<Bytes, std::io::Error>> = data
                .chunks(64 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            return Response::builder()
                .status(StatusCode::OK)
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .expect("response");
        }
        return (StatusCode::OK, data).into_response();
    }
    let mut bytes = bytes.clone();
    if b.corrupt_blobs.contains(digest) {
        if let Some(first) = bytes.first_mut() {
            *first ^= 0x20;
        }
    }
    (
        StatusCode::OK,
        [("docker-content-digest", digest.to_string())],
        bytes,
    )
        .into_response()
}

fn referrers(shared: &Shared, b: &Behaviour, name: &str, subject: &str, query: &str) -> Response {
    if !b.referrers_api {
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "text/plain; charset=utf-8")],
            "404 page not found\n",
        )
            .into_response();
    }
    let s = shared.store.lock().expect("lock");
    let mut entries: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for ((repo, digest), (mt, bytes)) in &s.manifests {
        if repo != name {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            continue;
        };
        if v["subject"]["digest"].as_str() != Some(subject) {
            continue;
        }
        let mut d = serde_json::json!({"mediaType": mt, "digest": digest, "size": bytes.len()});
        let at = v
            .get("artifactType")
            .cloned()
            .unwrap_or_else(|| v["config"]["mediaType"].clone());
        if !at.is_null() {
            d["artifactType"] = at;
        }
        if !b.omit_referrer_annotations {
            if let Some(a) = v.get("annotations") {
                d["annotations"] = a.clone();
            }
        }
        entries.insert(digest.clone(), d);
    }
    let wanted = query_param(query, "artifactType");
    let mut list: Vec<serde_json::Value> = entries.into_values().collect();
    let mut filtered = false;
    if let (true, Some(w)) = (b.filter_referrers, &wanted) {
        list.retain(|d| d["artifactType"].as_str() == Some(w.as_str()));
        filtered = true;
    }
    let page: usize = query_param(query, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut link = None;
    if let Some(size) = b.referrers_page_size {
        let total = list.len();
        list = list.into_iter().skip(page * size).take(size).collect();
        if (page + 1) * size < total {
            let mut q = format!("page={}", page + 1);
            if let Some(w) = &wanted {
                q.push_str(&format!("&artifactType={}", w.replace('+', "%2B")));
            }
            link = Some(format!(
                "</v2/{name}/referrers/{subject}?{q}>; rel=\"next\""
            ));
        }
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list});
    let mut r = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", OCI_INDEX);
    if filtered {
        r = r.header("oci-filters-applied", "artifactType");
    }
    if let Some(l) = link {
        r = r.header("link", l);
    }
    r.body(Body::from(index.to_string())).expect("response")
}
