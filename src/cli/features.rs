//! `image-compat features`: this node's features in NFD's shape.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use image_compat::config::default_compat_dir;
use image_compat::features::{discover, labels, DiscoverOptions, Features, HostRoots, Source};
use image_compat::untrusted::escape;
use image_compat::yaml::scalar;

#[derive(Args)]
pub struct FeaturesArgs {
    #[arg(long, short, value_enum, default_value_t = FeaturesFormat::Json)]
    output: FeaturesFormat,
    /// Sources to discover, comma-separated (default all): cpu, kernel, local, memory,
    /// network, pci, storage, system, usb.
    #[arg(long, conflicts_with = "features")]
    sources: Option<String>,
    /// Print these saved features (a features file, or a NodeFeature object) instead of
    /// discovering this node: labels of another node, what-if runs.
    #[arg(long, value_name = "FILE")]
    features: Option<PathBuf>,
    #[command(flatten)]
    host: HostArgs,
}

/// Where the host's files are, for discovery from inside a container.
#[derive(Args, Clone)]
pub struct HostArgs {
    /// Read the host's /sys, /proc, /boot, /etc, /usr, /lib, /var under this prefix, as NFD
    /// does in a container (`/host-` reads /host-sys, ...).
    #[arg(long, env = "IMAGE_COMPAT_HOST_PREFIX")]
    pub host_prefix: Option<String>,
    /// Where this node's admin declares Proposal F compatibility groups (`*.json`, the
    /// artifacts' own shape); they become `compat.GROUP` features. Default:
    /// /etc/image-compat/compat.d, under --host-prefix when given. The plugin's and the
    /// hook's config key is `features.compatDir`.
    #[arg(long, value_name = "DIR")]
    pub compat_dir: Option<PathBuf>,
}

impl HostArgs {
    /// Discovery of this node as these flags ask.
    pub fn discover_options(&self) -> DiscoverOptions {
        let dir = self
            .compat_dir
            .clone()
            .unwrap_or_else(|| default_compat_dir(self.host_prefix.as_deref()));
        DiscoverOptions::new(self.roots()).with_compat_dir(dir)
    }

    pub fn roots(&self) -> HostRoots {
        match self.host_prefix.as_deref() {
            Some(p) if !p.is_empty() && p != "/" => HostRoots::with_prefix(p),
            _ => HostRoots::host(),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FeaturesFormat {
    /// NFD's NodeFeatureSpec `features` JSON (what `evaluate --features` reads).
    Json,
    /// The same as YAML.
    Yaml,
    /// One line per feature, for a person.
    Table,
    /// What `nfd export labels` (v0.19) prints for these features: a JSON object, label
    /// name -> value. That command loads no config, so no cpuid flag is filtered out.
    Labels,
    /// The labels nfd-worker v0.19 publishes with its default config (the cpuid blacklist in
    /// force) as `name=value` lines, names without `feature.node.kubernetes.io/`: what a
    /// Proposal F `nfd` group is matched against.
    LabelsEnv,
}

pub fn run(a: FeaturesArgs) -> anyhow::Result<ExitCode> {
    let features = match &a.features {
        Some(path) => image_compat::features::file::read(path)?,
        None => {
            let mut opts = a.host.discover_options();
            if let Some(list) = &a.sources {
                opts = opts.with_sources(Source::parse_list(list)?);
            }
            discover(&opts)
        }
    };
    let out = match a.output {
        FeaturesFormat::Json => serde_json::to_string_pretty(&features)? + "\n",
        FeaturesFormat::Yaml => yaml(&features),
        FeaturesFormat::Table => table(&features),
        FeaturesFormat::Labels => labels::export_json(&labels::export_labels(&features)),
        FeaturesFormat::LabelsEnv => labels::worker_labels(&features)
            .iter()
            .map(|(k, v)| format!("{}={}\n", escape(k), escape(v)))
            .collect(),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// NFD's shape as YAML, every scalar quoted where a YAML 1.1 reader would misread it.
fn yaml(f: &Features) -> String {
    let mut out = String::from("flags:");
    if f.flags.is_empty() {
        out.push_str(" {}");
    }
    for (name, set) in &f.flags {
        let _ = write!(out, "\n  {}:\n    elements:", scalar(name));
        if set.elements.is_empty() {
            out.push_str(" {}");
        }
        for e in &set.elements {
            let _ = write!(out, "\n      {}: {{}}", scalar(e));
        }
    }
    out.push_str("\nattributes:");
    if f.attributes.is_empty() {
        out.push_str(" {}");
    }
    for (name, set) in &f.attributes {
        let _ = write!(out, "\n  {}:\n    elements:", scalar(name));
        if set.elements.is_empty() {
            out.push_str(" {}");
        }
        for (k, v) in &set.elements {
            let _ = write!(out, "\n      {}: {}", scalar(k), scalar(v));
        }
    }
    out.push_str("\ninstances:");
    if f.instances.is_empty() {
        out.push_str(" {}");
    }
    for (name, set) in &f.instances {
        let _ = write!(out, "\n  {}:\n    elements:", scalar(name));
        if set.elements.is_empty() {
            out.push_str(" []");
        }
        for inst in &set.elements {
            out.push_str("\n    - attributes:");
            if inst.attributes.is_empty() {
                out.push_str(" {}");
            }
            for (k, v) in &inst.attributes {
                let _ = write!(out, "\n        {}: {}", scalar(k), scalar(v));
            }
        }
    }
    out.push('\n');
    out
}

fn table(f: &Features) -> String {
    // A person reads the table: long element lists are cut (the JSON output has them all).
    let joined = |items: Vec<String>| match items.len() {
        0 => "(empty)".to_string(),
        n if n > 24 => format!("{} ... ({} more)", items[..24].join(" "), n - 24),
        _ => items.join(" "),
    };
    let names: BTreeSet<&String> = f
        .flags
        .keys()
        .chain(f.attributes.keys())
        .chain(f.instances.keys())
        .collect();
    let mut rows: Vec<(&str, &str, String)> = Vec::new();
    for name in names {
        if let Some(set) = f.flags.get(name) {
            rows.push((
                name,
                "flags",
                joined(set.elements.iter().cloned().collect()),
            ));
        }
        if let Some(set) = f.attributes.get(name) {
            let elems = set
                .elements
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            rows.push((name, "attributes", joined(elems)));
        }
        if let Some(set) = f.instances.get(name) {
            rows.push((name, "instances", set.elements.len().to_string()));
            for (i, inst) in set.elements.iter().enumerate() {
                let attrs = inst
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                rows.push(("", "", format!("[{i}] {}", joined(attrs))));
            }
        }
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(7);
    let mut out = format!("{:width$}  {:10}  ELEMENTS\n", "FEATURE", "TYPE");
    for (name, kind, elems) in rows {
        let _ = writeln!(out, "{name:width$}  {kind:10}  {elems}");
    }
    out
}
