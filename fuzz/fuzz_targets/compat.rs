//! Proposal F documents: kind detection, the JSON lint, the reader, and the evaluation on a node.
#![no_main]

use image_compat::features::Features;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = image_compat::compat::looks_like(text);
    if let Ok(parsed) = image_compat::compat::parse(text, "fuzz") {
        let mut f = Features::default();
        f.set_flags("cpu.cpuid", ["AVX2".to_string()]);
        let _ = image_compat::compat::evaluate(&parsed.doc, &f);
    }
});
