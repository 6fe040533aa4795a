//! The archspec CPU microarchitecture database, and the host's target found as archspec's Python `detect.py` finds it.
//!
//! The database is archspec-json's `cpu/microarchitectures.json` at commit 90b453f, embedded
//! (`archspec/README.md` beside this file says where it came from; Apache-2.0 OR MIT). Targets
//! are kept in the order Python's `TARGETS` has them: the JSON's keys in file order, each
//! target's parents inserted before it. That order decides ties, as Python's `max` keeps the
//! first maximal element.
//!
//! Detection ([`detect`], [`host_target`]) follows `archspec/cpu/detect.py` on Linux for
//! x86_64 and aarch64:
//! 1. `/proc/cpuinfo`, first processor block only: lines are split at the first `:` and both
//!    sides stripped; reading stops at the first line without `:` once something was read.
//!    x86_64 takes `vendor_id` (`generic` when missing) and the `flags` words; aarch64 takes
//!    `CPU implementer` through the database's `arm_vendors` table (the raw code when unknown,
//!    `generic` when missing), the `Features` words and `CPU part`. As in
//!    `Microarchitecture.__init__`, a feature set with `ssse3` also gets `sse3` (Linux calls
//!    SSE3 `pni`): this holds for the host and for every database target. An unreadable file
//!    gives Python's fallback, a generic CPU with no features.
//! 2. Candidates, in database order: x86_64: descendants of `x86_64` (or itself) whose vendor
//!    is the host's or `generic` and whose features are all on the host; aarch64: the same
//!    within the `aarch64` family, except that generic targets other than `aarch64` itself
//!    (armv8.x/armv9.x) are never candidates.
//! 3. The best generic candidate is the first with the most ancestors, then the most
//!    features. If the host has a `CPU part` that some candidate has, only those stay. Only
//!    strict descendants of the best generic stay. None left: the best generic; else the first
//!    with the most ancestors, then the most features.
//!
//! Other architectures (ppc64le's POWER generations, riscv64) are not detected here.
//!
//! A target runs code built for itself and for each of its ancestors ([`is_compatible`]).
//! Names are the database's, with two aliases accepted in queries: `arm64` for `aarch64`
//! (Proposal F's `io.archspec` example says `"target": "arm64"`, the Go/OCI name; archspec
//! has no such target) and `amd64` for `x86_64`. Detection never returns an alias.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::LazyLock;

use serde_json::{Map, Value};
use thiserror::Error;
use tracing::warn;

use super::cpu::probe::{self, CpuData};
use super::host::{CpuProbe, HostRoots};

/// archspec-json `cpu/microarchitectures.json`, commit 90b453f.
const MICROARCHITECTURES_JSON: &str = include_str!("archspec/microarchitectures.json");

/// Names accepted in queries for a database target.
const ALIASES: [(&str, &str); 2] = [("arm64", "aarch64"), ("amd64", "x86_64")];

/// A name that is neither a database target nor an alias.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown archspec target {name:?}")]
pub struct UnknownTarget {
    pub name: String,
}

#[derive(Debug, Error)]
pub enum DetectError {
    #[error("archspec detection does not cover this machine's architecture")]
    UnsupportedMachine,
    #[error("cannot tell the recorded CPU's architecture: {0}")]
    Probe(#[from] probe::ProbeError),
}

/// The architectures whose detection is implemented (Python's `platform.machine()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
}

impl Machine {
    /// The family root's name, as `uname -m` says it.
    pub fn name(self) -> &'static str {
        match self {
            Machine::X86_64 => "x86_64",
            Machine::Aarch64 => "aarch64",
        }
    }

    /// The machine this program runs on, if detection covers it.
    pub fn native() -> Option<Machine> {
        if cfg!(target_arch = "x86_64") {
            Some(Machine::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Machine::Aarch64)
        } else {
            None
        }
    }
}

