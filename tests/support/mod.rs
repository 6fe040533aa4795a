//! Shared helpers of the integration tests: an in-process OCI registry and the real stack
//! (docker-registry, oras) found through integration/lib/install.sh.
#![allow(dead_code)]

pub mod oci_server;
pub mod stack;
