//! Isotonic regression of 0/1 labels on scores, with scikit-learn 1.9's
//! `IsotonicRegression(out_of_bounds="clip", increasing=True)` conventions, as NannyML's
//! `IsotonicCalibrator` uses it (notes §1.1).
//!
//! Why a port and not "any PAVA": CBPE's estimates are sums of calibrated probabilities,
//! and the golden values are compared to 1e-12, so the fit must pool ties, order its
//! arithmetic and interpolate exactly as scikit-learn/scipy/numpy do:
//! 1. sort by (score, label); merge scores closer than 1e-15 (absolute) into one point
//!    (its x is the group's first score, its weight the row count, its y the mean label);
//! 2. scipy's PAVA (Busing 2022) on the weighted means, pooling equal neighbours;
//! 3. keep the end points and every point whose value differs from a neighbour;
//! 4. predict: clip to `[x_min, x_max]`, then `np.interp` with its exact operation order.

use super::EstimationError;

/// `np.finfo(np.float64).resolution`: sklearn's `_make_unique` tie tolerance (absolute).
const TIE_RESOLUTION: f64 = 1e-15;

/// A fitted isotonic regression: the trimmed breakpoints of a non-decreasing
/// piecewise-linear function (sklearn's `X_thresholds_`, `y_thresholds_`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IsotonicRegression {
    /// Smallest training score (`X_min_`): predictions below it are clipped to it.
    pub x_min: f64,
    /// Largest training score (`X_max_`).
    pub x_max: f64,
    /// Breakpoints, strictly increasing (`X_thresholds_`).
    pub x_thresholds: Vec<f64>,
    /// Fitted values at the breakpoints, non-decreasing, within [0, 1] (`y_thresholds_`).
    pub y_thresholds: Vec<f64>,
}

impl IsotonicRegression {
    /// Fits on `(score, label)` pairs in any order. Errors on no rows, unequal lengths or
    /// a non-finite score.
    pub fn fit(scores: &[f64], labels: &[bool]) -> Result<Self, EstimationError> {
        if scores.len() != labels.len() {
            return Err(EstimationError::LengthMismatch {
                scores: scores.len(),
                labels: labels.len(),
            });
        }
        if scores.is_empty() {
            return Err(EstimationError::EmptyReference);
        }
        if let Some((row, &score)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(EstimationError::NonFiniteScore { row, score });
        }
        // np.lexsort((y, x)): by x, then y (labels false < true).
        let mut pairs: Vec<(f64, bool)> =
            scores.iter().copied().zip(labels.iter().copied()).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

        // sklearn `_make_unique`: the group's x is its first x; sums of 0/1 are exact.
        let mut xs: Vec<f64> = Vec::new();
        let mut ys: Vec<f64> = Vec::new();
        let mut ws: Vec<f64> = Vec::new();
        let (mut cx, mut cy, mut cw) = (pairs[0].0, 0.0_f64, 0.0_f64);
        for &(x, y) in &pairs {
            if x - cx >= TIE_RESOLUTION {
                xs.push(cx);
                ws.push(cw);
                ys.push(cy / cw);
                cx = x;
                cy = if y { 1.0 } else { 0.0 };
                cw = 1.0;
            } else {
                cw += 1.0;
                if y {
                    cy += 1.0;
                }
            }
        }
        xs.push(cx);
        ws.push(cw);
        ys.push(cy / cw);

        pava(&mut ys, &mut ws);

        let n = ys.len();
        let keep = |i: usize| i == 0 || i + 1 == n || ys[i] != ys[i - 1] || ys[i] != ys[i + 1];
        let (x_thresholds, y_thresholds) =
            (0..n).filter(|&i| keep(i)).map(|i| (xs[i], ys[i])).unzip();
        Ok(IsotonicRegression {
            x_min: xs[0],
            x_max: xs[n - 1],
            x_thresholds,
            y_thresholds,
        })
    }

    /// The calibrated value of `score`: clipped to `[x_min, x_max]`, then interpolated
    /// linearly between breakpoints (`np.interp`). NaN in, NaN out.
    pub fn predict(&self, score: f64) -> f64 {
        if score.is_nan() {
            return f64::NAN;
        }
        let t = score.clamp(self.x_min, self.x_max);
        interp(t, &self.x_thresholds, &self.y_thresholds)
    }
}

