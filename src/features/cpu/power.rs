//! cpu.cstate, cpu.pstate and cpu.sst: idle driver, intel_pstate and SST-BF as NFD reads them on amd64.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::PathBuf;

use thiserror::Error;
use tracing::{debug, warn};

use super::probe::Cpuid;
use crate::features::host::{read_dir_sorted, read_trimmed, HostRoots};

type Attrs = BTreeMap<String, String>;

/// cpu.cstate: `None` (feature absent) where NFD's detectCstate returns an error.
pub(crate) fn cstate(roots: &HostRoots) -> Option<Attrs> {
    let mut out = Attrs::new();
    let base = roots.sys.join("devices/system/cpu");
    if let Err(e) = std::fs::metadata(&base) {
        debug!(path = %base.display(), error = %e, "cpu.cstate: no cpu sysfs");
        return None;
    }
    let cpuidle = base.join("cpuidle");
    if matches!(std::fs::metadata(&cpuidle), Err(e) if e.kind() == ErrorKind::NotFound) {
        debug!("cpu.cstate: cpuidle disabled in the kernel");
        return Some(out);
    }
    let driver_path = cpuidle.join("current_driver");
    let driver = match read_trimmed(&driver_path) {
        Ok(d) => d,
        Err(e) => {
            debug!(path = %driver_path.display(), error = %e, "cpu.cstate: cannot read cpuidle driver");
            return None;
        }
    };
    if driver != "intel_idle" {
        debug!(driver, "cpu.cstate: intel_idle not in use");
        return Some(out);
    }
    let max_path = roots.sys.join("module/intel_idle/parameters/max_cstate");
    let max = match read_trimmed(&max_path) {
        Ok(v) => v,
        Err(e) => {
            debug!(path = %max_path.display(), error = %e, "cpu.cstate: cannot read max_cstate");
            return None;
        }
    };
    match max.parse::<i64>() {
        Ok(n) => {
            out.insert("enabled".into(), (n > 0).to_string());
            Some(out)
        }
        Err(_) => {
            warn!(path = %max_path.display(), value = %max, "skipping malformed file: not an integer");
            None
        }
    }
}

/// cpu.pstate: always present, empty when intel_pstate is absent, off or unreadable.
pub(crate) fn pstate(roots: &HostRoots) -> Attrs {
    let mut out = Attrs::new();
    let base = roots.sys.join("devices/system/cpu");
    if let Err(e) = std::fs::metadata(&base) {
        debug!(path = %base.display(), error = %e, "cpu.pstate: no cpu sysfs");
        return out;
    }
    let dir = base.join("intel_pstate");
    if matches!(std::fs::metadata(&dir), Err(e) if e.kind() == ErrorKind::NotFound) {
        debug!("cpu.pstate: intel_pstate driver not enabled");
        return out;
    }
    let status = match read_trimmed(&dir.join("status")) {
        Ok(s) => s,
        Err(e) => {
            debug!(error = %e, "cpu.pstate: cannot read intel_pstate status");
            return out;
        }
    };
    if status == "off" {
        return out;
    }
    out.insert("status".into(), status.clone());

    let no_turbo = dir.join("no_turbo");
    match std::fs::read(&no_turbo) {
        Ok(bytes) => match bytes.first() {
            Some(b) => {
                out.insert("turbo".into(), (*b == b'0').to_string());
            }
            None => warn!(path = %no_turbo.display(), "skipping malformed file: empty"),
        },
        Err(e) => {
            debug!(path = %no_turbo.display(), error = %e, "cpu.pstate: cannot read no_turbo")
        }
    }
    if status != "active" {
        return out;
    }

    let cpufreq = base.join("cpufreq");
    let policies = match read_dir_sorted(&cpufreq) {
        Ok(p) => p,
        Err(e) => {
            debug!(path = %cpufreq.display(), error = %e, "cpu.pstate: no cpufreq policies");
            return out;
        }
    };
    let mut governor = String::new();
    for policy in policies {
        let dir = cpufreq.join(&policy);
        match read_trimmed(&dir.join("affected_cpus")) {
            Ok(cpus) if !cpus.is_empty() => {}
            _ => continue,
        }
        let Ok(g) = read_trimmed(&dir.join("scaling_governor")) else {
            continue;
        };
        // NFD publishes a governor only when all policies in use agree.
        if !governor.is_empty() && governor != g {
            governor.clear();
            break;
        }
        governor = g;
    }
    if !governor.is_empty() {
        out.insert("scaling_governor".into(), governor);
    }
    out
}

/// Why SST-BF could not be decided (NFD then leaves cpu.sst empty).
#[derive(Debug, Error)]
enum SstError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an integer")]
    Malformed { path: PathBuf },
    #[error("nominal base frequency (CPUID 0x16) is missing")]
    NoNominalFrequency,
}

/// cpu.sst: `bf.enabled` when some CPU's base frequency exceeds the nominal one (CPUID 0x16).
pub(crate) fn sst(roots: &HostRoots, cpuid: &dyn Cpuid) -> Attrs {
    let mut out = Attrs::new();
    match sst_bf(roots, cpuid) {
        Ok(true) => {
            out.insert("bf.enabled".into(), "true".into());
        }
        Ok(false) => {}
        Err(e) => debug!(error = %e, "cpu.sst: cannot detect SST-BF"),
    }
    out
}

