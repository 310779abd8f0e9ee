//! Regression quality: exact sums over the joined pairs, mergeable in any order with the
//! same result to the bit ([`ExactSum`]), and scikit-learn's MAE, RMSE, MAPE and R²
//! computed from them.
//!
//! R² needs `Σ(y − ȳ)²`. A running (Welford) variance depends on the order of the
//! actuals, so the aggregate keeps `Σy` and `Σy²` exactly instead (each `y²` added with
//! its rounding error, so the sum is of the exact squares) and computes
//! `n·Σ(y − ȳ)² = n·Σy² − (Σy)²` exactly too, from the partials of both sums with
//! error-free products: the textbook formula's catastrophic cancellation (data like
//! `1e6 + noise`) cannot happen because nothing is rounded before the subtraction.
//! **Bound:** `m2 = (n·Σy² − (Σy)²) / n` is rounded twice (the exact difference to the
//! nearest `f64`, then the division), so its relative error is below 2^-52 (one ulp),
//! whatever `ȳ²/variance`, provided every non-zero `|y|` lies within about
//! `1e-146 .. 1e154` (the squares and the products of the partials neither under- nor
//! overflow) and n < 2^53. A constant target gives exactly 0.

use crate::exact_sum::{n_sum_squares_minus_square_of_sum, ExactSum};
use crate::output::RegressionMetrics;

/// Sums over the joined pairs of a window.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegressionAggregate {
    pub n: u64,
    /// Σ |y − ŷ|.
    pub abs_error_sum: ExactSum,
    /// Σ (y − ŷ)², each square rounded as scikit-learn's.
    pub sq_error_sum: ExactSum,
    /// Σ |y − ŷ| / max(|y|, ε).
    pub ape_sum: ExactSum,
    /// Σ y.
    pub actual_sum: ExactSum,
    /// Σ y², of the exact squares.
    pub actual_sq_sum: ExactSum,
}

impl RegressionAggregate {
    pub fn add(&mut self, actual: f64, predicted: f64) {
        let error = (actual - predicted).abs();
        self.n += 1;
        self.abs_error_sum.add(error);
        self.sq_error_sum.add(error * error);
        // scikit-learn's MAPE divides by max(|y|, float64 eps).
        self.ape_sum.add(error / actual.abs().max(f64::EPSILON));
        self.actual_sum.add(actual);
        self.actual_sq_sum.add_product(actual, actual);
    }

    pub fn merge(&mut self, other: &RegressionAggregate) {
        self.n += other.n;
        self.abs_error_sum.merge(&other.abs_error_sum);
        self.sq_error_sum.merge(&other.sq_error_sum);
        self.ape_sum.merge(&other.ape_sum);
        self.actual_sum.merge(&other.actual_sum);
        self.actual_sq_sum.merge(&other.actual_sq_sum);
    }

    /// `Σ(y − ȳ)²`, within one ulp (see the module docs); NaN if an actual was not finite.
    pub fn m2_actual(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        n_sum_squares_minus_square_of_sum(self.n, &self.actual_sum, &self.actual_sq_sum)
            / self.n as f64
    }

