//! image-compat: decide whether a container image's NFD compatibility spec holds on a node.

pub mod features;
pub mod nri;
