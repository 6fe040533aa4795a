//! The plugin's connection state, readable at any time (for a health endpoint and metrics).

use std::sync::Arc;

use tokio::sync::watch;

use super::types::EventSet;

/// Where the plugin is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// `run` has not started yet.
    #[default]
    Starting,
    /// Dialling the runtime's socket (or waiting to retry).
    Connecting,
    /// Connected; registration under way.
    Connected,
    /// The runtime accepted the registration; waiting for Configure.
    Registered,
    /// Configured and subscribed: the runtime now sends events.
    Configured,
    /// The initial Synchronize is complete.
    Synchronized,
    /// The connection was lost; a reconnection follows (external mode).
    Disconnected,
    /// `run` has returned.
    Stopped,
}

/// What the runtime said about itself in Configure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeInfo {
    pub name: String,
    pub version: String,
    pub nri_version: Option<String>,
}

/// A snapshot of the plugin's connection state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub phase: Phase,
    /// Connections established so far.
    pub connections: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    /// Successful registrations so far.
    pub registrations: u64,
    /// The runtime of the current (or last) connection.
    pub runtime: Option<RuntimeInfo>,
    /// Events subscribed to on the current (or last) connection.
    pub subscribed: EventSet,
    /// NRI requests received from the runtime, all connections together.
    pub requests: u64,
    /// The last connection or registration failure, cleared by the next success.
    pub last_error: Option<String>,
}

impl Status {
    /// Whether the runtime currently sends this plugin its events.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Configured | Phase::Synchronized)
    }
}

/// A cloneable reader of the plugin's [`Status`].
#[derive(Debug, Clone)]
pub struct StatusHandle {
    rx: watch::Receiver<Status>,
}

impl StatusHandle {
    /// The current state.
    pub fn get(&self) -> Status {
        self.rx.borrow().clone()
    }

    /// Waits until `pred` holds and returns that state; `None` once the plugin is gone.
    pub async fn wait_for(&mut self, pred: impl FnMut(&Status) -> bool) -> Option<Status> {
        self.rx.wait_for(pred).await.ok().map(|s| s.clone())
    }
}

/// The writer side, shared by the lifecycle and the ttrpc service.
#[derive(Debug)]
pub(crate) struct StatusCell {
    tx: watch::Sender<Status>,
}

impl StatusCell {
    pub(crate) fn new() -> Arc<StatusCell> {
        Arc::new(StatusCell {
            tx: watch::Sender::new(Status::default()),
        })
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Status)) {
        self.tx.send_modify(f);
    }

    pub(crate) fn handle(&self) -> StatusHandle {
        StatusHandle {
            rx: self.tx.subscribe(),
        }
    }
}
