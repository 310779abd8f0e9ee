//! The output records: the public contract of the `model-metrics` topic and of `replay`
//! (schema `feedback-loop.metrics.v1`, see DESIGN.md). Field names are stable: add, never
//! rename. Undefined values are `null`, never NaN.
//!
//! [`metric_path`] names the record's numeric leaves (`classification.f1`, …): the one list
//! of metric names that rules, Prometheus gauges and the docs use.

pub mod drift;
mod estimated;
mod estimation_check;
pub mod metric_path;

pub use drift::{
    finite, CategoricalDrift, DetectorOut, DetectorsOut, DriftOut, DriftValue, NumericDrift,
    TestResult,
};
pub use estimated::{
    EstimatedMetric, EstimatedMetrics, EstimatedOut, EstimationFitFailure, EstimationReferenceOut,
};
pub use estimation_check::{CheckMetric, CheckMetrics, EstimationCheck};
pub use metric_path::{for_each_metric, MetricPath};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) const METRICS_SCHEMA: &str = "feedback-loop.metrics.v1";

/// One record per (model, model_version, window[, segment value]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    pub schema: String,
    /// Stable id: `<model>/<version or ->/<window start>[/<dimension>=<value>]`. The same
    /// window always gets the same id, so consumers can deduplicate on it.
    pub record_id: String,
    pub model: String,
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<BTreeMap<String, String>>,
    pub window: WindowBounds,
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassificationMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionMetrics>,
    /// Unsegmented records only (docs/semantics.md, "Drift").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectors: Option<DetectorsOut>,
    /// Estimated performance of the window's predictions (CBPE, docs/estimation.md):
    /// unsegmented records of models with `[models.estimation]`, once fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated: Option<EstimatedOut>,
}

/// A window's bounds in epoch milliseconds, `[start, end)`. In JSON: RFC 3339 strings,
/// UTC (`{"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowBounds {
    pub start: i64,
    pub end: i64,
}

impl WindowBounds {
    /// The start as RFC 3339 (as in ids and summaries).
    pub fn start_text(&self) -> String {
        rfc3339(self.start)
    }

    /// The end as RFC 3339.
    pub fn end_text(&self) -> String {
        rfc3339(self.end)
    }
}

#[derive(Serialize, Deserialize)]
struct WindowBoundsText {
    start: String,
    end: String,
}

impl Serialize for WindowBounds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WindowBoundsText {
            start: self.start_text(),
            end: self.end_text(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WindowBounds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = WindowBoundsText::deserialize(deserializer)?;
        let parse = |t: &str| {
            parse_rfc3339(t).ok_or_else(|| {
                serde::de::Error::custom(format!("window bound `{t}` is not RFC 3339"))
            })
        };
        Ok(WindowBounds {
            start: parse(&text.start)?,
            end: parse(&text.end)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub predictions: u64,
    pub outcomes: u64,
    pub joined: u64,
    pub expired_predictions: u64,
    pub orphan_outcomes: u64,
    pub duplicates: u64,
    pub late: u64,
    pub invalid: u64,
    /// `joined / (joined + expired_predictions)`; null when both are 0.
    pub label_coverage: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    pub accuracy: Option<f64>,
    /// Binary: of the positive class; multiclass: macro average.
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub averages: Averages,
    pub per_class: BTreeMap<String, ClassMetrics>,
    pub confusion_matrix: ConfusionMatrixOut,
    pub roc_auc: Option<f64>,
    pub log_loss: Option<f64>,
    pub brier: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    pub micro: Prf,
    #[serde(rename = "macro")]
    pub macro_: Prf,
    pub weighted: Prf,
}

/// Precision, recall, F1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
}

impl Prf {
    pub(crate) fn zero() -> Prf {
        Prf {
            precision: Some(0.0),
            recall: Some(0.0),
            f1: Some(0.0),
        }
    }

    /// Adds `weight * other` field by field.
    pub fn add(&mut self, other: &Prf, weight: f64) {
        let add = |a: &mut Option<f64>, b: Option<f64>| {
            *a = Some(a.unwrap_or(0.0) + b.unwrap_or(0.0) * weight);
        };
        add(&mut self.precision, other.precision);
        add(&mut self.recall, other.recall);
        add(&mut self.f1, other.f1);
    }

    pub(crate) fn scaled(&self, factor: f64) -> Prf {
        Prf {
            precision: self.precision.map(|v| v * factor),
            recall: self.recall.map(|v| v * factor),
            f1: self.f1.map(|v| v * factor),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub support: u64,
}

/// Rows are actual labels, columns predicted labels, both in `labels` order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrixOut {
    pub labels: Vec<String>,
    pub matrix: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    pub mae: Option<f64>,
    pub rmse: Option<f64>,
    pub mape: Option<f64>,
    pub r2: Option<f64>,
}

/// Event time in milliseconds as RFC 3339 UTC (`…Z`), with milliseconds only when nonzero.
pub fn rfc3339(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => ms.to_string(),
    }
}

/// Epoch milliseconds of an RFC 3339 time (any offset; digits beyond milliseconds are
/// truncated).
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339(1_700_000_040_000), "2023-11-14T22:14:00Z");
        assert_eq!(rfc3339(1_700_000_040_250), "2023-11-14T22:14:00.250Z");
    }
}