/// One microarchitecture of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    name: String,
    vendor: String,
    features: BTreeSet<String>,
    cpu_part: String,
    generation: u64,
    parents: Vec<usize>,
    /// Python's `ancestors`: parents, then each parent's ancestors not yet listed.
    ancestors: Vec<usize>,
}

impl Target {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `generic`, `GenuineIntel`, `AuthenticAMD`, `ARM`, `Ampere`, ...
    pub fn vendor(&self) -> &str {
        &self.vendor
    }

    /// The target's complete feature list (with `sse3` added where `ssse3` is).
    pub fn features(&self) -> &BTreeSet<String> {
        &self.features
    }

    /// aarch64 `CPU part` (`0xd40`), empty elsewhere.
    pub fn cpu_part(&self) -> &str {
        &self.cpu_part
    }

    /// POWER generation, 0 elsewhere.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// What detection reads of the host CPU (Python's partial `Microarchitecture`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCpu {
    pub vendor: String,
    pub features: BTreeSet<String>,
    pub cpu_part: String,
}

impl HostCpu {
    /// Python's fallback when cpuinfo cannot be read: `generic_microarchitecture(machine)`.
    pub fn generic() -> Self {
        HostCpu {
            vendor: "generic".into(),
            ..HostCpu::default()
        }
    }
}

/// The database: targets in Python's `TARGETS` order.
#[derive(Debug, Clone)]
pub struct Database {
    targets: Vec<Target>,
    index: HashMap<String, usize>,
    /// `conversions.arm_vendors`: `CPU implementer` code -> vendor.
    arm_vendors: HashMap<String, String>,
}

static DATABASE: LazyLock<Database> = LazyLock::new(|| {
    Database::from_json(MICROARCHITECTURES_JSON)
        .expect("the embedded microarchitectures.json is valid (checked by a unit test)")
});

/// The embedded database.
pub fn database() -> &'static Database {
    &DATABASE
}

/// Python's `str.isspace()` for the characters `strip()` and `split()` remove.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

