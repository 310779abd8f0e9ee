//! Alert and retrain rules: turns metrics records (`feedback-loop.metrics.v1`) into alert
//! events (`feedback-loop.alert.v1`, firing then resolved) and retrain triggers
//! (`feedback-loop.retrain.v1`).
//!
//! Why it looks the way it does:
//! - It is part of the core: no I/O and no clock. Time is the event time of the records
//!   (their window bounds), so replaying the same records from the same checkpointed
//!   [`RuleState`] yields byte-identical events, with the same ids.
//! - Rules are validated and compiled once, against the configured models
//!   ([`RuleSet::new`]); every error names the rule.
//! - Each rule keeps one small state machine per series (rule, model, model_version,
//!   segment). The whole [`RuleSet`] (and its [`RuleState`] alone) is serde-serializable so
//!   that the service can checkpoint it next to the join store.
//!
//! Semantics, in short (the user-facing version is the "Writing rules" section of the
//! README):
//! - A window *crosses* when `value <op> threshold`. A rule fires (one `firing` event) in the
//!   window where it has crossed in `for_windows` consecutive evaluated windows, and does not
//!   fire again until it has resolved.
//! - While firing, it resolves (one `resolved` event) in the first window whose value is past
//!   `resolve_threshold` on the good side (hysteresis); a value between the two thresholds
//!   keeps it firing.
//! - A window with `counts.joined < min_samples` is muted: no state change at all.
//! - A window where the metric is null or absent ("no data") does not cross and does not
//!   resolve; before firing it resets the consecutive count to 0, while firing it changes
//!   nothing.
//! - `alert_id = <rule>/<model>/<version or ->/<window start of the firing window>
//!   [/<dimension>=<value>…]`: the same for the firing and the resolved event of an episode,
//!   new for every episode.
//! - Retrain: at most one trigger per model per batch of records and per cooldown (event
//!   time, window ends). It carries the retrain rules that *fired* in that window (not those
//!   that were already firing). The cooldown that starts is the one of the first rule in the
//!   trigger's evidence (records in batch order, rules in configuration order).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Schema tag of alert events.
pub const ALERT_SCHEMA: &str = "feedback-loop.alert.v1";
/// Schema tag of retrain triggers.
pub const RETRAIN_SCHEMA: &str = "feedback-loop.retrain.v1";

const DEFAULT_SEVERITY: &str = "warning";
const DEFAULT_COOLDOWN: &str = "1h";

// ------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------

/// One `[[rules]]` table of the TOML configuration, as written by the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; appears in events and ids.
    pub name: String,
    /// A configured model name, or `"*"` for every model where `metric` is valid.
    pub model: String,
    /// Dotted path of a numeric (or boolean) field of the metrics record.
    pub metric: String,
    /// One of `<`, `<=`, `>`, `>=`, `==`, `!=`.
    pub op: String,
    pub threshold: f64,
    /// Hysteresis: the alert resolves only past this value. Default: `threshold`.
    #[serde(default)]
    pub resolve_threshold: Option<f64>,
    /// Windows with fewer joined pairs (`counts.joined`) are muted.
    #[serde(default)]
    pub min_samples: u64,
    /// Consecutive crossing windows needed to fire.
    #[serde(default = "default_for_windows")]
    pub for_windows: u32,
    /// Free text, passed through to the events.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Also emit a retrain trigger when the rule fires.
    #[serde(default)]
    pub retrain: bool,
    /// At most one retrain trigger per model per cooldown: `"250ms"`, `"90s"`, `"5m"`,
    /// `"1h"`, `"1d"`.
    #[serde(default = "default_cooldown")]
    pub cooldown: String,
    /// Watch this slice (e.g. `{ channel = "web" }`) instead of the unsegmented record.
    #[serde(default)]
    pub segment: Option<BTreeMap<String, String>>,
}

fn default_for_windows() -> u32 {
    1
}

fn default_severity() -> String {
    DEFAULT_SEVERITY.to_string()
}

fn default_cooldown() -> String {
    DEFAULT_COOLDOWN.to_string()
}

/// What the rules need to know about a configured model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    /// `"binary"`, `"multiclass"` or `"regression"`.
    pub task: String,
    /// Feature names (valid in `drift.features.<name>.…`).
    pub features: Vec<String>,
    /// Segment dimensions (valid as keys of a rule's `segment`).
    pub segments: Vec<String>,
}

