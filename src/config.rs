//! The service configuration: one TOML file, every key overridable from the environment.
//!
//! Loading goes through figment (TOML, then `FEEDBACK_LOOP__SECTION__KEY` variables), serde
//! with `deny_unknown_fields` everywhere, then [`Config::validate`] for the rules serde cannot
//! express. Every error names the key it is about, so `check-config` can say what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer};

use crate::rules::{ModelInfo, RuleConfig, RuleSet};

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "FEEDBACK_LOOP__";

/// A configuration error that names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an override did not parse or did not match the schema.
    #[error("{0}")]
    Parse(String),
    /// A key parsed but its value is not acceptable.
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A duration written as a string: `"250ms"`, `"90s"`, `"5m"`, `"1h"`, `"1d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// Whole milliseconds, saturating at `i64::MAX` (event times are `i64` milliseconds).
    pub fn as_millis_i64(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// Parses `<integer><unit>` with unit one of `ms`, `s`, `m`, `h`, `d`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{text}` has no unit (use ms, s, m, h or d, e.g. \"90s\")"))?;
        let (digits, unit) = text.split_at(split);
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` does not start with a whole number (e.g. \"90s\")"))?;
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "`{text}` has an unknown unit `{other}` (use ms, s, m, h or d)"
                ))
            }
        };
        value
            .checked_mul(unit_ms)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms != 0 && ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub join: JoinConfig,
    pub window: WindowConfig,
    pub fields: FieldsConfig,
    pub limits: LimitsConfig,
    pub models: Vec<ModelConfig>,
    pub rules: Vec<RuleConfig>,
    pub retrain: RetrainConfig,
    pub checkpoint: CheckpointConfig,
    pub shutdown: ShutdownConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub predictions_topic: String,
    pub outcomes_topic: String,
    pub metrics_topic: String,
    pub alerts_topic: String,
    pub retrain_topic: String,
    pub dead_letter_topic: String,
    /// librdkafka properties, passed as is to the consumer and the producer.
    pub client: BTreeMap<String, ClientValue>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "localhost:9092".into(),
            group_id: "feedback-loop".into(),
            predictions_topic: "model-predictions".into(),
            outcomes_topic: "actual-outcomes".into(),
            metrics_topic: "model-metrics".into(),
            alerts_topic: "model-alerts".into(),
            retrain_topic: "model-retrain-triggers".into(),
            dead_letter_topic: "feedback-loop-dlq".into(),
            client: BTreeMap::new(),
        }
    }
}

/// A librdkafka property value: TOML strings, numbers and booleans are all passed as text.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientValue(pub String);

impl<'de> Deserialize<'de> for ClientValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
            Bool(bool),
        }
        Ok(ClientValue(match Raw::deserialize(deserializer)? {
            Raw::Text(s) => s,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Bool(b) => b.to_string(),
        }))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:9898".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JoinConfig {
    pub max_label_delay: Duration,
    pub max_outcome_lead: Duration,
    pub max_pending: usize,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig {
            max_label_delay: Duration::from_millis(3_600_000),
            max_outcome_lead: Duration::from_millis(300_000),
            max_pending: 1_000_000,
        }
    }
}

/// Which event time a joined pair is counted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeTo {
    /// The time the pair became complete (normally the outcome's time).
    Outcome,
    /// The prediction's time; windows then wait `max_label_delay` before closing.
    Prediction,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    pub size: Duration,
    pub attribute_to: AttributeTo,
    pub allowed_lateness: Duration,
    pub idle_timeout: Duration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size: Duration::from_millis(60_000),
            attribute_to: AttributeTo::Outcome,
            allowed_lateness: Duration::from_millis(5_000),
            idle_timeout: Duration::from_millis(30_000),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldsConfig {
    pub prediction: PredictionFields,
    pub outcome: OutcomeFields,
}

/// Dotted paths of the prediction fields in the input JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictionFields {
    pub id: String,
    pub model: String,
    pub model_version: String,
    pub timestamp: String,
    pub prediction: String,
    pub score: String,
    pub features: String,
    pub segment: String,
}

impl Default for PredictionFields {
    fn default() -> Self {
        PredictionFields {
            id: "id".into(),
            model: "model".into(),
            model_version: "model_version".into(),
            timestamp: "timestamp".into(),
            prediction: "prediction".into(),
            score: "score".into(),
            features: "features".into(),
            segment: "segment".into(),
        }
    }
}

/// Dotted paths of the outcome fields in the input JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutcomeFields {
    pub id: String,
    pub model: String,
    pub timestamp: String,
    pub actual: String,
}

impl Default for OutcomeFields {
    fn default() -> Self {
        OutcomeFields {
            id: "id".into(),
            model: "model".into(),
            timestamp: "timestamp".into(),
            actual: "actual".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_versions_per_model: usize,
    pub max_classes_per_model: usize,
    pub max_segment_values: usize,
    /// Larger messages are dead-lettered (the service; replay reads files).
    pub max_message_bytes: usize,
    /// The service dead-letters records whose event time is further than this ahead of
    /// its wall clock.
    pub max_clock_skew: Duration,
    /// The service dead-letters records older than this (by wall clock); `"0s"` disables
    /// the check (e.g. to process an old backlog).
    pub max_event_age: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_versions_per_model: 32,
            max_classes_per_model: 1000,
            max_segment_values: 100,
            max_message_bytes: 1_048_576,
            max_clock_skew: Duration::from_millis(3_600_000),
            max_event_age: Duration::from_millis(7 * 86_400_000),
        }
    }
}

/// Crash recovery: snapshots of the engine, with the input offsets they reflect, in a
/// compacted topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    pub enabled: bool,
    pub topic: String,
    /// How often a snapshot is written (and the group's offsets committed after it).
    pub interval: Duration,
    /// Snapshots are split into messages of at most this many bytes.
    pub chunk_bytes: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            enabled: true,
            topic: "feedback-loop-state".into(),
            interval: Duration::from_millis(10_000),
            chunk_bytes: 512 * 1024,
        }
    }
}

/// How long a graceful stop (SIGTERM, SIGINT) may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// From the signal to the exit: stop consuming, flush, checkpoint, commit. Past it the
    /// process exits anyway (code 1) and the previous checkpoint stands.
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            // Below Kubernetes' default terminationGracePeriodSeconds (30).
            timeout: Duration::from_millis(25_000),
        }
    }
}

/// Where retrain triggers go besides the retrain topic.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainConfig {
    pub webhook: Option<WebhookConfig>,
}

/// An HTTP endpoint that receives each retrain trigger as a JSON POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_webhook_timeout")]
    pub timeout: Duration,
    /// Attempts per trigger (first try included); backoff doubles from 500 ms.
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_millis(5_000)
}

fn default_webhook_attempts() -> u32 {
    5
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Binary,
    Multiclass,
    Regression,
}

#[derive(Debug, Clone, Deserialize)]
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
    /// `reference = { file = … }`: the decoded baseline, filled by [`Config::load`].
    #[serde(skip)]
    pub baseline: Option<std::sync::Arc<crate::drift::stream::Baseline>>,
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

impl<'de> Deserialize<'de> for ReferenceConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileRef {
            file: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            File(FileRef),
        }
        let expected = "expected \"first\", \"previous\" or { file = \"baseline.jsonl\" }";
        match Raw::deserialize(deserializer).map_err(|_| serde::de::Error::custom(expected))? {
            Raw::Name(name) if name == "first" => Ok(ReferenceConfig::First),
            Raw::Name(name) if name == "previous" => Ok(ReferenceConfig::Previous),
            Raw::Name(other) => Err(serde::de::Error::custom(format!("`{other}`: {expected}"))),
            Raw::File(FileRef { file }) => Ok(ReferenceConfig::File(file)),
        }
    }
}

/// `[models.drift]`: the `drifted` rule and the summaries' bound.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelDriftConfig {
    /// `false`: no `drift` object in this model's records.
    pub enabled: bool,
    pub method: crate::drift::DriftMethod,
    pub threshold: Option<f64>,
    /// Numeric values kept per (series, feature, window or reference): the reservoir bound.
    pub sample_capacity: usize,
    /// Per-feature overrides of `method` / `threshold`.
    pub features: BTreeMap<String, FeatureDriftConfig>,
}

impl Default for ModelDriftConfig {
    fn default() -> Self {
        ModelDriftConfig {
            enabled: true,
            method: crate::drift::DriftMethod::Auto,
            threshold: None,
            sample_capacity: crate::drift::summary::DEFAULT_SAMPLE_CAPACITY,
            features: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDriftConfig {
    pub method: Option<crate::drift::DriftMethod>,
    pub threshold: Option<f64>,
}

/// `[models.detectors]`: streaming detectors on the error stream (River defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorsConfig {
    pub adwin: AdwinToml,
    pub ddm: DdmToml,
    pub page_hinkley: PageHinkleyToml,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdwinToml {
    pub enabled: bool,
    pub delta: f64,
    pub clock: u32,
    pub max_buckets: usize,
    pub min_window_length: u32,
    pub grace_period: u32,
}

impl Default for AdwinToml {
    fn default() -> Self {
        let d = crate::drift::AdwinConfig::default();
        AdwinToml {
            enabled: true,
            delta: d.delta,
            clock: d.clock,
            max_buckets: d.max_buckets,
            min_window_length: d.min_window_length,
            grace_period: d.grace_period,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdmToml {
    pub enabled: bool,
    pub warm_start: u64,
    pub warning_threshold: f64,
    pub drift_threshold: f64,
}

impl Default for DdmToml {
    fn default() -> Self {
        let d = crate::drift::DdmConfig::default();
        DdmToml {
            enabled: true,
            warm_start: d.warm_start,
            warning_threshold: d.warning_threshold,
            drift_threshold: d.drift_threshold,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PageHinkleyToml {
    pub enabled: bool,
    pub min_instances: u64,
    pub delta: f64,
    pub threshold: f64,
    pub alpha: f64,
    pub mode: crate::drift::PageHinkleyMode,
}

impl Default for PageHinkleyToml {
    fn default() -> Self {
        let d = crate::drift::PageHinkleyConfig::default();
        PageHinkleyToml {
            enabled: true,
            min_instances: d.min_instances,
            delta: d.delta,
            threshold: d.threshold,
            alpha: d.alpha,
            mode: d.mode,
        }
    }
}

impl Config {
    /// Loads a TOML file, applies `FEEDBACK_LOOP__…` overrides from the process environment,
    /// and validates the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Parse(format!(
                "configuration file {} does not exist",
                path.display()
            )));
        }
        let mut config = Self::extract(
            Figment::new()
                .merge(Toml::file(path))
                .merge(env_overrides()),
        )?;
        config
            .kafka
            .client
            .extend(client_env_overrides(std::env::vars()));
        config.validate()?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.load_baselines(base)?;
        Ok(config)
    }

    /// Reads and decodes the baseline files of `reference = { file = … }` (paths relative to
    /// `base`). This is the only file I/O of drift: the engine gets decoded values.
    pub fn load_baselines(&mut self, base: &Path) -> Result<(), ConfigError> {
        let decoder = crate::record::Decoder::new(self);
        let mut loaded = Vec::new();
        for (i, model) in self.models.iter().enumerate() {
            let ReferenceConfig::File(file) = &model.reference else {
                continue;
            };
            let key = format!("models[{i}].reference.file");
            let path = base.join(file);
            let bytes = std::fs::read(&path)
                .map_err(|e| ConfigError::invalid(&key, format!("{}: {e}", path.display())))?;
            let baseline = crate::drift::stream::Baseline::decode(&decoder, i as u16, &bytes)
                .map_err(|e| ConfigError::invalid(&key, format!("{}: {e}", path.display())))?;
            loaded.push((i, baseline));
        }
        for (i, baseline) in loaded {
            self.models[i].baseline = Some(std::sync::Arc::new(baseline));
        }
        Ok(())
    }

    /// Parses TOML text (no environment overrides): for tests and embedded configs.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config = Self::extract(Figment::new().merge(Toml::string(text)))?;
        config.validate()?;
        Ok(config)
    }

    fn extract(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(|errors| {
            ConfigError::Parse(
                errors
                    .into_iter()
                    .map(|e| describe_figment_error(&e))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: required combinations, ranges, names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let w = &self.window;
        if w.size.0.is_zero() {
            return Err(ConfigError::invalid(
                "window.size",
                "must be greater than 0",
            ));
        }
        if self.shutdown.timeout.0.is_zero() {
            return Err(ConfigError::invalid(
                "shutdown.timeout",
                "must be greater than 0",
            ));
        }
        if self.join.max_pending == 0 {
            return Err(ConfigError::invalid(
                "join.max_pending",
                "must be at least 1",
            ));
        }
        for (key, value) in [
            (
                "limits.max_versions_per_model",
                self.limits.max_versions_per_model,
            ),
            (
                "limits.max_classes_per_model",
                self.limits.max_classes_per_model,
            ),
            ("limits.max_segment_values", self.limits.max_segment_values),
            ("limits.max_message_bytes", self.limits.max_message_bytes),
            ("checkpoint.chunk_bytes", self.checkpoint.chunk_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.limits.max_versions_per_model > u16::MAX as usize - 1 {
            return Err(ConfigError::invalid(
                "limits.max_versions_per_model",
                "must be below 65535",
            ));
        }
        let paths = [
            ("fields.prediction.id", &self.fields.prediction.id),
            ("fields.prediction.model", &self.fields.prediction.model),
            (
                "fields.prediction.model_version",
                &self.fields.prediction.model_version,
            ),
            (
                "fields.prediction.timestamp",
                &self.fields.prediction.timestamp,
            ),
            (
                "fields.prediction.prediction",
                &self.fields.prediction.prediction,
            ),
            ("fields.prediction.score", &self.fields.prediction.score),
            (
                "fields.prediction.features",
                &self.fields.prediction.features,
            ),
            ("fields.prediction.segment", &self.fields.prediction.segment),
            ("fields.outcome.id", &self.fields.outcome.id),
            ("fields.outcome.model", &self.fields.outcome.model),
            ("fields.outcome.timestamp", &self.fields.outcome.timestamp),
            ("fields.outcome.actual", &self.fields.outcome.actual),
        ];
        for (key, path) in paths {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{path}` is not a dotted path of field names"),
                ));
            }
        }
        if self.models.is_empty() {
            return Err(ConfigError::invalid(
                "models",
                "no [[models]] configured: the service would dead-letter every record",
            ));
        }
        if self.models.len() > u16::MAX as usize - 1 {
            return Err(ConfigError::invalid("models", "too many models"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let key = |field: &str| format!("models[{i}].{field}");
            if model.name.is_empty() {
                return Err(ConfigError::invalid(key("name"), "must not be empty"));
            }
            if !seen.insert(model.name.as_str()) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("model `{}` is configured twice", model.name),
                ));
            }
            match (model.task, &model.positive_class) {
                (Task::Binary, None) => {
                    return Err(ConfigError::invalid(
                        key("positive_class"),
                        format!(
                            "model `{}` is binary and needs a positive_class",
                            model.name
                        ),
                    ))
                }
                (Task::Multiclass | Task::Regression, Some(_)) => {
                    return Err(ConfigError::invalid(
                        key("positive_class"),
                        format!(
                            "model `{}` is not binary: positive_class does not apply",
                            model.name
                        ),
                    ))
                }
                _ => {}
            }
            for (field, names) in [("features", &model.features), ("segments", &model.segments)] {
                let mut names_seen = std::collections::HashSet::new();
                for name in names {
                    if name.is_empty() || !names_seen.insert(name) {
                        return Err(ConfigError::invalid(
                            key(field),
                            format!("`{name}` is empty or listed twice"),
                        ));
                    }
                }
            }
            validate_drift(model, &key)?;
        }
        RuleSet::new(&self.rules, &self.model_infos())
            .map_err(|e| ConfigError::invalid("rules", e.to_string()))?;
        if let Some(webhook) = &self.retrain.webhook {
            if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    "retrain.webhook.url",
                    format!("`{}` is not an http:// or https:// URL", webhook.url),
                ));
            }
            if webhook.max_attempts == 0 {
                return Err(ConfigError::invalid(
                    "retrain.webhook.max_attempts",
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// What the rules need to know about the models.
    pub fn model_infos(&self) -> Vec<ModelInfo> {
        self.models
            .iter()
            .map(|m| ModelInfo {
                name: m.name.clone(),
                task: match m.task {
                    Task::Binary => "binary",
                    Task::Multiclass => "multiclass",
                    Task::Regression => "regression",
                }
                .to_string(),
                features: m.features.clone(),
                segments: m.segments.clone(),
            })
            .collect()
    }

    /// The model with this name.
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }
}

fn validate_drift(model: &ModelConfig, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if model.reference_size == 0 {
        return Err(ConfigError::invalid(
            key("reference_size"),
            "must be at least 1",
        ));
    }
    if let ReferenceConfig::File(file) = &model.reference {
        if file.is_empty() {
            return Err(ConfigError::invalid(
                key("reference.file"),
                "must not be empty",
            ));
        }
    }
    let drift = &model.drift;
    if drift.sample_capacity == 0 {
        return Err(ConfigError::invalid(
            key("drift.sample_capacity"),
            "must be at least 1",
        ));
    }
    let threshold_ok = |t: Option<f64>| t.is_none_or(|t| t.is_finite() && t >= 0.0);
    if !threshold_ok(drift.threshold) {
        return Err(ConfigError::invalid(
            key("drift.threshold"),
            "must be a finite number >= 0",
        ));
    }
    for (name, feature) in &drift.features {
        let fkey = key(&format!("drift.features.{name}"));
        if !model.features.contains(name) {
            return Err(ConfigError::invalid(
                fkey,
                format!("`{name}` is not one of the model's `features`"),
            ));
        }
        if !threshold_ok(feature.threshold) {
            return Err(ConfigError::invalid(
                format!("{fkey}.threshold"),
                "must be a finite number >= 0",
            ));
        }
    }
    let d = &model.detectors;
    if !(d.adwin.delta > 0.0 && d.adwin.delta < 1.0) {
        return Err(ConfigError::invalid(
            key("detectors.adwin.delta"),
            "must be in (0, 1)",
        ));
    }
    if d.adwin.clock == 0 || d.adwin.max_buckets == 0 {
        return Err(ConfigError::invalid(
            key("detectors.adwin"),
            "clock and max_buckets must be at least 1",
        ));
    }
    for (field, value) in [
        ("detectors.ddm.warning_threshold", d.ddm.warning_threshold),
        ("detectors.ddm.drift_threshold", d.ddm.drift_threshold),
        ("detectors.page_hinkley.delta", d.page_hinkley.delta),
        ("detectors.page_hinkley.threshold", d.page_hinkley.threshold),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(ConfigError::invalid(
                key(field),
                "must be a finite number >= 0",
            ));
        }
    }
    if !(d.page_hinkley.alpha > 0.0 && d.page_hinkley.alpha <= 1.0) {
        return Err(ConfigError::invalid(
            key("detectors.page_hinkley.alpha"),
            "must be in (0, 1]",
        ));
    }
    Ok(())
}