    pub fn metrics(&self) -> RegressionMetrics {
        if self.n == 0 {
            return RegressionMetrics::default();
        }
        let n = self.n as f64;
        let sq_error_sum = self.sq_error_sum.value();
        let r2 = if self.n < 2 {
            None
        } else {
            let m2 = self.m2_actual();
            if m2 <= 0.0 {
                // scikit-learn's force_finite: a constant target (exactly 0; below 0 only
                // through underflow) is explained perfectly or not at all.
                Some(if sq_error_sum == 0.0 { 1.0 } else { 0.0 })
            } else {
                Some(1.0 - sq_error_sum / m2)
            }
        };
        RegressionMetrics {
            mae: Some(self.abs_error_sum.value() / n),
            rmse: Some((sq_error_sum / n).sqrt()),
            mape: Some(self.ape_sum.value() / n),
            r2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_formulas() {
        let pairs = [(3.0, 2.5), (-0.5, 0.0), (2.0, 2.0), (7.0, 8.0)];
        let mut agg = RegressionAggregate::default();
        for (y, p) in pairs {
            agg.add(y, p);
        }
        let m = agg.metrics();
        // sklearn: mean_absolute_error = 0.5, root_mean_squared_error = 0.612372..., r2 = 0.948608...
        assert!((m.mae.unwrap() - 0.5).abs() < 1e-12);
        assert!((m.rmse.unwrap() - 0.6123724356957945).abs() < 1e-12);
        assert!((m.r2.unwrap() - 0.9486081370449679).abs() < 1e-12);
    }

    #[test]
    fn merge_equals_union() {
        let (mut a, mut b, mut all) = Default::default();
        for i in 0..50 {
            let (y, p) = (i as f64 * 0.7 - 3.0, i as f64 * 0.69);
            if i % 3 == 0 {
                RegressionAggregate::add(&mut a, y, p)
            } else {
                RegressionAggregate::add(&mut b, y, p)
            }
            RegressionAggregate::add(&mut all, y, p);
        }
        let mut merged: RegressionAggregate = a;
        merged.merge(&b);
        assert_eq!(merged, all);
        assert_eq!(bits(&merged.metrics()), bits(&all.metrics()));
    }

    fn bits(m: &RegressionMetrics) -> [Option<u64>; 4] {
        [m.mae, m.rmse, m.mape, m.r2].map(|v| v.map(f64::to_bits))
    }

    /// Actuals `1e6 + k/1024` (exact in f64, variance ~1e-1, mean² 1e12): `Σ(y − ȳ)²`
    /// against an exact integer reference, where a one-pass textbook formula fails.
    #[test]
    fn r2_is_exact_for_a_large_mean_and_small_spread() {
        let ks: Vec<i128> = (0..2000).map(|i| (i * 7919 % 613) - 300).collect();
        let y = |k: i128| 1e6 + k as f64 / 1024.0;
        let mut agg = RegressionAggregate::default();
        for (i, &k) in ks.iter().enumerate() {
            agg.add(y(k), y(k) + if i % 2 == 0 { 0.01 } else { -0.02 });
        }
        // n·Σ(y − ȳ)² in units of 2^-20, exactly; m2 is it rounded once, then divided by n.
        let n = ks.len() as i128;
        let exact = n * ks.iter().map(|k| k * k).sum::<i128>() - ks.iter().sum::<i128>().pow(2);
        let want_m2 = (exact as f64 / 1048576.0) / n as f64;
        assert_eq!(agg.m2_actual().to_bits(), want_m2.to_bits());
        let sq = agg.sq_error_sum.value();
        assert_eq!(agg.metrics().r2, Some(1.0 - sq / want_m2));
        // The one-pass formula Σy² − (Σy)²/n in f64 is off by more than 1 % here.
        let (s1, s2) = ks
            .iter()
            .fold((0.0, 0.0), |(s, q), &k| (s + y(k), q + y(k) * y(k)));
        let naive = s2 - s1 * s1 / n as f64;
        assert!(
            (naive - want_m2).abs() > 0.01 * want_m2,
            "{naive} vs {want_m2}"
        );
    }

    #[test]
    fn a_constant_target_has_m2_zero() {
        let mut agg = RegressionAggregate::default();
        for p in [0.1, 0.2, 0.4] {
            agg.add(0.1, p);
        }
        assert_eq!(agg.m2_actual(), 0.0);
        assert_eq!(agg.metrics().r2, Some(0.0));
        let mut perfect = RegressionAggregate::default();
        perfect.add(0.1, 0.1);
        perfect.add(0.1, 0.1);
        assert_eq!(perfect.metrics().r2, Some(1.0));
    }

    proptest::proptest! {
        /// Any split into parts, merged in any order, gives the single pass's metrics to
        /// the bit.
        #[test]
        fn split_and_merged_in_any_order_is_bit_identical(
            pairs in proptest::collection::vec(
                (proptest::prop_oneof![-1e6f64..1e6, 1e8f64..1e8 + 1.0, -1e-3f64..1e-3],
                 -1e6f64..1e6),
                2..80),
            assignment in proptest::collection::vec(0usize..4, 80),
            order in proptest::sample::subsequence(vec![0usize, 1, 2, 3], 4),
            rotate in 0usize..4,
        ) {
            let mut all = RegressionAggregate::default();
            let mut parts = vec![RegressionAggregate::default(); 4];
            for (i, &(y, p)) in pairs.iter().enumerate() {
                all.add(y, p);
                parts[assignment[i]].add(y, p);
            }
            let mut order = order;
            order.rotate_left(rotate);
            let mut merged = RegressionAggregate::default();
            for &i in &order {
                merged.merge(&parts[i]);
            }
            proptest::prop_assert_eq!(bits(&merged.metrics()), bits(&all.metrics()));
        }
    }
    #[test]
    fn one_pair_has_no_r2() {
        let mut agg = RegressionAggregate::default();
        agg.add(1.0, 2.0);
        assert_eq!(agg.metrics().r2, None);
    }
}
