//! The checker: verdicts from stored answers, one fetch per image at a time, stale answers
//! served while they are refreshed, and a deadline that never waits on the network past it.
//!
//! The same rules for the plugin (async, answers in memory, fetches in tasks of their own that
//! outlive the deadline and fill the store for the next container) and the hook (blocking, one
//! process per container, answers in files shared by all of them, fetches under a file lock):
//! - a fresh answer is evaluated on the node's features (once per features generation);
//! - an answer past `cache.ttl` is still served while one fetch refreshes it (the image's claim
//!   rarely changes; the registry may be down); a failed refresh keeps it another
//!   `cache.errorTtl`;
//! - a failure (registry error, deadline) is kept only `cache.errorTtl`;
//! - an answer looked up by tag (no digest known) is kept `cache.nameTtl`, since the tag may move.
//!
//! The store holds answers, not verdicts: when the node's features change, verdicts are
//! re-evaluated from the stored answers without touching the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};

use super::answer::{fetch, Answer};
use super::cpu;
use super::store::{Entry, FetchLock, Store};
use super::verdict::{Outcome, Verdict};
use crate::config::CacheSettings;
use crate::features::Features;
use crate::registry::{Client, ErrorKind, Platform, Reference, RegistryConfig, RegistryError};
use crate::spec::Reading;

/// Where artifacts may hang for one image, most specific first: `repo@digest` references
/// (the image's own, then other names of the same content), or a tag when no digest is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidates(pub Vec<Reference>);

impl Candidates {
    pub fn one(r: Reference) -> Self {
        Candidates(vec![r])
    }

    /// The store key: the references in order.
    pub fn key(&self) -> String {
        self.0
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether the lookup goes by a tag (no candidate pinned to a digest).
    fn by_tag(&self) -> bool {
        self.0.iter().all(|r| r.digest().is_none())
    }
}

/// How a verdict was obtained, for metrics and the decision log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the store, fresh.
    Cached,
    /// From the store, expired: a refresh was started (plugin) or failed or is another
    /// process's (hook).
    Stale,
    /// Fetched now (the caller waited for the registry).
    Fetched,
    /// The deadline passed first.
    Deadline,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cached => "cached",
            Source::Stale => "stale",
            Source::Fetched => "fetched",
            Source::Deadline => "deadline",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub verdict: Verdict,
    pub source: Source,
    /// How long the registry fetch took, when this call waited for one.
    pub fetch_time: Option<Duration>,
    /// Problems that did not change the verdict (a store that cannot be read or written).
    pub warnings: Vec<String>,
}

/// The node's features as the checker sees them, replaceable while it runs (rediscovery).
pub struct NodeFeatures {
    current: RwLock<(Arc<Features>, u64)>,
}

/// Features generations are unique in the process, so a verdict remembered for one
/// generation is never taken for another set of features.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

impl NodeFeatures {
    pub fn new(features: Features) -> Arc<NodeFeatures> {
        Arc::new(NodeFeatures {
            current: RwLock::new((
                Arc::new(features),
                GENERATIONS.fetch_add(1, Ordering::Relaxed),
            )),
        })
    }

    /// The features and their generation.
    pub fn get(&self) -> (Arc<Features>, u64) {
        let c = self.current.read().unwrap_or_else(|p| p.into_inner());
        (c.0.clone(), c.1)
    }

    /// Replaces the features; a new generation only when they differ. Returns whether they did.
    pub fn set(&self, features: Features) -> bool {
        let mut c = self.current.write().unwrap_or_else(|p| p.into_inner());
        if *c.0 == features {
            return false;
        }
        *c = (
            Arc::new(features),
            GENERATIONS.fetch_add(1, Ordering::Relaxed),
        );
        true
    }
}

/// The registry settings cannot make a client (a CA file that does not parse, ...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    pub message: String,
    pub kind: ErrorKind,
}

impl From<RegistryError> for ClientError {
    fn from(e: RegistryError) -> Self {
        ClientError {
            message: e.to_string(),
            kind: e.kind(),
        }
    }
}

