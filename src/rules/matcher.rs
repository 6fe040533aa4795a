//! Feature matcher terms and group rules, evaluated as NFD evaluates them with failFast=false.
//!
//! Mirrors NFD's `evaluateFeatureMatcher`, `MatchMulti`, `MatchGetInstances`,
//! `MatchNamesMulti` and `ExecuteGroupRule` (pkg/apis/nfd/nodefeaturerule), including what
//! they record as "matched" for the validate-node report and two quirks kept on purpose so
//! verdicts agree with NFD's:
//! - the term-level match flag carries over from one term to the next: a `matchName` is only
//!   evaluated when the previous term (or this term's matchExpressions) matched;
//! - a rule whose matchAny fails but whose matchFeatures match still publishes its `vars`.

use std::collections::{BTreeMap, BTreeSet};

use super::budget::{Budget, BudgetError, Steps};
use super::expr::{Expr, ExprError};
use crate::features::{Features, InstanceFeature};
use crate::spec::FeatureMatcherTerm;

/// One term, compiled.
#[derive(Debug, Clone)]
pub struct Term {
    /// NFD lower-cases the term's feature name before the lookup.
    pub feature_lc: String,
    /// Where a varsTemplate finds this term's matched elements: NFD splits the name as
    /// written at its first `.` (a name without one: the lower-cased name and "").
    pub template_key: (String, String),
    pub exprs: Option<Vec<(String, Expr)>>,
    pub name: Option<Expr>,
}

impl Term {
    pub fn compile(t: &FeatureMatcherTerm, budget: &mut Budget) -> Term {
        let feature_lc = t.feature.to_lowercase();
        let template_key = match t.feature.split_once('.') {
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (feature_lc.clone(), String::new()),
        };
        Term {
            feature_lc,
            template_key,
            exprs: t.match_expressions.as_ref().map(|set| {
                set.iter()
                    .map(|(k, e)| (k.clone(), Expr::compile_within(e, budget)))
                    .collect()
            }),
            name: t
                .match_name
                .as_ref()
                .map(|e| Expr::compile_within(e, budget)),
        }
    }
}

/// The three parts of one feature as the matcher sees them; `None` = that type is absent.
#[derive(Clone, Copy)]
pub struct FeatureView<'a> {
    pub flags: Option<&'a BTreeSet<String>>,
    pub attrs: Option<&'a BTreeMap<String, String>>,
    pub instances: Option<&'a [InstanceFeature]>,
}

/// The node's features plus the `rule.matched` attributes published by earlier rules, and the
/// evaluation's step count.
pub struct Lookup<'a> {
    pub base: &'a Features,
    pub rule_matched: Option<BTreeMap<String, String>>,
    pub steps: Steps,
}

pub const RULE_MATCHED: &str = "rule.matched";

impl<'a> Lookup<'a> {
    pub fn new(base: &'a Features, max_steps: u64) -> Self {
        Lookup {
            base,
            rule_matched: None,
            steps: Steps::new(max_steps),
        }
    }

    pub fn get(&self, name: &str) -> Option<FeatureView<'_>> {
        let attrs = match (&self.rule_matched, name == RULE_MATCHED) {
            (Some(m), true) => Some(m),
            _ => self.base.attributes.get(name).map(|a| &a.elements),
        };
        let view = FeatureView {
            flags: self.base.flags.get(name).map(|f| &f.elements),
            attrs,
            instances: self.base.instances.get(name).map(|i| i.elements.as_slice()),
        };
        (view.flags.is_some() || view.attrs.is_some() || view.instances.is_some()).then_some(view)
    }

    /// NFD's `InsertAttributeFeatures("rule", "matched", vars)`, run after every rule: creates
    /// the feature (possibly empty) and adds the rule's vars.
    pub fn publish_vars(&mut self, vars: &[(String, String)]) {
        let base = self.base;
        let m = self.rule_matched.get_or_insert_with(|| {
            base.attributes
                .get(RULE_MATCHED)
                .map(|a| a.elements.clone())
                .unwrap_or_default()
        });
        m.extend(vars.iter().cloned());
    }
}

