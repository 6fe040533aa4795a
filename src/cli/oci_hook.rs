//! `image-compat oci-hook`: reads the OCI state on stdin, prints a refusal on stderr.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use image_compat::config::Config;
use image_compat::hook::{self, input::MAX_STATE_BYTES};

/// The config file read when `--config` is not given, if it exists.
const DEFAULT_CONFIG: &str = "/etc/image-compat/config.yaml";

#[derive(Args)]
pub struct OciHookArgs {
    /// Config file, the NRI plugin's format (see nri-config/image-compat.yaml). Default:
    /// /etc/image-compat/config.yaml when it exists, else the built-in defaults.
    #[arg(long, env = "IMAGE_COMPAT_CONFIG")]
    config: Option<PathBuf>,
}

/// Exit 0: the container may be created (also in audit mode and for every "allow" policy);
/// 1: refused, the reason on stderr; 2: the config cannot be used (the runtime then refuses
/// the container too: enforcement must not silently stop because of a broken config).
pub fn run(a: OciHookArgs) -> anyhow::Result<ExitCode> {
    let config = match &a.config {
        Some(path) => Config::from_file(path)?,
        None if Path::new(DEFAULT_CONFIG).exists() => Config::from_file(Path::new(DEFAULT_CONFIG))?,
        None => Config::default(),
    };
    let mut state = Vec::new();
    std::io::stdin()
        .take(MAX_STATE_BYTES as u64 + 1)
        .read_to_end(&mut state)
        .context("cannot read the container state from stdin")?;
    let report = hook::run(&config, &state)?;
    report.log_warnings();
    match &report.decided.decision.deny {
        Some(message) => {
            // The runtime shows the hook's stderr in its error (runc); a log file keeps the
            // decision where stderr is dropped (crun).
            if !super::logs_to_stderr() {
                report.log();
            }
            eprintln!("{message}");
            Ok(ExitCode::from(super::EXIT_NOT_COMPATIBLE))
        }
        None => {
            report.log();
            Ok(ExitCode::SUCCESS)
        }
    }
}
