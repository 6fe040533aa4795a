//! `image-compat generate` (hidden): the man pages and shell completions packages install,
//! made from the same clap definitions the binary parses with, so they never drift.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

#[derive(Args)]
pub struct GenerateArgs {
    #[arg(value_enum)]
    what: What,
    /// Directory to write into (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    /// image-compat.1 and one image-compat-SUBCOMMAND.1 per subcommand (roff, uncompressed).
    Man,
    /// image-compat.bash, _image-compat (zsh) and image-compat.fish.
    Completions,
}

pub fn run(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("{}", a.out.display()))?;
    let cmd = super::Cli::command();
    match a.what {
        What::Man => clap_mangen::generate_to(cmd, &a.out)
            .with_context(|| format!("man pages in {}", a.out.display()))?,
        What::Completions => {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(shell, &mut cmd.clone(), "image-compat", &a.out)
                    .with_context(|| format!("{shell} completion in {}", a.out.display()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
