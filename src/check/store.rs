//! Where answers are kept between checks: memory for the plugin, files for the hook's processes
//! ([`crate::hook::cache::DiskStore`]). The [`super::Checker`] decides what is fresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::answer::Answer;

/// One stored answer and when it stops being fresh.
#[derive(Debug, Clone)]
pub struct Entry {
    pub answer: Arc<Answer>,
    /// When the answer was last confirmed (fetched, or a failed refresh kept it).
    pub at: SystemTime,
    /// Fresh for this long after `at`; then a good answer is served stale while it is
    /// refreshed, and a failure is forgotten.
    pub ttl: Duration,
}

impl Entry {
    pub fn new(answer: Arc<Answer>, ttl: Duration) -> Entry {
        Entry {
            answer,
            at: SystemTime::now(),
            ttl,
        }
    }

    /// Whether the answer is still fresh. One from the future (the clock was set back) is not.
    pub fn is_fresh(&self) -> bool {
        SystemTime::now()
            .duration_since(self.at)
            .is_ok_and(|age| age < self.ttl)
    }

    /// When it expires, for trimming (oldest first).
    pub fn expires(&self) -> SystemTime {
        self.at + self.ttl
    }
}

/// A store could not be read or written (the hook's files); the check goes on without it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Held while one process fetches a key (see [`Store::lock`]); released on drop.
pub type FetchLock = Box<dyn std::any::Any + Send>;

pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;
    fn put(&self, key: &str, entry: Entry) -> Result<(), StoreError>;
    /// Answers kept, for metrics.
    fn count(&self) -> usize;
    /// Keeps other processes from fetching `key` at the same time, waiting at most `wait` for
    /// one that does. None when the lock is held elsewhere past `wait` (or cannot be had).
    /// A store private to one process needs none: the checker shares its in-flight fetches.
    fn lock(&self, _key: &str, _wait: Duration) -> Option<FetchLock> {
        Some(Box::new(()))
    }
    /// Whether answers outlive the process (for the decision log).
    fn persistent(&self) -> bool {
        false
    }
}

/// The plugin's store: at most `max_entries` answers, the one expiring first evicted.
pub struct MemoryStore {
    max_entries: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryStore {
    pub fn new(max_entries: usize) -> MemoryStore {
        MemoryStore {
            max_entries: max_entries.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Plain data no panic leaves half-written: a poisoned lock's data is still good.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.entries().get(key).cloned())
    }

    fn put(&self, key: &str, entry: Entry) -> Result<(), StoreError> {
        let mut entries = self.entries();
        if entries.len() >= self.max_entries && !entries.contains_key(key) {
            let first = entries
                .iter()
                .min_by_key(|(_, e)| e.expires())
                .map(|(k, _)| k.clone());
            if let Some(k) = first {
                entries.remove(&k);
            }
        }
        entries.insert(key.to_string(), entry);
        Ok(())
    }

    fn count(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Outcome, Verdict};

    fn answer() -> Arc<Answer> {
        Arc::new(Answer::settled(Verdict::new(Outcome::NoArtifact)))
    }

    #[test]
    fn memory_store_evicts_the_first_to_expire() {
        let s = MemoryStore::new(2);
        s.put("a", Entry::new(answer(), Duration::from_secs(10)))
            .unwrap();
        s.put("b", Entry::new(answer(), Duration::from_secs(1)))
            .unwrap();
        s.put("c", Entry::new(answer(), Duration::from_secs(10)))
            .unwrap();
        assert_eq!(s.count(), 2);
        assert!(s.get("b").unwrap().is_none());
        assert!(s.get("a").unwrap().is_some() && s.get("c").unwrap().is_some());
    }

    #[test]
    fn freshness() {
        let mut e = Entry::new(answer(), Duration::from_secs(10));
        assert!(e.is_fresh());
        e.ttl = Duration::ZERO;
        assert!(!e.is_fresh());
        let future = Entry {
            at: SystemTime::now() + Duration::from_secs(3600),
            ..Entry::new(answer(), Duration::from_secs(10))
        };
        assert!(!future.is_fresh());
    }
}
