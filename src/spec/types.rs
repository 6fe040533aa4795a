//! The image compatibility spec v1alpha1 as data: sets of NFD GroupRules.

use serde::{Deserialize, Serialize};

/// The only spec version this tool understands (NFD's `image-compatibility/v1alpha1`).
pub const SPEC_VERSION: &str = "v1alpha1";

pub use crate::yaml::Pos;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Spec {
    pub version: String,
    pub compatibilities: Vec<Compatibility>,
}

/// One compatibility set: the image runs on a node where all its rules match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Compatibility {
    pub rules: Vec<GroupRule>,
    pub weight: i64,
    pub tag: String,
    pub description: String,
    #[serde(skip)]
    pub pos: Pos,
}

/// NFD's GroupRule: all `matchFeatures` terms and at least one `matchAny` element must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
pub struct GroupRule {
    pub name: String,
    /// Variables published to later rules as the `rule.matched` feature when this rule matches.
    pub vars: Vec<(String, String)>,
    /// Go template producing more vars; image-compat refuses specs that use it (see validate).
    pub vars_template: String,
    /// `None` when the key is absent or null; `Some(vec![])` for `matchFeatures: []`.
    pub match_features: Option<Vec<FeatureMatcherTerm>>,
    pub match_any: Vec<MatchAnyElem>,
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
pub struct MatchAnyElem {
    pub match_features: Vec<FeatureMatcherTerm>,
    #[serde(skip)]
    pub pos: Pos,
}

/// Requirements on one feature (`pci.device`, `kernel.loadedmodule`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
pub struct FeatureMatcherTerm {
    /// As written; lookups lower-case it, reports keep it as written (as NFD does).
    pub feature: String,
    /// Element name -> expression, in document order. `None` when absent or null, which NFD
    /// treats differently from an empty map (an empty map matches any existing feature).
    pub match_expressions: Option<Vec<(String, MatchExpression)>>,
    pub match_name: Option<MatchExpression>,
    #[serde(skip)]
    pub pos: Pos,
}

/// `{op, value, type}`. `op` is kept as written so reports and errors show what the author
/// wrote; the rule engine parses it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MatchExpression {
    pub op: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub value: Vec<String>,
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub value_type: String,
    /// Written as `null` (`vendor: ~`): NFD decodes a nil expression, on which its evaluation
    /// crashes wherever it reaches it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub null: bool,
    #[serde(skip)]
    pub pos: Pos,
}

impl MatchExpression {
    pub fn new(op: &str, value: &[&str]) -> Self {
        MatchExpression {
            op: op.to_string(),
            value: value.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }
    }
}

impl std::fmt::Display for MatchExpression {
    /// `In [10de, 8086]`, `Exists`, `Ge [5.15] (version)`, `Any` for the empty op.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.op.is_empty() { "Any" } else { &self.op })?;
        if !self.value.is_empty() {
            write!(f, " [{}]", self.value.join(", "))?;
        }
        if !self.value_type.is_empty() {
            write!(f, " ({})", self.value_type)?;
        }
        Ok(())
    }
}
