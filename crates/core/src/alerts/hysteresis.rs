//! One rule's state machine per series (model, version, segment): consecutive crossing
//! windows before firing (`for_windows`), muting (`min_samples`), and resolving only past
//! the resolve threshold (hysteresis).
//!
//! A window *crosses* when `value <op> threshold`. A rule fires (one `firing` event) in the
//! window where it has crossed in `for_windows` consecutive evaluated windows, and does not
//! fire again until it has resolved. While firing, it resolves (one `resolved` event) in
//! the first window whose value is past `resolve_threshold` on the good side; a value
//! between the two thresholds keeps it firing. A window with `counts.joined < min_samples`
//! is muted: no state change at all. A window where the metric has no value does not cross
//! and does not resolve; before firing it resets the consecutive count to 0, while firing
//! it changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::events::{
    alert_id, plural_windows, series_label, AlertEvent, AlertStatus, ALERT_SCHEMA,
};
use super::CompiledRule;
use crate::output::MetricsRecord;

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

/// Key of a series within a rule: `[model, version, segment]` as JSON, unambiguous.
fn series_key(record: &MetricsRecord) -> String {
    serde_json::to_string(&(&record.model, &record.model_version, &record.segment))
        .unwrap_or_default()
}

/// Advances the state machine of one series by one record; returns the alert event, if
/// any. A series that is neither firing nor in a streak is dropped, so that the
/// checkpointed state holds only series that matter.
pub(crate) fn step(
    rule: &CompiledRule,
    series_of_rule: &mut BTreeMap<String, SeriesState>,
    record: &MetricsRecord,
) -> Option<AlertEvent> {
    let path = rule.models.get(&record.model)?;
    if rule.segment != record.segment {
        return None;
    }
    if record.counts.joined < rule.min_samples {
        return None; // muted: no state change at all
    }
    let value = path.value(record);
    let key = series_key(record);
    let series = series_of_rule
        .entry(key.clone())
        .or_insert_with(|| SeriesState {
            model: record.model.clone(),
            model_version: record.model_version.clone(),
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
    record: &MetricsRecord,
    value: Option<f64>,
) -> Option<AlertEvent> {
    let label = || {
        series_label(
            &record.model,
            record.model_version.as_deref(),
            record.segment.as_ref(),
        )
    };
    let window_start = record.window.start_text();
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
            label(),
            rule.metric,
            value,
            rule.resolve_threshold,
            rule.op.symbol(),
            rule.threshold,
            window_start,
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
                    &record.model,
                    record.model_version.as_deref(),
                    record.segment.as_ref(),
                    &window_start,
                ),
                started_at: window_start.clone(),
                fired_at: record.window.end_text(),
            };
            let summary = format!(
                "{}: {} = {} {} {} for {} {} (window {})",
                label(),
                rule.metric,
                value,
                rule.op.symbol(),
                rule.threshold,
                series.consecutive,
                plural_windows(series.consecutive),
                window_start,
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
    record: &MetricsRecord,
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
        model: record.model.clone(),
        model_version: record.model_version.clone(),
        segment: record.segment.clone(),
        metric: rule.metric.clone(),
        op: rule.op,
        threshold: rule.threshold,
        resolve_threshold: rule.resolve_threshold,
        value,
        window: record.window,
        record_id: record.record_id.clone(),
        summary,
        fired_at: episode.fired_at.clone(),
    }
}
