//! The images of an audit and who uses them: a plain list, a Kubernetes pod list, this node's containerd.

use serde_json::Value;

/// One image to check, and what uses it (pods' containers, containerd containers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// The reference as given (a pod's `image`, a list's line).
    pub image: String,
    pub used_by: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("{origin}: not a pod list: {message}")]
    Pods { origin: String, message: String },
}

/// A plain list: one reference per line; blank lines and `#` comments skipped.
pub fn from_list(text: &str) -> Vec<ImageUse> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| ImageUse {
            image: l.to_string(),
            used_by: Vec::new(),
        })
        .collect()
}

/// `kubectl get pods -A -o json` (a List of Pods, or one Pod): every container, init
/// container and ephemeral container image, each with the `namespace/pod/container` using it.
pub fn from_pods(text: &str, origin: &str) -> Result<Vec<ImageUse>, ImagesError> {
    let err = |message: String| ImagesError::Pods {
        origin: origin.to_string(),
        message,
    };
    let v: Value = serde_json::from_str(text).map_err(|e| err(format!("not JSON: {e}")))?;
    let pods: Vec<&Value> = match v.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None if v.get("kind").and_then(Value::as_str) == Some("Pod") => vec![&v],
        None => return Err(err("expected a List with items, or a Pod".into())),
    };
    let mut uses = Vec::new();
    for (i, pod) in pods.into_iter().enumerate() {
        let meta = pod.get("metadata");
        let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        let pod_name = match field("name") {
            Some(n) => format!("{}/{n}", field("namespace").unwrap_or("default")),
            None => format!("item {i}"),
        };
        let spec = pod
            .get("spec")
            .ok_or_else(|| err(format!("{pod_name}: no spec")))?;
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(image) = c.get("image").and_then(Value::as_str) else {
                    continue;
                };
                let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
                uses.push(ImageUse {
                    image: image.to_string(),
                    used_by: vec![format!("{pod_name}/{name}")],
                });
            }
        }
    }
    Ok(uses)
}

/// The images of containerd's containers, each with the containers using it.
pub fn from_containers(containers: Vec<crate::runtime::ContainerImage>) -> Vec<ImageUse> {
    containers
        .into_iter()
        .map(|c| ImageUse {
            image: c.image,
            used_by: vec![c.user],
        })
        .collect()
}

/// One entry per image (first-seen order), its users merged, each listed once.
pub fn merge(uses: impl IntoIterator<Item = ImageUse>) -> Vec<ImageUse> {
    let mut out: Vec<ImageUse> = Vec::new();
    let mut at = std::collections::HashMap::new();
    for u in uses {
        match at.get(&u.image) {
            Some(&i) => {
                let entry: &mut ImageUse = &mut out[i];
                for user in u.used_by {
                    if !entry.used_by.contains(&user) {
                        entry.used_by.push(user);
                    }
                }
            }
            None => {
                at.insert(u.image.clone(), out.len());
                out.push(u);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_pods() {
        let list = from_list("# images\nreg/a:1\n\n  reg/b:2  # the second\n");
        assert_eq!(
            list.iter().map(|u| u.image.as_str()).collect::<Vec<_>>(),
            ["reg/a:1", "reg/b:2"]
        );
        let pods = r#"{"kind":"List","items":[
          {"metadata":{"name":"p1","namespace":"ns"},"spec":{
            "initContainers":[{"name":"init","image":"reg/a:1"}],
            "containers":[{"name":"app","image":"reg/b:2"},{"name":"side","image":"reg/a:1"}]}},
          {"metadata":{"name":"p2"},"spec":{"containers":[{"name":"app","image":"reg/b:2"}]}}]}"#;
        let uses = merge(from_pods(pods, "pods.json").unwrap());
        assert_eq!(uses.len(), 2);
        assert_eq!(uses[0].image, "reg/a:1");
        assert_eq!(uses[0].used_by, ["ns/p1/init", "ns/p1/side"]);
        assert_eq!(uses[1].used_by, ["ns/p1/app", "default/p2/app"]);
        let one = r#"{"kind":"Pod","metadata":{"name":"x","namespace":"n"},"spec":{"containers":[{"name":"c","image":"i:1"}]}}"#;
        assert_eq!(from_pods(one, "p").unwrap()[0].used_by, ["n/x/c"]);
        let err = from_pods("[1]", "pods.json").unwrap_err().to_string();
        assert!(err.contains("pods.json: not a pod list"), "{err}");
        let err = from_pods("{", "-").unwrap_err().to_string();
        assert!(err.contains("not JSON"), "{err}");
    }
}
