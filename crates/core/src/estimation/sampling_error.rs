//! Sampling errors, thresholds, confidence bands and alerts of CBPE and of the realized
//! metrics, as NannyML 0.13.1 computes them (notes §5, §6, §7).
//!
//! Why: an estimate alone does not say whether a window is worse than the reference or
//! merely small. NannyML derives, once from the labelled reference, per-metric
//! *components* (standard deviations or variances and class fractions); a window's
//! standard error then only needs its row count `n`. The same components serve the
//! estimated and the realized metric. Thresholds are the mean ± 3 standard deviations of
//! the realized metric over the reference windows, clipped to [0, 1]; the band is the
//! estimate ± 3 standard errors, clipped to [0, 1]; the alert compares the estimate (not
//! the band) with the thresholds.
//!
//! Sums are sequential (numpy's are pairwise): results agree with NannyML to a few ulps.
//! The ROC AUC components sort the reference scores *stably*; NannyML uses numpy's
//! unstable `argsort`, so with tied reference scores its value is numpy/CPU-specific
//! (notes §5.1: 2e-4 relative on the golden `binary_ties`); ours is the stable-sort value.

use super::MetricEstimate;

/// NannyML's `SAMPLING_ERROR_RANGE` and the default threshold multiplier.
const RANGE: f64 = 3.0;

/// Population variance (ddof = 0) of `ones` copies of `one` and `zeros` copies of 0,
/// in closed form (NaN for an empty list, like `np.var([])`).
fn two_point_variance(ones: u64, zeros: u64, one: f64) -> f64 {
    let n = (ones + zeros) as f64;
    let m = ones as f64 * one / n;
    (ones as f64 * (one - m) * (one - m) + zeros as f64 * m * m) / n
}

/// Population variance of a list, two passes, sequential sums (NaN if empty).
fn variance(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mut sum = 0.0;
    for &v in values {
        sum += v;
    }
    let m = sum / n;
    let mut sq = 0.0;
    for &v in values {
        sq += (v - m) * (v - m);
    }
    sq / n
}

/// NannyML's `auroc_sampling_error_components` on `(label, raw score)` pairs: returns
/// the population variance of `ser_multi` and the positive fraction. Copies the quirks:
/// the labels (and scores, as `1 - s`) are flipped when positives are the majority, and
/// the lowest-ranked positive is dropped when it is the lowest-scored row (notes §5.1).
fn auroc_components(labels: &[bool], scores: &[f64]) -> (f64, f64) {
    let n = labels.len();
    let positives = labels.iter().filter(|&&y| y).count();
    let flip = positives as f64 / n as f64 > 0.5;
    let (y, s): (Vec<bool>, Vec<f64>) = if flip {
        (
            labels.iter().map(|&v| !v).collect(),
            scores.iter().map(|&v| 1.0 - v).collect(),
        )
    } else {
        (labels.to_vec(), scores.to_vec())
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| s[a].total_cmp(&s[b]));
    let n_pos = y.iter().filter(|&&v| v).count();
    let n_neg = (n - n_pos) as f64;
    let mut ser = Vec::with_capacity(n_pos);
    for (rank, &row) in order.iter().enumerate() {
        // np.unique(y * ranks)[1:]: every positive rank except 0 (always present).
        if y[row] && rank > 0 {
            ser.push((rank - ser.len()) as f64 / n_neg);
        }
    }
    (variance(&ser), n_pos as f64 / n as f64)
}

/// Reference-derived sampling-error components of binary CBPE (`[std, fraction]` per
/// metric; accuracy has no fraction).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BinaryComponents {
    pub accuracy_std: f64,
    /// `[std, fraction]` for precision, recall, f1, roc_auc (in this order).
    pub others: [[f64; 2]; 4],
}

