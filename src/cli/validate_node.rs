//! `image-compat validate-node`: this node (or a features file) against an image's attached spec.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use image_compat::check::{self, Origin};
use image_compat::features::{self, discover, Features};

use super::features::HostArgs;
use super::registry::{describe, resolve, ImageArgs, RegistryArgs};
use super::report;
use super::{ReportArgs, ReportFormat};

#[derive(Args)]
pub struct ValidateNodeArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Evaluate only the sets with these tags (comma-separated or repeated, as NFD reads
    /// them: `--tags ,` selects the untagged sets).
    #[arg(long)]
    tags: Vec<String>,
    /// Refuse the spec for any invalid expression anywhere (as validate-spec), instead of
    /// failing only where NFD's evaluation reaches one.
    #[arg(long)]
    strict: bool,
    /// Evaluate against this features file (NFD's shape, or a NodeFeature object) instead of
    /// discovering this node: for checking another node.
    #[arg(long, value_name = "FILE")]
    features: Option<PathBuf>,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    report: ReportArgs,
    /// NFD's flag: the same as `--output nfd-json`.
    #[arg(long, conflicts_with = "output")]
    output_json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(a: ValidateNodeArgs) -> anyhow::Result<ExitCode> {
    let reference = a.image.reference()?;
    let platform = a.image.platform.platform()?;
    let client = a.registry.client(&reference)?;
    let mut report = a.report;
    if a.output_json {
        report.output = ReportFormat::NfdJson;
    }
    // Discovery reads files only; it runs beside the registry round trips, not after them.
    let (features, inspection) = std::thread::scope(|s| {
        let discovery = s.spawn(|| node_features(&a));
        let inspection = a.registry.block_on(async {
            let resolved = resolve(&client, &reference, &platform).await?;
            let reading = super::reading(a.strict);
            Ok::<_, anyhow::Error>(check::inspect_resolved(&client, resolved, reading).await)
        });
        let features = discovery
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (features, inspection)
    });
    let inspection = inspection??;
    let inspection = inspection.map_err(|verdict| {
        let digest = verdict.digest.as_deref().unwrap_or("-");
        anyhow::anyhow!("{reference} ({digest}): {}", verdict.reason())
    })?;
    let features = features?;
    if inspection.artifacts.is_empty() {
        let r = &inspection.resolved;
        let platform = r
            .platform
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        let mut looked = format!("its manifest {}{platform}", r.manifest.digest);
        if let Some(index) = &r.index {
            looked.push_str(&format!(" and its index {}", index.digest));
        }
        anyhow::bail!(
            "{}: no compatibility artifact: none refers to {looked}; attach one with `image-compat attach-spec`",
            describe(r)
        );
    }
    report::inspection_and_print(
        &inspection,
        &features,
        &a.tags,
        report,
        Origin {
            image: Some(reference.to_string()),
            digest: Some(inspection.resolved.target().digest.to_string()),
            artifact: None,
        },
    )
}

/// The features to evaluate: the file given, else this node's.
fn node_features(a: &ValidateNodeArgs) -> anyhow::Result<Features> {
    Ok(match &a.features {
        Some(path) => features::file::read(path)?,
        None => discover(&a.host.discover_options()),
    })
}