fn py_words(s: &str) -> BTreeSet<String> {
    s.split(py_space)
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// `Microarchitecture.__init__`: ssse3 implies sse3.
fn with_sse3(mut features: BTreeSet<String>) -> BTreeSet<String> {
    if features.contains("ssse3") {
        features.insert("sse3".into());
    }
    features
}

/// Python's text-mode lines: ended by `\n`, `\r\n` or `\r`, without the terminator, and no
/// empty line after a final terminator.
fn py_lines(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    while i < b.len() {
        match b[i] {
            b'\n' | b'\r' => {
                out.push(&s[start..i]);
                i += if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < b.len() {
        out.push(&s[start..]);
    }
    out
}

/// The first processor block of `/proc/cpuinfo`, read line by line as
/// `detect.proc_cpuinfo` does.
#[derive(Default)]
struct FirstBlock {
    data: HashMap<String, String>,
}

impl FirstBlock {
    /// Takes one line; false once the block has ended.
    fn line(&mut self, line: &str) -> bool {
        let (key, value, separated) = match line.split_once(':') {
            Some((k, v)) => (k, v, true),
            None => (line, "", false),
        };
        if !separated && !self.data.is_empty() {
            return false;
        }
        self.data
            .insert(py_strip(key).to_string(), py_strip(value).to_string());
        true
    }

    fn of_text(text: &str) -> Self {
        let mut block = FirstBlock::default();
        for line in py_lines(text) {
            if !block.line(line) {
                break;
            }
        }
        block
    }

    /// Reads no further than the first block: on a large machine the rest of /proc/cpuinfo
    /// is expensive for the kernel to produce.
    fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut reader = BufReader::new(std::fs::File::open(path)?);
        let mut block = FirstBlock::default();
        let mut chunk = String::new();
        // read_line stops after '\n', so a "\r\n" pair never straddles two chunks.
        while reader.read_line(&mut chunk)? > 0 {
            for line in py_lines(&chunk) {
                if !block.line(line) {
                    return Ok(block);
                }
            }
            chunk.clear();
        }
        Ok(block)
    }
}

impl Database {
    /// Parses microarchitectures.json, inserting targets as Python's
    /// `_known_microarchitectures` does.
    pub fn from_json(text: &str) -> Result<Database, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let data = root
            .get("microarchitectures")
            .and_then(Value::as_object)
            .ok_or("no \"microarchitectures\" object")?;
        let mut db = Database {
            targets: Vec::new(),
            index: HashMap::new(),
            arm_vendors: HashMap::new(),
        };
        for name in data.keys() {
            db.fill(name, data, &mut Vec::new())?;
        }
        if let Some(vendors) = root
            .pointer("/conversions/arm_vendors")
            .and_then(Value::as_object)
        {
            for (code, vendor) in vendors {
                let vendor = vendor
                    .as_str()
                    .ok_or_else(|| format!("conversions.arm_vendors.{code}: not a string"))?;
                db.arm_vendors.insert(code.clone(), vendor.to_string());
            }
        }
        Ok(db)
    }

    /// `fill_target_from_dict`: parents first, recursively.
    fn fill(
        &mut self,
        name: &str,
        data: &Map<String, Value>,
        visiting: &mut Vec<String>,
    ) -> Result<usize, String> {
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        if visiting.iter().any(|v| v == name) {
            return Err(format!("microarchitectures.{name}: cycle in \"from\""));
        }
        let entry = data
            .get(name)
            .and_then(Value::as_object)
            .ok_or_else(|| format!("microarchitectures.{name}: unknown target"))?;
        let strings = |key: &str| -> Result<Vec<String>, String> {
            entry
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| format!("microarchitectures.{name}.{key}: not a list"))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .ok_or_else(|| format!("microarchitectures.{name}.{key}: not a string"))
                })
                .collect()
        };
        visiting.push(name.to_string());
        let mut parents = Vec::new();
        for parent in strings("from")? {
            parents.push(self.fill(&parent, data, visiting)?);
        }
        visiting.pop();
        let mut ancestors = parents.clone();
        for &p in &parents {
            for &a in &self.targets[p].ancestors {
                if !ancestors.contains(&a) {
                    ancestors.push(a);
                }
            }
        }
        let vendor = entry
            .get("vendor")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("microarchitectures.{name}.vendor: not a string"))?;
        let target = Target {
            name: name.to_string(),
            vendor: vendor.to_string(),
            features: with_sse3(strings("features")?.into_iter().collect()),
            cpu_part: entry
                .get("cpupart")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            generation: entry.get("generation").and_then(Value::as_u64).unwrap_or(0),
            parents,
            ancestors,
        };
        self.targets.push(target);
        let i = self.targets.len() - 1;
        self.index.insert(name.to_string(), i);
        Ok(i)
    }

    /// Every target, in Python's `TARGETS` order.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter()
    }

    /// A target by database name or alias (`arm64`, `amd64`).
    pub fn get(&self, name: &str) -> Option<&Target> {
        let name = ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, real)| real);
        self.index.get(name).map(|&i| &self.targets[i])
    }

    fn lookup(&self, name: &str) -> Result<&Target, UnknownTarget> {
        self.get(name).ok_or_else(|| UnknownTarget {
            name: name.to_string(),
        })
    }

    fn at(&self, i: usize) -> &Target {
        &self.targets[i]
    }

    fn position(&self, t: &Target) -> usize {
        self.index[&t.name]
    }

    pub fn parents(&self, t: &Target) -> Vec<&Target> {
        t.parents.iter().map(|&i| self.at(i)).collect()
    }

    /// All ancestors in Python's order: parents, then each parent's ancestors not yet listed.
    pub fn ancestors(&self, t: &Target) -> Vec<&Target> {
        t.ancestors.iter().map(|&i| self.at(i)).collect()
    }

    /// The family root (`x86_64`, `aarch64`, ...): the one among the target and its
    /// ancestors without parents.
    pub fn family<'a>(&'a self, t: &'a Target) -> &'a Target {
        std::iter::once(t)
            .chain(self.ancestors(t))
            .find(|a| a.parents.is_empty())
            .unwrap_or(t)
    }

    /// Python's `generic`: the generic target among self and ancestors with most ancestors.
    pub fn generic<'a>(&'a self, t: &'a Target) -> &'a Target {
        first_max(
            std::iter::once(t)
                .chain(self.ancestors(t))
                .filter(|a| a.vendor == "generic"),
            |a| a.ancestors.len(),
        )
        .unwrap_or(t)
    }

    /// True when code built for `required` runs on `node`: the same target, or `required` is
    /// one of `node`'s ancestors.
    pub fn is_compatible(&self, node: &str, required: &str) -> Result<bool, UnknownTarget> {
        let node = self.lookup(node)?;
        let required = self.lookup(required)?;
        let r = self.position(required);
        Ok(node.name == required.name || node.ancestors.contains(&r))
    }

    /// `detect.proc_cpuinfo` for `machine` on cpuinfo text.
    pub fn parse_cpuinfo(&self, machine: Machine, text: &str) -> HostCpu {
        self.host_cpu(machine, &FirstBlock::of_text(text))
    }

    fn host_cpu(&self, machine: Machine, block: &FirstBlock) -> HostCpu {
        let data = &block.data;
        let words = |key: &str| with_sse3(py_words(data.get(key).map_or("", String::as_str)));
        match machine {
            Machine::X86_64 => HostCpu {
                vendor: data
                    .get("vendor_id")
                    .cloned()
                    .unwrap_or_else(|| "generic".into()),
                features: words("flags"),
                cpu_part: String::new(),
            },
            Machine::Aarch64 => HostCpu {
                vendor: match data.get("CPU implementer") {
                    None => "generic".into(),
                    Some(code) => self.arm_vendors.get(code).unwrap_or(code).clone(),
                },
                features: words("Features"),
                cpu_part: data.get("CPU part").cloned().unwrap_or_default(),
            },
        }
    }

    /// `COMPATIBILITY_CHECKS[machine](info, target)` on Linux.
    fn candidate(&self, machine: Machine, root: usize, info: &HostCpu, t: &Target) -> bool {
        let vendor_ok = t.vendor == info.vendor || t.vendor == "generic";
        let features_ok = t.features.is_subset(&info.features);
        match machine {
            Machine::X86_64 => {
                (t.name == self.at(root).name || t.ancestors.contains(&root))
                    && vendor_ok
                    && features_ok
            }
            Machine::Aarch64 => {
                if t.vendor == "generic" && t.name != "aarch64" {
                    return false;
                }
                self.family(t).name == self.at(root).name && vendor_ok && features_ok
            }
        }
    }

    /// `detect.host()` on what [`Database::parse_cpuinfo`] read. `None` only for a database
    /// without the machine's family root, or where no generic target is a candidate (Python
    /// raises there); never for the embedded one.
    pub fn detect_info(&self, machine: Machine, info: &HostCpu) -> Option<&Target> {
        let root = *self.index.get(machine.name())?;
        let candidates: Vec<&Target> = self
            .targets()
            .filter(|t| self.candidate(machine, root, info, t))
            .collect();
        // Python falls back to a new generic target named after the machine: the root's name.
        if candidates.is_empty() {
            return Some(self.at(root));
        }
        let key = |t: &&Target| (t.ancestors.len(), t.features.len());
        // Python's max() of an empty list raises; with the embedded database the root, generic
        // and featureless, is always a candidate.
        let best_generic = first_max(
            candidates.iter().copied().filter(|t| t.vendor == "generic"),
            key,
        )?;
        let mut candidates = candidates;
        if !info.cpu_part.is_empty() && candidates.iter().any(|c| c.cpu_part == info.cpu_part) {
            candidates.retain(|c| c.cpu_part == info.cpu_part);
        }
        // c > best_generic: c's {name} ∪ ancestors strictly contains best_generic's, which for
        // a DAG means best_generic is one of c's ancestors.
        let bg = self.position(best_generic);
        candidates.retain(|c| c.ancestors.contains(&bg));
        Some(first_max(candidates.into_iter(), key).unwrap_or(best_generic))
    }

    /// `detect.host()` for `machine` on cpuinfo text.
    pub fn detect(&self, machine: Machine, cpuinfo: &str) -> Option<&Target> {
        self.detect_info(machine, &self.parse_cpuinfo(machine, cpuinfo))
    }
}

