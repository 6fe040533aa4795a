//! `image-compat validate-spec FILE...`: every problem of each spec, located.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use image_compat::spec;

use super::EXIT_ERROR;

#[derive(Args)]
pub struct ValidateSpecArgs {
    /// Spec files (YAML or JSON).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print errors only.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: ValidateSpecArgs) -> anyhow::Result<ExitCode> {
    let mut invalid = 0;
    for file in &a.files {
        let name = file.display().to_string();
        let checked = std::fs::read_to_string(file)
            .map_err(|e| format!("{name}: cannot read: {e}"))
            .and_then(|text| spec::check(&text, &name).map_err(|e| e.to_string()));
        match checked {
            Err(message) => {
                invalid += 1;
                eprintln!("{message}");
            }
            Ok(c) => {
                // The diagnostics are this command's report: stdout, in order.
                for d in c.diagnostics.iter().filter(|d| d.is_error() || !a.quiet) {
                    println!("{}", d.display_in(&name));
                }
                let (errors, warnings) = (c.errors().count(), c.warnings().count());
                if errors > 0 {
                    invalid += 1;
                    println!(
                        "{name}: invalid ({}, {})",
                        count(errors, "error"),
                        count(warnings, "warning")
                    );
                } else {
                    let sets = c.spec.compatibilities.len();
                    println!(
                        "{name}: valid ({}, {})",
                        count(sets, "compatibility set"),
                        count(warnings, "warning")
                    );
                }
            }
        }
    }
    Ok(if invalid > 0 {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
