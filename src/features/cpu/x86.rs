//! x86 CPUID decoding into klauspost/cpuid's feature names, vendor, family/model and levels.
//!
//! NFD labels and matches x86 CPUs with klauspost/cpuid/v2's `CPU.FeatureSet()` names, so
//! this module re-derives each name from the same leaf, register and bit, under the same
//! conditions (OS support via XGETBV for AVX/AVX-512, vendor checks, maximum leaves). It is a
//! pure function of the register values, so recorded CPUs decode exactly like this one.

use std::collections::BTreeSet;

use super::probe::{Cpuid, Regs};

macro_rules! x86_features {
    ($($name:ident),* $(,)?) => {
        /// One klauspost/cpuid feature; the variant name is the string NFD publishes.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) enum Feature { $($name),* }

        impl Feature {
            pub(crate) fn name(self) -> &'static str {
                match self { $(Feature::$name => stringify!($name)),* }
            }
        }
    };
}

// The x86 names klauspost/cpuid v2.4.0 (the version NFD v0.19.0 pins) can set: v2.3.0's, plus
// AVX512BMM and FRED; v2.4.0's riscv64 and arm64 additions do not apply to x86. The v2.4.0
// source was not available here: its x86 changes are taken from its release notes and PRs
// (#170 AVX512BMM, #172 FRED), which could not be read past FRED. Its ARM-only names are never
// produced on x86 and NFD uses hwcap on arm64.
x86_features!(
    ADX,
    AESNI,
    AMD3DNOW,
    AMD3DNOWEXT,
    AMXBF16,
    AMXFP16,
    AMXINT8,
    AMXFP8,
    AMXTILE,
    AMXTF32,
    AMXCOMPLEX,
    AMXTRANSPOSE,
    APX_F,
    AVX,
    AVX10,
    AVX10_128,
    AVX10_256,
    AVX10_512,
    AVX2,
    AVX512BF16,
    AVX512BITALG,
    AVX512BMM,
    AVX512BW,
    AVX512CD,
    AVX512DQ,
    AVX512ER,
    AVX512F,
    AVX512FP16,
    AVX512IFMA,
    AVX512PF,
    AVX512VBMI,
    AVX512VBMI2,
    AVX512VL,
    AVX512VNNI,
    AVX512VP2INTERSECT,
    AVX512VPOPCNTDQ,
    AVXIFMA,
    AVXNECONVERT,
    AVXSLOW,
    AVXVNNI,
    AVXVNNIINT8,
    AVXVNNIINT16,
    BHI_CTRL,
    BMI1,
    BMI2,
    CETIBT,
    CETSS,
    CLDEMOTE,
    CLMUL,
    CLZERO,
    CMOV,
    CMPCCXADD,
    CMPSB_SCADBS_SHORT,
    CMPXCHG8,
    CPBOOST,
    CPPC,
    CX16,
    EFER_LMSLE_UNS,
    ENQCMD,
    ERMS,
    F16C,
    FLUSH_L1D,
    FMA3,
    FMA4,
    FP128,
    FP256,
    FRED,
    FSRM,
    FXSR,
    FXSROPT,
    GFNI,
    HLE,
    HRESET,
    HTT,
    HWA,
    HYBRID_CPU,
    HYPERVISOR,
    IA32_ARCH_CAP,
    IA32_CORE_CAP,
    IBPB,
    IBPB_BRTYPE,
    IBRS,
    IBRS_PREFERRED,
    IBRS_PROVIDES_SMP,
    IBS,
    IBSBRNTRGT,
    IBSFETCHSAM,
    IBSFFV,
    IBSOPCNT,
    IBSOPCNTEXT,
    IBSOPSAM,
    IBSRDWROPCNT,
    IBSRIPINVALIDCHK,
    IBS_FETCH_CTLX,
    IBS_OPDATA4,
    IBS_OPFUSE,
    IBS_PREVENTHOST,
    IBS_ZEN4,
    IDPRED_CTRL,
    INT_WBINVD,
    INVLPGB,
    KEYLOCKER,
    KEYLOCKERW,
    LAHF,
    LAM,
    LBRVIRT,
    LZCNT,
    MCAOVERFLOW,
    MCDT_NO,
    MCOMMIT,
    MD_CLEAR,
    MMX,
    MMXEXT,
    MOVBE,
    MOVDIR64B,
    MOVDIRI,
    MOVSB_ZL,
    MOVU,
    MPX,
    MSRIRC,
    MSRLIST,
    MSR_PAGEFLUSH,
    NRIPS,
    NX,
    OSXSAVE,
    PCONFIG,
    POPCNT,
    PPIN,
    PREFETCHI,
    PSFD,
    RDPRU,
    RDRAND,
    RDSEED,
    RDTSCP,
    RRSBA_CTRL,
    RTM,
    RTM_ALWAYS_ABORT,
    SBPB,
    SERIALIZE,
    SEV,
    SEV_64BIT,
    SEV_ALTERNATIVE,
    SEV_DEBUGSWAP,
    SEV_ES,
    SEV_RESTRICTED,
    SEV_SNP,
    SGX,
    SGXLC,
    SGXPQC,
    SHA,
    SME,
    SME_COHERENT,
    SM3_X86,
    SM4_X86,
    SPEC_CTRL_SSBD,
    SRBDS_CTRL,
    SRSO_MSR_FIX,
    SRSO_NO,
    SRSO_USER_KERNEL_NO,
    SSE,
    SSE2,
    SSE3,
    SSE4,
    SSE42,
    SSE4A,
    SSSE3,
    STIBP,
    STIBP_ALWAYSON,
    STOSB_SHORT,
    SUCCOR,
    SVM,
    SVMDA,
    SVMFBASID,
    SVML,
    SVMNP,
    SVMPF,
    SVMPFT,
    SYSCALL,
    SYSEE,
    TDX_GUEST,
    TLB_FLUSH_NESTED,
    TME,
    TOPEXT,
    TSA_L1_NO,
    TSA_SQ_NO,
    TSA_VERW_CLEAR,
    TSCRATEMSR,
    TSXLDTRK,
    VAES,
    VMCBCLEAN,
    VMPL,
    VMSA_REGPROT,
    VMX,
    VPCLMULQDQ,
    VTE,
    WAITPKG,
    WBNOINVD,
    WRMSRNS,
    X87,
    XGETBV1,
    XOP,
    XSAVE,
    XSAVEC,
    XSAVEOPT,
    XSAVES,
    PMU_FIXEDCOUNTER_CYCLES,
    PMU_FIXEDCOUNTER_REFCYCLES,
    PMU_FIXEDCOUNTER_INSTRUCTIONS,
    PMU_FIXEDCOUNTER_TOPDOWN_SLOTS,
);

