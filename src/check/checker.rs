//! The plugin's checker: verdicts cached by image, one shared fetch per image, and a decision
//! deadline that never waits on the network past it.
//!
//! A cache miss starts a fetch in a task of its own: callers wait for it at most until their
//! deadline, then get `DeadlineExceeded` while the fetch goes on and fills the cache for the
//! next container. Concurrent callers for one image share that one fetch. A fetched spec is
//! kept for `ttl` and, once expired, still answers while a background refresh runs (the image's
//! claim rarely changes; the registry may be down); failures are kept only `error_ttl`. The
//! cache holds fetched specs, not verdicts: when the node's features change, verdicts are
//! re-evaluated from the cached specs without touching the network.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};

use super::{decide, inspect, Inspection, Outcome, Verdict};
use crate::features::Features;
use crate::registry::{Client, Platform, Reference};

/// Where artifacts may hang for one image, most specific first: `repo@digest` references
/// (the image's own, then other names of the same content).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidates(pub Vec<Reference>);

impl Candidates {
    pub fn one(r: Reference) -> Self {
        Candidates(vec![r])
    }

    fn key(&self) -> String {
        self.0
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub max_entries: usize,
    pub ttl: Duration,
    pub error_ttl: Duration,
}

/// How a verdict was obtained, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the cache, fresh.
    Cached,
    /// From the cache, expired; a refresh was started.
    Stale,
    /// Fetched now (the caller waited for the registry).
    Fetched,
    /// The deadline passed first.
    Deadline,
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub verdict: Verdict,
    pub source: Source,
    /// How long the registry fetch took, when this call waited for one.
    pub fetch_time: Option<Duration>,
}

/// The result of fetching one image's artifact: what `inspect` found, or the verdict its
/// failure leads to.
#[derive(Debug)]
struct Fetched {
    result: Result<Inspection, Verdict>,
    took: Duration,
}

impl Fetched {
    fn failed(&self) -> bool {
        match &self.result {
            Ok(_) => false,
            Err(v) => !matches!(v.outcome, Outcome::InvalidSpec { .. }),
        }
    }
}

struct Entry {
    fetched: Arc<Fetched>,
    /// A good answer past this is served stale while it is refreshed; a failure past this
    /// is forgotten.
    expires: Instant,
    /// The verdict for a features generation, computed on first use.
    verdict: Option<(u64, Verdict)>,
}

struct NodeFeatures {
    features: Arc<Features>,
    generation: u64,
}

type SharedFetch = Shared<BoxFuture<'static, Arc<Fetched>>>;

pub struct Checker {
    client: Client,
    platform: Platform,
    tags: Vec<String>,
    settings: CacheSettings,
    features: RwLock<NodeFeatures>,
    cache: Mutex<HashMap<String, Entry>>,
    inflight: Mutex<HashMap<String, SharedFetch>>,
}

