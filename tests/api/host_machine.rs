//! Discovery on the machine running the tests, checked against the machine itself.
//!
//! These read the real /proc, /sys and /etc, so they assert relations (what the kernel and
//! the OS report directly) rather than fixed values.

use std::collections::BTreeSet;
use std::path::Path;

use image_compat::features::{discover, CpuProbe, DiscoverOptions, Features, HostRoots};

fn host_features() -> Features {
    discover(&DiscoverOptions::new(HostRoots::host()).with_node_name("test-node"))
}

fn attr<'a>(f: &'a Features, feature: &str, element: &str) -> Option<&'a str> {
    f.attributes
        .get(feature)?
        .elements
        .get(element)
        .map(String::as_str)
}

#[test]
fn loaded_modules_match_proc_modules() {
    let f = host_features();
    match std::fs::read_to_string("/proc/modules") {
        Ok(text) => {
            let loaded = &f.flags["kernel.loadedmodule"].elements;
            let mut n = 0;
            for line in text.lines() {
                let name = line
                    .split_whitespace()
                    .next()
                    .expect("module line has a name");
                assert!(
                    loaded.contains(name),
                    "{name} missing from kernel.loadedmodule"
                );
                n += 1;
            }
            assert_eq!(loaded.len(), n);
        }
        // Kernels without module support have no /proc/modules: NFD omits the feature.
        Err(_) => assert!(!f.exists("kernel.loadedmodule")),
    }
}

#[test]
fn kernel_version_matches_uname() {
    let out = std::process::Command::new("uname")
        .arg("-r")
        .output()
        .expect("uname runs");
    let release = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let sanitized: String = release
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let sanitized = sanitized.trim_matches(|c| "-_.".contains(c));
    let f = host_features();
    assert_eq!(attr(&f, "kernel.version", "full"), Some(sanitized));
    let major = release.split('.').next().expect("release has a major part");
    assert_eq!(attr(&f, "kernel.version", "major"), Some(major));
}

#[test]
fn os_release_id_matches() {
    let Ok(text) = std::fs::read_to_string("/etc/os-release") else {
        return;
    };
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\''))
        .expect("os-release has ID");
    assert_eq!(attr(&host_features(), "system.osrelease", "ID"), Some(id));
}

#[test]
fn pci_device_count_matches_sysfs() {
    let dir = Path::new("/sys/bus/pci/devices");
    let f = host_features();
    let Ok(entries) = std::fs::read_dir(dir) else {
        assert!(!f.exists("pci.device"));
        return;
    };
    let mandatory = [
        "class",
        "vendor",
        "device",
        "subsystem_vendor",
        "subsystem_device",
    ];
    let complete = entries
        .filter_map(Result::ok)
        .filter(|e| mandatory.iter().all(|m| e.path().join(m).is_file()))
        .count();
    assert_eq!(f.instances["pci.device"].elements.len(), complete);
}

