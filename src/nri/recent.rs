//! The creation decisions ValidateContainerAdjustment reuses: per container ID, bounded and
//! short-lived, so that validation answers at once instead of deciding (and waiting) again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::handler::Rejection;

/// What CreateContainer decided, until the same container's validation takes it.
pub struct Recent {
    entries: Mutex<HashMap<String, (Instant, Option<Rejection>)>>,
    capacity: usize,
    ttl: Duration,
}

impl Recent {
    /// Containers whose validation never comes (another plugin refused them first) leave after
    /// `ttl`, or when `capacity` is reached, oldest first.
    pub fn new(capacity: usize, ttl: Duration) -> Recent {
        Recent {
            entries: Mutex::new(HashMap::new()),
            capacity,
            ttl,
        }
    }

    /// Remembers the creation decision of container `id` (its rejection, or None: allowed).
    pub fn put(&self, id: &str, outcome: Option<Rejection>) {
        if id.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
        while entries.len() >= self.capacity {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(id.to_string(), (now, outcome));
    }

    /// The creation decision of container `id`, once (None: none is remembered, or it is too
    /// old).
    pub fn take(&self, id: &str) -> Option<Option<Rejection>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, outcome) = entries.remove(id)?;
        (at.elapsed() < self.ttl).then_some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_taken_once() {
        let r = Recent::new(8, Duration::from_secs(60));
        r.put("a", None);
        r.put("b", Some(Rejection::new("no")));
        assert_eq!(r.take("a"), Some(None));
        assert_eq!(r.take("a"), None);
        assert_eq!(r.take("b"), Some(Some(Rejection::new("no"))));
        assert_eq!(r.take("c"), None);
    }

    #[test]
    fn the_oldest_leaves_at_capacity_and_old_ones_expire() {
        let r = Recent::new(2, Duration::from_secs(60));
        r.put("a", None);
        r.put("b", None);
        r.put("c", None);
        assert_eq!(r.take("a"), None);
        assert_eq!(r.take("c"), Some(None));
        let r = Recent::new(8, Duration::ZERO);
        r.put("a", None);
        assert_eq!(r.take("a"), None);
    }

    #[test]
    fn containers_without_an_id_are_not_remembered() {
        let r = Recent::new(8, Duration::from_secs(60));
        r.put("", None);
        assert_eq!(r.take(""), None);
    }
}
