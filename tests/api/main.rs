//! Whole paths through the public API that need neither root nor the real stack: the library
//! against in-process registries and runtime peers, and the `image-compat` binary as users,
//! runtimes and deploy files run it.
//!
//! One test binary with a module per area, so that tests/support and the dev-dependencies are
//! compiled and linked once rather than once per file; tests/stack holds the tests that need
//! root and the private stack. Tests here share one process: none may change process-wide state
//! (environment, current directory, umask, signal handlers); a test that needs such a change
//! runs its scenario in a child process (see `registry_credhelper`).

#[path = "../support/mod.rs"]
mod support;

mod check_checker;
mod cli_audit;
mod cli_evaluate;
mod cli_features;
mod conformance;
mod deploy_host;
mod deploy_manifests;
mod deploy_nri_config;
mod fixture_hosts;
mod hook_cli;
mod host_machine;
mod hostile_specs;
mod nri_guard;
mod nri_plugin;
mod registry_api;
mod registry_credhelper;
mod registry_limits;
mod registry_tls;