impl BinaryComponents {
    /// From the labelled reference: `(label, predicted label, raw score)` per row.
    pub fn fit(y_true: &[bool], y_pred: &[bool], scores: &[f64]) -> Self {
        let n = y_true.len() as f64;
        let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
        for (&y, &p) in y_true.iter().zip(y_pred) {
            match (p, y) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
        let accuracy_std = two_point_variance(tp + tn, fp + fn_, 1.0).sqrt();
        let precision = [two_point_variance(tp, fp, 1.0).sqrt(), (tp + fp) as f64 / n];
        let recall = [
            two_point_variance(tp, fn_, 1.0).sqrt(),
            (tp + fn_) as f64 / n,
        ];
        // f1's "correcting factor" (binary only).
        let (tpf, fnf, fpf) = (tp as f64, fn_ as f64, fp as f64);
        let cf = (tpf + fnf + fpf) / ((fnf + fpf) * 0.5 + tpf);
        let f1 = [
            two_point_variance(tp, fn_ + fp, cf).sqrt(),
            (tpf + fnf + fpf) / n,
        ];
        let (var, fraction) = auroc_components(y_true, scores);
        BinaryComponents {
            accuracy_std,
            others: [precision, recall, f1, [var.sqrt(), fraction]],
        }
    }

    /// Standard errors `[accuracy, precision, recall, f1, roc_auc]` for a window of `n` rows.
    pub fn standard_errors(&self, n: usize) -> [f64; 5] {
        let n = n as f64;
        let mut out = [self.accuracy_std / n.sqrt(), 0.0, 0.0, 0.0, 0.0];
        for (slot, [std, fraction]) in out[1..].iter_mut().zip(self.others) {
            *slot = std / (n * fraction).sqrt();
        }
        out
    }
}

/// Reference-derived sampling-error components of multiclass CBPE: per class
/// `[variance, fraction]` for precision, recall, f1, roc_auc; accuracy's std.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MulticlassComponents {
    pub accuracy_std: f64,
    /// `others[m][k]` for m in (precision, recall, f1, roc_auc), class k (sorted order).
    pub others: [Vec<[f64; 2]>; 4],
}

impl MulticlassComponents {
    /// From the labelled reference: class indices (`None` prediction: not a class) and
    /// raw scores row-major, `classes` per row.
    pub fn fit(y_true: &[usize], y_pred: &[Option<usize>], scores: &[f64], classes: usize) -> Self {
        let n_rows = y_true.len();
        let n = n_rows as f64;
        let correct = y_true
            .iter()
            .zip(y_pred)
            .filter(|(&y, &p)| p == Some(y))
            .count() as u64;
        let accuracy_std = two_point_variance(correct, n_rows as u64 - correct, 1.0).sqrt();
        let mut others: [Vec<[f64; 2]>; 4] = Default::default();
        for k in 0..classes {
            let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
            for (&y, &p) in y_true.iter().zip(y_pred) {
                match (p == Some(k), y == k) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fn_ += 1,
                    (false, false) => {}
                }
            }
            others[0].push([two_point_variance(tp, fp, 1.0), (tp + fp) as f64 / n]);
            others[1].push([two_point_variance(tp, fn_, 1.0), (tp + fn_) as f64 / n]);
            others[2].push([
                two_point_variance(tp, fn_ + fp, 1.0),
                (tp + fn_ + fp) as f64 / n,
            ]);
            let labels: Vec<bool> = y_true.iter().map(|&y| y == k).collect();
            let column: Vec<f64> = (0..n_rows).map(|i| scores[i * classes + k]).collect();
            let (var, fraction) = auroc_components(&labels, &column);
            others[3].push([var, fraction]);
        }
        MulticlassComponents {
            accuracy_std,
            others,
        }
    }

    /// Standard errors `[accuracy, precision, recall, f1, roc_auc]` for a window of `n`
    /// rows: `sqrt(Σ_k var_k / (n · fraction_k)) / K`, ROC AUC's times 1.2 (NannyML).
    pub fn standard_errors(&self, n: usize) -> [f64; 5] {
        let nf = n as f64;
        let mut out = [self.accuracy_std / nf.sqrt(), 0.0, 0.0, 0.0, 0.0];
        for (m, per_class) in self.others.iter().enumerate() {
            let mut sum = 0.0;
            for [var, fraction] in per_class {
                sum += var / (nf * fraction);
            }
            let se = sum.sqrt() / per_class.len() as f64;
            out[m + 1] = if m == 3 { se * 1.2 } else { se };
        }
        out
    }
}

/// A metric's reference-based thresholds (NaN when undefined: no alert can fire).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Thresholds {
    pub lower: f64,
    pub upper: f64,
}

