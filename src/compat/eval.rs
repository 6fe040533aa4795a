//! A Proposal F document on a node: every key of every group matched against what the node has.
//!
//! - `nfd`: the key is an NFD label name without `feature.node.kubernetes.io/`; the node's
//!   labels are computed from its features as nfd-worker v0.19 does with its default config
//!   ([`labels::worker_labels`]). NFD publishes many boolean labels only when true, so `false`
//!   matches a label that is `"false"` or absent; any other value needs the label with that
//!   value.
//! - `io.archspec` `target`: the node's microarchitecture (the `compat.io.archspec` feature,
//!   detected from /proc/cpuinfo or declared by the admin) must be that target or a descendant
//!   of it in archspec's database.
//! - any other group `G` (and other `io.archspec` keys): the node's admin declares values in
//!   `features.compatDir`, which become the `compat.G` feature; a key must have an equal value.
//!
//! Values compare as JSON values: strings exactly, except two strings that both read as
//! versions (1 to 3 dot-separated numbers, a `v` prefix and a `-suffix` ignored, as NFD's
//! version comparison does: `4.1` equals `4.1.0`); numbers by value, a number and a string
//! holding that number are equal (`4` and `"4"`); booleans as `true`/`false`. A group or key
//! the node declares nothing about is `unknown`: neither a match nor a mismatch.

use super::parse::{Document, Scalar};
use super::{GROUP_ARCHSPEC, GROUP_NFD};
use crate::features::{archspec, compat::ARCHSPEC_FEATURE, labels, Features};
use crate::rules::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Match,
    Mismatch,
    /// The node declares nothing about this group or key.
    Unknown,
}

/// One key's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyResult {
    pub group: String,
    pub key: String,
    /// What the artifact requires, as JSON writes it.
    pub want: String,
    /// What the node has, when it has anything.
    pub have: Option<String>,
    pub outcome: Outcome,
    /// One line a person reads.
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub results: Vec<KeyResult>,
}

impl Evaluation {
    /// The first mismatch, if any.
    pub fn first_mismatch(&self) -> Option<&KeyResult> {
        self.results.iter().find(|r| r.outcome == Outcome::Mismatch)
    }

    /// The first unknown key, if any.
    pub fn first_unknown(&self) -> Option<&KeyResult> {
        self.results.iter().find(|r| r.outcome == Outcome::Unknown)
    }

    pub fn matches(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Match)
            .count()
    }
}

/// Evaluates every key of the document on a node with these features.
pub fn evaluate(doc: &Document, features: &Features) -> Evaluation {
    let mut labels = None;
    let mut results = Vec::new();
    for g in &doc.groups {
        for k in &g.keys {
            let want = k.value.to_string();
            let (have, outcome, why) = match (g.name.as_str(), k.name.as_str()) {
                (GROUP_NFD, key) => {
                    let labels = labels.get_or_insert_with(|| labels::worker_labels(features));
                    nfd_label(labels.get(key).map(String::as_str), key, &k.value)
                }
                (GROUP_ARCHSPEC, "target") => archspec_target(features, &k.value),
                (group, key) => declared(features, group, key, &k.value),
            };
            results.push(KeyResult {
                group: g.name.clone(),
                key: k.name.clone(),
                want,
                have,
                outcome,
                why,
            });
        }
    }
    Evaluation { results }
}

type Judged = (Option<String>, Outcome, String);

fn nfd_label(have: Option<&str>, key: &str, want: &Scalar) -> Judged {
    let name = format!("{}/{key}", labels::FEATURE_LABEL_NS);
    let have_owned = have.map(str::to_string);
    match (want, have) {
        // NFD does not publish most boolean labels when they are false.
        (Scalar::Bool(false), None) => (None, Outcome::Match, format!("{name} is not set")),
        (_, None) => (
            None,
            Outcome::Mismatch,
            format!("needs {name}={}, the node has no such label", plain(want)),
        ),
        (_, Some(h)) if equal(h, want) => (have_owned, Outcome::Match, format!("{name}={h}")),
        (_, Some(h)) => (
            have_owned,
            Outcome::Mismatch,
            format!("needs {name}={}, the node has {name}={h}", plain(want)),
        ),
    }
}

fn archspec_target(features: &Features, want: &Scalar) -> Judged {
    let node = features
        .attributes
        .get(ARCHSPEC_FEATURE)
        .and_then(|a| a.elements.get("target"));
    let Scalar::String(required) = want else {
        return (
            None,
            Outcome::Mismatch,
            format!("{want} is not a target name"),
        );
    };
    let Some(node) = node else {
        return (
            None,
            Outcome::Unknown,
            "the node's archspec target is not known (no /proc/cpuinfo to read, or a features \
             file without compat.io.archspec)"
                .into(),
        );
    };
    match archspec::is_compatible(node, required) {
        Ok(true) => (
            Some(node.clone()),
            Outcome::Match,
            format!("the node is {node}, which runs {required} code"),
        ),
        Ok(false) => (
            Some(node.clone()),
            Outcome::Mismatch,
            format!("needs {required} or a descendant of it, the node is {node}"),
        ),
        Err(e) => (Some(node.clone()), Outcome::Mismatch, e.to_string()),
    }
}

