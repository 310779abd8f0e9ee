//! Confidence-based performance estimation (CBPE) per window, binary and multiclass,
//! from a reference fitted once on labelled rows (notes §0, §3, §4).
//!
//! Why: it estimates a window's accuracy, precision, recall, F1 and ROC AUC from the
//! calibrated scores alone. Binary: with `p` the calibrated probability and `ŷ` the
//! predicted label, the expected confusion matrix is `TP = Σ_{ŷ=1} p`,
//! `FP = Σ_{ŷ=1} (1 - p)`, `FN = Σ_{ŷ=0} p`, `TN = Σ_{ŷ=0} (1 - p)`, and the metrics are
//! the usual ratios (a zero denominator gives 0, as in NannyML). Multiclass: the same per
//! class one-vs-rest, macro-averaged; accuracy is the mean calibrated probability of the
//! predicted class. ROC AUC is NannyML's estimate: expected TP/FP counts cumulated over
//! the rows in descending raw score, rounded to 5 decimals, trapezoid.
//!
//! State: a window ([`BinaryWindow`], [`MulticlassWindow`]) keeps sums (expected
//! confusion matrix, realized counts), exact over every row, plus, **for ROC AUC only, a
//! bounded sample of the rows' scores** ([`AucSample`]: every row up to its capacity, so
//! exact there; beyond, a bottom-k sample by the hash of each row's key, the same whatever
//! the order rows arrive or windows merge in; the bound of the approximation is in
//! docs/estimation.md). Rows are pushed one at a time with their key (the hash of the
//! prediction's join id); the reference must be fitted first because a row is calibrated
//! when it is pushed.
//!
//! Not copied from NannyML: an empty window gives NaN estimates (NannyML has no empty
//! chunks); an error inside one metric does not wipe the other fields of its record;
//! scikit-learn's "rows do not sum to 1" error makes only the realized multiclass ROC AUC
//! NaN (NannyML wipes the whole ROC AUC record of the chunk).

use super::auc_sample::AucSample;
use super::calibration::{CalibrationDecision, CalibrationMode, Calibrator};
use super::realized::{BinaryRealizedWindow, MulticlassRealizedWindow};
use super::sampling_error::{metric_record, BinaryComponents, MulticlassComponents, Thresholds};
use super::{Estimates, EstimationError, MetricEstimate};
use crate::exact_sum::ExactSum;

/// One binary prediction: the raw score of the positive class, the predicted label and,
/// when known, the true label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinaryRow {
    pub score: f64,
    pub y_pred: bool,
    pub y_true: Option<bool>,
}

/// One multiclass prediction: raw scores per class (in the reference's sorted class
/// order), the predicted class index (`None`: a label that is not one of the classes) and,
/// when known, the true class index.
#[derive(Debug, Clone, PartialEq)]
pub struct MulticlassRow {
    pub scores: Vec<f64>,
    pub y_pred: Option<usize>,
    pub y_true: Option<usize>,
}

/// `np.round(v, 5)` = `rint(v · 1e5) / 1e5`, half to even.
fn round5(v: f64) -> f64 {
    (v * 1e5).round_ties_even() / 1e5
}

/// NannyML's `estimate_roc_auc(calibrated, uncalibrated)` over `(raw, calibrated)` pairs
/// (notes §4): rows in descending raw score, every row its own point, cumulated expected
/// positives/negatives rounded to 5 decimals, trapezoid. NaN when either total rounds to
/// 0, there are no rows (fewer than 2 curve points) or the curve is not monotone (where
/// scikit-learn's `auc` raises).
///
/// Rows tied on the raw score come in descending calibrated probability, so the result
/// depends on the rows alone, not on the order they arrived in (partial windows merge in
/// any order). NannyML takes tied rows in reverse arrival order
/// (`np.argsort(kind="stable")[::-1]`); the two differ only when tied raw scores have
/// different calibrated probabilities: never in binary (the calibrated probability is a
/// function of the raw score), possibly in multiclass (it is renormalised over the row).
pub fn estimate_roc_auc(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| {
        let (x, y) = (pairs[a], pairs[b]);
        y.0.total_cmp(&x.0).then(y.1.total_cmp(&x.1))
    });
    let mut tps = Vec::with_capacity(n + 1);
    let mut fps = Vec::with_capacity(n + 1);
    tps.push(0.0);
    fps.push(0.0);
    let mut cum = 0.0;
    for (j, &i) in order.iter().enumerate() {
        cum += pairs[i].1;
        tps.push(round5(cum));
        fps.push(round5((1 + j) as f64 - cum));
    }
    let (tp_total, fp_total) = (tps[n], fps[n]);
    let mut any_decrease = false;
    let mut all_non_increasing = true;
    for j in 0..n {
        let dx = fps[j + 1] / fp_total - fps[j] / fp_total;
        any_decrease |= dx < 0.0;
        all_non_increasing &= dx <= 0.0;
    }
    let direction = match (any_decrease, all_non_increasing) {
        (false, _) => 1.0,
        (true, true) => -1.0,
        (true, false) => return f64::NAN,
    };
    let mut area = 0.0;
    for j in 0..n {
        let (x0, x1) = (fps[j] / fp_total, fps[j + 1] / fp_total);
        let (y0, y1) = (tps[j] / tp_total, tps[j + 1] / tp_total);
        area += (x1 - x0) * (y1 + y0) / 2.0;
    }
    direction * area
}

/// Expected confusion matrix of one (one-vs-rest) class: sums of calibrated probabilities,
/// exact (the same whatever the order of the rows).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Expected {
    tp: ExactSum,
    fp: ExactSum,
    fn_: ExactSum,
    tn: ExactSum,
}

