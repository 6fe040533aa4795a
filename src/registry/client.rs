//! The registry client: resolve an image, list/fetch/attach/remove its compatibility artifacts.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

use chrono::Utc;
use oci_client::manifest::OciImageIndex;

use super::artifact::{
    build_artifact_manifest, check_artifact_manifest, format_created, parse_created, rank,
    ArtifactInfo, Descriptor, Discovery, ResolvedImage, SubjectKind,
};
use super::config::RegistryConfig;
use super::error::{ContentCheck, RegistryError};
use super::hosts::{self, Capabilities, HostEndpoint};
use super::media;
use super::ops::{ApiReferrers, Deleted, FetchedManifest, Repo};
use super::platform::Platform;
use super::reference::{Digest, Reference};
use super::transport::Transport;

/// A compatibility spec fetched from a registry.
#[derive(Debug, Clone)]
pub struct FetchedSpec {
    /// The spec layer's bytes (YAML), digest-verified and size-capped.
    pub bytes: Vec<u8>,
    /// The artifact it came from (digest, created, subject, how it was found).
    pub artifact: ArtifactInfo,
    /// The spec layer's descriptor.
    pub layer: Descriptor,
    /// The image it belongs to.
    pub image: ResolvedImage,
    /// The registry host (server or mirror) that served it.
    pub served_by: String,
}

/// What `attach_spec` writes besides the spec.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// When the reference points at an index: attach to this platform's manifest instead of
    /// the index. `None` attaches to what the reference points at, as `oras attach` does.
    pub platform: Option<Platform>,
    /// Manifest annotations. An `org.opencontainers.image.created` here (RFC 3339) is used
    /// instead of the current time.
    pub annotations: BTreeMap<String, String>,
    /// `org.opencontainers.image.title` of the spec layer (oras puts the file name there).
    pub file_name: Option<String>,
}

/// What `attach_spec` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The artifact manifest's digest.
    pub digest: Digest,
    pub size: u64,
    pub subject: Descriptor,
    pub subject_kind: SubjectKind,
    /// `ReferrersApi` when the registry indexed the subject itself (`OCI-Subject` header);
    /// `TagSchema` when this client updated the `<alg>-<hex>` referrers index.
    pub discovery: Discovery,
    /// The `org.opencontainers.image.created` written.
    pub created: String,
}

/// Which artifacts `remove_specs` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveWhich {
    /// One artifact, which must be a compatibility artifact of the image.
    Artifact(Digest),
    /// Every compatibility artifact `list_compat_artifacts` shows for the image.
    All,
}

/// Referrers listed without annotations whose manifests are read for their creation time, per
/// subject: a list of thousands is a hostile or broken registry, not a real image.
const MAX_UNANNOTATED: usize = 256;
/// Such manifests read at once.
const ANNOTATION_READS: usize = 4;

/// A registry client. Cheap to clone; clones share connections and tokens.
#[derive(Clone)]
pub struct Client {
    t: Arc<Transport>,
}

