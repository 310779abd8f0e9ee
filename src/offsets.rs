//! The input offsets the state reflects, and the one place they are committed.
//!
//! As in Vector's Kafka source, an offset is recorded only after its message was applied to
//! the engine. The commit policy:
//! - with checkpoints (the default): offsets are committed only after a snapshot that
//!   reflects them is stored ([`Offsets::commit_checkpointed`]), so committed offsets never
//!   run ahead of a checkpoint; and once more at shutdown, after the final checkpoint;
//! - without: they are handed to librdkafka's auto-commit ([`Offsets::store`]) every
//!   [`STORE_EVERY`] messages and on each tick (at-least-once, the state is lost on a
//!   crash), and committed synchronously at shutdown.

use std::collections::BTreeMap;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::ingest::{Ingest, TopicIndex};

/// Messages between two offset stores (without checkpoints).
pub(crate) const STORE_EVERY: u64 = 1000;

/// Next offset to read per (input topic, partition): what the state reflects.
#[derive(Debug, Default)]
pub struct Offsets {
    next: BTreeMap<(TopicIndex, i32), i64>,
    checkpointed: bool,
    since_store: u64,
}

impl Offsets {
    pub fn new(checkpointed: bool) -> Offsets {
        Offsets {
            checkpointed,
            ..Offsets::default()
        }
    }

    /// The next offset the state expects from a partition (`None`: nothing read yet).
    pub fn next(&self, topic: TopicIndex, partition: i32) -> Option<i64> {
        self.next.get(&(topic, partition)).copied()
    }

    /// A message was applied (or dead-lettered): the state now reflects it.
    pub(crate) fn applied(&mut self, topic: TopicIndex, partition: i32, offset: i64) {
        self.next.insert((topic, partition), offset + 1);
        self.since_store += 1;
    }

    /// Takes the positions of a restored snapshot (by topic name).
    pub fn restore(&mut self, ingest: &Ingest, snapshot: &BTreeMap<(String, i32), i64>) {
        for ((topic, partition), offset) in snapshot {
            if let Some(index) = ingest.topic_index(topic) {
                self.next.insert((index, *partition), *offset);
            }
        }
    }

    /// The positions by topic name, as a snapshot stores them.
    pub(crate) fn by_name(&self, ingest: &Ingest) -> BTreeMap<(String, i32), i64> {
        self.next
            .iter()
            .map(|(&(index, partition), &offset)| {
                ((ingest.topic_name(index).to_string(), partition), offset)
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.next.len()
    }

    fn list(&self, ingest: &Ingest) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (&(index, partition), &offset) in &self.next {
            let _ = list.add_partition_offset(
                ingest.topic_name(index),
                partition,
                Offset::Offset(offset),
            );
        }
        list
    }

    /// Without checkpoints, after a message: hands the positions to librdkafka's
    /// auto-commit every [`STORE_EVERY`] messages.
    pub(crate) fn after_message<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &mut self,
        consumer: &C,
        ingest: &Ingest,
    ) {
        if !self.checkpointed && self.since_store >= STORE_EVERY {
            self.store(consumer, ingest);
        }
    }

    /// Without checkpoints, on each tick: hands the positions to librdkafka's auto-commit.
    pub(crate) fn on_tick<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &mut self,
        consumer: &C,
        ingest: &Ingest,
    ) {
        if !self.checkpointed {
            self.store(consumer, ingest);
        }
    }

    fn store<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &mut self,
        consumer: &C,
        ingest: &Ingest,
    ) {
        self.since_store = 0;
        if self.next.is_empty() {
            return;
        }
        if let Err(error) = consumer.store_offsets(&self.list(ingest)) {
            // A partition revoked in between: its offsets are no longer ours to store.
            tracing::debug!(%error, "storing offsets");
        }
    }

    /// After a stored snapshot: commits the positions it reflects (asynchronously).
    pub(crate) fn commit_checkpointed<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &self,
        consumer: &C,
        ingest: &Ingest,
    ) {
        if self.next.is_empty() {
            return;
        }
        if let Err(error) = consumer.commit(&self.list(ingest), CommitMode::Async) {
            tracing::warn!(%error, "committing offsets after a checkpoint");
        }
    }

    /// At shutdown: commits exactly the positions the state (and, with checkpoints, the
    /// final checkpoint) reflects. `stored` says whether that checkpoint was stored; when
    /// it was not, nothing is committed and the previous checkpoint stands.
    pub(crate) fn commit_final<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &mut self,
        consumer: &C,
        ingest: &Ingest,
        stored: bool,
    ) {
        if !self.checkpointed {
            self.store(consumer, ingest);
        }
        if !stored || self.next.is_empty() {
            return;
        }
        match consumer.commit(&self.list(ingest), CommitMode::Sync) {
            Ok(()) => tracing::info!("offsets committed"),
            Err(error) => tracing::warn!(%error, "final commit"),
        }
    }
}
