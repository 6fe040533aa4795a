//! The nodes of an audit: saved features files (ours, NFD's NodeFeature, a NodeFeatureList), directories of them.

use std::path::Path;

use serde_json::Value;

use crate::features::file::{self, FeaturesFileError};
use crate::features::Features;
use crate::registry::Platform;
use crate::yaml;

/// The label NFD's worker puts on its NodeFeature objects: the node's name.
const NODE_NAME_LABEL: &str = "nfd.node.kubernetes.io/node-name";
/// A files's largest size: a NodeFeatureList of a big cluster is tens of MiB.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// One node to check images against.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// Where it came from: a file (and item), or `this node`.
    pub origin: String,
    pub features: Features,
    /// The platform whose manifest (and so artifacts) this node would run.
    pub platform: Platform,
}

#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path}: not valid YAML or JSON: {source}")]
    Syntax {
        path: String,
        #[source]
        source: yaml::YamlError,
    },
    #[error(transparent)]
    Features(#[from] FeaturesFileError),
    #[error("{path}: no features files (*.json, *.yaml, *.yml) in the directory")]
    EmptyDir { path: String },
    #[error("node {name:?} is given twice: by {first} and by {second}")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
}

/// Reads the nodes at `path` (a file, or a directory of files, read in name order). A file
/// holds one node (`image-compat features -o json`, a NodeFeature object or its spec) or a
/// list (`kubectl get nodefeatures -A -o json`). A node's name is NFD's node-name label, else
/// the object's name, else the file's stem; its platform is `platform` when given, else what
/// its features show (see [`platform_of`]), else this machine's.
pub fn load(path: &Path, platform: Option<&Platform>) -> Result<Vec<Node>, NodesError> {
    let shown = path.display().to_string();
    let io = |source| NodesError::Io {
        path: shown.clone(),
        source,
    };
    if !path.is_dir() {
        return load_file(path, platform);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(NodesError::EmptyDir { path: shown });
    }
    let mut nodes = Vec::new();
    for f in files {
        nodes.extend(load_file(&f, platform)?);
    }
    Ok(nodes)
}

fn load_file(path: &Path, platform: Option<&Platform>) -> Result<Vec<Node>, NodesError> {
    let shown = path.display().to_string();
    let io = |source| NodesError::Io {
        path: shown.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(NodesError::TooLarge { path: shown });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    // JSON first: a NodeFeatureList of a big cluster is JSON from kubectl, and far larger
    // than the YAML reader's budget for a spec.
    let value = match serde_json::from_str::<Value>(&text) {
        Ok(v) => v,
        Err(_) => {
            let syntax = |source| NodesError::Syntax {
                path: shown.clone(),
                source,
            };
            let root = yaml::load(&text).map_err(syntax)?;
            match root {
                Some(r) => yaml::to_json(&r).map_err(syntax)?,
                None => Value::Null,
            }
        }
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.clone());
    let items = match value.get("items").and_then(Value::as_array) {
        Some(items) if is_list(&value) => items.clone(),
        _ => {
            return Ok(vec![node(value, &stem, shown, platform)?]);
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let origin = format!("{shown} item {i}");
            node(item, &format!("{stem}-{i}"), origin, platform)
        })
        .collect()
}

/// A `List` or `NodeFeatureList` object (kubectl's list shape).
fn is_list(v: &Value) -> bool {
    v.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        || (v.get("items").is_some() && v.get("flags").is_none() && v.get("spec").is_none())
}

fn node(
    value: Value,
    fallback: &str,
    origin: String,
    platform: Option<&Platform>,
) -> Result<Node, NodesError> {
    let meta = value.get("metadata");
    let labels = meta.and_then(|m| m.get("labels"));
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let name = label(NODE_NAME_LABEL)
        .or_else(|| meta.and_then(|m| m.get("name")).and_then(Value::as_str))
        .unwrap_or(fallback)
        .to_string();
    let declared = label("kubernetes.io/arch")
        .map(|arch| Platform::new(label("kubernetes.io/os").unwrap_or("linux"), arch, None));
    let features = file::from_value(value, &origin)?;
    let platform = platform
        .cloned()
        .or(declared)
        .or_else(|| platform_of(&features))
        .unwrap_or_else(Platform::host);
    Ok(Node {
        name,
        origin,
        features,
        platform,
    })
}

/// The platform a node's features show, when they do: x86's cpuid flags (the SSE and AVX
/// families, the x86-64 levels: they exist nowhere else) or arm64's (ASIMD, FPHP, EVTSTRM).
/// NFD's features carry no architecture of their own.
pub fn platform_of(features: &Features) -> Option<Platform> {
    let cpuid = features.flags.get("cpu.cpuid")?;
    let x86 =
        |f: &String| f.starts_with("SSE") || f.starts_with("AVX") || f.starts_with("X86_64_V");
    let arm = |f: &String| matches!(f.as_str(), "ASIMD" | "FPHP" | "EVTSTRM");
    if cpuid.elements.iter().any(x86) {
        Some(Platform::new("linux", "amd64", None))
    } else if cpuid.elements.iter().any(arm) {
        Some(Platform::new("linux", "arm64", Some("v8")))
    } else {
        None
    }
}

/// Fails when two nodes have one name (two files for one node are a mistake to report, not
/// to average).
pub fn check_unique(nodes: &[Node]) -> Result<(), NodesError> {
    let mut seen = std::collections::HashMap::new();
    for n in nodes {
        if let Some(first) = seen.insert(n.name.as_str(), n.origin.as_str()) {
            return Err(NodesError::Duplicate {
                name: n.name.clone(),
                first: first.to_string(),
                second: n.origin.clone(),
            });
        }
    }
    Ok(())
}
