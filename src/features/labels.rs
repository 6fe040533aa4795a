//! NFD v0.19.0's built-in node labels, computed from our features as nfd-worker and `nfd export labels` do.
//!
//! # Pipeline (`pkg/nfd-worker/nfd-worker.go`, `cmd/nfd/subcmd/export/labels.go`)
//!
//! Every label source's `GetLabels()` runs on the features its own discovery found; the
//! sources go in `(priority, name)` order: cpu, kernel, memory, network, pci, storage,
//! system, usb (priority 0), custom (10), local (20). For each `(key, value)` a source returns,
//! `GetFeatureLabels`:
//! 1. names it: local and custom keys are kept **as they are**; any other source's key gets
//!    `feature.node.kubernetes.io/<source>-` in front (unless it already holds a `/`);
//! 2. drops it when the name is not a valid label key or the value is not a valid label value
//!    ([`is_label_key`], [`is_label_value`]: apimachinery v0.35.3's `IsLabelKey` and
//!    `IsLabelValue`; NFD only logs this). Nothing is truncated or mangled at this step;
//! 3. drops it when `core.labelWhiteList` (default `""`, matching everything) does not match
//!    the name after its first `/`.
//!
//! The sources' maps are then merged in order, so on an equal key a later source wins
//! (local beats custom beats the built-ins). [`nfd_labels`] is that merged map, with the
//! settings of a [`LabelConfig`].
//!
//! * [`export_labels`] is what `nfd export labels` (v0.18+) computes. It loads no config and
//!   never calls `SetConfig`, so the cpu source's cpuid filter is its zero value, which lets
//!   every flag through (the default blacklist, SSE, SSE2, CMOV, ..., is labelled too); the
//!   other sources keep their built-in defaults. [`export_json`] prints it byte for byte.
//! * [`worker_labels`] is what nfd-worker publishes with its default configuration (cpuid
//!   blacklist in force), named **without** the `feature.node.kubernetes.io/` prefix, the form
//!   Proposal F's `nfd` group uses. The worker puts built-in labels in that namespace and hands
//!   local/custom keys to nfd-master raw; the master then puts every key that has no `/` in the
//!   same namespace, except when the prefixed twin also exists, which wins (`addNsToMapKeys`).
//!   [`unprefixed`] applies that rule and strips the prefix, so: a built-in label
//!   `feature.node.kubernetes.io/cpu-cpuid.AVX2` is `cpu-cpuid.AVX2`; a local/custom key
//!   without a namespace (`rdma.capable`, `my-label`) stays as it is; a local/custom key that
//!   names `feature.node.kubernetes.io/` itself loses it; a key in another namespace
//!   (`nvidia.com/gpu.present`) keeps it. The master's own checks (refused `kubernetes.io`
//!   namespaces, `-label-whitelist`, `denyLabelNs`) are not applied.
//!
//! # Per source (`source/<source>/<source>.go`, `GetLabels`)
//!
//! | source | labels (before the prefix) |
//! | --- | --- |
//! | cpu | `cpuid.<FLAG>` = `true` for each cpu.cpuid flag the cpuid filter lets through; `cpuid.<ATTR>` for each cpu.cpuid attribute (AVX10_VERSION, never filtered); `model.<k>`, `cstate.<k>`, `pstate.<k>` for every element; `security.<k>` except `tdx.total_keys`, `sgx.epc`, `sev.encrypted_state_ids`, `sev.asids`; `power.sst_<k>`; `hardware_multithreading` (from cpu.topology; not `socket_count`); `coprocessor.nx_gzip` |
//! | kernel | `version.<k>` for every kernel.version element; `config.<OPT>` for each of `configOpts` (NO_HZ NO_HZ_IDLE NO_HZ_FULL PREEMPT) that is set, with the *legacy* value (`true` for `y`/`m`); `selinux.enabled` = `true` |
//! | memory | `numa`, `swap`, `nv.present`, `nv.dax` |
//! | network | `sriov.capable`, `sriov.configured` from the physical devices only |
//! | pci | `<f1>_<f2>..present` (fields `class`, `vendor` by default), and `.sriov.capable` when the device has `sriov_totalvfs`, for devices whose class starts with a whitelisted one (`03`, `0b40`, `12`) |
//! | storage | `nonrotationaldisk` |
//! | system | `os_release.ID`, `.VERSION_ID`, `.VERSION_ID.major`, `.VERSION_ID.minor` |
//! | usb | `<class>_<vendor>_<device>.present` for classes `0e`, `ef`, `fe`, `ff` |
//! | custom | the built-in static rules only: `rdma.capable` (a pci.device with vendor 15b3), `rdma.available` (modules ib_uverbs and rdma_ucm loaded) |
//! | local | every local.label element, key and value unchanged |
//!
//! Never labels (for rules only): cpu.rdt, cpu.topology.socket_count, kernel.kvm,
//! loadedmodule, enabledmodule, memory.hugepages, memory.numa.node_count, network.virtual,
//! network mtu/speed/operstate, pci/usb attributes beyond the label fields, storage.block
//! attributes other than `rotational`, system.name, system.dmiid, local.feature. Our own
//! `compat` source (`compat.io.archspec`) is not an NFD source and makes no labels.
//!
//! # Where NFD publishes no `false` label
//!
//! There is no general rule: neither `GetFeatureLabels`, nor the merge, nor nfd-master drops
//! `"false"` values. Each source decides:
//! * **cpu**: flags only exist when set, so there is never a `cpuid.X=false`. `security.*` and
//!   `power.sst_bf.enabled` only exist when true (their discovery sets them only then).
//!   But every *attribute* is copied as it is: **`cpu-hardware_multithreading=false`**,
//!   **`cpu-cstate.enabled=false`** and **`cpu-pstate.turbo=false`** are published.
//! * **kernel**: `selinux.enabled` only when the feature is `"true"` (an explicit test);
//!   `config.<OPT>` copies the kconfig value, so `CONFIG_X=n` would be published as `n`
//!   (options that are "not set" are comments, so absent).
//! * **memory**: `numa`, `swap`, `nv.*` only when true (explicit tests on the feature values).
//! * **network**: `sriov.*` only when the count parses and is > 0.
//! * **pci / usb**: `.present` only for devices that exist; `.sriov.capable` only when the
//!   attribute exists (even `sriov_totalvfs=0` gives it: NFD tests presence, not the count).
//! * **storage**: `nonrotationaldisk` only when some disk has `rotational=0`.
//! * **system**: values copied as they are (no booleans).
//! * **custom**: a rule's labels appear only when it matches.
//! * **local**: values copied as they are: `x=false` in a features.d file is published.
//!
//! # Where we differ from NFD
//!
//! * cpu's `cpu_atom` / `cpu_core` labels: NFD reads
//!   `hostpath.SysfsDir.Path("sys/devices/cpu_atom/cpus")`, i.e. `<sys>/sys/devices/...`
//!   (`sys` twice), a path no kernel has, so NFD v0.19.0 never publishes them. We never do
//!   either; our features have no element for those files.
//! * kernel `config.<OPT>`: NFD keeps a separate "legacy" map read from the raw kconfig text;
//!   we derive it from kernel.config, whose values have `"` trimmed. The two differ only for a
//!   quoted `CONFIG_X="y"` (NFD: `y`, ours: `true`).
//! * custom: `custom.d` drop-in rules and `sources.custom` config rules are files and config,
//!   not features, and are not evaluated (none exist by default).
//! * `nfd export labels` aborts with an error (and prints no labels) when `/sys/class/net`,
//!   `/sys/bus/pci/devices` or `/sys/block` cannot be listed; our discovery omits that
//!   source's features instead, and [`export_labels`] labels what there is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use super::model::InstanceFeature;
use super::Features;

