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
//! - [`auc_sample`]: the bounded, order-independent, mergeable sample of a window's rows
//!   that ROC AUC (estimated and realized) is computed on;
//! - [`isotonic`]: isotonic regression (scikit-learn's conventions), the calibrator's fit;
//! - [`calibration`]: the calibrator (isotonic or none) and the `auto` decision;
//! - [`cbpe`]: the fitted reference, the per-window accumulators and the estimates;
//! - [`realized`]: the realized metrics of a labelled window (for thresholds and for
//!   comparison);
//! - [`sampling_error`]: sampling-error components, standard errors, thresholds, bands,
//!   alerts.
//!
//! Pure, synchronous, deterministic, no I/O. Undefined values are `f64::NAN` (NannyML's
//! `NaN`), never a panic.

pub mod auc_sample;
pub mod calibration;
pub mod cbpe;
pub mod isotonic;
pub mod realized;
pub mod sampling_error;

pub use auc_sample::AucSample;
pub use calibration::{needs_calibration, CalibrationDecision, CalibrationMode, Calibrator};
pub use cbpe::{
    estimate_binary, estimate_multiclass, BinaryReference, BinaryRow, BinaryWindow,
    MulticlassReference, MulticlassRow, MulticlassWindow,
};
pub use isotonic::IsotonicRegression;
pub use sampling_error::Thresholds;

/// The five estimated metrics, in NannyML's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1,
    RocAuc,
}

impl Metric {
    /// Every metric, in the order of the arrays indexed by [`Metric::index`].
    pub const ALL: [Metric; 5] = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::RocAuc,
    ];

    /// Position in [`Metric::ALL`] (and in every `[_; 5]` of this module).
    pub fn index(self) -> usize {
        self as usize
    }

    /// NannyML's name of the metric.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::RocAuc => "roc_auc",
        }
    }
}

/// One metric of one window: NannyML's chunk record (notes §0, §7).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricEstimate {
    /// The CBPE estimate (NaN if undefined, e.g. an empty window).
    pub value: f64,
    /// Standard error of the estimate for this window's row count.
    pub sampling_error: f64,
    /// `max(0, value - 3 * sampling_error)`.
    pub lower: f64,
    /// `min(1, value + 3 * sampling_error)`.
    pub upper: f64,
    /// Reference-based lower threshold (constant for a fitted reference).
    pub threshold_lower: f64,
    /// Reference-based upper threshold.
    pub threshold_upper: f64,
    /// `value < threshold_lower || value > threshold_upper` (false for NaN).
    pub alert: bool,
    /// The realized metric over the window's labelled rows (NaN if undefined or unlabelled).
    pub realized: f64,
    /// Standard error of the realized metric (labelled row count).
    pub realized_sampling_error: f64,
    /// The alert rule applied to `realized`.
    pub realized_alert: bool,
}

/// The estimates of one window, one [`MetricEstimate`] per [`Metric`].
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    /// Rows in the window.
    pub rows: usize,
    /// Rows of the window with a label (the realized metrics use these).
    pub labelled_rows: usize,
    /// Indexed by [`Metric::index`].
    pub metrics: [MetricEstimate; 5],
}

impl Estimates {
    /// The record of one metric.
    pub fn get(&self, metric: Metric) -> &MetricEstimate {
        &self.metrics[metric.index()]
    }
}

/// Errors of the estimation layer: invalid inputs, never numerical trouble (that is NaN).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EstimationError {
    #[error("the reference has no rows")]
    EmptyReference,
    #[error("reference row {row} has no label")]
    UnlabelledReferenceRow { row: usize },
    #[error("row {row}: an outcome without a label")]
    MissingLabel { row: usize },
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
