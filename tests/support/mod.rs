//! Shared test helpers: an in-process OCI registry and the real docker-registry/oras stack.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod nri_peer;
pub mod oci_server;
pub mod stack;