/// The namespace nfd-worker puts built-in labels in, and nfd-master unprefixed keys.
pub const FEATURE_LABEL_NS: &str = "feature.node.kubernetes.io";

/// Label names (without namespace) and values.
pub type Labels = BTreeMap<String, String>;

/// The cpu source's `attributeBlacklist` default (`source/cpu/cpu.go newDefaultConfig`).
pub const DEFAULT_CPUID_BLACKLIST: [&str; 26] = [
    "AVX10",
    "BMI1",
    "BMI2",
    "CLMUL",
    "CMOV",
    "CX16",
    "ERMS",
    "F16C",
    "HTT",
    "LZCNT",
    "MMX",
    "MMXEXT",
    "NX",
    "POPCNT",
    "RDRAND",
    "RDSEED",
    "RDTSCP",
    "SGX",
    "SGXLC",
    "SSE",
    "SSE2",
    "SSE3",
    "SSE4",
    "SSE42",
    "SSSE3",
    "TDX_GUEST",
];

/// Which cpu.cpuid flags become labels (NFD's `keyFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuidFilter {
    /// Only these names (exact, case-sensitive).
    Allow(BTreeSet<String>),
    /// Every name but these.
    Deny(BTreeSet<String>),
}

impl CpuidFilter {
    /// `initCpuidFilter`: a non-empty whitelist wins and the blacklist is then ignored.
    pub fn from_lists<S: AsRef<str>>(blacklist: &[S], whitelist: &[S]) -> Self {
        let set = |l: &[S]| l.iter().map(|s| s.as_ref().to_string()).collect();
        if whitelist.is_empty() {
            CpuidFilter::Deny(set(blacklist))
        } else {
            CpuidFilter::Allow(set(whitelist))
        }
    }

    fn passes(&self, name: &str) -> bool {
        match self {
            CpuidFilter::Allow(s) => s.contains(name),
            CpuidFilter::Deny(s) => !s.contains(name),
        }
    }
}

/// `sources.pci` / `sources.usb` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLabelConfig {
    /// A device is labelled when its class starts with one of these (lower-cased).
    pub device_class_whitelist: Vec<String>,
    /// Attributes joined with `_` into the label name; NFD reorders them into its fixed order
    /// and ignores unknown names.
    pub device_label_fields: Vec<String>,
}

