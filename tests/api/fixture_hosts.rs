//! Discovery on recorded hosts (tests/fixtures/hosts/<host>/root) against reviewed expectations.
//!
//! Each host's expected output is `tests/fixtures/hosts/<host>/expected.json`, in NFD's
//! NodeFeatureSpec.features JSON shape. To regenerate after a deliberate change, run with
//! `IMAGE_COMPAT_BLESS=1` and review the diff against FEATURES.md before committing.

use std::path::{Path, PathBuf};

use image_compat::features::{discover, DiscoverOptions, Features, HostRoots, Source};

fn host_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hosts")
        .join(name)
}

fn discover_host(name: &str) -> Features {
    let opts = DiscoverOptions::new(HostRoots::fixture(host_dir(name).join("root")))
        .with_node_name("fixture-node");
    discover(&opts)
}

fn check_expected(name: &str) -> Features {
    let got = discover_host(name);
    let path = host_dir(name).join("expected.json");
    let got_json = serde_json::to_string_pretty(&got).expect("features serialize") + "\n";
    if std::env::var_os("IMAGE_COMPAT_BLESS").is_some() {
        std::fs::write(&path, &got_json).expect("write expected.json");
        return got;
    }
    let want_json = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (IMAGE_COMPAT_BLESS=1 writes it)", path.display()));
    let want: Features = serde_json::from_str(&want_json).expect("expected.json parses");
    if got != want {
        panic!(
            "{name}: discovered features differ from {}\n--- got ---\n{got_json}",
            path.display()
        );
    }
    got
}

fn attr<'a>(f: &'a Features, feature: &str, element: &str) -> Option<&'a str> {
    f.attributes
        .get(feature)?
        .elements
        .get(element)
        .map(String::as_str)
}

fn flag(f: &Features, feature: &str, element: &str) -> bool {
    f.flags
        .get(feature)
        .is_some_and(|s| s.elements.contains(element))
}

fn instances<'a>(
    f: &'a Features,
    feature: &str,
) -> Vec<&'a std::collections::BTreeMap<String, String>> {
    f.instances[feature]
        .elements
        .iter()
        .map(|i| &i.attributes)
        .collect()
}

#[test]
fn x86_server() {
    let f = check_expected("x86-server");
    // Spot checks of facts the expectation must hold (FEATURES.md), independent of the file.
    for name in [
        "AVX512F",
        "AVX512FP16",
        "AMXTILE",
        "AMXBF16",
        "SSE42",
        "X86_64_V4",
        "HTT",
    ] {
        assert!(flag(&f, "cpu.cpuid", name), "cpu.cpuid lacks {name}");
    }
    assert!(!flag(&f, "cpu.cpuid", "HYPERVISOR"));
    assert!(
        f.attributes["cpu.cpuid"].elements.is_empty(),
        "no AVX10 on Emerald Rapids"
    );
    assert_eq!(attr(&f, "cpu.model", "vendor_id"), Some("Intel"));
    assert_eq!(attr(&f, "cpu.model", "family"), Some("6"));
    assert_eq!(attr(&f, "cpu.model", "id"), Some("207"));
    assert_eq!(attr(&f, "cpu.model", "hypervisor"), Some("none"));
    assert_eq!(attr(&f, "cpu.rdt", "RDTL3CA_NUM_CLOSID"), Some("14"));
    assert_eq!(attr(&f, "cpu.cstate", "enabled"), Some("true"));
    assert_eq!(
        attr(&f, "cpu.pstate", "scaling_governor"),
        Some("performance")
    );
    assert_eq!(
        attr(&f, "kernel.version", "full"),
        Some("5.14.0-427.13.1.el9_4.x86_64")
    );
    assert_eq!(attr(&f, "kernel.config", "LOCALVERSION"), Some(""));
    assert_eq!(attr(&f, "kernel.config", "PREEMPT"), None);
    assert!(flag(&f, "kernel.enabledmodule", "xhci-hcd"));
    assert!(flag(&f, "kernel.enabledmodule", "kvm_intel"));
    assert_eq!(attr(&f, "kernel.selinux", "enabled"), Some("true"));
    assert_eq!(attr(&f, "memory.hugepages", "hugepages-2Mi"), Some("1024"));
    assert_eq!(attr(&f, "memory.numa", "node_count"), Some("2"));
    assert_eq!(attr(&f, "system.osrelease", "VERSION_ID.minor"), Some("4"));
    assert_eq!(attr(&f, "system.name", "nodename"), Some("fixture-node"));
    assert_eq!(
        attr(&f, "local.feature", "nvidia.com/cuda.driver.major"),
        Some("555")
    );
    assert_eq!(attr(&f, "local.label", "nvidia.com/gpu.firmware"), None);
    assert_eq!(
        attr(&f, "local.feature", "maintenance.window"),
        None,
        "expired"
    );
    assert_eq!(
        attr(&f, "local.feature", "staged.feature"),
        None,
        "hidden file"
    );

    let pci = instances(&f, "pci.device");
    assert_eq!(pci.len(), 10);
    let gpu = pci
        .iter()
        .find(|d| d["vendor"] == "10de")
        .expect("NVIDIA GPU");
    assert_eq!(gpu["class"], "0302");
    assert_eq!(gpu["device"], "20b5");
    assert_eq!(gpu["iommu_group/type"], "DMA-FQ");
    let pfs: Vec<_> = pci
        .iter()
        .filter(|d| d.contains_key("sriov_totalvfs"))
        .collect();
    assert_eq!(pfs.len(), 2);
    assert!(pfs
        .iter()
        .all(|d| d["sriov_totalvfs"] == "128" && d["class"] == "0200"));

    let net = instances(&f, "network.device");
    let eno1 = net.iter().find(|d| d["name"] == "eno1").expect("eno1");
    assert_eq!(eno1["sriov_numvfs"], "2");
    assert_eq!(eno1["speed"], "25000");
    let virt: Vec<&str> = instances(&f, "network.virtual")
        .iter()
        .map(|d| d["name"].as_str())
        .collect();
    assert_eq!(virt, ["cni0", "lo", "veth3f2a9c1b"]);

    let usb = instances(&f, "usb.device");
    let classes: Vec<&str> = usb.iter().map(|d| d["class"].as_str()).collect();
    assert_eq!(
        classes,
        ["03", "03", "09", "09"],
        "class 00 device split per interface"
    );
}

