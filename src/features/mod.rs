//! Host feature discovery with NFD's feature names, and the features data model.
//!
//! [`discover`] reads the node the way NFD's feature sources do (`nfd compat validate-node`
//! runs all of them with default configuration) and returns features with NFD's names,
//! element names, value formats and presence rules. One module per NFD source; where the
//! files are read from is [`HostRoots`]. Nothing here fails: a source or file that cannot be
//! read leaves its features out (or empty, where NFD always creates them) and is logged.
//!
//! One source is ours, not NFD's: `compat` ([`Source::Compat`], module `compat`) adds
//! `compat.io.archspec`, the node's archspec target ([`archspec`]). [`labels`] computes the
//! node labels NFD would publish from the NFD sources' features.

pub mod archspec;
pub mod compat;
mod cpu;
pub mod file;
pub mod host;
mod kernel;
pub mod labels;
mod local;
mod memory;
pub mod model;
mod network;
mod pci;
mod storage;
mod system;
mod usb;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;
use tracing::debug;

pub use compat::ARCHSPEC_FEATURE;
pub use cpu::record_native as record_native_cpu;
pub use host::{CpuProbe, HostRoots, FIXTURE_CPU_FILE, HOST_PREFIX_ENV};
pub use local::FEATURES_DIR;
pub use model::{
    AttributeFeatureSet, Features, FlagFeatureSet, InstanceFeature, InstanceFeatureSet,
};

/// A feature source, named as in `--sources` and as the prefix of its feature names: NFD's
/// nine, and `compat`, image-compat's own (see `compat.rs`; NFD has no such source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// image-compat's own features (`compat.io.archspec`), not an NFD source.
    Compat,
    Cpu,
    Kernel,
    Local,
    Memory,
    Network,
    Pci,
    Storage,
    System,
    Usb,
}

impl Source {
    /// Every source, in name order; all run by default.
    pub const ALL: [Source; 10] = [
        Source::Compat,
        Source::Cpu,
        Source::Kernel,
        Source::Local,
        Source::Memory,
        Source::Network,
        Source::Pci,
        Source::Storage,
        Source::System,
        Source::Usb,
    ];

    /// NFD's nine sources, without our `compat`.
    pub const NFD: [Source; 9] = [
        Source::Cpu,
        Source::Kernel,
        Source::Local,
        Source::Memory,
        Source::Network,
        Source::Pci,
        Source::Storage,
        Source::System,
        Source::Usb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Compat => "compat",
            Source::Cpu => "cpu",
            Source::Kernel => "kernel",
            Source::Local => "local",
            Source::Memory => "memory",
            Source::Network => "network",
            Source::Pci => "pci",
            Source::Storage => "storage",
            Source::System => "system",
            Source::Usb => "usb",
        }
    }

    /// Parses a comma-separated list (`cpu,kernel`); whitespace around names is ignored and
    /// repeated names count once.
    pub fn parse_list(list: &str) -> Result<Vec<Source>, SourceError> {
        let set = list
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<BTreeSet<Source>, _>>()?;
        Ok(set.into_iter().collect())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn valid_names() -> String {
    Source::ALL.map(Source::name).join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SourceError {
    #[error(
        "unknown feature source {name:?}; valid sources are: {}",
        valid_names()
    )]
    Unknown { name: String },
    #[error("empty feature source name; valid sources are: {}", valid_names())]
    Empty,
}

impl FromStr for Source {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(SourceError::Empty);
        }
        Source::ALL
            .into_iter()
            .find(|src| src.name() == s)
            .ok_or_else(|| SourceError::Unknown {
                name: s.to_string(),
            })
    }
}

/// What to discover and where to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    pub roots: HostRoots,
    /// Sources to run; all of them by default.
    pub sources: Vec<Source>,
    /// system.name's `nodename`; `None` reads `NODE_NAME` from the environment, as NFD does
    /// (empty when unset).
    pub node_name: Option<String>,
    /// Where the node's admin declares compatibility groups (Proposal F documents, `*.json`)
    /// for the compat source; None: none declared.
    pub compat_dir: Option<std::path::PathBuf>,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions::new(HostRoots::from_env())
    }
}

impl DiscoverOptions {
    /// All sources on `roots`.
    pub fn new(roots: HostRoots) -> Self {
        DiscoverOptions {
            roots,
            sources: Source::ALL.to_vec(),
            node_name: None,
            compat_dir: None,
        }
    }

    pub fn with_compat_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.compat_dir = Some(dir.into());
        self
    }

    pub fn with_sources(mut self, sources: impl IntoIterator<Item = Source>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    pub fn with_node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }
}

/// Discovers the node's features. Synchronous and file-based (plus CPUID): meant to run at
/// start and on a refresh interval, not per container.
pub fn discover(opts: &DiscoverOptions) -> Features {
    let sources: BTreeSet<Source> = opts.sources.iter().copied().collect();
    let mut features = Features::default();
    for source in sources {
        let found = match source {
            Source::Compat => compat::discover(&opts.roots, opts.compat_dir.as_deref()),
            Source::Cpu => cpu::discover(&opts.roots),
            Source::Kernel => kernel::discover(&opts.roots),
            Source::Local => local::discover(&opts.roots),
            Source::Memory => memory::discover(&opts.roots),
            Source::Network => network::discover(&opts.roots),
            Source::Pci => pci::discover(&opts.roots),
            Source::Storage => storage::discover(&opts.roots),
            Source::System => {
                let env_name;
                let name = match &opts.node_name {
                    Some(n) => n.as_str(),
                    None => {
                        env_name = std::env::var("NODE_NAME").unwrap_or_default();
                        env_name.as_str()
                    }
                };
                system::discover(&opts.roots, name)
            }
            Source::Usb => usb::discover(&opts.roots),
        };
        debug!(source = %source, features = found.len(), "discovered");
        features.merge(found);
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_round_trip() {
        for s in Source::ALL {
            assert_eq!(s.name().parse::<Source>(), Ok(s));
            assert_eq!(s.to_string(), s.name());
        }
    }

    #[test]
    fn nfd_sources_are_all_but_compat() {
        let ours: Vec<Source> = Source::ALL
            .into_iter()
            .filter(|s| !Source::NFD.contains(s))
            .collect();
        assert_eq!(ours, [Source::Compat]);
        assert!(DiscoverOptions::new(HostRoots::host())
            .sources
            .contains(&Source::Compat));
    }

    #[test]
    fn source_list_parsing() {
        assert_eq!(
            Source::parse_list("kernel, cpu,kernel"),
            Ok(vec![Source::Cpu, Source::Kernel])
        );
        let e = Source::parse_list("cpu,gpu").unwrap_err();
        assert_eq!(e, SourceError::Unknown { name: "gpu".into() });
        assert_eq!(
            e.to_string(),
            "unknown feature source \"gpu\"; valid sources are: compat, cpu, kernel, local, memory, network, pci, storage, system, usb"
        );
        assert_eq!(Source::parse_list("cpu,"), Err(SourceError::Empty));
        // Names are exact, like NFD's.
        assert!("CPU".parse::<Source>().is_err());
    }

    #[test]
    fn only_selected_sources_run() {
        let t = tempfile::tempdir().unwrap();
        let opts = DiscoverOptions::new(HostRoots::fixture(t.path()))
            .with_sources([Source::Local, Source::Usb])
            .with_node_name("n1");
        let f = discover(&opts);
        let names: Vec<&str> = f
            .attributes
            .keys()
            .chain(f.instances.keys())
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["local.feature", "local.label", "usb.device"]);
    }
}
