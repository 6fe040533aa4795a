//! The report of one evaluation, for people and programs: the verdict, every selected set with
//! its rules and failures, and NFD's own validate-node report. `evaluate`, `validate-node` and
//! `audit` render it (table, JSON); the plugin and the hook log the [`super::Verdict`] of the
//! same evaluation.

use serde::Serialize;

use super::outcome;
use super::verdict::Outcome;
use crate::features::Features;
use crate::rules::report::{nfd_report, reason, set_label, to_go_json};
use crate::rules::{EvalError, Evaluation, SetOutcome};
use crate::spec::Loaded;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// NFD's evaluation fails on this node: there is no report (NFD prints none either).
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("cannot render NFD's report: {0}")]
    Json(#[from] serde_json::Error),
}

/// Evaluates a loaded spec on `features` and reports it (`origin_name` names the spec in
/// warnings). When the tags select no set, the report has no sets and its outcome says so.
pub fn report(
    loaded: &Loaded,
    features: &Features,
    tags: &[String],
    origin: Origin,
    origin_name: &str,
) -> Result<Report, ReportError> {
    let eval = loaded.spec.evaluate(features, tags)?;
    let mut report = Report::new(loaded, &eval, tags, origin)?;
    report.warnings = super::answer::unreached(loaded, &report.outcome, origin_name);
    Ok(report)
}

/// What was evaluated, when it came from a registry.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Origin {
    pub image: Option<String>,
    pub digest: Option<String>,
    pub artifact: Option<String>,
}

/// The documented JSON report (`--output json`); `table` and `nfd-json` render the same data.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub compatible: bool,
    #[serde(flatten)]
    pub origin: Origin,
    pub tags: Vec<String>,
    pub best_set: Option<SetSummary>,
    pub reason: Option<String>,
    pub sets: Vec<SetSummary>,
    /// NFD's `validate-node --output-json` array.
    pub compatibilities: serde_json::Value,
    /// Errors in the spec NFD's evaluation did not reach on this node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The outcome, as the plugin and the hook would log it.
    #[serde(skip)]
    pub outcome: Outcome,
    /// NFD's array as NFD prints it (Go's escaping, compact).
    #[serde(skip)]
    pub nfd_json: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetSummary {
    pub index: usize,
    pub description: String,
    pub tag: String,
    pub weight: i64,
    pub is_match: bool,
    pub failures: Vec<RuleFailure>,
    /// How messages name the set (`"gpu"`, a description, `#2`).
    #[serde(skip)]
    pub label: String,
    #[serde(skip)]
    pub rules: Vec<RuleSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleFailure {
    pub rule: String,
    pub feature: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct RuleSummary {
    pub name: String,
    pub is_match: bool,
    /// `feature: why`, one per failed requirement.
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(
        loaded: &Loaded,
        eval: &Evaluation,
        tags: &[String],
        origin: Origin,
    ) -> Result<Report, serde_json::Error> {
        let spec = &loaded.spec;
        let nfd = nfd_report(spec, eval);
        let sets: Vec<SetSummary> = eval.sets.iter().map(|s| summary(loaded, s)).collect();
        Ok(Report {
            compatible: eval.compatible,
            origin,
            tags: tags.to_vec(),
            best_set: eval.best.map(|b| sets[b].clone()),
            reason: reason(spec, eval),
            compatibilities: serde_json::to_value(&nfd)?,
            nfd_json: to_go_json(&nfd)?,
            outcome: outcome(loaded, eval, tags),
            warnings: Vec::new(),
            sets,
        })
    }
}

fn summary(loaded: &Loaded, s: &SetOutcome) -> SetSummary {
    let c = &loaded.spec.spec().compatibilities[s.index];
    let failures = c
        .rules
        .iter()
        .zip(&s.rules)
        .flat_map(|(r, o)| {
            o.failures.iter().map(move |f| RuleFailure {
                rule: r.name.clone(),
                feature: f.feature.clone(),
                message: f.message.clone(),
            })
        })
        .collect();
    SetSummary {
        index: s.index,
        description: c.description.clone(),
        tag: c.tag.clone(),
        weight: c.weight,
        is_match: s.is_match,
        failures,
        label: set_label(s.index, c),
        rules: c
            .rules
            .iter()
            .zip(&s.rules)
            .map(|(r, o)| RuleSummary {
                name: r.name.clone(),
                is_match: o.is_match,
                failures: o.failures.iter().map(|f| f.to_string()).collect(),
            })
            .collect(),
    }
}
