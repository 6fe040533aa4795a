//! `image-compat attach-spec`: validate a spec file, then attach it to an image in its registry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use image_compat::check::document;
use image_compat::registry::media::ArtifactKind;
use image_compat::registry::AttachOptions;
use serde_json::json;

use super::registry::{
    discovery, registry_error, subject_kind, ImageArgs, ListFormat, RegistryArgs,
};
use super::validate_spec::count;

#[derive(Args)]
pub struct AttachSpecArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// The compatibility document: NFD's spec (YAML or JSON) or a Proposal F document (JSON);
    /// refused, with every error located, if invalid.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// The document's kind: nfd (artifact type application/vnd.nfd.image-compatibility.v1alpha1)
    /// or oci-compat (application/vnd.oci.image-compatibility.v1); detected when not given.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Manifest annotation KEY=VALUE (repeatable); `org.opencontainers.image.created` (RFC
    /// 3339) replaces the current time.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    #[arg(long, short, value_enum, default_value_t)]
    output: ListFormat,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `--format`.
#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// NFD's image compatibility spec.
    Nfd,
    /// The OCI image-compatibility working group's document (Proposal F).
    OciCompat,
}

pub fn run(a: AttachSpecArgs) -> anyhow::Result<ExitCode> {
    let name = a.spec.display().to_string();
    let bytes = std::fs::read(&a.spec).with_context(|| format!("{name}: cannot read"))?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{name}: not UTF-8 text"))?;
    let kind = a.format.map(|f| match f {
        FormatArg::Nfd => ArtifactKind::Nfd,
        FormatArg::OciCompat => ArtifactKind::OciCompat,
    });
    let checked = match document::check(text, &name, kind) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{}", image_compat::untrusted::escape_lines(&message));
            anyhow::bail!("{name}: cannot be read: nothing attached");
        }
    };
    for d in &checked.diagnostics {
        eprintln!("{}", image_compat::untrusted::escape(&d.display_in(&name)));
    }
    let errors = checked.errors();
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
    let attached = a
        .registry
        .block_on(client.attach_spec(&reference, &bytes, checked.kind, &opts))?
        .map_err(|e| registry_error(&reference, e))?;
    match a.output {
        ListFormat::Table => println!("{}", attached.digest),
        ListFormat::Json => {
            let out = json!({
                "digest": attached.digest.to_string(),
                "kind": checked.kind.as_str(),
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
