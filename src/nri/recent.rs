//! The creation decisions ValidateContainerAdjustment reuses: per container ID, bounded and
//! short-lived, so that validation answers at once instead of deciding (and waiting) again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::handler::Rejection;

/// What CreateContainer decided, until the same container's validation takes it.
pub struct Recent {
    inner: Mutex<Inner>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (Instant, Option<Rejection>)>,
    /// Every put in time order, oldest first, with its time: what leaves first without a scan
    /// of `entries` on each creation. Entries taken since stay here until they reach the front
    /// (or a compaction), and are skipped then.
    order: VecDeque<(Instant, String)>,
}

impl Inner {
    /// Whether the put at `at` of `id` is still the entry held.
    fn holds(&self, at: Instant, id: &str) -> bool {
        self.entries.get(id).is_some_and(|(t, _)| *t == at)
    }
}

impl Recent {
    /// Containers whose validation never comes (another plugin refused them first) leave after
    /// `ttl`, or when `capacity` is reached, oldest first.
    pub fn new(capacity: usize, ttl: Duration) -> Recent {
        Recent {
            inner: Mutex::new(Inner::default()),
            capacity,
            ttl,
        }
    }

    /// Remembers the creation decision of container `id` (its rejection, or None: allowed).
    /// Amortised constant time: it runs on every CreateContainer.
    pub fn put(&self, id: &str, outcome: Option<Rejection>) {
        if id.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Expired or already taken at the front; then the oldest while full.
        while let Some((at, front)) = g.order.front() {
            let (at, held) = (*at, g.holds(*at, front));
            let expired = now.duration_since(at) >= self.ttl;
            if held && !expired && g.entries.len() < self.capacity {
                break;
            }
            let (_, front) = g.order.pop_front().expect("a front");
            if held {
                g.entries.remove(&front);
            }
        }
        // Taken entries behind the front: dropped once they are as many as the capacity.
        if g.order.len() >= 2 * self.capacity.max(1) {
            let Inner { entries, order } = &mut *g;
            order.retain(|(at, id)| entries.get(id).is_some_and(|(t, _)| t == at));
        }
        g.entries.insert(id.to_string(), (now, outcome));
        g.order.push_back((now, id.to_string()));
    }

    /// The creation decision of container `id`, once (None: none is remembered, or it is too
    /// old).
    pub fn take(&self, id: &str) -> Option<Option<Rejection>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (at, outcome) = g.entries.remove(id)?;
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
    fn taken_entries_do_not_count_against_the_capacity() {
        let r = Recent::new(2, Duration::from_secs(60));
        r.put("a", None);
        r.put("b", None);
        assert_eq!(r.take("b"), Some(None));
        r.put("c", None);
        assert_eq!(r.take("a"), Some(None), "a still held: only a and c were");
        assert_eq!(r.take("c"), Some(None));
        // Many creations, each validated at once: what is kept stays bounded.
        for i in 0..1000 {
            let id = format!("x{i}");
            r.put(&id, None);
            assert_eq!(r.take(&id), Some(None));
        }
        let g = r.inner.lock().unwrap();
        assert!(
            g.order.len() <= 4 && g.entries.is_empty(),
            "{}",
            g.order.len()
        );
    }

    #[test]
    fn the_same_container_put_twice_keeps_the_newer_decision() {
        let r = Recent::new(2, Duration::from_secs(60));
        r.put("a", None);
        r.put("a", Some(Rejection::new("no")));
        r.put("b", None);
        assert_eq!(r.take("a"), Some(Some(Rejection::new("no"))));
        assert_eq!(r.take("b"), Some(None));
    }

    #[test]
    fn containers_without_an_id_are_not_remembered() {
        let r = Recent::new(8, Duration::from_secs(60));
        r.put("", None);
        assert_eq!(r.take(""), None);
    }
}