fn declared(features: &Features, group: &str, key: &str, want: &Scalar) -> Judged {
    let feature = format!("compat.{group}");
    let Some(attrs) = features.attributes.get(&feature) else {
        return (
            None,
            Outcome::Unknown,
            format!("the node declares nothing about {group} (features.compatDir)"),
        );
    };
    let Some(have) = attrs.elements.get(key) else {
        return (
            None,
            Outcome::Unknown,
            format!("the node declares no {key} in {group}"),
        );
    };
    if equal(have, want) {
        (Some(have.clone()), Outcome::Match, format!("{key}={have}"))
    } else {
        (
            Some(have.clone()),
            Outcome::Mismatch,
            format!("needs {key}={}, the node has {key}={have}", plain(want)),
        )
    }
}

/// A value as a person writes it: strings without quotes.
fn plain(v: &Scalar) -> String {
    match v {
        Scalar::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether a node's value (text) equals the wanted JSON value (see the module docs).
pub fn equal(have: &str, want: &Scalar) -> bool {
    match want {
        Scalar::Bool(b) => have == if *b { "true" } else { "false" },
        Scalar::Number(n) => number_equal(have, n),
        Scalar::String(s) => {
            if have == s {
                return true;
            }
            match (version(have), version(s)) {
                (Some(a), Some(b)) => a == b,
                _ => match serde_json::from_str::<serde_json::Number>(s) {
                    Ok(n) => number_equal(have, &n),
                    Err(_) => false,
                },
            }
        }
    }
}

fn number_equal(have: &str, n: &serde_json::Number) -> bool {
    let Ok(h) = serde_json::from_str::<serde_json::Number>(have.trim()) else {
        return false;
    };
    match (h.as_i64(), n.as_i64(), h.as_u64(), n.as_u64()) {
        (Some(a), Some(b), _, _) => a == b,
        (_, _, Some(a), Some(b)) => a == b,
        _ => h.as_f64().zip(n.as_f64()).is_some_and(|(a, b)| a == b),
    }
}

/// A version as NFD compares versions, when the text has a dot (a bare number is a number).
fn version(s: &str) -> Option<Version> {
    s.contains('.').then(|| Version::parse(s)).flatten()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::parse;
    use super::*;

    fn node() -> Features {
        let mut f = Features::default();
        f.set_attributes(
            ARCHSPEC_FEATURE,
            BTreeMap::from([("target".to_string(), "zen2".to_string())]),
        );
        f.set_attributes(
            "compat.org.supercontainers",
            BTreeMap::from([
                ("mpi.implementation".to_string(), "openmpi".to_string()),
                ("mpi.version".to_string(), "4.1".to_string()),
                ("gpus".to_string(), "4".to_string()),
            ]),
        );
        f.set_attributes(
            "kernel.version",
            BTreeMap::from([
                ("major".to_string(), "6".to_string()),
                ("full".to_string(), "6.1.0".to_string()),
            ]),
        );
        f
    }

    fn eval(doc: &str) -> Evaluation {
        evaluate(&parse(doc, "t").unwrap().doc, &node())
    }

    #[test]
    fn archspec_targets_and_their_descendants() {
        let e = eval(r#"{"compatibilities": {"io.archspec": {"target": "x86_64_v3"}}}"#);
        assert_eq!(e.results[0].outcome, Outcome::Match, "{e:?}");
        let e = eval(r#"{"compatibilities": {"io.archspec": {"target": "x86_64_v4"}}}"#);
        assert_eq!(e.results[0].outcome, Outcome::Mismatch);
        assert!(e.results[0].why.contains("the node is zen2"), "{e:?}");
        let e = eval(r#"{"compatibilities": {"io.archspec": {"target": "arm64"}}}"#);
        assert_eq!(e.results[0].outcome, Outcome::Mismatch);
        let unknown = evaluate(
            &parse(
                r#"{"compatibilities": {"io.archspec": {"target": "zen"}}}"#,
                "t",
            )
            .unwrap()
            .doc,
            &Features::default(),
        );
        assert_eq!(unknown.results[0].outcome, Outcome::Unknown);
    }

    #[test]
    fn declared_groups_compare_as_json_values() {
        let e = eval(
            r#"{"compatibilities": {"org.supercontainers": {"mpi.implementation": "openmpi",
              "mpi.version": "4.1.0", "gpus": 4, "fabric": "ib"}, "org.other": {"x": 1}}}"#,
        );
        let outcomes: Vec<Outcome> = e.results.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Match,
                Outcome::Match,
                Outcome::Match,
                Outcome::Unknown,
                Outcome::Unknown
            ]
        );
        let e = eval(
            r#"{"compatibilities": {"org.supercontainers": {"mpi.implementation": "mpich"}}}"#,
        );
        assert_eq!(
            e.first_mismatch().unwrap().why,
            "needs mpi.implementation=mpich, the node has mpi.implementation=openmpi"
        );
    }

    #[test]
    fn values() {
        let n = |s: &str| Scalar::Number(serde_json::from_str(s).unwrap());
        assert!(equal("4", &n("4")) && equal("4.0", &n("4")) && !equal("4.1", &n("4")));
        assert!(equal("4", &Scalar::String("4".into())));
        assert!(equal("4.1.6", &Scalar::String("v4.1.6".into())));
        assert!(!equal("4.1.6", &Scalar::String("4.1.7".into())));
        assert!(
            equal("4.1", &Scalar::String("v4.1.0".into())),
            "a missing part is 0"
        );
        assert!(
            equal("6.1.0-13-amd64", &Scalar::String("6.1".into())),
            "a -suffix is no part"
        );
        assert!(equal("true", &Scalar::Bool(true)) && !equal("1", &Scalar::Bool(true)));
        assert!(!equal("openmpi", &Scalar::String("OpenMPI".into())));
    }
}