use Feature::*;

/// klauspost/cpuid's `Vendor`; `name()` is its `String()`, which NFD publishes.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vendor {
    Unknown,
    Intel,
    AMD,
    VIA,
    Transmeta,
    NSC,
    KVM,
    MSVM,
    VMware,
    XenHVM,
    Bhyve,
    Hygon,
    SiS,
    RDC,
    Ampere,
    ARM,
    Broadcom,
    Cavium,
    DEC,
    Fujitsu,
    Infineon,
    Motorola,
    NVIDIA,
    AMCC,
    Qualcomm,
    Marvell,
    QEMU,
    QNX,
    ACRN,
    SRE,
    Apple,
}

impl Vendor {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Vendor::Unknown => "VendorUnknown",
            Vendor::Intel => "Intel",
            Vendor::AMD => "AMD",
            Vendor::VIA => "VIA",
            Vendor::Transmeta => "Transmeta",
            Vendor::NSC => "NSC",
            Vendor::KVM => "KVM",
            Vendor::MSVM => "MSVM",
            Vendor::VMware => "VMware",
            Vendor::XenHVM => "XenHVM",
            Vendor::Bhyve => "Bhyve",
            Vendor::Hygon => "Hygon",
            Vendor::SiS => "SiS",
            Vendor::RDC => "RDC",
            Vendor::Ampere => "Ampere",
            Vendor::ARM => "ARM",
            Vendor::Broadcom => "Broadcom",
            Vendor::Cavium => "Cavium",
            Vendor::DEC => "DEC",
            Vendor::Fujitsu => "Fujitsu",
            Vendor::Infineon => "Infineon",
            Vendor::Motorola => "Motorola",
            Vendor::NVIDIA => "NVIDIA",
            Vendor::AMCC => "AMCC",
            Vendor::Qualcomm => "Qualcomm",
            Vendor::Marvell => "Marvell",
            Vendor::QEMU => "QEMU",
            Vendor::QNX => "QNX",
            Vendor::ACRN => "ACRN",
            Vendor::SRE => "SRE",
            Vendor::Apple => "Apple",
        }
    }

    /// klauspost/cpuid's table of CPUID vendor strings (CPU and hypervisor leaves alike).
    fn from_cpuid_string(s: &[u8]) -> Vendor {
        match s {
            b"AMDisbetter!" | b"AuthenticAMD" => Vendor::AMD,
            b"CentaurHauls" | b"VIA VIA VIA " => Vendor::VIA,
            b"GenuineIntel" => Vendor::Intel,
            b"TransmetaCPU" | b"GenuineTMx86" => Vendor::Transmeta,
            b"Geode by NSC" => Vendor::NSC,
            b"KVMKVMKVM" | b"Linux KVM Hv" => Vendor::KVM,
            b"TCGTCGTCGTCG" => Vendor::QEMU,
            b"Microsoft Hv" => Vendor::MSVM,
            b"VMwareVMware" => Vendor::VMware,
            b"XenVMMXenVMM" => Vendor::XenHVM,
            b"bhyve bhyve " => Vendor::Bhyve,
            b"HygonGenuine" => Vendor::Hygon,
            b"Vortex86 SoC" | b"SiS SiS SiS " | b"RiseRiseRise" => Vendor::SiS,
            b"Genuine  RDC" => Vendor::RDC,
            b"QNXQVMBSQG" => Vendor::QNX,
            b"ACRNACRNACRN" => Vendor::ACRN,
            b"SRESRESRESRE" => Vendor::SRE,
            b"Apple VZ" => Vendor::Apple,
            _ => Vendor::Unknown,
        }
    }
}

