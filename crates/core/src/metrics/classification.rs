//! Classification quality: a confusion matrix and score sums, mergeable, and the
//! scikit-learn definitions (zero_division = 0) of accuracy, precision, recall, F1, ROC AUC,
//! log loss and Brier score computed from them. The score sums are exact
//! ([`ExactSum`]): merged in any order, they give the same metrics to the bit.

use std::collections::BTreeMap;

use hashbrown::HashMap;

use crate::exact_sum::ExactSum;
use crate::output::{Averages, ClassMetrics, ClassificationMetrics, ConfusionMatrixOut, Prf};

/// Clipping bound of probabilities in log loss: float64 machine epsilon, as scikit-learn.
pub(crate) const LOG_LOSS_EPS: f64 = f64::EPSILON;

/// Counts of (actual, predicted) label pairs. Labels are interned ids.
///
/// The first `SMALL_CELLS` distinct cells are a list searched in order (a binary model
/// has at most four, found in a few comparisons), the rest a hash map: a pair is added for
/// every series of every joined pair, so this is on the hot path.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ConfusionMatrix {
    small: Vec<((u32, u32), u64)>,
    more: HashMap<(u32, u32), u64>,
}

/// Cells kept in the list before the map.
pub(crate) const SMALL_CELLS: usize = 16;

impl ConfusionMatrix {
    pub fn add(&mut self, actual: u32, predicted: u32) {
        self.add_count((actual, predicted), 1);
    }

    pub(crate) fn add_count(&mut self, cell: (u32, u32), n: u64) {
        if let Some((_, count)) = self.small.iter_mut().find(|(c, _)| *c == cell) {
            *count += n;
        } else if self.small.len() < SMALL_CELLS {
            self.small.push((cell, n));
        } else {
            *self.more.entry(cell).or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, other: &ConfusionMatrix) {
        for (actual, predicted, n) in other.cells() {
            self.add_count((actual, predicted), n);
        }
    }

    pub fn total(&self) -> u64 {
        self.cells().map(|(_, _, n)| n).sum()
    }

    /// Cells as `(actual, predicted, count)`, in no particular order.
    pub fn cells(&self) -> impl Iterator<Item = (u32, u32, u64)> + '_ {
        let small = self.small.iter().map(|&((a, p), n)| (a, p, n));
        small.chain(self.more.iter().map(|(&(a, p), &n)| (a, p, n)))
    }
}

/// Equal counts per cell, however they are stored.
impl PartialEq for ConfusionMatrix {
    fn eq(&self, other: &ConfusionMatrix) -> bool {
        let sorted = |m: &ConfusionMatrix| {
            let mut cells: Vec<(u32, u32, u64)> = m.cells().collect();
            cells.sort_unstable();
            cells
        };
        sorted(self) == sorted(other)
    }
}

/// A scored binary pair's contributions to [`ScoreAggregate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinaryPair {
    p: f64,
    actual_positive: bool,
    log_loss: f64,
    brier: f64,
}

impl BinaryPair {
    /// `p` is the probability of the positive class.
    pub fn new(p: f64, actual_positive: bool) -> BinaryPair {
        let clipped = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
        let q = if actual_positive {
            clipped
        } else {
            1.0 - clipped
        };
        let y = if actual_positive { 1.0 } else { 0.0 };
        BinaryPair {
            p,
            actual_positive,
            log_loss: -q.ln(),
            brier: (p - y) * (p - y),
        }
    }
}

/// Sums over the scored pairs of a window, for log loss, Brier score and ROC AUC.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ScoreAggregate {
    /// Pairs with a usable score.
    pub scored: u64,
    /// Pairs without one: the score metrics are then undefined for the window.
    pub unscored: u64,
    pub log_loss_sum: ExactSum,
    pub brier_sum: ExactSum,
    /// Binary only: (probability of the positive class, actual is positive), for ROC AUC.
    /// Exact, so it grows with the window: 16 bytes per scored pair.
    pub ranked: Vec<(f64, bool)>,
    /// Whether the Brier score and ROC AUC apply (binary models).
    pub binary: bool,
}

