//! The `image-compat` binary: parse arguments, call the library, map errors to exit codes.
//!
//! Exit codes: 0 ok / compatible, 1 not compatible, 2 error (bad input, invalid spec,
//! unreachable registry, ...), with the reason on stderr.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args.log);
    match cli::run(args.command) {
        Ok(code) => code,
        Err(err) => {
            // Errors carry what registries and files said: each line shown escaped.
            eprintln!("image-compat: error: {}", cli::error_lines(&err).join("\n"));
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