/// What NFD's cpu source takes from klauspost/cpuid on x86.
#[derive(Debug, Clone)]
pub(crate) struct X86Cpu {
    pub features: BTreeSet<Feature>,
    pub vendor: Vendor,
    pub family: u32,
    pub model: u32,
    pub hypervisor_vendor: Vendor,
    /// Raw hypervisor vendor string (leaf 0x4000_0000), bytes up to the first NUL.
    pub hypervisor_string: Vec<u8>,
    pub avx10_level: u8,
    /// Sum of the SGX EPC section sizes in bytes (0 without SGX).
    pub sgx_epc_size: u64,
}

impl X86Cpu {
    pub(crate) fn has(&self, f: Feature) -> bool {
        self.features.contains(&f)
    }

    /// `CPU.FeatureSet()` names.
    pub(crate) fn feature_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.features.iter().map(|f| f.name())
    }

    /// klauspost/cpuid's `X64Level()`: the x86-64 psABI microarchitecture level, 0..=4.
    pub(crate) fn x64_level(&self) -> u8 {
        const V1: &[Feature] = &[CMOV, CMPXCHG8, X87, FXSR, MMX, SSE, SSE2];
        const V2: &[Feature] = &[CX16, LAHF, POPCNT, SSE3, SSE4, SSE42, SSSE3];
        const V3: &[Feature] = &[AVX, AVX2, BMI1, BMI2, F16C, FMA3, LZCNT, MOVBE, OSXSAVE];
        const V4: &[Feature] = &[AVX512F, AVX512BW, AVX512CD, AVX512DQ, AVX512VL];
        if !self.has(SYSEE) && !self.has(SYSCALL) {
            return 0;
        }
        let all = |set: &[Feature]| set.iter().all(|f| self.has(*f));
        let mut level = 0;
        for (n, set) in [V1, V2, V3, V4].into_iter().enumerate() {
            if !all(set) {
                break;
            }
            level = n as u8 + 1;
        }
        level
    }

    /// Decodes the CPU behind `c` the way klauspost/cpuid's `Detect()` does on amd64.
    pub(crate) fn decode(c: &dyn Cpuid) -> X86Cpu {
        let max_leaf = c.cpuid(0, 0).eax;
        let vendor = vendor_of(c);
        let (family, model) = family_model(c, max_leaf);
        let mut features = support(c, max_leaf, vendor, family, model);

        let sgx_epc_size = if features.contains(&SGX) {
            sgx_epc_size(c)
        } else {
            0
        };

        if max_leaf >= 0x0a {
            pmu_features(c.cpuid(0x0a, 0), &mut features);
        }

        let hv = c.cpuid(0x4000_0000, 0);
        let hypervisor_string = regs_as_string(&[hv.ebx, hv.ecx, hv.edx]);
        let hypervisor_vendor = Vendor::from_cpuid_string(&hypervisor_string);

        let avx10_level = if max_leaf >= 0x24 && features.contains(&AVX10) {
            c.cpuid(0x24, 0).ebx as u8
        } else {
            0
        };

        X86Cpu {
            features,
            vendor,
            family,
            model,
            hypervisor_vendor,
            hypervisor_string,
            avx10_level,
            sgx_epc_size,
        }
    }
}

/// Register bytes in little-endian order up to the first NUL (klauspost's `valAsString`).
fn regs_as_string(regs: &[u32]) -> Vec<u8> {
    regs.iter()
        .flat_map(|r| r.to_le_bytes())
        .take_while(|b| *b != 0)
        .collect()
}

fn vendor_of(c: &dyn Cpuid) -> Vendor {
    let r = c.cpuid(0, 0);
    Vendor::from_cpuid_string(&regs_as_string(&[r.ebx, r.edx, r.ecx]))
}

fn family_model(c: &dyn Cpuid, max_leaf: u32) -> (u32, u32) {
    if max_leaf < 1 {
        return (0, 0);
    }
    let eax = c.cpuid(1, 0).eax;
    let mut family = (eax >> 8) & 0xf;
    // Family 6 (Intel) and 0xf use the extended model field.
    let mut extended_model = family == 0x6;
    if family == 0xf {
        family += (eax >> 20) & 0xff;
        extended_model = true;
    }
    let mut model = (eax >> 4) & 0xf;
    if extended_model {
        model += (eax >> 12) & 0xf0;
    }
    (family, model)
}

fn max_extended_leaf(c: &dyn Cpuid) -> u32 {
    c.cpuid(0x8000_0000, 0).eax
}

fn threads_per_core(c: &dyn Cpuid, max_leaf: u32, vendor: Vendor, family: u32) -> u32 {
    if max_leaf < 0x4 || (vendor != Vendor::Intel && vendor != Vendor::AMD) {
        return 1;
    }
    if max_leaf < 0xb {
        if vendor != Vendor::Intel {
            return 1;
        }
        let l1 = c.cpuid(1, 0);
        if l1.edx & (1 << 28) != 0 {
            let logical = (l1.ebx >> 16) & 0xff;
            if logical > 1 {
                let physical = (c.cpuid(4, 0).eax >> 26) + 1;
                return logical / physical;
            }
        }
        return 1;
    }
    let b = c.cpuid(0xb, 0).ebx;
    if b & 0xffff == 0 {
        if vendor == Vendor::AMD {
            let d = c.cpuid(1, 0).edx;
            // Zen and later report threads per core in leaf 0x8000_001e.
            if d & (1 << 28) != 0 && family >= 23 {
                if max_extended_leaf(c) >= 0x8000_001e {
                    return ((c.cpuid(0x8000_001e, 0).ebx >> 8) & 0xff) + 1;
                }
                return 2;
            }
        }
        return 1;
    }
    b & 0xffff
}