/// `scipy.optimize.isotonic_regression` (scipy/optimize/_pava/pava.cpp), in place:
/// `x` becomes the fitted non-decreasing sequence; `w` is used as scratch.
fn pava(x: &mut [f64], w: &mut [f64]) {
    let n = x.len();
    if n <= 1 {
        return;
    }
    let mut r = vec![0usize; n + 1];
    r[1] = 1;
    let mut b = 0usize;
    let mut xb_prev = x[0];
    let mut wb_prev = w[0];
    let mut i = 1usize;
    while i < n {
        b += 1;
        let mut xb = x[i];
        let mut wb = w[i];
        if xb_prev >= xb {
            b -= 1;
            let mut sb = wb_prev * xb_prev + wb * xb;
            wb += wb_prev;
            xb = sb / wb;
            while i < n - 1 && xb >= x[i + 1] {
                i += 1;
                sb += w[i] * x[i];
                wb += w[i];
                xb = sb / wb;
            }
            while b > 0 && x[b - 1] >= xb {
                b -= 1;
                sb += w[b] * x[b];
                wb += w[b];
                xb = sb / wb;
            }
        }
        x[b] = xb;
        xb_prev = xb;
        w[b] = wb;
        wb_prev = wb;
        r[b + 1] = i + 1;
        i += 1;
    }
    // Expand the blocks, last first (block k covers r[k] .. r[k+1]).
    for k in (0..=b).rev() {
        let v = x[k];
        for item in x.iter_mut().take(r[k + 1]).skip(r[k]) {
            *item = v;
        }
    }
}