/// What evaluation recorded as matched for one term (NFD's `MatchedFeaturesTerms` entry).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub term: usize,
    /// Per expression of the term: matched somewhere (flags, attributes or any instance).
    pub exprs: Option<Vec<bool>>,
    pub name: bool,
}

/// An expression error, with the term (and element name, for matchExpressions) it came from.
#[derive(Debug, Clone)]
pub struct TermError {
    pub term: usize,
    pub element: Option<String>,
    pub error: StepError,
}

/// Why evaluating a rule stopped: NFD's own error (an expression, a varsTemplate), or our
/// step bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Expr(#[from] ExprError),
    #[error(transparent)]
    Template(#[from] super::template::TemplateError),
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// One step, then the expression.
fn eval(steps: &Steps, e: &Expr, valid: bool, value: Option<&str>) -> Result<bool, StepError> {
    steps.take()?;
    Ok(e.eval(valid, value)?)
}

/// One matched element as a varsTemplate sees it: `{Name}` for a flag, `{Name, Value}` for an
/// attribute, an instance's attribute map.
pub type Elem = BTreeMap<String, String>;

/// A matcher's matched elements by domain and name (NFD's `matchedFeatures`): what a
/// varsTemplate runs over.
pub type Matched = BTreeMap<String, BTreeMap<String, Vec<Elem>>>;

/// Evaluates a list of terms (a rule's matchFeatures, or one matchAny element). With
/// `collect`, also the matched elements, as NFD gathers them for a varsTemplate.
pub fn eval_matcher(
    terms: &[Term],
    features: &Lookup,
    collect: bool,
) -> Result<(bool, Vec<Recorded>, Matched), TermError> {
    let mut is_match = true;
    let mut term_match = true; // carried across terms, as in NFD
    let mut recorded = Vec::new();
    let mut matched = Matched::new();
    for (i, term) in terms.iter().enumerate() {
        let (dom, nam) = &term.template_key;
        if collect {
            matched.entry(dom.clone()).or_default();
        }
        let Some(f) = features.get(&term.feature_lc) else {
            is_match = false;
            continue;
        };
        let mut elems = collect.then(Vec::new);
        let mut rec = Recorded {
            term: i,
            exprs: None,
            name: false,
        };
        if let Some(exprs) = &term.exprs {
            let (m, hits) =
                match_multi(exprs, f, &features.steps, elems.as_mut()).map_err(|(k, error)| {
                    TermError {
                        term: i,
                        element: Some(exprs[k].0.clone()),
                        error,
                    }
                })?;
            term_match = m;
            rec.exprs = Some(hits);
        }
        if term_match {
            if let Some(name) = &term.name {
                let named = match elems.as_mut() {
                    Some(elems) => collect_names(name, f, &features.steps, elems),
                    None => match_names(name, f, &features.steps),
                };
                term_match = named.map_err(|error| TermError {
                    term: i,
                    element: None,
                    error,
                })?;
                rec.name = term_match;
            }
        }
        if let Some(elems) = elems {
            matched
                .entry(dom.clone())
                .or_default()
                .entry(nam.clone())
                .or_default()
                .extend(elems);
        }
        if rec.name || rec.exprs.as_ref().is_some_and(|e| e.contains(&true)) {
            recorded.push(rec);
        }
        if !term_match {
            is_match = false;
        }
    }
    Ok((is_match, recorded, matched))
}

/// NFD's `MatchMulti`: flags and attributes form one union (an expression matching in either
/// is enough, except DoesNotExist which must hold in both); instances are tried one by one
/// against the whole set. Returns the term's match and, per expression, whether it matched
/// anywhere.
/// An error carries the index of the failing expression.
pub fn match_multi(
    exprs: &[(String, Expr)],
    f: FeatureView,
    steps: &Steps,
    mut elems: Option<&mut Vec<Elem>>,
) -> Result<(bool, Vec<bool>), (usize, StepError)> {
    let mut matched = vec![false; exprs.len()];
    let mut is_match = f.flags.is_some() || f.attrs.is_some();
    for (i, (name, e)) in exprs.iter().enumerate() {
        let (mut mk, mut mv) = (false, false);
        if let Some(keys) = f.flags {
            mk = eval(steps, e, keys.contains(name), None).map_err(|err| (i, err))?;
            if mk {
                matched[i] = true;
                if let Some(out) = elems.as_deref_mut() {
                    out.push(Elem::from([(NAME.to_string(), name.clone())]));
                }
            } else if e.is_does_not_exist() {
                is_match = false;
                continue;
            }
        }
        if let Some(values) = f.attrs {
            let v = values.get(name).map(String::as_str);
            mv = eval(steps, e, v.is_some(), v).map_err(|err| (i, err))?;
            if mv {
                matched[i] = true;
                if let Some(out) = elems.as_deref_mut() {
                    out.push(Elem::from([
                        (NAME.to_string(), name.clone()),
                        (VALUE.to_string(), v.unwrap_or_default().to_string()),
                    ]));
                }
            } else if e.is_does_not_exist() {
                is_match = false;
                continue;
            }
        }
        if !mk && !mv {
            is_match = false;
        }
    }
    // NFD sorts the flag and attribute elements by name (sort.Slice, not stable: a flag and an
    // attribute of the same name may come in either order; here the flag first).
    if let Some(out) = elems.as_deref_mut() {
        out.sort_by(|a, b| a.get(NAME).cmp(&b.get(NAME)));
    }
    if let Some(instances) = f.instances {
        let mut any = false;
        for inst in instances {
            let mut all = true;
            for (i, (name, e)) in exprs.iter().enumerate() {
                let v = inst.attributes.get(name).map(String::as_str);
                if eval(steps, e, v.is_some(), v).map_err(|err| (i, err))? {
                    matched[i] = true;
                } else {
                    all = false;
                }
            }
            if all {
                if let Some(out) = elems.as_deref_mut() {
                    out.push(inst.attributes.clone());
                }
            }
            any |= all;
        }
        is_match |= any;
    }
    Ok((is_match, matched))
}

/// The keys of a matched element (NFD's `MatchedKeyName`, `MatchedKeyValue`).
pub const NAME: &str = "Name";
pub const VALUE: &str = "Value";

/// NFD's `MatchNamesMulti` with its matched elements, for a varsTemplate: every flag name
/// (`{Name}`) and attribute name (`{Name, Value}`) matching, sorted by name, then the attribute
/// map of every instance with a matching attribute name.
pub fn collect_names(
    e: &Expr,
    f: FeatureView,
    steps: &Steps,
    out: &mut Vec<Elem>,
) -> Result<bool, StepError> {
    let start = out.len();
    let mut named = Vec::new();
    for n in f.flags.into_iter().flatten() {
        if eval(steps, e, true, Some(n))? {
            named.push(Elem::from([(NAME.to_string(), n.clone())]));
        }
    }
    for (n, v) in f.attrs.into_iter().flatten() {
        if eval(steps, e, true, Some(n))? {
            named.push(Elem::from([
                (NAME.to_string(), n.clone()),
                (VALUE.to_string(), v.clone()),
            ]));
        }
    }
    named.sort_by(|a, b| a.get(NAME).cmp(&b.get(NAME)));
    out.extend(named);
    for inst in f.instances.into_iter().flatten() {
        let mut any = false;
        for n in inst.attributes.keys() {
            any |= eval(steps, e, true, Some(n))?;
        }
        if any {
            out.push(inst.attributes.clone());
        }
    }
    Ok(out.len() > start)
}

/// NFD's `MatchNamesMulti`: the expression against every element name (flags, attributes,
/// instance attributes). Every name is checked, so a name that is not a number fails a `Gt`
/// even when another name matched, as in NFD.
pub fn match_names(e: &Expr, f: FeatureView, steps: &Steps) -> Result<bool, StepError> {
    if !e.input_can_fail() {
        if let Some(prefixes) = e.literal_prefixes() {
            return match_names_with_prefixes(e, f, &prefixes, steps);
        }
    }
    let names = f
        .flags
        .into_iter()
        .flatten()
        .chain(f.attrs.into_iter().flat_map(|a| a.keys()))
        .chain(
            f.instances
                .into_iter()
                .flatten()
                .flat_map(|i| i.attributes.keys()),
        );
    let can_fail = e.input_can_fail();
    let mut any = false;
    for n in names {
        if eval(steps, e, true, Some(n))? {
            any = true;
            if !can_fail {
                break;
            }
        }
    }
    Ok(any)
}

/// `match_names` for anchored regexes: only the names starting with a required prefix can
/// match, and names are sorted, so a range scan finds them.
fn match_names_with_prefixes(
    e: &Expr,
    f: FeatureView,
    prefixes: &[&str],
    steps: &Steps,
) -> Result<bool, StepError> {
    use std::ops::Bound::{Included, Unbounded};
    let scan = |names: &mut dyn Iterator<Item = &String>, p: &str| -> Result<bool, StepError> {
        for n in names.take_while(|n| n.starts_with(p)) {
            if eval(steps, e, true, Some(n))? {
                return Ok(true);
            }
        }
        Ok(false)
    };
    for &p in prefixes {
        let from = (Included(p), Unbounded);
        if let Some(flags) = f.flags {
            if scan(&mut flags.range::<str, _>(from), p)? {
                return Ok(true);
            }
        }
        if let Some(attrs) = f.attrs {
            if scan(&mut attrs.range::<str, _>(from).map(|(k, _)| k), p)? {
                return Ok(true);
            }
        }
        // Each instance's names are sorted on their own: scan them one by one.
        for i in f.instances.into_iter().flatten() {
            if scan(&mut i.attributes.range::<str, _>(from).map(|(k, _)| k), p)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MatchExpression;

    /// The pruned scan must agree with checking every name, on every feature type.
    #[test]
    fn prefix_pruning_agrees_with_a_full_scan() {
        let mut f = Features::default();
        f.set_flags("a.flags", ["AVX", "AVX2", "AVX512BW", "SSE4", "XAVX"]);
        f.set_attributes(
            "a.attrs",
            [("VFIO", "y"), ("VFIO_PCI", "m"), ("XVFIO_", "y")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        f.set_instances(
            "a.inst",
            vec![
                BTreeMap::from([("zz".to_string(), "1".to_string())]),
                BTreeMap::from([
                    ("aa".to_string(), "1".to_string()),
                    ("vendor".to_string(), "x".to_string()),
                ]),
            ],
        );
        let lookup = Lookup::new(&f, u64::MAX);
        for pattern in [
            "^AVX512",
            "^AVX512(F|BW)$",
            "^VFIO_",
            "^VFIO_X",
            "^vend",
            "^ven(x|d)",
            "^zz$",
            "^Q",
        ] {
            let pruned = Expr::compile(&MatchExpression::new("InRegexp", &[pattern]));
            assert!(pruned.literal_prefixes().is_some(), "{pattern}");
            // The same regex hidden behind a non-anchored alternative takes the full scan.
            let full = Expr::compile(&MatchExpression::new("InRegexp", &[pattern, "^$"]));
            assert!(full.literal_prefixes().is_none());
            for feature in ["a.flags", "a.attrs", "a.inst"] {
                let view = lookup.get(feature).unwrap();
                assert_eq!(
                    match_names(&pruned, view, &lookup.steps).unwrap(),
                    match_names(&full, view, &lookup.steps).unwrap(),
                    "{pattern} on {feature}"
                );
            }
        }
    }
}