/// Python's `max(items, key=...)`: the first item with the greatest key.
fn first_max<T, K: Ord>(items: impl Iterator<Item = T>, key: impl Fn(&T) -> K) -> Option<T> {
    let mut best: Option<(K, T)> = None;
    for item in items {
        let k = key(&item);
        if best.as_ref().is_none_or(|(bk, _)| k > *bk) {
            best = Some((k, item));
        }
    }
    best.map(|(_, t)| t)
}

/// The embedded database's [`Database::detect`].
pub fn detect(machine: Machine, cpuinfo: &str) -> &'static Target {
    database()
        .detect(machine, cpuinfo)
        .expect("the embedded database has the x86_64 and aarch64 roots (checked by a unit test)")
}

/// The embedded database's [`Database::is_compatible`]: can a node of target `node` run code
/// built for `required`?
pub fn is_compatible(node: &str, required: &str) -> Result<bool, UnknownTarget> {
    database().is_compatible(node, required)
}

/// The names of a target's ancestors, nearest first (Python's order).
pub fn ancestors(name: &str) -> Result<Vec<&'static str>, UnknownTarget> {
    let db = database();
    let t = db.lookup(name)?;
    Ok(db.ancestors(t).into_iter().map(Target::name).collect())
}

/// The host's target, read from `<proc>/cpuinfo` of `roots`.
#[derive(Debug, Clone)]
pub struct Detection {
    pub machine: Machine,
    pub cpu: HostCpu,
    pub target: &'static Target,
}

