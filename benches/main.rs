//! The benchmarks, one criterion binary with a module per area:
//! `cargo bench --bench benches [-- FILTER]`, FILTER being a regex over the benchmark IDs
//! (BENCHMARKS.md gives each area's). One binary links the library and the dev-dependencies
//! once instead of once per area.

#[path = "../tests/support/oci_server.rs"]
#[allow(dead_code)]
mod oci_server;

mod discovery;
mod evaluate;
mod hook;
mod plugin;
mod runtime;

criterion::criterion_group!(
    benches,
    discovery::bench,
    evaluate::bench,
    hook::bench,
    plugin::bench,
    runtime::bench
);
criterion::criterion_main!(benches);
