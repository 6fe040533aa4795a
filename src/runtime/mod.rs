//! What containerd knows about images: name -> (repository, digest) subjects, image events.
//!
//! On CreateContainer the NRI plugin gets the image as a *name* only (the annotation
//! `io.kubernetes.cri.image-name`; no digest before NRI 0.12), and compatibility artifacts hang
//! in the registry off the image's index or platform manifest, in whatever repository it was
//! pushed to. [`Runtime::subjects`] turns the name into every `(repository, digest)` pair worth
//! a referrers lookup, in precedence order (see [`ImageSubjects::candidates`]):
//! 1. the named record's platform manifest, then its target (index), under the name's
//!    repository;
//! 2. the same for every other record of the namespace with the same config digest (CRI's image
//!    id), under their own repositories; records whose name is not a registry reference
//!    (`sha256:<config>`) lend their digests to the repositories of the others.
//!
//! Lookups normally cost no RPC: an [`ImageIndex`] is built from `Images.List` plus content
//! reads (cached by digest: content is immutable) and kept current from the `/images/create`,
//! `/images/update` and `/images/delete` events of the namespace. A name missing from the index
//! (an event not yet applied) costs one `Images.Get` and up to two content reads; while the
//! event stream is down every lookup relists (one `Images.List`; content stays cached). The
//! connection is lazy (the socket may not exist yet) and every call has a deadline; after a
//! transport failure the next call reconnects, and the event stream is resubscribed with
//! exponential backoff (logged), followed by a full resync.
//!
//! What containerd 2.1.9 and 1.7.24 were seen to do (integration tests `runtime_containerd`):
//! - Record names. `ctr images import` creates the name in the archive (`localhost/t/app:1`);
//!   `ctr images tag` a second name with the same target. A CRI pull of `repo:tag` creates
//!   `repo:tag`, `repo@sha256:<target>` and `sha256:<config>`, all with the same target. CRI
//!   also gives ctr-imported images a `sha256:<config>` record, from its own event handler, so
//!   a moment later (1.7 had not yet when `ctr images ls` ran right after the import; 2.1 had)
//!   and relabels each record (`io.cri-containerd.image=managed`: an `/images/update`). When
//!   two names share a config, the id record's target is one of theirs: seen either way.
//! - The annotation `io.kubernetes.cri.image-name`. 2.1 writes the CRI request's
//!   `user_specified_image` verbatim when set (the kubelet sets it to the pod's image, so it
//!   can be unnormalised: `bb:1`), else the image's first sorted reference. 1.7 always writes
//!   the first sorted reference, normalised (`docker.io/library/bb:1`). So with
//!   `localhost/t/multi:1` (an index) and `localhost/o/app:2` (its amd64 manifest) both
//!   present, a pod asking for `t/multi:1` gets `o/app:2` in the annotation on 1.7 (and on 2.1
//!   without `user_specified_image`), whose target is the manifest, not the index: hence the
//!   candidates of every record sharing the config.
//! - Events. Topics `/images/create`, `/images/update` (re-import or re-tag of an existing
//!   name), `/images/delete` in the envelope's namespace; the payload
//!   (`containerd.services.images.v1.ImageCreate` etc.) holds the name and labels, no target,
//!   so the record is read back with `Images.Get`. containerd sends the Subscribe response
//!   headers only with the first event.
//!
//! ```no_run
//! # async fn demo() -> Result<(), image_compat::runtime::RuntimeError> {
//! use futures::StreamExt;
//! use image_compat::runtime::{Runtime, DEFAULT_NAMESPACE, DEFAULT_SOCKET};
//! let rt = Runtime::connect(DEFAULT_SOCKET.as_ref(), DEFAULT_NAMESPACE)?;
//! match rt.subjects("busybox:1.36").await {
//!     Ok(s) => s.candidates.iter().for_each(|c| println!("{:?} {}", c.kind, c.reference)),
//!     Err(e) if e.is_not_found() => println!("containerd has no such image"),
//!     Err(e) => return Err(e),
//! }
//! let mut events = Box::pin(rt.watch_images());
//! while let Some(ev) = events.next().await {
//!     println!("{:?} {} {:?}", ev.kind, ev.name, ev.target.map(|t| t.digest));
//! }
//! # Ok(()) }
//! ```

mod client;
mod content;
mod index;
mod name;
mod resolver;
mod sync;
mod workloads;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use containerd_client::tonic::Code;
pub use content::MAX_MANIFEST_BYTES;
pub use index::{Candidate, ImageIndex, ImageRecord, ImageSubjects, Resolution, Resolved};
pub use name::normalize_name;
pub use resolver::ContainerdResolver;
pub use workloads::ContainerImage;

