//! `[[models]]`: what each model predicts, its features and segments, and its drift
//! settings (reference, `drifted` decision, summaries' bound).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DetectorsConfig;

/// Numeric values kept per (series, variable, window or reference) by default: the drift
/// sample's bound.
pub const DEFAULT_SAMPLE_CAPACITY: usize = 10_000;

/// Values a window needs before its `drifted` is decided, by default.
pub const DEFAULT_MIN_WINDOW_SAMPLES: usize = 100;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Binary,
    Multiclass,
    Regression,
}

impl Task {
    /// Binary or multiclass.
    pub(crate) fn is_classification(self) -> bool {
        matches!(self, Task::Binary | Task::Multiclass)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub task: Task,
    #[serde(default)]
    pub positive_class: Option<String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub segments: Vec<String>,
    /// What windows are compared with for drift (docs/drift.md).
    #[serde(default)]
    pub reference: ReferenceConfig,
    /// `reference = "first"`: how many predictions (and outcomes) make the reference.
    #[serde(default = "default_reference_size")]
    pub reference_size: usize,
    #[serde(default)]
    pub drift: ModelDriftConfig,
    #[serde(default)]
    pub detectors: DetectorsConfig,
    /// `[models.estimation]`: performance estimation without labels (docs/estimation.md).
    /// Absent: no `estimated` object in this model's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimation: Option<EstimationConfig>,
}

fn default_reference_size() -> usize {
    5000
}

/// The drift reference of a model version.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ReferenceConfig {
    /// The first `reference_size` predictions of the version, in arrival order.
    #[default]
    First,
    /// The window just before (same series).
    Previous,
    /// Predictions in the input format, read when the configuration is loaded (a path
    /// relative to the configuration file).
    File(String),
}

/// A reference as written: a name (`"first"`…) or `{ file = "…" }`; drift's and
/// estimation's references each say which names they take.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawReference {
    Name(String),
    File(FileRef),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRef {
    file: String,
}

impl RawReference {
    /// Reads one; anything else is an error saying what is `expected`.
    fn read<'de, D: Deserializer<'de>>(deserializer: D, expected: &str) -> Result<Self, D::Error> {
        RawReference::deserialize(deserializer).map_err(|_| serde::de::Error::custom(expected))
    }
}

impl<'de> Deserialize<'de> for ReferenceConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expected = "expected \"first\", \"previous\" or { file = \"baseline.jsonl\" }";
        match RawReference::read(deserializer, expected)? {
            RawReference::Name(name) if name == "first" => Ok(ReferenceConfig::First),
            RawReference::Name(name) if name == "previous" => Ok(ReferenceConfig::Previous),
            RawReference::Name(other) => {
                Err(serde::de::Error::custom(format!("`{other}`: {expected}")))
            }
            RawReference::File(FileRef { file }) => Ok(ReferenceConfig::File(file)),
        }
    }
}

/// Written as the configuration writes it.
impl Serialize for ReferenceConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ReferenceConfig::First => serializer.serialize_str("first"),
            ReferenceConfig::Previous => serializer.serialize_str("previous"),
            ReferenceConfig::File(file) => {
                BTreeMap::from([("file", file.as_str())]).serialize(serializer)
            }
        }
    }
}

/// `[models.drift]`: the `drifted` rule and the summaries' bound.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelDriftConfig {
    /// `false`: no `drift` object in this model's records.
    pub enabled: bool,
    pub method: DriftMethod,
    pub threshold: Option<f64>,
    /// Numeric values kept per (series, feature, window or reference): the reservoir bound.
    pub sample_capacity: usize,
    /// Below this many values in a window, `drifted` is `null` (the statistics are still
    /// reported).
    pub min_window_samples: usize,
    /// Per-feature overrides of `method` / `threshold`.
    pub features: BTreeMap<String, FeatureDriftConfig>,
}