/// Environment overrides: `FEEDBACK_LOOP__JOIN__MAX_LABEL_DELAY=2h` sets `join.max_label_delay`.
/// `[kafka.client]` properties are handled by [`client_env_overrides`], since their names
/// contain dots.
fn env_overrides() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|key| {
            !key.as_str()
                .to_ascii_lowercase()
                .starts_with(CLIENT_ENV_INFIX)
        })
        .split("__")
}

const CLIENT_ENV_INFIX: &str = "kafka__client__";

/// `FEEDBACK_LOOP__KAFKA__CLIENT__SECURITY_PROTOCOL=SASL_SSL` sets the librdkafka property
/// `security.protocol`: librdkafka names use dots where environment names cannot, and no
/// librdkafka property has an underscore, so each underscore stands for a dot.
fn client_env_overrides(
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(String, ClientValue)> {
    vars.filter_map(|(name, value)| {
        let rest = name.strip_prefix(ENV_PREFIX)?;
        let lower = rest.to_ascii_lowercase();
        let property = lower.strip_prefix(CLIENT_ENV_INFIX)?;
        (!property.is_empty()).then(|| (property.replace('_', "."), ClientValue(value)))
    })
    .collect()
}

fn describe_figment_error(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let source = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(source) => format!(" (in {source})"),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{source}", error.kind)
    } else {
        format!("`{key}`: {}{source}", error.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
"#;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(Duration::parse("90s").unwrap().as_millis_i64(), 90_000);
        assert_eq!(Duration::parse("5m").unwrap().as_millis_i64(), 300_000);
        assert_eq!(Duration::parse("1h").unwrap().as_millis_i64(), 3_600_000);
        assert_eq!(Duration::parse("250ms").unwrap().as_millis_i64(), 250);
        assert_eq!(Duration::parse("2d").unwrap().to_string(), "2d");
        assert!(Duration::parse("90").unwrap_err().contains("no unit"));
        assert!(Duration::parse("5 weeks").unwrap_err().contains("unit"));
        assert!(Duration::parse("m").is_err());
    }

    #[test]
    fn defaults_apply() {
        let config = Config::from_toml_str(MINIMAL).unwrap();
        assert_eq!(config.join.max_label_delay.as_millis_i64(), 3_600_000);
        assert_eq!(config.window.attribute_to, AttributeTo::Outcome);
        assert_eq!(config.http.listen, "0.0.0.0:9898");
    }

    #[test]
    fn errors_name_the_key() {
        let err =
            Config::from_toml_str(&format!("[join]\nmax_label_delay = \"2 hours\"\n{MINIMAL}"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("join.max_label_delay"), "{err}");

        let err = Config::from_toml_str(&format!("[window]\nsise = \"1m\"\n{MINIMAL}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sise"), "{err}");

        let err = Config::from_toml_str("[[models]]\nname = \"x\"\ntask = \"binary\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("models[0].positive_class"), "{err}");
    }

    #[test]
    fn drift_keys_parse_and_validate() {
        let config = Config::from_toml_str(&format!(
            "{MINIMAL}features = [\"amount\"]\nreference = \"previous\"\n[models.drift]\nmethod = \"psi\"\n[models.drift.features.amount]\nmethod = \"ks\"\nthreshold = 0.01\n[models.detectors]\nddm = {{ enabled = false }}\n"
        ))
        .unwrap();
        assert_eq!(config.models[0].reference, ReferenceConfig::Previous);
        assert!(!config.models[0].detectors.ddm.enabled);

        let err = Config::from_toml_str(&format!(
            "{MINIMAL}[models.drift.features.age]\nmethod = \"psi\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("models[0].drift.features.age"), "{err}");

        let err = Config::from_toml_str(&format!("{MINIMAL}reference = \"last\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reference"), "{err}");

        let err = Config::from_toml_str(&format!(
            "{MINIMAL}[models.detectors]\nadwin = {{ delta = 2.0 }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("models[0].detectors.adwin.delta"), "{err}");

        let err = Config::from_toml_str(&format!("{MINIMAL}[models.drift]\nmethd = \"ks\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("methd"), "{err}");
    }

    #[test]
    fn client_properties_from_environment() {
        let vars = vec![
            (
                "FEEDBACK_LOOP__KAFKA__CLIENT__SECURITY_PROTOCOL".to_string(),
                "SASL_SSL".to_string(),
            ),
            (
                "FEEDBACK_LOOP__JOIN__MAX_PENDING".to_string(),
                "5".to_string(),
            ),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let overrides = client_env_overrides(vars.into_iter());
        assert_eq!(
            overrides,
            vec![(
                "security.protocol".to_string(),
                ClientValue("SASL_SSL".into())
            )]
        );
    }

    #[test]
    fn rules_are_validated_by_name() {
        let err = Config::from_toml_str(&format!(
            "{MINIMAL}\n[[rules]]\nname = \"f1-drop\"\nmodel = \"fraud\"\nmetric = \"classification.f2\"\nop = \"<\"\nthreshold = 0.8\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("f1-drop") && err.contains("classification.f2"),
            "{err}"
        );
        let err = Config::from_toml_str(&format!(
            "{MINIMAL}\n[[rules]]\nname = \"x\"\nmodel = \"nope\"\nmetric = \"counts.joined\"\nop = \"<\"\nthreshold = 1\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown model") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn client_values_become_text() {
        let config = Config::from_toml_str(&format!(
            "[kafka.client]\n\"socket.timeout.ms\" = 1000\n\"enable.idempotence\" = true\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(config.kafka.client["socket.timeout.ms"].0, "1000");
        assert_eq!(config.kafka.client["enable.idempotence"].0, "true");
    }
}
