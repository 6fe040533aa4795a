//! image-compat: decide whether a container image's NFD compatibility spec holds on a node.

pub mod check;
pub mod features;
pub mod hook;
pub mod metrics;
pub mod nri;
pub mod policy;
pub mod registry;
pub mod rules;
pub mod runtime;
pub mod spec;
