//! The calibrator of CBPE (isotonic regression or none) and the `auto` decision whether
//! a score needs calibrating (notes §1, §2).
//!
//! Why: CBPE reads a calibrated score as the probability that the row is positive; a
//! model's raw scores are often not calibrated, so NannyML fits an isotonic regression on
//! the labelled reference, but only if that improves the expected calibration error
//! (ECE) on held-out splits.
//!
//! **Our `auto` rule** ([`needs_calibration`]), deterministic by construction: NannyML's
//! procedure step by step — no calibration if the labels have one class or the raw
//! scores already rank with ROC AUC > 0.999; otherwise 10 stratified shuffle splits
//! (10 % test) drawn exactly as scikit-learn's `StratifiedShuffleSplit(random_state=42)`
//! draws them (numpy's legacy MT19937 `RandomState(42)`, ported below), an isotonic fit
//! on each train part, and calibration iff the ECE (10 equal-count bins) of the raw test
//! scores is strictly larger than that of the calibrated test scores. It depends only on
//! the reference rows and their order.
//!
//! **Difference from NannyML:** NannyML sorts the test scores for the ECE bins with
//! numpy's default *unstable* `argsort`, whose order inside groups of tied scores (and
//! calibrated scores are full of ties) depends on numpy's build and the CPU. We sort
//! stably (ties keep their concatenation order). The two ECEs can differ by ~1e-3, so a
//! decision can differ from NannyML's when the two ECEs are that close; on the golden
//! cases both agree (margins ≥ 0.02). Also different: where scikit-learn raises (a class
//! with fewer than 2 rows, fewer than 2 ECE bins), NannyML's fit fails; we answer "no
//! calibration".

use super::isotonic::IsotonicRegression;
use super::realized::tie_aware_auc;
use super::EstimationError;

/// How to choose between isotonic calibration and raw scores.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum CalibrationMode {
    /// Always calibrate (NannyML with `needs_calibration` forced to true).
    On,
    /// Never calibrate: the raw score is the probability (multiclass rows are still
    /// divided by their sum, as NannyML does).
    Off,
    /// Calibrate iff [`needs_calibration`] says so (per class for multiclass).
    #[default]
    Auto,
}

/// A fitted calibrator: maps a raw score to a probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Calibrator {
    /// The identity (NannyML's `NoopCalibrator`, or binary without calibration).
    Identity,
    /// Isotonic regression fitted on the reference.
    Isotonic(IsotonicRegression),
}

impl Calibrator {
    /// Decides (per `mode`) and fits on the reference's `(score, label)` pairs.
    pub fn fit(
        mode: CalibrationMode,
        scores: &[f64],
        labels: &[bool],
    ) -> Result<Self, EstimationError> {
        Ok(Self::fit_with_decision(mode, scores, labels)?.0)
    }

    /// [`Calibrator::fit`], also returning the `auto` decision (`None` for `On`/`Off`).
    pub fn fit_with_decision(
        mode: CalibrationMode,
        scores: &[f64],
        labels: &[bool],
    ) -> Result<(Self, Option<CalibrationDecision>), EstimationError> {
        let (calibrate, decision) = match mode {
            CalibrationMode::On => (true, None),
            CalibrationMode::Off => (false, None),
            CalibrationMode::Auto => {
                let d = needs_calibration(labels, scores)?;
                (d.needs_calibration, Some(d))
            }
        };
        let calibrator = if calibrate {
            Calibrator::Isotonic(IsotonicRegression::fit(scores, labels)?)
        } else {
            Calibrator::Identity
        };
        Ok((calibrator, decision))
    }

    /// The calibrated probability of a raw score.
    pub fn calibrate(&self, score: f64) -> f64 {
        match self {
            Calibrator::Identity => score,
            Calibrator::Isotonic(m) => m.predict(score),
        }
    }

    /// Whether this is an isotonic calibrator.
    pub fn is_isotonic(&self) -> bool {
        matches!(self, Calibrator::Isotonic(_))
    }
}

/// The outcome of [`needs_calibration`], with the two ECEs when they were computed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibrationDecision {
    pub needs_calibration: bool,
    /// ECE of the raw held-out scores (NaN when the decision was taken before, e.g. one
    /// class or ROC AUC > 0.999).
    pub ece_before: f64,
    /// ECE of the calibrated held-out scores (NaN likewise).
    pub ece_after: f64,
}

impl CalibrationDecision {
    fn early(needs_calibration: bool) -> Self {
        CalibrationDecision {
            needs_calibration,
            ece_before: f64::NAN,
            ece_after: f64::NAN,
        }
    }
}

const SPLITS: usize = 10;
const TEST_SIZE: f64 = 0.1;
const SEED: u32 = 42;
const ECE_BINS: usize = 10;

