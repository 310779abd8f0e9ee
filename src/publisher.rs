//! Shipping what the core emitted: metrics records to `model-metrics`, alert events to
//! `model-alerts`, retrain triggers to `model-retrain-triggers` (and the webhook), each
//! reflected in the Prometheus gauges and in the state the HTTP API serves.

use std::sync::Arc;

use feedback_loop_core::alerts::{RuleEvent, RuleSet};
use feedback_loop_core::monitor::Emitted;
use feedback_loop_core::settings::KafkaConfig;

use crate::kafka::producer::OutputProducer;
use crate::shared_state::SharedState;
use crate::telemetry::events::{AlertEmitted, EstimationFitFailed, RetrainTriggered};
use crate::webhook::RetrainWebhook;

pub struct Publisher {
    output: OutputProducer,
    webhook: Option<RetrainWebhook>,
    metrics_topic: String,
    alerts_topic: String,
    retrain_topic: String,
    state: Arc<SharedState>,
}

impl Publisher {
    pub fn new(
        output: OutputProducer,
        webhook: Option<RetrainWebhook>,
        kafka: &KafkaConfig,
        state: Arc<SharedState>,
    ) -> Publisher {
        Publisher {
            output,
            webhook,
            metrics_topic: kafka.metrics_topic.clone(),
            alerts_topic: kafka.alerts_topic.clone(),
            retrain_topic: kafka.retrain_topic.clone(),
            state,
        }
    }

    pub fn output(&self) -> &OutputProducer {
        &self.output
    }

    /// Publishes one watermark step's output: the rule events, then the metrics records and
    /// estimation checks (both to the metrics topic, keyed by model).
    /// `rules` is the rule state after the step (for the `alert_firing` gauge).
    pub(crate) fn publish(&self, emitted: Emitted, rules: &RuleSet) {
        let telemetry = &self.state.telemetry;
        for failure in &emitted.fit_failures {
            telemetry.emit(EstimationFitFailed { failure });
        }
        for event in &emitted.events {
            let json = match event.to_json() {
                Ok(json) => json,
                Err(error) => {
                    tracing::error!(%error, "could not serialize a rule event");
                    continue;
                }
            };
            let topic = match event {
                RuleEvent::Alert(alert) => {
                    telemetry.emit(AlertEmitted { alert });
                    &self.alerts_topic
                }
                RuleEvent::Retrain(trigger) => {
                    telemetry.emit(RetrainTriggered { trigger });
                    if let Some(webhook) = &self.webhook {
                        webhook.send(trigger.trigger_id.clone(), json.clone());
                    }
                    &self.retrain_topic
                }
            };
            self.output.send(topic, event.kafka_key().to_string(), json);
        }
        if !emitted.events.is_empty() {
            telemetry.set_firing_alerts(rules);
        }
        if let Ok(mut history) = self.state.history.lock() {
            for event in &emitted.events {
                history.event(event);
            }
            for record in &emitted.metrics {
                history.record(record);
            }
        }
        for check in &emitted.checks {
            telemetry.observe_check(check);
            match serde_json::to_string(check) {
                Ok(json) => self
                    .output
                    .send(&self.metrics_topic, check.model.clone(), json),
                Err(error) => {
                    tracing::error!(%error, record = %check.record_id, "could not serialize")
                }
            }
        }
        for record in emitted.metrics {
            telemetry.observe_record(&record);
            match serde_json::to_string(&record) {
                Ok(json) => self
                    .output
                    .send(&self.metrics_topic, record.model.clone(), json),
                Err(error) => {
                    tracing::error!(%error, record = %record.record_id, "could not serialize")
                }
            }
            if record.segment.is_none() {
                if let Ok(mut latest) = self.state.latest.lock() {
                    let key = format!(
                        "{}/{}",
                        record.model,
                        record.model_version.as_deref().unwrap_or("-")
                    );
                    latest.insert(key, record);
                }
            }
        }
    }
}
