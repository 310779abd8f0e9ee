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

pub mod events;

use feedback_loop_core::alerts::RuleSet;
use feedback_loop_core::engine::EngineStats;
use feedback_loop_core::output::metric_path::MetricGroup;
use feedback_loop_core::output::{for_each_metric, MetricsRecord};
use feedback_loop_core::settings::Config;

/// Labels of a model series: model, version (`""` for none), segment (`""` or `dim=value`).
const SERIES: &[&str] = &["model", "version", "segment"];

/// Every value of the `event` label of `join_events_total`.
const JOIN_EVENTS: [&str; 7] = [
    "joined",
    "expired",
    "evicted",
    "orphaned",
    "duplicate",
    "late",
    "invalid",
];

/// Every value of the `result` label of `webhook_deliveries_total`.
const WEBHOOK_RESULTS: [&str; 3] = ["delivered", "retried", "failed"];

pub struct Telemetry {
    registry: Registry,
    /// The name of every registered metric (docs/operations.md's table is checked with it).
    names: Vec<String>,
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
    pub state_restores: IntCounterVec,
    pub partials_rejected: IntCounter,
    pub partials_stale: IntCounter,
    pub paused_partitions: IntGauge,
    pub partition_pauses: IntCounter,
    // rules
    pub alert_firing: GaugeVec,
    pub alerts: IntCounterVec,
    pub retrain_triggers: IntCounterVec,
    pub estimation_fit_failures: IntCounterVec,
    pub webhook_deliveries: IntCounterVec,
    // model quality, latest window
    quality: GaugeVec,
    averaged: GaugeVec,
    per_class: GaugeVec,
    class_support: GaugeVec,
    window_end: GaugeVec,
    drift: GaugeVec,
    drifted: GaugeVec,
    estimated: GaugeVec,
    estimation_error: GaugeVec,
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
        let mut names = Vec::new();
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric;
                names.extend(
                    prometheus::core::Collector::desc(&metric)
                        .iter()
                        .map(|d| d.fq_name.clone()),
                );
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
            partials_rejected: register!(IntCounter::with_opts(opts(
                "partials_rejected_total",
                "Messages of the partials topic the finalizer could not take (scale.mode = \"partitioned\")."
            ))?),
            partials_stale: register!(IntCounter::with_opts(opts(
                "partials_stale_total",
                "Partial windows the finalizer dropped because their window had closed (a task re-sending after a restore)."
            ))?),
            paused_partitions: register!(IntGauge::with_opts(opts(
                "paused_partitions",
                "Input partitions paused now for running ahead of the others in event time (kafka.max_read_ahead)."
            ))?),
            partition_pauses: register!(IntCounter::with_opts(opts(
                "partition_pauses_total",
                "Times an input partition was paused for running ahead of the others in event time."
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
            state_restores: register!(IntCounterVec::new(
                opts(
                    "state_restores_total",
                    "Snapshots found at start, by outcome: restored (same configuration), reconfigured (restored, then rules or drift decisions changed), set_aside (a setting that shapes the state changed)."
                ),
                &["outcome"]
            )?),
            alert_firing: register!(GaugeVec::new(
                opts("alert_firing", "1 for each alert currently firing."),
                &["rule", "model", "version", "segment", "severity"]
            )?),
            alerts: register!(IntCounterVec::new(
                opts("alerts_total", "Alert events emitted, by status (firing, resolved)."),
                &["rule", "model", "status"]
            )?),
            estimation_fit_failures: register!(IntCounterVec::new(
                opts(
                    "estimation_fit_failures_total",
                    "Performance-estimation fits that failed (that version gets no estimates), by model."
                ),
                &["model"]
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
            estimated: register!(GaugeVec::new(
                opts(
                    "model_estimated",
                    "Latest closed window's estimated performance without labels (CBPE; metric: accuracy, precision, recall, f1, roc_auc; field: value, sampling_error, lower, upper, threshold_lower, threshold_upper, alert, realized, realized_sampling_error)."
                ),
                &["model", "version", "metric", "field"]
            )?),
            estimation_error: register!(GaugeVec::new(
                opts(
                    "model_estimation_error",
                    "Latest estimation check: estimated minus realized metric of the latest window whose predictions are all joined or expired (metric: accuracy, precision, recall, f1, roc_auc)."
                ),
                &["model", "version", "metric"]
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
            names,
        };
        Ok(telemetry)
    }

    /// Creates at 0 every labelled counter series whose labels the configuration already
    /// tells: input topics × dead-letter reasons, output topics, join events, rules × their
    /// models × alert status, models with a retrain rule, webhook results. A series that
    /// only appears at its first increment is invisible to `increase(…) > 0`, which then
    /// misses the first burst (the Prometheus instrumentation guide: "avoid missing
    /// metrics"). Series whose labels come from the data (versions, segments, classes) are
    /// created as they appear.
    pub fn initialise(&self, config: &Config) {
        let kafka = &config.kafka;
        for topic in [&kafka.predictions_topic, &kafka.outcomes_topic] {
            self.input_records.with_label_values(&[topic.as_str()]);
            for reason in events::REASON_CLASSES {
                self.dead_letters
                    .with_label_values(&[topic.as_str(), reason]);
            }
        }
        for topic in [
            &kafka.metrics_topic,
            &kafka.alerts_topic,
            &kafka.retrain_topic,
        ] {
            self.output_records.with_label_values(&[topic.as_str()]);
            self.output_errors.with_label_values(&[topic.as_str()]);
        }
        for event in JOIN_EVENTS {
            self.join_events.with_label_values(&[event]);
        }
        for model in config.models.iter().filter(|m| m.estimation.is_some()) {
            self.estimation_fit_failures
                .with_label_values(&[model.name.as_str()]);
        }
        if config.checkpoint.enabled {
            for outcome in events::RESTORE_OUTCOMES {
                self.state_restores.with_label_values(&[outcome]);
            }
        }
        // The configuration was validated, rules included: an error here cannot happen, and
        // would only leave these series to appear at their first event.
        if let Ok(rules) = RuleSet::new(&config.rules, &config.models) {
            for (rule, model, retrain) in rules.rule_models() {
                for status in ["firing", "resolved"] {
                    self.alerts.with_label_values(&[rule, model, status]);
                }
                if retrain {
                    self.retrain_triggers.with_label_values(&[model]);
                }
            }
        }
        if config.retrain.webhook.is_some() {
            for result in WEBHOOK_RESULTS {
                self.webhook_deliveries.with_label_values(&[result]);
            }
        }
    }

    /// The text exposition format.
    /// Every metric's full name (`feedback_loop_…`), whether it has series yet or not.
    pub fn metric_names(&self) -> &[String] {
        &self.names
    }

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
    pub(crate) fn observe_engine(
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
        // In the order of JOIN_EVENTS.
        let events = [
            (stats.joined, last.joined),
            (stats.expired_predictions, last.expired_predictions),
            (
                stats.evicted_predictions + stats.evicted_outcomes,
                last.evicted_predictions + last.evicted_outcomes,
            ),
            (stats.orphan_outcomes, last.orphan_outcomes),
            (stats.duplicates, last.duplicates),
            (stats.late, last.late),
            (stats.invalid, last.invalid),
        ];
        for (event, (now, before)) in JOIN_EVENTS.into_iter().zip(events) {
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
    pub(crate) fn dead_letter_count(&self) -> u64 {
        use prometheus::core::Collector;
        self.dead_letters
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Sets `alert_firing` to exactly the alerts firing now.
    pub(crate) fn set_firing_alerts(&self, rules: &RuleSet) {
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

    /// Updates `model_estimation_error` from an estimation check (an undefined error
    /// removes the series).
    pub(crate) fn observe_check(&self, check: &feedback_loop_core::output::EstimationCheck) {
        let version = check.model_version.as_deref().unwrap_or_default();
        for (metric, m) in check.metrics.iter() {
            let labels = [check.model.as_str(), version, metric];
            match m.error {
                Some(error) => self.estimation_error.with_label_values(&labels).set(error),
                None => {
                    let _ = self.estimation_error.remove_label_values(&labels);
                }
            }
        }
    }

    /// Updates the model gauges and counters from an emitted record: every metric of the
    /// record (see `for_each_metric`) goes to its gauge, a null one removes it.
    /// Removes every model's gauges (quality, drift, estimates, window ends, firing
    /// alerts): the finalizer moved to another instance, which exports them now. The
    /// per-model counters stay (Prometheus sums them over instances).
    pub(crate) fn forget_models(&self) {
        for gauges in [
            &self.alert_firing,
            &self.quality,
            &self.averaged,
            &self.per_class,
            &self.class_support,
            &self.window_end,
            &self.drift,
            &self.drifted,
            &self.estimated,
            &self.estimation_error,
        ] {
            gauges.reset();
        }
    }

    pub(crate) fn observe_record(&self, record: &MetricsRecord) {
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
        let (model, version, segment) = (record.model.as_str(), version.as_str(), segment.as_str());
        let series = [model, version, segment];
        self.window_end
            .with_label_values(&series)
            .set(record.window.end as f64 / 1000.0);
        self.predictions
            .with_label_values(&series)
            .inc_by(record.counts.predictions);
        self.joined
            .with_label_values(&series)
            .inc_by(record.counts.joined);
        self.expired
            .with_label_values(&series)
            .inc_by(record.counts.expired_predictions);
        let set = |gauge: &GaugeVec, labels: &[&str], value: Option<f64>| match value {
            Some(v) => gauge.with_label_values(labels).set(v),
            None => {
                let _ = gauge.remove_label_values(labels);
            }
        };
        for_each_metric(record, |path, value| {
            let leaf = path.leaf();
            match &path.group {
                MetricGroup::Counts if leaf == "label_coverage" => {
                    set(&self.quality, &[model, version, segment, leaf], value)
                }
                MetricGroup::Counts => {}
                MetricGroup::Classification | MetricGroup::Regression => {
                    set(&self.quality, &[model, version, segment, leaf], value)
                }
                MetricGroup::Average(_) => {
                    let average = path.group_name().unwrap_or_default();
                    set(
                        &self.averaged,
                        &[model, version, segment, average, leaf],
                        value,
                    )
                }
                MetricGroup::PerClass(class) if leaf == "support" => set(
                    &self.class_support,
                    &[model, version, segment, class],
                    value,
                ),
                MetricGroup::PerClass(class) => {
                    // A class's undefined value leaves its last one (as before).
                    if let Some(v) = value {
                        self.per_class
                            .with_label_values(&[model, version, segment, class, leaf])
                            .set(v);
                    }
                }
                MetricGroup::Feature(_) | MetricGroup::DriftGroup(_) => {
                    let (kind, feature) = match &path.group {
                        MetricGroup::Feature(name) => ("feature", name.as_ref()),
                        _ => (path.group_name().unwrap_or_default(), ""),
                    };
                    if leaf == "drifted" {
                        set(&self.drifted, &[model, version, kind, feature], value);
                    } else {
                        let statistic = leaf.replace('.', "_");
                        set(
                            &self.drift,
                            &[model, version, kind, feature, &statistic],
                            value,
                        );
                    }
                }
                MetricGroup::Detector(_) if leaf == "detections" => {
                    // Created at 0 so that the series exists before the first detection.
                    let detector = path.group_name().unwrap_or_default();
                    self.detections
                        .with_label_values(&[model, version, detector])
                        .inc_by(value.map_or(0, |v| v as u64));
                }
                MetricGroup::Detector(_) => {}
                MetricGroup::Estimated(_) => {
                    let metric = path.group_name().unwrap_or_default();
                    set(&self.estimated, &[model, version, metric, leaf], value)
                }
                // Leaves of the estimation check: `for_each_metric` walks metrics records
                // only (the check's error is `observe_check`'s gauge).
                MetricGroup::Check(_) => {}
            }
        });
        if let Some(c) = &record.classification {
            let labels = &c.confusion_matrix.labels;
            for (i, row) in c.confusion_matrix.matrix.iter().enumerate() {
                for (j, &n) in row.iter().enumerate() {
                    if n > 0 {
                        self.confusion
                            .with_label_values(&[
                                model,
                                version,
                                segment,
                                labels[i].as_str(),
                                labels[j].as_str(),
                            ])
                            .inc_by(n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `line_prefix` (name and labels, as rendered), if present.
    fn sample(body: &str, series: &str) -> Option<f64> {
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_with_known_labels_exist_at_zero_after_initialisation() {
        let config = crate::config::from_toml_str(
            r#"
[kafka]
predictions_topic = "p"
outcomes_topic = "o"
metrics_topic = "m"
alerts_topic = "a"
retrain_topic = "r"

[retrain.webhook]
url = "http://localhost:1/hook"

[[models]]
name = "fraud"
task = "binary"
positive_class = "1"

[[models]]
name = "eta"
task = "regression"

[[rules]]
name = "f1-drop"
model = "fraud"
metric = "classification.f1"
op = "<"
threshold = 0.8
retrain = true

[[rules]]
name = "few-pairs"
model = "*"
metric = "counts.joined"
op = "<"
threshold = 10
"#,
        )
        .unwrap();
        let telemetry = Telemetry::new().unwrap();
        let before = telemetry.render();
        assert_eq!(
            sample(
                &before,
                r#"feedback_loop_dead_letters_total{reason="invalid_json",topic="p"}"#
            ),
            None,
            "not there before initialisation"
        );
        telemetry.initialise(&config);
        let body = telemetry.render();
        let mut expected = Vec::new();
        for topic in ["p", "o"] {
            expected.push(format!(
                r#"feedback_loop_input_records_total{{topic="{topic}"}}"#
            ));
            for reason in events::REASON_CLASSES {
                expected.push(format!(
                    r#"feedback_loop_dead_letters_total{{reason="{reason}",topic="{topic}"}}"#
                ));
            }
        }
        for topic in ["m", "a", "r"] {
            expected.push(format!(
                r#"feedback_loop_output_records_total{{topic="{topic}"}}"#
            ));
            expected.push(format!(
                r#"feedback_loop_output_errors_total{{topic="{topic}"}}"#
            ));
        }
        for event in JOIN_EVENTS {
            expected.push(format!(
                r#"feedback_loop_join_events_total{{event="{event}"}}"#
            ));
        }
        for (rule, model) in [
            ("f1-drop", "fraud"),
            ("few-pairs", "fraud"),
            ("few-pairs", "eta"),
        ] {
            for status in ["firing", "resolved"] {
                expected.push(format!(
                    r#"feedback_loop_alerts_total{{model="{model}",rule="{rule}",status="{status}"}}"#
                ));
            }
        }
        expected.push(r#"feedback_loop_retrain_triggers_total{model="fraud"}"#.to_string());
        for result in WEBHOOK_RESULTS {
            expected.push(format!(
                r#"feedback_loop_webhook_deliveries_total{{result="{result}"}}"#
            ));
        }
        for series in &expected {
            assert_eq!(sample(&body, series), Some(0.0), "{series} in\n{body}");
        }
        // No retrain rule names `eta`: no trigger series for it.
        assert_eq!(
            sample(
                &body,
                r#"feedback_loop_retrain_triggers_total{model="eta"}"#
            ),
            None
        );
        assert_eq!(
            body.lines()
                .filter(|l| l.starts_with("feedback_loop_dead_letters_total{"))
                .count(),
            2 * events::REASON_CLASSES.len()
        );
    }

    #[test]
    fn join_events_are_counted_under_the_initialised_names() {
        let telemetry = Telemetry::new().unwrap();
        let stats = EngineStats {
            joined: 1,
            expired_predictions: 1,
            evicted_predictions: 1,
            orphan_outcomes: 1,
            duplicates: 1,
            late: 1,
            invalid: 1,
            ..EngineStats::default()
        };
        telemetry.observe_engine(&stats, 0, 0, 0);
        let body = telemetry.render();
        for event in JOIN_EVENTS {
            assert_eq!(
                sample(
                    &body,
                    &format!(r#"feedback_loop_join_events_total{{event="{event}"}}"#)
                ),
                Some(1.0),
                "{event}"
            );
        }
        assert_eq!(
            body.lines()
                .filter(|l| l.starts_with("feedback_loop_join_events_total{"))
                .count(),
            JOIN_EVENTS.len()
        );
    }
}
