//! The configuration's schema: one TOML file's sections as typed settings, with the checks
//! serde cannot express ([`Config::validate`]). Every error names the key it is about.
//!
//! This module imports nothing of the engine: the engine reads settings, never the other
//! way. Loading (the file, `FEEDBACK_LOOP__…` environment overrides, baseline files) is the
//! shell's job.

mod detectors;
mod duration;
mod model;
mod rule;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use detectors::{
    AdwinConfig, AdwinSettings, DdmConfig, DdmSettings, DetectorsConfig, PageHinkleyConfig,
    PageHinkleyMode, PageHinkleySettings,
};
pub use duration::Duration;
pub use model::{
    DriftMethod, EstimationCalibration, EstimationConfig, EstimationMethod, EstimationReference,
    FeatureDriftConfig, ModelConfig, ModelDriftConfig, ReferenceConfig, Task,
    DEFAULT_ESTIMATION_AUC_SAMPLE, DEFAULT_ESTIMATION_REFERENCE_SIZE, DEFAULT_MIN_WINDOW_SAMPLES,
    DEFAULT_SAMPLE_CAPACITY,
};
pub use rule::{RuleConfig, DEFAULT_COOLDOWN, DEFAULT_SEVERITY};

/// A configuration error that names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an override did not parse or did not match the schema.
    #[error("{0}")]
    Parse(String),
    /// A key parsed but its value is not acceptable.
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },
    /// More than one problem, one per line, in the order they were found.
    #[error("{}", lines(.0))]
    Several(Vec<ConfigError>),
}

fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// `Ok` for no problem, the problem itself for one, [`ConfigError::Several`] for more
    /// (nested lists flattened).
    pub fn from_all(problems: Vec<ConfigError>) -> Result<(), ConfigError> {
        let mut flat = Vec::with_capacity(problems.len());
        for problem in problems {
            match problem {
                ConfigError::Several(inner) => flat.extend(inner),
                one => flat.push(one),
            }
        }
        match flat.len() {
            0 => Ok(()),
            1 => Err(flat.remove(0)),
            _ => Err(ConfigError::Several(flat)),
        }
    }

    /// Every single problem this error holds.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(all) => all.iter().flat_map(ConfigError::problems).collect(),
            one => vec![one],
        }
    }

    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
    pub scale: ScaleConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// How long `run` waits at start for missing input topics (`0s`: not at all).
    pub topic_wait: Duration,
    /// How far (event time) an input partition may be read ahead of the slowest one being
    /// read before it is paused (see `read_alignment`); `0s`: never paused.
    pub max_read_ahead: Duration,
    /// librdkafka properties, passed as is to the consumer and the producer.
    pub client: BTreeMap<String, ClientValue>,
    /// librdkafka properties for the consumers only, applied after `client`.
    pub consumer: BTreeMap<String, ClientValue>,
    /// librdkafka properties for the producers only, applied after `client`.
    pub producer: BTreeMap<String, ClientValue>,
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
            topic_wait: Duration::from_millis(600_000),
            max_read_ahead: Duration::from_millis(300_000),
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
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

impl Serialize for ClientValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// Windows kept per series for the page and `/api/v1/models/{model}/windows`.
    pub history_windows: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:9898".into(),
            history_windows: 1440,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeTo {
    /// The time the pair became complete (normally the outcome's time).
    Outcome,
    /// The prediction's time; windows then wait `max_label_delay` before closing.
    Prediction,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldsConfig {
    pub prediction: PredictionFields,
    pub outcome: OutcomeFields,
}

/// Dotted paths of the prediction fields in the input JSON.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// How the instances of a consumer group share the input (docs/operations.md, "Several
/// instances").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaleConfig {
    pub mode: ScaleMode,
    /// The internal topic that carries the tasks' partial windows to the finalizer
    /// (`mode = "partitioned"`); created with one partition when missing.
    pub partials_topic: String,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        ScaleConfig {
            mode: ScaleMode::Single,
            partials_topic: "feedback-loop-partials".into(),
        }
    }
}

/// See [`ScaleConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleMode {
    /// One instance processes the whole input; another instance of the group waits until
    /// it holds every input partition.
    Single,
    /// Every instance runs one task per input partition it holds and sends partial windows
    /// to the partials topic; the instance that holds task 0 (partition 0 of both inputs) merges
    /// them and publishes.
    Partitioned,
}

/// How long a graceful stop (SIGTERM, SIGINT) may take.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainConfig {
    pub webhook: Option<WebhookConfig>,
}

