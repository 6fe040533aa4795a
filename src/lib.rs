//! image-compat: decide whether a container image's compatibility artifacts hold on a node.

pub mod audit;
pub mod check;
pub mod compat;
pub mod config;
pub mod daemon;
pub mod features;
pub mod hook;
pub mod metrics;
pub mod nri;
pub mod policy;
pub mod registry;
pub mod rules;
pub mod runtime;
pub mod spec;
pub mod untrusted;
pub mod yaml;
