//! What the page, the history API and the backtest report show beyond the latest window:
//! the metrics records of every series (model, version, segment), the recent alert and
//! retrain events, the alerts firing now and the recent dead letters.
//!
//! Bounded: at most `windows_per_series` records per series (the oldest go first), at most
//! [`MAX_EVENTS`] events and [`MAX_DEAD_LETTERS`] dead letters. The service keeps one in
//! its shared state (`http.history_windows`, default 1440 per series: a day of 1-minute
//! windows); `replay --report` keeps every window of the backtest.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use feedback_loop_core::alerts::events::{AlertEvent, AlertStatus, RuleEvent};
use feedback_loop_core::output::MetricsRecord;

/// Alert and retrain events kept (the most recent).
pub const MAX_EVENTS: usize = 1000;
/// Dead letters kept (the most recent).
pub const MAX_DEAD_LETTERS: usize = 100;

/// A series: one model version, unsegmented (`segment` None) or one segment value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub model: String,
    pub version: Option<String>,
    /// `(dimension, value)`.
    pub segment: Option<(String, String)>,
}

impl SeriesKey {
    fn of(record: &MetricsRecord) -> SeriesKey {
        SeriesKey {
            model: record.model.clone(),
            version: record.model_version.clone(),
            segment: record
                .segment
                .as_ref()
                .and_then(|s| s.iter().next())
                .map(|(d, v)| (d.clone(), v.clone())),
        }
    }
}

/// A dead letter as the status API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterNote {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    /// Wall-clock time it was dead-lettered (RFC 3339).
    pub at: String,
}

#[derive(Debug)]
pub struct History {
    windows_per_series: usize,
    series: BTreeMap<SeriesKey, VecDeque<MetricsRecord>>,
    events: VecDeque<RuleEvent>,
    /// The firing event of every episode not yet resolved, by alert id.
    firing: BTreeMap<String, AlertEvent>,
    dead_letters: VecDeque<DeadLetterNote>,
}

impl History {
    /// A history keeping at most `windows_per_series` records per series.
    pub fn new(windows_per_series: usize) -> History {
        History {
            windows_per_series: windows_per_series.max(1),
            series: BTreeMap::new(),
            events: VecDeque::new(),
            firing: BTreeMap::new(),
            dead_letters: VecDeque::new(),
        }
    }

    /// Adds a closed window's record. A record for a window the series already holds (a
    /// re-publication after a restore) replaces it.
    pub fn record(&mut self, record: &MetricsRecord) {
        let windows = self.series.entry(SeriesKey::of(record)).or_default();
        if let Some(same) = windows.iter_mut().rev().find(|r| r.window == record.window) {
            *same = record.clone();
            return;
        }
        // Windows close in order per series; keep them sorted even if one does not.
        let at = windows.partition_point(|r| r.window.start <= record.window.start);
        windows.insert(at, record.clone());
        while windows.len() > self.windows_per_series {
            windows.pop_front();
        }
    }

    pub fn event(&mut self, event: &RuleEvent) {
        if let RuleEvent::Alert(alert) = event {
            match alert.status {
                AlertStatus::Firing => {
                    self.firing.insert(alert.alert_id.clone(), alert.clone());
                }
                AlertStatus::Resolved => {
                    self.firing.remove(&alert.alert_id);
                }
            }
        }
        self.events.push_back(event.clone());
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }

    pub fn dead_letter(&mut self, note: DeadLetterNote) {
        self.dead_letters.push_back(note);
        while self.dead_letters.len() > MAX_DEAD_LETTERS {
            self.dead_letters.pop_front();
        }
    }

    /// The newest `limit` records of a series, oldest first.
    pub fn windows(&self, key: &SeriesKey, limit: usize) -> Vec<&MetricsRecord> {
        match self.series.get(key) {
            Some(windows) => windows
                .iter()
                .skip(windows.len().saturating_sub(limit))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Every series, in key order.
    pub fn series(&self) -> impl Iterator<Item = (&SeriesKey, &VecDeque<MetricsRecord>)> {
        self.series.iter()
    }

    /// The latest record of every unsegmented series.
    pub fn latest(&self) -> Vec<&MetricsRecord> {
        self.series
            .iter()
            .filter(|(key, _)| key.segment.is_none())
            .filter_map(|(_, windows)| windows.back())
            .collect()
    }

    /// Model → segment dimension → the values seen.
    pub fn segments(&self) -> BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> {
        let mut segments: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
        for key in self.series.keys() {
            if let Some((dimension, value)) = &key.segment {
                segments
                    .entry(key.model.as_str())
                    .or_default()
                    .entry(dimension.as_str())
                    .or_default()
                    .insert(value.as_str());
            }
        }
        segments
    }

    /// The recent events, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &RuleEvent> {
        self.events.iter()
    }

    /// The firing event of each episode still firing.
    pub fn firing(&self) -> impl Iterator<Item = &AlertEvent> {
        self.firing.values()
    }

    /// The recent dead letters, oldest first.
    pub fn dead_letters(&self) -> impl Iterator<Item = &DeadLetterNote> {
        self.dead_letters.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        model: &str,
        version: Option<&str>,
        segment: Option<(&str, &str)>,
        start: i64,
    ) -> MetricsRecord {
        let json = serde_json::json!({
            "schema": "feedback-loop.metrics.v1",
            "record_id": format!("{model}/{start}"),
            "model": model,
            "model_version": version,
            "segment": segment.map(|(d, v)| serde_json::json!({ d: v })),
            "window": {
                "start": feedback_loop_core::output::rfc3339(start),
                "end": feedback_loop_core::output::rfc3339(start + 60_000),
            },
            "counts": {"predictions": 1, "outcomes": 1, "joined": 1, "expired_predictions": 0,
                       "orphan_outcomes": 0, "duplicates": 0, "late": 0, "invalid": 0,
                       "label_coverage": 1.0},
        });
        let mut json = json;
        if segment.is_none() {
            json.as_object_mut().map(|o| o.remove("segment"));
        }
        serde_json::from_value(json).expect("a metrics record")
    }

    #[test]
    fn keeps_the_newest_windows_per_series_in_order() {
        let mut history = History::new(3);
        for i in 0..5 {
            history.record(&record("fraud", Some("1"), None, i * 60_000));
            history.record(&record(
                "fraud",
                Some("1"),
                Some(("channel", "web")),
                i * 60_000,
            ));
        }
        // A re-published window replaces its earlier copy.
        history.record(&record("fraud", Some("1"), None, 4 * 60_000));
        let key = SeriesKey {
            model: "fraud".into(),
            version: Some("1".into()),
            segment: None,
        };
        let starts: Vec<i64> = history
            .windows(&key, 10)
            .iter()
            .map(|r| r.window.start)
            .collect();
        assert_eq!(starts, vec![120_000, 180_000, 240_000]);
        let newest: Vec<i64> = history
            .windows(&key, 2)
            .iter()
            .map(|r| r.window.start)
            .collect();
        assert_eq!(newest, vec![180_000, 240_000]);
        assert_eq!(history.latest().len(), 1);
        assert_eq!(
            history.segments()["fraud"]["channel"]
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec!["web"]
        );
    }
}
