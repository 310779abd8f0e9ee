//! Realized (label-based) accuracy, precision, recall, F1 and ROC AUC of a window, as
//! NannyML 0.13.1 computes them with scikit-learn (notes §3.3), including its NaN rules.
//!
//! Why here: CBPE's thresholds are the spread of the *realized* metric over the reference
//! windows, and a window's realized value is reported next to its estimate once labels
//! arrive. Computed from raw scores and predicted labels, never from calibrated values.
//! The state is counts plus, for ROC AUC, the labelled rows' scores in an [`AucSample`]:
//! every labelled row up to its capacity (exact), a bottom-k sample by the rows' keys
//! beyond (docs/estimation.md, "Approximations and limits").

use super::auc_sample::AucSample;

/// Tie-aware ROC AUC of `(label, score)` pairs (= `sklearn.metrics.roc_auc_score`):
/// `Σ_pos (#neg below + ½ #neg tied) / (P · N)`. NaN without positives or negatives.
/// Every partial sum is an integer or a half-integer, so only the final division rounds.
pub fn tie_aware_auc(pairs: impl IntoIterator<Item = (bool, f64)>) -> f64 {
    let mut v: Vec<(bool, f64)> = pairs.into_iter().collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1));
    let positives = v.iter().filter(|p| p.0).count();
    let negatives = v.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let mut acc = 0.0_f64;
    let mut neg_below = 0.0_f64;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        let (mut pos_here, mut neg_here) = (0.0_f64, 0.0_f64);
        while j < v.len() && v[j].1 == v[i].1 {
            if v[j].0 {
                pos_here += 1.0;
            } else {
                neg_here += 1.0;
            }
            j += 1;
        }
        acc += pos_here * (neg_below + 0.5 * neg_here);
        neg_below += neg_here;
        i = j;
    }
    acc / (positives as f64 * negatives as f64)
}

/// The labelled part of a binary window: confusion counts (exact) and a sample of the
/// `(score, label)` pairs (for ROC AUC).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BinaryRealizedWindow {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
    /// `(raw score, label)` of the labelled rows, for ROC AUC: all of them up to the
    /// sample's capacity.
    scored: AucSample<(f64, bool)>,
}

impl BinaryRealizedWindow {
    /// An empty window whose ROC AUC sample keeps up to `auc_sample` rows.
    pub fn new(auc_sample: usize) -> Self {
        BinaryRealizedWindow {
            tp: 0,
            fp: 0,
            fn_: 0,
            tn: 0,
            scored: AucSample::new(auc_sample),
        }
    }

    /// Adds a labelled row; `key` identifies it (the hash of its join id), for the ROC
    /// AUC sample.
    pub fn push(&mut self, key: u64, score: f64, y_pred: bool, y_true: bool) {
        match (y_pred, y_true) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
        self.scored.push(key, (score, y_true));
    }

    /// Merges another window's labelled rows in (same sample capacity).
    pub fn merge(&mut self, other: &BinaryRealizedWindow) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
        self.scored.merge(&other.scored);
    }

    /// Labelled rows.
    pub fn rows(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// The ROC AUC sample of the labelled rows.
    #[cfg(test)]
    pub(crate) fn scored(&self) -> &AucSample<(f64, bool)> {
        &self.scored
    }

    /// `[accuracy, precision, recall, f1, roc_auc]`; precision/recall/f1 are NaN when the
    /// labels or the predictions take a single value, ROC AUC when the labels do.
    pub fn metrics(&self) -> [f64; 5] {
        let (tp, fp, fn_, tn) = (
            self.tp as f64,
            self.fp as f64,
            self.fn_ as f64,
            self.tn as f64,
        );
        let n = self.rows();
        let accuracy = if n == 0 {
            f64::NAN
        } else {
            (tp + tn) / n as f64
        };
        let one_label = self.tp + self.fn_ == 0 || self.fp + self.tn == 0;
        let one_prediction = self.tp + self.fp == 0 || self.fn_ + self.tn == 0;
        let ratio = |num: f64, den: f64| if den == 0.0 { 0.0 } else { num / den };
        let (precision, recall, f1) = if one_label || one_prediction {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            (
                ratio(tp, tp + fp),
                ratio(tp, tp + fn_),
                ratio(2.0 * tp, 2.0 * tp + fp + fn_),
            )
        };
        let roc_auc = if one_label {
            f64::NAN
        } else {
            tie_aware_auc(self.scored.rows().map(|&(s, y)| (y, s)))
        };
        [accuracy, precision, recall, f1, roc_auc]
    }
}