/// A rule or model that cannot be loaded. The message names the rule (or model).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("rule \"{rule}\": {problem}")]
    Rule { rule: String, problem: RuleProblem },
    #[error(
        "model \"{model}\": unknown task \"{task}\" (expected binary, multiclass or regression)"
    )]
    UnknownTask { model: String, task: String },
}

/// What is wrong with a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleProblem {
    #[error("the name is empty")]
    EmptyName,
    #[error("duplicate rule name")]
    DuplicateName,
    #[error("unknown model \"{0}\" (use a configured model name or \"*\")")]
    UnknownModel(String),
    #[error("unknown metric path \"{0}\"")]
    UnknownMetricPath(String),
    #[error("unknown operator \"{0}\" (use <, <=, >, >=, == or !=)")]
    UnknownOperator(String),
    #[error("{field} must be a finite number")]
    NotFinite { field: &'static str },
    #[error(
        "resolve_threshold {resolve_threshold} is on the wrong side of threshold {threshold} \
         for op \"{op}\" (it must be {expected} threshold)"
    )]
    ResolveThresholdWrongSide {
        op: &'static str,
        threshold: f64,
        resolve_threshold: f64,
        expected: &'static str,
    },
    #[error("for_windows must be at least 1")]
    ZeroForWindows,
    #[error("invalid cooldown: {0}")]
    InvalidCooldown(String),
    #[error("segment dimension \"{dimension}\" is not listed by model \"{model}\"")]
    UnknownSegmentDimension { dimension: String, model: String },
    #[error(
        "segment dimension \"{0}\" is not listed by any model for which the metric path is valid"
    )]
    SegmentDimensionInNoModel(String),
    #[error(
        "segment must name exactly one dimension (segment records carry one dimension each), \
         got {0}"
    )]
    SegmentDimensionCount(usize),
}

/// Comparison operator of a rule. Serializes as its symbol (`"<"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub fn parse(symbol: &str) -> Option<Op> {
        match symbol.trim() {
            "<" => Some(Op::Lt),
            "<=" => Some(Op::Le),
            ">" => Some(Op::Gt),
            ">=" => Some(Op::Ge),
            "==" => Some(Op::Eq),
            "!=" => Some(Op::Ne),
            _ => None,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// The alert condition: `value <op> threshold`.
    pub fn crosses(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }

    /// The resolve condition, the mirror of [`Op::crosses`] against the resolve threshold:
    /// `<` resolves on `>=`, `<=` on `>`, `>` on `<=`, `>=` on `<`; `==` resolves when the
    /// value differs from the threshold, `!=` when it equals it.
    pub fn resolves(self, value: f64, threshold: f64, resolve_threshold: f64) -> bool {
        match self {
            Op::Lt => value >= resolve_threshold,
            Op::Le => value > resolve_threshold,
            Op::Gt => value <= resolve_threshold,
            Op::Ge => value < resolve_threshold,
            Op::Eq => value != threshold,
            Op::Ne => value == threshold,
        }
    }
}

/// Parses `<integer><unit>`, unit one of `ms`, `s`, `m`, `h`, `d`, into milliseconds (the
/// configuration's duration syntax, [`crate::config::Duration`]).
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    crate::config::Duration::parse(text).map(|d| d.as_millis_i64())
}

// ------------------------------------------------------------------------------------------
// Metric paths
// ------------------------------------------------------------------------------------------

const COUNT_LEAVES: &[&str] = &[
    "predictions",
    "outcomes",
    "joined",
    "expired_predictions",
    "orphan_outcomes",
    "duplicates",
    "late",
    "invalid",
    "label_coverage",
];
const CLASSIFICATION_LEAVES: &[&str] = &[
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "brier",
];
const AVERAGE_KINDS: &[&str] = &["micro", "macro", "weighted"];
const PRF_LEAVES: &[&str] = &["precision", "recall", "f1"];
const PER_CLASS_LEAVES: &[&str] = &["precision", "recall", "f1", "support"];
const REGRESSION_LEAVES: &[&str] = &["mae", "rmse", "mape", "r2"];
const DRIFT_GROUPS: &[&str] = &["prediction", "label", "score"];
const DRIFT_LEAVES: &[&str] = &[
    "psi",
    "wasserstein",
    "js",
    "drifted",
    "ks.statistic",
    "ks.p_value",
    "chi_square.statistic",
    "chi_square.p_value",
];
const DETECTORS: &[&str] = &["adwin", "ddm", "page_hinkley"];
const DETECTOR_LEAVES: &[&str] = &["drift", "estimation", "detections"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Classification,
    Regression,
}

