//! `image-compat validate-spec`: every problem of each spec file and image artifact, located.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use image_compat::check::document;
use image_compat::registry::media::ArtifactKind;
use image_compat::registry::{media, Discovery, ErrorKind, FetchedSpec, Reference, SubjectKind};

use super::registry::{describe, registry_error, resolve, PlatformArg, RegistryArgs};
use super::EXIT_ERROR;

#[derive(Args)]
pub struct ValidateSpecArgs {
    /// Spec files (YAML or JSON).
    #[arg(required_unless_present = "image")]
    files: Vec<PathBuf>,
    /// Also validate the compatibility artifact attached to this image (the one validate-node
    /// would use): its manifest, media types, subject and spec layer, then the spec.
    #[arg(long, value_name = "REF")]
    image: Option<String>,
    #[command(flatten)]
    platform: PlatformArg,
    /// Print errors only.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(a: ValidateSpecArgs) -> anyhow::Result<ExitCode> {
    let mut invalid = 0;
    for file in &a.files {
        let name = file.display().to_string();
        let valid = std::fs::read_to_string(file)
            .map_err(|e| format!("{name}: cannot read: {e}"))
            .and_then(|text| report(&text, &name, None, a.quiet));
        if !valid.unwrap_or_else(|message| {
            eprintln!("{}", image_compat::untrusted::escape_lines(&message));
            false
        }) {
            invalid += 1;
        }
    }
    if let Some(image) = &a.image {
        let valid = validate_image(image, &a).unwrap_or_else(|e| {
            eprintln!(
                "{}",
                image_compat::untrusted::escape(&super::render_error(&e))
            );
            false
        });
        if !valid {
            invalid += 1;
        }
    }
    Ok(if invalid > 0 {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints a spec's diagnostics and verdict line; true when it is valid. A syntax error, which
/// stops reading, is the `Err`.
fn report(text: &str, name: &str, kind: Option<ArtifactKind>, quiet: bool) -> Result<bool, String> {
    let c = document::check(text, name, kind)?;
    // The diagnostics are this command's report: stdout, in order.
    for d in c.diagnostics.iter().filter(|d| d.is_error() || !quiet) {
        println!("{}", image_compat::untrusted::escape(&d.display_in(name)));
    }
    let (errors, warnings) = (c.errors(), c.warnings());
    if errors > 0 {
        println!(
            "{name}: invalid ({}, {})",
            count(errors, "error"),
            count(warnings, "warning")
        );
    } else {
        println!(
            "{name}: valid {} ({}, {})",
            c.kind.as_str(),
            c.summary,
            count(warnings, "warning")
        );
    }
    Ok(errors == 0)
}

/// Fetches the image's winning artifact of each kind, which checks them on the way (manifest,
/// media types, subject, digests, sizes), and reports each artifact and then its document.
fn validate_image(image: &str, a: &ValidateSpecArgs) -> anyhow::Result<bool> {
    let reference = Reference::parse(image)?;
    let platform = a.platform.platform()?;
    let client = a.registry.client(&reference)?;
    let (resolved, fetched) = a.registry.block_on(async {
        let resolved = resolve(&client, &reference, &platform).await?;
        let fetched = client.fetch_artifacts_for(&resolved).await;
        Ok::<_, anyhow::Error>((resolved, fetched))
    })??;
    let image = describe(&resolved);
    let fetched = match fetched {
        Ok(f) if f.is_empty() => anyhow::bail!("{image}: no compatibility artifact"),
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::InvalidContent => {
            println!(
                "{image}: error: {}",
                image_compat::untrusted::escape(&e.to_string())
            );
            println!("{image}: invalid (the artifact fails its checks)");
            return Ok(false);
        }
        Err(e) => return Err(registry_error(&reference, e)),
    };
    let mut valid = true;
    for f in &fetched {
        valid &= validate_artifact(&image, f, a.quiet);
    }
    Ok(valid)
}

fn validate_artifact(image: &str, fetched: &FetchedSpec, quiet: bool) -> bool {
    let art = &fetched.artifact;
    let layer = &fetched.layer;
    if !quiet {
        let title = layer
            .annotations
            .get(media::ANNOTATION_TITLE)
            .map(|t| format!("{t}, "))
            .unwrap_or_default();
        let (on, via) = (
            match art.subject_kind {
                SubjectKind::PlatformManifest => "platform manifest",
                SubjectKind::Index => "index",
            },
            match art.discovery {
                Discovery::ReferrersApi => "the Referrers API",
                Discovery::TagSchema => "the referrers tag schema",
            },
        );
        println!(
            "{image}: artifact {} on the {on} {} (found via {via}, created {})",
            art.digest,
            art.subject,
            art.created_raw.as_deref().unwrap_or("-"),
        );
        println!(
            "artifact {}: ok: OCI image manifest, artifact type {}, one layer {} ({title}{} bytes, digest verified), subject is this image",
            art.digest,
            art.kind.artifact_type(),
            layer.media_type,
            layer.size,
        );
    }
    let text = String::from_utf8_lossy(&fetched.bytes);
    report(
        &text,
        &format!("artifact {}", art.digest),
        Some(art.kind),
        quiet,
    )
    .unwrap_or_else(|message| {
        eprintln!("{}", image_compat::untrusted::escape_lines(&message));
        false
    })
}

pub fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
