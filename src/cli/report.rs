//! Prints a [`Report`] as a table, our JSON object, or NFD's JSON array.

use std::io::Write;
use std::process::ExitCode;

use image_compat::check::{self, Origin, Report};
use image_compat::features::Features;
use image_compat::spec::Loaded;
use image_compat::untrusted::escape;

use super::{parse_tags, print_warnings, ReportFormat, EXIT_ERROR, EXIT_NOT_COMPATIBLE};

/// Evaluates a loaded spec on `features` and prints the report: what evaluate (spec file)
/// and validate-node (spec from a registry) share. `spec_origin` names the spec in warnings.
pub fn evaluate_and_print(
    loaded: &Loaded,
    spec_origin: &str,
    features: &Features,
    tags: &[String],
    format: ReportFormat,
    origin: Origin,
) -> anyhow::Result<ExitCode> {
    print_warnings(spec_origin, &loaded.warnings);
    let report = check::report(loaded, features, &parse_tags(tags)?, origin, spec_origin)?;
    for w in &report.warnings {
        eprintln!("{}", escape(w));
    }
    let code = print(format, &report)?;
    // No set has the tags asked for: NFD prints its (empty) report and stops; there is no
    // answer, which is this command's error.
    if let image_compat::check::Outcome::NoSetSelected { message } = &report.outcome {
        eprintln!("image-compat: error: {}", escape(message));
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    Ok(code)
}

/// Prints the report and returns the exit code: 0 compatible, 1 not compatible.
pub fn print(format: ReportFormat, report: &Report) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match format {
        // NFD prints the array with no trailing newline.
        ReportFormat::NfdJson => out.write_all(report.nfd_json.as_bytes())?,
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        ReportFormat::Table => table(&mut out, report)?,
    }
    out.flush()?;
    Ok(if report.compatible {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_COMPATIBLE)
    })
}

/// The report for people. Every text from the spec or the node is shown escaped: a rule name
/// or a feature value cannot start a line of its own or drive the terminal.
fn table(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let origin = &report.origin;
    if let Some(image) = &origin.image {
        let digest = origin.digest.as_deref().unwrap_or("-");
        writeln!(out, "image:    {} ({digest})", escape(image))?;
        if let Some(a) = &origin.artifact {
            writeln!(out, "artifact: {a}")?;
        }
    }
    match &report.best_set {
        Some(b) => writeln!(
            out,
            "verdict:  COMPATIBLE (best set {} {}, weight {})",
            b.index,
            escape(&b.label),
            b.weight
        )?,
        None if report.sets.is_empty() => writeln!(
            out,
            "verdict:  NO ANSWER: {}",
            escape(&report.outcome.reason())
        )?,
        None => writeln!(
            out,
            "verdict:  NOT COMPATIBLE: {}",
            escape(report.reason.as_deref().unwrap_or_default())
        )?,
    }
    for s in &report.sets {
        let best = if report.best_set.as_ref().is_some_and(|b| b.index == s.index) {
            "  <- best"
        } else {
            ""
        };
        writeln!(out)?;
        writeln!(
            out,
            "set {} {}{}{}: {}{best}",
            s.index,
            escape(&s.label),
            if s.tag.is_empty() || s.description.is_empty() {
                String::new()
            } else {
                format!(" ({})", escape(&s.description))
            },
            if s.weight != 0 {
                format!(" weight {}", s.weight)
            } else {
                String::new()
            },
            if s.is_match { "MATCH" } else { "NO MATCH" },
        )?;
        if s.rules.is_empty() {
            writeln!(out, "  (no rules)")?;
        }
        for rule in &s.rules {
            let mark = if rule.is_match { "pass" } else { "FAIL" };
            writeln!(out, "  {mark}  rule \"{}\"", escape(&rule.name))?;
            for f in &rule.failures {
                writeln!(out, "          {}", escape(f))?;
            }
        }
    }
    if report.sets.is_empty() {
        writeln!(out, "\n(no compatibility set selected)")?;
    }
    Ok(())
}
