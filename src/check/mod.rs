//! The one decision path: an image's identity -> its answer from the registry (kept in a
//! [`Store`]) -> the verdict on this node's features, and the [`Report`] that explains it.
//!
//! The NRI plugin and the OCI hook ask a [`Checker`] (the plugin with answers in memory, the
//! hook in files shared by its processes); `evaluate`, `validate-node` and `audit` build a
//! [`Report`] from the same evaluation.

pub mod answer;
pub mod checker;
pub mod cpu;
pub mod document;
pub mod identity;
pub mod report;
pub mod store;
pub mod verdict;

use crate::features::Features;
use crate::rules::report::{reason, set_label};
use crate::rules::Evaluation;
use crate::spec;
pub use answer::{fetch, inspect, inspect_resolved, Answer, Inspection};
pub use checker::{Candidates, Checker, ClientError, Lookup, NodeFeatures, Source};
pub use identity::{image_of, ImageIdentity, NameResolver, ResolveError, Resolver};
pub use report::{report, report_compat, report_image, CompatReport, Origin, Report, ReportError};
pub use store::{Entry, MemoryStore, Store, StoreError};
pub use verdict::{Compat, Outcome, Verdict};

/// The verdict for one image reference on these features: the registry asked now, no store
/// (tools and tests; the edges go through a [`Checker`]).
pub async fn check_image(
    client: &crate::registry::Client,
    image: &crate::registry::Reference,
    platform: &crate::registry::Platform,
    features: &Features,
    tags: &[String],
) -> Verdict {
    Answer::of(inspect(client, image, platform, crate::spec::Reading::Nfd).await)
        .verdict(features, tags)
}

/// The outcome of evaluating a loaded spec on `features`, for the sets `tags` select.
pub fn evaluate(loaded: &spec::Loaded, features: &Features, tags: &[String]) -> Outcome {
    match loaded.spec.evaluate(features, tags) {
        Err(e) => Outcome::InvalidSpec {
            error: format!("evaluation failed: {e}"),
        },
        Ok(eval) => outcome(loaded, &eval, tags),
    }
}

/// The outcome of an evaluation: the best matching set, the reason none matches, or no set
/// selected by `tags`.
pub fn outcome(loaded: &spec::Loaded, eval: &Evaluation, tags: &[String]) -> Outcome {
    let compiled = &loaded.spec;
    if eval.sets.is_empty() {
        return Outcome::NoSetSelected {
            message: no_set_selected(loaded, tags),
        };
    }
    match eval.best {
        Some(b) => {
            let i = eval.sets[b].index;
            Outcome::Compatible {
                detail: format!(
                    "best set {}",
                    set_label(i, &compiled.spec().compatibilities[i])
                ),
            }
        }
        None => Outcome::Incompatible {
            reason: reason(compiled, eval).unwrap_or_else(|| "no set matches".into()),
        },
    }
}

/// The message when `tags` select no set: the question has no answer.
fn no_set_selected(loaded: &spec::Loaded, tags: &[String]) -> String {
    if loaded.spec.spec().compatibilities.is_empty() {
        return "the spec has no compatibility sets, so it says nothing about any node".into();
    }
    let mut known: Vec<&str> = loaded
        .spec
        .spec()
        .compatibilities
        .iter()
        .map(|c| c.tag.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    known.dedup();
    format!(
        "no compatibility set has a tag in [{}] (tags in the spec: [{}])",
        tags.join(", "),
        known.join(", ")
    )
}
