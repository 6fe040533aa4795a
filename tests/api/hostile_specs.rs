//! Hostile specs of every shape examples/hostile.rs generates (each at the largest size read,
//! 256 KiB): read, validated, compiled and evaluated in bounded time, or refused with a reason;
//! larger ones refused for their size before any reading; NUL bytes and BOMs read as go-yaml
//! reads them.
//!
//! The bound here is for an unoptimised test build on a loaded machine; the release figures
//! (the 100 ms / 64 MiB target) are scripts/bench-hostile.sh's, in BENCHMARKS.md.

use std::time::{Duration, Instant};

use image_compat::features::Features;
use image_compat::spec::{self, Reading};

#[allow(dead_code)]
#[path = "../../examples/hostile.rs"]
pub(crate) mod hostile;

/// Generous for an unoptimised build on a loaded machine (about 20 times slower than release):
/// before the budgets, the alias bomb took ~20 s and 4 GB in a release build, merge keys 50 s,
/// 39,000 expressions 7 s, and deep block nesting overflowed the stack.
const BOUND: Duration = Duration::from_secs(20);

fn node() -> Features {
    let mut f = Features::default();
    f.set_flags("kernel.loadedmodule", ["ext4".to_string()]);
    f
}

/// The shapes of issue 12 (the others are scripts/bench-hostile.sh's, in release), read as the
/// plugin reads a fetched spec, on a blocking-pool-sized stack.
#[test]
fn the_issue_shapes_are_refused_or_evaluated_in_bounded_time() {
    let wanted = [
        "alias-bomb",
        "merge-keys",
        "many-expressions",
        "deep-block",
        "deep-inline-block",
        "deep-flow",
        "nul-byte",
    ];
    let shapes: Vec<_> = hostile::shapes()
        .into_iter()
        .filter(|(n, _)| wanted.contains(n))
        .collect();
    assert_eq!(shapes.len(), wanted.len());
    let outcomes = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let features = node();
            let mut out = Vec::new();
            for (name, make) in shapes {
                let text = make(hostile::MAX);
                assert!(text.len() <= spec::MAX_BYTES, "{name} is over the bound");
                let started = Instant::now();
                let outcome = match spec::load(&text, name, Reading::Nfd) {
                    Ok(loaded) => image_compat::check::evaluate(&loaded, &features, &[])
                        .case()
                        .to_string(),
                    Err(e) => format!("refused: {e}"),
                };
                out.push((name, started.elapsed(), outcome));
            }
            out
        })
        .expect("thread")
        .join()
        .expect("no shape crashes the reader");
    for (name, took, outcome) in &outcomes {
        assert!(took < &BOUND, "{name}: {took:?}");
        match *name {
            "alias-bomb" => assert!(outcome.contains("aliases count"), "{name}: {outcome}"),
            "nul-byte" => assert!(outcome.contains("U+0000"), "{name}: {outcome}"),
            n if n.starts_with("deep-") => {
                assert!(outcome.starts_with("refused"), "{name}: {outcome}")
            }
            _ => {}
        }
    }
}

/// Every shape at 1 MiB (the old bound: up to 382 ms and 109 MiB in release, BENCHMARKS.md) is
/// refused for its size alone, before the YAML reader sees it; at the bound itself it is read.
#[test]
fn specs_over_the_bound_are_refused_for_their_size() {
    let mut grown = 0;
    for (name, make) in hostile::shapes() {
        let text = make(1 << 20);
        if text.len() <= spec::MAX_BYTES {
            continue; // the alias bomb, the NUL byte, the big regex: small at any size
        }
        grown += 1;
        let started = Instant::now();
        let e = spec::load(&text, name, Reading::Nfd).expect_err(name);
        assert!(started.elapsed() < Duration::from_secs(1), "{name}");
        let msg = e.to_string();
        assert!(
            matches!(e, spec::SpecError::TooLarge { bytes, .. } if bytes == text.len()),
            "{name}: {msg}"
        );
        assert!(
            msg.contains("too large") && msg.contains("at most 262144 bytes"),
            "{msg}"
        );
        // As the plugin reads a fetched layer (the registry's cap is the same by default).
        let e = image_compat::check::answer::read_body(
            image_compat::registry::media::ArtifactKind::Nfd,
            text.as_bytes(),
            name,
            Reading::Nfd,
        )
        .expect_err(name);
        assert!(e.contains("too large"), "{name}: {e}");
    }
    assert!(grown >= 10, "{grown}");
    // The bound itself is read (many-rules at exactly 256 KiB, padded with a comment).
    let (_, many_rules) = hostile::shapes()
        .into_iter()
        .find(|(n, _)| *n == "many-rules")
        .expect("shape");
    let mut text = many_rules(spec::MAX_BYTES);
    assert!(text.len() < spec::MAX_BYTES);
    text.push('#');
    while text.len() < spec::MAX_BYTES {
        text.push('x');
    }
    assert_eq!(text.len(), spec::MAX_BYTES);
    spec::load(&text, "at-the-bound", Reading::Nfd).expect("read");
    text.push('x');
    assert!(matches!(
        spec::load(&text, "over", Reading::Nfd),
        Err(spec::SpecError::TooLarge { .. })
    ));
}

#[test]
fn a_nul_byte_does_not_hide_the_rest_of_the_document() {
    // An invalid set after the NUL: it must not pass as a spec of one empty set.
    let text = "version: v1alpha1\ncompatibilities:\n- rules: []\n\0- rules:\n  - name: hidden\n    matchFeatures:\n    - feature: x.y\n      matchExpressions: {a: {op: Inn}}\n";
    let e = spec::check(text, "nul.yaml")
        .err()
        .map(|e| e.to_string())
        .or_else(|| {
            spec::check(text, "nul.yaml")
                .ok()
                .filter(|c| !c.is_valid())
                .map(|_| "invalid".to_string())
        })
        .expect("a spec with a NUL byte is refused");
    assert!(!e.is_empty());
    assert!(spec::load(text, "nul.yaml", Reading::Nfd).is_err());
}

#[test]
fn a_bom_is_skipped_as_go_yaml_does() {
    let text = "\u{feff}version: v1alpha1\ncompatibilities:\n- rules:\n  - name: r\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions: {ext4: {op: Exists}}\n";
    let loaded = spec::load(text, "bom.yaml", Reading::Strict).expect("a BOM is not an error");
    let outcome = image_compat::check::evaluate(&loaded, &node(), &[]);
    assert_eq!(outcome.case(), "compatible", "{outcome:?}");
}