impl Expected {
    fn push(&mut self, p: f64, predicted_positive: bool) {
        if predicted_positive {
            self.tp.add(p);
            self.fp.add(1.0 - p);
        } else {
            self.fn_.add(p);
            self.tn.add(1.0 - p);
        }
    }

    fn merge(&mut self, other: &Expected) {
        self.tp.merge(&other.tp);
        self.fp.merge(&other.fp);
        self.fn_.merge(&other.fn_);
        self.tn.merge(&other.tn);
    }

    /// NannyML's `estimate_precision/recall/f1`: zero denominators give 0.
    fn precision_recall_f1(&self) -> [f64; 3] {
        let ratio = |num: f64, den: f64| if den != 0.0 { num / den } else { 0.0 };
        let (tp, fp, fn_) = (self.tp.value(), self.fp.value(), self.fn_.value());
        [
            ratio(tp, tp + fp),
            ratio(tp, tp + fn_),
            ratio(tp, tp + 0.5 * (fp + fn_)),
        ]
    }
}

fn check_score(row: usize, score: f64) -> Result<(), EstimationError> {
    if score.is_finite() {
        Ok(())
    } else {
        Err(EstimationError::NonFiniteScore { row, score })
    }
}

fn records(
    values: [f64; 5],
    errors: [f64; 5],
    realized: [f64; 5],
    realized_errors: [f64; 5],
    thresholds: &[Thresholds; 5],
) -> [MetricEstimate; 5] {
    std::array::from_fn(|m| {
        metric_record(
            values[m],
            errors[m],
            thresholds[m],
            realized[m],
            realized_errors[m],
        )
    })
}

// ------------------------------------------------------------------------------ binary

/// The fitted reference of binary CBPE: the calibrator, the sampling-error components and
/// the thresholds. Fitted once from labelled reference windows; immutable afterwards.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BinaryReference {
    calibrator: Calibrator,
    decision: Option<CalibrationDecision>,
    components: BinaryComponents,
    thresholds: [Thresholds; 5],
}

impl BinaryReference {
    /// Fits from the reference, given as its windows (NannyML's reference chunks: the
    /// thresholds are the spread of the realized metrics over them). Every row needs a
    /// label and a finite score. The calibrator and the components use all rows, in
    /// window order then row order (the order matters only to the `auto` decision).
    pub fn fit<W: AsRef<[BinaryRow]>>(
        windows: &[W],
        mode: CalibrationMode,
    ) -> Result<Self, EstimationError> {
        let rows: Vec<&BinaryRow> = windows.iter().flat_map(|w| w.as_ref().iter()).collect();
        if rows.is_empty() {
            return Err(EstimationError::EmptyReference);
        }
        let mut y_true = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            check_score(i, r.score)?;
            y_true.push(
                r.y_true
                    .ok_or(EstimationError::UnlabelledReferenceRow { row: i })?,
            );
        }
        let y_pred: Vec<bool> = rows.iter().map(|r| r.y_pred).collect();
        let scores: Vec<f64> = rows.iter().map(|r| r.score).collect();
        let components = BinaryComponents::fit(&y_true, &y_pred, &scores);
        let realized: Vec<[f64; 5]> = windows
            .iter()
            .map(|w| {
                let rows = w.as_ref();
                // Every row of a reference window is kept: its ROC AUC is exact.
                let mut acc = BinaryRealizedWindow::new(rows.len());
                for (i, r) in rows.iter().enumerate() {
                    acc.push(
                        i as u64,
                        r.score,
                        r.y_pred,
                        r.y_true.expect("checked above"),
                    );
                }
                acc.metrics()
            })
            .collect();
        let thresholds = std::array::from_fn(|m| {
            Thresholds::from_reference(&realized.iter().map(|v| v[m]).collect::<Vec<_>>())
        });
        let (calibrator, decision) = Calibrator::fit_with_decision(mode, &scores, &y_true)?;
        Ok(BinaryReference {
            calibrator,
            decision,
            components,
            thresholds,
        })
    }

    /// The fitted calibrator.
    pub fn calibrator(&self) -> &Calibrator {
        &self.calibrator
    }

    /// The `auto` decision and its ECEs (`None` when the mode was `On` or `Off`).
    pub fn decision(&self) -> Option<&CalibrationDecision> {
        self.decision.as_ref()
    }

    /// The sampling-error components.
    pub fn components(&self) -> &BinaryComponents {
        &self.components
    }

    /// Thresholds per metric, indexed by [`super::Metric::index`].
    pub fn thresholds(&self) -> &[Thresholds; 5] {
        &self.thresholds
    }

    /// Convenience: a window of `rows`, estimated, ROC AUC over every row.
    pub fn estimate(&self, rows: &[BinaryRow]) -> Result<Estimates, EstimationError> {
        let mut w = BinaryWindow::new(rows.len());
        for (i, r) in rows.iter().enumerate() {
            w.push(self, i as u64, r)?;
        }
        Ok(estimate_binary(self, &w))
    }
}

/// A binary window's accumulated state: the expected confusion matrix (sums of
/// calibrated probabilities), a sample of the `(raw, calibrated)` scores for ROC AUC, and
/// the realized counts (and sample) of its labelled rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BinaryWindow {
    rows: usize,
    expected: Expected,
    /// `(raw score, calibrated probability)` of the rows, all of them up to the sample's
    /// capacity: the estimated ROC AUC ranks them.
    scores: AucSample<(f64, f64)>,
    realized: BinaryRealizedWindow,
}

