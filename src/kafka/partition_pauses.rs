//! The input consumer's partitions paused and resumed as the core's [`ReadAlignment`]
//! decides (`kafka.max_read_ahead`; docs/operations.md, "Catching up a backlog"). Both
//! loops use it, the one-instance pipeline and the partitioned tasks: the rule and its
//! metrics in one place.
//!
//! librdkafka drops what it had fetched of a paused partition and fetches again from the
//! next offset to read on resume: nothing is lost or read twice.

use std::sync::Arc;

use feedback_loop_core::read_alignment::{AlignmentChanges, ReadAlignment};
use feedback_loop_core::settings::Config;
use feedback_loop_core::watermark::{PartitionId, PartitionReading};
use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;

use super::consumer::InputConsumer;
use crate::ingest::Ingest;
use crate::telemetry::Telemetry;

/// See the module documentation.
pub(crate) struct PartitionPauses {
    rule: ReadAlignment,
    telemetry: Arc<Telemetry>,
}

impl PartitionPauses {
    pub(crate) fn new(config: &Config, telemetry: Arc<Telemetry>) -> PartitionPauses {
        PartitionPauses {
            rule: ReadAlignment::new(config.kafka.max_read_ahead.as_millis_i64()),
            telemetry,
        }
    }

    /// Pauses the partitions that ran more than `kafka.max_read_ahead` (event time) ahead
    /// of the slowest one being read, resumes those the others caught up with.
    pub(crate) fn align(
        &mut self,
        consumer: &InputConsumer,
        ingest: &Ingest,
        clocks: impl IntoIterator<Item = PartitionReading> + Clone,
        now: i64,
    ) {
        if !self.rule.enabled() {
            return;
        }
        let changes = self.rule.update(clocks, now);
        self.apply(consumer, ingest, &changes);
    }

    /// Resumes every paused partition (an instance that is not in charge reads on).
    pub(crate) fn resume_all(&mut self, consumer: &InputConsumer, ingest: &Ingest) {
        let changes = AlignmentChanges {
            pause: Vec::new(),
            resume: self.rule.reset(),
        };
        self.apply(consumer, ingest, &changes);
    }

    /// Partitions revoked: forgotten, and resumed if paused, so that one assigned again
    /// later is not left paused.
    pub(crate) fn revoked(
        &mut self,
        consumer: &InputConsumer,
        ingest: &Ingest,
        revoked: &[PartitionId],
    ) {
        let changes = AlignmentChanges {
            pause: Vec::new(),
            resume: revoked
                .iter()
                .copied()
                .filter(|&id| self.rule.forget(id))
                .collect(),
        };
        self.apply(consumer, ingest, &changes);
    }

    /// Applies a decision: each pause counted (`partition_pauses_total`) and logged at
    /// debug level (a backlog makes many); `paused_partitions` set.
    fn apply(&self, consumer: &InputConsumer, ingest: &Ingest, changes: &AlignmentChanges) {
        if changes.is_empty() {
            return;
        }
        let list = |ids: &[PartitionId]| {
            let mut list = TopicPartitionList::new();
            for &(index, partition) in ids {
                list.add_partition(ingest.topic_name(index), partition);
            }
            list
        };
        if !changes.pause.is_empty() {
            match consumer.pause(&list(&changes.pause)) {
                Ok(()) => {
                    tracing::debug!(partitions = ?changes.pause, "paused: ahead of the others in event time");
                    self.telemetry
                        .partition_pauses
                        .inc_by(changes.pause.len() as u64);
                }
                Err(error) => {
                    tracing::warn!(%error, partitions = ?changes.pause, "pausing partitions")
                }
            }
        }
        if !changes.resume.is_empty() {
            match consumer.resume(&list(&changes.resume)) {
                Ok(()) => tracing::debug!(partitions = ?changes.resume, "resumed"),
                // Revoked meanwhile: nothing to resume.
                Err(error) => {
                    tracing::debug!(%error, partitions = ?changes.resume, "resuming partitions")
                }
            }
        }
        self.telemetry
            .paused_partitions
            .set(self.rule.paused().len() as i64);
    }
}
