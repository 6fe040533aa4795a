//! `image-compat evaluate`: a spec file against a features file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use image_compat::check::{document, Origin};
use image_compat::registry::media::ArtifactKind;
use image_compat::untrusted::escape_lines;
use image_compat::{compat, features, spec};

use super::ReportArgs;
use super::{print_warnings, report};

#[derive(Args)]
pub struct EvaluateArgs {
    /// The compatibility spec: NFD's (YAML or JSON), or a Proposal F document (JSON with a
    /// top-level `compatibilities` object), told apart by its content.
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
    #[command(flatten)]
    report: ReportArgs,
    /// Refuse the spec for any invalid expression anywhere (as validate-spec), instead of
    /// failing only where NFD's evaluation reaches one.
    #[arg(long)]
    strict: bool,
}

pub fn run(a: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.spec)
        .with_context(|| format!("{}: cannot read", a.spec.display()))?;
    let origin_name = a.spec.display().to_string();
    let features = features::file::read(&a.features)?;
    if document::detect(&text) == ArtifactKind::OciCompat {
        let parsed = match compat::parse(&text, &origin_name) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{}", escape_lines(&e.to_string()));
                anyhow::bail!("{origin_name}: cannot be read");
            }
        };
        if !parsed.is_valid() {
            print_warnings(&origin_name, &parsed.diagnostics);
            let n = parsed.diagnostics.iter().filter(|d| d.is_error()).count();
            anyhow::bail!("{origin_name}: {n} error(s) in the compatibility document");
        }
        return report::compat_and_print(&parsed, &origin_name, &features, a.report);
    }
    let reading = if a.strict {
        spec::Reading::Strict
    } else {
        spec::Reading::Nfd
    };
    let loaded = spec::load(&text, &origin_name, reading)?;
    report::evaluate_and_print(
        &loaded,
        &origin_name,
        &features,
        &a.tags,
        a.report,
        Origin::default(),
    )
}
