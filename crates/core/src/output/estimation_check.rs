//! The estimation-check record (`feedback-loop.estimation-check.v1`, docs/estimation.md):
//! once every prediction of a window (by prediction time) is joined or expired, the CBPE
//! estimate of the window next to the realized metric on the same predictions.
//!
//! Why a record of its own: the estimate is emitted when the window closes, often before
//! its labels; only later can it be judged. This record is the place where CBPE's
//! assumptions (calibrated scores, no concept drift) are seen to fail: `error` grows and
//! `realized` leaves `[lower, upper]`. Rules watch it through the paths
//! `estimation_check.metrics.<metric>.<field>` (docs/rules.md): they are evaluated on each
//! check when it is emitted (up to `join.max_label_delay` after its window), with the
//! check's `labeled` count as the sample size. Prometheus also exports `error` as
//! `feedback_loop_model_estimation_error`.

use serde::{Deserialize, Serialize};

use super::{finite, WindowBounds};
use crate::estimation::{Estimates, Metric, MetricEstimate};

pub(crate) const ESTIMATION_CHECK_SCHEMA: &str = "feedback-loop.estimation-check.v1";

/// One record per (model, model_version, window) that had an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimationCheck {
    pub schema: String,
    /// `<model>/<version or ->/<window start>/estimation-check`: stable, distinct from the
    /// window's metrics record id.
    pub record_id: String,
    pub model: String,
    pub model_version: Option<String>,
    pub window: WindowBounds,
    /// Predictions of the window that were estimated (`estimated.n` of its record).
    pub n: u64,
    /// Of those, the ones joined with a label: the realized metrics are over these.
    pub labeled: u64,
    /// Of those, the ones that expired without a label (or whose label is not one of
    /// the reference's classes): not in the realized metrics.
    pub unlabeled: u64,
    pub metrics: CheckMetrics,
}

/// The five metrics of a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckMetrics {
    pub accuracy: CheckMetric,
    pub precision: CheckMetric,
    pub recall: CheckMetric,
    pub f1: CheckMetric,
    pub roc_auc: CheckMetric,
}

/// One metric: the estimate with its band, the realized value, and how they compare.
/// Undefined values are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckMetric {
    pub estimated: Option<f64>,
    pub realized: Option<f64>,
    /// `estimated − realized`.
    pub error: Option<f64>,
    /// `|estimated − realized|`: what a rule watches to catch an error of either sign
    /// (`estimation_check.metrics.<metric>.abs_error > 0.05`).
    pub abs_error: Option<f64>,
    /// The estimate's standard error (for `n` rows).
    pub sampling_error: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// `lower ≤ realized ≤ upper`; `null` when one of them is undefined.
    pub within_band: Option<bool>,
}

impl From<&MetricEstimate> for CheckMetric {
    fn from(m: &MetricEstimate) -> Self {
        let (estimated, realized) = (finite(m.value), finite(m.realized));
        let (lower, upper) = (finite(m.lower), finite(m.upper));
        let error = estimated.zip(realized).map(|(e, r)| e - r);
        CheckMetric {
            estimated,
            realized,
            error,
            abs_error: error.map(f64::abs),
            sampling_error: finite(m.sampling_error),
            lower,
            upper,
            within_band: match (realized, lower, upper) {
                (Some(r), Some(l), Some(u)) => Some(l <= r && r <= u),
                _ => None,
            },
        }
    }
}

impl CheckMetrics {
    fn new(estimates: &Estimates) -> CheckMetrics {
        let m = |metric: Metric| CheckMetric::from(estimates.get(metric));
        CheckMetrics {
            accuracy: m(Metric::Accuracy),
            precision: m(Metric::Precision),
            recall: m(Metric::Recall),
            f1: m(Metric::F1),
            roc_auc: m(Metric::RocAuc),
        }
    }

    /// `(name, metric)` in NannyML's order.
    pub fn iter(&self) -> [(&'static str, &CheckMetric); 5] {
        [
            ("accuracy", &self.accuracy),
            ("precision", &self.precision),
            ("recall", &self.recall),
            ("f1", &self.f1),
            ("roc_auc", &self.roc_auc),
        ]
    }
}

impl EstimationCheck {
    /// The check of a window's final estimates (every prediction joined or expired).
    pub fn new(
        model: &str,
        model_version: Option<&str>,
        window: WindowBounds,
        estimates: &Estimates,
    ) -> EstimationCheck {
        EstimationCheck {
            schema: ESTIMATION_CHECK_SCHEMA.to_string(),
            record_id: format!(
                "{model}/{}/{}/estimation-check",
                model_version.unwrap_or("-"),
                window.start_text()
            ),
            model: model.to_string(),
            model_version: model_version.map(str::to_string),
            window,
            n: estimates.rows as u64,
            labeled: estimates.labelled_rows as u64,
            unlabeled: estimates.rows.saturating_sub(estimates.labelled_rows) as u64,
            metrics: CheckMetrics::new(estimates),
        }
    }
}
