//! Single registry operations on one endpoint, each fetch digest-checked and size-capped.

use oci_client::manifest::ImageIndexEntry;
use reqwest::{Method, StatusCode, Url};

use super::error::{ContentCheck, RegistryError};
use super::hosts::HostEndpoint;
use super::media;
use super::reference::Digest;
use super::transport::{header_str, Action, Request, Transport};

/// A manifest as fetched: its bytes, verified digest and the Content-Type it came with.
#[derive(Debug, Clone)]
pub(crate) struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub content_type: Option<String>,
}

/// The result of asking the Referrers API.
pub(crate) enum ApiReferrers {
    /// The API answered; entries already filtered by artifact type.
    Supported(Vec<ImageIndexEntry>),
    /// 404 (or not an index): the registry has no Referrers API; use the tag schema.
    Unsupported,
}

/// What a DELETE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deleted {
    Yes,
    WasMissing,
}

/// A repository on one endpoint.
pub(crate) struct Repo<'a> {
    pub t: &'a Transport,
    pub ep: &'a HostEndpoint,
    pub registry: &'a str,
    pub repo: &'a str,
}

impl Repo<'_> {
    /// The URL of `<root>/<repo>/<rest>` with `query` and the endpoint's `ns`.
    fn url(&self, rest: &str, query: &[(&str, &str)]) -> String {
        let base = self.ep.url(self.repo, rest);
        let mut pairs: Vec<(&str, &str)> = query.to_vec();
        if let Some(ns) = &self.ep.ns {
            pairs.push(("ns", ns));
        }
        if pairs.is_empty() {
            return base;
        }
        match Url::parse(&base) {
            Ok(mut u) => {
                u.query_pairs_mut().extend_pairs(pairs.iter());
                u.to_string()
            }
            Err(_) => base,
        }
    }

    fn request<'r>(
        &'r self,
        op: &'static str,
        method: Method,
        url: String,
        action: Action,
    ) -> Request<'r> {
        Request {
            op,
            method,
            ep: self.ep,
            registry: self.registry,
            repo: self.repo,
            url,
            accept: None,
            content_type: None,
            body: None,
            action,
        }
    }

    /// GETs a manifest by tag or digest (404 is a `NotFound` error). The digest is verified
    /// against `expected` (a digest reference) and against `Docker-Content-Digest` when present.
    pub(crate) async fn get_manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
        accept: &str,
        what: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(&format!("manifests/{reference}"), &[]);
        let mut req = self.request("GET manifest", Method::GET, url.clone(), Action::Pull);
        req.accept = Some(accept);
        let resp = self.t.send(&req).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.t.error_from(resp, req.op, &url).await);
        }
        let content_type = header_str(resp.headers(), "content-type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        let header_digest = header_str(resp.headers(), "docker-content-digest").map(str::to_string);
        let bytes = self
            .t
            .read_capped(resp, self.t.cfg.max_manifest_bytes, what, req.op)
            .await?;
        let digest = verify_digest(&bytes, expected, header_digest.as_deref(), what)?;
        Ok(FetchedManifest {
            bytes,
            digest,
            content_type,
        })
    }

    /// GETs a blob, refusing it over `limit` (descriptor size, Content-Length, bytes read) and
    /// verifying its digest. Follows redirects (to storage on another host) without credentials.
    pub(crate) async fn get_blob(
        &self,
        digest: &Digest,
        size: u64,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        RegistryError::check_size(what, size, limit, "descriptor")?;
        let url = self.url(&format!("blobs/{digest}"), &[]);
        let req = self.request("GET blob", Method::GET, url.clone(), Action::Pull);
        let resp = self.t.send(&req).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.t.error_from(resp, req.op, &url).await);
        }
        let bytes = self.t.read_capped(resp, limit, what, req.op).await?;
        verify_digest(&bytes, Some(digest), None, what)?;
        if bytes.len() as u64 != size {
            return Err(RegistryError::InvalidContent {
                what: what.to_string(),
                check: ContentCheck::Descriptor,
                detail: format!("descriptor says {size} bytes, the blob has {}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    pub(crate) async fn blob_exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"), &[]);
        let req = self.request("HEAD blob", Method::HEAD, url.clone(), Action::Push);
        let resp = self.t.send(&req).await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.t.error_from(resp, req.op, &url).await),
        }
    }

    /// Uploads a blob (monolithic POST + PUT) unless the registry already has it.
    pub(crate) async fn push_blob(
        &self,
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        if self.blob_exists(digest).await? {
            return Ok(());
        }
        let url = self.url("blobs/uploads/", &[]);
        let req = self.request("POST blob upload", Method::POST, url.clone(), Action::Push);
        let resp = self.t.send(&req).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.t.error_from(resp, req.op, &url).await);
        }
        let location = header_str(resp.headers(), "location")
            .and_then(|l| Url::parse(&url).ok()?.join(l).ok())
            .ok_or_else(|| RegistryError::Protocol {
                op: req.op.to_string(),
                url: url.clone(),
                message: "202 without a usable Location header".into(),
            })?;
        let mut put_url = location;
        put_url
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let put_url = put_url.to_string();
        let mut put = self.request("PUT blob", Method::PUT, put_url.clone(), Action::Push);
        put.content_type = Some("application/octet-stream");
        put.body = Some(bytes.to_vec());
        let resp = self.t.send(&put).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.t.error_from(resp, put.op, &put_url).await);
        }
        Ok(())
    }

    /// PUTs a manifest; returns the `OCI-Subject` header (set by registries with the
    /// Referrers API when they processed the manifest's subject).
    pub(crate) async fn put_manifest(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Option<String>, RegistryError> {
        let url = self.url(&format!("manifests/{reference}"), &[]);
        let mut req = self.request("PUT manifest", Method::PUT, url.clone(), Action::Push);
        req.content_type = Some(media_type);
        req.body = Some(bytes.to_vec());
        let resp = self.t.send(&req).await?;
        if !resp.status().is_success() {
            return Err(self.t.error_from(resp, req.op, &url).await);
        }
        Ok(header_str(resp.headers(), "oci-subject").map(str::to_string))
    }

    /// DELETEs a manifest by digest. A registry that refuses deletes gives `DeleteRefused`.
    pub(crate) async fn delete_manifest(&self, digest: &Digest) -> Result<Deleted, RegistryError> {
        let url = self.url(&format!("manifests/{digest}"), &[]);
        let req = self.request(
            "DELETE manifest",
            Method::DELETE,
            url.clone(),
            Action::Delete,
        );
        let resp = self.t.send(&req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Deleted::Yes);
        }
        let err = self.t.error_from(resp, req.op, &url).await;
        let said = err.registry_said().cloned();
        let code = |c: &str| said.as_ref().is_some_and(|s| s.has_code(c));
        let unsupported = code("UNSUPPORTED");
        let name_unknown = code("NAME_UNKNOWN");
        // The distribution spec: a registry with deletes disabled answers 400 or 405;
        // distribution itself adds the UNSUPPORTED code.
        if status == StatusCode::METHOD_NOT_ALLOWED
            || status == StatusCode::BAD_REQUEST
            || unsupported
        {
            if let Some(said) = said {
                return Err(RegistryError::DeleteRefused {
                    op: req.op.to_string(),
                    url,
                    said,
                });
            }
        }
        if status == StatusCode::NOT_FOUND && !name_unknown {
            return Ok(Deleted::WasMissing);
        }
        Err(err)
    }

    /// Lists referrers of `subject` through the Referrers API, following pagination.
    /// The referrers of `subject` whose artifact type is one of `artifact_types` (asked
    /// without a server-side filter: the API filters by one type only).
    pub(crate) async fn referrers_api(
        &self,
        subject: &Digest,
        artifact_types: &[&str],
    ) -> Result<ApiReferrers, RegistryError> {
        let what = format!("referrers of {subject}");
        let mut url = self.url(&format!("referrers/{subject}"), &[]);
        let mut out = Vec::new();
        for page in 0..self.t.cfg.max_referrers_pages.max(1) {
            let mut req = self.request("GET referrers", Method::GET, url.clone(), Action::Pull);
            req.accept = Some(media::OCI_INDEX);
            let resp = self.t.send(&req).await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND && page == 0 {
                let err = self.t.error_from(resp, req.op, &url).await;
                // 404 NAME_UNKNOWN is a missing repository, not a missing API.
                if err
                    .registry_said()
                    .is_some_and(|s| s.has_code("NAME_UNKNOWN"))
                {
                    return Err(err);
                }
                tracing::debug!(url = %url, "no Referrers API (404); using the referrers tag schema");
                return Ok(ApiReferrers::Unsupported);
            }
            if status != StatusCode::OK {
                return Err(self.t.error_from(resp, req.op, &url).await);
            }
            let content_type = header_str(resp.headers(), "content-type").map(str::to_string);
            let next = header_str(resp.headers(), "link").and_then(parse_next_link);
            let bytes = self
                .t
                .read_capped(resp, self.t.cfg.max_manifest_bytes, &what, req.op)
                .await?;
            let index: oci_client::manifest::OciImageIndex = match serde_json::from_slice(&bytes) {
                Ok(i) => i,
                Err(e)
                    if page == 0
                        && !content_type
                            .as_deref()
                            .is_some_and(|c| c.starts_with(media::OCI_INDEX)) =>
                {
                    // A 200 that is not an index (an HTML page from a proxy) means no API.
                    tracing::debug!(url = %url, error = %e, "referrers answer is not an index; using the tag schema");
                    return Ok(ApiReferrers::Unsupported);
                }
                Err(e) => {
                    return Err(RegistryError::InvalidContent {
                        what,
                        check: ContentCheck::ReferrersIndex,
                        detail: e.to_string(),
                    })
                }
            };
            out.extend(index.manifests.into_iter().filter(|m| {
                m.artifact_type
                    .as_deref()
                    .is_some_and(|t| artifact_types.contains(&t))
            }));
            match next {
                Some(n) => {
                    url = Url::parse(&url)
                        .ok()
                        .and_then(|u| u.join(&n).ok())
                        .map(|u| u.to_string())
                        .ok_or_else(|| RegistryError::Protocol {
                            op: "GET referrers".into(),
                            url: url.clone(),
                            message: format!("bad Link target {n:?}"),
                        })?;
                }
                None => return Ok(ApiReferrers::Supported(out)),
            }
        }
        tracing::warn!(subject = %subject, pages = self.t.cfg.max_referrers_pages, "referrers list truncated at the page limit");
        Ok(ApiReferrers::Supported(out))
    }

    /// Reads the referrers tag schema index of `subject`: `Ok(None)` when the tag does not
    /// exist. The index is returned as JSON so a rewrite keeps every field of other entries.
    pub(crate) async fn referrers_tag(
        &self,
        subject: &Digest,
    ) -> Result<Option<(FetchedManifest, serde_json::Value)>, RegistryError> {
        let tag = subject.referrers_tag();
        let what = format!("referrers index {}:{tag}", self.repo);
        let m = match self
            .get_manifest(&tag, None, media::INDEX_ACCEPT, &what)
            .await
        {
            Ok(m) => m,
            // No tag: no referrers yet. A missing repository cannot hold the subject either.
            Err(RegistryError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&m.bytes).map_err(|e| RegistryError::InvalidContent {
                what: what.clone(),
                check: ContentCheck::Json,
                detail: e.to_string(),
            })?;
        let media_type = value
            .get("mediaType")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| m.content_type.clone());
        if media_type.as_deref() != Some(media::OCI_INDEX)
            || !value.get("manifests").is_some_and(|v| v.is_array())
        {
            return Err(RegistryError::InvalidContent {
                what,
                check: ContentCheck::ReferrersIndex,
                detail: format!(
                    "the tag holds {}, not an OCI image index with a manifests list",
                    media_type.unwrap_or_else(|| "a document without a media type".into())
                ),
            });
        }
        Ok(Some((m, value)))
    }
}