/// /proc/cpuinfo flag -> klauspost/cpuid name, where the kernel derives the flag from the same
/// CPUID bit and the OS-support condition is the same (the kernel hides AVX/AVX-512 flags
/// when XCR0 lacks their state, like cpuid's XGETBV check).
#[cfg(target_arch = "x86_64")]
const CPUINFO_TO_NFD: &[(&str, &str)] = &[
    ("fpu", "X87"),
    ("cx8", "CMPXCHG8"),
    ("cmov", "CMOV"),
    ("mmx", "MMX"),
    ("fxsr", "FXSR"),
    ("sse", "SSE"),
    ("sse2", "SSE2"),
    ("pni", "SSE3"),
    ("ssse3", "SSSE3"),
    ("sse4_1", "SSE4"),
    ("sse4_2", "SSE42"),
    ("cx16", "CX16"),
    ("popcnt", "POPCNT"),
    ("movbe", "MOVBE"),
    ("aes", "AESNI"),
    ("pclmulqdq", "CLMUL"),
    ("f16c", "F16C"),
    ("fma", "FMA3"),
    ("rdrand", "RDRAND"),
    ("hypervisor", "HYPERVISOR"),
    ("vmx", "VMX"),
    ("avx", "AVX"),
    ("avx2", "AVX2"),
    ("bmi1", "BMI1"),
    ("bmi2", "BMI2"),
    ("erms", "ERMS"),
    ("rdseed", "RDSEED"),
    ("adx", "ADX"),
    ("sha_ni", "SHA"),
    ("avx512f", "AVX512F"),
    ("avx512dq", "AVX512DQ"),
    ("avx512cd", "AVX512CD"),
    ("avx512bw", "AVX512BW"),
    ("avx512vl", "AVX512VL"),
    ("avx512ifma", "AVX512IFMA"),
    ("avx512vbmi", "AVX512VBMI"),
    ("avx512_vbmi2", "AVX512VBMI2"),
    ("avx512_vnni", "AVX512VNNI"),
    ("avx512_bitalg", "AVX512BITALG"),
    ("avx512_vpopcntdq", "AVX512VPOPCNTDQ"),
    ("avx512_bf16", "AVX512BF16"),
    ("avx512_fp16", "AVX512FP16"),
    ("avx_vnni", "AVXVNNI"),
    ("gfni", "GFNI"),
    ("vaes", "VAES"),
    ("vpclmulqdq", "VPCLMULQDQ"),
    ("amx_tile", "AMXTILE"),
    ("amx_bf16", "AMXBF16"),
    ("amx_int8", "AMXINT8"),
    ("movdiri", "MOVDIRI"),
    ("movdir64b", "MOVDIR64B"),
    ("serialize", "SERIALIZE"),
    ("fsrm", "FSRM"),
    ("lahf_lm", "LAHF"),
    ("abm", "LZCNT"),
    ("sse4a", "SSE4A"),
    ("nx", "NX"),
    ("rdtscp", "RDTSCP"),
    ("syscall", "SYSCALL"),
    ("mmxext", "MMXEXT"),
    ("clzero", "CLZERO"),
    ("xsaveopt", "XSAVEOPT"),
    ("xsavec", "XSAVEC"),
    ("xgetbv1", "XGETBV1"),
    ("xsaves", "XSAVES"),
    ("svm", "SVM"),
    ("topoext", "TOPEXT"),
];

#[cfg(target_arch = "x86_64")]
#[test]
fn cpu_flags_match_proc_cpuinfo() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo readable");
    let kernel: BTreeSet<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .expect("cpuinfo has a flags line");
    let f = host_features();
    let ours = &f.flags["cpu.cpuid"].elements;
    let mut mismatches = Vec::new();
    for (linux, nfd) in CPUINFO_TO_NFD {
        if kernel.contains(linux) != ours.contains(*nfd) {
            mismatches.push(format!(
                "{linux} (kernel: {}) vs {nfd} (ours: {})",
                kernel.contains(linux),
                ours.contains(*nfd)
            ));
        }
    }
    assert!(mismatches.is_empty(), "flag mismatches: {mismatches:?}");
    // The check must have compared something real on any x86_64 host.
    assert!(ours.contains("SSE2") && ours.contains("X86_64_V1"));
}

#[test]
fn recorded_cpu_decodes_like_the_native_one() {
    let Some(record) = image_compat::features::record_native_cpu() else {
        return;
    };
    let t = tempfile::tempdir().expect("tempdir");
    let file = t.path().join("cpu.txt");
    std::fs::write(&file, record).expect("write record");
    let mut roots = HostRoots::host();
    let native = discover(
        &DiscoverOptions::new(roots.clone()).with_sources([image_compat::features::Source::Cpu]),
    );
    roots.cpu = CpuProbe::Recorded(file);
    let recorded =
        discover(&DiscoverOptions::new(roots).with_sources([image_compat::features::Source::Cpu]));
    assert_eq!(native.flags["cpu.cpuid"], recorded.flags["cpu.cpuid"]);
    assert_eq!(
        native.attributes["cpu.model"],
        recorded.attributes["cpu.model"]
    );
    assert_eq!(
        native.attributes.get("cpu.cpuid"),
        recorded.attributes.get("cpu.cpuid")
    );
}
