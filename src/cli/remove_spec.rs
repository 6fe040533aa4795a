//! `image-compat remove-spec`: delete an image's compatibility artifacts (never the image).

use std::process::ExitCode;

use clap::Args;
use image_compat::registry::{Digest, RemoveWhich};
use serde_json::json;

use super::registry::{registry_error, resolve, ImageArgs, ListFormat, RegistryArgs};

#[derive(Args)]
pub struct RemoveSpecArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// The compatibility artifact to delete (its manifest digest, as `discover` lists it).
    #[arg(long, value_name = "DIGEST", conflicts_with = "all")]
    artifact: Option<String>,
    /// Delete every compatibility artifact of the image (those on its platform manifest and
    /// on its index, as `discover` lists them).
    #[arg(long)]
    all: bool,
    #[arg(long, short, value_enum, default_value_t)]
    output: ListFormat,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(a: RemoveSpecArgs) -> anyhow::Result<ExitCode> {
    let which = match (&a.artifact, a.all) {
        (Some(d), _) => RemoveWhich::Artifact(Digest::parse(d)?),
        (None, true) => RemoveWhich::All,
        (None, false) => anyhow::bail!(
            "say which artifacts to remove: --artifact DIGEST (one; `image-compat discover --image {}` lists them) or --all",
            a.image.image
        ),
    };
    let reference = a.image.reference()?;
    let platform = a.image.platform.platform()?;
    let client = a.registry.client(&reference)?;
    let removed = a.registry.block_on(async {
        let resolved = resolve(&client, &reference, &platform).await?;
        client
            .remove_specs(&resolved, &which)
            .await
            .map_err(|e| registry_error(&reference, e))
    })??;
    match a.output {
        ListFormat::Table if removed.is_empty() => {
            println!("{reference}: no compatibility artifact to remove")
        }
        ListFormat::Table => {
            for d in &removed {
                println!("removed {d}");
            }
        }
        ListFormat::Json => {
            let removed: Vec<String> = removed.iter().map(Digest::to_string).collect();
            let out = json!({ "image": reference.to_string(), "removed": removed });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
