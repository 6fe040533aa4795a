//! `image-compat discover`: list an image's compatibility artifacts (both kinds) and which one of
//! each kind is used.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use image_compat::registry::{ArtifactInfo, ResolvedImage, SubjectKind};
use image_compat::untrusted::escape;
use serde_json::json;

use super::registry::{
    discovery, registry_error, resolve, subject_kind, ImageArgs, ListFormat, RegistryArgs,
};

#[derive(Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    image: ImageArgs,
    #[arg(long, short, value_enum, default_value_t)]
    output: ListFormat,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(a: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let reference = a.image.reference()?;
    let platform = a.image.platform.platform()?;
    let client = a.registry.client(&reference)?;
    let (image, artifacts) = a.registry.block_on(async {
        let image = resolve(&client, &reference, &platform).await?;
        let artifacts = client
            .list_compat_artifacts(&image)
            .await
            .map_err(|e| registry_error(&reference, e))?;
        Ok::<_, anyhow::Error>((image, artifacts))
    })??;
    let out = match a.output {
        ListFormat::Table => table(&image, &artifacts),
        ListFormat::Json => serde_json::to_string_pretty(&to_json(&image, &artifacts))? + "\n",
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn table(image: &ResolvedImage, artifacts: &[ArtifactInfo]) -> String {
    let mut out = format!("image:    {}\n", image.reference);
    if let Some(index) = &image.index {
        let _ = writeln!(out, "index:    {}", index.digest);
    }
    let platform = image
        .platform
        .as_ref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let _ = writeln!(out, "manifest: {}{platform}", image.manifest.digest);
    if artifacts.is_empty() {
        out.push_str("no compatibility artifacts\n");
        return out;
    }
    let rows: Vec<[String; 7]> = artifacts
        .iter()
        .map(|a| {
            [
                a.digest.to_string(),
                a.kind.as_str().to_string(),
                // What a registry wrote: shown escaped.
                a.created_raw
                    .as_deref()
                    .map_or_else(|| "-".into(), |c| escape(c).to_string()),
                a.size.to_string(),
                // The header lines give the subjects' digests; the row says which one.
                match a.subject_kind {
                    SubjectKind::PlatformManifest => "manifest",
                    SubjectKind::Index => "index",
                }
                .to_string(),
                discovery(a.discovery).to_string(),
                // One artifact of each kind is used.
                if a.selected { "<- used" } else { "" }.to_string(),
            ]
        })
        .collect();
    let header = [
        "ARTIFACT",
        "KIND",
        "CREATED",
        "SIZE",
        "SUBJECT",
        "FOUND VIA",
        "",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(header.map(String::from)).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

fn to_json(image: &ResolvedImage, artifacts: &[ArtifactInfo]) -> serde_json::Value {
    json!({
        "image": image.reference.to_string(),
        "digest": image.target().digest.to_string(),
        "index": image.index.as_ref().map(|i| i.digest.to_string()),
        "manifest": image.manifest.digest.to_string(),
        "platform": image.platform.as_ref().map(|p| p.to_string()),
        "artifacts": artifacts.iter().map(|a| json!({
            "digest": a.digest.to_string(),
            "kind": a.kind.as_str(),
            "mediaType": a.media_type,
            "artifactType": a.artifact_type,
            "size": a.size,
            "created": a.created_raw,
            "subject": a.subject.to_string(),
            "subjectKind": subject_kind(a.subject_kind),
            "discovery": discovery(a.discovery),
            "selected": a.selected,
            "annotations": a.annotations,
        })).collect::<Vec<_>>(),
    })
}
