//! cpu.security (SGX, TDX, SEV) and cpu.rdt (Intel RDT) as NFD derives them on amd64.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tracing::debug;

use super::probe::Cpuid;
use super::x86::{Feature, X86Cpu};
use crate::features::host::{read_trimmed, HostRoots};

type Attrs = BTreeMap<String, String>;

/// cpu.security elements; only true facts are listed, the feature itself always exists.
pub(crate) fn security(roots: &HostRoots, cpu: &X86Cpu) -> Attrs {
    let mut out = Attrs::new();
    if cpu.has(Feature::SGX) && cpu.sgx_epc_size > 0 {
        out.insert("sgx.enabled".into(), "true".into());
        out.insert("sgx.epc".into(), cpu.sgx_epc_size.to_string());
    }
    let tdx = roots.sys.join("module/kvm_intel/parameters/tdx");
    // NFD compares the whole file with "Y\n".
    if std::fs::read(&tdx).is_ok_and(|c| c == b"Y\n") {
        out.insert("tdx.enabled".into(), "true".into());
        if let Some(keys) = misc_capacity(roots, "tdx") {
            out.insert("tdx.total_keys".into(), keys.to_string());
        }
    }
    if cpu.has(Feature::TDX_GUEST) {
        out.insert("tdx.protected".into(), "true".into());
    }
    if kvm_amd_parameter(roots, "sev") {
        out.insert("sev.enabled".into(), "true".into());
        if let Some(n) = misc_capacity(roots, "sev") {
            out.insert("sev.asids".into(), n.to_string());
        }
    }
    if kvm_amd_parameter(roots, "sev_es") {
        out.insert("sev.es.enabled".into(), "true".into());
        if let Some(n) = misc_capacity(roots, "sev_es") {
            out.insert("sev.encrypted_state_ids".into(), n.to_string());
        }
    }
    if kvm_amd_parameter(roots, "sev_snp") {
        out.insert("sev.snp.enabled".into(), "true".into());
    }
    out
}

fn kvm_amd_parameter(roots: &HostRoots, name: &str) -> bool {
    let path = roots.sys.join("module/kvm_amd/parameters").join(name);
    std::fs::read(path).is_ok_and(|c| matches!(c.first(), Some(b'1' | b'Y')))
}

/// The capacity of a misc cgroup resource: the first line of the first readable
/// misc.capacity that *starts with* `resource` (NFD's prefix match, so "sev" may also
/// match a "sev_es" line listed first).
fn misc_capacity(roots: &HostRoots, resource: &str) -> Option<i64> {
    let text = ["fs/cgroup/misc.capacity", "fs/cgroup/misc/misc.capacity"]
        .iter()
        .find_map(|rel| std::fs::read_to_string(roots.sys.join(rel)).ok())?;
    let line = text.lines().find(|l| l.starts_with(resource))?;
    line.split(' ').nth(1)?.parse().ok()
}

/// cpu.rdt: RDT monitoring/allocation capabilities from CPUID leaves 0x7, 0xf and 0x10
/// (read even past the maximum leaf, as NFD does) and the L3 CLOSID count from resctrl.
pub(crate) fn rdt(roots: &HostRoots, c: &dyn Cpuid) -> Attrs {
    let mut out = Attrs::new();
    let ext = c.cpuid(0x07, 0);
    let mon = c.cpuid(0x0f, 0);
    let mon_l3 = c.cpuid(0x0f, 1);
    let alloc = c.cpuid(0x10, 0);
    let t = || "true".to_string();
    if ext.ebx & (1 << 12) != 0 && mon.edx & (1 << 1) != 0 {
        out.insert("RDTMON".into(), t());
        if mon_l3.edx & 1 != 0 {
            out.insert("RDTCMT".into(), t());
        }
        if mon_l3.edx & 0b110 == 0b110 {
            out.insert("RDTMBM".into(), t());
        }
    }
    if ext.ebx & (1 << 15) != 0 {
        if alloc.ebx & (1 << 1) != 0 {
            out.insert("RDTL3CA".into(), t());
            if let Some(n) = l3_num_closids(roots) {
                out.insert("RDTL3CA_NUM_CLOSID".into(), (n - 1).to_string());
            }
        }
        if alloc.ebx & (1 << 2) != 0 {
            out.insert("RDTL2CA".into(), t());
        }
        if alloc.ebx & (1 << 3) != 0 {
            out.insert("RDTMBA".into(), t());
        }
    }
    out
}

