//! The partials topic (`scale.partials_topic`): how the tasks of the partitioned engine hand
//! their partial windows and markers to the finalizer, across instances.
//!
//! One partition, so that the finalizer reads every task's messages in one order, and a
//! task's partials always before its marker (one producer per instance; the idempotent
//! producer keeps its order). A message that does not fit in one Kafka message is sent in
//! chunks of `checkpoint.chunk_bytes`: each chunk carries the sending instance's id, the
//! task, a sequence number per instance and its place in the message, so that the
//! finalizer reassembles it even when two instances interleave messages of one task (the
//! old owner's last deliveries and the new owner's first, after a rebalance).
//!
//! The finalizer reads it in its own consumer group, `<kafka.group_id>.final`: the member
//! holding the partition finalizes; the others stand by.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::{FutureRecord, Producer as _};
use rdkafka::topic_partition_list::TopicPartitionList;

use feedback_loop_core::partition::TaskMessage;
use feedback_loop_core::settings::Config;

use crate::kafka::client;
use crate::kafka::consumer::AssignmentChange;
use crate::kafka::log_limit::{Producer, QuietContext};

/// Bytes before a chunk's payload: instance id, sequence, task, index, count.
const HEADER: usize = 8 + 8 + 4 + 4 + 4;

/// The tasks' side: sends their messages.
pub(crate) struct PartialsSender {
    producer: Producer,
    topic: String,
    chunk_bytes: usize,
    /// Tells this instance's messages from another's (random per process).
    instance: u64,
    sequence: u64,
    failed: Arc<AtomicBool>,
}

