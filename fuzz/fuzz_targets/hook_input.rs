//! The OCI hook's input: the state on stdin, a bundle's config.json, and the image identity
//! found in their annotations.
#![no_main]

use std::path::Path;

use image_compat::hook::{image, input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = input::parse_state(data) {
        let _ = image::identify(&state.id, &state.bundle, None, &state.annotations);
    }
    let bundle = Path::new("/run/bundle");
    if let Ok(config) = input::parse_bundle_config(data, bundle, "/run/bundle/config.json") {
        let _ = image::identify("c", bundle, config.root.as_deref(), &config.annotations);
    }
});
