//! Streaming change detectors on a stream of f64 values (0/1 errors or
//! absolute errors), reproducing River 0.26's `drift.ADWIN`,
//! `drift.binary.DDM` and `drift.PageHinkley` update for update, including
//! River's behaviour after a detection: the update *following* a detection
//! first resets the detector completely (for ADWIN too: River's Python
//! wrapper rebuilds its window after a drift). The whole state is serde
//! (de)serializable so the service can checkpoint it; infinities in the
//! state are stored as `None` so the JSON round-trip is lossless.

use serde::{Deserialize, Serialize};

use super::DriftError;
pub use crate::settings::{AdwinConfig, DdmConfig, PageHinkleyConfig, PageHinkleyMode};

/// Running mean exactly as River's `stats.Mean` (incremental, same
/// operation order so the values are bit-identical).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct RunningMean {
    n: f64,
    mean: f64,
}

impl RunningMean {
    fn update(&mut self, x: f64) {
        self.n += 1.0;
        self.mean += (1.0 / self.n) * (x - self.mean);
    }
}

// ---------------------------------------------------------------- ADWIN

/// Summaries of equally sized groups of items: row `i` of the window holds
/// groups of `2^i` items, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct BucketRow {
    totals: Vec<f64>,
    variances: Vec<f64>,
}

/// The ADWIN2 exponential histogram (Bifet & Gavalda 2007) with the
/// streaming variance of Babcock et al.; `variance` is the sum of squared
/// deviations of the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AdaptiveWindow {
    config: AdwinConfig,
    total: f64,
    variance: f64,
    width: f64,
    tick: u64,
    rows: Vec<BucketRow>,
}

impl AdaptiveWindow {
    fn new(config: AdwinConfig) -> Self {
        AdaptiveWindow {
            config,
            total: 0.0,
            variance: 0.0,
            width: 0.0,
            tick: 0,
            rows: vec![BucketRow::default()],
        }
    }

    fn update(&mut self, x: f64) -> bool {
        self.insert(x);
        self.detect_change()
    }

    fn insert(&mut self, x: f64) {
        self.rows[0].totals.push(x);
        self.rows[0].variances.push(0.0);
        self.width += 1.0;
        let mut increment = 0.0;
        if self.width > 1.0 {
            let deviation = x - self.total / (self.width - 1.0);
            increment = (self.width - 1.0) * deviation * deviation / self.width;
        }
        self.variance += increment;
        self.total += x;
        self.compress();
    }

    /// Merges the two oldest groups of every full row into the next row.
    fn compress(&mut self) {
        let full = self.config.max_buckets + 1;
        let mut level = 0;
        while self.rows[level].totals.len() == full {
            let size = (1u64 << level) as f64;
            let row = &mut self.rows[level];
            let (t0, t1) = (row.totals[0], row.totals[1]);
            let (v0, v1) = (row.variances[0], row.variances[1]);
            row.totals.drain(..2);
            row.variances.drain(..2);
            let (mean0, mean1) = (t0 / size, t1 / size);
            let between = size * 0.5 * (mean0 - mean1) * (mean0 - mean1);
            if level + 1 == self.rows.len() {
                self.rows.push(BucketRow::default());
            }
            let next = &mut self.rows[level + 1];
            next.totals.push(t0 + t1);
            next.variances.push(v0 + v1 + between);
            level += 1;
        }
    }

    /// Drops the oldest group of the window.
    fn drop_oldest(&mut self) {
        let last = self.rows.len() - 1;
        let size = (1u64 << last) as f64;
        let row = &mut self.rows[last];
        let (t, v) = (row.totals[0], row.variances[0]);
        row.totals.remove(0);
        row.variances.remove(0);
        let emptied = row.totals.is_empty();
        let group_mean = t / size;
        self.width -= size;
        self.total -= t;
        let window_mean = self.total / self.width;
        let d = group_mean - window_mean;
        self.variance -= v + size * self.width * d * d / (size + self.width);
        if emptied && last > 0 {
            self.rows.pop();
        }
    }