impl PartialsSender {
    pub(crate) async fn open(config: &Config) -> anyhow::Result<PartialsSender> {
        let topic = config.scale.partials_topic.clone();
        crate::kafka::state_store::ensure_topic(config, &topic, 1, false).await?;
        let producer: Producer = client::producer(config)
            .set("compression.type", "zstd")
            .set(
                "message.max.bytes",
                (config.checkpoint.chunk_bytes + 64 * 1024).to_string(),
            )
            .create_with_context(QuietContext)
            .context("creating the partials producer")?;
        Ok(PartialsSender {
            producer,
            topic,
            chunk_bytes: config.checkpoint.chunk_bytes.max(1),
            instance: instance_id(),
            sequence: 0,
            failed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Enqueues one message (in chunks if needed). librdkafka retries delivery on its own;
    /// [`PartialsSender::flush`] waits for it before a task's checkpoint, and a message
    /// that still failed sets [`PartialsSender::failed`].
    pub(crate) fn send(&mut self, message: &TaskMessage) -> anyhow::Result<()> {
        let task = match message {
            TaskMessage::Partial { task, .. } => *task,
            TaskMessage::Marker(marker) => marker.task,
        };
        let encoded = message.encode().context("encoding a partial window")?;
        self.sequence += 1;
        let parts: Vec<&[u8]> = encoded.chunks(self.chunk_bytes).collect();
        let count = parts.len() as u32;
        let key = format!("task-{task}");
        for (index, part) in parts.into_iter().enumerate() {
            let mut payload = Vec::with_capacity(HEADER + part.len());
            payload.extend_from_slice(&self.instance.to_le_bytes());
            payload.extend_from_slice(&self.sequence.to_le_bytes());
            payload.extend_from_slice(&task.to_le_bytes());
            payload.extend_from_slice(&(index as u32).to_le_bytes());
            payload.extend_from_slice(&count.to_le_bytes());
            payload.extend_from_slice(part);
            let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
            let delivery = match self.producer.send_result(record) {
                Ok(delivery) => delivery,
                Err((error, _)) => return Err(error).context("enqueueing a partial window"),
            };
            let failed = self.failed.clone();
            tokio::spawn(async move {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((error, _))) => {
                        tracing::error!(%error, task, "a partial window was not delivered");
                        failed.store(true, Ordering::Relaxed);
                    }
                    Err(_) => failed.store(true, Ordering::Relaxed),
                }
            });
        }
        Ok(())
    }

    /// Whether a message could not be delivered (within `message.timeout.ms`): the
    /// finalizer would miss it, so the tasks must start over from their checkpoints.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until every message enqueued was delivered.
    pub(crate) fn flush(&self, timeout: std::time::Duration) -> rdkafka::error::KafkaResult<()> {
        self.producer.flush(timeout)
    }
}

fn instance_id() -> u64 {
    let pid = u64::from(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    feedback_loop_core::checkpoint::fnv1a(&[pid.to_le_bytes(), now.to_le_bytes()].concat())
}

/// A message being reassembled: its sequence, the offset of its first chunk, its bytes so
/// far, the next chunk index expected.
struct Pending {
    sequence: u64,
    first_offset: i64,
    bytes: Vec<u8>,
    next: u32,
}

/// The finalizer's side: reassembles chunks into messages.
///
/// Chunks taken before a checkpoint are not in it: [`PartialsReader::resume_offset`] is
/// where reading must resume for them (the checkpoint stores it, not the next offset), and
/// what is read twice is taken twice harmlessly (a partial replaces its copy or is stale,
/// a marker's watermark is merged by max).
#[derive(Default)]
pub(crate) struct PartialsReader {
    /// Per (instance, task).
    pending: HashMap<(u64, u32), Pending>,
}

impl PartialsReader {
    /// Takes one Kafka message (at `offset`); returns the task message it completes, if
    /// any.
    pub(crate) fn take(&mut self, payload: &[u8], offset: i64) -> anyhow::Result<Option<Vec<u8>>> {
        if payload.len() < HEADER {
            anyhow::bail!(
                "a partials message of {} bytes is shorter than its header",
                payload.len()
            );
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&payload[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let (instance, sequence) = (u64_at(0), u64_at(8));
        let (task, index, count) = (u32_at(16), u32_at(20), u32_at(24));
        if index >= count {
            anyhow::bail!(
                "a partials message's chunk index {index} is not below its count {count}"
            );
        }
        if index == 0 {
            // The task's messages now come from this instance: an incomplete one of
            // another (a crashed or revoked holder) will not be completed.
            self.pending
                .retain(|&(other, other_task), _| other_task != task || other == instance);
        }
        let body = &payload[HEADER..];
        if count == 1 {
            self.pending.remove(&(instance, task));
            return Ok(Some(body.to_vec()));
        }
        if index == 0 {
            self.pending.insert(
                (instance, task),
                Pending {
                    sequence,
                    first_offset: offset,
                    bytes: Vec::new(),
                    next: 0,
                },
            );
        }
        let Some(entry) = self.pending.get_mut(&(instance, task)) else {
            // The rest of a message whose start was not read: cannot be completed.
            return Ok(None);
        };
        if entry.sequence != sequence || entry.next != index {
            // A chunk missing: this message cannot be completed.
            self.pending.remove(&(instance, task));
            return Ok(None);
        }
        entry.bytes.extend_from_slice(body);
        entry.next += 1;
        if entry.next < count {
            return Ok(None);
        }
        Ok(self
            .pending
            .remove(&(instance, task))
            .map(|entry| entry.bytes))
    }

    /// The offset of the first chunk of the oldest message not complete yet.
    pub(crate) fn resume_offset(&self) -> Option<i64> {
        self.pending.values().map(|p| p.first_offset).min()
    }
}

/// The finalizer consumer's context: assignment changes for the loop to apply.
#[derive(Default)]
pub(crate) struct FinalContext {
    changes: Mutex<Vec<AssignmentChange>>,
    changed: AtomicBool,
}

pub(crate) type FinalConsumer = StreamConsumer<FinalContext>;

impl FinalContext {
    pub(crate) fn take_changes(&self) -> Vec<AssignmentChange> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    fn push_change(&self, change: AssignmentChange) {
        if let Ok(mut changes) = self.changes.lock() {
            changes.push(change);
            self.changed.store(true, Ordering::Release);
        }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for FinalContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        QuietContext.log(level, fac, log_message);
    }
}

impl ConsumerContext for FinalContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            tracing::info!(partitions = ?partitions(list), "finalizer: partials revoked");
            self.push_change(AssignmentChange::Revoked(partitions(list)));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = ?partitions(list), "finalizer: partials assigned");
                self.push_change(AssignmentChange::Assigned(partitions(list)));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "finalizer: rebalance error"),
        }
    }
}

