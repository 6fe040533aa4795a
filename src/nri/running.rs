//! The containers running on the node as NRI reports them (Synchronize, creations allowed,
//! stops and removals), and their re-check: which have become incompatible since they started.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::types::{Container, ContainerState, PodSandbox};
use crate::check::Compat;

/// Containers past their creation check, by id, with the last verdict a re-check gave.
#[derive(Default)]
pub struct Running {
    containers: Mutex<HashMap<String, Tracked>>,
}

#[derive(Clone)]
pub struct Tracked {
    pub pod: PodSandbox,
    pub container: Container,
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

    /// A container the runtime is creating or runs (its pod as the runtime sent it).
    pub fn add(&self, pod: &PodSandbox, container: &Container) {
        if container.id.is_empty() {
            return;
        }
        self.lock().insert(
            container.id.clone(),
            Tracked {
                pod: pod.clone(),
                container: container.clone(),
                last: None,
            },
        );
    }

    /// What Synchronize reports (every container, at each connection): the containers that
    /// run (or are about to), with their pods, replace what was kept, so that stops missed
    /// while disconnected do not linger. (A container created in the moment between the
    /// runtime's snapshot and this call is dropped until its next creation; the window is the
    /// connection's first milliseconds.)
    pub fn sync(&self, pods: &[PodSandbox], containers: &[Container]) {
        let by_id: HashMap<&str, &PodSandbox> = pods.iter().map(|p| (p.id.as_str(), p)).collect();
        let none = PodSandbox::default();
        let mut kept = self.lock();
        let previous = std::mem::take(&mut *kept);
        for c in containers {
            if c.id.is_empty()
                || !matches!(c.state, ContainerState::Running | ContainerState::Created)
            {
                continue;
            }
            let pod = by_id
                .get(c.pod_sandbox_id.as_str())
                .copied()
                .unwrap_or(&none);
            let last = previous.get(&c.id).and_then(|t| t.last);
            kept.insert(
                c.id.clone(),
                Tracked {
                    pod: pod.clone(),
                    container: c.clone(),
                    last,
                },
            );
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

    fn ctr(id: &str, state: ContainerState) -> Container {
        Container {
            id: id.into(),
            pod_sandbox_id: "p".into(),
            state,
            ..Container::default()
        }
    }

    #[test]
    fn synchronize_replaces_and_events_remove() {
        let r = Running::default();
        let pod = PodSandbox {
            id: "p".into(),
            name: "web".into(),
            ..PodSandbox::default()
        };
        r.add(&pod, &ctr("gone", ContainerState::Created));
        r.add(&pod, &ctr("a", ContainerState::Created));
        assert_eq!(r.record("a", Compat::Incompatible), None);
        // A reconnection: the runtime reports what it has; "gone" stopped meanwhile.
        r.sync(
            std::slice::from_ref(&pod),
            &[
                ctr("a", ContainerState::Running),
                ctr("b", ContainerState::Running),
                ctr("done", ContainerState::Stopped),
            ],
        );
        let mut ids: Vec<String> = r.snapshot().into_iter().map(|t| t.container.id).collect();
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
        // The verdict seen before the reconnection is kept: no second "became incompatible".
        assert_eq!(
            r.record("a", Compat::Incompatible),
            Some(Compat::Incompatible)
        );
        let b = r
            .snapshot()
            .into_iter()
            .find(|t| t.container.id == "b")
            .unwrap();
        assert_eq!(b.pod.name, "web");
        r.remove("b");
        assert_eq!(r.len(), 1);
    }
}