fn bit(reg: u32, n: u32) -> bool {
    reg & (1 << n) != 0
}

fn set_if(fs: &mut BTreeSet<Feature>, cond: bool, f: Feature) {
    if cond {
        fs.insert(f);
    }
}

/// klauspost/cpuid's `support()`: the feature flags, leaf by leaf.
fn support(c: &dyn Cpuid, mfi: u32, vendor: Vendor, family: u32, model: u32) -> BTreeSet<Feature> {
    let mut fs = BTreeSet::new();
    if mfi < 1 {
        return fs;
    }
    let Regs {
        ecx: c1, edx: d1, ..
    } = c.cpuid(1, 0);
    for (n, f) in [
        (0, X87),
        (8, CMPXCHG8),
        (11, SYSEE),
        (15, CMOV),
        (23, MMX),
        (24, FXSR),
        (25, FXSROPT),
        (25, SSE),
        (26, SSE2),
    ] {
        set_if(&mut fs, bit(d1, n), f);
    }
    for (n, f) in [
        (0, SSE3),
        (5, VMX),
        (9, SSSE3),
        (19, SSE4),
        (20, SSE42),
        (25, AESNI),
        (1, CLMUL),
        (22, MOVBE),
        (23, POPCNT),
        (30, RDRAND),
        (31, HYPERVISOR),
        (29, F16C),
        (13, CX16),
    ] {
        set_if(&mut fs, bit(c1, n), f);
    }
    if (vendor == Vendor::Intel || vendor == Vendor::AMD) && bit(d1, 28) && mfi >= 4 {
        set_if(&mut fs, threads_per_core(c, mfi, vendor, family) > 1, HTT);
    }
    // klauspost writes `c&1<<26 != 0`, which Go parses as `(c&1)<<26 != 0`: XSAVE and
    // OSXSAVE follow the SSE3 bit. NFD publishes that, so we reproduce it.
    set_if(&mut fs, bit(c1, 0), XSAVE);
    set_if(&mut fs, bit(c1, 0), OSXSAVE);

    const XSAVE_OSXSAVE: u32 = (1 << 26) | (1 << 27);
    const AVX_CHECK: u32 = XSAVE_OSXSAVE | (1 << 28);
    if c1 & AVX_CHECK == AVX_CHECK {
        // The OS must save XMM and YMM state (XCR0 bits 1 and 2).
        let xcr0 = c.xgetbv0() as u32;
        if xcr0 & 0x6 == 0x6 {
            fs.insert(AVX);
            match vendor {
                Vendor::Intel => set_if(&mut fs, family == 6 && model < 60, AVXSLOW),
                Vendor::AMD => set_if(
                    &mut fs,
                    family < 23 || (family == 23 && model < 49),
                    AVXSLOW,
                ),
                _ => {}
            }
        }
    }
    const FMA3_CHECK: u32 = (1 << 12) | (1 << 27);
    set_if(&mut fs, c1 & FMA3_CHECK == FMA3_CHECK, FMA3);

    if mfi >= 7 {
        let Regs { ebx, ecx, edx, .. } = c.cpuid(7, 0);
        if fs.contains(&AVX) && bit(ebx, 5) {
            fs.insert(AVX2);
        }
        if bit(ebx, 3) {
            fs.insert(BMI1);
            set_if(&mut fs, bit(ebx, 8), BMI2);
        }
        for (n, f) in [
            (2, SGX),
            (4, HLE),
            (9, ERMS),
            (11, RTM),
            (14, MPX),
            (18, RDSEED),
            (19, ADX),
            (29, SHA),
        ] {
            set_if(&mut fs, bit(ebx, n), f);
        }
        for (n, f) in [
            (5, WAITPKG),
            (7, CETSS),
            (8, GFNI),
            (9, VAES),
            (10, VPCLMULQDQ),
            (13, TME),
            (25, CLDEMOTE),
            (23, KEYLOCKER),
            (27, MOVDIRI),
            (28, MOVDIR64B),
            (29, ENQCMD),
            (30, SGXLC),
        ] {
            set_if(&mut fs, bit(ecx, n), f);
        }
        for (n, f) in [
            (4, FSRM),
            (9, SRBDS_CTRL),
            (10, MD_CLEAR),
            (11, RTM_ALWAYS_ABORT),
            (14, SERIALIZE),
            (15, HYBRID_CPU),
            (16, TSXLDTRK),
            (18, PCONFIG),
            (20, CETIBT),
            (26, IBPB),
            (27, STIBP),
            (28, FLUSH_L1D),
            (29, IA32_ARCH_CAP),
            (30, IA32_CORE_CAP),
            (31, SPEC_CTRL_SSBD),
        ] {
            set_if(&mut fs, bit(edx, n), f);
        }

        let Regs {
            eax: eax1,
            edx: edx1,
            ..
        } = c.cpuid(7, 1);
        let avx = fs.contains(&AVX);
        set_if(&mut fs, avx && bit(eax1, 4), AVXVNNI);
        for (n, f) in [
            (1, SM3_X86),
            (2, SM4_X86),
            (7, CMPCCXADD),
            (10, MOVSB_ZL),
            (11, STOSB_SHORT),
            (12, CMPSB_SCADBS_SHORT),
            // Flexible Return and Event Delivery (klauspost/cpuid v2.4.0, PR #172): a
            // supervisor feature, so no XCR0 condition.
            (17, FRED),
            (22, HRESET),
            (23, AVXIFMA),
            (26, LAM),
        ] {
            set_if(&mut fs, bit(eax1, n), f);
        }
        for (n, f) in [
            (4, AVXVNNIINT8),
            (5, AVXNECONVERT),
            (6, AMXTRANSPOSE),
            (7, AMXTF32),
            (8, AMXCOMPLEX),
            (10, AVXVNNIINT16),
            (14, PREFETCHI),
            (19, AVX10),
            (21, APX_F),
        ] {
            set_if(&mut fs, bit(edx1, n), f);
        }

        if c1 & XSAVE_OSXSAVE == XSAVE_OSXSAVE {
            // AVX-512 needs the OS to save opmask and ZMM state (XCR0[7:5]) besides XMM/YMM.
            let xcr0 = c.xgetbv0() as u32;
            if (xcr0 >> 5) & 7 == 7 && (xcr0 >> 1) & 3 == 3 {
                for (n, f) in [
                    (16, AVX512F),
                    (17, AVX512DQ),
                    (21, AVX512IFMA),
                    (26, AVX512PF),
                    (27, AVX512ER),
                    (28, AVX512CD),
                    (30, AVX512BW),
                    (31, AVX512VL),
                ] {
                    set_if(&mut fs, bit(ebx, n), f);
                }
                for (n, f) in [
                    (1, AVX512VBMI),
                    (3, AMXFP8),
                    (6, AVX512VBMI2),
                    (11, AVX512VNNI),
                    (12, AVX512BITALG),
                    (14, AVX512VPOPCNTDQ),
                ] {
                    set_if(&mut fs, bit(ecx, n), f);
                }
                for (n, f) in [
                    (8, AVX512VP2INTERSECT),
                    (22, AMXBF16),
                    (23, AVX512FP16),
                    (24, AMXTILE),
                    (25, AMXINT8),
                ] {
                    set_if(&mut fs, bit(edx, n), f);
                }
                for (n, f) in [(5, AVX512BF16), (19, WRMSRNS), (21, AMXFP16), (27, MSRLIST)] {
                    set_if(&mut fs, bit(eax1, n), f);
                }
            }
        }

        let edx2 = c.cpuid(7, 2).edx;
        for (n, f) in [
            (0, PSFD),
            (1, IDPRED_CTRL),
            (2, RRSBA_CTRL),
            (4, BHI_CTRL),
            (5, MCDT_NO),
        ] {
            set_if(&mut fs, bit(edx2, n), f);
        }

        if fs.contains(&SGX) {
            set_if(&mut fs, bit(c.cpuid(0x12, 0).eax, 12), SGXPQC);
        }
        if fs.contains(&KEYLOCKER) && mfi >= 0x19 {
            set_if(&mut fs, c.cpuid(0x19, 0).ebx & 5 == 5, KEYLOCKERW);
        }
        if fs.contains(&AVX10) && mfi >= 0x24 {
            let ebx = c.cpuid(0x24, 0).ebx;
            set_if(&mut fs, bit(ebx, 16), AVX10_128);
            set_if(&mut fs, bit(ebx, 17), AVX10_256);
            set_if(&mut fs, bit(ebx, 18), AVX10_512);
        }
    }

    if mfi >= 0xd && fs.contains(&XSAVE) {
        let eax = c.cpuid(0xd, 1).eax;
        set_if(&mut fs, bit(eax, 0), XSAVEOPT);
        set_if(&mut fs, bit(eax, 1), XSAVEC);
        set_if(&mut fs, bit(eax, 2), XGETBV1);
        set_if(&mut fs, bit(eax, 3), XSAVES);
    }

    let max_ext = max_extended_leaf(c);
    if max_ext >= 0x8000_0001 {
        let Regs { ecx, edx, .. } = c.cpuid(0x8000_0001, 0);
        if bit(ecx, 5) {
            fs.insert(LZCNT);
            fs.insert(POPCNT);
        }
        for (n, f) in [(0, LAHF), (2, SVM), (6, SSE4A), (10, IBS), (22, TOPEXT)] {
            set_if(&mut fs, bit(ecx, n), f);
        }
        for (n, f) in [
            (11, SYSCALL),
            (20, NX),
            (22, MMXEXT),
            (23, MMX),
            (24, FXSR),
            (25, FXSROPT),
            (27, RDTSCP),
            (30, AMD3DNOWEXT),
            (31, AMD3DNOW),
        ] {
            set_if(&mut fs, bit(edx, n), f);
        }
        // XOP and FMA4 are VEX-encoded: usable only with OS support for AVX.
        if fs.contains(&AVX) {
            set_if(&mut fs, bit(ecx, 11), XOP);
            set_if(&mut fs, bit(ecx, 16), FMA4);
        }
    }
    if max_ext >= 0x8000_0007 {
        let Regs { ebx, edx, .. } = c.cpuid(0x8000_0007, 0);
        set_if(&mut fs, bit(ebx, 0), MCAOVERFLOW);
        set_if(&mut fs, bit(ebx, 1), SUCCOR);
        set_if(&mut fs, bit(ebx, 2), HWA);
        set_if(&mut fs, bit(edx, 9), CPBOOST);
    }
    if max_ext >= 0x8000_0008 {
        let ebx = c.cpuid(0x8000_0008, 0).ebx;
        for (n, f) in [
            (28, PSFD),
            (27, CPPC),
            (24, SPEC_CTRL_SSBD),
            (23, PPIN),
            (21, TLB_FLUSH_NESTED),
            (20, EFER_LMSLE_UNS),
            (19, IBRS_PROVIDES_SMP),
            (18, IBRS_PREFERRED),
            (17, STIBP_ALWAYSON),
            (15, STIBP),
            (14, IBRS),
            (13, INT_WBINVD),
            (12, IBPB),
            (9, WBNOINVD),
            (8, MCOMMIT),
            (4, RDPRU),
            (3, INVLPGB),
            (1, MSRIRC),
            (0, CLZERO),
        ] {
            set_if(&mut fs, bit(ebx, n), f);
        }
    }
    if fs.contains(&SVM) && max_ext >= 0x8000_000a {
        let edx = c.cpuid(0x8000_000a, 0).edx;
        for (n, f) in [
            (0, SVMNP),
            (1, LBRVIRT),
            (2, SVML),
            (3, NRIPS),
            (4, TSCRATEMSR),
            (5, VMCBCLEAN),
            (6, SVMFBASID),
            (7, SVMDA),
            (10, SVMPF),
            (12, SVMPFT),
        ] {
            set_if(&mut fs, bit(edx, n), f);
        }
    }
    if max_ext >= 0x8000_001a {
        let eax = c.cpuid(0x8000_001a, 0).eax;
        set_if(&mut fs, bit(eax, 0), FP128);
        set_if(&mut fs, bit(eax, 1), MOVU);
        set_if(&mut fs, bit(eax, 2), FP256);
    }
    if max_ext >= 0x8000_001b && fs.contains(&IBS) {
        let eax = c.cpuid(0x8000_001b, 0).eax;
        for (n, f) in [
            (0, IBSFFV),
            (1, IBSFETCHSAM),
            (2, IBSOPSAM),
            (3, IBSRDWROPCNT),
            (4, IBSOPCNT),
            (5, IBSBRNTRGT),
            (6, IBSOPCNTEXT),
            (7, IBSRIPINVALIDCHK),
            (8, IBS_OPFUSE),
            (9, IBS_FETCH_CTLX),
            (10, IBS_OPDATA4),
            (11, IBS_ZEN4),
        ] {
            set_if(&mut fs, bit(eax, n), f);
        }
    }
    if max_ext >= 0x8000_001f && vendor == Vendor::AMD {
        let eax = c.cpuid(0x8000_001f, 0).eax;
        for (n, f) in [
            (0, SME),
            (1, SEV),
            (2, MSR_PAGEFLUSH),
            (3, SEV_ES),
            (4, SEV_SNP),
            (5, VMPL),
            (10, SME_COHERENT),
            (11, SEV_64BIT),
            (12, SEV_RESTRICTED),
            (13, SEV_ALTERNATIVE),
            (14, SEV_DEBUGSWAP),
            (15, IBS_PREVENTHOST),
            (16, VTE),
            (24, VMSA_REGPROT),
        ] {
            set_if(&mut fs, bit(eax, n), f);
        }
    }
    if max_ext >= 0x8000_0021 && vendor == Vendor::AMD {
        let Regs { eax, ecx, .. } = c.cpuid(0x8000_0021, 0);
        for (n, f) in [
            (31, SRSO_MSR_FIX),
            (30, SRSO_USER_KERNEL_NO),
            (29, SRSO_NO),
            (28, IBPB_BRTYPE),
            (27, SBPB),
            (23, AVX512BMM),
            (5, TSA_VERW_CLEAR),
        ] {
            set_if(&mut fs, bit(eax, n), f);
        }
        set_if(&mut fs, bit(ecx, 1), TSA_L1_NO);
        set_if(&mut fs, bit(ecx, 2), TSA_SQ_NO);
    }
    if vendor == Vendor::AMD {
        // AMD families before 19h, and some 1Ah models, are not affected by TSA but do not
        // set the CPUID bits saying so; klauspost/cpuid adds them.
        let not_affected =
            family < 0x19 || (family == 0x1a && (model <= 0x4f || (0x60..=0x7f).contains(&model)));
        if not_affected {
            fs.insert(TSA_L1_NO);
            fs.insert(TSA_SQ_NO);
        }
    }
    if mfi >= 0x20 {
        // Hyper-V hides TDX guests; its isolation leaf reports 0xbe3 in EBX for them.
        set_if(&mut fs, c.cpuid(0x4000_000c, 0).ebx == 0xbe3, TDX_GUEST);
    }
    if mfi >= 0x21 {
        let r = c.cpuid(0x21, 0);
        set_if(
            &mut fs,
            regs_as_string(&[r.ebx, r.edx, r.ecx]) == b"IntelTDX    ",
            TDX_GUEST,
        );
    }
    fs
}

