//! Raw CPU identification: CPUID/XGETBV or getauxval run here, or the same values from a file.
//!
//! Recorded file format (`image-compat/cpu.txt` in a fixture tree), one of:
//! * x86_64: a CPUID dump in the InstLatx64/AIDA64 text form, `CPUID <leaf>: <eax>-<ebx>-<ecx>-<edx>`
//!   with an optional `[SL <subleaf>]` annotation (else subleaves count up in order of
//!   appearance); only the first logical CPU is read (up to the second `CPUID 00000000`). An
//!   `XGETBV 00000000: <eax>-<edx>` line gives XCR0 (0 when absent: no OS-enabled AVX state).
//!   Leaves not listed read as zeros.
//! * arm64: `AT_HWCAP: 0x...`, `AT_HWCAP2: 0x...` and optionally `MIDR_EL1: 0x...`.
//!
//! Other lines (comments, AIDA64 annotations) are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::features::host::CpuProbe;

/// The four registers a CPUID leaf returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Regs {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// CPUID with ECX = `subleaf`, and XGETBV(0).
pub(crate) trait Cpuid {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Regs;
    /// XCR0; only called when CPUID.1:ECX says XSAVE and OSXSAVE are set.
    fn xgetbv0(&self) -> u64;
}

/// What NFD's arm64 cpu source sees: the auxiliary vector words and, when the kernel
/// exposes ID registers (HWCAP_CPUID), MIDR_EL1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Arm64Regs {
    pub hwcap: u64,
    pub hwcap2: u64,
    pub midr: Option<u64>,
}

/// The CPU values of the host, by architecture.
pub(crate) enum CpuData {
    X86(Box<dyn Cpuid>),
    Arm64(Arm64Regs),
    /// An architecture whose cpu.cpuid NFD derives otherwise (arm, ppc64le, s390x): not probed.
    #[cfg_attr(
        any(
            target_arch = "x86_64",
            all(target_arch = "aarch64", target_os = "linux")
        ),
        allow(dead_code)
    )]
    Unsupported,
}

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("cannot read recorded CPU values {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: neither CPUID lines nor AT_HWCAP found")]
    UnknownFormat { path: PathBuf },
}

/// The CPU values per the probe setting.
pub(crate) fn probe(p: &CpuProbe) -> Result<CpuData, ProbeError> {
    match p {
        CpuProbe::Native => Ok(native()),
        CpuProbe::Recorded(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ProbeError::Read {
                path: path.clone(),
                source,
            })?;
            parse_recorded(path, &text)
        }
    }
}

/// A CPUID table: recorded leaves and XCR0.
#[derive(Debug, Default, Clone)]
pub(crate) struct CpuidTable {
    /// Absent leaves read as zeros.
    pub(crate) leaves: BTreeMap<(u32, u32), Regs>,
    pub(crate) xcr0: u64,
}

impl Cpuid for CpuidTable {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Regs {
        self.leaves
            .get(&(leaf, subleaf))
            .copied()
            .unwrap_or_default()
    }
    fn xgetbv0(&self) -> u64 {
        self.xcr0
    }
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim(), 16).ok()
}

fn parse_hex_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

