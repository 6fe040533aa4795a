//! `image-compat evaluate`: a spec file against a features file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use image_compat::{features, spec};

use super::report::{self, Origin};
use super::{parse_tags, ReportFormat};

#[derive(Args)]
pub struct EvaluateArgs {
    /// The compatibility spec (YAML or JSON).
    #[arg(long)]
    spec: PathBuf,
    /// Features in NFD's shape: `image-compat features --output json`, or a NodeFeature
    /// object (`kubectl get nodefeature NODE -o yaml`).
    #[arg(long)]
    features: PathBuf,
    /// Evaluate only the sets with these tags (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    #[arg(long, short, value_enum, default_value_t)]
    output: ReportFormat,
}

pub fn run(a: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.spec)
        .with_context(|| format!("{}: cannot read", a.spec.display()))?;
    let origin_name = a.spec.display().to_string();
    let loaded = spec::load(&text, &origin_name)?;
    super::print_warnings(&origin_name, &loaded.warnings);
    let features = features::file::read(&a.features)?;
    let tags = parse_tags(&a.tags);
    let eval = loaded.spec.evaluate(&features, &tags)?;
    if eval.sets.is_empty() {
        anyhow::bail!("{}", no_set_selected(&loaded.spec, &tags));
    }
    report::print(a.output, &loaded.spec, &eval, &tags, &Origin::default())
}

/// The message when `--tags` selects no set: the question has no answer.
pub fn no_set_selected(spec: &image_compat::rules::CompiledSpec, tags: &[String]) -> String {
    let mut known: Vec<&str> = spec
        .spec()
        .compatibilities
        .iter()
        .map(|c| c.tag.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    known.dedup();
    format!(
        "no compatibility set has a tag in [{}] (tags in the spec: [{}])",
        tags.join(", "),
        known.join(", ")
    )
}
