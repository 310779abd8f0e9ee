//! Typed internal events, as in Vector's `emit!`: each event is one struct, and emitting it
//! writes its log line and updates its metric together, so the two cannot drift apart.
//! Everything the service reports about its own work goes through here.

use feedback_loop_core::alerts::{AlertEvent, AlertStatus, RetrainTrigger};
use feedback_loop_core::monitor::Reconfigured;

use super::Telemetry;

/// An event the service reports: one log line and one metric update.
pub trait InternalEvent {
    fn emit(self, telemetry: &Telemetry);
}

impl Telemetry {
    /// Reports `event`.
    pub(crate) fn emit(&self, event: impl InternalEvent) {
        event.emit(self);
    }
}

/// Every value of the `reason` label of the dead-letter counter (what [`reason_class`]
/// returns), so that each series can exist at 0 from the start.
pub(crate) const REASON_CLASSES: [&str; 7] = [
    "invalid_json",
    "missing_field",
    "unknown_model",
    "too_large",
    "timestamp",
    "limit",
    "invalid_value",
];

/// A small fixed set of reason classes, for the `reason` label of the dead-letter counter.
pub(crate) fn reason_class(reason: &str) -> &'static str {
    if reason.starts_with("invalid JSON") {
        "invalid_json"
    } else if reason.starts_with("missing field") {
        "missing_field"
    } else if reason.starts_with("unknown model") {
        "unknown_model"
    } else if reason.contains("max_message_bytes") {
        "too_large"
    } else if reason.contains("timestamp") {
        "timestamp"
    } else if reason.contains("limits.") {
        "limit"
    } else {
        "invalid_value"
    }
}

/// An input message went to the dead-letter topic.
pub struct DeadLettered<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub reason: &'a str,
}

impl InternalEvent for DeadLettered<'_> {
    fn emit(self, telemetry: &Telemetry) {
        tracing::debug!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            reason = self.reason,
            "dead-lettered"
        );
        telemetry
            .dead_letters
            .with_label_values(&[self.topic, reason_class(self.reason)])
            .inc();
    }
}

/// A dead letter could not be produced (it is retried).
pub struct DeadLetterRetry<'a> {
    pub error: &'a dyn std::fmt::Display,
    pub topic: &'a str,
    pub source_topic: &'a str,
    pub offset: i64,
}

impl InternalEvent for DeadLetterRetry<'_> {
    fn emit(self, telemetry: &Telemetry) {
        tracing::warn!(error = %self.error, topic = self.topic, source = self.source_topic,
            offset = self.offset, "dead letter not delivered, retrying");
        telemetry.dead_letter_failures.inc();
    }
}

/// An output record (metrics, alert, trigger) was delivered.
pub struct OutputDelivered<'a> {
    pub topic: &'a str,
}

impl InternalEvent for OutputDelivered<'_> {
    fn emit(self, telemetry: &Telemetry) {
        tracing::trace!(topic = self.topic, "output record delivered");
        telemetry
            .output_records
            .with_label_values(&[self.topic])
            .inc();
    }
}

/// An output record could not be produced.
pub struct OutputFailed<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for OutputFailed<'_> {
    fn emit(self, telemetry: &Telemetry) {
        tracing::error!(topic = self.topic, key = self.key, error = %self.error,
            "could not produce an output record");
        telemetry
            .output_errors
            .with_label_values(&[self.topic])
            .inc();
    }
}

/// A snapshot was stored in the state topic.
pub struct CheckpointWritten {
    pub snapshot: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub pending_predictions: usize,
    pub positions: usize,
}

impl InternalEvent for CheckpointWritten {
    fn emit(self, telemetry: &Telemetry) {
        tracing::debug!(
            snapshot = self.snapshot,
            bytes = self.bytes,
            pending = self.pending_predictions,
            positions = self.positions,
            "checkpoint written"
        );
        telemetry.checkpoints.inc();
        telemetry.checkpoint_bytes.set(self.bytes as i64);
        telemetry.checkpoint_seconds.observe(self.seconds);
    }
}

/// A snapshot could not be stored; offsets were not committed.
pub struct CheckpointFailed<'a> {
    pub error: &'a anyhow::Error,
}

impl InternalEvent for CheckpointFailed<'_> {
    fn emit(self, telemetry: &Telemetry) {
        tracing::error!(error = %format!("{:#}", self.error),
            "checkpoint failed; offsets not committed");
        telemetry.checkpoint_failures.inc();
    }
}

/// Every value of the `outcome` label of `state_restores_total`.
pub(crate) const RESTORE_OUTCOMES: [&str; 3] = ["restored", "reconfigured", "set_aside"];

/// The snapshot found at start was restored. `changes`: the configuration differs from
/// the snapshot's in settings that do not shape the state (rules, drift decisions), which
/// now apply to the restored state.
pub struct StateRestored<'a> {
    pub snapshot: u64,
    pub pending_predictions: usize,
    pub open_windows: usize,
    pub changes: Option<&'a Reconfigured>,
}

