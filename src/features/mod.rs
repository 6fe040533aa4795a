//! Host feature discovery with NFD's feature names, and the features data model.

pub mod file;
pub mod model;

pub use model::{
    AttributeFeatureSet, Features, FlagFeatureSet, InstanceFeature, InstanceFeatureSet,
};