impl Thresholds {
    /// NannyML's `StandardDeviationThreshold(3, 3)` over the realized metric of the
    /// reference windows: `nanmean ∓ 3 · nanstd` (population), then a lower bound `<= 0`
    /// becomes 0 and an upper bound `>= 1` becomes 1. NaN values are ignored.
    pub fn from_reference(values: &[f64]) -> Self {
        let finite: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if finite.is_empty() {
            return Thresholds {
                lower: f64::NAN,
                upper: f64::NAN,
            };
        }
        let mut sum = 0.0;
        for &v in &finite {
            sum += v;
        }
        let m = sum / finite.len() as f64;
        let sd = variance(&finite).sqrt();
        let mut lower = m - sd * RANGE;
        let mut upper = m + sd * RANGE;
        if lower <= 0.0 {
            lower = 0.0;
        }
        if upper >= 1.0 {
            upper = 1.0;
        }
        Thresholds { lower, upper }
    }

    /// NannyML's alert: strictly outside the thresholds; never for NaN.
    pub fn alert(&self, value: f64) -> bool {
        value < self.lower || value > self.upper
    }
}

/// `(max(0, v - 3σ), min(1, v + 3σ))`, NaN if `v` or `σ` is NaN (numpy propagates NaN).
pub fn confidence_band(value: f64, sampling_error: f64) -> (f64, f64) {
    let lo = value - RANGE * sampling_error;
    let hi = value + RANGE * sampling_error;
    let lo = if lo.is_nan() { f64::NAN } else { lo.max(0.0) };
    let hi = if hi.is_nan() { f64::NAN } else { hi.min(1.0) };
    (lo, hi)
}

/// Assembles one metric's record of a window.
pub fn metric_record(
    value: f64,
    sampling_error: f64,
    thresholds: Thresholds,
    realized: f64,
    realized_sampling_error: f64,
) -> MetricEstimate {
    let (lower, upper) = confidence_band(value, sampling_error);
    MetricEstimate {
        value,
        sampling_error,
        lower,
        upper,
        threshold_lower: thresholds.lower,
        threshold_upper: thresholds.upper,
        alert: thresholds.alert(value),
        realized,
        realized_sampling_error,
        realized_alert: thresholds.alert(realized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_components_of_the_notes() {
        let y = [true, false, true, true, false, false, true, false];
        let s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        let (var, fraction) = auroc_components(&y, &s);
        assert!((var.sqrt() - 0.235_702_260_395_515_84).abs() < 1e-16);
        assert_eq!(fraction, 0.5);
        let y = [false, false, true, true, false, false, true, false];
        let (var, fraction) = auroc_components(&y, &s);
        assert!((var.sqrt() - 0.188_561_808_316_412_7).abs() < 1e-16);
        assert_eq!(fraction, 0.375);
    }

    #[test]
    fn two_point_variance_matches_the_list() {
        let v = [1.0, 1.0, 1.0, 0.0, 0.0];
        assert!((two_point_variance(3, 2, 1.0) - variance(&v)).abs() < 1e-16);
        assert!(two_point_variance(0, 0, 1.0).is_nan());
    }

    #[test]
    fn thresholds_clip_and_ignore_nan() {
        let t = Thresholds::from_reference(&[0.5, f64::NAN, 0.5]);
        assert_eq!((t.lower, t.upper), (0.5, 0.5));
        assert!(t.alert(0.6) && t.alert(0.4) && !t.alert(0.5) && !t.alert(f64::NAN));
        let t = Thresholds::from_reference(&[0.0, 1.0]);
        assert_eq!((t.lower, t.upper), (0.0, 1.0));
        let t = Thresholds::from_reference(&[f64::NAN]);
        assert!(t.lower.is_nan() && !t.alert(0.3));
    }

    #[test]
    fn band_is_clipped_and_propagates_nan() {
        assert_eq!(
            confidence_band(0.95, 0.1),
            (0.95 - 0.30000000000000004, 1.0)
        );
        assert_eq!(confidence_band(0.05, 0.1).0, 0.0);
        let (lo, hi) = confidence_band(f64::NAN, 0.1);
        assert!(lo.is_nan() && hi.is_nan());
        let (lo, hi) = confidence_band(0.5, f64::NAN);
        assert!(lo.is_nan() && hi.is_nan());
    }

    #[test]
    fn empty_window_standard_errors_are_not_finite() {
        let c = BinaryComponents::fit(
            &[true, false, true],
            &[true, false, false],
            &[0.9, 0.2, 0.4],
        );
        assert!(c.standard_errors(0).iter().all(|v| !v.is_finite()));
        assert!(c.standard_errors(100).iter().all(|v| v.is_finite()));
    }
}
