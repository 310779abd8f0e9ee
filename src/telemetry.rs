//! The Prometheus side: every metric the service exposes on `/metrics`, in one registry.
//!
//! Two kinds: pipeline health (records in, dead letters, pending joins, lag, latency) updated
//! as the service works, and model quality, updated from each emitted metrics record —
//! gauges hold the latest closed window, counters accumulate the windows' counts so that
//! PromQL can rebuild any window with `increase()`. Names follow Prometheus conventions
//! (`_total` counters, base units, `_ratio` for 0..1 ratios); see docs/operations.md.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use prometheus::{GaugeVec, HistogramVec};

use crate::engine::EngineStats;
use crate::output::MetricsRecord;

/// Labels of a model series: model, version (`""` for none), segment (`""` or `dim=value`).
const SERIES: &[&str] = &["model", "version", "segment"];

pub struct Telemetry {
    registry: Registry,
    // pipeline
    pub input_records: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub dead_letter_failures: IntCounter,
    pub output_records: IntCounterVec,
    pub output_errors: IntCounterVec,
    pub join_events: IntCounterVec,
    pub segment_overflows: IntCounter,
    pub pending_predictions: IntGauge,
    pub pending_outcomes: IntGauge,
    pub open_windows: IntGauge,
    pub windows_emitted: IntCounter,
    pub watermark_lag: prometheus::Gauge,
    pub consumer_lag: IntGaugeVec,
    pub processing_seconds: Histogram,
    pub ready: IntGauge,
    pub checkpoints: IntCounter,
    pub checkpoint_failures: IntCounter,
    pub checkpoint_bytes: IntGauge,
    pub checkpoint_seconds: Histogram,
    // rules
    pub alert_firing: GaugeVec,
    pub alerts: IntCounterVec,
    pub retrain_triggers: IntCounterVec,
    pub webhook_deliveries: IntCounterVec,
    // model quality, latest window
    quality: GaugeVec,
    averaged: GaugeVec,
    per_class: GaugeVec,
    class_support: GaugeVec,
    window_end: GaugeVec,
    drift: GaugeVec,
    drifted: GaugeVec,
    detections: IntCounterVec,
    // model quality, counters
    predictions: IntCounterVec,
    joined: IntCounterVec,
    expired: IntCounterVec,
    confusion: IntCounterVec,
    last_stats: std::sync::Mutex<EngineStats>,
    _histograms: Vec<HistogramVec>,
}

