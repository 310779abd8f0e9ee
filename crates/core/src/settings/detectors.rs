//! `[models.detectors]`: the streaming change detectors' parameters (River's defaults) and
//! whether each runs. The detectors themselves are in `drift::detectors`.

use serde::{Deserialize, Serialize};

/// `[models.detectors]`: streaming detectors on the error stream (River defaults).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorsConfig {
    pub adwin: AdwinSettings,
    pub ddm: DdmSettings,
    pub page_hinkley: PageHinkleySettings,
}

/// `[models.detectors.adwin]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdwinSettings {
    pub enabled: bool,
    pub delta: f64,
    pub clock: u32,
    pub max_buckets: usize,
    pub min_window_length: u32,
    pub grace_period: u32,
}

impl Default for AdwinSettings {
    fn default() -> Self {
        let d = AdwinConfig::default();
        AdwinSettings {
            enabled: true,
            delta: d.delta,
            clock: d.clock,
            max_buckets: d.max_buckets,
            min_window_length: d.min_window_length,
            grace_period: d.grace_period,
        }
    }
}

impl AdwinSettings {
    /// The detector's parameters.
    pub(crate) fn params(&self) -> AdwinConfig {
        AdwinConfig {
            delta: self.delta,
            clock: self.clock,
            max_buckets: self.max_buckets,
            min_window_length: self.min_window_length,
            grace_period: self.grace_period,
        }
    }
}

/// `[models.detectors.ddm]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdmSettings {
    pub enabled: bool,
    pub warm_start: u64,
    pub warning_threshold: f64,
    pub drift_threshold: f64,
}

impl Default for DdmSettings {
    fn default() -> Self {
        let d = DdmConfig::default();
        DdmSettings {
            enabled: true,
            warm_start: d.warm_start,
            warning_threshold: d.warning_threshold,
            drift_threshold: d.drift_threshold,
        }
    }
}

impl DdmSettings {
    /// The detector's parameters.
    pub(crate) fn params(&self) -> DdmConfig {
        DdmConfig {
            warm_start: self.warm_start,
            warning_threshold: self.warning_threshold,
            drift_threshold: self.drift_threshold,
        }
    }
}

/// `[models.detectors.page_hinkley]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PageHinkleySettings {
    pub enabled: bool,
    pub min_instances: u64,
    pub delta: f64,
    pub threshold: f64,
    pub alpha: f64,
    pub mode: PageHinkleyMode,
}

impl Default for PageHinkleySettings {
    fn default() -> Self {
        let d = PageHinkleyConfig::default();
        PageHinkleySettings {
            enabled: true,
            min_instances: d.min_instances,
            delta: d.delta,
            threshold: d.threshold,
            alpha: d.alpha,
            mode: d.mode,
        }
    }
}

impl PageHinkleySettings {
    /// The detector's parameters.
    pub(crate) fn params(&self) -> PageHinkleyConfig {
        PageHinkleyConfig {
            min_instances: self.min_instances,
            delta: self.delta,
            threshold: self.threshold,
            alpha: self.alpha,
            mode: self.mode,
        }
    }
}

/// ADWIN parameters (River defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdwinConfig {
    /// Significance of the cut test.
    pub delta: f64,
    /// The cut test runs every `clock` updates.
    pub clock: u32,
    /// Buckets of each size kept before two are merged.
    pub max_buckets: usize,
    /// Minimum length of each sub-window in the cut test.
    pub min_window_length: u32,
    /// No cut test until the window is longer than this.
    pub grace_period: u32,
}

impl Default for AdwinConfig {
    fn default() -> Self {
        AdwinConfig {
            delta: 0.002,
            clock: 32,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
        }
    }
}

/// DDM parameters (River defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DdmConfig {
    /// Updates before change can be detected.
    pub warm_start: u64,
    /// Warning when `p + s > p_min + warning_threshold * s_min`.
    pub warning_threshold: f64,
    /// Drift when `p + s > p_min + drift_threshold * s_min`.
    pub drift_threshold: f64,
}

impl Default for DdmConfig {
    fn default() -> Self {
        DdmConfig {
            warm_start: 30,
            warning_threshold: 2.0,
            drift_threshold: 3.0,
        }
    }
}

/// Which changes of the mean Page-Hinkley reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageHinkleyMode {
    Up,
    Down,
    #[default]
    Both,
}

/// Page-Hinkley parameters (River defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageHinkleyConfig {
    pub min_instances: u64,
    pub delta: f64,
    pub threshold: f64,
    /// Forgetting factor of the cumulative sums.
    pub alpha: f64,
    pub mode: PageHinkleyMode,
}

impl Default for PageHinkleyConfig {
    fn default() -> Self {
        PageHinkleyConfig {
            min_instances: 30,
            delta: 0.005,
            threshold: 50.0,
            alpha: 1.0 - 0.0001,
            mode: PageHinkleyMode::Both,
        }
    }
}