pub(crate) fn parse_recorded(path: &Path, text: &str) -> Result<CpuData, ProbeError> {
    let err = |line: usize, reason: String| ProbeError::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut table = CpuidTable::default();
    let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
    let mut saw_cpuid = false;
    let mut first_cpu_done = false;
    let mut arm = Arm64Regs::default();
    let mut saw_hwcap = false;

    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix("CPUID ") {
            if first_cpu_done {
                continue;
            }
            let (leaf, rest) = rest
                .split_once(':')
                .ok_or_else(|| err(n, "expected `CPUID <leaf>: ...`".into()))?;
            let leaf = parse_hex_u32(leaf).ok_or_else(|| err(n, format!("bad leaf {leaf:?}")))?;
            if leaf == 0 && saw_cpuid {
                // The dump goes on with the next logical CPU.
                first_cpu_done = true;
                continue;
            }
            let rest = rest.trim();
            let values = rest.split_whitespace().next().unwrap_or("");
            let regs: Vec<u32> = values.split('-').filter_map(parse_hex_u32).collect();
            if regs.len() != 4 {
                return Err(err(n, format!("expected EAX-EBX-ECX-EDX, got {values:?}")));
            }
            let subleaf = match rest.split_once("[SL ") {
                Some((_, sl)) => {
                    let sl = sl.split(']').next().unwrap_or("");
                    parse_hex_u32(sl).ok_or_else(|| err(n, format!("bad subleaf {sl:?}")))?
                }
                None => *counts.get(&leaf).unwrap_or(&0),
            };
            *counts.entry(leaf).or_default() += 1;
            table.leaves.insert(
                (leaf, subleaf),
                Regs {
                    eax: regs[0],
                    ebx: regs[1],
                    ecx: regs[2],
                    edx: regs[3],
                },
            );
            saw_cpuid = true;
        } else if let Some(rest) = line.strip_prefix("XGETBV ") {
            let (_, values) = rest
                .split_once(':')
                .ok_or_else(|| err(n, "expected `XGETBV 00000000: <eax>-<edx>`".into()))?;
            let values = values.split_whitespace().next().unwrap_or("");
            let regs: Vec<u32> = values.split('-').filter_map(parse_hex_u32).collect();
            if regs.len() != 2 {
                return Err(err(n, format!("expected EAX-EDX, got {values:?}")));
            }
            table.xcr0 = u64::from(regs[0]) | (u64::from(regs[1]) << 32);
        } else if let Some((key, value)) = line.split_once(':') {
            let parse =
                |v: &str| parse_hex_u64(v).ok_or_else(|| err(n, format!("bad value {v:?}")));
            match key.trim() {
                "AT_HWCAP" => {
                    arm.hwcap = parse(value)?;
                    saw_hwcap = true;
                }
                "AT_HWCAP2" => arm.hwcap2 = parse(value)?,
                "MIDR_EL1" => arm.midr = Some(parse(value)?),
                _ => {}
            }
        }
    }
    match (saw_cpuid, saw_hwcap) {
        (true, false) => Ok(CpuData::X86(Box::new(table))),
        (false, true) => Ok(CpuData::Arm64(arm)),
        _ => Err(ProbeError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// This machine's CPU values in the recorded format, for building fixture hosts; `None` on
/// architectures that are not probed.
pub fn record_native() -> Option<String> {
    match native() {
        CpuData::X86(c) => Some(record_x86(c.as_ref())),
        CpuData::Arm64(a) => {
            let mut out = format!("AT_HWCAP: {:#x}\nAT_HWCAP2: {:#x}\n", a.hwcap, a.hwcap2);
            if let Some(midr) = a.midr {
                out.push_str(&format!("MIDR_EL1: {midr:#x}\n"));
            }
            Some(out)
        }
        CpuData::Unsupported => None,
    }
}

/// Leaves with subleaves (ECX input) that the decoding may read.
const SUBLEAF_LEAVES: [u32; 15] = [
    0x4, 0x7, 0xb, 0xd, 0xf, 0x10, 0x12, 0x14, 0x17, 0x18, 0x1d, 0x1f, 0x20, 0x23, 0x24,
];

fn record_x86(c: &dyn Cpuid) -> String {
    let mut out = String::from("# CPUID dump (first logical CPU), InstLatx64 text form\n");
    let mut line = |leaf: u32, sub: Option<u32>| {
        let r = c.cpuid(leaf, sub.unwrap_or(0));
        let sl = sub.map(|s| format!(" [SL {s:02X}]")).unwrap_or_default();
        out.push_str(&format!(
            "CPUID {leaf:08X}: {:08X}-{:08X}-{:08X}-{:08X}{sl}\n",
            r.eax, r.ebx, r.ecx, r.edx
        ));
    };
    let max = c.cpuid(0, 0).eax.min(0xff);
    for leaf in 0..=max {
        if SUBLEAF_LEAVES.contains(&leaf) {
            for sub in 0..16 {
                if sub == 0 || c.cpuid(leaf, sub) != Regs::default() {
                    line(leaf, Some(sub));
                }
            }
        } else {
            line(leaf, None);
        }
    }
    let hv_max = c.cpuid(0x4000_0000, 0).eax;
    let hv_max = if (0x4000_0000..0x4000_0100).contains(&hv_max) {
        hv_max
    } else {
        0x4000_0000
    };
    for leaf in 0x4000_0000..=hv_max {
        line(leaf, None);
    }
    let ext_max = c.cpuid(0x8000_0000, 0).eax;
    if ext_max >= 0x8000_0000 {
        for leaf in 0x8000_0000..=ext_max.min(0x8000_00ff) {
            line(leaf, None);
        }
    }
    if c.cpuid(1, 0).ecx & (1 << 27) != 0 {
        let xcr0 = c.xgetbv0();
        out.push_str(&format!(
            "XGETBV 00000000: {:08X}-{:08X}\n",
            xcr0 as u32,
            (xcr0 >> 32) as u32
        ));
    }
    out
}

#[cfg(target_arch = "x86_64")]
fn native() -> CpuData {
    CpuData::X86(Box::new(NativeCpuid))
}

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
fn native() -> CpuData {
    CpuData::Arm64(native_arm64::read())
}

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_os = "linux")
)))]
fn native() -> CpuData {
    CpuData::Unsupported
}

/// The CPUID instruction of the CPU this runs on.
#[cfg(target_arch = "x86_64")]
struct NativeCpuid;

