//! Prints an evaluation as a table, our JSON object, or NFD's JSON array.

use std::io::Write;
use std::process::ExitCode;

use image_compat::features::Features;
use image_compat::rules::report::{nfd_report, reason, set_label, to_go_json};
use image_compat::rules::{CompiledSpec, Evaluation};
use image_compat::spec::Loaded;
use serde::Serialize;

use super::{parse_tags, print_warnings, ReportFormat, EXIT_NOT_COMPATIBLE};

/// What was evaluated, when it came from a registry (validate-node).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Origin {
    pub image: Option<String>,
    pub digest: Option<String>,
    pub artifact: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    compatible: bool,
    #[serde(flatten)]
    origin: &'a Origin,
    tags: &'a [String],
    best_set: Option<SetSummary<'a>>,
    reason: Option<String>,
    sets: Vec<SetSummary<'a>>,
    compatibilities: serde_json::Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SetSummary<'a> {
    index: usize,
    description: &'a str,
    tag: &'a str,
    weight: i64,
    is_match: bool,
    failures: Vec<RuleFailure<'a>>,
}

#[derive(Serialize)]
struct RuleFailure<'a> {
    rule: &'a str,
    feature: &'a str,
    message: &'a str,
}

/// Evaluates a loaded spec on `features` and prints the report: what evaluate (spec file)
/// and validate-node (spec from a registry) share. `spec_origin` names the spec in warnings.
pub fn evaluate_and_print(
    loaded: &Loaded,
    spec_origin: &str,
    features: &Features,
    tags: &[String],
    format: ReportFormat,
    origin: &Origin,
) -> anyhow::Result<ExitCode> {
    print_warnings(spec_origin, &loaded.warnings);
    let tags = parse_tags(tags);
    let eval = loaded.spec.evaluate(features, &tags)?;
    if eval.sets.is_empty() {
        anyhow::bail!("{}", no_set_selected(&loaded.spec, &tags));
    }
    print(format, &loaded.spec, &eval, &tags, origin)
}

/// The message when `--tags` selects no set: the question has no answer.
fn no_set_selected(spec: &CompiledSpec, tags: &[String]) -> String {
    let mut known: Vec<&str> = spec
        .spec()
        .compatibilities
        .iter()
        .map(|c| c.tag.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    known.dedup();
    format!(
        "no compatibility set has a tag in [{}] (tags in the spec: [{}])",
        tags.join(", "),
        known.join(", ")
    )
}

/// Prints the report and returns the exit code: 0 compatible, 1 not compatible.
pub fn print(
    format: ReportFormat,
    spec: &CompiledSpec,
    eval: &Evaluation,
    tags: &[String],
    origin: &Origin,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match format {
        ReportFormat::NfdJson => {
            // NFD prints the array with no trailing newline.
            out.write_all(to_go_json(&nfd_report(spec, eval))?.as_bytes())?;
        }
        ReportFormat::Json => {
            let sets: Vec<SetSummary> = eval.sets.iter().map(|s| summary(spec, s)).collect();
            let report = JsonReport {
                compatible: eval.compatible,
                origin,
                tags,
                best_set: eval.best.map(|b| summary(spec, &eval.sets[b])),
                reason: reason(spec, eval),
                sets,
                compatibilities: serde_json::to_value(nfd_report(spec, eval))?,
            };
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        ReportFormat::Table => table(&mut out, spec, eval, origin)?,
    }
    out.flush()?;
    Ok(if eval.compatible {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_COMPATIBLE)
    })
}

fn summary<'a>(spec: &'a CompiledSpec, s: &'a image_compat::rules::SetOutcome) -> SetSummary<'a> {
    let c = &spec.spec().compatibilities[s.index];
    SetSummary {
        index: s.index,
        description: &c.description,
        tag: &c.tag,
        weight: c.weight,
        is_match: s.is_match,
        failures: c
            .rules
            .iter()
            .zip(&s.rules)
            .flat_map(|(r, o)| {
                o.failures.iter().map(move |f| RuleFailure {
                    rule: &r.name,
                    feature: &f.feature,
                    message: &f.message,
                })
            })
            .collect(),
    }
}

fn table(
    out: &mut impl Write,
    spec: &CompiledSpec,
    eval: &Evaluation,
    origin: &Origin,
) -> std::io::Result<()> {
    let sets = &spec.spec().compatibilities;
    if let Some(image) = &origin.image {
        let digest = origin.digest.as_deref().unwrap_or("-");
        writeln!(out, "image:    {image} ({digest})")?;
        if let Some(a) = &origin.artifact {
            writeln!(out, "artifact: {a}")?;
        }
    }
    match eval.best {
        Some(b) => {
            let s = &eval.sets[b];
            let c = &sets[s.index];
            writeln!(
                out,
                "verdict:  COMPATIBLE (best set {} {}, weight {})",
                s.index,
                set_label(s.index, c),
                c.weight
            )?;
        }
        None => writeln!(
            out,
            "verdict:  NOT COMPATIBLE: {}",
            reason(spec, eval).unwrap_or_default()
        )?,
    }
    for s in &eval.sets {
        let c = &sets[s.index];
        let best = if eval.best.is_some_and(|b| eval.sets[b].index == s.index) {
            "  <- best"
        } else {
            ""
        };
        writeln!(out)?;
        writeln!(
            out,
            "set {} {}{}{}: {}{best}",
            s.index,
            set_label(s.index, c),
            if c.tag.is_empty() || c.description.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.description)
            },
            if c.weight != 0 {
                format!(" weight {}", c.weight)
            } else {
                String::new()
            },
            if s.is_match { "MATCH" } else { "NO MATCH" },
        )?;
        if c.rules.is_empty() {
            writeln!(out, "  (no rules)")?;
        }
        for (rule, o) in c.rules.iter().zip(&s.rules) {
            let mark = if o.is_match { "pass" } else { "FAIL" };
            writeln!(out, "  {mark}  rule \"{}\"", rule.name)?;
            for f in &o.failures {
                writeln!(out, "          {f}")?;
            }
        }
    }
    if eval.sets.is_empty() {
        writeln!(out, "\n(no compatibility set selected)")?;
    }
    Ok(())
}
