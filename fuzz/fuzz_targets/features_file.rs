//! Features files (`features.file`, `image-compat features` output, NodeFeature specs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = image_compat::features::file::parse(text, "fuzz");
    }
});
