//! The node's features in NFD's `NodeFeatureSpec.features` shape: the data the rule engine reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// All features of one node, keyed by `<source>.<feature>` (e.g. `cpu.cpuid`, `pci.device`).
///
/// A feature *exists* when its name is a key in any of the three maps, even with no elements:
/// NFD's matching distinguishes a missing feature (a term never matches) from an empty one.
/// Ordered maps keep every output (JSON, YAML, tables) stable across runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Features {
    pub flags: BTreeMap<String, FlagFeatureSet>,
    pub attributes: BTreeMap<String, AttributeFeatureSet>,
    pub instances: BTreeMap<String, InstanceFeatureSet>,
}

/// Names without values (`cpu.cpuid`, `kernel.loadedmodule`). JSON: `{"elements": {"AVX": {}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagFeatureSet {
    pub elements: BTreeSet<String>,
}

/// Names with string values (`kernel.version`, `system.osrelease`).
/// JSON: `{"elements": {"major": "6"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttributeFeatureSet {
    #[serde(deserialize_with = "string_map")]
    pub elements: BTreeMap<String, String>,
}

/// A list of instances, each a set of attributes (`pci.device`, `network.device`).
/// JSON: `{"elements": [{"attributes": {"vendor": "8086"}}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceFeatureSet {
    #[serde(deserialize_with = "instance_list")]
    pub elements: Vec<InstanceFeature>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceFeature {
    #[serde(deserialize_with = "string_map")]
    pub attributes: BTreeMap<String, String>,
}

impl Features {
    /// True when `name` is a key of flags, attributes or instances.
    pub fn exists(&self, name: &str) -> bool {
        self.flags.contains_key(name)
            || self.attributes.contains_key(name)
            || self.instances.contains_key(name)
    }

    /// Adds (or replaces) a flag feature.
    pub fn set_flags<I, S>(&mut self, name: &str, elements: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let elements = elements.into_iter().map(Into::into).collect();
        self.flags
            .insert(name.to_string(), FlagFeatureSet { elements });
    }

    /// Adds (or replaces) an attribute feature.
    pub fn set_attributes(&mut self, name: &str, elements: BTreeMap<String, String>) {
        self.attributes
            .insert(name.to_string(), AttributeFeatureSet { elements });
    }

    /// Adds (or replaces) an instance feature.
    pub fn set_instances(&mut self, name: &str, instances: Vec<BTreeMap<String, String>>) {
        let elements = instances
            .into_iter()
            .map(|attributes| InstanceFeature { attributes })
            .collect();
        self.instances
            .insert(name.to_string(), InstanceFeatureSet { elements });
    }

    /// Merges `other` into `self`; `other` wins on conflicts (NFD's `Features.MergeInto`:
    /// flags and attributes are unioned per feature, instances appended).
    pub fn merge(&mut self, other: Features) {
        for (k, v) in other.flags {
            self.flags.entry(k).or_default().elements.extend(v.elements);
        }
        for (k, v) in other.attributes {
            self.attributes
                .entry(k)
                .or_default()
                .elements
                .extend(v.elements);
        }
        for (k, v) in other.instances {
            self.instances
                .entry(k)
                .or_default()
                .elements
                .extend(v.elements);
        }
    }

    /// Number of features (names), for logs and metrics.
    pub fn len(&self) -> usize {
        let mut names: BTreeSet<&str> = self.flags.keys().map(String::as_str).collect();
        names.extend(self.attributes.keys().map(String::as_str));
        names.extend(self.instances.keys().map(String::as_str));
        names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty() && self.attributes.is_empty() && self.instances.is_empty()
    }
}

impl Serialize for FlagFeatureSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Elements<'a>(&'a BTreeSet<String>);
        impl Serialize for Elements<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for k in self.0 {
                    m.serialize_entry(k, &Nil {})?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("elements", &Elements(&self.elements))?;
        m.end()
    }
}

/// NFD's `Nil`: the empty value of a flag element, `{}` in JSON.
#[derive(Serialize)]
struct Nil {}

impl<'de> Deserialize<'de> for FlagFeatureSet {
    /// NFD's `{"elements": {"AVX": {}}}`; `{}` and `{"elements": null}` are an empty set.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Shape {
            #[serde(default)]
            elements: Option<BTreeMap<String, de::IgnoredAny>>,
        }
        let elements = Shape::deserialize(d)?
            .elements
            .map(|m| m.into_keys().collect())
            .unwrap_or_default();
        Ok(FlagFeatureSet { elements })
    }
}

/// A scalar read as a string: YAML or JSON numbers and booleans become their text, as
/// sigs.k8s.io/yaml does for NFD when the target field is a string.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of names to string values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = a.next_entry::<String, Scalar>()? {
                out.insert(k, v.0);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

fn instance_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<InstanceFeature>, D::Error> {
    Ok(Option::<Vec<InstanceFeature>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfd_json_round_trip() {
        let json = r#"{"flags":{"cpu.cpuid":{"elements":{"AVX":{},"SSE4":{}}}},"attributes":{"kernel.version":{"elements":{"major":"6"}}},"instances":{"pci.device":{"elements":[{"attributes":{"vendor":"8086"}}]}}}"#;
        let f: Features = serde_json::from_str(json).unwrap();
        assert!(f.flags["cpu.cpuid"].elements.contains("AVX"));
        assert_eq!(f.attributes["kernel.version"].elements["major"], "6");
        assert_eq!(
            f.instances["pci.device"].elements[0].attributes["vendor"],
            "8086"
        );
        assert_eq!(serde_json::to_string(&f).unwrap(), json);
    }

    #[test]
    fn numbers_and_bools_become_strings() {
        let json = r#"{"attributes":{"a.b":{"elements":{"n":10,"t":true}}}}"#;
        let f: Features = serde_json::from_str(json).unwrap();
        assert_eq!(f.attributes["a.b"].elements["n"], "10");
        assert_eq!(f.attributes["a.b"].elements["t"], "true");
    }

    #[test]
    fn empty_feature_exists() {
        let f: Features = serde_json::from_str(r#"{"attributes":{"a.b":{}}}"#).unwrap();
        assert!(f.exists("a.b"));
        assert!(!f.exists("a.c"));
        let f: Features =
            serde_json::from_str(r#"{"attributes":{"a.b":{"elements":null}}}"#).unwrap();
        assert!(f.exists("a.b"));
    }

    #[test]
    fn merge_unions_and_appends() {
        let mut a = Features::default();
        a.set_flags("x.y", ["A"]);
        a.set_instances("i.j", vec![BTreeMap::from([("k".into(), "1".into())])]);
        let mut b = Features::default();
        b.set_flags("x.y", ["B"]);
        b.set_instances("i.j", vec![BTreeMap::from([("k".into(), "2".into())])]);
        a.merge(b);
        assert_eq!(a.flags["x.y"].elements.len(), 2);
        assert_eq!(a.instances["i.j"].elements.len(), 2);
    }
}