fn l3_num_closids(roots: &HostRoots) -> Option<i64> {
    let root = resctrl_root(roots)?;
    let path = root.join("info/L3/num_closids");
    match read_trimmed(&path) {
        Ok(v) => v.parse().ok(),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "cpu.rdt: no num_closids");
            None
        }
    }
}

/// The resctrl mount, found like runc's `intelrdt.Root()`: /sys/fs/resctrl when resctrl is
/// mounted there, else the first resctrl mount in /proc/self/mountinfo. Both are read from
/// NFD's own view (not host-prefixed). A mounted resctrl is recognised by its `info`
/// directory rather than by filesystem magic, so fixture trees can carry one.
fn resctrl_root(roots: &HostRoots) -> Option<PathBuf> {
    let default = roots.unprefixed_path("sys/fs/resctrl");
    if !default.exists() {
        return None;
    }
    if default.join("info").is_dir() {
        return Some(default);
    }
    let mountinfo = std::fs::read_to_string(roots.unprefixed_path("proc/self/mountinfo")).ok()?;
    mountinfo.lines().find_map(|line| {
        // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> ..."
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "resctrl" {
            return None;
        }
        let mount_point = left.split(' ').nth(4)?;
        Some(roots.unprefixed_path(mount_point.trim_start_matches('/')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::cpu::probe::Regs;
    use std::fs;

    struct Leaves(Vec<((u32, u32), Regs)>);
    impl Cpuid for Leaves {
        fn cpuid(&self, leaf: u32, sub: u32) -> Regs {
            self.0
                .iter()
                .find(|(k, _)| *k == (leaf, sub))
                .map(|(_, r)| *r)
                .unwrap_or_default()
        }
        fn xgetbv0(&self) -> u64 {
            0
        }
    }

    #[test]
    fn misc_capacity_prefix_match() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        fs::create_dir_all(t.path().join("sys/fs/cgroup/misc")).unwrap();
        fs::write(
            t.path().join("sys/fs/cgroup/misc/misc.capacity"),
            "sev_es 99\nsev 509\n",
        )
        .unwrap();
        assert_eq!(misc_capacity(&roots, "sev_es"), Some(99));
        // As in NFD, "sev" matches the "sev_es" line that comes first.
        assert_eq!(misc_capacity(&roots, "sev"), Some(99));
        assert_eq!(misc_capacity(&roots, "tdx"), None);
    }

    #[test]
    fn rdt_bits_and_closids() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        let r = |eax, ebx, ecx, edx| Regs { eax, ebx, ecx, edx };
        let c = Leaves(vec![
            ((7, 0), r(0, (1 << 12) | (1 << 15), 0, 0)),
            ((0xf, 0), r(0, 0, 0, 1 << 1)),
            ((0xf, 1), r(0, 0, 0, 0b111)),
            ((0x10, 0), r(0, 0b1010, 0, 0)),
        ]);
        let a = rdt(&roots, &c);
        let keys: Vec<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(keys, ["RDTCMT", "RDTL3CA", "RDTMBA", "RDTMBM", "RDTMON"]);
        fs::create_dir_all(t.path().join("sys/fs/resctrl/info/L3")).unwrap();
        fs::write(t.path().join("sys/fs/resctrl/info/L3/num_closids"), "16\n").unwrap();
        assert_eq!(rdt(&roots, &c)["RDTL3CA_NUM_CLOSID"], "15");
    }
}