impl BinaryWindow {
    /// An empty window whose ROC AUC samples (estimated and realized) keep up to
    /// `auc_sample` rows each.
    pub fn new(auc_sample: usize) -> Self {
        BinaryWindow {
            rows: 0,
            expected: Expected::default(),
            scores: AucSample::new(auc_sample),
            realized: BinaryRealizedWindow::new(auc_sample),
        }
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds a row, calibrated with `reference`'s calibrator; `key` identifies the row (the
    /// hash of its prediction's join id) for the ROC AUC samples. A non-finite score is an
    /// error and leaves the window unchanged (NannyML drops such rows).
    pub fn push(
        &mut self,
        reference: &BinaryReference,
        key: u64,
        row: &BinaryRow,
    ) -> Result<(), EstimationError> {
        check_score(self.rows, row.score)?;
        let p = reference.calibrator.calibrate(row.score);
        self.expected.push(p, row.y_pred);
        self.scores.push(key, (row.score, p));
        if let Some(y) = row.y_true {
            self.realized.push(key, row.score, row.y_pred, y);
        }
        self.rows += 1;
        Ok(())
    }

    /// Adds the label of a row pushed earlier without one (an outcome joined after the
    /// prediction), with the row's key: only the realized part changes.
    /// `push(row with label)` equals `push(row without label)` followed by `add_outcome`.
    pub fn add_outcome(
        &mut self,
        key: u64,
        score: f64,
        y_pred: bool,
        y_true: bool,
    ) -> Result<(), EstimationError> {
        check_score(self.rows, score)?;
        self.realized.push(key, score, y_pred, y_true);
        Ok(())
    }

    /// Merges another window of the same reference in (partial windows of several
    /// instances): the result equals one window over both sides' rows, ROC AUC samples
    /// included (same capacity).
    pub fn merge(&mut self, other: &BinaryWindow) {
        self.rows += other.rows;
        self.expected.merge(&other.expected);
        self.scores.merge(&other.scores);
        self.realized.merge(&other.realized);
    }
}

/// The estimates of a binary window (all values NaN for an empty window).
pub fn estimate_binary(reference: &BinaryReference, window: &BinaryWindow) -> Estimates {
    let n = window.rows;
    let values = if n == 0 {
        [f64::NAN; 5]
    } else {
        let e = &window.expected;
        let [precision, recall, f1] = e.precision_recall_f1();
        let accuracy = (e.tp.value() + e.tn.value()) / n as f64;
        [
            accuracy,
            precision,
            recall,
            f1,
            estimate_roc_auc(&window.scores.rows().copied().collect::<Vec<_>>()),
        ]
    };
    let labelled = window.realized.rows() as usize;
    Estimates {
        rows: n,
        labelled_rows: labelled,
        metrics: records(
            values,
            reference.components.standard_errors(n),
            window.realized.metrics(),
            reference.components.standard_errors(labelled),
            &reference.thresholds,
        ),
    }
}

// -------------------------------------------------------------------------- multiclass

/// The fitted reference of multiclass CBPE: sorted classes, one calibrator per class,
/// components and thresholds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MulticlassReference {
    classes: Vec<String>,
    calibrators: Vec<Calibrator>,
    decisions: Vec<Option<CalibrationDecision>>,
    components: MulticlassComponents,
    thresholds: [Thresholds; 5],
}

impl MulticlassReference {
    /// Fits from the reference windows. `classes` must be strictly ascending (byte order,
    /// = Python's string sort for the names NannyML sorts) with at least two entries;
    /// every row's `scores` follow that order; every class must occur as a label. Each
    /// class's calibrator is decided and fitted on its one-vs-rest labels.
    pub fn fit<W: AsRef<[MulticlassRow]>>(
        classes: &[String],
        windows: &[W],
        mode: CalibrationMode,
    ) -> Result<Self, EstimationError> {
        let k = classes.len();
        if k < 2 || classes.windows(2).any(|p| p[0] >= p[1]) {
            return Err(EstimationError::InvalidClasses(classes.to_vec()));
        }
        let rows: Vec<&MulticlassRow> = windows.iter().flat_map(|w| w.as_ref().iter()).collect();
        if rows.is_empty() {
            return Err(EstimationError::EmptyReference);
        }
        let mut y_true = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            check_row(i, r, k)?;
            y_true.push(
                r.y_true
                    .ok_or(EstimationError::UnlabelledReferenceRow { row: i })?,
            );
        }
        if let Some(c) = (0..k).find(|c| !y_true.contains(c)) {
            return Err(EstimationError::ClassMissingFromReference(
                classes[c].clone(),
            ));
        }
        let y_pred: Vec<Option<usize>> = rows.iter().map(|r| r.y_pred).collect();
        let scores: Vec<f64> = rows.iter().flat_map(|r| r.scores.iter().copied()).collect();
        let components = MulticlassComponents::fit(&y_true, &y_pred, &scores, k);
        let realized: Vec<[f64; 5]> = windows
            .iter()
            .map(|w| {
                let rows = w.as_ref();
                // Every row of a reference window is kept: its ROC AUC is exact.
                let mut acc = MulticlassRealizedWindow::new(k, rows.len());
                for (i, r) in rows.iter().enumerate() {
                    acc.push(
                        i as u64,
                        &r.scores,
                        r.y_pred,
                        r.y_true.expect("checked above"),
                    );
                }
                acc.metrics()
            })
            .collect();
        let thresholds = std::array::from_fn(|m| {
            Thresholds::from_reference(&realized.iter().map(|v| v[m]).collect::<Vec<_>>())
        });
        let mut calibrators = Vec::with_capacity(k);
        let mut decisions = Vec::with_capacity(k);
        for c in 0..k {
            let labels: Vec<bool> = y_true.iter().map(|&y| y == c).collect();
            let column: Vec<f64> = rows.iter().map(|r| r.scores[c]).collect();
            let (cal, decision) = Calibrator::fit_with_decision(mode, &column, &labels)?;
            calibrators.push(cal);
            decisions.push(decision);
        }
        Ok(MulticlassReference {
            classes: classes.to_vec(),
            calibrators,
            decisions,
            components,
            thresholds,
        })
    }

    /// The sorted class names.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// One calibrator per class (sorted order).
    pub fn calibrators(&self) -> &[Calibrator] {
        &self.calibrators
    }

    /// Per class, the `auto` decision (`None` for `On`/`Off`).
    pub fn decisions(&self) -> &[Option<CalibrationDecision>] {
        &self.decisions
    }

    /// The sampling-error components.
    pub fn components(&self) -> &MulticlassComponents {
        &self.components
    }

    /// Thresholds per metric, indexed by [`super::Metric::index`].
    pub fn thresholds(&self) -> &[Thresholds; 5] {
        &self.thresholds
    }

    /// Convenience: a window of `rows`, estimated, ROC AUC over every row.
    pub fn estimate(&self, rows: &[MulticlassRow]) -> Result<Estimates, EstimationError> {
        let mut w = MulticlassWindow::new(self, rows.len());
        for (i, r) in rows.iter().enumerate() {
            w.push(self, i as u64, r)?;
        }
        Ok(estimate_multiclass(self, &w))
    }
}