    /// Every `clock` updates, tests every split of the window into an older
    /// part W0 and a newer part W1 (at group boundaries, oldest first) and
    /// drops the oldest group while some split shows a significant change.
    fn detect_change(&mut self) -> bool {
        let mut detected = false;
        self.tick += 1;
        let min_len = f64::from(self.config.min_window_length);
        if self.tick % u64::from(self.config.clock) != 0
            || self.width <= f64::from(self.config.grace_period)
        {
            return false;
        }
        let mut shrink = true;
        while shrink {
            shrink = false;
            let (mut n0, mut n1) = (0.0_f64, self.width);
            let (mut u0, mut u1) = (0.0_f64, self.total);
            'scan: for level in (0..self.rows.len()).rev() {
                let size = (1u64 << level) as f64;
                let len = self.rows[level].totals.len();
                for k in 0..len {
                    if level == 0 && k + 1 == len {
                        // W1 would be empty.
                        break 'scan;
                    }
                    let t = self.rows[level].totals[k];
                    n0 += size;
                    n1 -= size;
                    u0 += t;
                    u1 -= t;
                    let mean_gap = (u0 / n0) - (u1 / n1);
                    if n1 >= min_len && n0 >= min_len && self.is_cut(n0, n1, mean_gap) {
                        shrink = true;
                        detected = true;
                        if self.width > 0.0 {
                            self.drop_oldest();
                            break 'scan;
                        }
                    }
                }
            }
        }
        detected
    }

    /// Hoeffding/Bernstein cut condition of ADWIN with the min-window correction.
    fn is_cut(&self, n0: f64, n1: f64, mean_gap: f64) -> bool {
        let min_len = f64::from(self.config.min_window_length);
        let delta_prime = (2.0 * self.width.ln() / self.config.delta).ln();
        let m_recip = 1.0 / (n0 - min_len + 1.0) + 1.0 / (n1 - min_len + 1.0);
        let epsilon = (2.0 * m_recip * (self.variance / self.width) * delta_prime).sqrt()
            + 2.0 / 3.0 * delta_prime * m_recip;
        mean_gap.abs() > epsilon
    }
}

/// ADaptive WINdowing drift detector (River's `drift.ADWIN`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adwin {
    window: AdaptiveWindow,
    drift_detected: bool,
}

impl Default for Adwin {
    fn default() -> Self {
        Adwin {
            window: AdaptiveWindow::new(AdwinConfig::default()),
            drift_detected: false,
        }
    }
}

impl Adwin {
    /// Detector with explicit parameters.
    pub fn new(config: AdwinConfig) -> Result<Self, DriftError> {
        if !(config.delta > 0.0 && config.delta < 1.0) {
            return Err(DriftError::InvalidParameter(
                "ADWIN delta must be in (0, 1)".into(),
            ));
        }
        if config.clock == 0 || config.max_buckets == 0 {
            return Err(DriftError::InvalidParameter(
                "ADWIN clock and max_buckets must be at least 1".into(),
            ));
        }
        Ok(Adwin {
            window: AdaptiveWindow::new(config),
            drift_detected: false,
        })
    }

    /// Adds a value; returns true if a drift is detected at this value.
    pub fn update(&mut self, x: f64) -> bool {
        if self.drift_detected {
            self.window = AdaptiveWindow::new(self.window.config);
        }
        self.drift_detected = self.window.update(x);
        self.drift_detected
    }

    /// Mean of the current window (0 when empty).
    pub fn estimation(&self) -> f64 {
        if self.window.width == 0.0 {
            0.0
        } else {
            self.window.total / self.window.width
        }
    }

    /// Number of items in the current window.
    pub fn width(&self) -> u64 {
        self.window.width as u64
    }

    /// Parameters.
    pub fn config(&self) -> AdwinConfig {
        self.window.config
    }
}

// ------------------------------------------------------------------ DDM

/// Drift Detection Method (Gama et al. 2004) on a 0/1 error stream
/// (River's `drift.binary.DDM`); resets on the update after a drift.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ddm {
    config: DdmConfig,
    error_rate: RunningMean,
    p_min: Option<f64>,
    s_min: Option<f64>,
    /// `p_min + s_min`; `None` stands for +infinity (nothing recorded yet).
    ps_min: Option<f64>,
    warning_detected: bool,
    drift_detected: bool,
}

impl Ddm {
    /// Detector with explicit parameters.
    pub fn new(config: DdmConfig) -> Self {
        Ddm {
            config,
            ..Ddm::default()
        }
    }

