//! The `drifted` decision: which statistic decides and at what threshold
//! (Evidently-like defaults).
//!
//! * `Auto`, numeric feature: KS p-value < 0.05 when the window has at most
//!   1000 samples, else Wasserstein distance divided by the reference's
//!   (population) standard deviation >= 0.1.
//! * `Auto`, categorical feature: chi-square p-value < 0.05 when the window
//!   has at most 1000 observations, else Jensen-Shannon distance >= 0.1.
//! * Explicit method: p-value methods (`Ks`, `ChiSquare`) drift when
//!   `p < threshold` (default 0.05); distance methods drift when
//!   `value >= threshold` (defaults: PSI 0.2, normalised Wasserstein 0.1,
//!   JS 0.1).
//!
//! An undefined statistic (empty side, zero reference spread, ...) never
//! signals drift, except a zero-spread reference with a non-zero Wasserstein
//! distance, which does.
//!
//! A window with fewer than `min_window_samples` values is not decided at all:
//! its statistics are reported, its `drifted` is `None` (`null`).

use serde::{Deserialize, Serialize};

/// Window size up to which `Auto` uses a statistical test.
pub(crate) const AUTO_TEST_MAX_WINDOW: usize = 1000;

pub use crate::settings::DriftMethod;

/// Drift decision configuration. The default (`auto`, no minimum sample) decides on every
/// window; the configured default minimum is [`crate::settings::DEFAULT_MIN_WINDOW_SAMPLES`].
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct DriftRule {
    pub method: DriftMethod,
    pub threshold: Option<f64>,
    /// Windows with fewer values than this get `drifted: None`.
    pub min_window_samples: usize,
}

impl DriftRule {
    /// The `drifted` decision of a window of `n_window` values whose statistic does
    /// (`exceeded`) or does not cross the threshold: `None` below the minimum sample.
    pub(crate) fn decide(&self, n_window: usize, exceeded: bool) -> Option<bool> {
        (n_window >= self.min_window_samples).then_some(exceeded)
    }

    /// The same rule with the method `auto` (the fallback where a method does not apply).
    pub(crate) fn auto(&self) -> DriftRule {
        DriftRule {
            method: DriftMethod::Auto,
            threshold: None,
            ..*self
        }
    }

    /// The concrete method and threshold for a numeric window of `n_window` samples.
    pub(crate) fn resolve_numeric(&self, n_window: usize) -> (DriftMethod, f64) {
        self.resolve(n_window, DriftMethod::Ks, DriftMethod::Wasserstein)
    }

    /// The concrete method and threshold for a categorical window of `n_window` observations.
    pub(crate) fn resolve_categorical(&self, n_window: usize) -> (DriftMethod, f64) {
        self.resolve(n_window, DriftMethod::ChiSquare, DriftMethod::Js)
    }

    fn resolve(
        &self,
        n_window: usize,
        test: DriftMethod,
        distance: DriftMethod,
    ) -> (DriftMethod, f64) {
        let method = match self.method {
            DriftMethod::Auto if n_window <= AUTO_TEST_MAX_WINDOW => test,
            DriftMethod::Auto => distance,
            explicit => explicit,
        };
        let threshold = match self.method {
            // Auto always uses the defaults of the method it picked.
            DriftMethod::Auto => method.default_threshold(),
            _ => self.threshold.unwrap_or(method.default_threshold()),
        };
        (method, threshold)
    }
}

/// Applies a threshold to a statistic value: `p < t` for p-value methods,
/// `value >= t` for distances; undefined values never drift.
pub fn exceeds(method: DriftMethod, value: Option<f64>, threshold: f64) -> bool {
    match value {
        Some(v) if method.is_p_value() => v < threshold,
        Some(v) => v >= threshold,
        None => false,
    }
}