/// Our deterministic version of NannyML's `needs_calibration` (see the module doc for
/// the rule and how it differs). `labels[i]` is whether row `i` is positive.
pub fn needs_calibration(
    labels: &[bool],
    scores: &[f64],
) -> Result<CalibrationDecision, EstimationError> {
    if labels.len() != scores.len() {
        return Err(EstimationError::LengthMismatch {
            scores: scores.len(),
            labels: labels.len(),
        });
    }
    if let Some((row, &score)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(EstimationError::NonFiniteScore { row, score });
    }
    let positives = labels.iter().filter(|&&y| y).count();
    if positives == 0 || positives == labels.len() {
        return Ok(CalibrationDecision::early(false));
    }
    if tie_aware_auc(labels.iter().copied().zip(scores.iter().copied())) > 0.999 {
        return Ok(CalibrationDecision::early(false));
    }
    let Some(splits) = stratified_shuffle_split(labels) else {
        return Ok(CalibrationDecision::early(false));
    };
    let mut y_test: Vec<bool> = Vec::new();
    let mut raw_test: Vec<f64> = Vec::new();
    let mut calibrated_test: Vec<f64> = Vec::new();
    for (train, test) in splits {
        let xs: Vec<f64> = train.iter().map(|&i| scores[i]).collect();
        let ys: Vec<bool> = train.iter().map(|&i| labels[i]).collect();
        let model = IsotonicRegression::fit(&xs, &ys)?;
        for &i in &test {
            y_test.push(labels[i]);
            raw_test.push(scores[i]);
            calibrated_test.push(model.predict(scores[i]));
        }
    }
    let (Some(before), Some(after)) = (ece(&y_test, &raw_test), ece(&y_test, &calibrated_test))
    else {
        return Ok(CalibrationDecision::early(false));
    };
    Ok(CalibrationDecision {
        needs_calibration: before > after,
        ece_before: before,
        ece_after: after,
    })
}

/// Expected calibration error with NannyML's equal-count bins (`_get_bin_index_edges`),
/// after a *stable* sort by probability. `None` where NannyML raises (fewer than 2 bins).
fn ece(labels: &[bool], probabilities: &[f64]) -> Option<f64> {
    let n = probabilities.len();
    let bins = if n <= 2 * ECE_BINS { n / 2 } else { ECE_BINS };
    if bins < 2 {
        return None;
    }
    let width = n / bins;
    let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
    *edges.last_mut().expect("n >= 4") = n;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    let mut total = 0.0;
    for pair in edges.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let len = (b - a) as f64;
        let mut sum_p = 0.0;
        let mut sum_y = 0.0;
        for &i in &order[a..b] {
            sum_p += probabilities[i];
            if labels[i] {
                sum_y += 1.0;
            }
        }
        total += len / n as f64 * (sum_p / len - sum_y / len).abs();
    }
    Some(total)
}

/// numpy's legacy `RandomState(seed)` bit generator (MT19937, `init_genrand`) and the
/// two draws scikit-learn's splitter needs.
struct Mt19937 {
    mt: [u32; 624],
    pos: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            let prev = mt[i - 1];
            mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, pos: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.pos = 0;
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// Legacy `random_interval(max)`: uniform in `0..=max` by masked rejection.
    fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// Legacy `RandomState.shuffle` of a 1-d array (Fisher-Yates from the end).
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }

    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        self.shuffle(&mut v);
        v
    }
}

/// scikit-learn's `_approximate_mode(class_counts, n_draws, rng)`.
fn approximate_mode(counts: &[usize], draws: usize, rng: &mut Mt19937) -> Vec<usize> {
    let total = counts.iter().sum::<usize>() as f64;
    let continuous: Vec<f64> = counts
        .iter()
        .map(|&c| c as f64 / total * draws as f64)
        .collect();
    let mut floored: Vec<usize> = continuous.iter().map(|c| c.floor() as usize).collect();
    let mut need = draws.saturating_sub(floored.iter().sum::<usize>());
    if need > 0 {
        let remainder: Vec<f64> = continuous
            .iter()
            .zip(&floored)
            .map(|(c, &f)| c - f as f64)
            .collect();
        let mut values = remainder.clone();
        values.sort_by(|a, b| b.total_cmp(a));
        values.dedup();
        for value in values {
            let inds: Vec<usize> = (0..remainder.len())
                .filter(|&i| remainder[i] == value)
                .collect();
            let add = inds.len().min(need);
            // RandomState.choice(inds, add, replace=False) == inds[permutation(len)[:add]]
            let perm = rng.permutation(inds.len());
            for &p in &perm[..add] {
                floored[inds[p]] += 1;
            }
            need -= add;
            if need == 0 {
                break;
            }
        }
    }
    floored
}

