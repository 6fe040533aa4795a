//! Command-line interface: one file per subcommand, each only reading arguments and
//! formatting output around library calls.

mod attach_spec;
mod audit;
mod discover;
mod evaluate;
mod features;
mod generate;
mod nri_plugin;
mod oci_hook;
mod registry;
mod remove_spec;
mod report;
mod validate_node;
mod validate_spec;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const EXIT_NOT_COMPATIBLE: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "image-compat",
    version,
    about = "Stops containers from starting on nodes that cannot run them (NFD image compatibility specs)",
    long_about = None
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct LogArgs {
    /// Log filter (error, warn, info, debug, trace, or a tracing env-filter directive).
    #[arg(long, global = true, env = "IMAGE_COMPAT_LOG", default_value = "warn")]
    pub log_level: String,
    /// Log lines as JSON objects (for log collectors).
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Append log lines to this file instead of stderr (the OCI hook: runtimes drop a hook's
    /// stderr when it succeeds, and crun always).
    #[arg(long, global = true, env = "IMAGE_COMPAT_LOG_FILE")]
    pub log_file: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Evaluate a compatibility spec against a features file (this node's or another's).
    Evaluate(evaluate::EvaluateArgs),
    /// Check compatibility spec files, or the artifact attached to an image: every error and
    /// warning with its location.
    ValidateSpec(validate_spec::ValidateSpecArgs),
    /// Evaluate an image's attached spec on this node (or a features file); NFD's
    /// `nfd compat validate-node` flags are accepted.
    ValidateNode(validate_node::ValidateNodeArgs),
    /// Validate a spec file and attach it to an image in its registry.
    AttachSpec(attach_spec::AttachSpecArgs),
    /// Delete compatibility artifacts of an image (never the image or other referrers).
    RemoveSpec(remove_spec::RemoveSpecArgs),
    /// List an image's compatibility artifacts and which one is used.
    Discover(discover::DiscoverArgs),
    /// Which images can run on which nodes: a matrix of images (named, listed, from a pod
    /// list or this node's containerd) x nodes (this one, saved features files).
    Audit(audit::AuditArgs),
    /// Discover this node's features, as NFD's sources see them.
    Features(features::FeaturesArgs),
    /// Run the NRI plugin: check every container's image before the runtime creates it.
    NriPlugin(nri_plugin::NriPluginArgs),
    /// OCI runtime hook (hooks.d, createRuntime): the container state on stdin; refuses an
    /// incompatible image with the reason on stderr.
    OciHook(oci_hook::OciHookArgs),
    /// Man pages and shell completions, for packages (scripts/deb.sh).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// Report formats of evaluate and validate-node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A readable report: which set, which rule, which expression failed and why.
    #[default]
    Table,
    /// An object with the verdict, the best set and NFD's report under `compatibilities`.
    Json,
    /// NFD's `validate-node --output-json` array alone, byte for byte.
    NfdJson,
}

/// How evaluate and validate-node report and what their exit code says.
#[derive(Args, Clone, Copy, Debug)]
pub struct ReportArgs {
    #[arg(long, short, value_enum, default_value_t)]
    pub output: ReportFormat,
    /// What a Proposal F key the node declares nothing about makes of the exit code: `allow`
    /// (0, reported as unknown) or `deny` (1); the plugin's and the hook's `onUnknown`.
    #[arg(long, value_enum, default_value_t)]
    pub on_unknown: UnknownPolicy,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum UnknownPolicy {
    #[default]
    Allow,
    Deny,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Evaluate(a) => evaluate::run(a),
        Command::ValidateSpec(a) => validate_spec::run(a),
        Command::Features(a) => features::run(a),
        Command::ValidateNode(a) => validate_node::run(a),
        Command::AttachSpec(a) => attach_spec::run(a),
        Command::RemoveSpec(a) => remove_spec::run(a),
        Command::Discover(a) => discover::run(a),
        Command::Audit(a) => audit::run(a),
        Command::NriPlugin(a) => nri_plugin::run(a),
        Command::OciHook(a) => oci_hook::run(a),
        Command::Generate(a) => generate::run(a),
    }
}

/// Whether log lines go to stderr (no usable `--log-file`).
static LOGS_TO_STDERR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub fn logs_to_stderr() -> bool {
    LOGS_TO_STDERR.get().copied().unwrap_or(true)
}

pub fn init_logging(args: &LogArgs) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let file = args.log_file.as_ref().and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                eprintln!(
                    "image-compat: warning: cannot open log file {}: {e}; logging to stderr",
                    path.display()
                )
            })
            .ok()
    });
    let file_is_none = file.is_none();
    let _ = LOGS_TO_STDERR.set(file_is_none);
    let writer = match file {
        Some(f) => BoxMakeWriter::new(std::sync::Mutex::new(f)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal: a runtime embeds a hook's stderr in its
        // error message, and log files are read with grep.
        .with_ansi(file_is_none && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The error as stderr shows it, each line escaped: a spec's located errors one per line under
/// a heading (as `validate-spec` prints them), anything else on one line.
pub fn error_lines(err: &anyhow::Error) -> Vec<String> {
    use image_compat::untrusted::escape;
    if let Some(image_compat::spec::SpecError::Invalid {
        origin,
        diagnostics,
    }) = err.downcast_ref()
    {
        let mut lines = vec![format!("{}: invalid compatibility spec:", escape(origin))];
        lines.extend(
            diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| format!("  {}", escape(&d.display_in(origin)))),
        );
        return lines;
    }
    vec![escape(&render_error(err)).to_string()]
}

/// The error and its causes on one line, without repeating a cause already in the message.
pub fn render_error(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// `--tags a,b` (repeatable) as NFD's flag reads it (pflag's string slice): each value is a
/// CSV record (no trimming, empty fields kept, `"a,b"` one tag), an empty value adds nothing;
/// the sets whose tag is listed count, none listed means all sets. `--tags ,` selects the
/// untagged sets.
pub fn parse_tags(values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut tags = Vec::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        tags.extend(csv_record(v).map_err(|e| anyhow::anyhow!("--tags {v:?}: {e}"))?);
    }
    Ok(tags)
}

/// One record as Go's encoding/csv reads it: fields split on commas, a field in double quotes
/// may hold commas and `""` for a quote; a quote inside an unquoted field is an error.
fn csv_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in non-quoted-field".into()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// `--strict`: how specs are read.
pub fn reading(strict: bool) -> image_compat::spec::Reading {
    if strict {
        image_compat::spec::Reading::Strict
    } else {
        image_compat::spec::Reading::Nfd
    }
}

/// Spec warnings go to stderr, so they are seen but never mix with a report on stdout.
pub fn print_warnings(origin: &str, warnings: &[image_compat::spec::Diagnostic]) {
    for w in warnings {
        eprintln!("{}", image_compat::untrusted::escape(&w.display_in(origin)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(v: &[&str]) -> Vec<String> {
        parse_tags(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn tags_are_read_as_nfd_reads_them() {
        assert!(tags(&[]).is_empty());
        assert!(tags(&[""]).is_empty());
        assert_eq!(tags(&["a,b"]), ["a", "b"]);
        assert_eq!(tags(&["a", "b"]), ["a", "b"]);
        assert_eq!(tags(&[","]), ["", ""]);
        assert_eq!(tags(&[",gpu"]), ["", "gpu"]);
        assert_eq!(tags(&[" a"]), [" a"]);
        assert_eq!(tags(&["\"a,b\",c"]), ["a,b", "c"]);
        assert_eq!(tags(&["\"say \"\"hi\"\"\""]), ["say \"hi\""]);
        assert!(parse_tags(&["a\"b".to_string()]).is_err());
        assert!(parse_tags(&["\"ab".to_string()]).is_err());
    }
}