impl Default for ModelDriftConfig {
    fn default() -> Self {
        ModelDriftConfig {
            enabled: true,
            method: DriftMethod::Auto,
            threshold: None,
            sample_capacity: DEFAULT_SAMPLE_CAPACITY,
            min_window_samples: DEFAULT_MIN_WINDOW_SAMPLES,
            features: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDriftConfig {
    pub method: Option<DriftMethod>,
    pub threshold: Option<f64>,
}

/// Method selecting the `drifted` decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftMethod {
    #[default]
    Auto,
    Ks,
    ChiSquare,
    Psi,
    Wasserstein,
    Js,
}

impl DriftMethod {
    /// Threshold used when the rule gives none.
    pub(crate) fn default_threshold(self) -> f64 {
        match self {
            DriftMethod::Auto | DriftMethod::Ks | DriftMethod::ChiSquare => 0.05,
            DriftMethod::Psi => 0.2,
            DriftMethod::Wasserstein | DriftMethod::Js => 0.1,
        }
    }

    /// True for methods whose value is a p-value (drift when below threshold).
    pub(crate) fn is_p_value(self) -> bool {
        matches!(self, DriftMethod::Ks | DriftMethod::ChiSquare)
    }
}

/// Joined pairs the `reference = "first"` estimation reference needs by default: whole
/// windows are taken until at least this many.
pub const DEFAULT_ESTIMATION_REFERENCE_SIZE: usize = 5000;

/// Rows a window's ROC AUC sample keeps by default (`[models.estimation] auc_sample`):
/// windows of up to this many rows get the exact ROC AUC; larger ones a uniform sample of
/// this many, whose standard error is about 0.005 or less (docs/estimation.md).
pub const DEFAULT_ESTIMATION_AUC_SAMPLE: usize = 10_000;

/// `[models.estimation]`: CBPE for a binary or multiclass model (docs/estimation.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EstimationConfig {
    pub method: EstimationMethod,
    #[serde(default)]
    pub calibration: EstimationCalibration,
    /// Which labelled predictions the estimator is fitted on.
    #[serde(default)]
    pub reference: EstimationReference,
    /// `reference = "first"`: whole windows (by prediction time) until at least this many
    /// joined pairs.
    #[serde(default = "default_estimation_reference_size")]
    pub reference_size: usize,
    /// Rows per window that the ROC AUC (estimated and realized) is computed on: every row
    /// up to this many, else a bottom-k sample of this many by the hash of the join id.
    /// The other metrics are sums over every row.
    #[serde(default = "default_estimation_auc_sample")]
    pub auc_sample: usize,
}

fn default_estimation_reference_size() -> usize {
    DEFAULT_ESTIMATION_REFERENCE_SIZE
}

fn default_estimation_auc_sample() -> usize {
    DEFAULT_ESTIMATION_AUC_SAMPLE
}

/// The estimation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimationMethod {
    /// Confidence-based performance estimation (NannyML's CBPE).
    Cbpe,
}

/// How scores are calibrated before they are read as probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimationCalibration {
    /// Isotonic when the reference says it helps (docs/estimation.md, "auto").
    #[default]
    Auto,
    /// Always isotonic.
    Isotonic,
    /// Never: the scores are the probabilities.
    None,
}

/// The estimation reference of a model version.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum EstimationReference {
    /// The first whole windows of the version until `reference_size` joined pairs.
    #[default]
    First,
    /// Predictions with their `actual`, in the input format, read when the configuration
    /// is loaded (a path relative to the configuration file).
    File(String),
}

impl<'de> Deserialize<'de> for EstimationReference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expected = "expected \"first\" or { file = \"reference.jsonl\" }";
        match RawReference::read(deserializer, expected)? {
            RawReference::Name(name) if name == "first" => Ok(EstimationReference::First),
            RawReference::Name(other) => {
                Err(serde::de::Error::custom(format!("`{other}`: {expected}")))
            }
            RawReference::File(FileRef { file }) => Ok(EstimationReference::File(file)),
        }
    }
}

/// Written as the configuration writes it.
impl Serialize for EstimationReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            EstimationReference::First => serializer.serialize_str("first"),
            EstimationReference::File(file) => {
                BTreeMap::from([("file", file.as_str())]).serialize(serializer)
            }
        }
    }
}