/// Checks `bytes` against the expected digest and the registry's digest header; returns the
/// content's digest.
pub(crate) fn verify_digest(
    bytes: &[u8],
    expected: Option<&Digest>,
    header: Option<&str>,
    what: &str,
) -> Result<Digest, RegistryError> {
    let mismatch = |expected: String, actual: String| RegistryError::DigestMismatch {
        what: what.to_string(),
        expected,
        actual,
    };
    if let Some(exp) = expected {
        let actual = exp.recompute(bytes);
        if &actual != exp {
            return Err(mismatch(exp.to_string(), actual.to_string()));
        }
    }
    if let Some(h) = header {
        // An unparseable header is ignored (the content is still checked against `expected`);
        // a parseable one that disagrees with the content is an error.
        if let Ok(hd) = Digest::parse(h.trim()) {
            let actual = hd.recompute(bytes);
            if actual != hd {
                return Err(mismatch(
                    format!("{hd} (Docker-Content-Digest)"),
                    actual.to_string(),
                ));
            }
            if expected.is_none() {
                return Ok(hd);
            }
        }
    }
    Ok(match expected {
        Some(e) => e.clone(),
        None => Digest::sha256_of(bytes),
    })
}

/// The target of `Link: <url>; rel="next"`.
fn parse_next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .replace(' ', "")
                .eq_ignore_ascii_case("rel=\"next\"")
                || p.trim().eq_ignore_ascii_case("rel=next")
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        assert_eq!(
            parse_next_link(r#"</v2/a/referrers/sha256:x?n=1&last=y>; rel="next""#).as_deref(),
            Some("/v2/a/referrers/sha256:x?n=1&last=y")
        );
        assert_eq!(parse_next_link(r#"<http://a/b>; rel="prev""#), None);
        assert_eq!(parse_next_link("garbage"), None);
    }

    #[test]
    fn digests_are_verified() {
        let body = b"{}";
        let d = Digest::sha256_of(body);
        assert_eq!(verify_digest(body, Some(&d), None, "x").unwrap(), d);
        let other = Digest::sha256_of(b"other");
        let err = verify_digest(body, Some(&other), None, "m").unwrap_err();
        assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
        let err = verify_digest(body, None, Some(&other.to_string()), "m").unwrap_err();
        assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");
        assert_eq!(
            verify_digest(body, None, Some(&d.to_string()), "m").unwrap(),
            d
        );
        assert_eq!(verify_digest(body, None, Some("junk"), "m").unwrap(), d);
    }
}