fn check_row(i: usize, r: &MulticlassRow, k: usize) -> Result<(), EstimationError> {
    if r.scores.len() != k {
        return Err(EstimationError::ScoreCount {
            row: i,
            got: r.scores.len(),
            expected: k,
        });
    }
    for &s in &r.scores {
        check_score(i, s)?;
    }
    for index in [r.y_pred, r.y_true].into_iter().flatten() {
        if index >= k {
            return Err(EstimationError::ClassIndex {
                row: i,
                index,
                classes: k,
            });
        }
    }
    Ok(())
}

/// A multiclass window's accumulated state: per class the expected one-vs-rest confusion
/// matrix, the sum of the predicted class's probability, a sample of the rows' raw and
/// calibrated scores for ROC AUC, and the realized counts (and sample).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MulticlassWindow {
    rows: usize,
    /// `Σ_i p[i, ŷ_i]` (estimated accuracy's numerator).
    predicted_probability: ExactSum,
    expected: Vec<Expected>,
    /// Per row, the `K` raw scores then the `K` calibrated, renormalised probabilities;
    /// all rows up to the sample's capacity: the estimated ROC AUC ranks them.
    scores: AucSample<Box<[f64]>>,
    realized: MulticlassRealizedWindow,
}

impl MulticlassWindow {
    /// An empty window for `reference`'s classes whose ROC AUC samples (estimated and
    /// realized) keep up to `auc_sample` rows each.
    pub fn new(reference: &MulticlassReference, auc_sample: usize) -> Self {
        let k = reference.classes.len();
        MulticlassWindow {
            rows: 0,
            predicted_probability: ExactSum::new(),
            expected: vec![Expected::default(); k],
            scores: AucSample::new(auc_sample),
            realized: MulticlassRealizedWindow::new(k, auc_sample),
        }
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds a row: each class's score through its calibrator, then the row divided by its
    /// sum (`1/K` each if the sum is 0), as NannyML does even without calibration. `key`
    /// identifies the row (the hash of its prediction's join id) for the ROC AUC samples.
    pub fn push(
        &mut self,
        reference: &MulticlassReference,
        key: u64,
        row: &MulticlassRow,
    ) -> Result<(), EstimationError> {
        let k = reference.classes.len();
        check_row(self.rows, row, k)?;
        // The raw scores, then the calibrated probabilities.
        let mut both = Vec::with_capacity(2 * k);
        both.extend_from_slice(&row.scores);
        let mut sum = 0.0;
        for (cal, &s) in reference.calibrators.iter().zip(&row.scores) {
            let c = cal.calibrate(s);
            sum += c;
            both.push(c);
        }
        let probabilities = &mut both[k..];
        for p in probabilities.iter_mut() {
            *p = if sum != 0.0 { *p / sum } else { 1.0 / k as f64 };
        }
        if let Some(c) = row.y_pred {
            self.predicted_probability.add(probabilities[c]);
        }
        for (c, e) in self.expected.iter_mut().enumerate() {
            e.push(probabilities[c], row.y_pred == Some(c));
        }
        self.scores.push(key, both.into_boxed_slice());
        if let Some(y) = row.y_true {
            self.realized.push(key, &row.scores, row.y_pred, y);
        }
        self.rows += 1;
        Ok(())
    }

    /// Merges another window of the same reference in (see [`BinaryWindow::merge`]).
    pub fn merge(&mut self, other: &MulticlassWindow) {
        self.rows += other.rows;
        self.predicted_probability
            .merge(&other.predicted_probability);
        for (a, b) in self.expected.iter_mut().zip(&other.expected) {
            a.merge(b);
        }
        self.scores.merge(&other.scores);
        self.realized.merge(&other.realized);
    }

    /// Adds the label of a row pushed earlier without one (see
    /// [`BinaryWindow::add_outcome`]), with the row's key; `row.y_true` must be set.
    pub fn add_outcome(
        &mut self,
        reference: &MulticlassReference,
        key: u64,
        row: &MulticlassRow,
    ) -> Result<(), EstimationError> {
        check_row(self.rows, row, reference.classes.len())?;
        let y = row
            .y_true
            .ok_or(EstimationError::UnlabelledReferenceRow { row: self.rows })?;
        self.realized.push(key, &row.scores, row.y_pred, y);
        Ok(())
    }
}

/// The estimates of a multiclass window (all values NaN for an empty window).
pub fn estimate_multiclass(
    reference: &MulticlassReference,
    window: &MulticlassWindow,
) -> Estimates {
    let n = window.rows;
    let k = reference.classes.len();
    let values = if n == 0 {
        [f64::NAN; 5]
    } else {
        let mut sums = [0.0; 4];
        for (c, e) in window.expected.iter().enumerate() {
            for (s, v) in sums.iter_mut().zip(e.precision_recall_f1()) {
                *s += v;
            }
            let pairs: Vec<(f64, f64)> = window
                .scores
                .rows()
                .map(|both| (both[c], both[k + c]))
                .collect();
            sums[3] += estimate_roc_auc(&pairs);
        }
        let kf = k as f64;
        [
            window.predicted_probability.value() / n as f64,
            sums[0] / kf,
            sums[1] / kf,
            sums[2] / kf,
            sums[3] / kf,
        ]
    };
    let labelled = window.realized.rows();
    Estimates {
        rows: n,
        labelled_rows: labelled,
        metrics: records(
            values,
            reference.components.standard_errors(n),
            window.realized.metrics(),
            reference.components.standard_errors(labelled),
            &reference.thresholds,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimation::Metric;

    fn row(score: f64, y_true: bool) -> BinaryRow {
        BinaryRow {
            score,
            y_pred: score >= 0.5,
            y_true: Some(y_true),
        }
    }

    /// A small labelled reference of two windows.
    fn reference(mode: CalibrationMode) -> BinaryReference {
        let w1: Vec<BinaryRow> = (0..20)
            .map(|i| row(i as f64 / 20.0, i % 3 != 0 && i > 6))
            .collect();
        let w2: Vec<BinaryRow> = (0..20)
            .map(|i| row((i as f64 + 0.5) / 20.0, i % 4 != 0 && i > 8))
            .collect();
        BinaryReference::fit(&[w1, w2], mode).unwrap()
    }

    #[test]
    fn worked_example_of_the_notes() {
        // p are "calibrated" probabilities; with calibration off they are the scores.
        let r = reference(CalibrationMode::Off);
        let rows: Vec<BinaryRow> = [
            (0.95, true),
            (0.7, true),
            (0.7, true),
            (0.5, true),
            (0.2, false),
            (0.05, false),
        ]
        .iter()
        .map(|&(p, y)| BinaryRow {
            score: p,
            y_pred: y,
            y_true: None,
        })
        .collect();
        let e = r.estimate(&rows).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(e.get(Metric::Accuracy).value, 2.3 / 3.0));
        assert!(close(e.get(Metric::Precision).value, 0.7125));
        assert!(close(e.get(Metric::Recall).value, 2.85 / 3.1));
        assert!(close(e.get(Metric::F1).value, 2.85 / (2.85 + 0.7)));
        assert!(e.get(Metric::RocAuc).realized.is_nan());
        assert_eq!(e.labelled_rows, 0);
    }

    #[test]
    fn roc_auc_worked_example_of_the_notes() {
        let s = [0.9, 0.8, 0.8, 0.6, 0.3, 0.1];
        let p = [0.95, 0.7, 0.7, 0.5, 0.2, 0.05];
        let pairs: Vec<(f64, f64)> = s.iter().copied().zip(p).collect();
        assert_eq!(estimate_roc_auc(&pairs), 0.844_827_586_206_896_4);
    }

    #[test]
    fn roc_auc_is_nan_when_a_total_rounds_to_zero() {
        assert!(estimate_roc_auc(&[(0.3, 0.0), (0.2, 0.0)]).is_nan());
        assert!(estimate_roc_auc(&[(0.3, 1.0), (0.2, 1.0)]).is_nan());
        assert!(estimate_roc_auc(&[]).is_nan());
    }

    #[test]
    fn empty_window_is_nan_and_never_alerts() {
        let r = reference(CalibrationMode::On);
        let e = r.estimate(&[]).unwrap();
        assert_eq!(e.rows, 0);
        for m in e.metrics {
            assert!(m.value.is_nan() && m.lower.is_nan() && m.upper.is_nan());
            assert!(!m.alert && !m.realized_alert);
        }
    }

    #[test]
    fn window_with_one_predicted_class_only() {
        let r = reference(CalibrationMode::On);
        let rows: Vec<BinaryRow> = (0..10)
            .map(|i| row(0.6 + i as f64 / 100.0, i % 2 == 0))
            .collect();
        let e = r.estimate(&rows).unwrap();
        // every ŷ = 1: FN = TN = 0, so recall is 1 when TP > 0; precision = mean p
        assert_eq!(e.get(Metric::Recall).value, 1.0);
        assert!(e.get(Metric::Precision).value.is_finite());
        // realized: a single predicted value -> NaN precision/recall/f1, accuracy defined
        assert!(e.get(Metric::Precision).realized.is_nan());
        assert_eq!(e.get(Metric::Accuracy).realized, 0.5);
        // no positive predictions at all: estimated precision is 0 (NannyML), not NaN
        let neg: Vec<BinaryRow> = (0..10).map(|i| row(i as f64 / 100.0, false)).collect();
        assert_eq!(r.estimate(&neg).unwrap().get(Metric::Precision).value, 0.0);
    }

    #[test]
    fn all_scores_equal_and_scores_zero_or_one() {
        let r = reference(CalibrationMode::Off);
        let same: Vec<BinaryRow> = (0..8).map(|i| row(0.5, i % 2 == 0)).collect();
        let e = r.estimate(&same).unwrap();
        assert_eq!(e.get(Metric::Accuracy).value, 0.5);
        // tied raw scores: the curve is the diagonal
        assert_eq!(e.get(Metric::RocAuc).value, 0.5);
        assert_eq!(e.get(Metric::RocAuc).realized, 0.5);
        let extremes = [
            row(0.0, false),
            row(1.0, true),
            row(1.0, true),
            row(0.0, false),
        ];
        let e = r.estimate(&extremes).unwrap();
        for m in [
            Metric::Accuracy,
            Metric::Precision,
            Metric::Recall,
            Metric::F1,
        ] {
            assert_eq!(e.get(m).value, 1.0);
        }
        // only positives above negatives: AUC 1
        assert_eq!(e.get(Metric::RocAuc).value, 1.0);
    }

    #[test]
    fn non_finite_scores_are_rejected() {
        let r = reference(CalibrationMode::On);
        let mut w = BinaryWindow::new(10);
        let bad = BinaryRow {
            score: f64::NAN,
            y_pred: true,
            y_true: None,
        };
        assert!(matches!(
            w.push(&r, 0, &bad),
            Err(EstimationError::NonFiniteScore { row: 0, .. })
        ));
        assert_eq!(w.rows(), 0);
    }

    #[test]
    fn reference_needs_labels() {
        let rows = vec![BinaryRow {
            score: 0.3,
            y_pred: false,
            y_true: None,
        }];
        assert_eq!(
            BinaryReference::fit(&[rows], CalibrationMode::Off),
            Err(EstimationError::UnlabelledReferenceRow { row: 0 })
        );
        let none: [Vec<BinaryRow>; 0] = [];
        assert_eq!(
            BinaryReference::fit(&none, CalibrationMode::Off),
            Err(EstimationError::EmptyReference)
        );
    }

    #[test]
    fn late_outcomes_give_the_same_estimates() {
        let r = reference(CalibrationMode::On);
        let rows: Vec<BinaryRow> = (0..12).map(|i| row(i as f64 / 12.0, i % 3 == 0)).collect();
        let mut late = BinaryWindow::new(rows.len());
        for (i, x) in rows.iter().enumerate() {
            late.push(&r, i as u64, &BinaryRow { y_true: None, ..*x })
                .unwrap();
        }
        for (i, x) in rows.iter().enumerate().rev() {
            late.add_outcome(i as u64, x.score, x.y_pred, x.y_true.unwrap())
                .unwrap();
        }
        assert_eq!(estimate_binary(&r, &late), r.estimate(&rows).unwrap());
    }

    #[test]
    fn fitted_reference_and_window_survive_a_checkpoint_encoding() {
        let r = reference(CalibrationMode::Auto);
        let rows: Vec<BinaryRow> = (0..12).map(|i| row(i as f64 / 12.0, i % 3 == 0)).collect();
        let mut w = BinaryWindow::new(5);
        for (i, x) in rows.iter().enumerate() {
            w.push(&r, i as u64, x).unwrap();
        }
        let r2: BinaryReference = bincode::deserialize(&bincode::serialize(&r).unwrap()).unwrap();
        let w2: BinaryWindow = bincode::deserialize(&bincode::serialize(&w).unwrap()).unwrap();
        assert_eq!(w2, w);
        assert_eq!(estimate_binary(&r2, &w2), estimate_binary(&r, &w));
    }

    fn mrow(scores: [f64; 3], y_true: usize) -> MulticlassRow {
        let y_pred = (0..3).max_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        MulticlassRow {
            scores: scores.to_vec(),
            y_pred,
            y_true: Some(y_true),
        }
    }

    fn mreference(mode: CalibrationMode) -> MulticlassReference {
        let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let w: Vec<MulticlassRow> = (0..30)
            .map(|i| {
                let t = i % 3;
                let mut s = [0.2, 0.2, 0.2];
                s[t] = 0.4 + (i % 5) as f64 / 50.0;
                s[(t + 1) % 3] = 1.0 - s[t] - 0.2;
                // every fifth row predicted wrong
                if i % 5 == 0 {
                    s.swap(t, (t + 2) % 3);
                }
                mrow(s, t)
            })
            .collect();
        MulticlassReference::fit(&classes, &[w.clone(), w], mode).unwrap()
    }

    #[test]
    fn multiclass_off_still_normalises_rows() {
        let r = mreference(CalibrationMode::Off);
        let rows = vec![MulticlassRow {
            scores: vec![2.0, 1.0, 1.0],
            y_pred: Some(0),
            y_true: None,
        }];
        let e = r.estimate(&rows).unwrap();
        assert_eq!(e.get(Metric::Accuracy).value, 0.5);
        // a prediction outside the classes adds nothing to accuracy
        let rows = vec![MulticlassRow {
            scores: vec![0.5, 0.25, 0.25],
            y_pred: None,
            y_true: None,
        }];
        assert_eq!(r.estimate(&rows).unwrap().get(Metric::Accuracy).value, 0.0);
    }

    #[test]
    fn multiclass_all_zero_calibrated_row_is_uniform() {
        let r = mreference(CalibrationMode::Off);
        let rows = vec![MulticlassRow {
            scores: vec![0.0, 0.0, 0.0],
            y_pred: Some(1),
            y_true: Some(1),
        }];
        let e = r.estimate(&rows).unwrap();
        assert_eq!(e.get(Metric::Accuracy).value, 1.0 / 3.0);
        // one label, one prediction: the realized metrics are NaN
        assert!(e.get(Metric::Accuracy).realized.is_nan());
    }

    #[test]
    fn multiclass_window_with_one_class_only() {
        let r = mreference(CalibrationMode::On);
        let rows: Vec<MulticlassRow> = (0..6)
            .map(|i| mrow([0.7 - i as f64 / 100.0, 0.2, 0.1], 0))
            .collect();
        let e = r.estimate(&rows).unwrap();
        assert!(e.metrics.iter().take(4).all(|m| m.value.is_finite()));
        assert!(e.get(Metric::RocAuc).realized.is_nan());
    }

    #[test]
    fn multiclass_input_checks() {
        let r = mreference(CalibrationMode::On);
        let mut w = MulticlassWindow::new(&r, 10);
        let short = MulticlassRow {
            scores: vec![0.5, 0.5],
            y_pred: Some(0),
            y_true: None,
        };
        assert!(matches!(
            w.push(&r, 0, &short),
            Err(EstimationError::ScoreCount { .. })
        ));
        let bad_index = MulticlassRow {
            scores: vec![0.5, 0.3, 0.2],
            y_pred: Some(3),
            y_true: None,
        };
        assert!(matches!(
            w.push(&r, 0, &bad_index),
            Err(EstimationError::ClassIndex { index: 3, .. })
        ));
        let unsorted: Vec<String> = ["b", "a"].iter().map(|s| s.to_string()).collect();
        let none: [Vec<MulticlassRow>; 0] = [];
        assert!(matches!(
            MulticlassReference::fit(&unsorted, &none, CalibrationMode::On),
            Err(EstimationError::InvalidClasses(_))
        ));
    }

    /// Hanley & McNeil (1982): the standard error of a ROC AUC `a` over `p` positives and
    /// `n` negatives.
    fn hanley_mcneil(a: f64, p: f64, n: f64) -> f64 {
        let (q1, q2) = (a / (2.0 - a), 2.0 * a * a / (1.0 + a));
        ((a * (1.0 - a) + (p - 1.0) * (q1 - a * a) + (n - 1.0) * (q2 - a * a)) / (p * n)).sqrt()
    }

    /// SplitMix64 over a seed: uniform draws in [0, 1).
    struct Draws(u64);

    impl Draws {
        fn unit(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A standard normal draw (Box-Muller).
        fn normal(&mut self) -> f64 {
            let (u, v) = (1.0 - self.unit(), self.unit());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    /// `n` labelled rows, 30 % positive, scores a logistic of a separated normal.
    fn seeded_rows(seed: u64, n: usize) -> Vec<BinaryRow> {
        let mut d = Draws(seed);
        (0..n)
            .map(|_| {
                let y = d.unit() < 0.3;
                let z = if y { 0.8 } else { -0.8 } + d.normal();
                let score = 1.0 / (1.0 + (-z).exp());
                BinaryRow {
                    score,
                    y_pred: score >= 0.5,
                    y_true: Some(y),
                }
            })
            .collect()
    }

    fn request_key(window: u64, i: usize) -> u64 {
        crate::drift::fnv1a64(format!("req-{window}-{i}").as_bytes())
    }

    /// docs/estimation.md's bound: with n rows > k = `auc_sample`, the sampled ROC AUC
    /// differs from the AUC over every row by a sampling error whose standard deviation is
    /// `SE_HM(A, P, N) · √(1 − k/n)` for the realized AUC (Hanley-McNeil over the sample's
    /// positives and negatives) and at most that (with the sample's expected positives and
    /// negatives) for the estimated one. Over 24 seeded windows of 40 000 rows sampled at
    /// 1 000: every error within 3 SE; the realized errors' spread is that SE (their RMS in
    /// SE units about 1: neither a vacuous bound nor a biased sample), the estimated ones'
    /// at most that.
    #[test]
    fn sampled_roc_auc_is_within_the_stated_bound_of_the_full_one() {
        let r = reference(CalibrationMode::Off);
        let (n, k) = (40_000, 1_000);
        let windows = 24;
        let (mut squares, mut squares_estimated) = (0.0, 0.0);
        for window in 0..windows {
            let rows = seeded_rows(window, n);
            let (mut full, mut sampled) = (BinaryWindow::new(n), BinaryWindow::new(k));
            for (i, row) in rows.iter().enumerate() {
                full.push(&r, request_key(window, i), row).unwrap();
                sampled.push(&r, request_key(window, i), row).unwrap();
            }
            assert_eq!(sampled.scores.len(), k);
            assert!(full.scores.is_exact() && !sampled.scores.is_exact());
            let (all, some) = (estimate_binary(&r, &full), estimate_binary(&r, &sampled));
            // The sums are over every row: equal to the bit.
            for m in [
                Metric::Accuracy,
                Metric::Precision,
                Metric::Recall,
                Metric::F1,
            ] {
                assert_eq!(all.get(m).value, some.get(m).value);
                assert_eq!(all.get(m).realized, some.get(m).realized);
            }
            let fpc = (1.0 - k as f64 / n as f64).sqrt();
            // Realized: the sample's labelled positives and negatives.
            let positives = sampled.realized.scored().rows().filter(|r| r.1).count() as f64;
            let auc = all.get(Metric::RocAuc).realized;
            let se = hanley_mcneil(auc, positives, k as f64 - positives) * fpc;
            let realized_error = some.get(Metric::RocAuc).realized - auc;
            // Estimated: the sample's expected positives and negatives.
            let expected: f64 = sampled.scores.rows().map(|&(_, p)| p).sum();
            let auc = all.get(Metric::RocAuc).value;
            let se_estimated = hanley_mcneil(auc, expected, k as f64 - expected) * fpc;
            let estimated_error = some.get(Metric::RocAuc).value - auc;
            for (what, error, se) in [
                ("realized", realized_error, se),
                ("estimated", estimated_error, se_estimated),
            ] {
                assert!(
                    error.abs() <= 3.0 * se,
                    "window {window}: {what} ROC AUC off by {error} > 3 x {se}"
                );
            }
            squares += (realized_error / se).powi(2);
            squares_estimated += (estimated_error / se_estimated).powi(2);
        }
        let rms = (squares / windows as f64).sqrt();
        let rms_estimated = (squares_estimated / windows as f64).sqrt();
        assert!(
            (0.6..1.4).contains(&rms),
            "realized errors in SE units have RMS {rms}: the SE is not the sampling error's"
        );
        assert!(
            rms_estimated < 1.0,
            "estimated errors in SE units have RMS {rms_estimated}: the SE is no bound"
        );
    }

    /// A window's state (its snapshot encoding) stops growing at `auc_sample` rows: 100 000
    /// and 200 000 rows take the same bytes, within the exact sums' few words.
    #[test]
    fn window_state_is_bounded_by_the_sample() {
        let r = reference(CalibrationMode::Off);
        let encoded = |n: usize, k: usize| {
            let mut w = BinaryWindow::new(k);
            for (i, row) in seeded_rows(5, n).iter().enumerate() {
                w.push(&r, request_key(5, i), row).unwrap();
            }
            bincode::serialized_size(&w).unwrap()
        };
        let k = 10_000;
        let (at_100k, at_200k) = (encoded(100_000, k), encoded(200_000, k));
        let exact = encoded(100_000, 100_000);
        assert!(at_200k <= at_100k + 1_000, "{at_100k} -> {at_200k}");
        // Two samples (estimated, realized) of k rows, each (rank, raw, p) or (rank, raw, y).
        assert!(at_100k <= (k as u64) * (24 + 17) + 1_000, "{at_100k}");
        assert!(exact >= 9 * at_100k, "{exact} vs {at_100k}");
    }

    /// Partial windows of one window's rows, merged in any order, equal one window over
    /// all of them, ROC AUC samples included (more rows than the sample keeps).
    #[test]
    fn merged_partial_windows_equal_one_window() {
        let r = reference(CalibrationMode::On);
        let rows = seeded_rows(99, 3_000);
        let k = 400;
        let mut one = BinaryWindow::new(k);
        for (i, row) in rows.iter().enumerate().rev() {
            one.push(&r, request_key(0, i), row).unwrap();
        }
        let mut parts = [
            BinaryWindow::new(k),
            BinaryWindow::new(k),
            BinaryWindow::new(k),
        ];
        for (i, row) in rows.iter().enumerate() {
            parts[(request_key(1, i) % 3) as usize]
                .push(&r, request_key(0, i), row)
                .unwrap();
        }
        let want = format!("{:?}", estimate_binary(&r, &one));
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut merged = parts[order[0]].clone();
            merged.merge(&parts[order[1]]);
            merged.merge(&parts[order[2]]);
            assert_eq!(format!("{:?}", estimate_binary(&r, &merged)), want);
        }

        let m = mreference(CalibrationMode::On);
        let mrows: Vec<MulticlassRow> = (0..900)
            .map(|i| {
                let t = i % 3;
                let mut s = [
                    0.1 + (i % 7) as f64 / 70.0,
                    0.2,
                    0.15 + (i % 11) as f64 / 110.0,
                ];
                s[t] += 0.3 + (i % 13) as f64 / 65.0;
                mrow(s, (i / 3 + i % 5) % 3)
            })
            .collect();
        let mut one = MulticlassWindow::new(&m, 100);
        let mut parts = [
            MulticlassWindow::new(&m, 100),
            MulticlassWindow::new(&m, 100),
        ];
        for (i, row) in mrows.iter().enumerate() {
            one.push(&m, request_key(2, i), row).unwrap();
        }
        for (i, row) in mrows.iter().enumerate().rev() {
            parts[i % 2].push(&m, request_key(2, i), row).unwrap();
        }
        let [a, b] = parts;
        let mut merged = b.clone();
        merged.merge(&a);
        assert!(!merged.scores.is_exact());
        assert_eq!(
            format!("{:?}", estimate_multiclass(&m, &merged)),
            format!("{:?}", estimate_multiclass(&m, &one))
        );
    }

    /// A deterministic shuffle of `items` from `seed`.
    fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
        let mut state = seed | 1;
        let mut v = items.to_vec();
        for i in (1..v.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v.swap(i, (state % (i as u64 + 1)) as usize);
        }
        v
    }

    proptest::proptest! {
        /// The engine may see a window's rows in any order (join order, not event time;
        /// the partitioned engine merges partial windows in any order): the estimates
        /// depend on the rows alone, to the bit, even with tied scores.
        #[test]
        fn binary_estimates_do_not_depend_on_row_order(
            rows in proptest::collection::vec(
                (proptest::sample::select(vec![0.05, 0.3, 0.5, 0.7, 0.93]), 0.0f64..1.0,
                 proptest::bool::ANY, proptest::option::of(proptest::bool::ANY)),
                1..80),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let r = reference(CalibrationMode::On);
            let rows: Vec<BinaryRow> = rows
                .iter()
                .map(|&(tied, free, pick_tied, y_true)| {
                    let score = if pick_tied { tied } else { free };
                    BinaryRow { score, y_pred: score >= 0.5, y_true }
                })
                .collect();
            let a = r.estimate(&rows).unwrap();
            let b = r.estimate(&shuffled(&rows, seed)).unwrap();
            proptest::prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }

        /// The same for multiclass, with raw scores tied across rows whose calibrated
        /// (renormalised) probabilities differ.
        #[test]
        fn multiclass_estimates_do_not_depend_on_row_order(
            rows in proptest::collection::vec(
                (proptest::collection::vec(
                    proptest::sample::select(vec![0.1, 0.2, 0.3, 0.5]), 3),
                 0usize..3, proptest::bool::ANY),
                1..60),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let r = mreference(CalibrationMode::Off);
            let rows: Vec<MulticlassRow> = rows
                .iter()
                .map(|(scores, y_true, labelled)| {
                    let mut row = mrow([scores[0], scores[1], scores[2]], *y_true);
                    if !labelled {
                        row.y_true = None;
                    }
                    row
                })
                .collect();
            let a = r.estimate(&rows).unwrap();
            let b = r.estimate(&shuffled(&rows, seed)).unwrap();
            proptest::prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }
}
