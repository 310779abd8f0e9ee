//! Statistical drift detection: two-sample statistics between a frozen
//! reference and a window (KS, Wasserstein, PSI, Jensen-Shannon, chi-square),
//! bounded mergeable summaries, the `drifted` decision rule, and streaming
//! change detectors (ADWIN, DDM, Page-Hinkley) matching River.
//! Everything here is pure, synchronous and deterministic; see docs/drift.md for
//! the formulas and edge-case rules.

pub mod compare;
pub mod decision;
pub mod detectors;
pub mod reference;
pub mod special;
pub mod stream;
pub mod summary;
pub mod two_sample;

pub use compare::{compare_categorical, compare_numeric, CategoricalDrift, NumericDrift};
pub use decision::{DriftMethod, DriftRule};
pub use detectors::{
    Adwin, AdwinConfig, Ddm, DdmConfig, PageHinkley, PageHinkleyConfig, PageHinkleyMode,
};
pub use reference::{CategoricalReference, NumericReference};
pub use summary::{fnv1a64, CategoricalSummary, NumericSummary};
pub use two_sample::{
    chi_square_gof, jensen_shannon_distance, ks_2samp, psi, wasserstein_1, KsResult, TestResult,
};

/// Errors of the drift layer (configuration only: statistics themselves
/// report undefined values as `None`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriftError {
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("method {method:?} does not apply to {kind} features")]
    MethodNotApplicable {
        method: DriftMethod,
        kind: &'static str,
    },
}
