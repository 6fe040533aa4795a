//! The report of one evaluation, for people and programs: the verdict, every selected set with
//! its rules and failures, and NFD's own validate-node report. `evaluate`, `validate-node` and
//! `audit` render it (table, JSON); the plugin and the hook log the [`super::Verdict`] of the
//! same evaluation.

use serde::Serialize;

use super::answer::{combine, compat_outcome, Body, Inspection};
use super::outcome;
use super::verdict::{Compat, Outcome};
use crate::compat;
use crate::features::Features;
use crate::rules::report::{nfd_report, reason, set_label, to_go_json};
use crate::rules::{EvalError, Evaluation, SetOutcome};
use crate::spec::Loaded;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// NFD's evaluation fails on this node: there is no report (NFD prints none either).
    /// `origin` names the spec (its file, or the artifact's digest).
    #[error("{origin}: {source}")]
    Eval { origin: String, source: EvalError },
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
    let eval = loaded
        .spec
        .evaluate(features, tags)
        .map_err(|source| ReportError::Eval {
            origin: origin_name.to_string(),
            source,
        })?;
    let mut report = Report::new(loaded, &eval, tags, origin)?;
    report.warnings = super::answer::unreached(loaded, &report.outcome, origin_name);
    Ok(report)
}

/// Reports an image's artifacts (an inspection) on `features`: NFD's spec as [`report`] does,
/// a Proposal F document key by key, and the one verdict of both (every artifact must say
/// compatible). NFD's evaluation failing is the error, as for [`report`].
pub fn report_image(
    inspection: &Inspection,
    features: &Features,
    tags: &[String],
    mut origin: Origin,
) -> Result<Report, ReportError> {
    let mut nfd = None;
    let mut oci = None;
    let mut outcomes = Vec::new();
    for a in &inspection.artifacts {
        let digest = a.fetched.artifact.digest.to_string();
        match &a.body {
            Body::Nfd(loaded) => {
                let r = report(
                    loaded,
                    features,
                    tags,
                    Origin::default(),
                    &format!("artifact {digest}"),
                )?;
                outcomes.push((digest, a.body.kind(), r.outcome.clone()));
                nfd = Some(r);
            }
            Body::OciCompat(parsed) => {
                let c = CompatReport::new(&parsed.doc, features, digest.clone());
                outcomes.push((digest, a.body.kind(), c.outcome.clone()));
                oci = Some(c);
            }
        }
    }
    // The plugin's verdict (Answer::verdict): compatible only when every artifact says so.
    let (combined, artifact, _) = combine(&outcomes);
    origin.artifact = artifact;
    let mut r = nfd.unwrap_or_else(Report::empty);
    r.origin = origin;
    // NFD's spec alone keeps its own report; with a Proposal F document the verdict is both.
    if oci.is_some() {
        r.decided(combined);
    }
    r.oci_compat = oci;
    Ok(r)
}

/// The report of a Proposal F document alone (`evaluate` on a document file).
pub fn report_compat(c: CompatReport) -> Report {
    let mut r = Report::empty();
    r.decided(c.outcome.clone());
    r.oci_compat = Some(c);
    r
}

/// A Proposal F document on a node, key by key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompatReport {
    pub artifact: String,
    pub compatible: bool,
    pub keys: Vec<KeyReport>,
    #[serde(skip)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    pub group: String,
    pub key: String,
    pub want: String,
    pub have: Option<String>,
    /// `match`, `mismatch` or `unknown`.
    pub result: &'static str,
    pub why: String,
}

impl CompatReport {
    pub fn new(doc: &compat::Document, features: &Features, artifact: String) -> CompatReport {
        let e = compat::evaluate(doc, features);
        let outcome = compat_outcome(&e);
        CompatReport {
            artifact,
            compatible: outcome.compat() == Compat::Compatible,
            keys: e
                .results
                .into_iter()
                .map(|r| KeyReport {
                    result: match r.outcome {
                        compat::GroupOutcome::Match => "match",
                        compat::GroupOutcome::Mismatch => "mismatch",
                        compat::GroupOutcome::Unknown => "unknown",
                    },
                    group: r.group,
                    key: r.key,
                    want: r.want,
                    have: r.have,
                    why: r.why,
                })
                .collect(),
            outcome,
        }
    }
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
    /// `compatible`, `incompatible` or `unknown` (no answer, or a Proposal F key the node
    /// declares nothing about): the `verdict` of the plugin's decision line.
    pub verdict: &'static str,
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
    /// The image's Proposal F artifact, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oci_compat: Option<CompatReport>,
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
        let outcome = outcome(loaded, eval, tags);
        Ok(Report {
            compatible: eval.compatible,
            verdict: outcome.compat().as_str(),
            origin,
            tags: tags.to_vec(),
            best_set: eval.best.map(|b| sets[b].clone()),
            reason: reason(spec, eval),
            compatibilities: serde_json::to_value(&nfd)?,
            nfd_json: to_go_json(&nfd)?,
            outcome,
            warnings: Vec::new(),
            oci_compat: None,
            sets,
        })
    }

    /// The verdict is `outcome` (several artifacts', or a Proposal F document's): `compatible`,
    /// `verdict` and `reason` follow it.
    fn decided(&mut self, outcome: Outcome) {
        self.compatible = outcome.compat() == Compat::Compatible;
        self.verdict = outcome.compat().as_str();
        self.reason = (!self.compatible).then(|| outcome.reason());
        self.outcome = outcome;
    }

    /// A report with no NFD spec (an image with a Proposal F artifact only).
    fn empty() -> Report {
        Report {
            compatible: true,
            verdict: Compat::Compatible.as_str(),
            origin: Origin::default(),
            tags: Vec::new(),
            best_set: None,
            reason: None,
            sets: Vec::new(),
            compatibilities: serde_json::json!([]),
            warnings: Vec::new(),
            oci_compat: None,
            outcome: Outcome::Compatible {
                detail: String::new(),
            },
            nfd_json: "[]".into(),
        }
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
