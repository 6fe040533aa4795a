//! Feature discovery cost: time per full discovery (criterion) and peak extra heap per run.
//!
//! `cargo bench --bench discovery` times `discover()` on this machine (all sources) and on
//! the x86-server fixture, and prints the peak heap allocated above the baseline during one
//! discovery, measured by a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use image_compat::features::{discover, DiscoverOptions, HostRoots};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak heap above the starting level during one discovery, and the result's retained size.
fn heap_cost(opts: &DiscoverOptions) -> (usize, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let features = discover(opts);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let retained = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    drop(features);
    (peak, retained)
}

fn report(name: &str, opts: &DiscoverOptions) {
    // The first run initialises lazily built regexes; measure a steady-state run.
    let _ = heap_cost(opts);
    let (peak, retained) = heap_cost(opts);
    println!(
        "{name}: peak extra heap {:.1} KiB, result {:.1} KiB, features {}",
        peak as f64 / 1024.0,
        retained as f64 / 1024.0,
        discover(opts).len()
    );
}

fn bench(c: &mut Criterion) {
    let host = DiscoverOptions::new(HostRoots::host()).with_node_name("bench");
    let fixture_root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/x86-server/root");
    let fixture = DiscoverOptions::new(HostRoots::fixture(fixture_root)).with_node_name("bench");
    report("discover/host", &host);
    report("discover/x86-server-fixture", &fixture);

    c.bench_function("discover/host", |b| b.iter(|| discover(&host)));
    c.bench_function("discover/x86-server-fixture", |b| {
        b.iter(|| discover(&fixture))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