/// The same pairs, in whatever order they were added or merged.
impl PartialEq for ScoreAggregate {
    fn eq(&self, other: &ScoreAggregate) -> bool {
        let sorted = |s: &ScoreAggregate| {
            let mut ranked: Vec<(u64, bool)> = s
                .ranked
                .iter()
                .map(|&(p, positive)| (p.to_bits(), positive))
                .collect();
            ranked.sort_unstable();
            ranked
        };
        self.scored == other.scored
            && self.unscored == other.unscored
            && self.log_loss_sum == other.log_loss_sum
            && self.brier_sum == other.brier_sum
            && self.binary == other.binary
            && sorted(self) == sorted(other)
    }
}

impl ScoreAggregate {
    /// A binary pair: `p` is the probability of the positive class.
    pub fn add_binary(&mut self, p: f64, actual_positive: bool) {
        self.add_binary_pair(&BinaryPair::new(p, actual_positive));
    }

    /// A binary pair whose terms are computed (once for all the series it counts in).
    pub(crate) fn add_binary_pair(&mut self, pair: &BinaryPair) {
        self.binary = true;
        self.scored += 1;
        self.log_loss_sum.add(pair.log_loss);
        self.brier_sum.add(pair.brier);
        self.ranked.push((pair.p, pair.actual_positive));
    }

    /// A multiclass pair: `p_actual` is the probability given to the actual class.
    pub(crate) fn add_multiclass(&mut self, p_actual: f64) {
        let q = p_actual.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
        self.scored += 1;
        self.log_loss_sum.add(-q.ln());
    }

    pub(crate) fn add_unscored(&mut self) {
        self.unscored += 1;
    }

    pub fn merge(&mut self, other: &ScoreAggregate) {
        self.scored += other.scored;
        self.unscored += other.unscored;
        self.log_loss_sum.merge(&other.log_loss_sum);
        self.brier_sum.merge(&other.brier_sum);
        self.ranked.extend_from_slice(&other.ranked);
        self.binary |= other.binary;
    }

    fn complete(&self) -> bool {
        self.scored > 0 && self.unscored == 0
    }

    pub fn log_loss(&self) -> Option<f64> {
        self.complete()
            .then(|| self.log_loss_sum.value() / self.scored as f64)
    }

    pub fn brier(&self) -> Option<f64> {
        (self.complete() && self.binary).then(|| self.brier_sum.value() / self.scored as f64)
    }

    /// ROC AUC as the Mann-Whitney statistic with tied scores counted half, which equals
    /// scikit-learn's trapezoidal area under the ROC curve. `None` unless both classes occur.
    pub fn roc_auc(&self) -> Option<f64> {
        if !(self.complete() && self.binary) {
            return None;
        }
        // Mann-Whitney: over the positives, the negatives scored lower, plus half the tied
        // ones, counted exactly in integers (twice U) over the two sorted score lists. The
        // scores are sorted as integer keys in the same order; `+ 0.0` turns -0.0 into 0.0,
        // which ties with it, as in `<` (scores are never NaN: unscored pairs carry none).
        let (mut positive, mut negative) = (Vec::new(), Vec::new());
        for &(score, is_positive) in &self.ranked {
            let key = crate::total_order_sort::total_order_key(score + 0.0);
            if is_positive {
                positive.push(key);
            } else {
                negative.push(key);
            }
        }
        if positive.is_empty() || negative.is_empty() {
            return None;
        }
        crate::total_order_sort::sort_keys(&mut positive);
        crate::total_order_sort::sort_keys(&mut negative);
        let (mut lower, mut not_higher) = (0usize, 0usize);
        let mut twice_u: u64 = 0;
        for &p in &positive {
            while lower < negative.len() && negative[lower] < p {
                lower += 1;
            }
            while not_higher < negative.len() && negative[not_higher] <= p {
                not_higher += 1;
            }
            twice_u += (lower + not_higher) as u64;
        }
        let (positives, negatives) = (positive.len() as f64, negative.len() as f64);
        Some(twice_u as f64 / (2.0 * positives * negatives))
    }
}

