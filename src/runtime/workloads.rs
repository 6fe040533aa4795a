//! What runs in the namespace: containers with their image names and pods, for `audit`.

use std::collections::HashSet;

use super::{Runtime, RuntimeError};

/// CRI's labels on a container record: its kind (`sandbox` or `container`) and its pod.
const KIND: &str = "io.cri-containerd.kind";
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const POD_NAME: &str = "io.kubernetes.pod.name";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// One container and the image it was created from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// The image name of the container record (what CRI or `ctr run` was given, normalised).
    pub image: String,
    /// `namespace/pod/container` for a CRI container, else the container id.
    pub user: String,
}

impl Runtime {
    /// The images of the namespace's containers (pod sandboxes left out); with
    /// `running_only`, only of those whose task is running.
    pub async fn container_images(
        &self,
        running_only: bool,
    ) -> Result<Vec<ContainerImage>, RuntimeError> {
        let client = &self.inner.client;
        let containers = client.list_containers().await?;
        let running: Option<HashSet<String>> = if running_only {
            let tasks = client.list_tasks().await?;
            Some(
                tasks
                    .into_iter()
                    .filter(|t| t.status == containerd_client::types::v1::Status::Running as i32)
                    .map(|t| t.id)
                    .collect(),
            )
        } else {
            None
        };
        let mut out: Vec<ContainerImage> = containers
            .into_iter()
            .filter(|c| c.labels.get(KIND).map(String::as_str) != Some("sandbox"))
            .filter(|c| !c.image.is_empty())
            .filter(|c| running.as_ref().is_none_or(|r| r.contains(&c.id)))
            .map(|c| {
                let label = |k: &str| c.labels.get(k).filter(|v| !v.is_empty()).cloned();
                let user = match (label(POD_NAMESPACE), label(POD_NAME), label(CONTAINER_NAME)) {
                    (Some(ns), Some(pod), Some(name)) => format!("{ns}/{pod}/{name}"),
                    _ => c.id.clone(),
                };
                ContainerImage {
                    image: c.image,
                    user,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.image, &a.user).cmp(&(&b.image, &b.user)));
        Ok(out)
    }

    /// The names of the namespace's image records that are registry references (CRI's
    /// `sha256:<config>` id records left out), sorted.
    pub async fn image_names(&self) -> Result<Vec<String>, RuntimeError> {
        let mut names: Vec<String> = self
            .inner
            .client
            .list_images()
            .await?
            .into_iter()
            .map(|i| i.name)
            .filter(|n| !n.starts_with("sha256:"))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}
