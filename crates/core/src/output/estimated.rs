//! The `estimated` object of a metrics record: performance estimated without labels (CBPE,
//! docs/estimation.md) for the predictions whose timestamp falls in the window.
//!
//! Why a separate type: the estimation layer works in `f64` with NaN for undefined values;
//! the output contract has `null` instead (`Option<f64>`), and only the fields a consumer
//! or a rule reads.

use serde::{Deserialize, Serialize};

use crate::estimation::{Estimates, Metric, MetricEstimate};

/// Method name in records.
pub(crate) const CBPE: &str = "cbpe";

/// `"estimated": {"method": "cbpe", "calibrated": …, "n": …, "reference": {…}, "metrics": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatedOut {
    pub method: String,
    /// True when at least one score was calibrated (isotonic); false: raw scores.
    pub calibrated: bool,
    /// Predictions of the window that were estimated.
    pub n: u64,
    pub reference: EstimationReferenceOut,
    pub metrics: EstimatedMetrics,
}

/// What the estimator was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EstimationReferenceOut {
    /// Windows of the reference.
    pub windows: u64,
    /// Labelled predictions (joined pairs) of the reference.
    pub pairs: u64,
}

/// The five estimated metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatedMetrics {
    pub accuracy: EstimatedMetric,
    pub precision: EstimatedMetric,
    pub recall: EstimatedMetric,
    pub f1: EstimatedMetric,
    pub roc_auc: EstimatedMetric,
}

/// One estimated metric: the value, its sampling error and band, the reference's
/// thresholds and whether the value lies outside them; then the realized metric on the
/// window's labelled predictions and its standard error (the realized metric's band).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatedMetric {
    pub value: Option<f64>,
    pub sampling_error: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub threshold_lower: Option<f64>,
    pub threshold_upper: Option<f64>,
    pub alert: bool,
    /// The realized metric over the window's predictions that had a label when the
    /// window closed (null without labels).
    pub realized: Option<f64>,
    /// Its standard error, NannyML's formula for that many labelled rows with the
    /// reference's components.
    pub realized_sampling_error: Option<f64>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl From<&MetricEstimate> for EstimatedMetric {
    fn from(m: &MetricEstimate) -> Self {
        EstimatedMetric {
            value: finite(m.value),
            sampling_error: finite(m.sampling_error),
            lower: finite(m.lower),
            upper: finite(m.upper),
            threshold_lower: finite(m.threshold_lower),
            threshold_upper: finite(m.threshold_upper),
            alert: m.alert,
            realized: finite(m.realized),
            realized_sampling_error: finite(m.realized).and(finite(m.realized_sampling_error)),
        }
    }
}

impl EstimatedOut {
    /// The record of a window's estimates.
    pub(crate) fn new(
        estimates: &Estimates,
        calibrated: bool,
        reference: EstimationReferenceOut,
    ) -> EstimatedOut {
        let m = |metric: Metric| EstimatedMetric::from(estimates.get(metric));
        EstimatedOut {
            method: CBPE.to_string(),
            calibrated,
            n: estimates.rows as u64,
            reference,
            metrics: EstimatedMetrics {
                accuracy: m(Metric::Accuracy),
                precision: m(Metric::Precision),
                recall: m(Metric::Recall),
                f1: m(Metric::F1),
                roc_auc: m(Metric::RocAuc),
            },
        }
    }
}

/// A performance-estimation fit that failed (e.g. a multiclass class that has scores but
/// is never an actual in the reference): that model version gets no estimates. Not an
/// output record: the service logs and counts it, `replay` says it on stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EstimationFitFailure {
    pub model: String,
    pub model_version: Option<String>,
    pub error: String,
}