impl Telemetry {
    pub fn new() -> Result<Telemetry, prometheus::Error> {
        let registry = Registry::new();
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric;
                registry.register(Box::new(metric.clone()))?;
                metric
            }};
        }
        let opts = |name: &str, help: &str| Opts::new(format!("feedback_loop_{name}"), help);
        let telemetry = Telemetry {
            input_records: register!(IntCounterVec::new(
                opts("input_records_total", "Messages consumed, by topic."),
                &["topic"]
            )?),
            dead_letters: register!(IntCounterVec::new(
                opts("dead_letters_total",
                    "Messages sent to the dead-letter topic, by source topic and reason class."
                ),
                &["topic", "reason"]
            )?),
            dead_letter_failures: register!(IntCounter::with_opts(opts(
                "dead_letter_failures_total",
                "Dead-letter produce attempts that failed (each is retried)."
            ))?),
            output_records: register!(IntCounterVec::new(
                opts("output_records_total", "Records produced, by topic."),
                &["topic"]
            )?),
            output_errors: register!(IntCounterVec::new(
                opts("output_errors_total", "Records that could not be produced, by topic."),
                &["topic"]
            )?),
            join_events: register!(IntCounterVec::new(
                opts(
                    "join_events_total",
                    "What became of input records: joined, expired, evicted, orphaned, duplicate, late, invalid."
                ),
                &["event"]
            )?),
            segment_overflows: register!(IntCounter::with_opts(opts(
                "segment_overflows_total",
                "Segment values beyond limits.max_segment_values, counted under __other__."
            ))?),
            pending_predictions: register!(IntGauge::with_opts(opts(
                "pending_predictions",
                "Predictions waiting in the join store for their outcome."
            ))?),
            pending_outcomes: register!(IntGauge::with_opts(opts(
                "pending_outcomes",
                "Outcomes waiting in the join store for late predictions."
            ))?),
            open_windows: register!(IntGauge::with_opts(opts("open_windows", "Windows not yet closed."))?),
            windows_emitted: register!(IntCounter::with_opts(opts(
                "windows_emitted_total",
                "Windows closed and published."
            ))?),
            watermark_lag: register!(prometheus::Gauge::with_opts(opts(
                "watermark_lag_seconds",
                "Wall clock minus the event-time watermark."
            ))?),
            consumer_lag: register!(IntGaugeVec::new(
                opts("consumer_lag_messages", "Messages behind the partition's end, per input partition."),
                &["topic", "partition"]
            )?),
            processing_seconds: register!(Histogram::with_opts(
                HistogramOpts::new(
                    "feedback_loop_processing_seconds",
                    "Time to handle one input message (decode, join, aggregate, emit; a batch's decoding shared by its messages)."
                )
                .buckets(vec![1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1])
            )?),
            ready: register!(IntGauge::with_opts(opts(
                "ready",
                "1 when partitions are assigned and the consumer runs."
            ))?),
            checkpoints: register!(IntCounter::with_opts(opts(
                "checkpoints_total",
                "Snapshots written to the state topic."
            ))?),
            checkpoint_failures: register!(IntCounter::with_opts(opts(
                "checkpoint_failures_total",
                "Snapshots that could not be written (offsets were not committed)."
            ))?),
            checkpoint_bytes: register!(IntGauge::with_opts(opts(
                "checkpoint_size_bytes",
                "Size of the latest snapshot."
            ))?),
            checkpoint_seconds: register!(Histogram::with_opts(
                HistogramOpts::new(
                    "feedback_loop_checkpoint_duration_seconds",
                    "Time to write a snapshot (encode, produce, acknowledge)."
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0])
            )?),
            alert_firing: register!(GaugeVec::new(
                opts("alert_firing", "1 for each alert currently firing."),
                &["rule", "model", "version", "segment", "severity"]
            )?),
            alerts: register!(IntCounterVec::new(
                opts("alerts_total", "Alert events emitted, by status (firing, resolved)."),
                &["rule", "model", "status"]
            )?),
            retrain_triggers: register!(IntCounterVec::new(
                opts("retrain_triggers_total", "Retrain triggers emitted."),
                &["model"]
            )?),
            webhook_deliveries: register!(IntCounterVec::new(
                opts("webhook_deliveries_total", "Retrain webhook attempts: delivered, retried, failed (gave up)."),
                &["result"]
            )?),
            quality: register!(GaugeVec::new(
                opts("model_quality", "Latest closed window's value of a quality metric (accuracy, precision, recall, f1, roc_auc, log_loss, brier, mae, rmse, mape, r2, label_coverage)."),
                &["model", "version", "segment", "metric"]
            )?),
            averaged: register!(GaugeVec::new(
                opts("model_averaged_quality", "Latest closed window's micro, macro and weighted precision, recall and F1."),
                &["model", "version", "segment", "average", "metric"]
            )?),
            per_class: register!(GaugeVec::new(
                opts("model_class_quality", "Latest closed window's per-class precision, recall and F1."),
                &["model", "version", "segment", "class", "metric"]
            )?),
            class_support: register!(GaugeVec::new(
                opts("model_class_support", "Latest closed window's number of actuals per class."),
                &["model", "version", "segment", "class"]
            )?),
            window_end: register!(GaugeVec::new(
                opts("model_window_end_timestamp_seconds", "End of the latest closed window (event time)."),
                SERIES
            )?),
            drift: register!(GaugeVec::new(
                opts(
                    "model_drift",
                    "Latest closed window's drift statistic per variable (kind: feature, prediction, score, label; statistic: psi, js, wasserstein, ks_statistic, ks_p_value, chi_square_statistic, chi_square_p_value)."
                ),
                &["model", "version", "kind", "feature", "statistic"]
            )?),
            drifted: register!(GaugeVec::new(
                opts("model_drifted", "1 when the latest closed window's variable is flagged as drifted."),
                &["model", "version", "kind", "feature"]
            )?),
            detections: register!(IntCounterVec::new(
                opts("model_detector_detections_total", "Detections of the streaming detectors (adwin, ddm, page_hinkley) on the error stream."),
                &["model", "version", "detector"]
            )?),
            predictions: register!(IntCounterVec::new(
                opts("model_predictions_total", "Predictions, counted as their windows close."),
                SERIES
            )?),
            joined: register!(IntCounterVec::new(
                opts("model_joined_pairs_total", "Joined prediction/outcome pairs, counted as their windows close."),
                SERIES
            )?),
            expired: register!(IntCounterVec::new(
                opts("model_expired_predictions_total", "Predictions that got no outcome in time."),
                SERIES
            )?),
            confusion: register!(IntCounterVec::new(
                opts("model_confusion_matrix_total", "Joined pairs by actual and predicted class."),
                &["model", "version", "segment", "actual", "predicted"]
            )?),
            last_stats: std::sync::Mutex::new(EngineStats::default()),
            _histograms: Vec::new(),
            registry,
        };
        Ok(telemetry)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Adds the engine's totals since the last call to the `join_events_total` counters.
    pub fn observe_engine(
        &self,
        stats: &EngineStats,
        pending_predictions: usize,
        pending_outcomes: usize,
        open_windows: usize,
    ) {
        self.pending_predictions.set(pending_predictions as i64);
        self.pending_outcomes.set(pending_outcomes as i64);
        self.open_windows.set(open_windows as i64);
        let Ok(mut last) = self.last_stats.lock() else {
            return;
        };
        let events = [
            ("joined", stats.joined, last.joined),
            (
                "expired",
                stats.expired_predictions,
                last.expired_predictions,
            ),
            (
                "evicted",
                stats.evicted_predictions + stats.evicted_outcomes,
                last.evicted_predictions + last.evicted_outcomes,
            ),
            ("orphaned", stats.orphan_outcomes, last.orphan_outcomes),
            ("duplicate", stats.duplicates, last.duplicates),
            ("late", stats.late, last.late),
            ("invalid", stats.invalid, last.invalid),
        ];
        for (event, now, before) in events {
            if now > before {
                self.join_events
                    .with_label_values(&[event])
                    .inc_by(now - before);
            }
        }
        if stats.segment_overflows > last.segment_overflows {
            self.segment_overflows
                .inc_by(stats.segment_overflows - last.segment_overflows);
        }
        if stats.windows_closed > last.windows_closed {
            self.windows_emitted
                .inc_by(stats.windows_closed - last.windows_closed);
        }
        *last = stats.clone();
    }

    /// Dead letters so far, over all topics and reasons.
    pub fn dead_letter_count(&self) -> u64 {
        use prometheus::core::Collector;
        self.dead_letters
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Counts a rule event.
    pub fn observe_event(&self, event: &crate::rules::RuleEvent) {
        match event {
            crate::rules::RuleEvent::Alert(alert) => {
                let status = match alert.status {
                    crate::rules::AlertStatus::Firing => "firing",
                    crate::rules::AlertStatus::Resolved => "resolved",
                };
                self.alerts
                    .with_label_values(&[alert.rule.as_str(), alert.model.as_str(), status])
                    .inc();
            }
            crate::rules::RuleEvent::Retrain(trigger) => {
                self.retrain_triggers
                    .with_label_values(&[trigger.model.as_str()])
                    .inc();
            }
        }
    }

    /// Sets `alert_firing` to exactly the alerts firing now.
    pub fn set_firing_alerts(&self, rules: &crate::rules::RuleSet) {
        self.alert_firing.reset();
        for (rule, model, version, segment, severity) in rules.firing_alerts() {
            let segment = segment
                .map(|s| {
                    s.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            self.alert_firing
                .with_label_values(&[
                    rule,
                    model,
                    version.unwrap_or(""),
                    segment.as_str(),
                    severity,
                ])
                .set(1.0);
        }
    }

    /// Updates the model gauges and counters from an emitted record.
    pub fn observe_record(&self, record: &MetricsRecord) {
        let version = record.model_version.clone().unwrap_or_default();
        let segment = record
            .segment
            .as_ref()
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let series = [record.model.as_str(), version.as_str(), segment.as_str()];
        let set = |metric: &str, value: Option<f64>| {
            let labels = [series[0], series[1], series[2], metric];
            match value {
                Some(v) if v.is_finite() => self.quality.with_label_values(&labels).set(v),
                _ => {
                    let _ = self.quality.remove_label_values(&labels);
                }
            }
        };
        if let Ok(end) = chrono::DateTime::parse_from_rfc3339(&record.window.end) {
            self.window_end
                .with_label_values(&series)
                .set(end.timestamp_millis() as f64 / 1000.0);
        }
        set("label_coverage", record.counts.label_coverage);
        self.predictions
            .with_label_values(&series)
            .inc_by(record.counts.predictions);
        self.joined
            .with_label_values(&series)
            .inc_by(record.counts.joined);
        self.expired
            .with_label_values(&series)
            .inc_by(record.counts.expired_predictions);
        if let Some(c) = &record.classification {
            for (metric, value) in [
                ("accuracy", c.accuracy),
                ("precision", c.precision),
                ("recall", c.recall),
                ("f1", c.f1),
                ("roc_auc", c.roc_auc),
                ("log_loss", c.log_loss),
                ("brier", c.brier),
            ] {
                set(metric, value);
            }
            for (average, prf) in [
                ("micro", &c.averages.micro),
                ("macro", &c.averages.macro_),
                ("weighted", &c.averages.weighted),
            ] {
                for (metric, value) in [
                    ("precision", prf.precision),
                    ("recall", prf.recall),
                    ("f1", prf.f1),
                ] {
                    let labels = [series[0], series[1], series[2], average, metric];
                    match value {
                        Some(v) => self.averaged.with_label_values(&labels).set(v),
                        None => {
                            let _ = self.averaged.remove_label_values(&labels);
                        }
                    }
                }
            }
            for (class, m) in &c.per_class {
                for (metric, value) in [
                    ("precision", m.precision),
                    ("recall", m.recall),
                    ("f1", m.f1),
                ] {
                    if let Some(v) = value {
                        self.per_class
                            .with_label_values(&[
                                series[0],
                                series[1],
                                series[2],
                                class.as_str(),
                                metric,
                            ])
                            .set(v);
                    }
                }
                self.class_support
                    .with_label_values(&[series[0], series[1], series[2], class.as_str()])
                    .set(m.support as f64);
            }
            let labels = &c.confusion_matrix.labels;
            for (i, row) in c.confusion_matrix.matrix.iter().enumerate() {
                for (j, &n) in row.iter().enumerate() {
                    if n > 0 {
                        self.confusion
                            .with_label_values(&[
                                series[0],
                                series[1],
                                series[2],
                                labels[i].as_str(),
                                labels[j].as_str(),
                            ])
                            .inc_by(n);
                    }
                }
            }
        }
        if let Some(drift) = &record.drift {
            let mut variables: Vec<(&str, &str, &crate::output::DriftValue)> = Vec::new();
            for (name, value) in drift.features.iter().flatten() {
                if let Some(value) = value {
                    variables.push(("feature", name.as_str(), value));
                }
            }
            for (kind, value) in [
                ("prediction", &drift.prediction),
                ("score", &drift.score),
                ("label", &drift.label),
            ] {
                if let Some(value) = value {
                    variables.push((kind, "", value));
                }
            }
            for (kind, feature, value) in variables {
                let statistics: Vec<(&str, Option<f64>)>;
                let drifted;
                match value {
                    crate::output::DriftValue::Numeric(n) => {
                        statistics = vec![
                            ("psi", n.psi),
                            ("js", n.js),
                            ("wasserstein", n.wasserstein),
                            ("ks_statistic", n.ks.statistic),
                            ("ks_p_value", n.ks.p_value),
                        ];
                        drifted = n.drifted;
                    }
                    crate::output::DriftValue::Categorical(c) => {
                        statistics = vec![
                            ("psi", c.psi),
                            ("js", c.js),
                            ("chi_square_statistic", c.chi_square.statistic),
                            ("chi_square_p_value", c.chi_square.p_value),
                        ];
                        drifted = c.drifted;
                    }
                }
                for (statistic, v) in statistics {
                    let labels = [series[0], series[1], kind, feature, statistic];
                    match v {
                        Some(v) if v.is_finite() => self.drift.with_label_values(&labels).set(v),
                        _ => {
                            let _ = self.drift.remove_label_values(&labels);
                        }
                    }
                }
                self.drifted
                    .with_label_values(&[series[0], series[1], kind, feature])
                    .set(if drifted { 1.0 } else { 0.0 });
            }
        }
        if let Some(detectors) = &record.detectors {
            for (name, detector) in [
                ("adwin", &detectors.adwin),
                ("ddm", &detectors.ddm),
                ("page_hinkley", &detectors.page_hinkley),
            ] {
                if let Some(d) = detector {
                    // Created at 0 so that the series exists before the first detection.
                    self.detections
                        .with_label_values(&[series[0], series[1], name])
                        .inc_by(d.detections);
                }
            }
        }
        if let Some(r) = &record.regression {
            for (metric, value) in [
                ("mae", r.mae),
                ("rmse", r.rmse),
                ("mape", r.mape),
                ("r2", r.r2),
            ] {
                set(metric, value);
            }
        }
    }
}