type SharedFetch = Shared<BoxFuture<'static, (Arc<Answer>, Duration)>>;

pub struct Checker {
    registry: RegistryConfig,
    reading: Reading,
    client: OnceLock<Result<Client, ClientError>>,
    platform: Platform,
    tags: Vec<String>,
    settings: CacheSettings,
    features: Arc<NodeFeatures>,
    store: Arc<dyn Store>,
    inflight: Mutex<HashMap<String, SharedFetch>>,
}

impl Checker {
    /// The registry client is built on first use ([`Checker::client`] builds it at once, to
    /// report a bad registry setting early).
    pub fn new(
        registry: RegistryConfig,
        platform: Platform,
        tags: Vec<String>,
        settings: CacheSettings,
        features: Arc<NodeFeatures>,
        store: Arc<dyn Store>,
    ) -> Checker {
        Checker {
            registry,
            reading: Reading::Nfd,
            client: OnceLock::new(),
            platform,
            tags,
            settings,
            features,
            store,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// How fetched specs are read (default: as NFD reads them).
    pub fn with_reading(mut self, reading: Reading) -> Checker {
        self.reading = reading;
        self
    }

    pub fn client(&self) -> Result<&Client, ClientError> {
        self.client
            .get_or_init(|| Client::new(self.registry.clone()).map_err(ClientError::from))
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn features(&self) -> &Arc<NodeFeatures> {
        &self.features
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Answers kept, for metrics.
    pub fn cached_images(&self) -> usize {
        self.store.count()
    }

    /// The verdict for an image within `deadline` (the plugin).
    pub async fn verdict(self: &Arc<Self>, image: &Candidates, deadline: Duration) -> Lookup {
        self.verdict_since(image, deadline, Instant::now()).await
    }

    /// [`Checker::verdict`] with the deadline counted from `started` (a caller that already
    /// spent part of it, resolving the image).
    pub async fn verdict_since(
        self: &Arc<Self>,
        image: &Candidates,
        deadline: Duration,
        started: Instant,
    ) -> Lookup {
        let key = image.key();
        let mut warnings = Vec::new();
        let late = |warnings| Lookup {
            verdict: Verdict::new(Outcome::DeadlineExceeded { waited: deadline }),
            source: Source::Deadline,
            fetch_time: None,
            warnings,
        };
        if let Some(entry) = self.get(&key, &mut warnings) {
            let fresh = entry.is_fresh();
            if !fresh {
                // Keep answering from the expired entry while the registry is asked again.
                drop(self.fetch(&key, image));
            }
            let left = deadline.saturating_sub(started.elapsed());
            let Some(verdict) = self.evaluate_within(entry.answer, left).await else {
                return late(warnings);
            };
            let source = if fresh { Source::Cached } else { Source::Stale };
            return Lookup {
                verdict,
                source,
                fetch_time: None,
                warnings,
            };
        }
        let left = deadline.saturating_sub(started.elapsed());
        let Ok((answer, took)) = tokio::time::timeout(left, self.fetch(&key, image)).await else {
            return late(warnings);
        };
        let left = deadline.saturating_sub(started.elapsed());
        match self.evaluate_within(answer, left).await {
            Some(verdict) => Lookup {
                verdict,
                source: Source::Fetched,
                fetch_time: Some(took),
                warnings,
            },
            None => late(warnings),
        }
    }

    /// The verdict of an answer on the node's features: remembered per features generation
    /// (microseconds), else evaluated on the blocking pool within `left`. None: the deadline
    /// passed first (the evaluation goes on and is remembered).
    async fn evaluate_within(
        self: &Arc<Self>,
        answer: Arc<Answer>,
        left: Duration,
    ) -> Option<Verdict> {
        let (_, generation) = self.features.get();
        if let Some(v) = answer.memo(generation) {
            return Some(v);
        }
        let this = Arc::clone(self);
        tokio::time::timeout(left, cpu::run(move || this.evaluate(&answer)))
            .await
            .ok()
    }

    /// The registry's answer about an image, not yet evaluated (`audit`: one answer, many
    /// nodes): the stored one when fresh, else fetched (one fetch per image at a time) within
    /// `deadline`. None: the deadline passed first.
    pub async fn answer(
        self: &Arc<Self>,
        image: &Candidates,
        deadline: Duration,
    ) -> Option<(Arc<Answer>, Source, Vec<String>)> {
        let key = image.key();
        let mut warnings = Vec::new();
        if let Some(e) = self.get(&key, &mut warnings).filter(Entry::is_fresh) {
            return Some((e.answer, Source::Cached, warnings));
        }
        let (answer, _) = tokio::time::timeout(deadline, self.fetch(&key, image))
            .await
            .ok()?;
        Some((answer, Source::Fetched, warnings))
    }

    /// Starts fetching an image's artifact in the background if no fresh answer is stored
    /// (images seen in Synchronize, images containerd just pulled), so containers find it.
    pub fn prefetch(self: &Arc<Self>, image: &Candidates) {
        let key = image.key();
        let fresh = self
            .store
            .get(&key)
            .ok()
            .flatten()
            .is_some_and(|e| e.is_fresh() || e.answer.is_transient());
        if !fresh {
            drop(self.fetch(&key, image));
        }
    }

    /// The verdict for an image within `deadline`, without an executor (the hook: one process
    /// per container). Other processes checking the same image wait for this one's fetch (up
    /// to the deadline) and then read its answer; a stale answer is refreshed by one process
    /// while the others serve it. There is no fetch after the deadline (the process ends): a
    /// deadline miss is stored as a failure.
    pub fn verdict_blocking(&self, image: &Candidates, deadline: Duration) -> Lookup {
        let started = Instant::now();
        let key = image.key();
        let mut warnings = Vec::new();
        let stale = match self.get(&key, &mut warnings) {
            Some(e) if e.is_fresh() => return self.lookup(&e.answer, true, None, warnings),
            other => other,
        };
        // Held until this process has stored the registry's answer (end of this function).
        let Some(_lock) = self.lock(&key, &stale, deadline) else {
            if let Some(e) = stale {
                // Another process is refreshing it.
                return self.lookup(&e.answer, false, None, warnings);
            }
            return Lookup {
                verdict: Verdict::new(Outcome::DeadlineExceeded { waited: deadline }),
                source: Source::Deadline,
                fetch_time: None,
                warnings,
            };
        };
        // Another process may have answered while this one waited for the lock.
        if let Some(e) = self.get(&key, &mut warnings).filter(Entry::is_fresh) {
            return self.lookup(&e.answer, true, None, warnings);
        }
        let remaining = deadline.saturating_sub(started.elapsed());
        let (answer, source) = match self.fetch_blocking(image, remaining) {
            Some(answer) => (Arc::new(answer), Source::Fetched),
            None => (
                Arc::new(Answer::settled(Verdict::new(Outcome::DeadlineExceeded {
                    waited: deadline,
                }))),
                Source::Deadline,
            ),
        };
        if let Some(kept) = self.put(&key, image, answer.clone(), &mut warnings) {
            // The refresh failed: the stale answer stands.
            return self.lookup(&kept.answer, false, None, warnings);
        }
        Lookup {
            verdict: self.evaluate(&answer),
            source,
            fetch_time: (source == Source::Fetched).then(|| started.elapsed()),
            warnings,
        }
    }

    fn lookup(
        &self,
        answer: &Answer,
        fresh: bool,
        fetch_time: Option<Duration>,
        warnings: Vec<String>,
    ) -> Lookup {
        Lookup {
            verdict: self.evaluate(answer),
            source: if fresh { Source::Cached } else { Source::Stale },
            fetch_time,
            warnings,
        }
    }

    /// A stored entry worth using: any good answer, or a failure still fresh.
    fn get(&self, key: &str, warnings: &mut Vec<String>) -> Option<Entry> {
        match self.store.get(key) {
            Ok(Some(e)) if e.is_fresh() || !e.answer.is_transient() => Some(e),
            Ok(_) => None,
            Err(e) => {
                warnings.push(format!("{e}; ignored"));
                None
            }
        }
    }

    /// The fetch lock: waited for up to the deadline on a miss, not at all for a stale entry
    /// (someone else refreshing it is as good).
    fn lock(&self, key: &str, stale: &Option<Entry>, deadline: Duration) -> Option<FetchLock> {
        let wait = if stale.is_some() {
            Duration::ZERO
        } else {
            deadline
        };
        self.store.lock(key, wait)
    }

    /// The verdict of an answer on the node's current features, remembered per generation.
    fn evaluate(&self, answer: &Answer) -> Verdict {
        let (features, generation) = self.features.get();
        answer.verdict_memo(generation, || answer.verdict(&features, &self.tags))
    }

    /// Stores a fetched answer. A failed refresh does not replace a good answer that is merely
    /// old: that one is kept another `errorTtl` and returned.
    fn put(
        &self,
        key: &str,
        image: &Candidates,
        answer: Arc<Answer>,
        warnings: &mut Vec<String>,
    ) -> Option<Entry> {
        let old = match self.store.get(key) {
            Ok(old) => old,
            Err(e) => {
                warnings.push(format!("{e}; ignored"));
                None
            }
        };
        let (entry, kept) = match old {
            Some(old) if answer.is_transient() && !old.answer.is_transient() => {
                let kept = Entry::new(old.answer.clone(), self.settings.error_ttl);
                (kept.clone(), Some(old))
            }
            _ => {
                let ttl = if answer.is_transient() {
                    self.settings.error_ttl
                } else if image.by_tag() {
                    self.settings.name_ttl
                } else {
                    self.settings.ttl
                };
                (Entry::new(answer, ttl), None)
            }
        };
        if let Err(e) = self.store.put(key, entry) {
            warnings.push(format!("{e}; the answer is not saved"));
        }
        kept
    }

    /// The one fetch in flight for this image, started if there is none (plugin).
    fn fetch(self: &Arc<Self>, key: &str, image: &Candidates) -> SharedFetch {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inflight.get(key) {
            return f.clone();
        }
        let this = Arc::clone(self);
        let (key_owned, image) = (key.to_string(), image.clone());
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let answer = Arc::new(this.fetch_answer(&image).await);
            let took = started.elapsed();
            let mut warnings = Vec::new();
            this.put(&key_owned, &image, answer.clone(), &mut warnings);
            for w in warnings {
                tracing::warn!("{}", crate::untrusted::escape(&w));
            }
            this.inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key_owned);
            (answer, took)
        });
        let shared = async move {
            task.await.unwrap_or_else(|e| {
                let failed = Answer::settled(Verdict::new(Outcome::RegistryError {
                    error: format!("artifact fetch task failed: {e}"),
                    kind: None,
                }));
                (Arc::new(failed), Duration::ZERO)
            })
        }
        .boxed()
        .shared();
        inflight.insert(key.to_string(), shared.clone());
        shared
    }

    /// One fetch on a runtime of its own, cut at `deadline` (hook). None: the deadline passed.
    fn fetch_blocking(&self, image: &Candidates, deadline: Duration) -> Option<Answer> {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                return Some(Answer::settled(Verdict::new(Outcome::RegistryError {
                    error: format!("cannot start the async runtime: {e}"),
                    kind: None,
                })))
            }
        };
        let answer = runtime
            .block_on(async { tokio::time::timeout(deadline, self.fetch_answer(image)).await })
            .ok();
        // A read cut short by the deadline may still run on the blocking pool: do not wait.
        runtime.shutdown_background();
        answer
    }

    async fn fetch_answer(&self, image: &Candidates) -> Answer {
        match self.client() {
            Ok(client) => fetch(client, &self.platform, image, self.reading).await,
            Err(e) => Answer::settled(Verdict::new(Outcome::RegistryError {
                error: e.message,
                kind: Some(e.kind),
            })),
        }
    }
}