fn parse_task(model: &ModelInfo) -> Result<Task, RuleError> {
    match model.task.as_str() {
        "binary" | "multiclass" => Ok(Task::Classification),
        "regression" => Ok(Task::Regression),
        other => Err(RuleError::UnknownTask {
            model: model.name.clone(),
            task: other.to_string(),
        }),
    }
}

/// `a.b` → `["a", "b"]`, with `leaf` itself possibly dotted (`ks.p_value`).
fn keys(prefix: &[&str], leaf: &str) -> Vec<String> {
    prefix
        .iter()
        .map(|key| key.to_string())
        .chain(leaf.split('.').map(str::to_string))
        .collect()
}

/// The JSON keys under which `path` is found in the records of `model`, or `None` when the
/// path is not valid for that model. Keys are resolved here, once, because class labels and
/// feature names may themselves contain dots.
fn metric_keys(path: &str, model: &ModelInfo, task: Task) -> Option<Vec<String>> {
    if let Some(leaf) = path.strip_prefix("counts.") {
        return COUNT_LEAVES
            .contains(&leaf)
            .then(|| keys(&["counts"], leaf));
    }
    if let Some(rest) = path.strip_prefix("classification.") {
        if task != Task::Classification {
            return None;
        }
        if CLASSIFICATION_LEAVES.contains(&rest) {
            return Some(keys(&["classification"], rest));
        }
        if let Some(average) = rest.strip_prefix("averages.") {
            let (kind, leaf) = average.split_once('.')?;
            return (AVERAGE_KINDS.contains(&kind) && PRF_LEAVES.contains(&leaf))
                .then(|| keys(&["classification", "averages", kind], leaf));
        }
        if let Some(per_class) = rest.strip_prefix("per_class.") {
            let (label, leaf) = per_class.rsplit_once('.')?;
            return (!label.is_empty() && PER_CLASS_LEAVES.contains(&leaf))
                .then(|| keys(&["classification", "per_class", label], leaf));
        }
        return None;
    }
    if let Some(leaf) = path.strip_prefix("regression.") {
        return (task == Task::Regression && REGRESSION_LEAVES.contains(&leaf))
            .then(|| keys(&["regression"], leaf));
    }
    if let Some(rest) = path.strip_prefix("drift.") {
        if let Some(feature_path) = rest.strip_prefix("features.") {
            return model.features.iter().find_map(|feature| {
                let leaf = feature_path
                    .strip_prefix(feature.as_str())?
                    .strip_prefix('.')?;
                DRIFT_LEAVES
                    .contains(&leaf)
                    .then(|| keys(&["drift", "features", feature], leaf))
            });
        }
        let (group, leaf) = rest.split_once('.')?;
        return (DRIFT_GROUPS.contains(&group) && DRIFT_LEAVES.contains(&leaf))
            .then(|| keys(&["drift", group], leaf));
    }
    if let Some(rest) = path.strip_prefix("detectors.") {
        let (detector, leaf) = rest.split_once('.')?;
        return (DETECTORS.contains(&detector) && DETECTOR_LEAVES.contains(&leaf))
            .then(|| keys(&["detectors", detector], leaf));
    }
    None
}

// ------------------------------------------------------------------------------------------
// Events
// ------------------------------------------------------------------------------------------

/// Window bounds, RFC 3339 strings as in the metrics record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// An alert event, schema `feedback-loop.alert.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub schema: String,
    /// `<rule>/<model>/<version or ->/<episode start>[/<dimension>=<value>…]`, where the
    /// episode start is the window start of the window in which the alert fired. Shared by
    /// the firing and the resolved event of one episode.
    pub alert_id: String,
    pub status: AlertStatus,
    pub rule: String,
    pub severity: String,
    pub model: String,
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<BTreeMap<String, String>>,
    pub metric: String,
    pub op: Op,
    pub threshold: f64,
    pub resolve_threshold: f64,
    /// The value in the window that caused this event.
    pub value: f64,
    /// The window that caused this event.
    pub window: Window,
    /// The metrics record that caused this event.
    pub record_id: String,
    pub summary: String,
    /// The window end at which the episode fired (the same on the resolved event).
    pub fired_at: String,
}

/// One crossing that made a retrain rule fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub rule: String,
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub op: Op,
    pub window: Window,
    pub record_id: String,
    /// The version and segment of the record (a trigger is per model, see [`RetrainTrigger`]).
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<BTreeMap<String, String>>,
}