/// The configuration that shapes labels: nfd-worker's `core.labelWhiteList` and the
/// `sources.*` label settings.
#[derive(Debug, Clone)]
pub struct LabelConfig {
    /// `core.labelWhiteList`, matched (unanchored) against the name after its first `/`.
    /// `None` is NFD's default `""`, which matches every name.
    pub label_whitelist: Option<Regex>,
    pub cpuid_filter: CpuidFilter,
    /// `sources.kernel.configOpts`.
    pub kernel_config_opts: Vec<String>,
    pub pci: DeviceLabelConfig,
    pub usb: DeviceLabelConfig,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl LabelConfig {
    /// nfd-worker with no config file: `SetConfig` ran with every default.
    pub fn worker_default() -> Self {
        LabelConfig {
            label_whitelist: None,
            cpuid_filter: CpuidFilter::from_lists(&DEFAULT_CPUID_BLACKLIST, &[]),
            kernel_config_opts: strings(&["NO_HZ", "NO_HZ_IDLE", "NO_HZ_FULL", "PREEMPT"]),
            pci: DeviceLabelConfig {
                device_class_whitelist: strings(&["03", "0b40", "12"]),
                device_label_fields: strings(&["class", "vendor"]),
            },
            usb: DeviceLabelConfig {
                device_class_whitelist: strings(&["0e", "ef", "fe", "ff"]),
                device_label_fields: strings(&["class", "vendor", "device"]),
            },
        }
    }

    /// `nfd export labels`: the sources' singleton defaults, but the cpuid filter is the zero
    /// `keyFilter{}` (a blacklist of nothing), since no `SetConfig` ever builds it.
    pub fn export() -> Self {
        LabelConfig {
            cpuid_filter: CpuidFilter::Deny(BTreeSet::new()),
            ..Self::worker_default()
        }
    }
}

/// nfd-worker's labels with its default configuration, without the
/// `feature.node.kubernetes.io/` prefix (see the module docs for local/custom keys).
pub fn worker_labels(f: &Features) -> Labels {
    unprefixed(&nfd_labels(f, &LabelConfig::worker_default()))
}

/// The labels `nfd export labels` prints: built-in ones fully prefixed, local/custom raw.
pub fn export_labels(f: &Features) -> Labels {
    nfd_labels(f, &LabelConfig::export())
}

/// Every label source's labels, named, validated, whitelisted and merged as
/// `createFeatureLabels` does: the map nfd-worker sends in `NodeFeature.spec.labels`.
pub fn nfd_labels(f: &Features, cfg: &LabelConfig) -> Labels {
    let sources: [(&str, Labels); 10] = [
        ("cpu", cpu(f, cfg)),
        ("kernel", kernel(f, cfg)),
        ("memory", memory(f)),
        ("network", network(f)),
        ("pci", pci(f, &cfg.pci)),
        ("storage", storage(f)),
        ("system", system(f)),
        ("usb", usb(f, &cfg.usb)),
        ("custom", custom(f)),
        ("local", local(f)),
    ];
    let mut out = Labels::new();
    for (source, labels) in sources {
        for (key, value) in labels {
            let name = if matches!(source, "local" | "custom") || key.contains('/') {
                key
            } else {
                format!("{FEATURE_LABEL_NS}/{source}-{key}")
            };
            if !is_label_key(&name) || !is_label_value(&value) {
                tracing::debug!(label = %name, value = %value, "labels: invalid label dropped, as NFD does");
                continue;
            }
            let for_whitelist = name.split_once('/').map_or(name.as_str(), |(_, n)| n);
            if let Some(re) = &cfg.label_whitelist {
                if !re.is_match(for_whitelist) {
                    continue;
                }
            }
            out.insert(name, value);
        }
    }
    out
}

/// nfd-master's `addNsToMapKeys` (a key without `/` goes into `feature.node.kubernetes.io`
/// unless its prefixed twin exists), then that namespace stripped from every key.
pub fn unprefixed(labels: &Labels) -> Labels {
    let prefix = format!("{FEATURE_LABEL_NS}/");
    let mut out = Labels::new();
    for (k, v) in labels {
        let full = if k.contains('/') {
            k.clone()
        } else {
            let fqn = format!("{prefix}{k}");
            if labels.contains_key(&fqn) {
                continue;
            }
            fqn
        };
        let name = full.strip_prefix(&prefix).unwrap_or(&full).to_string();
        out.insert(name, v.clone());
    }
    out
}

/// What `nfd export labels` prints on stdout for `labels`: Go's
/// `json.MarshalIndent(labels, "", "    ")` (keys sorted bytewise, string values, HTML-safe
/// escapes) and `fmt.Println`'s newline. (`--path` writes the same without the newline.)
pub fn export_json(labels: &Labels) -> String {
    if labels.is_empty() {
        return "{}\n".to_string();
    }
    let mut out = String::from("{\n");
    let mut first = true;
    for (k, v) in labels {
        if !first {
            out.push_str(",\n");
        }
        first = false;
        out.push_str("    ");
        go_json_string(&mut out, k);
        out.push_str(": ");
        go_json_string(&mut out, v);
    }
    out.push_str("\n}\n");
    out
}

/// Go's `encoding/json` string encoding with `escapeHTML` (Go ≥ 1.22: `\b` and `\f` short).
fn go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

static LABEL_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("constant regex is valid")
});
static DNS1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("constant regex is valid")
});
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").expect("constant regex is valid")
});

/// apimachinery's `IsLabelKey` (NFD's `validation.IsQualifiedName`): `[prefix/]name`, the
/// prefix a lower-case DNS subdomain of at most 253 bytes, the name 1..=63 bytes of
/// `[-A-Za-z0-9_.]` starting and ending alphanumeric.
pub fn is_label_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() || prefix.len() > 253 || !DNS1123_SUBDOMAIN.is_match(prefix) {
                return false;
            }
            name
        }
        _ => return false,
    };
    !name.is_empty() && name.len() <= 63 && LABEL_NAME.is_match(name)
}

