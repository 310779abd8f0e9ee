//! Quality metrics as mergeable aggregates: what a window accumulates per joined pair, and
//! how the published values are computed from it (scikit-learn's definitions).

pub mod classification;
pub mod regression;

pub use classification::{
    classification_metrics, BinaryPair, ConfusionMatrix, LabelContext, ScoreAggregate,
};
pub use regression::RegressionAggregate;