impl InternalEvent for StateRestored<'_> {
    fn emit(self, telemetry: &Telemetry) {
        let outcome = match self.changes {
            None => {
                tracing::info!(
                    snapshot = self.snapshot,
                    pending = self.pending_predictions,
                    open_windows = self.open_windows,
                    "restored the state from the latest checkpoint"
                );
                "restored"
            }
            Some(changes) => {
                tracing::info!(
                    snapshot = self.snapshot,
                    pending = self.pending_predictions,
                    open_windows = self.open_windows,
                    "restored the state from the latest checkpoint under a changed \
                     configuration; {changes}"
                );
                "reconfigured"
            }
        };
        telemetry.state_restores.with_label_values(&[outcome]).inc();
    }
}

/// The snapshot found at start was taken under a configuration that shapes the state
/// differently: it is not restored.
pub struct StateSetAside {
    pub snapshot: u64,
}

impl InternalEvent for StateSetAside {
    fn emit(self, telemetry: &Telemetry) {
        tracing::warn!(
            snapshot = self.snapshot,
            "the configuration changed since the checkpoint in a setting that shapes the state \
             (models, join, window, fields, limits, drift references, detectors, estimation): \
             its state is not restored; reading resumes at the group's committed offsets with \
             an empty state"
        );
        telemetry
            .state_restores
            .with_label_values(&["set_aside"])
            .inc();
    }
}

/// An alert fired or resolved.
pub struct AlertEmitted<'a> {
    pub alert: &'a AlertEvent,
}

impl InternalEvent for AlertEmitted<'_> {
    fn emit(self, telemetry: &Telemetry) {
        let alert = self.alert;
        tracing::warn!(alert = %alert.alert_id, status = ?alert.status, "{}", alert.summary);
        let status = match alert.status {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        };
        telemetry
            .alerts
            .with_label_values(&[alert.rule.as_str(), alert.model.as_str(), status])
            .inc();
    }
}

/// A retrain trigger was emitted.
pub struct RetrainTriggered<'a> {
    pub trigger: &'a RetrainTrigger,
}

impl InternalEvent for RetrainTriggered<'_> {
    fn emit(self, telemetry: &Telemetry) {
        let trigger = self.trigger;
        tracing::warn!(trigger = %trigger.trigger_id, rules = ?trigger.rules, "retrain trigger");
        telemetry
            .retrain_triggers
            .with_label_values(&[trigger.model.as_str()])
            .inc();
    }
}

/// A performance-estimation fit failed: that model version gets no estimates.
pub struct EstimationFitFailed<'a> {
    pub failure: &'a feedback_loop_core::output::EstimationFitFailure,
}

impl InternalEvent for EstimationFitFailed<'_> {
    fn emit(self, telemetry: &Telemetry) {
        let f = self.failure;
        tracing::warn!(
            model = %f.model,
            version = f.model_version.as_deref().unwrap_or("-"),
            error = %f.error,
            "performance estimation: the fit failed; this version gets no estimates \
             (docs/estimation.md)"
        );
        telemetry
            .estimation_fit_failures
            .with_label_values(&[f.model.as_str()])
            .inc();
    }
}

/// One attempt to deliver a retrain trigger to the webhook, and how it went.
pub enum WebhookAttempt<'a> {
    Delivered {
        trigger_id: &'a str,
        attempt: u32,
    },
    Failed {
        trigger_id: &'a str,
        attempt: u32,
        error: &'a str,
    },
    /// The last attempt failed: the trigger was not delivered.
    GaveUp {
        trigger_id: &'a str,
        attempts: u32,
    },
}

impl InternalEvent for WebhookAttempt<'_> {
    fn emit(self, telemetry: &Telemetry) {
        let result = match self {
            WebhookAttempt::Delivered {
                trigger_id,
                attempt,
            } => {
                tracing::info!(%trigger_id, attempt, "retrain trigger delivered to the webhook");
                "delivered"
            }
            WebhookAttempt::Failed {
                trigger_id,
                attempt,
                error,
            } => {
                tracing::warn!(%trigger_id, attempt, %error, "retrain webhook attempt failed");
                "retried"
            }
            WebhookAttempt::GaveUp {
                trigger_id,
                attempts,
            } => {
                tracing::error!(%trigger_id, attempts, "retrain trigger NOT delivered to the webhook");
                "failed"
            }
        };
        telemetry
            .webhook_deliveries
            .with_label_values(&[result])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_classes_are_the_listed_ones() {
        for reason in [
            "invalid JSON at byte 3",
            "missing field `prediction`",
            "unknown model `nope`",
            "message of 5 bytes exceeds limits.max_message_bytes (4)",
            "timestamp `yesterday` is not RFC 3339",
            "more than limits.max_versions_per_model versions",
            "label must be a string, number or boolean",
        ] {
            assert!(
                REASON_CLASSES.contains(&reason_class(reason)),
                "{reason}: {}",
                reason_class(reason)
            );
        }
        let classes: std::collections::BTreeSet<&str> = [
            "invalid JSON",
            "missing field",
            "unknown model",
            "max_message_bytes",
            "timestamp",
            "limits.x",
            "other",
        ]
        .into_iter()
        .map(reason_class)
        .collect();
        assert_eq!(classes.len(), REASON_CLASSES.len(), "{classes:?}");
    }
}