use crate::registry::{Descriptor, Digest, Platform};
use client::Client;
use content::Parsed;

/// containerd's default gRPC socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// The namespace CRI (and so Kubernetes) keeps its images in.
pub const DEFAULT_NAMESPACE: &str = "k8s.io";

/// Deepest index nesting followed to reach a platform manifest.
const MAX_INDEX_DEPTH: usize = 4;
/// Parsed manifests kept; past it the cache starts over (entries are tiny, images few).
const MAX_CACHED_BLOBS: usize = 8192;

/// Everything that can go wrong asking containerd about an image.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid containerd namespace {namespace:?}")]
    InvalidNamespace { namespace: String },
    /// containerd has no image of that name (nor, for a digest name, of that digest).
    #[error("image {name} is not known to containerd")]
    NotFound { name: String },
    /// The record exists but its content says nothing usable for this host: content missing,
    /// no manifest for the platform, not an image.
    #[error("image {name}: {reason}")]
    Unresolved { name: String, reason: String },
    #[error("containerd at {} is unavailable: {message}", socket.display())]
    Unavailable { socket: PathBuf, message: String },
    #[error("containerd {what} timed out after {}", humantime::format_duration(*after))]
    Timeout { what: &'static str, after: Duration },
    #[error("containerd {what} failed ({code:?}): {message}")]
    Rpc {
        what: &'static str,
        code: Code,
        message: String,
    },
    #[error("content {digest}: {reason}")]
    Content { digest: String, reason: String },
    #[error("the containerd client must be created inside a tokio runtime")]
    NoAsyncRuntime,
}

impl RuntimeError {
    /// The image is not there: a failure policy's "unknown image" case.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. })
    }

    /// containerd could not be asked (down, restarting, too slow): worth a retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            RuntimeError::Unavailable { .. } | RuntimeError::Timeout { .. }
        )
    }
}

/// Knobs of [`Runtime`], with defaults for a plugin's request path.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Deadline of one containerd call (a lookup makes at most a few, usually none).
    pub call_timeout: Duration,
    /// Deadline to connect to the socket.
    pub connect_timeout: Duration,
    /// The platform whose manifest is picked from an index (default: this host's).
    pub platform: Platform,
    /// Backoff between attempts to resubscribe to events: first and largest delay.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Delay after subscribing before a second full listing, which catches changes made before
    /// containerd registered the subscription (it does not confirm it).
    pub settle: Duration,
    /// Size cap for a manifest or index read from the content store.
    pub max_manifest_bytes: u64,
    /// Events kept for a slow watcher before it misses some.
    pub event_buffer: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            call_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(250),
            platform: Platform::host(),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            settle: sync::DEFAULT_SETTLE,
            max_manifest_bytes: MAX_MANIFEST_BYTES,
            event_buffer: 1024,
        }
    }
}

/// What happened to an image record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageEventKind {
    Created,
    Updated,
    Deleted,
}

/// An image record created, updated or deleted in the namespace. Updated means the name now
/// points at another target; updates that only change labels (CRI labels every image it
/// sees) are not passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEvent {
    pub kind: ImageEventKind,
    /// The record name (`docker.io/library/busybox:1.36`, `repo@sha256:...`, `sha256:...`).
    pub name: String,
    /// What the name points at now; None for a deletion.
    pub target: Option<Descriptor>,
    /// The image's config digest for this host's platform, when it could be read.
    pub config: Option<Digest>,
}

/// containerd's view of images in one namespace: a cheap handle (clones share one connection,
/// index and background task; the task stops when the last clone is dropped).
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
    _stop: Arc<DropGuard>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("socket", &self.inner.client.socket())
            .field("namespace", &self.inner.namespace)
            .field("synced", &self.is_synced())
            .finish()
    }
}

pub(crate) struct Inner {
    client: Client,
    namespace: String,
    options: RuntimeOptions,
    state: RwLock<State>,
    live: watch::Sender<bool>,
    /// Parsed manifests and indexes by digest.
    blobs: Mutex<HashMap<Digest, Arc<Parsed>>>,
    /// Serialises relisting while the event stream is down; holds the start of the last one.
    relist: tokio::sync::Mutex<Option<Instant>>,
    events: broadcast::Sender<ImageEvent>,
}

#[derive(Default)]
struct State {
    index: ImageIndex,
    /// The index follows containerd's events (false before the first sync and while
    /// reconnecting).
    live: bool,
}

impl Runtime {
    /// A handle on containerd's gRPC socket for `namespace`, with default options. Connects
    /// lazily: the socket need not exist yet. Must run inside a tokio runtime.
    pub fn connect(socket: &Path, namespace: &str) -> Result<Runtime, RuntimeError> {
        Self::connect_with(socket, namespace, RuntimeOptions::default())
    }