/// What the metrics need to know about the model and its labels.
pub struct LabelContext<'a> {
    /// Name of each interned label id.
    pub name: &'a dyn Fn(u32) -> String,
    /// Binary models: the positive class's label (it may be absent from the window).
    pub positive_class: Option<&'a str>,
}

/// Computes the record's `classification` object.
pub fn classification_metrics(
    confusion: &ConfusionMatrix,
    scores: &ScoreAggregate,
    labels: &LabelContext<'_>,
) -> ClassificationMetrics {
    // Per label name: (true positives, predicted count, actual count).
    let mut per_label: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut matrix_cells: Vec<(String, String, u64)> = Vec::new();
    for (actual, predicted, n) in confusion.cells() {
        let a = (labels.name)(actual);
        let p = (labels.name)(predicted);
        per_label.entry(a.clone()).or_default().2 += n;
        per_label.entry(p.clone()).or_default().1 += n;
        if actual == predicted {
            per_label.entry(a.clone()).or_default().0 += n;
        }
        matrix_cells.push((a, p, n));
    }
    let total: u64 = confusion.total();
    let names: Vec<String> = per_label.keys().cloned().collect();
    let position = |name: &str| {
        names
            .binary_search_by(|n| n.as_str().cmp(name))
            .unwrap_or(0)
    };
    let mut matrix = vec![vec![0u64; names.len()]; names.len()];
    for (a, p, n) in &matrix_cells {
        matrix[position(a)][position(p)] += n;
    }

    let mut per_class = BTreeMap::new();
    let (mut tp_sum, mut pred_sum, mut true_sum) = (0u64, 0u64, 0u64);
    let mut macro_sum = Prf::zero();
    let mut weighted_sum = Prf::zero();
    for (name, &(tp, predicted, actual)) in &per_label {
        let prf = prf(tp, predicted, actual);
        tp_sum += tp;
        pred_sum += predicted;
        true_sum += actual;
        macro_sum.add(&prf, 1.0);
        weighted_sum.add(&prf, actual as f64);
        per_class.insert(
            name.clone(),
            ClassMetrics {
                precision: prf.precision,
                recall: prf.recall,
                f1: prf.f1,
                support: actual,
            },
        );
    }

    let defined = total > 0;
    let averages = if defined {
        Averages {
            micro: prf(tp_sum, pred_sum, true_sum),
            macro_: macro_sum.scaled(1.0 / names.len() as f64),
            weighted: if true_sum == 0 {
                Prf::zero()
            } else {
                weighted_sum.scaled(1.0 / true_sum as f64)
            },
        }
    } else {
        Averages::default()
    };
    let headline = match labels.positive_class {
        Some(positive) if defined => {
            let (tp, predicted, actual) = per_label.get(positive).copied().unwrap_or((0, 0, 0));
            prf(tp, predicted, actual)
        }
        Some(_) => Prf::default(),
        None => averages.macro_.clone(),
    };
    ClassificationMetrics {
        accuracy: defined.then(|| tp_sum as f64 / total as f64),
        precision: headline.precision,
        recall: headline.recall,
        f1: headline.f1,
        averages,
        per_class,
        confusion_matrix: ConfusionMatrixOut {
            labels: names,
            matrix,
        },
        roc_auc: scores.roc_auc(),
        log_loss: scores.log_loss(),
        brier: scores.brier(),
    }
}

