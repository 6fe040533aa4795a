//! Reports of an evaluation: NFD's validate-node report (byte for byte), and failure
//! explanations a person can act on.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::expr::go_expr;
use super::matcher::{match_multi, match_names, FeatureView, Lookup, Recorded, Term};
use super::{CompiledSpec, Evaluation, Rule};
use crate::spec::{Compatibility, FeatureMatcherTerm, GroupRule, MatchExpression};

/// NFD's `CompatibilityStatus`; field order and omitempty as NFD's Go structs.
#[derive(Debug, Clone, Serialize)]
pub struct CompatibilityStatus<'a> {
    pub rules: Option<Vec<ProcessedRuleStatus<'a>>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub description: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    pub weight: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub tag: &'a str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessedRuleStatus<'a> {
    pub name: &'a str,
    pub is_match: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_expressions: Vec<MatchedExpression<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_any: Vec<MatchAnyStatus<'a>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchAnyStatus<'a> {
    pub matched_expressions: Option<Vec<MatchedExpression<'a>>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedExpression<'a> {
    pub feature: &'a str,
    pub name: &'a str,
    /// null for a null expression, as NFD prints its nil pointer.
    #[serde(serialize_with = "null_expression")]
    pub expression: &'a MatchExpression,
    pub matcher_type: &'static str,
    pub is_match: bool,
}

fn null_expression<S: serde::Serializer>(e: &&MatchExpression, s: S) -> Result<S::Ok, S::Error> {
    if e.null {
        s.serialize_none()
    } else {
        e.serialize(s)
    }
}

fn is_zero(w: &i64) -> bool {
    *w == 0
}

/// NFD's `validate-node --output-json` array for this evaluation.
pub fn nfd_report<'a>(spec: &'a CompiledSpec, eval: &Evaluation) -> Vec<CompatibilityStatus<'a>> {
    eval.sets
        .iter()
        .map(|s| {
            let set = &spec.spec.compatibilities[s.index];
            let rules: Vec<_> = set
                .rules
                .iter()
                .zip(&s.rules)
                .map(|(rule, out)| ProcessedRuleStatus {
                    name: &rule.name,
                    is_match: out.is_match,
                    matched_expressions: matched_expressions(
                        rule.match_features.as_deref().unwrap_or_default(),
                        &out.features_recorded,
                    ),
                    matched_any: rule
                        .match_any
                        .iter()
                        .zip(&out.any_recorded)
                        .map(|(elem, rec)| {
                            let m = matched_expressions(&elem.match_features, rec);
                            MatchAnyStatus {
                                matched_expressions: (!m.is_empty()).then_some(m),
                            }
                        })
                        .collect(),
                })
                .collect();
            CompatibilityStatus {
                rules: (!rules.is_empty()).then_some(rules),
                description: &set.description,
                weight: set.weight,
                tag: &set.tag,
            }
        })
        .collect()
}

/// NFD's `matchFeatureExpressions`: one entry per expression of every term, `isMatch` when a
/// recorded term of the same feature (compared as written against NFD's lower-cased record)
/// matched an expression with the same key, op and values; sorted by feature, name and
/// expression text.
fn matched_expressions<'a>(
    terms: &'a [FeatureMatcherTerm],
    recorded: &[Recorded],
) -> Vec<MatchedExpression<'a>> {
    let recorded_lc: Vec<(String, &Recorded)> = recorded
        .iter()
        .map(|r| (terms[r.term].feature.to_lowercase(), r))
        .collect();
    let same = |a: &MatchExpression, b: &MatchExpression| a.op == b.op && a.value == b.value;
    let mut out = Vec::new();
    for term in terms {
        let of_feature = || {
            recorded_lc
                .iter()
                .filter(|(f, _)| *f == term.feature)
                .map(|(_, r)| *r)
        };
        for (name, exp) in term.match_expressions.iter().flatten() {
            let is_match = of_feature().any(|r| {
                let Some(flags) = &r.exprs else {
                    return false;
                };
                let rt = &terms[r.term];
                rt.match_expressions
                    .iter()
                    .flatten()
                    .zip(flags)
                    .any(|((k, e), m)| *m && k == name && same(e, exp))
            });
            out.push(MatchedExpression {
                feature: &term.feature,
                name,
                expression: exp,
                matcher_type: "matchExpression",
                is_match,
            });
        }
        if let Some(exp) = &term.match_name {
            let is_match = of_feature().any(|r| {
                r.name
                    && terms[r.term]
                        .match_name
                        .as_ref()
                        .is_some_and(|e| same(e, exp))
            });
            out.push(MatchedExpression {
                feature: &term.feature,
                name: "",
                expression: exp,
                matcher_type: "matchName",
                is_match,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.feature, a.name)
            .cmp(&(b.feature, b.name))
            .then_with(|| go_expr(a.expression).cmp(&go_expr(b.expression)))
    });
    out
}

