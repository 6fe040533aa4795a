//! Whole paths on the real stack: containerd 2.1 and 1.7, runc, docker-registry 2.8, oras,
//! podman and buildah, as `integration/lib/install.sh` unpacks or installs them.
//!
//! They need root and the private stack (`IMAGE_COMPAT_STACK`, default `.work/stack`); without
//! them each test prints `SKIPPED: ...` and passes. One test binary with a module per area, so
//! that tests/support and the dev-dependencies are compiled and linked once; tests/api holds
//! the tests that run anywhere. Every test works in its own temporary directories, ports and
//! containerd instances, so the tests of different modules can run side by side.

#[path = "../support/mod.rs"]
mod support;

mod cli_registry;
mod deploy_image;
mod e2e;
mod hook_runtimes;
mod nri_real_containerd;
mod real_stack_scripts;
mod registry_real;
mod runtime_containerd;
