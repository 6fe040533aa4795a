//! The one decision path: image identity -> cached spec -> evaluate -> Verdict.

pub mod verdict;

pub use verdict::{Outcome, Verdict};