    /// Adds a value (1 = error, 0 = correct); returns true on drift.
    pub fn update(&mut self, x: f64) -> bool {
        if self.drift_detected {
            *self = Ddm::new(self.config);
        }
        self.error_rate.update(x);
        let p = self.error_rate.mean;
        let n = self.error_rate.n;
        let s = (p * (1.0 - p) / n).sqrt();
        if n > self.config.warm_start as f64 {
            if self.ps_min.is_none_or(|ps_min| p + s <= ps_min) {
                self.p_min = Some(p);
                self.s_min = Some(s);
                self.ps_min = Some(p + s);
            }
            let (p_min, s_min) = (self.p_min.unwrap_or(p), self.s_min.unwrap_or(s));
            self.warning_detected = p + s > p_min + self.config.warning_threshold * s_min;
            if p + s > p_min + self.config.drift_threshold * s_min {
                self.drift_detected = true;
                self.warning_detected = false;
            }
        }
        self.drift_detected
    }

    /// Current error-rate estimate (mean since the last reset).
    pub fn estimation(&self) -> f64 {
        self.error_rate.mean
    }

    /// Parameters.
    pub fn config(&self) -> DdmConfig {
        self.config
    }
}

// ---------------------------------------------------------- Page-Hinkley

/// Page-Hinkley test (River's `drift.PageHinkley`); resets on the update
/// after a drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageHinkley {
    config: PageHinkleyConfig,
    mean: RunningMean,
    sum_increase: f64,
    sum_decrease: f64,
    /// Minimum of `sum_increase`; `None` stands for +infinity.
    min_increase: Option<f64>,
    max_decrease: f64,
    drift_detected: bool,
}

impl Default for PageHinkley {
    fn default() -> Self {
        PageHinkley::new(PageHinkleyConfig::default())
    }
}

impl PageHinkley {
    /// Detector with explicit parameters.
    pub fn new(config: PageHinkleyConfig) -> Self {
        PageHinkley {
            config,
            mean: RunningMean::default(),
            sum_increase: 0.0,
            sum_decrease: 0.0,
            min_increase: None,
            max_decrease: -1.0,
            drift_detected: false,
        }
    }

    /// Adds a value; returns true on drift.
    pub fn update(&mut self, x: f64) -> bool {
        if self.drift_detected {
            *self = PageHinkley::new(self.config);
        }
        self.mean.update(x);
        let deviation = x - self.mean.mean;
        let c = &self.config;
        self.sum_increase = c.alpha * self.sum_increase + deviation - c.delta;
        self.sum_decrease = c.alpha * self.sum_decrease + deviation + c.delta;
        if self.min_increase.is_none_or(|m| self.sum_increase < m) {
            self.min_increase = Some(self.sum_increase);
        }
        if self.sum_decrease > self.max_decrease {
            self.max_decrease = self.sum_decrease;
        }
        if self.mean.n >= c.min_instances as f64 {
            let increase = self.sum_increase - self.min_increase.unwrap_or(self.sum_increase);
            let decrease = self.max_decrease - self.sum_decrease;
            self.drift_detected = match c.mode {
                PageHinkleyMode::Up => increase > c.threshold,
                PageHinkleyMode::Down => decrease > c.threshold,
                PageHinkleyMode::Both => increase > c.threshold || decrease > c.threshold,
            };
        }
        self.drift_detected
    }

    /// Mean of the values since the last reset.
    pub fn estimation(&self) -> f64 {
        self.mean.mean
    }

    /// Parameters.
    pub fn config(&self) -> PageHinkleyConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adwin_constant_stream_never_drifts() {
        let mut d = Adwin::default();
        for _ in 0..5000 {
            assert!(!d.update(1.0));
        }
        assert_eq!(d.width(), 5000);
        assert_eq!(d.estimation(), 1.0);
    }

    #[test]
    fn adwin_detects_a_large_shift_and_resets_next_update() {
        let mut d = Adwin::default();
        let mut at = None;
        for i in 0..2000 {
            let x = if i < 1000 { 0.0 } else { 10.0 };
            if d.update(x) {
                at = Some(i);
                break;
            }
        }
        let at = at.expect("shift must be detected");
        assert!(at >= 1000);
        d.update(10.0);
        assert_eq!(d.width(), 1);
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut ph = PageHinkley::default();
        ph.update(1.0);
        let json = serde_json::to_string(&ph).expect("serialize");
        let back: PageHinkley = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(ph, back);
        let ddm = Ddm::default();
        let json = serde_json::to_string(&ddm).expect("serialize");
        let back: Ddm = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(ddm, back);
    }

    #[test]
    fn invalid_adwin_config_is_rejected() {
        let bad = AdwinConfig {
            clock: 0,
            ..AdwinConfig::default()
        };
        assert!(Adwin::new(bad).is_err());
    }
}