/// apimachinery's `IsLabelValue`: empty, or up to 63 bytes shaped like a label name.
pub fn is_label_value(value: &str) -> bool {
    value.len() <= 63 && LABEL_VALUE.is_match(value)
}

fn attrs<'a>(f: &'a Features, name: &str) -> Option<&'a BTreeMap<String, String>> {
    f.attributes.get(name).map(|a| &a.elements)
}

fn attr<'a>(f: &'a Features, name: &str, element: &str) -> Option<&'a str> {
    attrs(f, name)?.get(element).map(String::as_str)
}

fn instances<'a>(f: &'a Features, name: &str) -> &'a [InstanceFeature] {
    f.instances.get(name).map_or(&[], |i| &i.elements[..])
}

fn copy_attrs(out: &mut Labels, f: &Features, feature: &str, prefix: &str) {
    for (k, v) in attrs(f, feature).into_iter().flatten() {
        out.insert(format!("{prefix}{k}"), v.clone());
    }
}

const TRUE: &str = "true";

fn cpu(f: &Features, cfg: &LabelConfig) -> Labels {
    let mut l = Labels::new();
    if let Some(flags) = f.flags.get("cpu.cpuid") {
        for flag in flags.elements.iter().filter(|n| cfg.cpuid_filter.passes(n)) {
            l.insert(format!("cpuid.{flag}"), TRUE.into());
        }
    }
    copy_attrs(&mut l, f, "cpu.cpuid", "cpuid.");
    copy_attrs(&mut l, f, "cpu.model", "model.");
    copy_attrs(&mut l, f, "cpu.cstate", "cstate.");
    copy_attrs(&mut l, f, "cpu.pstate", "pstate.");
    const SKIP: [&str; 4] = [
        "tdx.total_keys",
        "sgx.epc",
        "sev.encrypted_state_ids",
        "sev.asids",
    ];
    for (k, v) in attrs(f, "cpu.security").into_iter().flatten() {
        if !SKIP.contains(&k.as_str()) {
            l.insert(format!("security.{k}"), v.clone());
        }
    }
    copy_attrs(&mut l, f, "cpu.sst", "power.sst_");
    if let Some(v) = attr(f, "cpu.topology", "hardware_multithreading") {
        l.insert("hardware_multithreading".into(), v.into());
    }
    if let Some(v) = attr(f, "cpu.coprocessor", "nx_gzip") {
        l.insert("coprocessor.nx_gzip".into(), v.into());
    }
    l
}

fn kernel(f: &Features, cfg: &LabelConfig) -> Labels {
    let mut l = Labels::new();
    copy_attrs(&mut l, f, "kernel.version", "version.");
    if let Some(config) = attrs(f, "kernel.config") {
        for opt in &cfg.kernel_config_opts {
            if let Some(v) = config.get(opt) {
                let legacy = if v == "y" || v == "m" { TRUE } else { v };
                l.insert(format!("config.{opt}"), legacy.into());
            }
        }
    }
    if attr(f, "kernel.selinux", "enabled") == Some(TRUE) {
        l.insert("selinux.enabled".into(), TRUE.into());
    }
    l
}

fn memory(f: &Features) -> Labels {
    let mut l = Labels::new();
    if attr(f, "memory.numa", "is_numa") == Some(TRUE) {
        l.insert("numa".into(), TRUE.into());
    }
    // The docs say `memory-swap.enabled`; the code says `swap`.
    if attr(f, "memory.swap", "enabled") == Some(TRUE) {
        l.insert("swap".into(), TRUE.into());
    }
    let nv = instances(f, "memory.nv");
    if !nv.is_empty() {
        l.insert("nv.present".into(), TRUE.into());
    }
    if nv
        .iter()
        .any(|d| d.attributes.get("devtype").map(String::as_str) == Some("nd_dax"))
    {
        l.insert("nv.dax".into(), TRUE.into());
    }
    l
}

/// Go's `strconv.Atoi` on a 64-bit platform: optional sign, decimal digits, no spaces.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn network(f: &Features) -> Labels {
    let mut l = Labels::new();
    for dev in instances(f, "network.device") {
        for (attr, label) in [
            ("sriov_totalvfs", "sriov.capable"),
            ("sriov_numvfs", "sriov.configured"),
        ] {
            let Some(v) = dev.attributes.get(attr) else {
                continue;
            };
            match go_atoi(v) {
                Some(n) if n > 0 => {
                    l.insert(label.into(), TRUE.into());
                }
                Some(_) => {}
                None => {
                    tracing::debug!(attr, value = %v, "labels: unparsable SR-IOV count skipped, as NFD does")
                }
            }
        }
    }
    l
}

/// The label fields in NFD's fixed order; unknown names dropped; `fallback` when none is left.
fn label_fields<'a>(
    configured: &[String],
    order: &[&'a str],
    fallback: &[&'a str],
) -> Vec<&'a str> {
    let fields: Vec<&str> = order
        .iter()
        .copied()
        .filter(|a| configured.iter().any(|c| c == a))
        .collect();
    if fields.is_empty() {
        fallback.to_vec()
    } else {
        fields
    }
}