/// scikit-learn's `StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42)`
/// over binary labels, as (train, test) row-index lists. `None` where scikit-learn raises
/// (a class with fewer than 2 rows, or too few rows for a part to hold every class).
fn stratified_shuffle_split(labels: &[bool]) -> Option<Vec<(Vec<usize>, Vec<usize>)>> {
    let n = labels.len();
    let n_test = (TEST_SIZE * n as f64).ceil() as usize;
    let n_train = n.checked_sub(n_test)?;
    let class_indices: [Vec<usize>; 2] = [
        (0..n).filter(|&i| !labels[i]).collect(),
        (0..n).filter(|&i| labels[i]).collect(),
    ];
    let counts = [class_indices[0].len(), class_indices[1].len()];
    if counts.iter().any(|&c| c < 2) || n_train < 2 || n_test < 2 {
        return None;
    }
    let mut rng = Mt19937::new(SEED);
    let mut out = Vec::with_capacity(SPLITS);
    for _ in 0..SPLITS {
        let n_i = approximate_mode(&counts, n_train, &mut rng);
        let rest = [counts[0] - n_i[0], counts[1] - n_i[1]];
        let t_i = approximate_mode(&rest, n_test, &mut rng);
        let mut train = Vec::with_capacity(n_train);
        let mut test = Vec::with_capacity(n_test);
        for k in 0..2 {
            let perm = rng.permutation(counts[k]);
            let idx: Vec<usize> = perm.iter().map(|&p| class_indices[k][p]).collect();
            train.extend_from_slice(&idx[..n_i[k]]);
            test.extend_from_slice(&idx[n_i[k]..n_i[k] + t_i[k]]);
        }
        rng.shuffle(&mut train);
        rng.shuffle(&mut test);
        out.push((train, test));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_numpy_random_state_42() {
        // np.random.RandomState(42).randint(0, 2**32, dtype=np.uint64)... the first raw
        // outputs of MT19937(42) are the reference values of the algorithm:
        let mut rng = Mt19937::new(42);
        let first: Vec<u32> = (0..3).map(|_| rng.next_u32()).collect();
        assert_eq!(first, vec![1_608_637_542, 3_421_126_067, 4_083_286_876]);
    }

    #[test]
    fn numpy_permutation_of_ten_with_seed_42() {
        // np.random.RandomState(42).permutation(10)
        let mut rng = Mt19937::new(42);
        assert_eq!(rng.permutation(10), vec![8, 1, 5, 0, 7, 2, 9, 4, 3, 6]);
    }

    #[test]
    fn splits_are_stratified_and_disjoint() {
        let labels: Vec<bool> = (0..57).map(|i| i % 3 == 0).collect();
        let splits = stratified_shuffle_split(&labels).unwrap();
        assert_eq!(splits.len(), 10);
        for (train, test) in &splits {
            assert_eq!(test.len(), 6);
            assert_eq!(train.len(), 51);
            assert!(test.iter().all(|i| !train.contains(i)));
            let pos = test.iter().filter(|&&i| labels[i]).count();
            assert_eq!(pos, 2);
        }
    }

    #[test]
    fn one_class_or_perfect_ranking_needs_no_calibration() {
        let scores = [0.1, 0.2, 0.3, 0.4];
        assert!(
            !needs_calibration(&[true; 4], &scores)
                .unwrap()
                .needs_calibration
        );
        assert!(
            !needs_calibration(&[false, false, true, true], &scores)
                .unwrap()
                .needs_calibration
        );
    }

    #[test]
    fn too_few_rows_for_the_splitter_needs_no_calibration() {
        let d = needs_calibration(
            &[false, true, false, true, false],
            &[0.9, 0.1, 0.8, 0.2, 0.5],
        )
        .unwrap();
        assert!(!d.needs_calibration);
        assert!(d.ece_before.is_nan());
    }

    #[test]
    fn badly_calibrated_scores_need_calibration() {
        // Labels follow P(y=1 | s) = s^3 (deterministic pattern): raw scores overestimate.
        let n = 2000;
        let scores: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64 / n as f64).collect();
        let labels: Vec<bool> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| (((i * 104_729) % 1000) as f64 / 1000.0) < s * s * s)
            .collect();
        let d = needs_calibration(&labels, &scores).unwrap();
        assert!(d.needs_calibration, "{d:?}");
        assert!(d.ece_before > d.ece_after + 0.05, "{d:?}");
    }

    #[test]
    fn identity_calibrator_is_the_identity() {
        let c = Calibrator::fit(CalibrationMode::Off, &[0.2, 0.7], &[false, true]).unwrap();
        assert_eq!(c, Calibrator::Identity);
        assert_eq!(c.calibrate(0.123), 0.123);
        let c = Calibrator::fit(CalibrationMode::On, &[0.2, 0.7], &[false, true]).unwrap();
        assert!(c.is_isotonic());
        assert_eq!(c.calibrate(0.2), 0.0);
    }
}
