//! The endpoint's open connections, bounded: past the bound a new connection closes the oldest.
//!
//! Refusing new connections when full (what a semaphore does) lets any local process that opens
//! the bound's worth and holds them shut out the kubelet's probe. Closing the oldest instead
//! means holding connections needs a steady stream of new ones, and a probe arriving between
//! them is served: its exchange takes microseconds, a flood's turnover of the whole table far
//! longer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The open connections, oldest first.
#[derive(Debug, Clone)]
pub(super) struct Slots {
    inner: Arc<Mutex<Inner>>,
    max: usize,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    open: VecDeque<(u64, CancellationToken)>,
}

/// One connection's place: its token is cancelled when a newer connection needs the place;
/// dropping it frees the place.
#[derive(Debug)]
pub(super) struct Slot {
    id: u64,
    pub(super) closed: CancellationToken,
    slots: Slots,
}

impl Slots {
    pub(super) fn new(max: usize) -> Slots {
        Slots {
            inner: Arc::new(Mutex::new(Inner::default())),
            max: max.max(1),
        }
    }

    /// A place for a new connection, closing the oldest ones past the bound; returns how many
    /// were closed.
    pub(super) fn take(&self) -> (Slot, usize) {
        let mut inner = self.inner.lock().expect("slots lock poisoned");
        let mut shed = 0;
        while inner.open.len() >= self.max {
            let Some((_, oldest)) = inner.open.pop_front() else {
                break;
            };
            oldest.cancel();
            shed += 1;
        }
        let id = inner.next;
        inner.next += 1;
        let closed = CancellationToken::new();
        inner.open.push_back((id, closed.clone()));
        let slot = Slot {
            id,
            closed,
            slots: self.clone(),
        };
        (slot, shed)
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.inner.lock().expect("slots lock poisoned").open.len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.inner.lock().expect("slots lock poisoned");
        if let Some(i) = inner.open.iter().position(|(id, _)| *id == self.id) {
            inner.open.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_make_room_and_dropped_ones_free_theirs() {
        let slots = Slots::new(2);
        let (a, shed) = slots.take();
        assert_eq!(shed, 0);
        let (b, _) = slots.take();
        let (c, shed) = slots.take();
        assert_eq!(shed, 1);
        assert!(a.closed.is_cancelled());
        assert!(!b.closed.is_cancelled() && !c.closed.is_cancelled());
        drop(a);
        assert_eq!(slots.open(), 2);
        drop(b);
        assert_eq!(slots.open(), 1);
        let (_d, shed) = slots.take();
        assert_eq!(shed, 0);
        assert!(!c.closed.is_cancelled());
    }
}