/// `np.interp(t, xp, fp)` for `xp[0] <= t <= xp[last]`, strictly increasing `xp`
/// (numpy `arr_interp`, its operation order included).
fn interp(t: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let last = xp.len() - 1;
    if last == 0 || t >= xp[last] {
        return fp[last];
    }
    if t <= xp[0] {
        return fp[0];
    }
    // Largest j with xp[j] <= t (t < xp[last], so j < last).
    let j = xp.partition_point(|&x| x <= t) - 1;
    if xp[j] == t {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (t - xp[j]) + fp[j]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(x: &[f64], y: &[u8]) -> IsotonicRegression {
        let labels: Vec<bool> = y.iter().map(|&v| v == 1).collect();
        IsotonicRegression::fit(x, &labels).unwrap()
    }

    #[test]
    fn worked_example_of_the_notes() {
        let m = fit(&[0.1, 0.2, 0.2, 0.3, 0.5, 0.7, 0.9], &[0, 1, 0, 0, 1, 1, 1]);
        assert_eq!(m.x_thresholds, vec![0.1, 0.2, 0.3, 0.5, 0.9]);
        assert_eq!(m.y_thresholds, vec![0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0, 1.0]);
        let got: Vec<f64> = [0.0, 0.15, 0.25, 0.4, 0.6, 0.95]
            .iter()
            .map(|&s| m.predict(s))
            .collect();
        let want = [0.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?}");
        }
    }

    #[test]
    fn all_scores_equal_gives_the_base_rate_everywhere() {
        let m = fit(&[0.4; 4], &[1, 0, 0, 1]);
        assert_eq!(m.x_thresholds, vec![0.4]);
        assert_eq!(m.y_thresholds, vec![0.5]);
        assert_eq!(m.predict(-3.0), 0.5);
        assert_eq!(m.predict(0.4), 0.5);
        assert_eq!(m.predict(9.0), 0.5);
    }

    #[test]
    fn scores_exactly_zero_and_one() {
        let m = fit(&[0.0, 1.0, 0.0, 1.0, 0.5], &[0, 1, 0, 1, 1]);
        assert_eq!(m.x_min, 0.0);
        assert_eq!(m.x_max, 1.0);
        assert_eq!(m.predict(0.0), 0.0);
        assert_eq!(m.predict(1.0), 1.0);
        assert_eq!(m.predict(0.25), 0.5);
    }

    #[test]
    fn one_class_only_is_constant() {
        let m = fit(&[0.3, 0.1, 0.9], &[0, 0, 0]);
        assert_eq!(m.y_thresholds, vec![0.0, 0.0]);
        assert_eq!(m.predict(0.5), 0.0);
    }

    #[test]
    fn decreasing_data_pools_into_one_block() {
        let m = fit(&[0.1, 0.2, 0.3, 0.4], &[1, 1, 0, 0]);
        assert_eq!(m.y_thresholds, vec![0.5, 0.5]);
        assert_eq!(m.x_thresholds, vec![0.1, 0.4]);
    }

    #[test]
    fn near_ties_within_resolution_are_merged() {
        let m = fit(&[0.5, 0.5 + 1e-16, 0.9], &[0, 1, 1]);
        assert_eq!(m.x_thresholds, vec![0.5, 0.9]);
        assert_eq!(m.y_thresholds, vec![0.5, 1.0]);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        assert_eq!(
            IsotonicRegression::fit(&[], &[]),
            Err(EstimationError::EmptyReference)
        );
        assert!(matches!(
            IsotonicRegression::fit(&[0.1], &[true, false]),
            Err(EstimationError::LengthMismatch { .. })
        ));
        assert!(matches!(
            IsotonicRegression::fit(&[f64::NAN], &[true]),
            Err(EstimationError::NonFiniteScore { row: 0, .. })
        ));
    }

    /// Textbook stack-based PAVA (weighted means of pooled blocks), for comparison.
    fn textbook_pava(y: &[f64], w: &[f64]) -> Vec<f64> {
        let mut blocks: Vec<(f64, f64, usize)> = Vec::new(); // (sum, weight, len)
        for (&v, &wt) in y.iter().zip(w) {
            blocks.push((v * wt, wt, 1));
            while blocks.len() > 1 {
                let (s1, w1, n1) = blocks[blocks.len() - 1];
                let (s0, w0, n0) = blocks[blocks.len() - 2];
                if s0 / w0 >= s1 / w1 {
                    blocks.pop();
                    *blocks.last_mut().unwrap() = (s0 + s1, w0 + w1, n0 + n1);
                } else {
                    break;
                }
            }
        }
        blocks
            .iter()
            .flat_map(|&(s, wt, n)| std::iter::repeat_n(s / wt, n))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn pava_agrees_with_the_textbook_algorithm(
            data in proptest::collection::vec((0u8..=20, 1u8..=5), 1..60)
        ) {
            let y: Vec<f64> = data.iter().map(|&(v, _)| v as f64 / 20.0).collect();
            let w: Vec<f64> = data.iter().map(|&(_, k)| k as f64).collect();
            let want = textbook_pava(&y, &w);
            let (mut got, mut scratch) = (y.clone(), w.clone());
            pava(&mut got, &mut scratch);
            for (g, e) in got.iter().zip(&want) {
                proptest::prop_assert!((g - e).abs() <= 1e-12, "{:?} vs {:?}", got, want);
            }
        }

        #[test]
        fn fit_is_monotone_within_unit_interval_and_clips(
            data in proptest::collection::vec((0u8..=30, proptest::bool::ANY), 1..80),
            probes in proptest::collection::vec(-10i32..=40, 1..20),
        ) {
            // scores on a coarse grid: many ties
            let x: Vec<f64> = data.iter().map(|&(s, _)| s as f64 / 30.0).collect();
            let y: Vec<bool> = data.iter().map(|&(_, l)| l).collect();
            let m = IsotonicRegression::fit(&x, &y).unwrap();
            proptest::prop_assert!(m.x_thresholds.windows(2).all(|p| p[0] < p[1]));
            proptest::prop_assert!(m.y_thresholds.windows(2).all(|p| p[0] <= p[1]));
            let mut probes: Vec<f64> = probes.iter().map(|&p| p as f64 / 30.0).collect();
            probes.sort_by(f64::total_cmp);
            let values: Vec<f64> = probes.iter().map(|&p| m.predict(p)).collect();
            proptest::prop_assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
            proptest::prop_assert!(values.windows(2).all(|p| p[0] <= p[1]));
            proptest::prop_assert_eq!(m.predict(-1.0), m.predict(m.x_min));
            proptest::prop_assert_eq!(m.predict(2.0), m.predict(m.x_max));
            // the fitted values are the pooled label means: their weighted sum is the
            // number of positives
            let positives = y.iter().filter(|&&l| l).count() as f64;
            let total: f64 = x.iter().map(|&s| m.predict(s)).sum();
            proptest::prop_assert!((total - positives).abs() < 1e-9, "{} vs {}", total, positives);
        }
    }

    #[test]
    fn pava_matches_a_brute_force_on_a_small_sequence() {
        let mut x = vec![1.0, 3.0, 2.0, 2.0, 0.0, 5.0];
        let mut w = vec![1.0; 6];
        pava(&mut x, &mut w);
        // 1 stays; (3,2,2,0) pool to 7/4; 5 stays.
        assert_eq!(x, vec![1.0, 1.75, 1.75, 1.75, 1.75, 5.0]);
    }
}
