//! Criterion benchmark: one full evaluation of a realistic spec on a realistic host.

use std::collections::BTreeMap;

use criterion::{black_box, Criterion};
use image_compat::features::Features;
use image_compat::rules::report::nfd_report;
use image_compat::spec;

/// ~300 cpuid flags, 150 loaded modules, 2,000 kernel config entries, 40 PCI devices, plus
/// the attributes the spec reads; the spec's best set matches.
fn host() -> Features {
    let mut f = Features::default();
    let mut flags: Vec<String> = (0..290).map(|i| format!("FLAG{i:03}")).collect();
    for real in [
        "AVX",
        "AVX2",
        "AVX512F",
        "AVX512BW",
        "SSE42",
        "FMA3",
        "X86_64_V3",
        "X86_64_V4",
    ] {
        flags.push(real.into());
    }
    f.set_flags("cpu.cpuid", flags);
    let mut modules: Vec<String> = (0..146).map(|i| format!("mod_{i:03}")).collect();
    modules.extend(["vfio-pci", "vfio_iommu_type1", "ip_tables", "vfio"].map(String::from));
    f.set_flags("kernel.loadedmodule", modules);
    let attrs = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut config: BTreeMap<String, String> = (0..1990)
        .map(|i| (format!("OPTION_{i:04}"), "y".to_string()))
        .collect();
    for (k, v) in [
        ("VFIO", "m"),
        ("VFIO_PCI", "m"),
        ("VFIO_IOMMU_TYPE1", "m"),
        ("HUGETLBFS", "y"),
        ("NO_HZ_FULL", "true"),
        ("HZ", "250"),
        ("VFIO_VIRQFD", "y"),
        ("PREEMPT", "y"),
        ("NUMA", "y"),
        ("IOMMU_SUPPORT", "y"),
    ] {
        config.insert(k.into(), v.into());
    }
    f.set_attributes("kernel.config", config);
    f.set_attributes(
        "cpu.model",
        attrs(&[
            ("vendor_id", "Intel"),
            ("family", "6"),
            ("id", "143"),
            ("hypervisor", "none"),
        ]),
    );
    f.set_attributes(
        "kernel.version",
        attrs(&[
            ("full", "6.8.0-45-generic"),
            ("major", "6"),
            ("minor", "8"),
            ("revision", "0"),
        ]),
    );
    f.set_attributes("kernel.selinux", attrs(&[("enabled", "false")]));
    f.set_attributes(
        "system.osrelease",
        attrs(&[
            ("ID", "ubuntu"),
            ("VERSION_ID", "24.04"),
            ("VERSION_ID.major", "24"),
            ("VERSION_ID.minor", "04"),
        ]),
    );
    f.set_attributes(
        "memory.hugepages",
        attrs(&[("enabled", "true"), ("hugepages-2Mi", "1024")]),
    );
    f.set_attributes(
        "memory.numa",
        attrs(&[("is_numa", "true"), ("node_count", "2")]),
    );
    f.set_attributes("memory.swap", attrs(&[("enabled", "false")]));
    let mut pci = Vec::new();
    for i in 0..40 {
        let (vendor, class, device) = match i {
            0..=3 => ("10de", "0302", "20b5"),
            4..=11 => ("8086", "0200", "1592"),
            _ => ("8086", "0604", "a0bc"),
        };
        let mut a = attrs(&[
            ("vendor", vendor),
            ("class", class),
            ("device", device),
            ("subsystem_vendor", vendor),
            ("subsystem_device", "0000"),
            ("iommu_group/type", "DMA-FQ"),
        ]);
        if (4..=11).contains(&i) {
            a.insert("sriov_totalvfs".into(), "64".into());
        }
        pci.push(a);
    }
    f.set_instances("pci.device", pci);
    f.set_instances(
        "network.device",
        (0..8)
            .map(|i| {
                attrs(&[
                    ("name", &format!("ens{i}")),
                    ("operstate", "up"),
                    ("mtu", "9000"),
                    ("speed", "100000"),
                ])
            })
            .collect(),
    );
    f.set_instances(
        "storage.block",
        (0..4)
            .map(|i| {
                attrs(&[
                    ("name", &format!("nvme{i}n1")),
                    ("rotational", "0"),
                    ("dax", "0"),
                ])
            })
            .collect(),
    );
    f
}

pub fn bench(c: &mut Criterion) {
    let text = include_str!("../tests/fixtures/specs/realistic.yaml");
    let loaded = spec::load(text, "realistic.yaml", spec::Reading::Nfd)
        .expect("the benchmark spec is valid");
    let features = host();
    let eval = loaded.spec.evaluate(&features, &[]).expect("evaluates");
    assert!(
        eval.compatible && eval.sets[0].is_match,
        "the benchmark host must match the gpu set"
    );
    c.bench_function(
        "evaluate realistic spec (21 rules) on realistic host",
        |b| b.iter(|| black_box(loaded.spec.evaluate(black_box(&features), &[]).unwrap())),
    );
    c.bench_function("evaluate + NFD report", |b| {
        b.iter(|| {
            let e = loaded.spec.evaluate(black_box(&features), &[]).unwrap();
            black_box(nfd_report(&loaded.spec, &e).len())
        })
    });
    c.bench_function("parse + validate + compile spec", |b| {
        b.iter(|| {
            black_box(spec::load(black_box(text), "realistic.yaml", spec::Reading::Nfd).unwrap())
        })
    });
}
