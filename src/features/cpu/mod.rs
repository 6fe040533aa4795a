//! The `cpu` source: cpu.cpuid, model, cstate, pstate, rdt, security, sst, topology, coprocessor.
//!
//! Which features exist follows NFD per architecture: on amd64 everything, with cpu.cpuid
//! both a flag and an attribute feature; on arm64 the amd64-only detections (cstate, pstate,
//! rdt, security, sst) are present but empty, and cpu.cpuid has flags only. ppc64le, s390x
//! and 32-bit arm are not probed: there the source yields the arch-independent features only.

mod arm64;
mod power;
pub(crate) mod probe;
mod security;
mod x86;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;
use tracing::{debug, warn};

use super::host::{read_dir_sorted, HostRoots};
use super::Features;
use probe::CpuData;
use x86::{Feature, Vendor, X86Cpu};

pub use probe::record_native;

type Attrs = BTreeMap<String, String>;

static NOT_LABEL_CHARS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("[^-A-Za-z0-9_.]+").expect("constant regex is valid"));

/// Discovers the cpu source's features.
pub(crate) fn discover(roots: &HostRoots) -> Features {
    let mut f = Features::default();
    let data = match probe::probe(&roots.cpu) {
        Ok(d) => Some(d),
        Err(e) => {
            warn!(error = %e, "cpu: skipping malformed CPU record: no cpu.cpuid, cpu.model");
            None
        }
    };
    match &data {
        Some(CpuData::X86(c)) => {
            let cpu = X86Cpu::decode(c.as_ref());
            let mut flags: BTreeSet<String> = cpu.feature_names().map(String::from).collect();
            flags.extend((1..=cpu.x64_level()).map(|l| format!("X86_64_V{l}")));
            f.set_flags("cpu.cpuid", flags);
            let mut attrs = Attrs::new();
            if cpu.avx10_level > 0 {
                attrs.insert("AVX10_VERSION".into(), cpu.avx10_level.to_string());
            }
            f.set_attributes("cpu.cpuid", attrs);
            f.set_attributes("cpu.model", x86_model(&cpu));
            match power::cstate(roots) {
                Some(a) => f.set_attributes("cpu.cstate", a),
                None => debug!("cpu.cstate: not detected, feature omitted"),
            }
            f.set_attributes("cpu.pstate", power::pstate(roots));
            f.set_attributes("cpu.rdt", security::rdt(roots, c.as_ref()));
            f.set_attributes("cpu.security", security::security(roots, &cpu));
            f.set_attributes("cpu.sst", power::sst(roots, c.as_ref()));
        }
        Some(CpuData::Arm64(regs)) => {
            f.set_flags("cpu.cpuid", arm64::hwcap_names(regs.hwcap, regs.hwcap2));
            let (vendor, family, id) = arm64::model(regs);
            let model = Attrs::from([
                ("vendor_id".into(), vendor.name().into()),
                ("family".into(), family.to_string()),
                ("id".into(), id.to_string()),
                // klauspost/cpuid never sets HYPERVISOR on arm64.
                ("hypervisor".into(), "none".into()),
            ]);
            f.set_attributes("cpu.model", model);
            amd64_only_empty(&mut f);
        }
        Some(CpuData::Unsupported) => {
            debug!("cpu: CPU identification not supported on this architecture");
            amd64_only_empty(&mut f);
        }
        None => {}
    }
    f.set_attributes("cpu.topology", topology(roots));
    // Only ppc64le has an NX-GZIP coprocessor; elsewhere NFD leaves the feature empty.
    f.set_attributes("cpu.coprocessor", Attrs::new());
    f
}

/// The amd64-only detections exist as empty features on other architectures.
fn amd64_only_empty(f: &mut Features) {
    for name in [
        "cpu.cstate",
        "cpu.pstate",
        "cpu.rdt",
        "cpu.security",
        "cpu.sst",
    ] {
        f.set_attributes(name, Attrs::new());
    }
}

fn x86_model(cpu: &X86Cpu) -> Attrs {
    let hypervisor = if !cpu.has(Feature::HYPERVISOR) {
        "none".to_string()
    } else if cpu.hypervisor_vendor == Vendor::Unknown {
        let raw = String::from_utf8_lossy(&cpu.hypervisor_string);
        let clean = NOT_LABEL_CHARS.replace_all(&raw, "_");
        if clean.is_empty() {
            "unknown".to_string()
        } else {
            clean.into_owned()
        }
    } else {
        cpu.hypervisor_vendor.name().to_lowercase()
    };
    Attrs::from([
        ("vendor_id".into(), cpu.vendor.name().into()),
        ("family".into(), cpu.family.to_string()),
        ("id".into(), cpu.model.to_string()),
        ("hypervisor".into(), hypervisor),
    ])
}

/// cpu.topology: SMT and socket count from every CPU's topology files; empty if any fails.
fn topology(roots: &HostRoots) -> Attrs {
    let devices = roots.sys.join("bus/cpu/devices");
    let cpus = match read_dir_sorted(&devices) {
        Ok(c) => c,
        Err(e) => {
            debug!(path = %devices.display(), error = %e, "cpu.topology: no cpu devices");
            return Attrs::new();
        }
    };
    let mut smt = false;
    let mut packages = BTreeSet::new();
    for cpu in cpus {
        let topo = devices.join(&cpu).join("topology");
        let (Ok(siblings), Ok(package)) = (
            std::fs::read(topo.join("thread_siblings_list")),
            std::fs::read_to_string(topo.join("physical_package_id")),
        ) else {
            debug!(
                cpu,
                "cpu.topology: cannot read topology files, feature left empty"
            );
            return Attrs::new();
        };
        smt |= siblings.iter().any(|b| *b == b',' || *b == b'-');
        packages.insert(package.trim().to_string());
    }
    Attrs::from([
        ("hardware_multithreading".into(), smt.to_string()),
        ("socket_count".into(), packages.len().to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn topology_counts_packages_and_smt() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        for (cpu, sib, pkg) in [("cpu0", "0,2\n", "0\n"), ("cpu1", "1\n", "1\n")] {
            let d = t
                .path()
                .join("sys/bus/cpu/devices")
                .join(cpu)
                .join("topology");
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("thread_siblings_list"), sib).unwrap();
            fs::write(d.join("physical_package_id"), pkg).unwrap();
        }
        let a = topology(&roots);
        assert_eq!(a["hardware_multithreading"], "true");
        assert_eq!(a["socket_count"], "2");
        fs::remove_file(
            t.path()
                .join("sys/bus/cpu/devices/cpu1/topology/physical_package_id"),
        )
        .unwrap();
        assert!(topology(&roots).is_empty());
    }

    #[test]
    fn missing_cpu_record_keeps_arch_independent_features() {
        let t = tempfile::tempdir().unwrap();
        let f = discover(&HostRoots::fixture(t.path()));
        assert!(!f.exists("cpu.cpuid"));
        assert!(!f.exists("cpu.model"));
        assert!(f.exists("cpu.topology"));
        assert!(f.exists("cpu.coprocessor"));
    }
}