fn device_labels(
    f: &Features,
    feature: &str,
    cfg: &DeviceLabelConfig,
    fields: &[&str],
    sriov: bool,
) -> Labels {
    let mut l = Labels::new();
    for dev in instances(f, feature) {
        let a = &dev.attributes;
        let class = a.get("class").map_or("", String::as_str);
        let whitelisted = cfg
            .device_class_whitelist
            .iter()
            .any(|w| class.starts_with(&w.to_lowercase()));
        if !whitelisted {
            continue;
        }
        let name = fields
            .iter()
            .map(|f| a.get(*f).map_or("", String::as_str))
            .collect::<Vec<_>>()
            .join("_");
        l.insert(format!("{name}.present"), TRUE.into());
        if sriov && a.contains_key("sriov_totalvfs") {
            l.insert(format!("{name}.sriov.capable"), TRUE.into());
        }
    }
    l
}

fn pci(f: &Features, cfg: &DeviceLabelConfig) -> Labels {
    let fields = label_fields(
        &cfg.device_label_fields,
        &[
            "class",
            "vendor",
            "device",
            "subsystem_vendor",
            "subsystem_device",
        ],
        &["class", "vendor"],
    );
    device_labels(f, "pci.device", cfg, &fields, true)
}

fn usb(f: &Features, cfg: &DeviceLabelConfig) -> Labels {
    let fields = label_fields(
        &cfg.device_label_fields,
        &["class", "vendor", "device", "serial"],
        &["class", "vendor", "device"],
    );
    device_labels(f, "usb.device", cfg, &fields, false)
}

fn storage(f: &Features) -> Labels {
    let mut l = Labels::new();
    if instances(f, "storage.block")
        .iter()
        .any(|d| d.attributes.get("rotational").map(String::as_str) == Some("0"))
    {
        l.insert("nonrotationaldisk".into(), TRUE.into());
    }
    l
}

fn system(f: &Features) -> Labels {
    let mut l = Labels::new();
    for key in ["ID", "VERSION_ID", "VERSION_ID.major", "VERSION_ID.minor"] {
        if let Some(v) = attr(f, "system.osrelease", key) {
            l.insert(format!("os_release.{key}"), v.into());
        }
    }
    l
}

/// The custom source's built-in static rules (`source/custom/static_features.go`).
fn custom(f: &Features) -> Labels {
    let mut l = Labels::new();
    if instances(f, "pci.device")
        .iter()
        .any(|d| d.attributes.get("vendor").map(String::as_str) == Some("15b3"))
    {
        l.insert("rdma.capable".into(), TRUE.into());
    }
    if let Some(m) = f.flags.get("kernel.loadedmodule") {
        if m.elements.contains("ib_uverbs") && m.elements.contains("rdma_ucm") {
            l.insert("rdma.available".into(), TRUE.into());
        }
    }
    l
}

