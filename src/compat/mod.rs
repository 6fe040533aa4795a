//! The OCI image-compatibility working group's generic artifacts (Proposal F, "Artifact
//! Compatibility Outline"): a JSON document `{"compatibilities": {GROUP: {KEY: VALUE}}}`,
//! each compatibility interest group defining its own keys. Read with located errors
//! ([`parse`]), evaluated on a node ([`eval`]).
//!
//! Groups image-compat understands itself: `nfd` (NFD's node labels, computed from the node's
//! features as nfd-worker does), `io.archspec` (the node's microarchitecture, `target`: that
//! target or a descendant of it). Any other group is matched against what the node's admin
//! declares (`features.compatDir`), which is also how a site declares `io.archspec` itself.

pub mod eval;
mod lint;
mod parse;

pub use eval::{evaluate, Evaluation, KeyResult, Outcome as GroupOutcome};
pub use lint::Problem;
pub use parse::{parse, CompatError, Document, Group, Key, Parsed, Scalar, MAX_BYTES};

pub use crate::registry::media::{
    OCI_COMPAT_ARTIFACT_TYPE as ARTIFACT_TYPE, OCI_COMPAT_LAYER as LAYER_MEDIA_TYPE,
};
/// The groups image-compat evaluates itself.
pub const GROUP_NFD: &str = "nfd";
pub const GROUP_ARCHSPEC: &str = "io.archspec";

/// Whether a document is a Proposal F one rather than an NFD spec: JSON whose top level has
/// `compatibilities` as an object (an NFD spec has `version` and a list). For `attach-spec`
/// and `validate-spec` to pick the format; a document that is neither is read as NFD's.
pub fn looks_like(text: &str) -> bool {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if !t.starts_with('{') {
        return false;
    }
    // Cheap and tolerant of the broken JSON people paste: the first key is "compatibilities"
    // followed by an object, and there is no "version".
    let Some(rest) = t[1..].trim_start().strip_prefix("\"compatibilities\"") else {
        return false;
    };
    rest.trim_start()
        .strip_prefix(':')
        .is_some_and(|r| r.trim_start().starts_with('{'))
        && !t.contains("\"version\"")
}
