//! Feature discovery cost: time per full discovery (criterion) and peak extra heap per run.
//!
//! `cargo bench --bench benches -- '^discover/'` times `discover()` on this machine (all
//! sources) and on the x86-server fixture, and prints the peak heap allocated above the
//! baseline during one discovery, measured by a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::OnceCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use criterion::Criterion;
use image_compat::features::{discover, DiscoverOptions, HostRoots};

/// Counts live heap bytes and their high-water mark while `COUNTING` is on.
struct Counting;

/// On while the discovery benchmarks run, as when they had a binary of their own; the other
/// benchmarks of this binary time the system allocator without the counting.
static COUNTING: AtomicBool = AtomicBool::new(false);
// Signed: memory allocated before counting began may be freed while it is on.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// A layout's size as a count; `Layout` guarantees it is at most `isize::MAX`.
fn bytes(size: usize) -> isize {
    size as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            let live =
                LIVE.fetch_add(bytes(layout.size()), Ordering::Relaxed) + bytes(layout.size());
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(bytes(layout.size()), Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(bytes(layout.size()), Ordering::Relaxed);
            let live = LIVE.fetch_add(bytes(new_size), Ordering::Relaxed) + bytes(new_size);
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
    let retained = LIVE.load(Ordering::Relaxed) - base;
    drop(features);
    (peak.max(0) as usize, retained.max(0) as usize)
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

pub fn bench(c: &mut Criterion) {
    COUNTING.store(true, Ordering::Relaxed);
    let host = DiscoverOptions::new(HostRoots::host()).with_node_name("bench");
    let fixture_root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/x86-server/root");
    let fixture = DiscoverOptions::new(HostRoots::fixture(fixture_root)).with_node_name("bench");
    // The heap report, once, before the first discovery benchmark the filter selects: none
    // when it selects another area's.
    let reported = OnceCell::new();
    let report_once = || {
        reported.get_or_init(|| {
            println!();
            report("discover/host", &host);
            report("discover/x86-server-fixture", &fixture);
        })
    };

    c.bench_function("discover/host", |b| {
        report_once();
        b.iter(|| discover(&host))
    });
    c.bench_function("discover/x86-server-fixture", |b| {
        report_once();
        b.iter(|| discover(&fixture))
    });
    COUNTING.store(false, Ordering::Relaxed);
}
