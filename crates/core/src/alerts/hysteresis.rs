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
//!
//! A rule on an estimation-check path (`estimation_check.metrics.…`) runs the same machine
//! over the checks instead of the metrics records (`Subject`): the sample size is the
//! check's `labeled` count, the series has no segment, and its alert ids are
//! `<rule>/<check record_id>` of the firing check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::events::{
    alert_id, plural_windows, series_label, AlertEvent, AlertStatus, ALERT_SCHEMA,
};
use super::CompiledRule;
use crate::output::{EstimationCheck, MetricsRecord, WindowBounds};

/// What a rule is evaluated on: a window's metrics record, or a window's estimation check
/// (emitted later, once the window's labels are in). A rule reads one kind only: that of its
/// metric path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    Metrics(&'a MetricsRecord),
    Check(&'a EstimationCheck),
}

impl<'a> Subject<'a> {
    pub(crate) fn model(self) -> &'a str {
        match self {
            Subject::Metrics(r) => &r.model,
            Subject::Check(c) => &c.model,
        }
    }

    fn model_version(self) -> Option<&'a str> {
        match self {
            Subject::Metrics(r) => r.model_version.as_deref(),
            Subject::Check(c) => c.model_version.as_deref(),
        }
    }

    fn segment(self) -> Option<&'a BTreeMap<String, String>> {
        match self {
            Subject::Metrics(r) => r.segment.as_ref(),
            Subject::Check(_) => None,
        }
    }

    pub(crate) fn window(self) -> WindowBounds {
        match self {
            Subject::Metrics(r) => r.window,
            Subject::Check(c) => c.window,
        }
    }

    fn record_id(self) -> &'a str {
        match self {
            Subject::Metrics(r) => &r.record_id,
            Subject::Check(c) => &c.record_id,
        }
    }

    /// What `min_samples` is compared with: `counts.joined`, or the check's `labeled`.
    fn samples(self) -> u64 {
        match self {
            Subject::Metrics(r) => r.counts.joined,
            Subject::Check(c) => c.labeled,
        }
    }

    fn is_check(self) -> bool {
        matches!(self, Subject::Check(_))
    }
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

/// Key of a series within a rule: `[model, version, segment]` as JSON, unambiguous.
fn series_key(subject: Subject<'_>) -> String {
    serde_json::to_string(&(subject.model(), subject.model_version(), subject.segment()))
        .unwrap_or_default()
}

/// Advances the state machine of one series by one record; returns the alert event, if
/// any. A series that is neither firing nor in a streak is dropped, so that the
/// checkpointed state holds only series that matter.
pub(crate) fn step(
    rule: &CompiledRule,
    series_of_rule: &mut BTreeMap<String, SeriesState>,
    subject: Subject<'_>,
) -> Option<AlertEvent> {
    let path = rule.models.get(subject.model())?;
    if path.is_check() != subject.is_check() || rule.segment.as_ref() != subject.segment() {
        return None;
    }
    if subject.samples() < rule.min_samples {
        return None; // muted: no state change at all
    }
    let value = match subject {
        Subject::Metrics(record) => path.value(record),
        Subject::Check(check) => path.check_value(check),
    };
    let key = series_key(subject);
    let series = series_of_rule
        .entry(key.clone())
        .or_insert_with(|| SeriesState {
            model: subject.model().to_string(),
            model_version: subject.model_version().map(str::to_string),
            segment: subject.segment().cloned(),
            consecutive: 0,
            firing: None,
        });
    let alert = advance(rule, series, subject, value);
    if series.firing.is_none() && series.consecutive == 0 {
        series_of_rule.remove(&key);
    }
    alert
}

fn advance(
    rule: &CompiledRule,
    series: &mut SeriesState,
    subject: Subject<'_>,
    value: Option<f64>,
) -> Option<AlertEvent> {
    let label = || series_label(subject.model(), subject.model_version(), subject.segment());
    let window_start = subject.window().start_text();
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
        let alert = alert_event(
            rule,
            subject,
            AlertStatus::Resolved,
            value,
            episode,
            summary,
        );
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
                alert_id: match subject {
                    Subject::Metrics(record) => alert_id(
                        &rule.name,
                        &record.model,
                        record.model_version.as_deref(),
                        record.segment.as_ref(),
                        &window_start,
                    ),
                    // The check's record id ends in `/estimation-check`: distinct from
                    // any metrics alert's id.
                    Subject::Check(check) => format!("{}/{}", rule.name, check.record_id),
                },
                started_at: window_start.clone(),
                fired_at: subject.window().end_text(),
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
            let alert = alert_event(rule, subject, AlertStatus::Firing, value, &episode, summary);
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
    subject: Subject<'_>,
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
        model: subject.model().to_string(),
        model_version: subject.model_version().map(str::to_string),
        segment: subject.segment().cloned(),
        metric: rule.metric.clone(),
        op: rule.op,
        threshold: rule.threshold,
        resolve_threshold: rule.resolve_threshold,
        value,
        window: subject.window(),
        record_id: subject.record_id().to_string(),
        summary,
        fired_at: episode.fired_at.clone(),
    }
}
