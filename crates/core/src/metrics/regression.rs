//! Regression quality: sums and a running variance of the actuals, mergeable (Chan et al.),
//! and scikit-learn's MAE, RMSE, MAPE and R² computed from them.

use crate::output::RegressionMetrics;

/// Sums over the joined pairs of a window.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegressionAggregate {
    pub n: u64,
    pub abs_error_sum: f64,
    pub sq_error_sum: f64,
    pub ape_sum: f64,
    /// Mean of the actuals.
    pub mean_actual: f64,
    /// Sum of squared deviations of the actuals from their mean.
    pub m2_actual: f64,
}

impl RegressionAggregate {
    pub fn add(&mut self, actual: f64, predicted: f64) {
        let error = (actual - predicted).abs();
        self.n += 1;
        self.abs_error_sum += error;
        self.sq_error_sum += error * error;
        // scikit-learn's MAPE divides by max(|y|, float64 eps).
        self.ape_sum += error / actual.abs().max(f64::EPSILON);
        let delta = actual - self.mean_actual;
        self.mean_actual += delta / self.n as f64;
        self.m2_actual += delta * (actual - self.mean_actual);
    }

    pub fn merge(&mut self, other: &RegressionAggregate) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other.clone();
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta = other.mean_actual - self.mean_actual;
        self.m2_actual += other.m2_actual + delta * delta * na * nb / n;
        self.mean_actual += delta * nb / n;
        self.n += other.n;
        self.abs_error_sum += other.abs_error_sum;
        self.sq_error_sum += other.sq_error_sum;
        self.ape_sum += other.ape_sum;
    }

    pub fn metrics(&self) -> RegressionMetrics {
        if self.n == 0 {
            return RegressionMetrics::default();
        }
        let n = self.n as f64;
        let r2 = if self.n < 2 {
            None
        } else if self.m2_actual == 0.0 {
            // scikit-learn's force_finite: a constant target is explained perfectly or not at all.
            Some(if self.sq_error_sum == 0.0 { 1.0 } else { 0.0 })
        } else {
            Some(1.0 - self.sq_error_sum / self.m2_actual)
        };
        RegressionMetrics {
            mae: Some(self.abs_error_sum / n),
            rmse: Some((self.sq_error_sum / n).sqrt()),
            mape: Some(self.ape_sum / n),
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
        let (m, u) = (merged.metrics(), all.metrics());
        assert!((m.r2.unwrap() - u.r2.unwrap()).abs() < 1e-12);
        assert_eq!(merged.n, all.n);
    }

    #[test]
    fn one_pair_has_no_r2() {
        let mut agg = RegressionAggregate::default();
        agg.add(1.0, 2.0);
        assert_eq!(agg.metrics().r2, None);
    }
}