/// An HTTP endpoint that receives each retrain trigger as a JSON POST.
#[derive(Debug, Clone, Deserialize, Serialize)]
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

impl Config {
    /// Checks what serde cannot: required combinations, ranges, names. Every problem is
    /// reported: one error, or [`ConfigError::Several`] in the file's order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::from_all(self.problems())
    }

    /// Every problem [`Config::validate`] finds, each naming its key.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.http.history_windows == 0 {
            problems.push(ConfigError::invalid(
                "http.history_windows",
                "must be at least 1",
            ));
        }
        let w = &self.window;
        if w.size.0.is_zero() {
            problems.push(ConfigError::invalid(
                "window.size",
                "must be greater than 0",
            ));
        }
        if self.shutdown.timeout.0.is_zero() {
            problems.push(ConfigError::invalid(
                "shutdown.timeout",
                "must be greater than 0",
            ));
        }
        if self.join.max_pending == 0 {
            problems.push(ConfigError::invalid(
                "join.max_pending",
                "must be at least 1",
            ));
        }
        // The service relies on eager rebalancing: after a rebalance every partition is
        // read again from the committed offsets (src/pipeline.rs, "the whole input or
        // nothing").
        for (table, properties) in [
            ("kafka.client", &self.kafka.client),
            ("kafka.consumer", &self.kafka.consumer),
        ] {
            if let Some(value) = properties.get("partition.assignment.strategy") {
                if value.0.contains("cooperative") {
                    problems.push(ConfigError::invalid(
                        format!("{table}.\"partition.assignment.strategy\""),
                        "cooperative assignment is not supported: use \"range\" (the default) \
                         or \"roundrobin\" (docs/operations.md, \"Overlapping instances\")",
                    ));
                }
            }
        }
        if self.scale.mode == ScaleMode::Partitioned {
            if !self.checkpoint.enabled {
                problems.push(ConfigError::invalid(
                    "checkpoint.enabled",
                    "must be true with scale.mode = \"partitioned\": a task moving to another \
                     instance continues from its checkpoint",
                ));
            }
            for (table, properties) in [
                ("kafka.client", &self.kafka.client),
                ("kafka.consumer", &self.kafka.consumer),
            ] {
                if let Some(value) = properties.get("partition.assignment.strategy") {
                    if value.0.trim() != "range" {
                        problems.push(ConfigError::invalid(
                            format!("{table}.\"partition.assignment.strategy\""),
                            "must be \"range\" with scale.mode = \"partitioned\": partition p \
                             of both input topics must go to the same instance",
                        ));
                    }
                }
            }
            if self.scale.partials_topic.trim().is_empty() {
                problems.push(ConfigError::invalid(
                    "scale.partials_topic",
                    "must not be empty",
                ));
            }
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
                problems.push(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.limits.max_versions_per_model > u16::MAX as usize - 1 {
            problems.push(ConfigError::invalid(
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
                problems.push(ConfigError::invalid(
                    key,
                    format!("`{path}` is not a dotted path of field names"),
                ));
            }
        }
        if self.models.is_empty() {
            problems.push(ConfigError::invalid(
                "models",
                "no [[models]] configured: the service would dead-letter every record",
            ));
        }
        if self.models.len() > u16::MAX as usize - 1 {
            problems.push(ConfigError::invalid("models", "too many models"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let key = |field: &str| format!("models[{i}].{field}");
            if model.name.is_empty() {
                problems.push(ConfigError::invalid(key("name"), "must not be empty"));
            }
            if !seen.insert(model.name.as_str()) {
                problems.push(ConfigError::invalid(
                    key("name"),
                    format!("model `{}` is configured twice", model.name),
                ));
            }
            match (model.task, &model.positive_class) {
                (Task::Binary, None) => problems.push(ConfigError::invalid(
                    key("positive_class"),
                    format!(
                        "model `{}` is binary and needs a positive_class",
                        model.name
                    ),
                )),
                (Task::Multiclass | Task::Regression, Some(_)) => {
                    problems.push(ConfigError::invalid(
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
                        problems.push(ConfigError::invalid(
                            key(field),
                            format!("`{name}` is empty or listed twice"),
                        ));
                    }
                }
            }
            validate_drift(model, &key, &mut problems);
            validate_estimation(model, &key, &mut problems);
        }
        if let Some(webhook) = &self.retrain.webhook {
            if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
                problems.push(ConfigError::invalid(
                    "retrain.webhook.url",
                    format!("`{}` is not an http:// or https:// URL", webhook.url),
                ));
            }
            if webhook.max_attempts == 0 {
                problems.push(ConfigError::invalid(
                    "retrain.webhook.max_attempts",
                    "must be at least 1",
                ));
            }
        }
        problems
    }

    /// The model with this name.
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }
}

/// The smallest `[models.estimation] auc_sample`: below, the sampled ROC AUC's standard
/// error (about 0.05 at 100 rows) is larger than the differences it is meant to show.
const MIN_ESTIMATION_AUC_SAMPLE: usize = 100;

fn validate_estimation(
    model: &ModelConfig,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<ConfigError>,
) {
    let Some(estimation) = &model.estimation else {
        return;
    };
    if !model.task.is_classification() {
        problems.push(ConfigError::invalid(
            key("estimation"),
            format!(
                "model `{}` is a regression model: estimation (CBPE) applies to binary and \
                 multiclass models only",
                model.name
            ),
        ));
    }
    if estimation.reference == EstimationReference::First && estimation.reference_size == 0 {
        problems.push(ConfigError::invalid(
            key("estimation.reference_size"),
            "must be at least 1",
        ));
    }
    if estimation.auc_sample < MIN_ESTIMATION_AUC_SAMPLE {
        problems.push(ConfigError::invalid(
            key("estimation.auc_sample"),
            format!(
                "must be at least {MIN_ESTIMATION_AUC_SAMPLE} (the rows a window's ROC AUC \
                 is computed on)"
            ),
        ));
    }
    if let EstimationReference::File(file) = &estimation.reference {
        if file.is_empty() {
            problems.push(ConfigError::invalid(
                key("estimation.reference.file"),
                "must not be empty",
            ));
        }
    }
}

fn validate_drift(
    model: &ModelConfig,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<ConfigError>,
) {
    if model.reference_size == 0 {
        problems.push(ConfigError::invalid(
            key("reference_size"),
            "must be at least 1",
        ));
    }
    if let ReferenceConfig::File(file) = &model.reference {
        if file.is_empty() {
            problems.push(ConfigError::invalid(
                key("reference.file"),
                "must not be empty",
            ));
        }
    }
    let drift = &model.drift;
    if drift.sample_capacity == 0 {
        problems.push(ConfigError::invalid(
            key("drift.sample_capacity"),
            "must be at least 1",
        ));
    } else if drift.min_window_samples > drift.sample_capacity {
        problems.push(ConfigError::invalid(
            key("drift.min_window_samples"),
            format!(
                "{} is above drift.sample_capacity ({}): no window could ever be decided",
                drift.min_window_samples, drift.sample_capacity
            ),
        ));
    }
    let threshold_ok = |t: Option<f64>| t.is_none_or(|t| t.is_finite() && t >= 0.0);
    if !threshold_ok(drift.threshold) {
        problems.push(ConfigError::invalid(
            key("drift.threshold"),
            "must be a finite number >= 0",
        ));
    }
    for (name, feature) in &drift.features {
        let fkey = key(&format!("drift.features.{name}"));
        if !model.features.contains(name) {
            problems.push(ConfigError::invalid(
                &fkey,
                format!("`{name}` is not one of the model's `features`"),
            ));
        }
        if !threshold_ok(feature.threshold) {
            problems.push(ConfigError::invalid(
                format!("{fkey}.threshold"),
                "must be a finite number >= 0",
            ));
        }
    }
    let d = &model.detectors;
    if !(d.adwin.delta > 0.0 && d.adwin.delta < 1.0) {
        problems.push(ConfigError::invalid(
            key("detectors.adwin.delta"),
            "must be in (0, 1)",
        ));
    }
    if d.adwin.clock == 0 || d.adwin.max_buckets == 0 {
        problems.push(ConfigError::invalid(
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
            problems.push(ConfigError::invalid(
                key(field),
                "must be a finite number >= 0",
            ));
        }
    }
    if !(d.page_hinkley.alpha > 0.0 && d.page_hinkley.alpha <= 1.0) {
        problems.push(ConfigError::invalid(
            key("detectors.page_hinkley.alpha"),
            "must be in (0, 1]",
        ));
    }
}

#[cfg(test)]
impl Config {
    /// Parses and validates TOML text, for the core's own tests (the shell loads files and
    /// the environment with figment).
    pub(crate) fn from_toml_for_tests(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}
