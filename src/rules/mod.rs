//! NFD's matching engine over a compatibility spec: compile once, evaluate against features,
//! and the verdict across compatibility sets.

pub mod budget;
pub mod expr;
pub mod matcher;
pub mod report;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::features::Features;
use crate::spec::{GroupRule, Spec};
use budget::Budget;
pub use matcher::Term;
use matcher::{eval_matcher, Lookup, Recorded, TermError};
pub use report::Failure;

pub use budget::{BudgetError, Limits};
pub use expr::{Expr, ExprError, Op, Version};
pub use matcher::StepError;

/// A spec with every regex compiled and every bound parsed, ready to evaluate many times.
#[derive(Debug, Clone)]
pub struct CompiledSpec {
    spec: Spec,
    sets: Vec<Vec<Rule>>,
    limits: Limits,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    features: Option<Vec<Term>>,
    any: Vec<Vec<Term>>,
    /// The varsTemplate, parsed (a parse error fails the evaluation only where NFD would run
    /// the template); None without one.
    template: Option<Arc<Result<template::Template, template::TemplateError>>>,
}

impl Rule {
    fn compile(r: &GroupRule, budget: &mut Budget) -> Rule {
        let mut terms = |ts: &[crate::spec::FeatureMatcherTerm]| {
            ts.iter().map(|t| Term::compile(t, budget)).collect()
        };
        Rule {
            features: r.match_features.as_deref().map(&mut terms),
            any: r
                .match_any
                .iter()
                .map(|a| terms(&a.match_features))
                .collect(),
            template: (!r.vars_template.is_empty())
                .then(|| Arc::new(template::Template::parse(&r.vars_template))),
        }
    }
}

/// An expression (or a varsTemplate) NFD would refuse while evaluating this spec on this node.
#[derive(Debug, Clone, thiserror::Error)]
#[error("compatibility set {set}, rule \"{rule}\", {at}: {error}")]
pub struct EvalError {
    pub set: usize,
    pub rule: String,
    /// `feature "pci.device" element "vendor"`, `feature "cpu.cpuid"` (matchName), or
    /// `varsTemplate`.
    pub at: String,
    pub error: Box<StepError>,
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
    /// Refused when the spec exceeds `limits` (see [`budget`]).
    pub fn compile(spec: Spec, limits: Limits) -> Result<CompiledSpec, BudgetError> {
        Self::compile_with(spec, limits).map_err(|(_, e)| e)
    }

    /// [`CompiledSpec::compile`], handing the spec back when it is refused.
    pub fn compile_with(spec: Spec, limits: Limits) -> Result<CompiledSpec, (Spec, BudgetError)> {
        let mut budget = Budget::new(limits);
        let mut sets = Vec::with_capacity(spec.compatibilities.len());
        for c in &spec.compatibilities {
            let mut rules = Vec::with_capacity(c.rules.len());
            for r in &c.rules {
                rules.push(Rule::compile(r, &mut budget));
                if let Some(e) = budget.exceeded.take() {
                    drop(sets);
                    return Err((spec, e));
                }
            }
            sets.push(rules);
        }
        Ok(CompiledSpec { spec, sets, limits })
    }

