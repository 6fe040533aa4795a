//! The plugin's image resolver: containerd's image store first (every repository and digest an
//! artifact may hang on), the image name through the registry when containerd cannot tell.

use async_trait::async_trait;
use tracing::debug;

use super::Runtime;
use crate::check::{Candidates, ImageIdentity, NameResolver, ResolveError, Resolver};
use crate::registry::Reference;

/// Resolves through containerd's image index; falls back to the name (resolved in the
/// registry) when containerd does not know the image, is unreachable, or cannot read its
/// content, so a container is still checked rather than let through as unknown.
pub struct ContainerdResolver {
    runtime: Runtime,
}

impl ContainerdResolver {
    pub fn new(runtime: Runtime) -> Self {
        ContainerdResolver { runtime }
    }
}

#[async_trait]
impl Resolver for ContainerdResolver {
    async fn candidates(&self, image: &ImageIdentity) -> Result<Candidates, ResolveError> {
        match self.runtime.subjects(&image.name).await {
            Ok(subjects) => {
                let mut refs: Vec<Reference> = subjects
                    .candidates
                    .into_iter()
                    .map(|c| c.reference)
                    .collect();
                // The runtime's own digest (NRI >= 0.12) is authoritative: look there first.
                if let Some(d) = image.digests.first().cloned() {
                    if let Some(first) = refs.first().cloned() {
                        let exact = first.at_digest(d);
                        refs.retain(|r| *r != exact);
                        refs.insert(0, exact);
                    }
                }
                Ok(Candidates(refs))
            }
            Err(e) => {
                debug!(image = %image.name, error = %e, "containerd cannot resolve the image; resolving its name in the registry");
                NameResolver.candidates(image).await
            }
        }
    }
}
