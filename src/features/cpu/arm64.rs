//! arm64 CPU identification as NFD publishes it: AT_HWCAP/AT_HWCAP2 names and MIDR_EL1 fields.

use super::probe::Arm64Regs;
use super::x86::Vendor;

/// AT_HWCAP bit i is named `HWCAP_NAMES[i]` (Linux arch/arm64/include/uapi/asm/hwcap.h, as
/// NFD's cpuid_linux_arm64.go lists them). Bits past the table are not published by NFD.
const HWCAP_NAMES: [&str; 32] = [
    "FP", "ASIMD", "EVTSTRM", "AES", "PMULL", "SHA1", "SHA2", "CRC32", "ATOMICS", "FPHP",
    "ASIMDHP", "CPUID", "ASIMDRDM", "JSCVT", "FCMA", "LRCPC", "DCPOP", "SHA3", "SM3", "SM4",
    "ASIMDDP", "SHA512", "SVE", "ASIMDFHM", "DIT", "USCAT", "ILRCPC", "FLAGM", "SSBS", "SB",
    "PACA", "PACG",
];

/// AT_HWCAP2 bit i is named `HWCAP2_NAMES[i]`.
const HWCAP2_NAMES: [&str; 34] = [
    "DCPODP",
    "SVE2",
    "SVEAES",
    "SVEPMULL",
    "SVEBITPERM",
    "SVESHA3",
    "SVESM4",
    "FLAGM2",
    "FRINT",
    "SVEI8MM",
    "SVEF32MM",
    "SVEF64MM",
    "SVEBF16",
    "I8MM",
    "BF16",
    "DGH",
    "RNG",
    "BTI",
    "MTE",
    "ECV",
    "AFP",
    "RPRES",
    "MTE3",
    "SME",
    "SMEI16I64",
    "SMEF64F64",
    "SMEI8I32",
    "SMEF16F32",
    "SMEB16F32",
    "SMEF32F32",
    "SMEFA64",
    "WFXT",
    "EBF16",
    "SVEEBF16",
];

/// The cpu.cpuid flag names of the set bits of AT_HWCAP and AT_HWCAP2.
pub(crate) fn hwcap_names(hwcap: u64, hwcap2: u64) -> Vec<&'static str> {
    let set = |word: u64, names: &'static [&'static str]| {
        names
            .iter()
            .enumerate()
            .filter(move |(i, _)| word & (1u64 << i) != 0)
            .map(|(_, n)| *n)
    };
    set(hwcap, &HWCAP_NAMES)
        .chain(set(hwcap2, &HWCAP2_NAMES))
        .collect()
}

/// cpu.model as klauspost/cpuid fills it on arm64: vendor from the MIDR implementer byte,
/// "family" = MIDR bits 23..16 (variant and architecture), "model" = bits 15..0 (part number
/// and revision). Without MIDR (no HWCAP_CPUID) it stays unknown, 0, 0.
pub(crate) fn model(regs: &Arm64Regs) -> (Vendor, u64, u64) {
    let Some(midr) = regs.midr else {
        return (Vendor::Unknown, 0, 0);
    };
    let vendor = match (midr >> 24) & 0xff {
        0xc0 => Vendor::Ampere,
        0x41 => Vendor::ARM,
        0x42 => Vendor::Broadcom,
        0x43 => Vendor::Cavium,
        0x44 => Vendor::DEC,
        0x46 => Vendor::Fujitsu,
        0x49 => Vendor::Infineon,
        0x4d => Vendor::Motorola,
        0x4e => Vendor::NVIDIA,
        0x50 => Vendor::AMCC,
        0x51 => Vendor::Qualcomm,
        0x56 => Vendor::Marvell,
        0x69 => Vendor::Intel,
        _ => Vendor::Unknown,
    };
    (vendor, (midr >> 16) & 0xff, midr & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwcap_bits_map_to_nfd_names() {
        assert_eq!(hwcap_names(0b11, 0), vec!["FP", "ASIMD"]);
        assert_eq!(hwcap_names(1 << 11 | 1 << 31, 0), vec!["CPUID", "PACG"]);
        assert_eq!(hwcap_names(0, 1 << 1 | 1 << 33), vec!["SVE2", "SVEEBF16"]);
        // Bits NFD does not name (e.g. HWCAP_GCS, bit 32) are dropped.
        assert!(hwcap_names(1 << 32, 1 << 40).is_empty());
    }

    #[test]
    fn midr_fields() {
        let r = Arm64Regs {
            hwcap: 1 << 11,
            hwcap2: 0,
            midr: Some(0x411f_d401),
        };
        assert_eq!(model(&r), (Vendor::ARM, 0x1f, 0xd401));
        let r = Arm64Regs {
            midr: Some(0xc00f_ac31),
            ..r
        };
        assert_eq!(model(&r).0.name(), "Ampere");
        assert_eq!(model(&Arm64Regs::default()), (Vendor::Unknown, 0, 0));
    }
}
