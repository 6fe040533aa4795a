//! Fleet audit: which images can run on which nodes. One registry answer per image and
//! platform (through a [`Checker`], so with the plugin's registry settings and cache), each
//! evaluated locally on every node of that platform.

pub mod images;
pub mod nodes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

pub use images::ImageUse;
pub use nodes::Node;

use crate::check::{cpu, Candidates, Checker, Compat, Outcome, Source, Verdict};
use crate::registry::media::ArtifactKind;
use crate::registry::{Platform, Reference};

/// How the audit runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Registry lookups at once.
    pub jobs: usize,
    /// The sets to evaluate (NFD's `--tags`).
    pub tags: Vec<String>,
    /// Time allowed for one image's answer on one platform.
    pub deadline: Duration,
}

/// What one image is on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellVerdict {
    Compatible,
    Incompatible,
    /// No answer about this node: no artifact, no set selected, a key the node declares
    /// nothing about.
    Unknown,
    /// The question could not be asked: the registry, an invalid spec, the deadline.
    Error,
}

impl CellVerdict {
    pub fn of(outcome: &Outcome) -> CellVerdict {
        match outcome.compat() {
            Compat::Compatible => CellVerdict::Compatible,
            Compat::Incompatible => CellVerdict::Incompatible,
            Compat::Unknown => match outcome {
                Outcome::NoArtifact | Outcome::NoSetSelected { .. } | Outcome::Unknown { .. } => {
                    CellVerdict::Unknown
                }
                _ => CellVerdict::Error,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    pub node: String,
    pub verdict: CellVerdict,
    pub case: &'static str,
    pub reason: String,
    /// The image manifest the artifacts hang off for this node's platform.
    pub digest: Option<String>,
    pub artifact: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<ArtifactKind>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Cell {
    fn new(node: &Node, v: Verdict) -> Cell {
        Cell {
            node: node.name.clone(),
            verdict: CellVerdict::of(&v.outcome),
            case: v.outcome.case(),
            reason: v.outcome.reason(),
            digest: v.digest,
            artifact: v.artifact,
            kinds: v.kinds,
            warnings: v.warnings,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub image: String,
    pub used_by: Vec<String>,
    /// One per node, in the nodes' order.
    pub cells: Vec<Cell>,
}

impl Row {
    /// The image across the nodes.
    pub fn class(&self) -> ImageClass {
        let all = |v| self.cells.iter().all(|c| c.verdict == v);
        let any = |v| self.cells.iter().any(|c| c.verdict == v);
        if all(CellVerdict::Compatible) {
            ImageClass::Everywhere
        } else if all(CellVerdict::Incompatible) {
            ImageClass::Nowhere
        } else if any(CellVerdict::Incompatible) {
            ImageClass::SomeNodes
        } else {
            ImageClass::Unknown
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageClass {
    /// Compatible with every node.
    Everywhere,
    /// Compatible with none.
    Nowhere,
    /// Incompatible with some nodes, not all.
    SomeNodes,
    /// Never incompatible, but not known compatible everywhere.
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub name: String,
    pub origin: String,
    pub platform: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub images: usize,
    pub nodes: usize,
    pub compatible_everywhere: usize,
    pub compatible_nowhere: usize,
    pub some_nodes: usize,
    pub unknown: usize,
    /// Cells whose question could not be asked.
    pub error_cells: usize,
    pub incompatible_cells: usize,
    pub unknown_cells: usize,
    /// Registry answers used: fetched now, or found in the cache.
    pub fetched: usize,
    pub cached: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    pub nodes: Vec<NodeInfo>,
    pub images: Vec<Row>,
    pub summary: Summary,
}

/// Registry answers for every platform the nodes run, one [`Checker`] each.
pub struct Auditor {
    checkers: BTreeMap<String, Arc<Checker>>,
}

impl Auditor {
    /// `checker` makes the checker of one platform (the CLI gives each the same registry
    /// settings and a cache of its own).
    pub fn new(nodes: &[Node], mut checker: impl FnMut(&Platform) -> Arc<Checker>) -> Auditor {
        let mut checkers = BTreeMap::new();
        for n in nodes {
            checkers
                .entry(n.platform.to_string())
                .or_insert_with(|| checker(&n.platform));
        }
        Auditor { checkers }
    }

    /// The matrix of `images` x `nodes`. `progress` is called after each image and platform
    /// with (done, total).
    pub async fn run(
        &self,
        images: &[ImageUse],
        nodes: Arc<Vec<Node>>,
        options: &Options,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Matrix {
        let total = images.len() * self.checkers.len();
        let mut jobs = Vec::with_capacity(total);
        for (i, image) in images.iter().enumerate() {
            for (platform, checker) in &self.checkers {
                jobs.push((i, image.image.clone(), platform.clone(), checker.clone()));
            }
        }
        let mut results: Vec<Vec<(usize, Cell)>> = vec![Vec::new(); images.len()];
        let (mut fetched, mut cached) = (0, 0);
        let mut done = 0;
        let mut stream = futures::stream::iter(jobs)
            .map(|(i, image, platform, checker)| {
                let nodes = nodes.clone();
                let options = options.clone();
                async move {
                    let (cells, source) =
                        cells_for(&image, &platform, &checker, nodes, &options).await;
                    (i, cells, source)
                }
            })
            .buffer_unordered(options.jobs.max(1));
        while let Some((i, cells, source)) = stream.next().await {
            match source {
                Some(Source::Cached) => cached += 1,
                Some(_) => fetched += 1,
                None => {}
            }
            results[i].extend(cells);
            done += 1;
            progress(done, total);
        }
        let rows: Vec<Row> = images
            .iter()
            .zip(results)
            .map(|(image, mut cells)| {
                cells.sort_by_key(|(n, _)| *n);
                Row {
                    image: image.image.clone(),
                    used_by: image.used_by.clone(),
                    cells: cells.into_iter().map(|(_, c)| c).collect(),
                }
            })
            .collect();
        let mut summary = Summary {
            images: rows.len(),
            nodes: nodes.len(),
            fetched,
            cached,
            ..Summary::default()
        };
        for r in &rows {
            match r.class() {
                ImageClass::Everywhere => summary.compatible_everywhere += 1,
                ImageClass::Nowhere => summary.compatible_nowhere += 1,
                ImageClass::SomeNodes => summary.some_nodes += 1,
                ImageClass::Unknown => summary.unknown += 1,
            }
            for c in &r.cells {
                match c.verdict {
                    CellVerdict::Error => summary.error_cells += 1,
                    CellVerdict::Incompatible => summary.incompatible_cells += 1,
                    CellVerdict::Unknown => summary.unknown_cells += 1,
                    CellVerdict::Compatible => {}
                }
            }
        }
        Matrix {
            nodes: nodes
                .iter()
                .map(|n| NodeInfo {
                    name: n.name.clone(),
                    origin: n.origin.clone(),
                    platform: n.platform.to_string(),
                })
                .collect(),
            images: rows,
            summary,
        }
    }
}

/// One image on the nodes of one platform: the registry's answer once, evaluated on each
/// node (on the blocking pool: a hundred nodes are a hundred evaluations).
async fn cells_for(
    image: &str,
    platform: &str,
    checker: &Arc<Checker>,
    nodes: Arc<Vec<Node>>,
    options: &Options,
) -> (Vec<(usize, Cell)>, Option<Source>) {
    let mine = move |nodes: &Arc<Vec<Node>>| {
        nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.platform.to_string() == platform)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    let indices = mine(&nodes);
    let reference = match Reference::parse(image) {
        Ok(r) => r,
        Err(e) => {
            let v = Verdict::new(Outcome::UnknownImage {
                error: e.to_string(),
            });
            let cells = indices
                .into_iter()
                .map(|i| (i, Cell::new(&nodes[i], v.clone())))
                .collect();
            return (cells, None);
        }
    };
    let Some((answer, source, _warnings)) = checker
        .answer(&Candidates::one(reference), options.deadline)
        .await
    else {
        let v = Verdict::new(Outcome::DeadlineExceeded {
            waited: options.deadline,
        });
        let cells = indices
            .into_iter()
            .map(|i| (i, Cell::new(&nodes[i], v.clone())))
            .collect();
        return (cells, None);
    };
    let tags = options.tags.clone();
    let cells = cpu::run(move || {
        indices
            .into_iter()
            .map(|i| {
                let v = answer.verdict(&nodes[i].features, &tags);
                (i, Cell::new(&nodes[i], v))
            })
            .collect()
    })
    .await;
    (cells, Some(source))
}