/// `np.allclose(1, row_sum)` (`|1 - sum| <= 1e-8 + 1e-5 * |sum|`): scikit-learn's check
/// before a multiclass ROC AUC.
fn sums_to_one(sum: f64) -> bool {
    (1.0 - sum).abs() <= 1e-8 + 1e-5 * sum.abs()
}

/// The labelled part of a multiclass window with `K` classes (indices `0..K` in sorted
/// class order).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MulticlassRealizedWindow {
    classes: usize,
    /// `confusion[t * (K + 1) + p]`: rows labelled `t`, predicted `p` (`p == K`: a
    /// prediction that is not one of the classes).
    confusion: Vec<u64>,
    /// Raw scores (`K` per row) and label of the labelled rows, for ROC AUC: all of them
    /// up to the sample's capacity.
    scored: AucSample<(Box<[f64]>, usize)>,
    /// Whether every labelled row's raw scores sum to 1 (`np.allclose`), over all rows.
    rows_sum_to_one: bool,
}

impl MulticlassRealizedWindow {
    /// An empty window over `classes` classes whose ROC AUC sample keeps up to
    /// `auc_sample` rows.
    pub fn new(classes: usize, auc_sample: usize) -> Self {
        MulticlassRealizedWindow {
            classes,
            confusion: vec![0; classes * (classes + 1)],
            scored: AucSample::new(auc_sample),
            rows_sum_to_one: true,
        }
    }

    /// Adds a labelled row; `y_pred == None` is a prediction outside the classes; `key`
    /// identifies the row (the hash of its join id), for the ROC AUC sample. The caller
    /// has checked the indices and the score count.
    pub fn push(&mut self, key: u64, scores: &[f64], y_pred: Option<usize>, y_true: usize) {
        let k = self.classes;
        self.confusion[y_true * (k + 1) + y_pred.unwrap_or(k)] += 1;
        self.scored.push(key, (scores.into(), y_true));
        let mut sum = 0.0;
        for &s in scores {
            sum += s;
        }
        self.rows_sum_to_one &= sums_to_one(sum);
    }

    /// Merges another window's labelled rows in (same classes and sample capacity).
    pub fn merge(&mut self, other: &MulticlassRealizedWindow) {
        for (a, b) in self.confusion.iter_mut().zip(&other.confusion) {
            *a += b;
        }
        self.scored.merge(&other.scored);
        self.rows_sum_to_one &= other.rows_sum_to_one;
    }

    /// Labelled rows.
    pub fn rows(&self) -> usize {
        self.confusion.iter().sum::<u64>() as usize
    }

