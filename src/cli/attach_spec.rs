//! `image-compat attach-spec`: validate a spec file, then attach it to an image in its registry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use image_compat::registry::AttachOptions;
use image_compat::spec;
use serde_json::json;

use super::registry::{
    block_on, discovery, registry_error, subject_kind, ImageArgs, ListFormat, RegistryArgs,
};
use super::validate_spec::count;

#[derive(Args)]
pub struct AttachSpecArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// The compatibility spec (YAML or JSON); refused, with every error located, if invalid.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// Manifest annotation KEY=VALUE (repeatable); `org.opencontainers.image.created` (RFC
    /// 3339) replaces the current time.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    #[arg(long, short, value_enum, default_value_t)]
    output: ListFormat,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(a: AttachSpecArgs) -> anyhow::Result<ExitCode> {
    let name = a.spec.display().to_string();
    let bytes = std::fs::read(&a.spec).with_context(|| format!("{name}: cannot read"))?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{name}: not UTF-8 text"))?;
    let checked = spec::check(text, &name)?;
    for d in &checked.diagnostics {
        eprintln!("{}", image_compat::untrusted::escape(&d.display_in(&name)));
    }
    let errors = checked.errors().count();
    if errors > 0 {
        anyhow::bail!(
            "{name}: invalid ({}): nothing attached",
            count(errors, "error")
        );
    }
    let mut annotations = BTreeMap::new();
    for kv in &a.annotations {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .with_context(|| format!("--annotation {kv:?}: expected KEY=VALUE"))?;
        annotations.insert(k.to_string(), v.to_string());
    }
    let opts = AttachOptions {
        platform: a.image.platform.explicit()?,
        annotations,
        file_name: a.spec.file_name().map(|f| f.to_string_lossy().into_owned()),
    };
    let reference = a.image.reference()?;
    let client = a.registry.client(&reference)?;
    let attached = block_on(client.attach_spec(&reference, &bytes, &opts))?
        .map_err(|e| registry_error(&reference, e))?;
    match a.output {
        ListFormat::Table => println!("{}", attached.digest),
        ListFormat::Json => {
            let out = json!({
                "digest": attached.digest.to_string(),
                "size": attached.size,
                "subject": attached.subject.digest.to_string(),
                "subjectKind": subject_kind(attached.subject_kind),
                "discovery": discovery(attached.discovery),
                "created": attached.created,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