impl Client {
    /// Builds a client; fails on unusable local configuration (e.g. a bad CA file).
    pub fn new(cfg: RegistryConfig) -> Result<Self, RegistryError> {
        Ok(Client {
            t: Arc::new(Transport::new(Arc::new(cfg))?),
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.t.cfg
    }

    fn endpoints(
        &self,
        registry: &str,
        want: fn(&Capabilities) -> bool,
        capability: &'static str,
    ) -> Result<Vec<HostEndpoint>, RegistryError> {
        // hosts.toml is read per call, like containerd: edits apply without a restart.
        let eps: Vec<_> = hosts::endpoints(registry, &self.t.cfg)?
            .into_iter()
            .filter(|e| want(&e.capabilities))
            .collect();
        if eps.is_empty() {
            return Err(RegistryError::NoEndpoint {
                registry: registry.to_string(),
                capability,
            });
        }
        Ok(eps)
    }

    /// Refuses a manifest whose descriptor is already over the cap, before asking for it.
    fn check_manifest_size(&self, size: u64, what: &str) -> Result<(), RegistryError> {
        RegistryError::check_size(what, size, self.t.cfg.max_manifest_bytes, "descriptor")
    }

    /// Asks `registry`'s hosts that have the capability in order (mirrors first, then the
    /// registry itself) and returns the first answer `enough` accepts; when no host gives one,
    /// the last host's answer (an error, or an empty result) stands. `what` names the request
    /// in the debug log of a host that failed.
    async fn ask_hosts<T, F: std::future::Future<Output = Result<T, RegistryError>>>(
        &self,
        registry: &str,
        (want, capability): (fn(&Capabilities) -> bool, &'static str),
        what: &str,
        enough: impl Fn(&T) -> bool,
        ask: impl Fn(HostEndpoint) -> F,
    ) -> Result<T, RegistryError> {
        let mut answer = Err(RegistryError::NoEndpoint {
            registry: registry.to_string(),
            capability,
        });
        for ep in self.endpoints(registry, want, capability)? {
            let host = ep.host.clone();
            answer = ask(ep).await;
            match &answer {
                Ok(found) if enough(found) => break,
                Ok(_) => {}
                Err(e) => tracing::debug!(%host, error = %e, "{what} failed on this host"),
            }
        }
        answer
    }

    fn push_endpoint(&self, registry: &str) -> Result<HostEndpoint, RegistryError> {
        let mut eps = self.endpoints(registry, |c| c.push, "push")?;
        Ok(eps.remove(0))
    }

    fn repo<'a>(&'a self, ep: &'a HostEndpoint, r: &'a Reference) -> Repo<'a> {
        Repo {
            t: &self.t,
            ep,
            registry: r.registry(),
            repo: r.repository(),
        }
    }

    /// Resolves a reference to its index (if any) and the manifest for `platform`. Tags are
    /// resolved on hosts with the resolve capability, digests on hosts with pull, mirrors first.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        let (want, capability): (fn(&Capabilities) -> bool, _) = if reference.digest().is_some() {
            (|c| c.pull, "pull")
        } else {
            (|c| c.resolve, "resolve")
        };
        self.ask_hosts(
            reference.registry(),
            (want, capability),
            "resolve",
            |_| true,
            |ep| async move { self.resolve_on(&ep, reference, platform).await },
        )
        .await
    }

    async fn resolve_on(
        &self,
        ep: &HostEndpoint,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        let repo = self.repo(ep, reference);
        let what = format!("manifest of {reference}");
        let m = repo
            .get_manifest(
                &reference.manifest_ref(),
                reference.digest(),
                media::MANIFEST_ACCEPT,
                &what,
            )
            .await?;
        let media_type = manifest_media_type(&m).ok_or_else(|| RegistryError::InvalidContent {
            what: what.clone(),
            check: ContentCheck::ManifestMediaType,
            detail: "neither an index nor an image manifest".into(),
        })?;
        let target = Descriptor::new(&media_type, m.digest.clone(), m.bytes.len() as u64);
        if media::is_manifest(&media_type) {
            return Ok(ResolvedImage {
                reference: reference.clone(),
                index: None,
                manifest: target,
                platform: None,
            });
        }
        if !media::is_index(&media_type) {
            return Err(RegistryError::InvalidContent {
                what,
                check: ContentCheck::ManifestMediaType,
                detail: format!("{media_type} is neither an index nor an image manifest"),
            });
        }
        let (manifest, found) = select_platform(&m, platform, reference)?;
        Ok(ResolvedImage {
            reference: reference.clone(),
            index: Some(target),
            manifest,
            platform: Some(found),
        })
    }

    /// All compatibility artifacts of the image, on its platform manifest and on its index,
    /// in precedence order, the one `fetch_spec` would use marked `selected`. The first host
    /// (mirrors, then server) that lists any answers; otherwise the last host's answer stands.
    pub async fn list_compat_artifacts(
        &self,
        image: &ResolvedImage,
    ) -> Result<Vec<ArtifactInfo>, RegistryError> {
        self.ask_hosts(
            image.reference.registry(),
            (|c| c.resolve, "resolve"),
            "listing referrers",
            |list: &Vec<ArtifactInfo>| !list.is_empty(),
            |ep| async move { self.list_on(&ep, image).await },
        )
        .await
    }

    /// The artifacts of both subjects on one host, ranked.
    async fn list_on(
        &self,
        ep: &HostEndpoint,
        image: &ResolvedImage,
    ) -> Result<Vec<ArtifactInfo>, RegistryError> {
        let repo = self.repo(ep, &image.reference);
        let on_manifest = self.list_subject(&repo, SubjectKind::PlatformManifest, &image.manifest);
        let on_index = async {
            match &image.index {
                Some(i) => self.list_subject(&repo, SubjectKind::Index, i).await,
                None => Ok(Vec::new()),
            }
        };
        let (a, b) = tokio::join!(on_manifest, on_index);
        let mut all = a?;
        all.extend(b?);
        rank(&mut all);
        Ok(all)
    }

    async fn list_subject(
        &self,
        repo: &Repo<'_>,
        kind: SubjectKind,
        subject: &Descriptor,
    ) -> Result<Vec<ArtifactInfo>, RegistryError> {
        let what = format!("referrers of {}", subject.digest);
        let (descriptors, discovery) = match self.referrers(repo, &subject.digest).await? {
            Referrers::Api(entries) => (
                entries
                    .iter()
                    .map(|e| Descriptor::from_entry(e, &what))
                    .collect::<Result<Vec<_>, _>>()?,
                Discovery::ReferrersApi,
            ),
            Referrers::TagSchema(tag) => {
                let entries = match tag {
                    Some((_, index)) => compat_entries(&index, &what)?,
                    None => Vec::new(),
                };
                (entries, Discovery::TagSchema)
            }
        };
        // Some registries list referrers without their annotations; the creation time decides
        // which artifact wins, so it is read from the manifest: once per digest (a list may
        // repeat one), a few at a time, and at most MAX_UNANNOTATED of them.
        let missing: BTreeSet<Digest> = descriptors
            .iter()
            .filter(|d| d.annotations.is_empty())
            .map(|d| d.digest.clone())
            .collect();
        if missing.len() > MAX_UNANNOTATED {
            return Err(RegistryError::InvalidContent {
                what,
                check: ContentCheck::ReferrersIndex,
                detail: format!(
                    "{} referrers without annotations, more than the {MAX_UNANNOTATED} this client reads one by one",
                    missing.len()
                ),
            });
        }
        let by_digest: std::collections::HashMap<Digest, &Descriptor> =
            descriptors.iter().map(|d| (d.digest.clone(), d)).collect();
        let read: Vec<(Digest, BTreeMap<String, String>)> =
            futures::stream::iter(missing.into_iter().map(|digest| {
                let d = by_digest[&digest];
                async move {
                    let annotations = self.manifest_annotations(repo, d).await?;
                    Ok::<_, RegistryError>((digest, annotations))
                }
            }))
            .buffer_unordered(ANNOTATION_READS)
            .try_collect()
            .await?;
        let read: std::collections::HashMap<Digest, BTreeMap<String, String>> =
            read.into_iter().collect();
        let mut out = Vec::with_capacity(descriptors.len());
        let mut seen = BTreeSet::new();
        for mut d in descriptors {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            if let Some(a) = read.get(&d.digest) {
                d.annotations = a.clone();
            }
            out.push(ArtifactInfo::new(
                d,
                kind,
                subject.digest.clone(),
                discovery,
            ));
        }
        Ok(out)
    }

    /// The referrers of `subject`: through the Referrers API where the host has it, else the
    /// tag schema. Where it is not known yet (the first lookup on a host), both are asked at
    /// once: one round trip instead of two on registries without the API, at the cost of one
    /// unneeded tag read, once, on registries with it. The answer is remembered per host.
    async fn referrers(
        &self,
        repo: &Repo<'_>,
        subject: &Digest,
    ) -> Result<Referrers, RegistryError> {
        let root = repo.ep.url("", "");
        let api = async {
            let types = media::ArtifactKind::ALL.map(media::ArtifactKind::artifact_type);
            let answer = repo.referrers_api(subject, &types).await?;
            self.t
                .set_referrers_api(&root, matches!(answer, ApiReferrers::Supported(_)));
            Ok::<_, RegistryError>(answer)
        };
        match self.t.referrers_api_known(&root) {
            Some(false) => Ok(Referrers::TagSchema(repo.referrers_tag(subject).await?)),
            Some(true) => match api.await? {
                ApiReferrers::Supported(e) => Ok(Referrers::Api(e)),
                ApiReferrers::Unsupported => {
                    Ok(Referrers::TagSchema(repo.referrers_tag(subject).await?))
                }
            },
            None => {
                let (api, tag) = tokio::join!(api, repo.referrers_tag(subject));
                match api? {
                    ApiReferrers::Supported(e) => Ok(Referrers::Api(e)),
                    ApiReferrers::Unsupported => Ok(Referrers::TagSchema(tag?)),
                }
            }
        }
    }

    async fn manifest_annotations(
        &self,
        repo: &Repo<'_>,
        d: &Descriptor,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        let what = format!("compatibility artifact {}", d.digest);
        self.check_manifest_size(d.size, &what)?;
        let m = repo
            .get_manifest(
                &d.digest.to_string(),
                Some(&d.digest),
                media::OCI_MANIFEST,
                &what,
            )
            .await?;
        #[derive(serde::Deserialize)]
        struct Annotated {
            #[serde(default)]
            annotations: BTreeMap<String, String>,
        }
        let a: Annotated =
            serde_json::from_slice(&m.bytes).map_err(|e| RegistryError::InvalidContent {
                what,
                check: ContentCheck::Json,
                detail: e.to_string(),
            })?;
        Ok(a.annotations)
    }

    /// Resolves the reference and fetches its NFD spec artifact alone (`Ok(None)`: it has
    /// none); for tools that read only NFD's format.
    pub async fn fetch_spec(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Option<FetchedSpec>, RegistryError> {
        let all = self.fetch_artifacts(reference, platform).await?;
        Ok(all
            .into_iter()
            .find(|f| f.artifact.kind == media::ArtifactKind::Nfd))
    }

    /// [`Client::fetch_spec`] for an already resolved image.
    pub async fn fetch_spec_for(
        &self,
        image: &ResolvedImage,
    ) -> Result<Option<FetchedSpec>, RegistryError> {
        let all = self.fetch_artifacts_for(image).await?;
        Ok(all
            .into_iter()
            .find(|f| f.artifact.kind == media::ArtifactKind::Nfd))
    }

    /// Resolves the reference and fetches its compatibility artifacts (see
    /// `fetch_artifacts_for`).
    pub async fn fetch_artifacts(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Vec<FetchedSpec>, RegistryError> {
        let image = self.resolve(reference, platform).await?;
        self.fetch_artifacts_for(&image).await
    }

    /// Fetches the compatibility artifacts of an already resolved image: the winning artifact
    /// of each kind (see `list_compat_artifacts`), its manifest checked and its layer read.
    /// Empty: the image has none (errors, including a missing image, are `Err`).
    pub async fn fetch_artifacts_for(
        &self,
        image: &ResolvedImage,
    ) -> Result<Vec<FetchedSpec>, RegistryError> {
        self.ask_hosts(
            image.reference.registry(),
            (|c| c.resolve, "resolve"),
            "fetching the spec",
            |found: &Vec<FetchedSpec>| !found.is_empty(),
            |ep| async move { self.fetch_on(&ep, image).await },
        )
        .await
    }

    async fn fetch_on(
        &self,
        ep: &HostEndpoint,
        image: &ResolvedImage,
    ) -> Result<Vec<FetchedSpec>, RegistryError> {
        let list = self.list_on(ep, image).await?;
        let repo = self.repo(ep, &image.reference);
        let mut out = Vec::new();
        for kind in media::ArtifactKind::ALL {
            if let Some(f) = self.fetch_kind(&repo, ep, image, &list, kind).await? {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// The newest artifact of one kind. A tag schema index is kept by clients and can list an
    /// artifact whose manifest was deleted without updating it; such a stale entry is skipped,
    /// anything else is an error.
    async fn fetch_kind(
        &self,
        repo: &Repo<'_>,
        ep: &HostEndpoint,
        image: &ResolvedImage,
        list: &[ArtifactInfo],
        kind: media::ArtifactKind,
    ) -> Result<Option<FetchedSpec>, RegistryError> {
        let mut found = None;
        for candidate in list.iter().filter(|a| a.kind == kind) {
            let what = format!("compatibility artifact {}", candidate.digest);
            self.check_manifest_size(candidate.size, &what)?;
            match repo
                .get_manifest(
                    &candidate.digest.to_string(),
                    Some(&candidate.digest),
                    media::OCI_MANIFEST,
                    &what,
                )
                .await
            {
                Ok(m) => {
                    found = Some((candidate.clone(), m));
                    break;
                }
                Err(RegistryError::NotFound { .. })
                    if candidate.discovery == Discovery::TagSchema =>
                {
                    tracing::warn!(artifact = %candidate.digest, "referrers index lists a missing artifact; skipped");
                }
                Err(e) => return Err(e),
            }
        }
        let Some((mut winner, m)) = found else {
            return Ok(None);
        };
        winner.selected = true;
        let layer = check_artifact_manifest(
            &m.bytes,
            m.content_type.as_deref(),
            &m.digest,
            &winner.subject,
            kind,
        )?;
        let bytes = repo
            .get_blob(
                &layer.digest,
                layer.size,
                self.t.cfg.max_spec_bytes,
                &format!("spec layer {} of {}", layer.digest, winner.digest),
            )
            .await?;
        tracing::debug!(
            image = %image.reference,
            artifact = %winner.digest,
            kind = kind.as_str(),
            subject = %winner.subject,
            host = %ep.host,
            "fetched compatibility artifact"
        );
        Ok(Some(FetchedSpec {
            bytes,
            artifact: winner,
            layer,
            image: image.clone(),
            served_by: ep.host.clone(),
        }))
    }

    /// Attaches `spec` (YAML bytes, validated by the caller) to the image: pushes the empty
    /// config, the spec layer and an artifact manifest with `subject`; when the registry does
    /// not index the subject itself, adds the artifact to the referrers tag schema index,
    /// keeping the other referrers in it.
    pub async fn attach_spec(
        &self,
        reference: &Reference,
        spec: &[u8],
        kind: media::ArtifactKind,
        opts: &AttachOptions,
    ) -> Result<Attached, RegistryError> {
        let ep = self.push_endpoint(reference.registry())?;
        let repo = self.repo(&ep, reference);
        let what = format!("manifest of {reference}");
        let target = repo
            .get_manifest(
                &reference.manifest_ref(),
                reference.digest(),
                media::MANIFEST_ACCEPT,
                &what,
            )
            .await?;
        let media_type =
            manifest_media_type(&target).ok_or_else(|| RegistryError::InvalidContent {
                what: what.clone(),
                check: ContentCheck::ManifestMediaType,
                detail: "neither an index nor an image manifest".into(),
            })?;
        let target_desc = Descriptor::new(
            &media_type,
            target.digest.clone(),
            target.bytes.len() as u64,
        );
        let (subject, subject_kind) = match (&opts.platform, media::is_index(&media_type)) {
            (Some(p), true) => (
                select_platform(&target, p, reference)?.0,
                SubjectKind::PlatformManifest,
            ),
            (_, true) => (target_desc, SubjectKind::Index),
            (_, false) => (target_desc, SubjectKind::PlatformManifest),
        };

        let mut annotations = opts.annotations.clone();
        let created = match annotations.get(media::ANNOTATION_CREATED) {
            Some(c) if parse_created(c).is_some() => c.clone(),
            Some(c) => {
                return Err(RegistryError::InvalidInput {
                    what: format!("annotation {}", media::ANNOTATION_CREATED),
                    reason: format!("{c:?} is not an RFC 3339 time"),
                })
            }
            // Sub-second precision keeps two attaches in one second in order (Go's RFC 3339
            // parse, used by NFD, accepts the fraction).
            None => format_created(Utc::now()),
        };
        annotations.insert(media::ANNOTATION_CREATED.to_string(), created.clone());

        let empty = Digest::sha256_of(media::EMPTY_JSON);
        repo.push_blob(media::EMPTY_JSON, &empty).await?;
        let spec_digest = Digest::sha256_of(spec);
        repo.push_blob(spec, &spec_digest).await?;
        let mut layer = Descriptor::new(kind.layer_media_type(), spec_digest, spec.len() as u64);
        if let Some(name) = &opts.file_name {
            layer
                .annotations
                .insert(media::ANNOTATION_TITLE.to_string(), name.clone());
        }
        let manifest = build_artifact_manifest(&subject, &layer, &annotations, kind);
        let digest = Digest::sha256_of(&manifest);
        let oci_subject = repo
            .put_manifest(&digest.to_string(), &manifest, media::OCI_MANIFEST)
            .await?;
        let discovery = if oci_subject.is_some() {
            Discovery::ReferrersApi
        } else {
            let entry = Descriptor {
                media_type: media::OCI_MANIFEST.to_string(),
                digest: digest.clone(),
                size: manifest.len() as u64,
                artifact_type: Some(kind.artifact_type().to_string()),
                annotations: annotations.clone(),
            };
            update_tag_index(&repo, &subject.digest, Some(&entry), &BTreeSet::new()).await?;
            Discovery::TagSchema
        };
        tracing::info!(image = %reference, artifact = %digest, subject = %subject.digest, ?discovery, "attached compatibility spec");
        Ok(Attached {
            digest,
            size: manifest.len() as u64,
            subject,
            subject_kind,
            discovery,
            created,
        })
    }

    /// Deletes compatibility artifacts of the image (never the image, never other referrers)
    /// and removes them from the referrers tag schema index where the registry has no API.
    /// Returns the digests deleted.
    pub async fn remove_specs(
        &self,
        image: &ResolvedImage,
        which: &RemoveWhich,
    ) -> Result<Vec<Digest>, RegistryError> {
        let r = &image.reference;
        let ep = self.push_endpoint(r.registry())?;
        let list = self.list_on(&ep, image).await?;
        let targets: Vec<&ArtifactInfo> = match which {
            RemoveWhich::All => list.iter().collect(),
            RemoveWhich::Artifact(d) => {
                let t: Vec<_> = list.iter().filter(|a| &a.digest == d).collect();
                if t.is_empty() {
                    return Err(RegistryError::NotAnArtifactOfImage {
                        image: r.to_string(),
                        detail: format!(
                            "{d} is not a compatibility artifact of this image (it has {})",
                            if list.is_empty() {
                                "none".to_string()
                            } else {
                                list.iter()
                                    .map(|a| a.digest.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    });
                }
                t
            }
        };
        let repo = self.repo(&ep, r);
        let mut removed: Vec<&ArtifactInfo> = Vec::new();
        let mut failure = None;
        for a in targets {
            match repo.delete_manifest(&a.digest).await {
                Ok(Deleted::Yes) => removed.push(a),
                Ok(Deleted::WasMissing) => {
                    tracing::info!(artifact = %a.digest, "artifact manifest already gone; fixing the index only");
                    removed.push(a);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Whatever was deleted leaves the tag schema index even if a later delete failed, so the
        // index never lists manifests that no longer exist.
        let mut by_subject: BTreeMap<&Digest, BTreeSet<Digest>> = BTreeMap::new();
        for a in removed
            .iter()
            .filter(|a| a.discovery == Discovery::TagSchema)
        {
            by_subject
                .entry(&a.subject)
                .or_default()
                .insert(a.digest.clone());
        }
        for (subject, digests) in by_subject {
            update_tag_index(&repo, subject, None, &digests).await?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let digests: Vec<Digest> = removed.iter().map(|a| a.digest.clone()).collect();
        tracing::info!(image = %r, removed = digests.len(), "removed compatibility specs");
        Ok(digests)
    }
}

/// Adds `add` to and removes `remove` from the tag schema index of `subject`, keeping every
/// other entry as it is. An index left empty is deleted rather than pushed empty, as oras does
/// (its manifest is deleted by digest, which drops the tag). The superseded index manifest is
/// deleted after a rewrite, as oras does, so it does not linger untagged.
async fn update_tag_index(
    repo: &Repo<'_>,
    subject: &Digest,
    add: Option<&Descriptor>,
    remove: &BTreeSet<Digest>,
) -> Result<(), RegistryError> {
    let tag = subject.referrers_tag();
    let old = repo.referrers_tag(subject).await?;
    let (old_digest, mut index) = match old {
        Some((m, v)) => (Some(m.digest), v),
        None => (
            None,
            serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []}),
        ),
    };
    let entries = index
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| RegistryError::InvalidContent {
            what: format!("referrers index {tag}"),
            check: ContentCheck::ReferrersIndex,
            detail: "no manifests list".into(),
        })?;
    let entry_digest = |v: &serde_json::Value| {
        v.get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| Digest::parse(d).ok())
    };
    let before = entries.len();
    entries.retain(|e| !entry_digest(e).is_some_and(|d| remove.contains(&d)));
    let mut changed = entries.len() != before;
    if let Some(a) = add {
        if !entries
            .iter()
            .any(|e| entry_digest(e).as_ref() == Some(&a.digest))
        {
            entries.push(a.to_json());
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    if entries.is_empty() {
        if let Some(old) = &old_digest {
            match repo.delete_manifest(old).await {
                Ok(_) => return Ok(()),
                Err(RegistryError::DeleteRefused { .. }) => {
                    // Cannot drop the tag: an empty index is the next best truthful answer.
                    tracing::warn!(tag = %tag, "registry refuses deletes; pushing an empty referrers index");
                }
                Err(e) => return Err(e),
            }
        } else {
            return Ok(());
        }
    }
    let bytes = serde_json::to_vec(&index).map_err(|e| RegistryError::InvalidInput {
        what: "referrers index".into(),
        reason: e.to_string(),
    })?;
    repo.put_manifest(&tag, &bytes, media::OCI_INDEX).await?;
    if let Some(old) = old_digest {
        if old != Digest::sha256_of(&bytes) {
            if let Err(e) = repo.delete_manifest(&old).await {
                // Only garbage is left behind; the tag already points at the new index.
                tracing::warn!(tag = %tag, old = %old, error = %e, "could not delete the superseded referrers index");
            }
        }
    }
    Ok(())
}

/// The entries of a referrers index that are compatibility artifacts.
pub(crate) fn compat_entries(
    index: &serde_json::Value,
    what: &str,
) -> Result<Vec<Descriptor>, RegistryError> {
    let Some(entries) = index.get("manifests").and_then(|m| m.as_array()) else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .filter(|e| {
            e.get("artifactType")
                .and_then(|a| a.as_str())
                .and_then(media::ArtifactKind::of)
                .is_some()
        })
        .map(|e| {
            let entry: oci_client::manifest::ImageIndexEntry = serde_json::from_value(e.clone())
                .map_err(|err| RegistryError::InvalidContent {
                    what: what.to_string(),
                    check: ContentCheck::Descriptor,
                    detail: err.to_string(),
                })?;
            Descriptor::from_entry(&entry, what)
        })
        .collect()
}

/// The media type of a fetched manifest: its `mediaType`, else the Content-Type, else its shape.
pub(crate) fn manifest_media_type(m: &FetchedManifest) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        layers: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_slice(&m.bytes).ok()?;
    if let Some(mt) = probe.media_type {
        return Some(mt);
    }
    if let Some(ct) = &m.content_type {
        if media::is_index(ct) || media::is_manifest(ct) {
            return Some(ct.clone());
        }
    }
    if probe.manifests.is_some() {
        Some(media::OCI_INDEX.to_string())
    } else if probe.layers.is_some() {
        Some(media::OCI_MANIFEST.to_string())
    } else {
        None
    }
}

/// Picks the index entry for `platform` (skipping attestation manifests).
pub(crate) fn select_platform(
    index: &FetchedManifest,
    platform: &Platform,
    reference: &Reference,
) -> Result<(Descriptor, Platform), RegistryError> {
    let what = format!("index of {reference}");
    let parsed: OciImageIndex =
        serde_json::from_slice(&index.bytes).map_err(|e| RegistryError::InvalidContent {
            what: what.clone(),
            check: ContentCheck::Json,
            detail: e.to_string(),
        })?;
    let mut available = Vec::new();
    let mut best: Option<(u8, &oci_client::manifest::ImageIndexEntry, Platform)> = None;
    for entry in &parsed.manifests {
        let is_attestation = entry
            .annotations
            .as_ref()
            .and_then(|a| a.get("vnd.docker.reference.type"))
            .is_some_and(|t| t == "attestation-manifest");
        let Some(p) = &entry.platform else { continue };
        let p = Platform::new(
            &p.os.to_string(),
            &p.architecture.to_string(),
            p.variant.as_deref(),
        );
        if is_attestation || !media::is_manifest(&entry.media_type) {
            continue;
        }
        available.push(p.to_string());
        if platform.matches(&p) {
            let rank = platform.rank(&p);
            if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
                best = Some((rank, entry, p));
            }
        }
    }
    match best {
        Some((_, entry, p)) => Ok((Descriptor::from_entry(entry, &what)?, p)),
        None => Err(RegistryError::NoMatchingPlatform {
            image: reference.to_string(),
            platform: platform.to_string(),
            available: if available.is_empty() {
                "none".into()
            } else {
                available.join(", ")
            },
        }),
    }
}

/// Where an image's referrers came from, with what was found there.
enum Referrers {
    Api(Vec<oci_client::manifest::ImageIndexEntry>),
    TagSchema(Option<(FetchedManifest, serde_json::Value)>),
}