impl Checker {
    pub fn new(
        client: Client,
        platform: Platform,
        tags: Vec<String>,
        features: Features,
        settings: CacheSettings,
    ) -> Arc<Checker> {
        Arc::new(Checker {
            client,
            platform,
            tags,
            settings,
            features: RwLock::new(NodeFeatures {
                features: Arc::new(features),
                generation: 0,
            }),
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the node's features (after a rediscovery). Cached specs are re-evaluated on
    /// their next use.
    pub fn set_features(&self, features: Features) {
        let mut f = write(&self.features);
        if *f.features != features {
            f.features = Arc::new(features);
            f.generation += 1;
        }
    }

    pub fn features(&self) -> Arc<Features> {
        read(&self.features).features.clone()
    }

    /// The verdict for an image, within `deadline`.
    pub async fn verdict(self: &Arc<Self>, image: &Candidates, deadline: Duration) -> Lookup {
        let key = image.key();
        if let Some((verdict, expired)) = self.cached(&key) {
            if expired {
                // Keep answering from the expired entry while the registry is asked again.
                drop(self.fetch(&key, image));
            }
            let source = if expired {
                Source::Stale
            } else {
                Source::Cached
            };
            return Lookup {
                verdict,
                source,
                fetch_time: None,
            };
        }
        let fetch = self.fetch(&key, image);
        match tokio::time::timeout(deadline, fetch).await {
            Ok(fetched) => Lookup {
                verdict: self.verdict_of(&key, &fetched),
                source: Source::Fetched,
                fetch_time: Some(fetched.took),
            },
            Err(_) => Lookup {
                verdict: Verdict::new(Outcome::DeadlineExceeded { waited: deadline }),
                source: Source::Deadline,
                fetch_time: None,
            },
        }
    }

    /// Starts fetching an image's artifact in the background if it is not cached (images
    /// seen in Synchronize, images containerd just pulled), so containers find it ready.
    pub fn prefetch(self: &Arc<Self>, image: &Candidates) {
        let key = image.key();
        if self.cached(&key).is_none_or(|(_, expired)| expired) {
            drop(self.fetch(&key, image));
        }
    }

    /// Number of cached images, for metrics.
    pub fn cached_images(&self) -> usize {
        lock(&self.cache).len()
    }

    /// The cached verdict (re-evaluated if the features changed) and whether it expired.
    /// None: not cached, or a failure past its error ttl.
    fn cached(&self, key: &str) -> Option<(Verdict, bool)> {
        let (features, generation) = {
            let f = read(&self.features);
            (f.features.clone(), f.generation)
        };
        let mut cache = lock(&self.cache);
        let entry = cache.get_mut(key)?;
        let expired = Instant::now() >= entry.expires;
        if expired && entry.fetched.failed() {
            return None;
        }
        let verdict = match &entry.verdict {
            Some((g, v)) if *g == generation => v.clone(),
            _ => {
                let v = evaluate(&entry.fetched, &features, &self.tags);
                entry.verdict = Some((generation, v.clone()));
                v
            }
        };
        Some((verdict, expired))
    }

    fn verdict_of(&self, key: &str, fetched: &Arc<Fetched>) -> Verdict {
        self.cached(key)
            .map(|(v, _)| v)
            .unwrap_or_else(|| evaluate(fetched, &self.features(), &self.tags))
    }

    /// The one fetch in flight for this image, started if there is none.
    fn fetch(self: &Arc<Self>, key: &str, image: &Candidates) -> SharedFetch {
        let mut inflight = lock(&self.inflight);
        if let Some(f) = inflight.get(key) {
            return f.clone();
        }
        let this = Arc::clone(self);
        let (key_owned, image) = (key.to_string(), image.clone());
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let result = this.inspect_first(&image).await;
            let fetched = Arc::new(Fetched {
                result,
                took: started.elapsed(),
            });
            this.store(&key_owned, fetched.clone());
            fetched
        });
        let shared = async move {
            task.await.unwrap_or_else(|e| {
                Arc::new(Fetched {
                    result: Err(Verdict::new(Outcome::RegistryError {
                        error: format!("artifact fetch task failed: {e}"),
                        kind: None,
                    })),
                    took: Duration::ZERO,
                })
            })
        }
        .boxed()
        .shared();
        inflight.insert(key.to_string(), shared.clone());
        shared
    }

    /// The first candidate that has an artifact wins; when none has, the first answer (no
    /// artifact, or the first candidate's error) stands.
    async fn inspect_first(&self, image: &Candidates) -> Result<Inspection, Verdict> {
        let mut first = None;
        for r in &image.0 {
            let result = inspect(&self.client, r, &self.platform).await;
            match &result {
                Ok(i) if i.artifact.is_some() => return result,
                Err(v) if matches!(v.outcome, Outcome::InvalidSpec { .. }) => return result,
                _ => {}
            }
            first.get_or_insert(result);
        }
        first.unwrap_or_else(|| {
            Err(Verdict::new(Outcome::UnknownImage {
                error: "no image reference to look up".into(),
            }))
        })
    }

    fn store(&self, key: &str, fetched: Arc<Fetched>) {
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        match cache.get_mut(key) {
            // A failed refresh must not replace a good answer that is merely old: keep it,
            // and ask the registry again after error_ttl.
            Some(old) if fetched.failed() && !old.fetched.failed() => {
                old.expires = now + self.settings.error_ttl;
            }
            _ => {
                if cache.len() >= self.settings.max_entries && !cache.contains_key(key) {
                    let oldest = cache
                        .iter()
                        .min_by_key(|(_, e)| e.expires)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        cache.remove(&k);
                    }
                }
                let ttl = if fetched.failed() {
                    self.settings.error_ttl
                } else {
                    self.settings.ttl
                };
                let entry = Entry {
                    fetched,
                    expires: now + ttl,
                    verdict: None,
                };
                cache.insert(key.to_string(), entry);
            }
        }
        drop(cache);
        lock(&self.inflight).remove(key);
    }
}

fn evaluate(fetched: &Fetched, features: &Features, tags: &[String]) -> Verdict {
    match &fetched.result {
        Ok(inspection) => decide(inspection, features, tags),
        Err(v) => v.clone(),
    }
}

// The locks guard plain data that no panic can leave half-written, so a poisoned lock's data
// is still good: recover it rather than fail every later container.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
