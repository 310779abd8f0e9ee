//! What the rules emit: alert events (`feedback-loop.alert.v1`, firing then resolved) and
//! retrain triggers (`feedback-loop.retrain.v1`), with their deterministic ids.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Op;
use crate::output::WindowBounds;

/// Schema tag of alert events.
pub const ALERT_SCHEMA: &str = "feedback-loop.alert.v1";
/// Schema tag of retrain triggers.
pub const RETRAIN_SCHEMA: &str = "feedback-loop.retrain.v1";

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
    /// episode start is the window start of the window in which the alert fired; for a rule
    /// on an estimation-check path, `<rule>/<record id of the firing check>`
    /// (`…/<episode start>/estimation-check`). Shared by the firing and the resolved event
    /// of one episode.
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
    pub window: WindowBounds,
    /// The record that caused this event: a metrics record, or for a rule on an
    /// `estimation_check.…` path, an estimation check (`…/estimation-check`).
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
    pub window: WindowBounds,
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
    pub window: WindowBounds,
    /// The window end.
    pub created_at: String,
}

/// What `RuleSet::evaluate_batch` returns. Serializes as the inner event.
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

// Ids and summaries.

pub(crate) fn version_or_dash(version: Option<&str>) -> &str {
    version.unwrap_or("-")
}

pub(crate) fn alert_id(
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

pub(crate) fn trigger_id(model: &str, version: Option<&str>, window_start: &str) -> String {
    format!("{model}/{}/{window_start}", version_or_dash(version))
}

/// `fraud 1.0 [channel=web]`.
pub(crate) fn series_label(
    model: &str,
    version: Option<&str>,
    segment: Option<&BTreeMap<String, String>>,
) -> String {
    let mut label = model.to_string();
    if let Some(version) = version {
        label.push(' ');
        label.push_str(version);
    }
    if let Some(segment) = segment {
        let slices: Vec<String> = segment
            .iter()
            .map(|(dimension, value)| format!("{dimension}={value}"))
            .collect();
        label.push_str(&format!(" [{}]", slices.join(",")));
    }
    label
}

pub(crate) fn plural_windows(count: u32) -> &'static str {
    if count == 1 {
        "window"
    } else {
        "windows"
    }
}