    /// [`CompiledSpec::compile`] without bounds (tests and tools on trusted specs).
    pub fn new(spec: Spec) -> CompiledSpec {
        let mut budget = Budget::new(Limits::unlimited());
        let sets = spec
            .compatibilities
            .iter()
            .map(|c| {
                c.rules
                    .iter()
                    .map(|r| Rule::compile(r, &mut budget))
                    .collect()
            })
            .collect();
        CompiledSpec {
            spec,
            sets,
            limits: Limits::unlimited(),
        }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Why rule `rule` of set `set`'s varsTemplate does not parse, if it does not.
    pub fn template_error(&self, set: usize, rule: usize) -> Option<&template::TemplateError> {
        self.sets[set][rule]
            .template
            .as_deref()
            .and_then(|t| t.as_ref().err())
    }

    /// The compiled terms of rule `rule` of set `set`: its matchFeatures (`any: None`) or its
    /// matchAny element `any`.
    pub fn terms(&self, set: usize, rule: usize, any: Option<usize>) -> &[Term] {
        let r = &self.sets[set][rule];
        match any {
            None => r.features.as_deref().unwrap_or_default(),
            Some(a) => &r.any[a],
        }
    }

    /// Evaluates the selected sets in spec order, as `nfd compat validate-node` does: one
    /// `rule.matched` feature collects rule vars across all of them, and the first expression
    /// NFD would reject aborts the whole evaluation.
    pub fn evaluate(&self, features: &Features, tags: &[String]) -> Result<Evaluation, EvalError> {
        let mut lookup = Lookup::new(features, self.limits.max_steps);
        let mut sets = Vec::new();
        for (si, (set, rules)) in self.spec.compatibilities.iter().zip(&self.sets).enumerate() {
            if !tags.is_empty() && !tags.contains(&set.tag) {
                continue;
            }
            let mut outcomes = Vec::with_capacity(rules.len());
            for (rule, compiled) in set.rules.iter().zip(rules) {
                let out = eval_rule(rule, compiled, &mut lookup).map_err(|e| {
                    let (at, error) = match e {
                        RuleError::Term(e, which) => {
                            let terms = match which {
                                None => rule.match_features.as_deref().unwrap_or_default(),
                                Some(a) => &rule.match_any[a].match_features,
                            };
                            let mut at = format!("feature \"{}\"", terms[e.term].feature);
                            if let Some(n) = e.element {
                                at.push_str(&format!(" element \"{n}\""));
                            }
                            (at, e.error)
                        }
                        RuleError::Template(e) => ("varsTemplate".to_string(), e),
                    };
                    EvalError {
                        set: si,
                        rule: rule.name.clone(),
                        at,
                        error: Box::new(error),
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

/// Why a rule's evaluation stopped: an expression (in matchFeatures: None, or matchAny element
/// i), or its varsTemplate.
enum RuleError {
    Term(TermError, Option<usize>),
    Template(StepError),
}

/// NFD's `ExecuteGroupRule` with failFast=false: every matchAny element is evaluated (NFD does
/// not stop at the first match then), then matchFeatures; the varsTemplate runs over the matched
/// elements of each matching matchAny element and of matching matchFeatures; its variables,
/// then the static `vars` (which win), are published unless matchFeatures failed.
fn eval_rule(
    rule: &GroupRule,
    compiled: &Rule,
    lookup: &mut Lookup,
) -> Result<RuleOutcome, RuleError> {
    let collect = compiled.template.is_some();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut any_match = false;
    let mut any_recorded = Vec::with_capacity(compiled.any.len());
    for (i, terms) in compiled.any.iter().enumerate() {
        let (m, rec, matched) =
            eval_matcher(terms, lookup, collect).map_err(|e| RuleError::Term(e, Some(i)))?;
        any_match |= m;
        any_recorded.push(rec);
        if m {
            run_template(compiled, &matched, &mut vars)?;
        }
    }
    let mut features_match = true;
    let mut features_recorded = Vec::new();
    if let Some(terms) = compiled.features.as_ref().filter(|t| !t.is_empty()) {
        let (m, rec, matched) =
            eval_matcher(terms, lookup, collect).map_err(|e| RuleError::Term(e, None))?;
        features_match = m;
        features_recorded = rec;
        if m {
            run_template(compiled, &matched, &mut vars)?;
        }
    }
    let is_match = (compiled.any.is_empty() || any_match) && features_match;
    let failures = if is_match {
        Vec::new()
    } else {
        report::explain_rule(rule, compiled, lookup, any_match, features_match)
    };
    // NFD returns the rule's vars unless matchFeatures failed, even when matchAny failed.
    if features_match {
        vars.extend(rule.vars.iter().cloned());
    } else {
        vars.clear();
    }
    lookup.publish_vars(&vars);
    Ok(RuleOutcome {
        is_match,
        features_recorded,
        any_recorded,
        failures,
    })
}

/// Runs the rule's varsTemplate over one matcher's matched elements, adding its variables.
fn run_template(
    compiled: &Rule,
    matched: &matcher::Matched,
    vars: &mut Vec<(String, String)>,
) -> Result<(), RuleError> {
    let Some(parsed) = &compiled.template else {
        return Ok(());
    };
    let failed = |e: template::TemplateError| RuleError::Template(StepError::Template(e));
    let t = match parsed.as_ref() {
        Ok(t) => t,
        Err(e) => {
            return Err(failed(template::TemplateError::FailedParse(Box::new(
                e.clone(),
            ))))
        }
    };
    let data: BTreeMap<String, BTreeMap<String, Vec<template::Value>>> = matched
        .iter()
        .map(|(dom, names)| {
            let names = names
                .iter()
                .map(|(n, elems)| {
                    (
                        n.clone(),
                        elems.iter().map(template::matched_element).collect(),
                    )
                })
                .collect();
            (dom.clone(), names)
        })
        .collect();
    let limits = template::Limits::default();
    let wrap = |e| template::TemplateError::FailedExpand(Box::new(e));
    let out = t
        .execute(&template::matched_features(&data), &limits)
        .map_err(|e| failed(wrap(e)))?;
    let parsed = template::parse_vars(&out).map_err(|e| failed(wrap(e)))?;
    vars.extend(parsed);
    Ok(())
}