/// Precision, recall and F1 from counts, with zero_division = 0.
fn prf(tp: u64, predicted: u64, actual: u64) -> Prf {
    let ratio = |num: u64, den: u64| {
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    };
    Prf {
        precision: Some(ratio(tp, predicted)),
        recall: Some(ratio(tp, actual)),
        f1: Some(ratio(2 * tp, predicted + actual)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_cells_past_the_list_go_to_the_map() {
        // 6 x 6 labels: 36 cells, more than the list holds; split across two matrices.
        let (mut a, mut b, mut all): (ConfusionMatrix, ConfusionMatrix, ConfusionMatrix) =
            Default::default();
        let mut n = 0;
        for actual in 0..6u32 {
            for predicted in (0..6u32).rev() {
                for _ in 0..=(actual * predicted) % 3 {
                    let part: &mut ConfusionMatrix = if n % 2 == 0 { &mut a } else { &mut b };
                    part.add(actual, predicted);
                    all.add(actual, predicted);
                    n += 1;
                }
            }
        }
        assert_eq!(all.small.len(), SMALL_CELLS);
        assert_eq!(all.cells().count(), 36);
        assert_eq!(all.total(), n);
        let mut merged = b.clone();
        merged.merge(&a);
        assert_eq!(merged, all, "the same counts, stored in another order");
        merged.add(0, 0);
        assert_ne!(merged, all);
    }

    #[test]
    fn auc_with_ties() {
        let mut s = ScoreAggregate::default();
        for (p, y) in [
            (0.1, false),
            (0.4, true),
            (0.35, false),
            (0.8, true),
            (0.4, false),
        ] {
            s.add_binary(p, y);
        }
        // sklearn.metrics.roc_auc_score([0,1,0,1,0], [0.1,0.4,0.35,0.8,0.4]) == 0.916666...
        assert!((s.roc_auc().unwrap() - 0.9166666666666666).abs() < 1e-12);
    }

    fn score_bits(s: &ScoreAggregate) -> [Option<u64>; 3] {
        [s.log_loss(), s.brier(), s.roc_auc()].map(|v| v.map(f64::to_bits))
    }

    proptest::proptest! {
        /// Scored pairs split into parts and merged in any order: the same log loss,
        /// Brier score and ROC AUC to the bit as one pass (naive float sums differ).
        #[test]
        fn split_and_merged_in_any_order_is_bit_identical(
            pairs in proptest::collection::vec(
                (proptest::prop_oneof![0.0f64..1.0, 0.0f64..1e-12, proptest::strategy::Just(0.5), proptest::strategy::Just(1.0)],
                 proptest::bool::ANY),
                1..120),
            assignment in proptest::collection::vec(0usize..5, 120),
            order in proptest::sample::subsequence(vec![0usize, 1, 2, 3, 4], 5),
            rotate in 0usize..5,
        ) {
            let mut all = ScoreAggregate::default();
            let mut parts = vec![ScoreAggregate::default(); 5];
            for (i, &(p, y)) in pairs.iter().enumerate() {
                all.add_binary(p, y);
                parts[assignment[i]].add_binary(p, y);
            }
            let mut order = order;
            order.rotate_left(rotate);
            let mut merged = ScoreAggregate::default();
            for &i in &order {
                merged.merge(&parts[i]);
            }
            proptest::prop_assert_eq!(score_bits(&merged), score_bits(&all));
            proptest::prop_assert_eq!(&merged, &all);
        }
    }

    #[test]
    fn auc_undefined_with_one_class() {
        let mut s = ScoreAggregate::default();
        s.add_binary(0.3, true);
        s.add_binary(0.6, true);
        assert_eq!(s.roc_auc(), None);
        assert!(s.log_loss().is_some());
    }

    #[test]
    fn unscored_pair_makes_score_metrics_undefined() {
        let mut s = ScoreAggregate::default();
        s.add_binary(0.3, true);
        s.add_unscored();
        assert_eq!((s.log_loss(), s.brier()), (None, None));
    }
}
