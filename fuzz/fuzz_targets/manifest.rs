//! Registry answers: manifest media types, artifact manifests, referrers lists, image indexes.
#![no_main]

use image_compat::registry::decoders;
use image_compat::registry::media::ArtifactKind;
use image_compat::registry::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for ct in [None, Some("application/vnd.oci.image.index.v1+json")] {
        let _ = decoders::media_type(data, ct);
    }
    for kind in ArtifactKind::ALL {
        let _ = decoders::artifact_manifest(data, None, kind);
    }
    let _ = decoders::referrers(data);
    if let Ok(p) = Platform::parse("linux/arm64/v8") {
        let _ = decoders::platform_manifest(data, &p);
    }
});