/// Fixed performance counters from leaf 0xA (klauspost's `parseLeaf0AH`).
fn pmu_features(r: Regs, fs: &mut BTreeSet<Feature>) {
    let version = r.eax & 0xff;
    let fixed = if version > 1 { r.edx & 0x1f } else { 0 };
    if version == 0 {
        return;
    }
    let ebx = r.ebx;
    if ebx == 0 && (fixed == 3 || fixed == 4) {
        fs.insert(PMU_FIXEDCOUNTER_INSTRUCTIONS);
        fs.insert(PMU_FIXEDCOUNTER_CYCLES);
        fs.insert(PMU_FIXEDCOUNTER_REFCYCLES);
        if fixed == 4 {
            fs.insert(PMU_FIXEDCOUNTER_TOPDOWN_SLOTS);
        }
    }
    if ebx != 0 {
        // EBX bits say which architectural events are *unavailable*.
        set_if(fs, !bit(ebx, 0), PMU_FIXEDCOUNTER_INSTRUCTIONS);
        set_if(fs, !bit(ebx, 1), PMU_FIXEDCOUNTER_CYCLES);
        set_if(fs, !bit(ebx, 2), PMU_FIXEDCOUNTER_REFCYCLES);
        set_if(fs, !bit(ebx, 3), PMU_FIXEDCOUNTER_TOPDOWN_SLOTS);
    }
}

