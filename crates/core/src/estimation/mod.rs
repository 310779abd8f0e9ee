//! Performance estimation without labels (issue #18): confidence-based performance
//! estimation (CBPE) as NannyML 0.13.1 defines it, binary and multiclass.
//!
//! Why: outcomes arrive late (or never); CBPE estimates accuracy, precision, recall, F1
//! and ROC AUC of a window from the model's own (calibrated) scores, so a window can be
//! judged before its labels are joined. The rules, including NannyML's quirks that are
//! copied on purpose, are in `docs/estimation-nannyml-notes.md` (cited as "notes §n");
//! `crates/core/tests/estimation_oracle.rs` checks every number against NannyML's output
//! in `tests/oracle/estimation_golden.json`.
//!
//! Layout:
//! - [`isotonic`]: isotonic regression (scikit-learn's conventions), the calibrator's fit;
//!
//! Pure, synchronous, deterministic, no I/O. Undefined values are `f64::NAN` (NannyML's
//! `NaN`), never a panic.

pub mod isotonic;

pub use isotonic::IsotonicRegression;

/// Errors of the estimation layer: invalid inputs, never numerical trouble (that is NaN).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EstimationError {
    #[error("the reference has no rows")]
    EmptyReference,
    #[error("reference row {row} has no label")]
    UnlabelledReferenceRow { row: usize },
    #[error("row {row}: score {score} is not finite")]
    NonFiniteScore { row: usize, score: f64 },
    #[error(
        "isotonic regression needs as many labels as scores ({scores} scores, {labels} labels)"
    )]
    LengthMismatch { scores: usize, labels: usize },
    #[error("multiclass needs at least two classes, sorted and unique; got {0:?}")]
    InvalidClasses(Vec<String>),
    #[error("row {row}: {got} scores for {expected} classes")]
    ScoreCount {
        row: usize,
        got: usize,
        expected: usize,
    },
    #[error("row {row}: class index {index} out of range ({classes} classes)")]
    ClassIndex {
        row: usize,
        index: usize,
        classes: usize,
    },
    #[error("class {0:?} never occurs as a label in the reference")]
    ClassMissingFromReference(String),
}
