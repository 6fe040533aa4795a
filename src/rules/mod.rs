//! NFD's matching engine over a compatibility spec: compile once, evaluate against features,
//! and the verdict across compatibility sets.

pub mod expr;
pub mod matcher;
pub mod report;
pub mod template;

use crate::features::Features;
use crate::spec::{GroupRule, Spec};
use matcher::{eval_matcher, Lookup, Recorded, Term, TermError};
pub use report::Failure;

pub use expr::{Expr, ExprError, Op, Version};

/// A spec with every regex compiled and every bound parsed, ready to evaluate many times.
#[derive(Debug, Clone)]
pub struct CompiledSpec {
    spec: Spec,
    sets: Vec<Vec<Rule>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    features: Option<Vec<Term>>,
    any: Vec<Vec<Term>>,
}

impl Rule {
    fn compile(r: &GroupRule) -> Rule {
        let terms = |ts: &[crate::spec::FeatureMatcherTerm]| ts.iter().map(Term::compile).collect();
        Rule {
            features: r.match_features.as_deref().map(terms),
            any: r
                .match_any
                .iter()
                .map(|a| terms(&a.match_features))
                .collect(),
        }
    }
}

/// An expression NFD would refuse while evaluating this spec on this node.
#[derive(Debug, Clone, thiserror::Error)]
#[error("compatibility set {set}, rule \"{rule}\", feature \"{feature}\"{element}: {error}")]
pub struct EvalError {
    pub set: usize,
    pub rule: String,
    pub feature: String,
    /// ` element "name"` or empty (matchName).
    pub element: String,
    pub error: Box<ExprError>,
}

/// The outcome of one evaluation: every selected set, and the verdict across them.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Selected sets (all, or those whose tag was asked for), in spec order.
    pub sets: Vec<SetOutcome>,
    /// True when at least one selected set has every rule matching.
    pub compatible: bool,
    /// Position in `sets` of the best match: the matching set with the highest weight, the
    /// first one in spec order on a tie.
    pub best: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct SetOutcome {
    /// Index of the set in the spec.
    pub index: usize,
    pub is_match: bool,
    pub rules: Vec<RuleOutcome>,
}

#[derive(Debug, Clone)]
pub struct RuleOutcome {
    pub is_match: bool,
    /// What evaluation recorded as matched, for NFD's report.
    pub(crate) features_recorded: Vec<Recorded>,
    pub(crate) any_recorded: Vec<Vec<Recorded>>,
    /// Why the rule failed, for people; empty when it matched.
    pub failures: Vec<Failure>,
}

impl CompiledSpec {
    /// Compiles without judging: expressions NFD would reject are kept and fail when (and
    /// only when) NFD's evaluation would reach them. Use `spec::validate` to reject them first.
    pub fn new(spec: Spec) -> CompiledSpec {
        let sets = spec
            .compatibilities
            .iter()
            .map(|c| c.rules.iter().map(Rule::compile).collect())
            .collect();
        CompiledSpec { spec, sets }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Evaluates the selected sets in spec order, as `nfd compat validate-node` does: one
    /// `rule.matched` feature collects rule vars across all of them, and the first expression
    /// NFD would reject aborts the whole evaluation.
    pub fn evaluate(&self, features: &Features, tags: &[String]) -> Result<Evaluation, EvalError> {
        let mut lookup = Lookup::new(features);
        let mut sets = Vec::new();
        for (si, (set, rules)) in self.spec.compatibilities.iter().zip(&self.sets).enumerate() {
            if !tags.is_empty() && !tags.contains(&set.tag) {
                continue;
            }
            let mut outcomes = Vec::with_capacity(rules.len());
            for (rule, compiled) in set.rules.iter().zip(rules) {
                let out = eval_rule(rule, compiled, &mut lookup).map_err(|(e, which)| {
                    let terms = match which {
                        None => rule.match_features.as_deref().unwrap_or_default(),
                        Some(a) => &rule.match_any[a].match_features,
                    };
                    EvalError {
                        set: si,
                        rule: rule.name.clone(),
                        feature: terms[e.term].feature.clone(),
                        element: e
                            .element
                            .map(|n| format!(" element \"{n}\""))
                            .unwrap_or_default(),
                        error: Box::new(e.error),
                    }
                })?;
                outcomes.push(out);
            }
            let is_match = outcomes.iter().all(|r| r.is_match);
            sets.push(SetOutcome {
                index: si,
                is_match,
                rules: outcomes,
            });
        }
        let best = sets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_match)
            .max_by(|(ia, a), (ib, b)| {
                let wa = self.spec.compatibilities[a.index].weight;
                let wb = self.spec.compatibilities[b.index].weight;
                wa.cmp(&wb).then(ib.cmp(ia))
            })
            .map(|(i, _)| i);
        Ok(Evaluation {
            compatible: best.is_some(),
            best,
            sets,
        })
    }
}

/// NFD's `ExecuteGroupRule` with failFast=false. The error names the matcher it came from
/// (None = matchFeatures, Some(i) = matchAny element i).
fn eval_rule(
    rule: &GroupRule,
    compiled: &Rule,
    lookup: &mut Lookup,
) -> Result<RuleOutcome, (TermError, Option<usize>)> {
    let mut any_match = false;
    let mut any_recorded = Vec::with_capacity(compiled.any.len());
    for (i, terms) in compiled.any.iter().enumerate() {
        let (m, rec) = eval_matcher(terms, lookup).map_err(|e| (e, Some(i)))?;
        any_match |= m;
        any_recorded.push(rec);
    }
    let mut features_match = true;
    let mut features_recorded = Vec::new();
    if let Some(terms) = compiled.features.as_ref().filter(|t| !t.is_empty()) {
        let (m, rec) = eval_matcher(terms, lookup).map_err(|e| (e, None))?;
        features_match = m;
        features_recorded = rec;
    }
    let is_match = (compiled.any.is_empty() || any_match) && features_match;
    let failures = if is_match {
        Vec::new()
    } else {
        report::explain_rule(rule, compiled, lookup, any_match, features_match)
    };
    // NFD returns the rule's vars unless matchFeatures failed, even when matchAny failed.
    let no_vars: &[(String, String)] = &[];
    lookup.publish_vars(if features_match { &rule.vars } else { no_vars });
    Ok(RuleOutcome {
        is_match,
        features_recorded,
        any_recorded,
        failures,
    })
}