/// A retrain trigger, schema `feedback-loop.retrain.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainTrigger {
    pub schema: String,
    /// `<model>/<version or ->/<window start>`.
    pub trigger_id: String,
    pub model: String,
    /// The version of the first evidence (records with `null` versions sort first).
    pub model_version: Option<String>,
    /// The retrain rules that fired in this window for this model, in evidence order.
    pub rules: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub window: Window,
    /// The window end.
    pub created_at: String,
}

/// What [`RuleSet::evaluate`] returns. Serializes as the inner event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RuleEvent {
    Alert(AlertEvent),
    Retrain(RetrainTrigger),
}

impl RuleEvent {
    /// The event as one line of JSON (the Kafka value).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The Kafka key: the model name.
    pub fn kafka_key(&self) -> &str {
        match self {
            RuleEvent::Alert(alert) => &alert.model,
            RuleEvent::Retrain(trigger) => &trigger.model,
        }
    }

    pub fn schema(&self) -> &str {
        match self {
            RuleEvent::Alert(alert) => &alert.schema,
            RuleEvent::Retrain(trigger) => &trigger.schema,
        }
    }
}

// ------------------------------------------------------------------------------------------
// State
// ------------------------------------------------------------------------------------------

/// The mutable part of a [`RuleSet`]: what the service checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Rule name → series key → state of that series.
    pub series: BTreeMap<String, BTreeMap<String, SeriesState>>,
    /// Model → retrain cooldown.
    pub cooldowns: BTreeMap<String, RetrainCooldown>,
}

/// State of one (rule, model, model_version, segment) series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    pub model: String,
    pub model_version: Option<String>,
    pub segment: Option<BTreeMap<String, String>>,
    /// Consecutive crossing windows while not firing.
    pub consecutive: u32,
    /// The current episode, when firing.
    pub firing: Option<Episode>,
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub alert_id: String,
    /// Window start of the window in which it fired.
    pub started_at: String,
    /// Window end of the window in which it fired.
    pub fired_at: String,
}

/// When the last retrain trigger of a model was emitted, in event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrainCooldown {
    /// Window end (epoch ms) of the last trigger.
    pub last_trigger_end_ms: i64,
    /// No new trigger for a window ending before this (epoch ms).
    pub quiet_until_ms: i64,
}

/// A rule after validation, with its metric path resolved per model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CompiledRule {
    name: String,
    /// Model name → JSON keys of the metric in that model's records. With `model = "*"`,
    /// only the models for which the path (and segment) is valid.
    models: BTreeMap<String, Vec<String>>,
    metric: String,
    op: Op,
    threshold: f64,
    resolve_threshold: f64,
    min_samples: u64,
    for_windows: u32,
    severity: String,
    retrain: bool,
    cooldown_ms: i64,
    segment: Option<BTreeMap<String, String>>,
}

/// A firing alert for the Prometheus gauge: (rule, model, model_version, segment, severity).
pub type FiringAlert<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a BTreeMap<String, String>>,
    &'a str,
);

/// The compiled rules and their state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    state: RuleState,
}

// ------------------------------------------------------------------------------------------
// Records
// ------------------------------------------------------------------------------------------

/// The fields of a metrics record the rules use.
struct WindowRecord<'a> {
    json: &'a Value,
    model: &'a str,
    model_version: Option<&'a str>,
    segment: Option<BTreeMap<String, String>>,
    window_start: &'a str,
    window_end: &'a str,
    window_end_ms: i64,
    record_id: &'a str,
    joined: u64,
}