/// Total size of the SGX Enclave Page Cache sections (leaf 0x12, subleaves 2..10).
fn sgx_epc_size(c: &dyn Cpuid) -> u64 {
    let mut total = 0u64;
    for subleaf in 2..10 {
        let r = c.cpuid(0x12, subleaf);
        match r.eax & 0xf {
            0 => break,
            1 => {
                total += u64::from(r.ecx & 0xffff_f000) + (u64::from(r.edx & 0x000f_ffff) << 32);
            }
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::cpu::probe::CpuidTable;
    use std::collections::BTreeMap;

    fn regs(eax: u32, ebx: u32, ecx: u32, edx: u32) -> Regs {
        Regs { eax, ebx, ecx, edx }
    }

    /// "GenuineIntel", max leaf 7, family 6 model 0x55 (Skylake-SP), AVX and AVX2 advertised.
    fn skylake(xcr0: u64) -> CpuidTable {
        let mut leaves = BTreeMap::new();
        leaves.insert((0, 0), regs(7, 0x756e_6547, 0x6c65_746e, 0x4965_6e69));
        // ECX: SSE3, SSSE3, SSE4.1, SSE4.2, CX16, XSAVE, OSXSAVE, AVX, FMA, MOVBE, POPCNT, F16C.
        let ecx = 1 | 1 << 9 | 1 << 19 | 1 << 20 | 1 << 13 | 1 << 26 | 1 << 27 | 1 << 28;
        let ecx = ecx | 1 << 12 | 1 << 22 | 1 << 23 | 1 << 29;
        // EDX: FPU, CX8, SEP, CMOV, MMX, FXSR, SSE, SSE2.
        let edx = 1 | 1 << 8 | 1 << 11 | 1 << 15 | 1 << 23 | 1 << 24 | 1 << 25 | 1 << 26;
        leaves.insert((1, 0), regs(0x0005_0654, 0, ecx, edx));
        // EBX: BMI1, AVX2, BMI2, AVX512F, AVX512DQ, AVX512CD, AVX512BW, AVX512VL.
        let ebx = 1 << 3 | 1 << 5 | 1 << 8 | 1 << 16 | 1 << 17 | 1 << 28 | 1 << 30 | 1 << 31;
        leaves.insert((7, 0), regs(0, ebx, 0, 0));
        leaves.insert((0x8000_0000, 0), regs(0x8000_0001, 0, 0, 0));
        // LAHF, ABM (LZCNT); SYSCALL, NX, RDTSCP.
        leaves.insert(
            (0x8000_0001, 0),
            regs(0, 0, 1 | 1 << 5, 1 << 11 | 1 << 20 | 1 << 27),
        );
        CpuidTable { leaves, xcr0 }
    }

    fn names(cpu: &X86Cpu) -> BTreeSet<&'static str> {
        cpu.feature_names().collect()
    }

    #[test]
    fn names_are_klauspost_identifiers() {
        assert_eq!(SSE42.name(), "SSE42");
        assert_eq!(APX_F.name(), "APX_F");
        assert_eq!(
            PMU_FIXEDCOUNTER_TOPDOWN_SLOTS.name(),
            "PMU_FIXEDCOUNTER_TOPDOWN_SLOTS"
        );
        assert_eq!(Vendor::Unknown.name(), "VendorUnknown");
        assert_eq!(Vendor::XenHVM.name(), "XenHVM");
    }

    #[test]
    fn skylake_with_full_os_support_is_v4() {
        let cpu = X86Cpu::decode(&skylake(0xe7));
        let n = names(&cpu);
        for f in [
            "AVX", "AVX2", "AVX512F", "AVX512VL", "SSE4", "SSE42", "FMA3", "LZCNT",
        ] {
            assert!(n.contains(f), "{f} missing from {n:?}");
        }
        assert!(!n.contains("HYPERVISOR"));
        assert_eq!(cpu.vendor, Vendor::Intel);
        assert_eq!((cpu.family, cpu.model), (6, 0x55));
        assert_eq!(cpu.x64_level(), 4);
        // Family 6 model >= 60 is not "slow AVX".
        assert!(!n.contains("AVXSLOW"));
    }

    #[test]
    fn avx512_needs_zmm_state_in_xcr0() {
        // XMM|YMM only: AVX/AVX2 stay, AVX-512 goes, level drops to 3.
        let cpu = X86Cpu::decode(&skylake(0x7));
        let n = names(&cpu);
        assert!(n.contains("AVX2"));
        assert!(!n.contains("AVX512F"));
        assert_eq!(cpu.x64_level(), 3);
    }

    #[test]
    fn avx_needs_ymm_state_in_xcr0() {
        let cpu = X86Cpu::decode(&skylake(0x3));
        let n = names(&cpu);
        assert!(!n.contains("AVX"));
        assert!(!n.contains("AVX2"));
        // FMA3 does not depend on OS support in klauspost/cpuid.
        assert!(n.contains("FMA3"));
        assert_eq!(cpu.x64_level(), 2);
    }

    #[test]
    fn xsave_follows_sse3_as_in_klauspost() {
        let mut f = skylake(0xe7);
        if let Some(r) = f.leaves.get_mut(&(1, 0)) {
            r.ecx &= !((1 << 26) | (1 << 27) | (1 << 28));
        }
        let n = names(&X86Cpu::decode(&f));
        assert!(n.contains("XSAVE") && n.contains("OSXSAVE"));
        assert!(!n.contains("AVX"));
    }

    #[test]
    fn hypervisor_leaf() {
        let mut f = skylake(0xe7);
        if let Some(r) = f.leaves.get_mut(&(1, 0)) {
            r.ecx |= 1 << 31;
        }
        // "KVMKVMKVM\0\0\0"
        f.leaves.insert(
            (0x4000_0000, 0),
            regs(0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
        );
        let cpu = X86Cpu::decode(&f);
        assert!(cpu.has(HYPERVISOR));
        assert_eq!(cpu.hypervisor_vendor, Vendor::KVM);
        assert_eq!(cpu.hypervisor_string, b"KVMKVMKVM");
    }

    #[test]
    fn no_syscall_means_level_zero() {
        let mut f = skylake(0xe7);
        f.leaves.remove(&(0x8000_0001, 0));
        if let Some(r) = f.leaves.get_mut(&(1, 0)) {
            r.edx &= !(1 << 11);
        }
        assert_eq!(X86Cpu::decode(&f).x64_level(), 0);
    }

    #[test]
    fn amd_family_19h_gets_no_tsa_flags_without_bits() {
        let mut f = skylake(0xe7);
        f.leaves
            .insert((0, 0), regs(0x10, 0x6874_7541, 0x444d_4163, 0x6974_6e65));
        // Family 0xf + 0xa = 0x19, model 0x11.
        if let Some(r) = f.leaves.get_mut(&(1, 0)) {
            r.eax = 0x00a1_0f11;
        }
        let cpu = X86Cpu::decode(&f);
        assert_eq!(cpu.vendor, Vendor::AMD);
        assert_eq!((cpu.family, cpu.model), (25, 17));
        assert!(!cpu.has(TSA_L1_NO));
        // Family 17h: added.
        if let Some(r) = f.leaves.get_mut(&(1, 0)) {
            r.eax = 0x0083_0f10;
        }
        let cpu = X86Cpu::decode(&f);
        assert_eq!(cpu.family, 23);
        assert!(cpu.has(TSA_L1_NO) && cpu.has(TSA_SQ_NO));
    }

    #[test]
    fn pmu_fixed_counters() {
        let mut fs = BTreeSet::new();
        pmu_features(regs(0x0830_0805, 0, 0, 0x8604), &mut fs);
        assert_eq!(fs.len(), 4);
        let mut fs = BTreeSet::new();
        // Version 2, 3 fixed counters, event 1 (cycles) unavailable.
        pmu_features(regs(0x2, 0b10, 0, 0x3), &mut fs);
        assert!(!fs.contains(&PMU_FIXEDCOUNTER_CYCLES));
        assert!(fs.contains(&PMU_FIXEDCOUNTER_INSTRUCTIONS));
        let mut fs = BTreeSet::new();
        pmu_features(regs(0, 0, 0, 0x3), &mut fs);
        assert!(fs.is_empty());
    }

    #[test]
    fn fred_is_leaf_7_subleaf_1_eax_bit_17() {
        let mut f = skylake(0xe7);
        assert!(!names(&X86Cpu::decode(&f)).contains("FRED"));
        // LKGS (bit 18) is not a klauspost feature.
        f.leaves.insert((7, 1), regs(1 << 17 | 1 << 18, 0, 0, 0));
        let n = names(&X86Cpu::decode(&f));
        assert!(n.contains("FRED"));
        assert!(!n.contains("LKGS"));
        // Not read when the maximum basic leaf is below 7.
        if let Some(r) = f.leaves.get_mut(&(0, 0)) {
            r.eax = 6;
        }
        assert!(!names(&X86Cpu::decode(&f)).contains("FRED"));
    }

    #[test]
    fn sgx_epc_sections_are_summed() {
        let mut f = skylake(0xe7);
        f.leaves
            .insert((0x12, 2), regs(0x0000_0001, 0, 0x0580_0001, 0x0000_0001));
        f.leaves
            .insert((0x12, 3), regs(0x0000_0001, 0, 0x0080_0000, 0));
        assert_eq!(sgx_epc_size(&f), (0x0580_0000 + (1u64 << 32)) + 0x0080_0000);
    }
}
