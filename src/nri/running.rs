//! The containers running on the node as NRI reports them (Synchronize, creations allowed,
//! stops and removals), and their re-check: which have become incompatible since they started.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::check::Compat;
use crate::policy::Subject;

/// Containers past their creation check, by id: what the gate needs to decide about each
/// again, and the last verdict a re-check gave.
#[derive(Default)]
pub struct Running {
    containers: Mutex<HashMap<String, Tracked>>,
}

#[derive(Clone)]
pub struct Tracked {
    pub id: String,
    pub subject: Subject,
    /// The verdict of the last re-check (None: not re-checked yet).
    pub last: Option<Compat>,
}

/// What one re-check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recheck {
    pub checked: usize,
    /// Incompatible containers per image name.
    pub incompatible: BTreeMap<String, usize>,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A container the runtime is creating or runs.
    pub fn add(&self, id: &str, subject: Subject) {
        if id.is_empty() {
            return;
        }
        let t = Tracked {
            id: id.to_string(),
            subject,
            last: None,
        };
        self.lock().insert(id.to_string(), t);
    }

    /// What Synchronize reports (every container that runs or is about to, at each
    /// connection) replaces what was kept, so that stops missed while disconnected do not
    /// linger; a container kept before keeps its last verdict. (A container created in the
    /// moment between the runtime's snapshot and this call is dropped until its next
    /// creation; the window is the connection's first milliseconds.)
    pub fn sync(&self, running: impl IntoIterator<Item = (String, Subject)>) {
        let mut kept = self.lock();
        let previous = std::mem::take(&mut *kept);
        for (id, subject) in running {
            if id.is_empty() {
                continue;
            }
            let last = previous.get(&id).and_then(|t| t.last);
            kept.insert(id.clone(), Tracked { id, subject, last });
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn snapshot(&self) -> Vec<Tracked> {
        self.lock().values().cloned().collect()
    }

    /// Records a re-check's verdict; returns the previous one (None when the container is gone
    /// or was not re-checked before).
    pub fn record(&self, id: &str, verdict: Compat) -> Option<Compat> {
        self.lock()
            .get_mut(id)
            .and_then(|t| t.last.replace(verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(pod: &str) -> Subject {
        Subject {
            namespace: "ns".into(),
            pod: pod.into(),
            container: "c".into(),
            image: Err("none".into()),
        }
    }

    #[test]
    fn synchronize_replaces_and_events_remove() {
        let r = Running::default();
        r.add("gone", subject("ns/web"));
        r.add("a", subject("ns/web"));
        r.add("", subject("ns/web"));
        assert_eq!(r.len(), 2);
        assert_eq!(r.record("a", Compat::Incompatible), None);
        // A reconnection: the runtime reports what it has; "gone" stopped meanwhile.
        r.sync([
            ("a".to_string(), subject("ns/web")),
            ("b".to_string(), subject("ns/db")),
        ]);
        let mut ids: Vec<String> = r.snapshot().into_iter().map(|t| t.id).collect();
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
        // The verdict seen before the reconnection is kept: no second "became incompatible".
        assert_eq!(
            r.record("a", Compat::Incompatible),
            Some(Compat::Incompatible)
        );
        let b = r.snapshot().into_iter().find(|t| t.id == "b").unwrap();
        assert_eq!(b.subject.pod, "ns/db");
        r.remove("b");
        assert_eq!(r.len(), 1);
    }
}
