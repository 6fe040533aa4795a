//! Reads a saved features file: NFD's NodeFeature object, its spec, or the features alone.

use std::path::Path;

use super::Features;
use crate::yaml;

#[derive(Debug, thiserror::Error)]
pub enum FeaturesFileError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML or JSON: {source}")]
    Syntax {
        path: String,
        #[source]
        source: yaml::YamlError,
    },
    #[error("{path}: not a features file: {message}")]
    Shape { path: String, message: String },
}

/// Reads a features file in any of the shapes a node admin has at hand:
/// `kubectl get nodefeature NAME -o yaml|json` (`spec.features`), a NodeFeatureSpec
/// (`features`), or the features themselves (`image-compat features --output json`).
pub fn read(path: &Path) -> Result<Features, FeaturesFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FeaturesFileError::Io {
        path: shown.clone(),
        source,
    })?;
    parse(&text, &shown)
}

pub fn parse(text: &str, origin: &str) -> Result<Features, FeaturesFileError> {
    let shape = |message: String| FeaturesFileError::Shape {
        path: origin.to_string(),
        message,
    };
    let syntax = |source| FeaturesFileError::Syntax {
        path: origin.to_string(),
        source,
    };
    let root = yaml::load(text)
        .map_err(syntax)?
        .ok_or_else(|| shape("the file is empty".into()))?;
    let value = yaml::to_json(&root).map_err(syntax)?;
    from_value(value, origin)
}

/// [`parse`] of a document already read (one item of a NodeFeatureList, say).
pub fn from_value(
    mut value: serde_json::Value,
    origin: &str,
) -> Result<Features, FeaturesFileError> {
    let shape = |message: String| FeaturesFileError::Shape {
        path: origin.to_string(),
        message,
    };
    for wrapper in ["spec", "features"] {
        if let Some(inner) = value.get_mut(wrapper).map(std::mem::take) {
            value = inner;
        }
    }
    let obj = value
        .as_object()
        .ok_or_else(|| shape("expected a map with flags, attributes or instances".into()))?;
    if !["flags", "attributes", "instances"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return Err(shape(
            "it has none of flags, attributes or instances (expected NFD's \
             NodeFeatureSpec features shape, e.g. the output of `image-compat features`)"
                .into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| shape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_shape() {
        let features = r#"{"attributes":{"kernel.version":{"elements":{"major":"6"}}}}"#;
        let node_feature = format!(
            r#"{{"apiVersion":"nfd.k8s-sigs.io/v1alpha1","kind":"NodeFeature","spec":{{"features":{features},"labels":{{}}}}}}"#
        );
        let spec = format!(r#"{{"features":{features}}}"#);
        let yaml = "attributes:\n  kernel.version:\n    elements:\n      major: \"6\"\n";
        for doc in [features.to_string(), node_feature, spec, yaml.to_string()] {
            let f = parse(&doc, "f").unwrap();
            assert_eq!(
                f.attributes["kernel.version"].elements["major"], "6",
                "{doc}"
            );
        }
    }

    #[test]
    fn clear_errors() {
        let err = parse("a: 1\n", "f.yaml").unwrap_err().to_string();
        assert!(
            err.contains("f.yaml: not a features file: it has none of flags"),
            "{err}"
        );
        let err = parse("flags: {a: [1, 2\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.yaml: not valid YAML or JSON"), "{err}");
        let err = parse(r#"{"flags": {"a.b": {"elements": 5}}}"#, "f.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.json: not a features file"), "{err}");
        assert!(parse("", "f").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn unquoted_yaml_values_are_text() {
        let f = parse(
            "attributes:\n  a.b:\n    elements: {num: 10, ver: 6.10, on: yes}\n",
            "f",
        )
        .unwrap();
        let e = &f.attributes["a.b"].elements;
        assert_eq!(
            (e["num"].as_str(), e["ver"].as_str(), e["true"].as_str()),
            ("10", "6.1", "true")
        );
    }
}