fn local(f: &Features) -> Labels {
    attrs(f, "local.label").cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn labels_of(l: &Labels) -> Vec<(&str, &str)> {
        l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn label_key_validation_is_apimachinerys() {
        for ok in [
            "a",
            "cpu-cpuid.AVX2",
            "feature.node.kubernetes.io/cpu-cpuid.AVX2",
            "nvidia.com/gpu.present",
            "Upper_Case.name-1",
            &"x".repeat(63),
        ] {
            assert!(is_label_key(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a b",
            "/a",
            "a/",
            "a/b/c",
            "Example.com/a",
            "ex_ample.com/a",
            &"x".repeat(64),
            &format!("{}/a", "a".repeat(254)),
        ] {
            assert!(!is_label_key(bad), "{bad}");
        }
        assert!(is_label_key(&format!("{}/a", "a".repeat(253))));
    }

    #[test]
    fn label_value_validation_is_apimachinerys() {
        for ok in [
            "",
            "true",
            "6.8.0-45-generic",
            "a",
            "A_b.c-9",
            &"v".repeat(63),
        ] {
            assert!(is_label_value(ok), "{ok}");
        }
        for bad in ["-a", "a.", "a b", "a~b", "ä", &"v".repeat(64), "x\n"] {
            assert!(!is_label_value(bad), "{bad}");
        }
    }

    fn cpu_features() -> Features {
        let mut f = Features::default();
        f.set_flags(
            "cpu.cpuid",
            ["AVX2", "SSE2", "CMOV", "X86_64_V3", "AVX512F"],
        );
        f.set_attributes("cpu.cpuid", kv(&[("AVX10_VERSION", "1")]));
        f.set_attributes(
            "cpu.model",
            kv(&[
                ("vendor_id", "Intel"),
                ("family", "6"),
                ("id", "207"),
                ("hypervisor", "none"),
            ]),
        );
        f.set_attributes("cpu.cstate", kv(&[("enabled", "false")]));
        f.set_attributes(
            "cpu.pstate",
            kv(&[("status", "passive"), ("turbo", "false")]),
        );
        f.set_attributes(
            "cpu.security",
            kv(&[
                ("sgx.enabled", "true"),
                ("sgx.epc", "1234"),
                ("tdx.total_keys", "63"),
                ("sev.asids", "99"),
                ("sev.encrypted_state_ids", "5"),
                ("sev.snp.enabled", "true"),
            ]),
        );
        f.set_attributes("cpu.sst", kv(&[("bf.enabled", "true")]));
        f.set_attributes(
            "cpu.topology",
            kv(&[("hardware_multithreading", "false"), ("socket_count", "2")]),
        );
        f.set_attributes("cpu.rdt", kv(&[("RDTMON", "true")]));
        f.set_attributes("cpu.coprocessor", kv(&[("nx_gzip", "true")]));
        f
    }

    #[test]
    fn cpu_labels_with_the_default_blacklist() {
        let l = worker_labels(&cpu_features());
        assert_eq!(
            labels_of(&l),
            [
                ("cpu-coprocessor.nx_gzip", "true"),
                ("cpu-cpuid.AVX10_VERSION", "1"),
                ("cpu-cpuid.AVX2", "true"),
                ("cpu-cpuid.AVX512F", "true"),
                ("cpu-cpuid.X86_64_V3", "true"),
                ("cpu-cstate.enabled", "false"),
                ("cpu-hardware_multithreading", "false"),
                ("cpu-model.family", "6"),
                ("cpu-model.hypervisor", "none"),
                ("cpu-model.id", "207"),
                ("cpu-model.vendor_id", "Intel"),
                ("cpu-power.sst_bf.enabled", "true"),
                ("cpu-pstate.status", "passive"),
                ("cpu-pstate.turbo", "false"),
                ("cpu-security.sev.snp.enabled", "true"),
                ("cpu-security.sgx.enabled", "true"),
            ]
        );
    }

    #[test]
    fn export_labels_every_cpuid_flag_with_the_prefix() {
        let l = export_labels(&cpu_features());
        for flag in ["SSE2", "CMOV", "AVX2"] {
            assert_eq!(
                l.get(&format!("feature.node.kubernetes.io/cpu-cpuid.{flag}"))
                    .map(String::as_str),
                Some("true")
            );
        }
        assert!(l
            .keys()
            .all(|k| k.starts_with("feature.node.kubernetes.io/cpu-")));
    }

    #[test]
    fn cpuid_whitelist_wins_over_blacklist() {
        let mut cfg = LabelConfig::worker_default();
        cfg.cpuid_filter = CpuidFilter::from_lists(&["AVX2"], &["AVX2", "SSE2"]);
        let l = nfd_labels(&cpu_features(), &cfg);
        let cpuid: Vec<&str> = l
            .keys()
            .filter_map(|k| k.strip_prefix("feature.node.kubernetes.io/cpu-cpuid."))
            .collect();
        // Attributes are never filtered.
        assert_eq!(cpuid, ["AVX10_VERSION", "AVX2", "SSE2"]);
        assert_eq!(
            CpuidFilter::from_lists::<&str>(&["A"], &[]),
            CpuidFilter::Deny(BTreeSet::from(["A".to_string()]))
        );
    }

    #[test]
    fn kernel_labels() {
        let mut f = Features::default();
        f.set_attributes(
            "kernel.version",
            kv(&[
                ("full", "6.8"),
                ("major", "6"),
                ("minor", "8"),
                ("revision", ""),
            ]),
        );
        f.set_attributes(
            "kernel.config",
            kv(&[
                ("NO_HZ", "y"),
                ("NO_HZ_IDLE", "m"),
                ("PREEMPT", "n"),
                ("HZ", "250"),
                ("PREEMPT_RT", "y"),
            ]),
        );
        f.set_attributes("kernel.selinux", kv(&[("enabled", "false")]));
        f.set_attributes("kernel.kvm", kv(&[("enabled", "true")]));
        assert_eq!(
            labels_of(&worker_labels(&f)),
            [
                ("kernel-config.NO_HZ", "true"),
                ("kernel-config.NO_HZ_IDLE", "true"),
                ("kernel-config.PREEMPT", "n"),
                ("kernel-version.full", "6.8"),
                ("kernel-version.major", "6"),
                ("kernel-version.minor", "8"),
                // An empty value is a valid label value: NFD publishes it.
                ("kernel-version.revision", ""),
            ]
        );
        f.set_attributes("kernel.selinux", kv(&[("enabled", "true")]));
        let mut cfg = LabelConfig::worker_default();
        cfg.kernel_config_opts = vec!["HZ".into(), "MISSING".into()];
        let l = unprefixed(&nfd_labels(&f, &cfg));
        assert_eq!(l["kernel-config.HZ"], "250");
        assert_eq!(l["kernel-selinux.enabled"], "true");
        assert!(!l.contains_key("kernel-config.NO_HZ"));
        assert!(!l.contains_key("kernel-config.MISSING"));
    }

    #[test]
    fn too_long_or_invalid_values_are_dropped() {
        let mut f = Features::default();
        let long = format!("6.1.0-{}", "x".repeat(60));
        f.set_attributes("kernel.version", kv(&[("full", &long)]));
        f.set_attributes(
            "system.osrelease",
            kv(&[("ID", "debian"), ("VERSION_ID", "1.2~rc1")]),
        );
        assert_eq!(
            labels_of(&worker_labels(&f)),
            [("system-os_release.ID", "debian")]
        );
    }

    #[test]
    fn memory_network_storage_labels_only_when_true() {
        let mut f = Features::default();
        f.set_attributes(
            "memory.numa",
            kv(&[("is_numa", "false"), ("node_count", "1")]),
        );
        f.set_attributes("memory.swap", kv(&[("enabled", "false")]));
        f.set_instances("memory.nv", vec![]);
        f.set_attributes("memory.hugepages", kv(&[("enabled", "true")]));
        f.set_instances(
            "network.device",
            vec![
                kv(&[
                    ("name", "eth0"),
                    ("sriov_totalvfs", "0"),
                    ("sriov_numvfs", "0"),
                    ("mtu", "9000"),
                ]),
                kv(&[("name", "eth1"), ("sriov_totalvfs", "x")]),
            ],
        );
        f.set_instances(
            "network.virtual",
            vec![kv(&[("name", "br0"), ("sriov_totalvfs", "8")])],
        );
        f.set_instances(
            "storage.block",
            vec![kv(&[("name", "sda"), ("rotational", "1")])],
        );
        assert!(worker_labels(&f).is_empty());

        f.set_attributes("memory.numa", kv(&[("is_numa", "true")]));
        f.set_attributes("memory.swap", kv(&[("enabled", "true")]));
        f.set_instances(
            "memory.nv",
            vec![kv(&[("devtype", "nd_pmem")]), kv(&[("devtype", "nd_dax")])],
        );
        f.set_instances(
            "network.device",
            vec![kv(&[("sriov_totalvfs", "+8"), ("sriov_numvfs", "0")])],
        );
        f.set_instances(
            "storage.block",
            vec![kv(&[("rotational", "1")]), kv(&[("rotational", "0")])],
        );
        assert_eq!(
            labels_of(&worker_labels(&f)),
            [
                ("memory-numa", "true"),
                ("memory-nv.dax", "true"),
                ("memory-nv.present", "true"),
                ("memory-swap", "true"),
                ("network-sriov.capable", "true"),
                ("storage-nonrotationaldisk", "true"),
            ]
        );
    }

    #[test]
    fn go_atoi_edges() {
        assert_eq!(go_atoi("8"), Some(8));
        assert_eq!(go_atoi("+8"), Some(8));
        assert_eq!(go_atoi("-1"), Some(-1));
        for bad in ["", "+", " 8", "8 ", "0x8", "1_0", "99999999999999999999"] {
            assert_eq!(go_atoi(bad), None, "{bad}");
        }
    }

    #[test]
    fn pci_and_usb_device_labels() {
        let mut f = Features::default();
        f.set_instances(
            "pci.device",
            vec![
                kv(&[
                    ("class", "0302"),
                    ("vendor", "10de"),
                    ("device", "20b5"),
                    ("sriov_totalvfs", "0"),
                ]),
                kv(&[("class", "0b40"), ("vendor", "8086"), ("device", "1234")]),
                kv(&[("class", "1200"), ("vendor", "1d0f"), ("device", "cd01")]),
                kv(&[
                    ("class", "0200"),
                    ("vendor", "15b3"),
                    ("device", "101d"),
                    ("sriov_totalvfs", "16"),
                ]),
                kv(&[("class", "0b00"), ("vendor", "8086")]),
            ],
        );
        f.set_instances(
            "usb.device",
            vec![
                kv(&[
                    ("class", "ff"),
                    ("vendor", "0403"),
                    ("device", "6001"),
                    ("serial", "A1"),
                ]),
                kv(&[("class", "0e"), ("vendor", "046d")]),
                kv(&[("class", "09"), ("vendor", "1d6b"), ("device", "0002")]),
            ],
        );
        assert_eq!(
            labels_of(&worker_labels(&f)),
            [
                ("pci-0302_10de.present", "true"),
                // Presence of sriov_totalvfs is enough, even "0".
                ("pci-0302_10de.sriov.capable", "true"),
                ("pci-0b40_8086.present", "true"),
                ("pci-1200_1d0f.present", "true"),
                ("rdma.capable", "true"),
                // A missing attribute is an empty part of the name.
                ("usb-0e_046d_.present", "true"),
                ("usb-ff_0403_6001.present", "true"),
            ]
        );

        let mut cfg = LabelConfig::worker_default();
        // Reordered to NFD's field order; unknown names ignored.
        cfg.pci.device_label_fields = vec!["device".into(), "bogus".into(), "vendor".into()];
        cfg.pci.device_class_whitelist = vec!["02".into()];
        cfg.usb.device_label_fields = vec!["bogus".into()];
        cfg.usb.device_class_whitelist = vec!["FF".into()];
        let l = unprefixed(&nfd_labels(&f, &cfg));
        assert_eq!(l["pci-15b3_101d.present"], "true");
        assert_eq!(l["pci-15b3_101d.sriov.capable"], "true");
        assert_eq!(l["usb-ff_0403_6001.present"], "true", "fallback fields");
        assert_eq!(l.keys().filter(|k| k.starts_with("pci-")).count(), 2);
    }

    #[test]
    fn system_labels() {
        let mut f = Features::default();
        f.set_attributes(
            "system.osrelease",
            kv(&[
                ("ID", "ubuntu"),
                ("VERSION_ID", "24.04"),
                ("VERSION_ID.major", "24"),
                ("VERSION_ID.minor", "04"),
                ("NAME", "Ubuntu"),
            ]),
        );
        f.set_attributes("system.dmiid", kv(&[("sys_vendor", "Amazon EC2")]));
        f.set_attributes("system.name", kv(&[("nodename", "n1")]));
        assert_eq!(
            labels_of(&worker_labels(&f)),
            [
                ("system-os_release.ID", "ubuntu"),
                ("system-os_release.VERSION_ID", "24.04"),
                ("system-os_release.VERSION_ID.major", "24"),
                ("system-os_release.VERSION_ID.minor", "04"),
            ]
        );
    }

    #[test]
    fn rdma_available_needs_both_modules() {
        let mut f = Features::default();
        f.set_flags("kernel.loadedmodule", ["ib_uverbs"]);
        assert!(worker_labels(&f).is_empty());
        f.set_flags("kernel.loadedmodule", ["ib_uverbs", "rdma_ucm"]);
        assert_eq!(labels_of(&export_labels(&f)), [("rdma.available", "true")]);
    }

    #[test]
    fn local_labels_keep_their_keys_and_win() {
        let mut f = Features::default();
        f.set_flags("kernel.loadedmodule", ["ib_uverbs", "rdma_ucm"]);
        f.set_attributes("system.osrelease", kv(&[("ID", "rhel")]));
        f.set_attributes(
            "local.label",
            kv(&[
                ("vendor.com/thing", "x"),
                ("plain", "false"),
                ("rdma.available", "no"),
                // Same key as the system label once prefixed: local, later, wins.
                ("feature.node.kubernetes.io/system-os_release.ID", "custom"),
                // An unprefixed twin of a prefixed key loses on the master.
                ("system-os_release.ID", "loses"),
                ("bad key", "x"),
                ("ok", "bad value"),
            ]),
        );
        let raw = export_labels(&f);
        assert_eq!(
            labels_of(&raw),
            [
                ("feature.node.kubernetes.io/system-os_release.ID", "custom"),
                ("plain", "false"),
                ("rdma.available", "no"),
                ("system-os_release.ID", "loses"),
                ("vendor.com/thing", "x"),
            ]
        );
        assert_eq!(
            labels_of(&worker_labels(&f)),
            [
                ("plain", "false"),
                ("rdma.available", "no"),
                ("system-os_release.ID", "custom"),
                ("vendor.com/thing", "x"),
            ]
        );
    }

    #[test]
    fn label_whitelist_matches_the_name_after_the_namespace() {
        let mut f = cpu_features();
        f.set_attributes(
            "local.label",
            kv(&[("vendor.com/cpu-x", "1"), ("other", "2")]),
        );
        let mut cfg = LabelConfig::worker_default();
        cfg.label_whitelist = Some(Regex::new("^cpu-model").unwrap());
        let l = nfd_labels(&f, &cfg);
        let names: Vec<&str> = l.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "feature.node.kubernetes.io/cpu-model.family",
                "feature.node.kubernetes.io/cpu-model.hypervisor",
                "feature.node.kubernetes.io/cpu-model.id",
                "feature.node.kubernetes.io/cpu-model.vendor_id",
            ]
        );
        cfg.label_whitelist = Some(Regex::new("x$").unwrap());
        let l = nfd_labels(&f, &cfg);
        assert_eq!(l.keys().collect::<Vec<_>>(), ["vendor.com/cpu-x"]);
    }

    /// Each fixture host's expected.json features against its expected-labels.json
    /// ([`worker_labels`], printed like [`export_json`]) and expected-export-labels.json (the
    /// bytes `nfd export labels` prints). `IMAGE_COMPAT_BLESS=1` rewrites them.
    #[test]
    fn fixture_hosts_labels() {
        let hosts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts");
        let mut checked = Vec::new();
        for entry in std::fs::read_dir(&hosts).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(json) = std::fs::read_to_string(dir.join("expected.json")) else {
                continue;
            };
            let f: Features = serde_json::from_str(&json).unwrap();
            for (file, got) in [
                ("expected-labels.json", export_json(&worker_labels(&f))),
                (
                    "expected-export-labels.json",
                    export_json(&export_labels(&f)),
                ),
            ] {
                let path = dir.join(file);
                if std::env::var_os("IMAGE_COMPAT_BLESS").is_some() {
                    std::fs::write(&path, &got).unwrap();
                }
                let want = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(got, want, "{}", path.display());
            }
            checked.push(dir.file_name().unwrap().to_string_lossy().into_owned());
        }
        checked.sort();
        assert_eq!(checked, ["arm64-graviton", "minimal-vm", "x86-server"]);
    }

    #[test]
    fn export_json_is_gos_marshal_indent() {
        assert_eq!(export_json(&Labels::new()), "{}\n");
        let l = Labels::from([
            (
                "feature.node.kubernetes.io/cpu-cpuid.AVX".into(),
                "true".into(),
            ),
            ("b".into(), "".into()),
            ("a".into(), "x".into()),
        ]);
        assert_eq!(
            export_json(&l),
            "{\n    \"a\": \"x\",\n    \"b\": \"\",\n    \"feature.node.kubernetes.io/cpu-cpuid.AVX\": \"true\"\n}\n"
        );
        // Escapes that validated labels never need, as Go writes them.
        let odd = Labels::from([("k".into(), "<a&b>\"\\\n\t\u{1}\u{8}\u{c}\u{2028}é".into())]);
        assert_eq!(
            export_json(&odd),
            "{\n    \"k\": \"\\u003ca\\u0026b\\u003e\\\"\\\\\\n\\t\\u0001\\b\\f\\u2028é\"\n}\n"
        );
    }
}
