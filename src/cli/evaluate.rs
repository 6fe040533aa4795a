//! `image-compat evaluate`: a spec file against a features file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use image_compat::{features, spec};

use image_compat::check::Origin;

use super::report;
use super::ReportFormat;

#[derive(Args)]
pub struct EvaluateArgs {
    /// The compatibility spec (YAML or JSON).
    #[arg(long)]
    spec: PathBuf,
    /// Features in NFD's shape: `image-compat features --output json`, or a NodeFeature
    /// object (`kubectl get nodefeature NODE -o yaml`).
    #[arg(long)]
    features: PathBuf,
    /// Evaluate only the sets with these tags (comma-separated or repeated, as NFD reads
    /// them: `--tags ,` selects the untagged sets).
    #[arg(long)]
    tags: Vec<String>,
    #[arg(long, short, value_enum, default_value_t)]
    output: ReportFormat,
    /// Refuse the spec for any invalid expression anywhere (as validate-spec), instead of
    /// failing only where NFD's evaluation reaches one.
    #[arg(long)]
    strict: bool,
}

pub fn run(a: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.spec)
        .with_context(|| format!("{}: cannot read", a.spec.display()))?;
    let origin_name = a.spec.display().to_string();
    let reading = if a.strict {
        spec::Reading::Strict
    } else {
        spec::Reading::Nfd
    };
    let loaded = spec::load(&text, &origin_name, reading)?;
    let features = features::file::read(&a.features)?;
    report::evaluate_and_print(
        &loaded,
        &origin_name,
        &features,
        &a.tags,
        a.output,
        Origin::default(),
    )
}