#[test]
fn arm64_graviton() {
    let f = check_expected("arm64-graviton");
    for name in [
        "FP", "ASIMD", "SVE", "PACA", "PACG", "DCPODP", "SVEBF16", "I8MM", "BF16", "RNG",
    ] {
        assert!(flag(&f, "cpu.cpuid", name), "cpu.cpuid lacks {name}");
    }
    assert!(!flag(&f, "cpu.cpuid", "SB"));
    assert!(!flag(&f, "cpu.cpuid", "SVE2"));
    assert!(
        !f.attributes.contains_key("cpu.cpuid"),
        "no cpu.cpuid attributes on arm64"
    );
    assert_eq!(attr(&f, "cpu.model", "vendor_id"), Some("ARM"));
    assert_eq!(attr(&f, "cpu.model", "family"), Some("31"));
    assert_eq!(attr(&f, "cpu.model", "id"), Some("54273"));
    assert_eq!(attr(&f, "cpu.model", "hypervisor"), Some("none"));
    for empty in [
        "cpu.cstate",
        "cpu.pstate",
        "cpu.rdt",
        "cpu.security",
        "cpu.sst",
    ] {
        assert!(
            f.attributes[empty].elements.is_empty(),
            "{empty} exists and is empty"
        );
    }
    assert_eq!(
        attr(&f, "cpu.topology", "hardware_multithreading"),
        Some("false")
    );
    assert_eq!(attr(&f, "memory.hugepages", "hugepages-64Ki"), Some("0"));
    assert_eq!(attr(&f, "memory.hugepages", "hugepages-32Mi"), Some("0"));
    assert_eq!(attr(&f, "memory.hugepages", "enabled"), Some("true"));
    assert_eq!(attr(&f, "kernel.kvm", "enabled"), Some("false"));
    assert_eq!(attr(&f, "kernel.selinux", "enabled"), Some("false"));
    assert_eq!(attr(&f, "kernel.config", "HZ"), Some("250"));
    assert_eq!(attr(&f, "system.osrelease", "VERSION_ID.minor"), Some("04"));
    assert!(
        f.instances["usb.device"].elements.is_empty(),
        "no USB bus: empty, present"
    );
}

#[test]
fn minimal_vm() {
    let f = check_expected("minimal-vm");
    // Absent, as NFD omits them: no kconfig, no /proc/modules, no modules.builtin, no DMI.
    for absent in [
        "kernel.config",
        "kernel.loadedmodule",
        "kernel.enabledmodule",
        "system.dmiid",
    ] {
        assert!(!f.exists(absent), "{absent} should be absent");
    }
    // haltpoll, not intel_idle: present and empty.
    assert!(f.attributes["cpu.cstate"].elements.is_empty());
    // No PCI bus: NFD would fail discovery; we omit the feature.
    assert!(!f.exists("pci.device"));
    assert!(flag(&f, "cpu.cpuid", "HYPERVISOR"));
    assert_eq!(attr(&f, "cpu.model", "hypervisor"), Some("kvm"));
    assert_eq!(attr(&f, "kernel.kvm", "enabled"), Some("false"));
    assert!(f.attributes["local.feature"].elements.is_empty());
    assert!(f.attributes["local.label"].elements.is_empty());
    assert_eq!(attr(&f, "memory.hugepages", "enabled"), Some("false"));
}

#[test]
fn source_selection_on_a_fixture() {
    let opts = DiscoverOptions::new(HostRoots::fixture(host_dir("x86-server").join("root")))
        .with_sources([Source::Pci, Source::Kernel]);
    let f = discover(&opts);
    let mut prefixes: Vec<&str> = f
        .flags
        .keys()
        .chain(f.attributes.keys())
        .chain(f.instances.keys())
        .map(|k| k.split('.').next().unwrap_or(k))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    assert_eq!(prefixes, ["kernel", "pci"]);
}
