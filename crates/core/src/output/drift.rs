//! The `drift` and `detectors` objects of a metrics record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::settings::DriftMethod;

/// Drift of one window against the series' reference. A part is `null` while its
/// reference is not complete (or, for one feature, when the reference has no value of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftOut {
    /// `first`, `previous` or `file`.
    pub reference: String,
    pub features: Option<BTreeMap<String, Option<DriftValue>>>,
    pub prediction: Option<DriftValue>,
    /// Binary models: the positive-class score.
    pub score: Option<DriftValue>,
    /// The outcomes' `actual`, by their own time (model-level).
    pub label: Option<DriftValue>,
}

/// The statistics of one variable, tagged with its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DriftValue {
    Numeric(NumericDrift),
    Categorical(CategoricalDrift),
}

/// The streaming detectors of a series (enabled ones only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorsOut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adwin: Option<DetectorOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddm: Option<DetectorOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_hinkley: Option<DetectorOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorOut {
    /// Fired at least once on a pair attributed to this window.
    pub drift: bool,
    pub detections: u64,
    /// Index (0-based) in the series' error stream of the last detection in this window.
    pub last_detection_index: Option<u64>,
    /// Event time of that pair (the time it is attributed to).
    pub last_detection_at: Option<String>,
    /// The detector's estimate when the window closed.
    pub estimation: Option<f64>,
}

/// Drift statistics of a numeric feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericDrift {
    /// Method that made the `drifted` decision.
    pub method: DriftMethod,
    /// Threshold applied by that method.
    pub threshold: f64,
    pub n_reference: usize,
    pub n_window: usize,
    pub psi: Option<f64>,
    pub ks: TestResult,
    pub wasserstein: Option<f64>,
    /// Wasserstein distance divided by the reference's standard deviation.
    pub wasserstein_normalized: Option<f64>,
    pub js: Option<f64>,
    /// `None` (`null`) when the window has fewer than `min_window_samples` values.
    pub drifted: Option<bool>,
}

/// Drift statistics of a categorical feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoricalDrift {
    pub method: DriftMethod,
    pub threshold: f64,
    pub n_reference: u64,
    pub n_window: u64,
    pub chi_square: TestResult,
    pub psi: Option<f64>,
    pub js: Option<f64>,
    /// `None` (`null`) when the window has fewer than `min_window_samples` values.
    pub drifted: Option<bool>,
}

/// A test statistic with its p-value; `None` where the value is undefined
/// or non-finite (serialized as `null`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
}

impl TestResult {
    /// A result with both fields undefined.
    pub(crate) const UNDEFINED: TestResult = TestResult {
        statistic: None,
        p_value: None,
    };

    /// A result from possibly non-finite values (those become `None`).
    pub fn new(statistic: f64, p_value: f64) -> Self {
        TestResult {
            statistic: finite(statistic),
            p_value: finite(p_value),
        }
    }
}

/// `Some(x)` when `x` is finite, else `None`.
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