/// The finalizer's consumer, in group `<kafka.group_id>.final`, subscribed to the partials
/// topic.
pub(crate) fn final_consumer(config: &Config) -> anyhow::Result<FinalConsumer> {
    use rdkafka::consumer::Consumer;
    let consumer: FinalConsumer = client::other_consumer(config)
        .set("group.id", format!("{}.final", config.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "fetch.max.bytes",
            (4 * config.checkpoint.chunk_bytes + 1024 * 1024).to_string(),
        )
        .create_with_context(FinalContext::default())
        .context("creating the finalizer's consumer")?;
    consumer
        .subscribe(&[&config.scale.partials_topic])
        .context("subscribing to the partials topic")?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(
        instance: u64,
        sequence: u64,
        task: u32,
        index: u32,
        count: u32,
        body: &[u8],
    ) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&instance.to_le_bytes());
        p.extend_from_slice(&sequence.to_le_bytes());
        p.extend_from_slice(&task.to_le_bytes());
        p.extend_from_slice(&index.to_le_bytes());
        p.extend_from_slice(&count.to_le_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn interleaved_chunks_of_two_instances_reassemble() {
        let mut r = PartialsReader::default();
        assert_eq!(r.take(&chunk(1, 5, 0, 0, 2, b"ab"), 10).unwrap(), None);
        assert_eq!(r.take(&chunk(2, 9, 1, 0, 2, b"xy"), 11).unwrap(), None);
        assert_eq!(r.resume_offset(), Some(10));
        assert_eq!(
            r.take(&chunk(1, 5, 0, 1, 2, b"cd"), 12).unwrap(),
            Some(b"abcd".to_vec())
        );
        assert_eq!(r.resume_offset(), Some(11));
        assert_eq!(
            r.take(&chunk(2, 9, 1, 1, 2, b"z"), 13).unwrap(),
            Some(b"xyz".to_vec())
        );
        assert_eq!(r.resume_offset(), None);
        assert_eq!(
            r.take(&chunk(3, 1, 4, 0, 1, b"q"), 14).unwrap(),
            Some(b"q".to_vec())
        );
    }

    #[test]
    fn a_message_cut_off_by_a_crash_is_dropped_not_glued() {
        let mut r = PartialsReader::default();
        assert_eq!(r.take(&chunk(1, 5, 0, 0, 3, b"ab"), 1).unwrap(), None);
        // The task's next holder starts a message: the first one will not be completed.
        assert_eq!(r.take(&chunk(2, 1, 0, 0, 2, b"cd"), 2).unwrap(), None);
        assert_eq!(r.resume_offset(), Some(2));
        assert_eq!(r.take(&chunk(1, 5, 0, 1, 3, b"xx"), 3).unwrap(), None);
        assert_eq!(
            r.take(&chunk(2, 1, 0, 1, 2, b"ef"), 4).unwrap(),
            Some(b"cdef".to_vec())
        );
        // A chunk whose start was never read.
        assert_eq!(r.take(&chunk(1, 7, 0, 1, 2, b"gh"), 5).unwrap(), None);
        assert_eq!(r.resume_offset(), None);
        assert!(r.take(b"short", 6).is_err());
        assert!(r.take(&chunk(1, 8, 0, 2, 2, b""), 7).is_err());
    }
}