/// Serializes like Go's `json.Marshal`: compact, and `<`, `>`, `&`, U+2028 and U+2029
/// escaped as `\u003c`-style sequences, so `nfd-json` output is byte for byte NFD's.
pub fn to_go_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    let mut out = String::new();
    write_go_json(&v, &mut out);
    Ok(out)
}

fn write_go_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                write_go_json(item, out);
            }
            out.push('}');
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Why a rule did not match, in a form a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The feature as written in the spec.
    pub feature: String,
    /// e.g. `vendor In [10de] did not match (node has vendor 1af4, 8086)`.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.feature, self.message)
    }
}

/// Explains a failed rule. Each term is judged on its own (what a person means by "this
/// requirement is not met"); errors cannot happen here because evaluation already passed.
pub(super) fn explain_rule(
    rule: &GroupRule,
    compiled: &Rule,
    lookup: &Lookup,
    any_match: bool,
    features_match: bool,
) -> Vec<Failure> {
    let mut out = Vec::new();
    if !features_match {
        if let (Some(terms), Some(specs)) = (&compiled.features, &rule.match_features) {
            for (t, s) in terms.iter().zip(specs) {
                out.extend(explain_term(s, t, lookup));
            }
        }
    }
    if !compiled.any.is_empty() && !any_match {
        let alternatives: Vec<String> = rule
            .match_any
            .iter()
            .zip(&compiled.any)
            .enumerate()
            .map(|(i, (elem, terms))| {
                let why: Vec<String> = elem
                    .match_features
                    .iter()
                    .zip(terms)
                    .flat_map(|(s, t)| explain_term(s, t, lookup))
                    .map(|f| f.to_string())
                    .collect();
                format!("({}) {}", i + 1, why.join("; "))
            })
            .collect();
        out.push(Failure {
            feature: "matchAny".into(),
            message: format!("no alternative matched: {}", alternatives.join(" | ")),
        });
    }
    out
}

fn explain_term(spec: &FeatureMatcherTerm, term: &Term, lookup: &Lookup) -> Vec<Failure> {
    let fail = |message: String| Failure {
        feature: spec.feature.clone(),
        message,
    };
    let Some(f) = lookup.get(&term.feature_lc) else {
        return vec![fail("feature not found on this node".into())];
    };
    let mut out = Vec::new();
    let mut exprs_ok = true;
    if let (Some(exprs), Some(specs)) = (&term.exprs, &spec.match_expressions) {
        if let Ok((m, matched)) = match_multi(exprs, f, &lookup.steps, None) {
            exprs_ok = m;
            if !m {
                out.extend(
                    explain_exprs(specs, exprs, &matched, f)
                        .into_iter()
                        .map(fail),
                );
            }
        }
    }
    if let (true, Some(name), Some(spec_name)) = (exprs_ok, &term.name, &spec.match_name) {
        if let Ok(false) = match_names(name, f, &lookup.steps) {
            out.push(fail(format!("no element name matches {spec_name}")));
        }
    }
    out
}