/// Detects the host's target: the machine from the CPU probe (this program's architecture,
/// or the recorded CPU's in a fixture tree), the CPU from `<proc>/cpuinfo`.
pub fn host_target(roots: &HostRoots) -> Result<Detection, DetectError> {
    let machine = match &roots.cpu {
        CpuProbe::Native => Machine::native(),
        CpuProbe::Recorded(_) => match probe::probe(&roots.cpu)? {
            CpuData::X86(_) => Some(Machine::X86_64),
            CpuData::Arm64(_) => Some(Machine::Aarch64),
            CpuData::Unsupported => None,
        },
    }
    .ok_or(DetectError::UnsupportedMachine)?;
    let path = roots.proc.join("cpuinfo");
    let db = database();
    let cpu = match FirstBlock::of_file(&path) {
        Ok(block) => db.host_cpu(machine, &block),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "archspec: cpuinfo unreadable, the target is the generic family root, as archspec does");
            HostCpu::generic()
        }
    };
    let target = db
        .detect_info(machine, &cpu)
        .expect("the embedded database has the x86_64 and aarch64 roots (checked by a unit test)");
    Ok(Detection {
        machine,
        cpu,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<'a>(ts: impl IntoIterator<Item = &'a Target>) -> Vec<&'a str> {
        ts.into_iter().map(Target::name).collect()
    }

    #[test]
    fn embedded_database_in_pythons_order() {
        let db = database();
        assert_eq!(db.targets().count(), 78);
        // Python's list(TARGETS)[:12] (parents inserted before their children).
        assert_eq!(
            names(db.targets().take(12)),
            [
                "x86",
                "i686",
                "pentium2",
                "pentium3",
                "pentium4",
                "prescott",
                "x86_64",
                "x86_64_v2",
                "x86_64_v3",
                "x86_64_v4",
                "nocona",
                "core2"
            ]
        );
        for root in ["x86_64", "aarch64"] {
            let t = db.get(root).unwrap();
            assert!(t.parents.is_empty() && t.vendor() == "generic" && t.features().is_empty());
        }
        let v1 = db.get("neoverse_v1").unwrap();
        assert_eq!(v1.cpu_part(), "0xd40");
        assert_eq!(v1.vendor(), "ARM");
        assert_eq!(db.get("power9").unwrap().generation(), 9);
    }

    #[test]
    fn ancestors_follow_every_parent() {
        assert_eq!(
            ancestors("haswell").unwrap(),
            [
                "ivybridge",
                "x86_64_v3",
                "sandybridge",
                "westmere",
                "nehalem",
                "core2",
                "x86_64_v2",
                "nocona",
                "x86_64"
            ]
        );
        assert_eq!(ancestors("x86_64").unwrap(), Vec::<&str>::new());
        assert_eq!(ancestors("arm64").unwrap(), Vec::<&str>::new());
        let db = database();
        let icelake = db.get("icelake").unwrap();
        assert_eq!(names(db.parents(icelake)), ["cascadelake", "cannonlake"]);
        assert_eq!(db.family(icelake).name(), "x86_64");
        assert_eq!(db.generic(icelake).name(), "x86_64_v4");
        assert_eq!(db.generic(db.get("zen2").unwrap()).name(), "x86_64_v3");
        assert_eq!(db.family(db.get("neoverse_v1").unwrap()).name(), "aarch64");
        assert_eq!(
            ancestors("nehalm"),
            Err(UnknownTarget {
                name: "nehalm".into()
            })
        );
    }

    #[test]
    fn compatibility_is_self_or_ancestor() {
        for (node, required, ok) in [
            ("sapphirerapids", "sapphirerapids", true),
            ("sapphirerapids", "x86_64_v4", true),
            ("sapphirerapids", "x86_64_v3", true),
            ("sapphirerapids", "icelake", true),
            ("sapphirerapids", "cannonlake", true),
            ("sapphirerapids", "x86_64", true),
            ("sapphirerapids", "amd64", true),
            ("x86_64_v3", "x86_64_v4", false),
            ("x86_64_v4", "x86_64_v3", true),
            ("zen2", "x86_64_v4", false),
            ("zen4", "x86_64_v4", true),
            ("zen4", "skylake", false),
            ("haswell", "broadwell", false),
            ("neoverse_v1", "aarch64", true),
            ("neoverse_v1", "arm64", true),
            ("neoverse_v1", "neoverse_n1", true),
            ("neoverse_v1", "armv8.4a", true),
            ("neoverse_n1", "neoverse_v1", false),
            ("neoverse_v1", "x86_64", false),
            ("arm64", "aarch64", true),
            ("aarch64", "arm64", true),
            ("x86_64", "aarch64", false),
        ] {
            assert_eq!(
                is_compatible(node, required),
                Ok(ok),
                "{node} runs {required}"
            );
        }
        assert_eq!(
            is_compatible("zen9", "x86_64"),
            Err(UnknownTarget {
                name: "zen9".into()
            })
        );
        assert!(is_compatible("x86_64", "x86-64").is_err());
    }

    #[test]
    fn cpuinfo_first_block_only_and_python_splitting() {
        let db = database();
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: sse  ssse3\tavx\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nflags\t: avx512f\n";
        let cpu = db.parse_cpuinfo(Machine::X86_64, text);
        assert_eq!(cpu.vendor, "AuthenticAMD");
        assert_eq!(
            cpu.features.iter().map(String::as_str).collect::<Vec<_>>(),
            ["avx", "sse", "sse3", "ssse3"],
            "ssse3 brings sse3"
        );
        // A line without ':' before any data is stored (as Python does) and does not stop.
        let cpu = db.parse_cpuinfo(Machine::X86_64, "\r\nflags : a:b c\r\n");
        assert!(cpu.features.contains("a:b"), "split at the first ':' only");
        assert_eq!(cpu.vendor, "generic");
        let cpu = db.parse_cpuinfo(Machine::X86_64, "");
        assert_eq!(cpu, HostCpu::generic());
    }

    #[test]
    fn python_text_lines() {
        assert_eq!(py_lines("a\nb\r\nc\rd"), ["a", "b", "c", "d"]);
        assert_eq!(py_lines("a\r\r\n\n"), ["a", "", ""]);
        assert_eq!(py_lines("a\n"), ["a"]);
        assert!(py_lines("").is_empty());
        // The file is read as far as the first block only, with the same result.
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("cpuinfo");
        let text =
            "processor\t: 0\r\nvendor_id : AuthenticAMD\rflags : sse ssse3\n\nvendor_id : X\n";
        std::fs::write(&path, text).unwrap();
        let db = database();
        assert_eq!(
            db.host_cpu(Machine::X86_64, &FirstBlock::of_file(&path).unwrap()),
            db.parse_cpuinfo(Machine::X86_64, text)
        );
        assert_eq!(
            db.parse_cpuinfo(Machine::X86_64, text).vendor,
            "AuthenticAMD"
        );
    }

    #[test]
    fn aarch64_vendor_codes() {
        let db = database();
        let cpu = db.parse_cpuinfo(
            Machine::Aarch64,
            "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0xc0\nCPU part\t: 0xac3\n",
        );
        assert_eq!(cpu.vendor, "Ampere");
        assert_eq!(cpu.cpu_part, "0xac3");
        let cpu = db.parse_cpuinfo(Machine::Aarch64, "CPU implementer\t: 0x99\n");
        assert_eq!(cpu.vendor, "0x99", "unknown codes stay raw");
        assert_eq!(
            db.parse_cpuinfo(Machine::Aarch64, "Features: fp\n").vendor,
            "generic"
        );
    }

    #[test]
    fn generic_levels_and_fallbacks() {
        // A vendor no target has: only the generic levels can match.
        let flags = |f: &str| format!("vendor_id\t: CentaurHauls\nflags\t: {f}\n");
        let v2 = "cx16 lahf_lm mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt";
        let v3 = format!("{v2} avx avx2 bmi1 bmi2 f16c fma abm movbe xsave");
        let v4 = format!("{v3} avx512f avx512bw avx512cd avx512dq avx512vl");
        assert_eq!(detect(Machine::X86_64, &flags("fpu")).name(), "x86_64");
        assert_eq!(detect(Machine::X86_64, &flags(v2)).name(), "x86_64_v2");
        assert_eq!(detect(Machine::X86_64, &flags(&v3)).name(), "x86_64_v3");
        assert_eq!(detect(Machine::X86_64, &flags(&v4)).name(), "x86_64_v4");
        // The same v2 flags on Intel: nehalem (a descendant of x86_64_v2) wins, as in Python.
        let intel = format!("vendor_id\t: GenuineIntel\nflags\t: {v2}\n");
        assert_eq!(detect(Machine::X86_64, &intel).name(), "nehalem");
        // Python's fallback for an unreadable cpuinfo.
        let db = database();
        assert_eq!(
            db.detect_info(Machine::Aarch64, &HostCpu::generic())
                .unwrap()
                .name(),
            "aarch64"
        );
        assert_eq!(
            db.detect_info(Machine::X86_64, &HostCpu::generic())
                .unwrap()
                .name(),
            "x86_64"
        );
        // armv8.x generic levels are never detected on aarch64.
        let arm = "CPU implementer\t: 0x41\nCPU part\t: 0xfff\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve\n";
        let t = detect(Machine::Aarch64, arm);
        assert!(db.get(t.name()).is_some());
        assert!(!t.name().starts_with("armv"), "{}", t.name());
    }

    #[test]
    fn ties_go_to_the_first_in_database_order() {
        // Two targets with the same ancestors and feature counts: the first in file order wins,
        // unless the cpu part decides.
        let json = r#"{"microarchitectures": {
            "aarch64": {"from": [], "vendor": "generic", "features": []},
            "b_core": {"from": ["aarch64"], "vendor": "ARM", "features": ["x"], "cpupart": "0x2"},
            "a_core": {"from": ["aarch64"], "vendor": "ARM", "features": ["y"], "cpupart": "0x1"}
        }, "conversions": {"arm_vendors": {"0x41": "ARM"}}}"#;
        let db = Database::from_json(json).unwrap();
        let host = |part: &str| format!("CPU implementer: 0x41\nCPU part: {part}\nFeatures: x y\n");
        assert_eq!(
            db.detect(Machine::Aarch64, &host("")).unwrap().name(),
            "b_core"
        );
        assert_eq!(
            db.detect(Machine::Aarch64, &host("0x9")).unwrap().name(),
            "b_core"
        );
        assert_eq!(
            db.detect(Machine::Aarch64, &host("0x1")).unwrap().name(),
            "a_core"
        );
        // Another vendor's host gets the generic root.
        let other = "CPU implementer: 0x42\nFeatures: x y\n";
        assert_eq!(
            db.detect(Machine::Aarch64, other).unwrap().name(),
            "aarch64"
        );
        assert!(
            db.detect(Machine::X86_64, other).is_none(),
            "no x86_64 root"
        );
        assert!(Database::from_json(
            r#"{"microarchitectures": {"a": {"from": ["b"], "vendor": "x", "features": []}}}"#
        )
        .is_err());
        assert!(Database::from_json(
            r#"{"microarchitectures": {"a": {"from": ["a"], "vendor": "x", "features": []}}}"#
        )
        .is_err());
    }

    fn fixtures(dir: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(dir)
    }

    /// archspec's own test cpuinfo files (tests/fixtures/archspec): each names its target.
    #[test]
    fn archspec_test_targets_detect_as_named() {
        let db = database();
        let mut files: Vec<_> = std::fs::read_dir(fixtures("archspec"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("linux-"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 35);
        for name in files {
            let want = name.rsplit('-').next().unwrap();
            // As archspec's test does: the machine is the expected target's family.
            let machine = match db.family(db.get(want).unwrap()).name() {
                "x86_64" => Machine::X86_64,
                "aarch64" => Machine::Aarch64,
                other => panic!("{name}: family {other}"),
            };
            let text = std::fs::read_to_string(fixtures("archspec").join(&name)).unwrap();
            assert_eq!(detect(machine, &text).name(), want, "{name}");
        }
    }

    #[test]
    fn fixture_hosts_targets() {
        for (host, machine, want) in [
            ("x86-server", Machine::X86_64, "sapphirerapids"),
            ("arm64-graviton", Machine::Aarch64, "neoverse_v1"),
            // A VM that hides pku and flush_l1d: no zen3/zen4, the best generic level.
            ("minimal-vm", Machine::X86_64, "x86_64_v4"),
        ] {
            let root = fixtures("hosts").join(host).join("root");
            let d = host_target(&HostRoots::fixture(&root)).unwrap();
            assert_eq!((d.machine, d.target.name()), (machine, want), "{host}");
        }
    }

    #[test]
    fn host_target_reads_the_fixture_tree() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("image-compat")).unwrap();
        std::fs::write(
            t.path().join("image-compat/cpu.txt"),
            "AT_HWCAP: 0x1\nAT_HWCAP2: 0x0\n",
        )
        .unwrap();
        let roots = HostRoots::fixture(t.path());
        let d = host_target(&roots).unwrap();
        assert_eq!(d.machine, Machine::Aarch64);
        assert_eq!(d.target.name(), "aarch64", "no cpuinfo: the family root");
        std::fs::create_dir_all(t.path().join("proc")).unwrap();
        std::fs::write(
            t.path().join("proc/cpuinfo"),
            "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n",
        )
        .unwrap();
        let d = host_target(&roots).unwrap();
        assert_eq!(d.target.name(), "cortex_a72");
        assert_eq!(d.cpu.vendor, "ARM");
        std::fs::remove_file(t.path().join("image-compat/cpu.txt")).unwrap();
        assert!(matches!(host_target(&roots), Err(DetectError::Probe(_))));
    }
}