    pub fn connect_with(
        socket: &Path,
        namespace: &str,
        options: RuntimeOptions,
    ) -> Result<Runtime, RuntimeError> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| RuntimeError::NoAsyncRuntime)?;
        let client = Client::new(
            socket,
            namespace,
            options.call_timeout,
            options.connect_timeout,
        )?;
        let (events, _) = broadcast::channel(options.event_buffer.max(1));
        let inner = Arc::new(Inner {
            client,
            namespace: namespace.to_string(),
            options,
            state: RwLock::new(State::default()),
            live: watch::Sender::new(false),
            blobs: Mutex::new(HashMap::new()),
            relist: tokio::sync::Mutex::new(None),
            events,
        });
        let stop = CancellationToken::new();
        handle.spawn(sync::run(inner.clone(), stop.clone()));
        Ok(Runtime {
            inner,
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    pub fn socket(&self) -> &Path {
        self.inner.client.socket()
    }

    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Where compatibility artifacts of the image named `image_name` may hang, and what the
    /// name resolves to. Accepts names as pods and CRI write them (normalised like CRI:
    /// `busybox` is `docker.io/library/busybox:latest`), `repo@sha256:...`, and image ids
    /// (`sha256:<config>`). Errors: [`RuntimeError::NotFound`] when containerd has no such
    /// image, [`RuntimeError::Unresolved`] when it has the record but not a manifest for this
    /// platform, unavailable/timeout when containerd cannot answer.
    pub async fn subjects(&self, image_name: &str) -> Result<ImageSubjects, RuntimeError> {
        let inner = &self.inner;
        let (parsed, first) = {
            let st = inner.read_state();
            let parsed = st.index.parse_name(image_name)?;
            let first = st.live.then(|| st.index.subjects_of(&parsed, image_name));
            (parsed, first)
        };
        match first {
            Some(Ok(s)) => return Ok(s),
            // A name the index lacks: an event not applied yet, or the record came in
            // between. Ask containerd for that one record.
            Some(Err(RuntimeError::NotFound { .. })) => {
                inner.refresh_record(&parsed.key()).await?;
            }
            // The record's content may have arrived since it was indexed: read it again.
            Some(Err(RuntimeError::Unresolved { name, .. })) => {
                inner.refresh_record(&name).await?;
            }
            Some(Err(e)) => return Err(e),
            None => inner.relist().await?,
        }
        inner.read_state().index.subjects_of(&parsed, image_name)
    }

    /// Image events of the namespace, after the index has applied them: records created or
    /// updated (with their target and config digest) and deleted. Also what changed while
    /// disconnected, after a reconnect; not the records present at the first sync. A watcher
    /// that falls more than `event_buffer` events behind misses some (logged). The stream
    /// ends when the last `Runtime` clone is dropped.
    pub fn watch_images(&self) -> impl Stream<Item = ImageEvent> + Send + 'static {
        let rx = self.inner.events.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => return Some((ev, rx)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "image event watcher fell behind; events dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Whether the index currently follows containerd's events.
    pub fn is_synced(&self) -> bool {
        self.inner.read_state().live
    }

    /// Waits until the index follows containerd's events; false on timeout.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.live.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|live| *live))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A copy of the current index (diagnostics, measurements).
    pub fn index(&self) -> ImageIndex {
        self.inner.read_state().index.clone()
    }
}

impl Inner {
    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn set_live(&self, live: bool) {
        self.write_state().live = live;
        self.live.send_replace(live);
    }

    fn emit(&self, ev: ImageEvent) {
        // No watcher is not an error.
        let _ = self.events.send(ev);
    }

    /// Adds or replaces a record; returns the one replaced.
    fn insert(&self, record: ImageRecord, resolution: Resolution) -> Option<ImageRecord> {
        self.write_state().index.insert(record, resolution)
    }

    fn remove(&self, name: &str) {
        self.write_state().index.remove(name);
    }

    /// Replaces the index; returns what changed.
    fn install(&self, index: ImageIndex, live: bool) -> Vec<ImageEvent> {
        let changes = {
            let mut st = self.write_state();
            let changes = sync::diff(&st.index, &index);
            st.index = index;
            st.live = live;
            changes
        };
        self.live.send_replace(live);
        changes
    }

    /// Re-reads one record into the index (or drops it when containerd no longer has it).
    async fn refresh_record(&self, name: &str) -> Result<(), RuntimeError> {
        match self.fetch_record(name).await? {
            Some((record, resolution)) => {
                self.insert(record, resolution);
            }
            None => self.remove(name),
        }
        Ok(())
    }

    /// Lists the namespace into the index while events are not followed. Concurrent callers
    /// share one listing that started after they asked.
    async fn relist(&self) -> Result<(), RuntimeError> {
        let asked = Instant::now();
        let mut last = self.relist.lock().await;
        if last.is_some_and(|started| started >= asked) {
            return Ok(());
        }
        let started = Instant::now();
        let index = self.build_index().await?;
        {
            let mut st = self.write_state();
            // The sync task got there first: its index is the live one.
            if !st.live {
                st.index = index;
            }
        }
        *last = Some(started);
        Ok(())
    }

    /// The whole namespace, listed and resolved.
    async fn build_index(&self) -> Result<ImageIndex, RuntimeError> {
        let images = self.client.list_images().await?;
        let mut index = ImageIndex::new();
        for image in images {
            let Some(record) = record_of(&image) else {
                continue;
            };
            let resolution = self.resolve(&record.target).await?;
            index.insert(record, resolution);
        }
        Ok(index)
    }

    /// One record from containerd, resolved; None when there is no such record.
    async fn fetch_record(
        &self,
        name: &str,
    ) -> Result<Option<(ImageRecord, Resolution)>, RuntimeError> {
        let Some(image) = self.client.get_image(name).await? else {
            return Ok(None);
        };
        let Some(record) = record_of(&image) else {
            return Ok(None);
        };
        let resolution = self.resolve(&record.target).await?;
        Ok(Some((record, resolution)))
    }

    /// Follows the target down to this platform's manifest and its config. Problems with the
    /// image itself give `Unresolved`; only failures to ask containerd are errors.
    async fn resolve(&self, target: &Descriptor) -> Result<Resolution, RuntimeError> {
        let mut desc = target.clone();
        let mut platform = None;
        for _ in 0..MAX_INDEX_DEPTH {
            let parsed = match self.parsed(&desc).await? {
                Ok(p) => p,
                Err(reason) => return Ok(Resolution::Unresolved(reason)),
            };
            match &*parsed {
                Parsed::Manifest { config } => {
                    return Ok(Resolution::Resolved(Resolved {
                        config: config.clone(),
                        manifest: desc,
                        platform,
                    }))
                }
                Parsed::Index(entries) => {
                    let Some(entry) = content::select(entries, &self.options.platform) else {
                        return Ok(Resolution::Unresolved(format!(
                            "index {} has no {} manifest",
                            desc.digest, self.options.platform
                        )));
                    };
                    platform = entry.platform.clone();
                    desc = entry.descriptor.clone();
                }
            }
        }
        Ok(Resolution::Unresolved(format!(
            "indexes nested more than {MAX_INDEX_DEPTH} deep under {}",
            target.digest
        )))
    }

    /// A manifest or index, parsed, from the cache or the content store.
    async fn parsed(&self, desc: &Descriptor) -> Result<Result<Arc<Parsed>, String>, RuntimeError> {
        if let Some(p) = self.blob_cache().get(&desc.digest) {
            return Ok(Ok(p.clone()));
        }
        let bytes = match self
            .client
            .read_blob(desc, self.options.max_manifest_bytes)
            .await
        {
            Ok(Some(b)) => b,
            // Not cached: it may still arrive (a pull in progress).
            Ok(None) => {
                return Ok(Err(format!(
                    "{} is not in containerd's content store",
                    desc.digest
                )))
            }
            Err(RuntimeError::Content { digest, reason }) => {
                return Ok(Err(format!("content {digest}: {reason}")))
            }
            Err(e) => return Err(e),
        };
        let parsed = match content::parse(&desc.media_type, &bytes) {
            Ok(p) => Arc::new(p),
            Err(reason) => return Ok(Err(format!("{}: {reason}", desc.digest))),
        };
        let mut cache = self.blob_cache();
        if cache.len() >= MAX_CACHED_BLOBS {
            cache.clear();
        }
        cache.insert(desc.digest.clone(), parsed.clone());
        Ok(Ok(parsed))
    }

    fn blob_cache(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<Parsed>>> {
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// containerd's record as ours; None (logged) for a record without a usable target.
fn record_of(image: &containerd_client::services::v1::Image) -> Option<ImageRecord> {
    let Some(target) = &image.target else {
        tracing::debug!(image = %image.name, "image record without a target; skipped");
        return None;
    };
    let digest = match Digest::parse(&target.digest) {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(image = %image.name, error = %e, "image record with an invalid digest; skipped");
            return None;
        }
    };
    let Ok(size) = u64::try_from(target.size) else {
        tracing::debug!(image = %image.name, "image record with a negative size; skipped");
        return None;
    };
    Some(ImageRecord {
        name: image.name.clone(),
        target: Descriptor::new(&target.media_type, digest, size),
    })
}