#[cfg(target_arch = "x86_64")]
impl Cpuid for NativeCpuid {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Regs {
        // CPUID exists on every x86_64 CPU; older toolchains declare the intrinsic unsafe.
        #[allow(unused_unsafe)]
        let r = unsafe { std::arch::x86_64::__cpuid_count(leaf, subleaf) };
        Regs {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }

    fn xgetbv0(&self) -> u64 {
        #[target_feature(enable = "xsave")]
        unsafe fn xgetbv0() -> u64 {
            std::arch::x86_64::_xgetbv(0)
        }
        let osxsave = self.cpuid(1, 0).ecx & (1 << 27) != 0;
        if !osxsave {
            return 0;
        }
        // SAFETY: CPUID.1:ECX.OSXSAVE[27] says the OS enabled XSAVE, so XGETBV is available.
        unsafe { xgetbv0() }
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod native_arm64 {
    use super::Arm64Regs;

    /// HWCAP_CPUID: the kernel emulates EL0 reads of the ID registers (MIDR_EL1).
    const HWCAP_CPUID: u64 = 1 << 11;

    pub(super) fn read() -> Arm64Regs {
        // SAFETY: getauxval only reads the process's auxiliary vector.
        let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
        let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
        let midr = if hwcap & HWCAP_CPUID != 0 {
            let v: u64;
            // SAFETY: with HWCAP_CPUID the kernel traps and emulates this EL0 read.
            unsafe { std::arch::asm!("mrs {}, midr_el1", out(reg) v) };
            Some(v)
        } else {
            None
        };
        Arm64Regs {
            hwcap,
            hwcap2,
            midr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
------[ CPUID Registers / Logical CPU #0 ]------
CPUID 00000000: 00000020-756E6547-6C65746E-49656E69 [GenuineIntel]
CPUID 00000004: FC004121-02C0003F-0000003F-00000000 [SL 00] [L1D: 48 KB]
CPUID 00000004: FC004122-01C0003F-0000003F-00000000 [SL 01] [L1I: 32 KB]
CPUID 0000000D: 00000040-00000440-00000000-00000000 [SL 05] [AVX-512 Opmask]
CPUID 80000000: 80000008-00000000-00000000-00000000
XGETBV 00000000: 000602E7-00000000
------[ Logical CPU #1 ]------
CPUID 00000000: 00000001-00000000-00000000-00000000
";

    fn table(text: &str) -> Box<dyn Cpuid> {
        match parse_recorded(Path::new("t"), text) {
            Ok(CpuData::X86(t)) => t,
            Ok(_) => panic!("not x86"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn parses_instlatx64_dump_first_cpu_only() {
        let t = table(DUMP);
        assert_eq!(t.cpuid(0, 0).eax, 0x20);
        assert_eq!(t.cpuid(0, 0).ebx, 0x756e_6547);
        assert_eq!(t.cpuid(4, 1).eax, 0xfc00_4122);
        assert_eq!(t.cpuid(0xd, 5).ebx, 0x440);
        assert_eq!(t.cpuid(0xd, 4), Regs::default());
        assert_eq!(t.cpuid(0x8000_0000, 0).eax, 0x8000_0008);
        assert_eq!(t.xgetbv0(), 0x602e7);
    }

    #[test]
    fn subleaves_without_annotation_count_up() {
        let t = table("CPUID 00000007: 00000001-00000002-00000003-00000004\nCPUID 00000007: 00000005-00000006-00000007-00000008\n");
        assert_eq!(t.cpuid(7, 1).eax, 5);
        assert_eq!(t.xgetbv0(), 0);
    }

    #[test]
    fn arm64_auxv() {
        let r = parse_recorded(
            Path::new("t"),
            "# graviton\nAT_HWCAP: 0xefff\nAT_HWCAP2: 0x2\nMIDR_EL1: 0x411fd401\n",
        );
        match r {
            Ok(CpuData::Arm64(a)) => {
                assert_eq!(a.hwcap, 0xefff);
                assert_eq!(a.hwcap2, 2);
                assert_eq!(a.midr, Some(0x411f_d401));
            }
            _ => panic!("not arm64"),
        }
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers() {
        let e = parse_recorded(Path::new("t"), "CPUID 00000000: 1-2-3\n").err();
        assert!(matches!(e, Some(ProbeError::Parse { line: 1, .. })));
        let e = parse_recorded(Path::new("t"), "AT_HWCAP: zz\n").err();
        assert!(matches!(e, Some(ProbeError::Parse { line: 1, .. })));
        let e = parse_recorded(Path::new("t"), "hello\n").err();
        assert!(matches!(e, Some(ProbeError::UnknownFormat { .. })));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn native_cpuid_reports_a_vendor() {
        let c = NativeCpuid;
        let r = c.cpuid(0, 0);
        assert!(r.eax >= 1, "max basic leaf {}", r.eax);
        assert_ne!(r.ebx, 0);
    }
}
