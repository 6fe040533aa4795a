//! NFD spec reader, validator, compiler and evaluator: what a registry's spec layer goes through.
#![no_main]

use image_compat::features::Features;
use image_compat::spec::{self, Reading};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = spec::check(text, "fuzz");
    let _ = image_compat::check::document::check(text, "fuzz", None);
    if let Ok(loaded) = spec::load(text, "fuzz", Reading::Nfd) {
        let mut f = Features::default();
        f.set_flags("kernel.loadedmodule", ["ext4".to_string()]);
        f.set_attributes(
            "kernel.config",
            [("NUMA".to_string(), "y".to_string())].into_iter().collect(),
        );
        let _ = image_compat::check::evaluate(&loaded, &f, &[]);
    }
});