fn sst_bf(roots: &HostRoots, cpuid: &dyn Cpuid) -> Result<bool, SstError> {
    let nominal_mhz = i64::from(cpuid.cpuid(0x16, 0).eax);
    let devices = roots.sys.join("bus/cpu/devices");
    let cpus = read_dir_sorted(&devices).map_err(|source| SstError::Read {
        path: devices.clone(),
        source,
    })?;
    for cpu in cpus {
        let path = devices.join(&cpu).join("cpufreq/base_frequency");
        let text = match read_trimmed(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(source) => return Err(SstError::Read { path, source }),
        };
        let khz: i64 = match text.parse() {
            Ok(v) => v,
            Err(_) => {
                warn!(path = %path.display(), value = %text, "skipping malformed file: not an integer");
                return Err(SstError::Malformed { path });
            }
        };
        if nominal_mhz == 0 {
            return Err(SstError::NoNominalFrequency);
        }
        if khz / 1000 > nominal_mhz {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::cpu::probe::Regs;
    use std::fs;
    use std::path::Path;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(p, content).unwrap();
    }

    struct Leaf16(u32);
    impl Cpuid for Leaf16 {
        fn cpuid(&self, leaf: u32, _: u32) -> Regs {
            Regs {
                eax: if leaf == 0x16 { self.0 } else { 0 },
                ..Regs::default()
            }
        }
        fn xgetbv0(&self) -> u64 {
            0
        }
    }

    #[test]
    fn cstate_intel_idle() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        assert_eq!(cstate(&roots), None, "no cpu sysfs: absent");
        write(t.path(), "sys/devices/system/cpu/online", "0-3\n");
        assert_eq!(cstate(&roots), Some(Attrs::new()), "no cpuidle: empty");
        write(
            t.path(),
            "sys/devices/system/cpu/cpuidle/current_driver",
            "acpi_idle\n",
        );
        assert_eq!(cstate(&roots), Some(Attrs::new()));
        write(
            t.path(),
            "sys/devices/system/cpu/cpuidle/current_driver",
            "intel_idle\n",
        );
        assert_eq!(cstate(&roots), None, "no max_cstate: absent");
        write(
            t.path(),
            "sys/module/intel_idle/parameters/max_cstate",
            "9\n",
        );
        assert_eq!(cstate(&roots).unwrap()["enabled"], "true");
        write(
            t.path(),
            "sys/module/intel_idle/parameters/max_cstate",
            "0\n",
        );
        assert_eq!(cstate(&roots).unwrap()["enabled"], "false");
        write(
            t.path(),
            "sys/module/intel_idle/parameters/max_cstate",
            "x\n",
        );
        assert_eq!(cstate(&roots), None);
    }

    #[test]
    fn pstate_governor_agreement() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        write(
            t.path(),
            "sys/devices/system/cpu/intel_pstate/status",
            "active\n",
        );
        write(
            t.path(),
            "sys/devices/system/cpu/intel_pstate/no_turbo",
            "0\n",
        );
        for (p, g) in [("policy0", "performance"), ("policy1", "performance")] {
            write(
                t.path(),
                &format!("sys/devices/system/cpu/cpufreq/{p}/affected_cpus"),
                "0\n",
            );
            write(
                t.path(),
                &format!("sys/devices/system/cpu/cpufreq/{p}/scaling_governor"),
                &format!("{g}\n"),
            );
        }
        let p = pstate(&roots);
        assert_eq!(p["status"], "active");
        assert_eq!(p["turbo"], "true");
        assert_eq!(p["scaling_governor"], "performance");
        write(
            t.path(),
            "sys/devices/system/cpu/cpufreq/policy1/scaling_governor",
            "powersave\n",
        );
        assert!(!pstate(&roots).contains_key("scaling_governor"));
        // A policy without CPUs does not count.
        write(
            t.path(),
            "sys/devices/system/cpu/cpufreq/policy1/affected_cpus",
            "\n",
        );
        assert_eq!(pstate(&roots)["scaling_governor"], "performance");
        write(
            t.path(),
            "sys/devices/system/cpu/intel_pstate/status",
            "passive\n",
        );
        write(
            t.path(),
            "sys/devices/system/cpu/intel_pstate/no_turbo",
            "1\n",
        );
        let p = pstate(&roots);
        assert_eq!(p["turbo"], "false");
        assert!(!p.contains_key("scaling_governor"));
        write(
            t.path(),
            "sys/devices/system/cpu/intel_pstate/status",
            "off\n",
        );
        assert!(pstate(&roots).is_empty());
    }

    #[test]
    fn sst_bf_compares_base_frequencies() {
        let t = tempfile::tempdir().unwrap();
        let roots = HostRoots::fixture(t.path());
        write(
            t.path(),
            "sys/bus/cpu/devices/cpu0/cpufreq/base_frequency",
            "2100000\n",
        );
        assert!(sst(&roots, &Leaf16(2100)).is_empty());
        write(
            t.path(),
            "sys/bus/cpu/devices/cpu1/cpufreq/base_frequency",
            "2700000\n",
        );
        assert_eq!(sst(&roots, &Leaf16(2100))["bf.enabled"], "true");
        assert!(
            sst(&roots, &Leaf16(0)).is_empty(),
            "no nominal frequency: error, empty"
        );
    }
}