impl<'a> WindowRecord<'a> {
    /// `None` for a record that does not follow the metrics contract (no model, a window that
    /// is not RFC 3339, a non-string version or segment value): such a record is skipped.
    fn parse(json: &'a Value) -> Option<WindowRecord<'a>> {
        let model = json.get("model")?.as_str()?;
        let model_version = match json.get("model_version") {
            None | Some(Value::Null) => None,
            Some(Value::String(version)) => Some(version.as_str()),
            Some(_) => return None,
        };
        let segment = match json.get("segment") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) if map.is_empty() => None,
            Some(Value::Object(map)) => {
                let mut segment = BTreeMap::new();
                for (dimension, value) in map {
                    segment.insert(dimension.clone(), value.as_str()?.to_string());
                }
                Some(segment)
            }
            Some(_) => return None,
        };
        let window = json.get("window")?;
        let window_start = window.get("start")?.as_str()?;
        let window_end = window.get("end")?.as_str()?;
        let window_end_ms = parse_rfc3339_ms(window_end)?;
        let record_id = json.get("record_id").and_then(Value::as_str).unwrap_or("");
        let joined = json
            .get("counts")
            .and_then(|counts| counts.get("joined"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Some(WindowRecord {
            json,
            model,
            model_version,
            segment,
            window_start,
            window_end,
            window_end_ms,
            record_id,
            joined,
        })
    }

    /// The value at `keys`: a number, or a boolean as 1/0; `None` (no data) otherwise.
    fn value(&self, keys: &[String]) -> Option<f64> {
        let mut node = self.json;
        for key in keys {
            node = node.get(key.as_str())?;
        }
        match node {
            Value::Number(number) => number.as_f64().filter(|value| value.is_finite()),
            Value::Bool(flag) => Some(if *flag { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    fn window(&self) -> Window {
        Window {
            start: self.window_start.to_string(),
            end: self.window_end.to_string(),
        }
    }
}

/// Epoch milliseconds of an RFC 3339 timestamp (`2026-01-01T00:02:00Z`,
/// `…00.250Z`, `…+02:00`). Fractions beyond milliseconds are truncated.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = text.get(from..to)?;
        if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let expect = |at: usize, allowed: &[u8]| bytes.get(at).is_some_and(|b| allowed.contains(b));
    if !(expect(4, b"-")
        && expect(7, b"-")
        && expect(10, b"Tt ")
        && expect(13, b":")
        && expect(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut position = 19;
    let mut millis = 0;
    if bytes.get(position) == Some(&b'.') {
        position += 1;
        let fraction_start = position;
        while bytes.get(position).is_some_and(u8::is_ascii_digit) {
            position += 1;
        }
        if position == fraction_start {
            return None;
        }
        for (index, digit) in bytes[fraction_start..position].iter().take(3).enumerate() {
            millis += i64::from(digit - b'0') * [100, 10, 1][index];
        }
    }
    let offset_seconds = match text.get(position..)? {
        "Z" | "z" => 0,
        offset if offset.len() == 6 && expect(position + 3, b":") => {
            let sign = match offset.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = (
                number(position + 1, position + 3)?,
                number(position + 4, position + 6)?,
            );
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ------------------------------------------------------------------------------------------
// Ids and summaries
// ------------------------------------------------------------------------------------------

fn version_or_dash(version: Option<&str>) -> &str {
    version.unwrap_or("-")
}

fn alert_id(
    rule: &str,
    model: &str,
    version: Option<&str>,
    segment: Option<&BTreeMap<String, String>>,
    episode_start: &str,
) -> String {
    let mut id = format!(
        "{rule}/{model}/{}/{episode_start}",
        version_or_dash(version)
    );
    for (dimension, value) in segment.into_iter().flatten() {
        id.push_str(&format!("/{dimension}={value}"));
    }
    id
}

fn trigger_id(model: &str, version: Option<&str>, window_start: &str) -> String {
    format!("{model}/{}/{window_start}", version_or_dash(version))
}

/// `fraud 1.0 [channel=web]`.
fn series_label(record: &WindowRecord<'_>) -> String {
    let mut label = record.model.to_string();
    if let Some(version) = record.model_version {
        label.push(' ');
        label.push_str(version);
    }
    if let Some(segment) = &record.segment {
        let slices: Vec<String> = segment
            .iter()
            .map(|(dimension, value)| format!("{dimension}={value}"))
            .collect();
        label.push_str(&format!(" [{}]", slices.join(",")));
    }
    label
}

fn plural_windows(count: u32) -> &'static str {
    if count == 1 {
        "window"
    } else {
        "windows"
    }
}

// ------------------------------------------------------------------------------------------
// RuleSet
// ------------------------------------------------------------------------------------------

fn rule_error(rule: &RuleConfig, problem: RuleProblem) -> RuleError {
    RuleError::Rule {
        rule: rule.name.clone(),
        problem,
    }
}

fn compile(rule: &RuleConfig, models: &[(&ModelInfo, Task)]) -> Result<CompiledRule, RuleError> {
    let error = |problem| rule_error(rule, problem);
    if rule.name.trim().is_empty() {
        return Err(error(RuleProblem::EmptyName));
    }
    let op =
        Op::parse(&rule.op).ok_or_else(|| error(RuleProblem::UnknownOperator(rule.op.clone())))?;
    if !rule.threshold.is_finite() {
        return Err(error(RuleProblem::NotFinite { field: "threshold" }));
    }
    let resolve_threshold = rule.resolve_threshold.unwrap_or(rule.threshold);
    if !resolve_threshold.is_finite() {
        return Err(error(RuleProblem::NotFinite {
            field: "resolve_threshold",
        }));
    }
    let expected = match op {
        Op::Lt | Op::Le if resolve_threshold < rule.threshold => Some(">="),
        Op::Gt | Op::Ge if resolve_threshold > rule.threshold => Some("<="),
        Op::Eq | Op::Ne if resolve_threshold != rule.threshold => Some("equal to"),
        _ => None,
    };
    if let Some(expected) = expected {
        return Err(error(RuleProblem::ResolveThresholdWrongSide {
            op: op.symbol(),
            threshold: rule.threshold,
            resolve_threshold,
            expected,
        }));
    }
    if rule.for_windows == 0 {
        return Err(error(RuleProblem::ZeroForWindows));
    }
    let cooldown_ms =
        parse_duration_ms(&rule.cooldown).map_err(|e| error(RuleProblem::InvalidCooldown(e)))?;
    let segment = rule.segment.clone().filter(|segment| !segment.is_empty());
    if let Some(segment) = &segment {
        if segment.len() != 1 {
            return Err(error(RuleProblem::SegmentDimensionCount(segment.len())));
        }
    }

    let wildcard = rule.model == "*";
    let candidates: Vec<&(&ModelInfo, Task)> = if wildcard {
        models.iter().collect()
    } else {
        let found: Vec<_> = models
            .iter()
            .filter(|(model, _)| model.name == rule.model)
            .collect();
        if found.is_empty() {
            return Err(error(RuleProblem::UnknownModel(rule.model.clone())));
        }
        found
    };
    let mut with_path = Vec::new();
    for (model, task) in candidates {
        if let Some(keys) = metric_keys(&rule.metric, model, *task) {
            with_path.push((*model, keys));
        }
    }
    if with_path.is_empty() {
        return Err(error(RuleProblem::UnknownMetricPath(rule.metric.clone())));
    }
    let mut compiled_models = BTreeMap::new();
    let mut missing_dimension = None;
    for (model, keys) in with_path {
        let unlisted = segment
            .iter()
            .flat_map(|segment| segment.keys())
            .find(|dimension| !model.segments.contains(dimension));
        match unlisted {
            Some(dimension) if wildcard => missing_dimension = Some(dimension.clone()),
            Some(dimension) => {
                return Err(error(RuleProblem::UnknownSegmentDimension {
                    dimension: dimension.clone(),
                    model: model.name.clone(),
                }))
            }
            None => {
                compiled_models.insert(model.name.clone(), keys);
            }
        }
    }
    if compiled_models.is_empty() {
        let dimension = missing_dimension.unwrap_or_default();
        return Err(error(RuleProblem::SegmentDimensionInNoModel(dimension)));
    }
    Ok(CompiledRule {
        name: rule.name.clone(),
        models: compiled_models,
        metric: rule.metric.clone(),
        op,
        threshold: rule.threshold,
        resolve_threshold,
        min_samples: rule.min_samples,
        for_windows: rule.for_windows,
        severity: rule.severity.clone(),
        retrain: rule.retrain,
        cooldown_ms,
        segment,
    })
}

/// A retrain rule that fired on one record.
struct FiredRetrain {
    model: String,
    window: Window,
    window_end_ms: i64,
    cooldown_ms: i64,
    evidence: Evidence,
}

impl RuleSet {
    /// Validates and compiles the rules against the configured models.
    pub fn new(rules: &[RuleConfig], models: &[ModelInfo]) -> Result<RuleSet, RuleError> {
        let models = models
            .iter()
            .map(|model| parse_task(model).map(|task| (model, task)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut compiled: Vec<CompiledRule> = Vec::with_capacity(rules.len());
        for rule in rules {
            if compiled.iter().any(|earlier| earlier.name == rule.name) {
                return Err(rule_error(rule, RuleProblem::DuplicateName));
            }
            compiled.push(compile(rule, &models)?);
        }
        Ok(RuleSet {
            rules: compiled,
            state: RuleState::default(),
        })
    }

    /// The state to checkpoint.
    pub fn state(&self) -> &RuleState {
        &self.state
    }

    /// Restores a checkpointed state onto freshly compiled rules. Series of rules that no
    /// longer exist are dropped; a rule whose definition changed keeps its series state.
    pub fn restore(&mut self, mut state: RuleState) {
        state
            .series
            .retain(|rule, _| self.rules.iter().any(|compiled| &compiled.name == rule));
        self.state = state;
    }

    /// Evaluates one record (a batch of one; see [`RuleSet::evaluate_batch`]).
    pub fn evaluate(&mut self, record: &Value) -> Vec<RuleEvent> {
        self.evaluate_batch(std::slice::from_ref(record))
    }

    /// Evaluates the records of one closed window (in the order the engine emits them), then
    /// emits at most one retrain trigger per model. Events come out in record order, rules in
    /// configuration order, then the triggers in order of their first evidence. Records that
    /// do not follow the metrics contract are skipped.
    pub fn evaluate_batch(&mut self, records: &[Value]) -> Vec<RuleEvent> {
        let mut events = Vec::new();
        let mut fired_retrain = Vec::new();
        for json in records {
            let Some(record) = WindowRecord::parse(json) else {
                continue;
            };
            for rule in &self.rules {
                let series = self.state.series.entry(rule.name.clone()).or_default();
                if let Some(alert) = step(rule, series, &record) {
                    if rule.retrain && alert.status == AlertStatus::Firing {
                        fired_retrain.push(FiredRetrain {
                            model: alert.model.clone(),
                            window: alert.window.clone(),
                            window_end_ms: record.window_end_ms,
                            cooldown_ms: rule.cooldown_ms,
                            evidence: Evidence {
                                rule: rule.name.clone(),
                                metric: rule.metric.clone(),
                                value: alert.value,
                                threshold: rule.threshold,
                                op: rule.op,
                                window: alert.window.clone(),
                                record_id: alert.record_id.clone(),
                                model_version: alert.model_version.clone(),
                                segment: alert.segment.clone(),
                            },
                        });
                    }
                    events.push(RuleEvent::Alert(alert));
                }
            }
        }
        self.state
            .series
            .retain(|_, series_of_rule| !series_of_rule.is_empty());
        events.extend(self.retrain_triggers(fired_retrain));
        events
    }

    /// Groups the fired retrain rules by (model, window) and applies the per-model cooldown.
    fn retrain_triggers(&mut self, fired: Vec<FiredRetrain>) -> Vec<RuleEvent> {
        let mut groups: Vec<Vec<FiredRetrain>> = Vec::new();
        for one in fired {
            match groups
                .iter_mut()
                .find(|group| group[0].model == one.model && group[0].window == one.window)
            {
                Some(group) => group.push(one),
                None => groups.push(vec![one]),
            }
        }
        let mut triggers = Vec::new();
        for group in groups {
            let first = &group[0];
            let allowed = match self.state.cooldowns.get(&first.model) {
                None => true,
                Some(cooldown) => {
                    first.window_end_ms >= cooldown.quiet_until_ms
                        && first.window_end_ms > cooldown.last_trigger_end_ms
                }
            };
            if !allowed {
                continue;
            }
            self.state.cooldowns.insert(
                first.model.clone(),
                RetrainCooldown {
                    last_trigger_end_ms: first.window_end_ms,
                    quiet_until_ms: first.window_end_ms.saturating_add(first.cooldown_ms),
                },
            );
            let model_version = first.evidence.model_version.clone();
            let mut rules: Vec<String> = Vec::new();
            for one in &group {
                if !rules.contains(&one.evidence.rule) {
                    rules.push(one.evidence.rule.clone());
                }
            }
            triggers.push(RuleEvent::Retrain(RetrainTrigger {
                schema: RETRAIN_SCHEMA.to_string(),
                trigger_id: trigger_id(&first.model, model_version.as_deref(), &first.window.start),
                model: first.model.clone(),
                model_version,
                rules,
                window: first.window.clone(),
                created_at: first.window.end.clone(),
                evidence: group.into_iter().map(|one| one.evidence).collect(),
            }));
        }
        triggers
    }

    /// The alerts currently firing: (rule, model, model_version, segment, severity), for a
    /// Prometheus gauge. Ordered by rule name, then series.
    pub fn firing_alerts(&self) -> impl Iterator<Item = FiringAlert<'_>> {
        self.state
            .series
            .iter()
            .filter_map(move |(rule_name, series_of_rule)| {
                let rule = self.rules.iter().find(|rule| &rule.name == rule_name)?;
                Some(
                    series_of_rule
                        .values()
                        .filter(|series| series.firing.is_some())
                        .map(move |series| {
                            (
                                rule.name.as_str(),
                                series.model.as_str(),
                                series.model_version.as_deref(),
                                series.segment.as_ref(),
                                rule.severity.as_str(),
                            )
                        }),
                )
            })
            .flatten()
    }
}

/// Key of a series within a rule: JSON `[model, version, segment]`, unambiguous.
fn series_key(record: &WindowRecord<'_>) -> String {
    let segment = match &record.segment {
        None => Value::Null,
        Some(segment) => Value::Object(
            segment
                .iter()
                .map(|(dimension, value)| (dimension.clone(), Value::String(value.clone())))
                .collect(),
        ),
    };
    Value::Array(vec![
        Value::String(record.model.to_string()),
        record
            .model_version
            .map_or(Value::Null, |version| Value::String(version.to_string())),
        segment,
    ])
    .to_string()
}

/// Advances the state machine of one series by one record; returns the alert event, if any.
/// A series that is neither firing nor in a streak is dropped, so that the checkpointed
/// state holds only series that matter.
fn step(
    rule: &CompiledRule,
    series_of_rule: &mut BTreeMap<String, SeriesState>,
    record: &WindowRecord<'_>,
) -> Option<AlertEvent> {
    let keys = rule.models.get(record.model)?;
    if rule.segment != record.segment {
        return None;
    }
    if record.joined < rule.min_samples {
        return None; // muted: no state change at all
    }
    let value = record.value(keys);
    let key = series_key(record);
    let series = series_of_rule
        .entry(key.clone())
        .or_insert_with(|| SeriesState {
            model: record.model.to_string(),
            model_version: record.model_version.map(str::to_string),
            segment: record.segment.clone(),
            consecutive: 0,
            firing: None,
        });
    let alert = advance(rule, series, record, value);
    if series.firing.is_none() && series.consecutive == 0 {
        series_of_rule.remove(&key);
    }
    alert
}

fn advance(
    rule: &CompiledRule,
    series: &mut SeriesState,
    record: &WindowRecord<'_>,
    value: Option<f64>,
) -> Option<AlertEvent> {
    if let Some(episode) = &series.firing {
        let value = value?; // no data: stays firing
        if !rule
            .op
            .resolves(value, rule.threshold, rule.resolve_threshold)
        {
            return None;
        }
        let summary = format!(
            "{}: resolved: {} = {} is past the resolve threshold {} (alert was {} {}) (window {})",
            series_label(record),
            rule.metric,
            value,
            rule.resolve_threshold,
            rule.op.symbol(),
            rule.threshold,
            record.window_start,
        );
        let alert = alert_event(rule, record, AlertStatus::Resolved, value, episode, summary);
        series.firing = None;
        series.consecutive = 0;
        return Some(alert);
    }

    match value {
        Some(value) if rule.op.crosses(value, rule.threshold) => {
            series.consecutive = series.consecutive.saturating_add(1);
            if series.consecutive < rule.for_windows {
                return None;
            }
            let episode = Episode {
                alert_id: alert_id(
                    &rule.name,
                    record.model,
                    record.model_version,
                    record.segment.as_ref(),
                    record.window_start,
                ),
                started_at: record.window_start.to_string(),
                fired_at: record.window_end.to_string(),
            };
            let summary = format!(
                "{}: {} = {} {} {} for {} {} (window {})",
                series_label(record),
                rule.metric,
                value,
                rule.op.symbol(),
                rule.threshold,
                series.consecutive,
                plural_windows(series.consecutive),
                record.window_start,
            );
            let alert = alert_event(rule, record, AlertStatus::Firing, value, &episode, summary);
            series.firing = Some(episode);
            Some(alert)
        }
        _ => {
            // Not crossing, or no data: the streak is broken.
            series.consecutive = 0;
            None
        }
    }
}

fn alert_event(
    rule: &CompiledRule,
    record: &WindowRecord<'_>,
    status: AlertStatus,
    value: f64,
    episode: &Episode,
    summary: String,
) -> AlertEvent {
    AlertEvent {
        schema: ALERT_SCHEMA.to_string(),
        alert_id: episode.alert_id.clone(),
        status,
        rule: rule.name.clone(),
        severity: rule.severity.clone(),
        model: record.model.to_string(),
        model_version: record.model_version.map(str::to_string),
        segment: record.segment.clone(),
        metric: rule.metric.clone(),
        op: rule.op,
        threshold: rule.threshold,
        resolve_threshold: rule.resolve_threshold,
        value,
        window: record.window(),
        record_id: record.record_id.to_string(),
        summary,
        fired_at: episode.fired_at.clone(),
    }
}

#[cfg(test)]
mod tests;