    /// `[accuracy, precision, recall, f1, roc_auc]`, macro averages over the classes.
    /// Accuracy, precision, recall and f1 are NaN when the labels or the predictions take
    /// a single value (all predictions outside the classes count as one value); ROC AUC
    /// is NaN unless every class occurs as a label and every row's scores sum to 1.
    pub fn metrics(&self) -> [f64; 5] {
        let k = self.classes;
        let at = |t: usize, p: usize| self.confusion[t * (k + 1) + p];
        let true_count: Vec<u64> = (0..k).map(|t| (0..=k).map(|p| at(t, p)).sum()).collect();
        let pred_count: Vec<u64> = (0..=k).map(|p| (0..k).map(|t| at(t, p)).sum()).collect();
        let distinct_labels = true_count.iter().filter(|&&c| c > 0).count();
        let distinct_predictions = pred_count.iter().filter(|&&c| c > 0).count();
        let nan = [f64::NAN; 4];
        let [accuracy, precision, recall, f1] = if distinct_labels <= 1 || distinct_predictions <= 1
        {
            nan
        } else {
            let n = self.rows() as f64;
            let correct: u64 = (0..k).map(|c| at(c, c)).sum();
            let ratio = |num: f64, den: u64| if den == 0 { 0.0 } else { num / den as f64 };
            let (mut p_sum, mut r_sum, mut f_sum) = (0.0, 0.0, 0.0);
            for c in 0..k {
                let tp = at(c, c) as f64;
                p_sum += ratio(tp, pred_count[c]);
                r_sum += ratio(tp, true_count[c]);
                f_sum += ratio(2.0 * tp, true_count[c] + pred_count[c]);
            }
            let kf = k as f64;
            [correct as f64 / n, p_sum / kf, r_sum / kf, f_sum / kf]
        };
        let roc_auc = if distinct_labels != k || !self.rows_sum_to_one {
            f64::NAN
        } else {
            let mut sum = 0.0;
            for c in 0..k {
                let pairs = self.scored.rows().map(|(scores, y)| (*y == c, scores[c]));
                sum += tie_aware_auc(pairs);
            }
            sum / k as f64
        };
        [accuracy, precision, recall, f1, roc_auc]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_with_ties_counts_half() {
        let auc = tie_aware_auc([(true, 0.5), (false, 0.5), (true, 0.9), (false, 0.1)]);
        // pairs: (0.5 vs 0.5) 0.5, (0.5 vs 0.1) 1, (0.9 vs both) 2 -> 3.5 / 4
        assert_eq!(auc, 0.875);
        assert!(tie_aware_auc([(true, 0.5), (true, 0.1)]).is_nan());
        assert!(tie_aware_auc([]).is_nan());
    }

    #[test]
    fn binary_single_prediction_value_gives_nan_precision_but_an_accuracy() {
        let mut w = BinaryRealizedWindow::new(10);
        w.push(1, 0.9, true, true);
        w.push(2, 0.8, true, false);
        let [acc, p, r, f1, auc] = w.metrics();
        assert_eq!(acc, 0.5);
        assert!(p.is_nan() && r.is_nan() && f1.is_nan());
        assert_eq!(auc, 1.0);
    }

    #[test]
    fn binary_empty_window_is_nan() {
        assert!(BinaryRealizedWindow::new(10)
            .metrics()
            .iter()
            .all(|v| v.is_nan()));
    }

    #[test]
    fn multiclass_counts() {
        let mut w = MulticlassRealizedWindow::new(3, 10);
        w.push(1, &[0.7, 0.2, 0.1], Some(0), 0);
        w.push(2, &[0.2, 0.7, 0.1], Some(1), 2);
        w.push(3, &[0.1, 0.1, 0.8], Some(2), 2);
        w.push(4, &[0.3, 0.4, 0.3], None, 1);
        let [acc, p, r, f1, auc] = w.metrics();
        assert_eq!(acc, 0.5);
        // precision: 1/1, 0/1, 1/1 -> 2/3; recall: 1/1, 0/1, 1/2 -> 0.5
        assert!((p - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(r, 0.5);
        // f1: 2/2, 0/2, 2/3
        assert!((f1 - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-15);
        assert!(auc.is_finite());
    }

    #[test]
    fn multiclass_missing_class_has_no_auc() {
        let mut w = MulticlassRealizedWindow::new(3, 10);
        w.push(1, &[0.7, 0.2, 0.1], Some(0), 0);
        w.push(2, &[0.2, 0.7, 0.1], Some(1), 1);
        assert!(w.metrics()[4].is_nan());
        assert_eq!(w.metrics()[0], 1.0);
    }
}