fn explain_exprs(
    specs: &[(String, MatchExpression)],
    exprs: &[(String, super::Expr)],
    matched: &[bool],
    f: FeatureView,
) -> Vec<String> {
    let mut out = Vec::new();
    let union = f.flags.is_some() || f.attrs.is_some();
    for (i, ((name, spec), (_, e))) in specs.iter().zip(exprs).enumerate() {
        // A person reads the first few; a spec of thousands of failing expressions must not
        // make thousands of messages.
        if out.len() == MAX_EXPLAINED {
            let rest = matched[i..].iter().filter(|m| !**m).count();
            if rest > 0 {
                out.push(format!(
                    "{rest} more expressions of this term did not match"
                ));
            }
            break;
        }
        if union {
            let in_flags = f.flags.map(|k| k.contains(name));
            let value = f.attrs.and_then(|a| a.get(name));
            let flag_ok = in_flags.map(|v| e.eval(v, None).unwrap_or(false));
            let attr_ok = f
                .attrs
                .map(|_| e.eval(value.is_some(), value.map(String::as_str)));
            let attr_ok = attr_ok.map(|r| r.unwrap_or(false));
            let ok = if e.is_does_not_exist() {
                flag_ok.unwrap_or(true) && attr_ok.unwrap_or(true)
            } else {
                flag_ok.unwrap_or(false) || attr_ok.unwrap_or(false)
            };
            if ok {
                continue;
            }
            let have = match (value, in_flags) {
                (Some(v), _) => format!("node has {name}={v:?}"),
                (None, Some(true)) => format!("node has {name}"),
                _ => format!("{name} is not present"),
            };
            out.push(format!("{name} {spec} did not match ({have})"));
        } else if !matched[i] {
            out.push(format!(
                "{name} {spec} did not match ({})",
                instance_values(f, name)
            ));
        }
    }
    if out.is_empty() && f.instances.is_some() {
        let all: Vec<String> = specs.iter().map(|(n, s)| format!("{n} {s}")).collect();
        out.push(match f.instances {
            Some([]) => "the node has no instance of this feature".to_string(),
            _ => format!("no single instance matches all of: {}", all.join(", ")),
        });
    }
    out
}

/// Failed expressions of one term explained one by one; the rest are counted.
const MAX_EXPLAINED: usize = 16;

/// `node has vendor 1af4, 8086` or `no instance has vendor`, capped for readability.
fn instance_values(f: FeatureView, name: &str) -> String {
    let values: BTreeSet<&str> = f
        .instances
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.attributes.get(name).map(String::as_str))
        .collect();
    if values.is_empty() {
        return format!("no instance has {name}");
    }
    let shown: Vec<&str> = values.iter().take(8).copied().collect();
    let more = if values.len() > 8 {
        format!(" and {} more", values.len() - 8)
    } else {
        String::new()
    };
    format!("node has {name} {}{more}", shown.join(", "))
}

/// How a set is named in messages: `"gpu"` (its tag), its description, or `#2`.
pub fn set_label(index: usize, c: &Compatibility) -> String {
    if !c.tag.is_empty() {
        format!("\"{}\"", c.tag)
    } else if !c.description.is_empty() {
        format!("\"{}\"", c.description)
    } else {
        format!("#{index}")
    }
}

/// One line saying why the image is not compatible, from the set a person most likely
/// cares about (the highest weight, first on a tie): `set "gpu" rule "nvidia driver":
/// pci.device: vendor In [10de] did not match (node has vendor 8086)`.
pub fn reason(spec: &CompiledSpec, eval: &Evaluation) -> Option<String> {
    if eval.compatible {
        return None;
    }
    let sets = &spec.spec.compatibilities;
    let Some(set) = eval.sets.iter().rev().max_by_key(|s| sets[s.index].weight) else {
        return Some("no compatibility set was selected".into());
    };
    let c = &sets[set.index];
    let (rule, out) = c.rules.iter().zip(&set.rules).find(|(_, o)| !o.is_match)?;
    let why = out
        .failures
        .first()
        .map(|f| f.to_string())
        .unwrap_or_else(|| "did not match".into());
    let more = match out.failures.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Some(format!(
        "set {} rule \"{}\": {why}{more}",
        set_label(set.index, c),
        rule.name
    ))
}
