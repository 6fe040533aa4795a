//! NRI plugin: the multiplexed transport, the ttrpc services, the plugin lifecycle, and the
//! image-compat handler ([`Guard`]).
//!
//! The program implements [`Handler`] and calls [`run`] (or [`Plugin::run_until`]); this
//! module connects to the runtime (external socket or the fd a runtime passes to a plugin it
//! launched), registers, subscribes to the handler's events, answers requests concurrently
//! and reconnects when an external connection is lost.

pub mod api {
    //! NRI wire types and ttrpc services generated from proto/nri/api.proto.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/mod.rs"));
    pub use self::nri::pkg::api::v1alpha1::*;
}

mod guard;
mod handler;
pub mod mux;
mod plugin;
mod running;
mod service;
mod status;
mod types;

pub use guard::{Configurator, Guard, Observer, Stage};
pub use handler::{Handler, HandlerError, Rejection};
pub use plugin::{
    run, Plugin, PluginOptions, Transport, DEFAULT_SOCKET_PATH, ENV_PLUGIN_IDX, ENV_PLUGIN_NAME,
    ENV_PLUGIN_SOCKET,
};
pub use running::{Recheck, Running};
pub use status::{Phase, RuntimeInfo, Status, StatusHandle};
pub use types::{
    Adjustment, ConfigureInfo, Container, ContainerState, Event, EventSet, Eviction, ImageRef,
    Mount, PluginRef, PodSandbox, User, Validation,
};

/// Errors of the NRI plugin lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum NriError {
    #[error("invalid plugin name {0:?}: use letters, digits and _ . + -")]
    InvalidName(String),
    #[error("invalid plugin index {0:?}: two digits expected")]
    InvalidIndex(String),
    #[error("invalid pre-connected socket {ENV_PLUGIN_SOCKET}={0}: {1}")]
    BadSocketFd(String, String),
    #[error("cannot use the connected socket: {0}")]
    Socket(String),
    #[error("the runtime closed the connection before configuring the plugin: {0}")]
    NotConfigured(String),
    #[error(transparent)]
    Mux(#[from] mux::MuxError),
}
