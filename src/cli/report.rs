//! Prints a [`Report`] as a table, our JSON object, or NFD's JSON array.

use std::io::Write;
use std::process::ExitCode;

use image_compat::check::answer::{Body, Inspection};
use image_compat::check::{self, Origin, Report};
use image_compat::compat;
use image_compat::features::Features;
use image_compat::spec::Loaded;
use image_compat::untrusted::escape;

use super::{
    parse_tags, print_warnings, ReportArgs, ReportFormat, UnknownPolicy, EXIT_ERROR,
    EXIT_NOT_COMPATIBLE,
};

/// Evaluates a loaded spec on `features` and prints the report (`evaluate` on a spec file).
/// `spec_origin` names the spec in warnings.
pub fn evaluate_and_print(
    loaded: &Loaded,
    spec_origin: &str,
    features: &Features,
    tags: &[String],
    args: ReportArgs,
    origin: Origin,
) -> anyhow::Result<ExitCode> {
    print_warnings(spec_origin, &loaded.warnings);
    let report = check::report(loaded, features, &parse_tags(tags)?, origin, spec_origin)?;
    finish(args, &report)
}

/// Evaluates an image's artifacts (NFD spec, Proposal F document, or both) on `features` and
/// prints the report (`validate-node`).
pub fn inspection_and_print(
    inspection: &Inspection,
    features: &Features,
    tags: &[String],
    args: ReportArgs,
    origin: Origin,
) -> anyhow::Result<ExitCode> {
    for a in &inspection.artifacts {
        let name = format!("artifact {}", a.fetched.artifact.digest);
        match &a.body {
            Body::Nfd(l) => print_warnings(&name, &l.warnings),
            Body::OciCompat(p) => print_warnings(&name, &p.diagnostics),
        }
    }
    let report = check::report_image(inspection, features, &parse_tags(tags)?, origin)?;
    finish(args, &report)
}

/// A Proposal F document file on `features` (`evaluate --spec doc.json`).
pub fn compat_and_print(
    parsed: &compat::Parsed,
    spec_origin: &str,
    features: &Features,
    args: ReportArgs,
) -> anyhow::Result<ExitCode> {
    print_warnings(spec_origin, &parsed.diagnostics);
    let c = check::CompatReport::new(&parsed.doc, features, spec_origin.to_string());
    let report = check::report_compat(c);
    finish(args, &report)
}

fn finish(args: ReportArgs, report: &Report) -> anyhow::Result<ExitCode> {
    for w in &report.warnings {
        eprintln!("{}", escape(w));
    }
    let code = print(args, report)?;
    // No set has the tags asked for: NFD prints its (empty) report and stops; there is no
    // answer, which is this command's error.
    if let check::Outcome::NoSetSelected { message } = &report.outcome {
        eprintln!("image-compat: error: {}", escape(message));
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    Ok(code)
}

/// Prints the report and returns the exit code: 0 compatible, 1 not compatible; an unknown
/// answer (a Proposal F key the node declares nothing about) as `--on-unknown` says.
pub fn print(args: ReportArgs, report: &Report) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.output {
        // NFD prints the array with no trailing newline.
        ReportFormat::NfdJson => out.write_all(report.nfd_json.as_bytes())?,
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        ReportFormat::Table => table(&mut out, report, args.on_unknown)?,
    }
    out.flush()?;
    let unknown_allowed = matches!(report.outcome, check::Outcome::Unknown { .. })
        && args.on_unknown == UnknownPolicy::Allow;
    Ok(if report.compatible || unknown_allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_COMPATIBLE)
    })
}

/// The report for people. Every text from the spec or the node is shown escaped: a rule name
/// or a feature value cannot start a line of its own or drive the terminal.
fn table(out: &mut impl Write, report: &Report, on_unknown: UnknownPolicy) -> std::io::Result<()> {
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
        None => match &report.outcome {
            check::Outcome::Compatible { detail } => {
                writeln!(out, "verdict:  COMPATIBLE ({})", escape(detail))?
            }
            check::Outcome::Incompatible { reason } => {
                writeln!(out, "verdict:  NOT COMPATIBLE: {}", escape(reason))?
            }
            check::Outcome::Unknown { reason } => writeln!(
                out,
                "verdict:  UNKNOWN: {} (--on-unknown {})",
                escape(reason),
                match on_unknown {
                    UnknownPolicy::Allow => "allow: not a failure",
                    UnknownPolicy::Deny => "deny: a failure",
                }
            )?,
            other => writeln!(out, "verdict:  NO ANSWER: {}", escape(&other.reason()))?,
        },
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
    if report.sets.is_empty() && report.oci_compat.is_none() {
        writeln!(out, "\n(no compatibility set selected)")?;
    }
    if let Some(c) = &report.oci_compat {
        writeln!(out)?;
        writeln!(
            out,
            "oci-compat artifact {}: {}",
            escape(&c.artifact),
            match c.outcome.compat() {
                check::Compat::Compatible => "MATCH",
                check::Compat::Incompatible => "NO MATCH",
                check::Compat::Unknown => "UNKNOWN",
            }
        )?;
        for k in &c.keys {
            let mark = match k.result {
                "match" => "pass   ",
                "mismatch" => "FAIL   ",
                _ => "unknown",
            };
            writeln!(
                out,
                "  {mark}  {} {} = {}: {}",
                escape(&k.group),
                escape(&k.key),
                escape(&k.want),
                escape(&k.why)
            )?;
        }
    }
    Ok(())
}
