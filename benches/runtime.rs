//! Criterion benchmark: `subjects()` on a warm image index of a busy node, no containerd needed.

use criterion::{black_box, Criterion};
use image_compat::registry::{media, Descriptor, Digest, Platform};
use image_compat::runtime::{normalize_name, ImageIndex, ImageRecord, Resolution, Resolved};

fn digest(kind: u8, n: u32) -> Digest {
    let mut bytes = [kind; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Digest::sha256_of(&bytes)
}

fn desc(media_type: &str, d: Digest) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: d,
        size: 1024,
        artifact_type: None,
        annotations: Default::default(),
    }
}

/// Records as CRI leaves them after pulling `images` images by tag (tag, repo@digest and
/// image id records; every other image multi-platform), plus one image known under four
/// names in three repositories (index and manifest targets), and a docker.io image.
fn node(images: u32) -> ImageIndex {
    let mut ix = ImageIndex::new();
    let mut add = |names: &[String], target: Descriptor, resolved: &Resolved| {
        for name in names {
            ix.insert(
                ImageRecord {
                    name: name.clone(),
                    target: target.clone(),
                },
                Resolution::Resolved(resolved.clone()),
            );
        }
    };
    for n in 0..images {
        let repo = format!("registry.example.com/team{}/app-{n}", n % 7);
        let config = digest(1, n);
        let manifest = desc(media::OCI_MANIFEST, digest(2, n));
        let (target, platform) = if n % 2 == 0 {
            (
                desc(media::OCI_INDEX, digest(3, n)),
                Some(Platform::new("linux", "amd64", None)),
            )
        } else {
            (manifest.clone(), None)
        };
        let resolved = Resolved {
            config: config.clone(),
            manifest,
            platform,
        };
        let names = [
            format!("{repo}:1.{n}"),
            format!("{repo}@{}", target.digest),
            config.to_string(),
        ];
        add(&names, target, &resolved);
    }
    let config = digest(9, 0);
    let manifest = desc(media::OCI_MANIFEST, digest(9, 1));
    let index = desc(media::OCI_INDEX, digest(9, 2));
    let via_index = Resolved {
        config: config.clone(),
        manifest: manifest.clone(),
        platform: Some(Platform::new("linux", "amd64", None)),
    };
    let direct = Resolved {
        config: config.clone(),
        manifest: manifest.clone(),
        platform: None,
    };
    add(
        &[
            "ghcr.io/org/shared:1".into(),
            format!("ghcr.io/org/shared@{}", index.digest),
            "quay.io/mirror/shared:1".into(),
            config.to_string(),
        ],
        index,
        &via_index,
    );
    add(
        &[
            "registry.example.com/local/shared:amd64".into(),
            format!("registry.example.com/local/shared@{}", manifest.digest),
        ],
        manifest,
        &direct,
    );
    let hub = Resolved {
        config: digest(8, 0),
        manifest: desc(media::OCI_MANIFEST, digest(8, 1)),
        platform: None,
    };
    add(
        &["docker.io/library/busybox:1.36".into()],
        hub.manifest.clone(),
        &hub,
    );
    ix
}

pub fn bench(c: &mut Criterion) {
    let ix = node(300);
    // Fail loudly rather than time an error path.
    for name in [
        "registry.example.com/team3/app-150:1.150",
        "busybox:1.36",
        "registry.example.com/local/shared:amd64",
    ] {
        let s = ix.subjects(name).expect("bench image present");
        assert!(!s.candidates.is_empty());
    }
    assert_eq!(
        ix.subjects("registry.example.com/local/shared:amd64")
            .map(|s| s.candidates.len())
            .ok(),
        Some(6)
    );
    let mut g = c.benchmark_group("subjects");
    g.bench_function("tag, index target, 907 records", |b| {
        b.iter(|| ix.subjects(black_box("registry.example.com/team3/app-150:1.150")))
    });
    g.bench_function("unnormalised docker.io name", |b| {
        b.iter(|| ix.subjects(black_box("busybox:1.36")))
    });
    g.bench_function("shared image, 6 records in 4 repositories", |b| {
        b.iter(|| ix.subjects(black_box("registry.example.com/local/shared:amd64")))
    });
    g.bench_function("not found", |b| {
        b.iter(|| ix.subjects(black_box("registry.example.com/none:1")))
    });
    g.finish();
    c.bench_function("normalize_name", |b| {
        b.iter(|| normalize_name(black_box("registry.example.com/team3/app-150:1.150")))
    });
}
