//! The finalizer's side of an instance (`scale.mode = "partitioned"`): it runs on the
//! instance that holds task 0 (partition 0 of both inputs), so that the input group's
//! rebalances, which already move tasks safely, also move the finalizer: there is never
//! more than one outside a rebalance, and none while task 0 has no holder. It reads the
//! partials topic (one partition, assigned by hand, no consumer group), takes the tasks'
//! partials and markers in the topic's order, and publishes what closes (metrics records,
//! estimation checks, alerts, retrain triggers, the models' Prometheus gauges).
//!
//! Lifecycle: when task 0 arrives, the finalizer is restored from its latest checkpoint
//! (`<group>/final`; fresh without one) and reads from the checkpoint's offset (from the
//! beginning without one). Every `checkpoint.interval`: the outputs are flushed
//! (delivered), then the finalizer is snapshotted with the offset to resume at. When task
//! 0 leaves, it is dropped; the next holder continues from the checkpoint and publishes
//! again what closed since (same record ids, same values).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use feedback_loop_core::checkpoint::{
    config_fingerprint, decode_versioned, encode_versioned, shape_fingerprint, FinalizerSnapshot,
    FinalizerSnapshotView,
};
use feedback_loop_core::partition::{Finalizer, Receipt, TaskMessage};

use crate::config::LoadedConfig;
use crate::kafka::partials::{FinalConsumer, PartialsReader};
use crate::kafka::state_store::StateStore;
use crate::pipeline::CheckpointCadence;
use crate::publisher::Publisher;
use crate::shared_state::SharedState;
use crate::telemetry::events::{CheckpointFailed, CheckpointWritten, StateRestored, StateSetAside};
use crate::wall_clock::now_ms;

/// How often a message of the partials topic that could not be taken is logged.
const REJECT_LOG: Duration = Duration::from_secs(5);

/// The finalizer while this instance holds the partials topic.
struct Held {
    finalizer: Finalizer,
    /// Next offset to read per partition of the partials topic.
    offsets: BTreeMap<i32, i64>,
    snapshot_id: u64,
    reader: PartialsReader,
}

/// See the module documentation.
pub(crate) struct FinalStage {
    loaded: LoadedConfig,
    tasks: u32,
    held: Option<Held>,
    store: StateStore,
    publisher: Publisher,
    shape: u64,
    fingerprint: u64,
    cadence: CheckpointCadence,
    rejected_logged: Option<Instant>,
    state: Arc<SharedState>,
}

impl FinalStage {
    pub(crate) fn new(
        loaded: LoadedConfig,
        tasks: u32,
        store: StateStore,
        publisher: Publisher,
        state: Arc<SharedState>,
    ) -> FinalStage {
        FinalStage {
            shape: shape_fingerprint(&loaded.config),
            fingerprint: config_fingerprint(&loaded.config),
            cadence: CheckpointCadence::new(&loaded.config),
            loaded,
            tasks,
            held: None,
            store,
            publisher,
            rejected_logged: None,
            state,
        }
    }

    fn name(&self) -> String {
        format!("{}/final", self.loaded.config.kafka.group_id)
    }

    pub(crate) fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Whether this instance runs the finalizer now.
    pub(crate) fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Task 0 arrived here: restores the finalizer and reads the partials topic from its
    /// checkpoint's offset.
    pub(crate) fn acquire(&mut self, consumer: &FinalConsumer) -> anyhow::Result<()> {
        self.restore()?;
        let topic = &self.loaded.config.scale.partials_topic;
        let start = self
            .held
            .as_ref()
            .and_then(|held| held.offsets.get(&0).copied())
            .map_or(Offset::Beginning, Offset::Offset);
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, 0, start)
            .context("the partials topic's position")?;
        consumer
            .assign(&list)
            .with_context(|| format!("reading the partials topic `{topic}`"))?;
        Ok(())
    }

    /// Task 0 left: the finalizer stops here (its next holder continues from the
    /// checkpoint); the models' gauges are left to it.
    pub(crate) fn release(&mut self, consumer: &FinalConsumer) {
        if self.held.take().is_none() {
            return;
        }
        if let Err(error) = consumer.unassign() {
            tracing::warn!(%error, "releasing the partials topic");
        }
        self.state.telemetry.forget_models();
        tracing::info!(
            "finalizer: task 0 moved to another instance, which finalizes from the latest \
             checkpoint"
        );
    }

    /// Restores the finalizer from its latest checkpoint (fresh without one).
    fn restore(&mut self) -> anyhow::Result<()> {
        let name = self.name();
        let store = &mut self.store;
        let config = &self.loaded.config;
        let found =
            tokio::task::block_in_place(|| store.load_named(config, std::slice::from_ref(&name)))
                .context("reading the finalizer's checkpoint")?;
        let mut held = Held {
            finalizer: self.loaded.finalizer(self.tasks).context("the finalizer")?,
            offsets: BTreeMap::new(),
            snapshot_id: 0,
            reader: PartialsReader::default(),
        };
        if let Some(bytes) = found.get(&name) {
            let snapshot: FinalizerSnapshot =
                decode_versioned(bytes).context("decoding the finalizer's checkpoint")?;
            held.snapshot_id = snapshot.id;
            if snapshot.shape_fingerprint != self.shape || snapshot.finalizer.tasks() != self.tasks
            {
                self.state.telemetry.emit(StateSetAside {
                    snapshot: snapshot.id,
                });
            } else {
                let mut finalizer = snapshot.finalizer;
                let changes = if snapshot.config_fingerprint != self.fingerprint {
                    Some(finalizer.reconfigure(config)?)
                } else {
                    None
                };
                held.offsets = snapshot
                    .offsets
                    .into_iter()
                    .map(|((_, partition), offset)| (partition, offset))
                    .collect();
                self.state.telemetry.emit(StateRestored {
                    snapshot: snapshot.id,
                    pending_predictions: 0,
                    open_windows: finalizer.open_windows(),
                    changes: changes.as_ref(),
                });
                held.finalizer = finalizer;
            }
        }
        tracing::info!(
            snapshot = held.snapshot_id,
            "finalizer: this instance holds task 0: it merges the tasks' partial windows and \
             publishes"
        );
        self.held = Some(held);
        Ok(())
    }

    /// Takes one message of the partials topic.
    pub(crate) fn handle(&mut self, message: &BorrowedMessage<'_>) -> anyhow::Result<()> {
        let Some(held) = self.held.as_mut() else {
            return Ok(());
        };
        let partition = message.partition();
        if held
            .offsets
            .get(&partition)
            .is_some_and(|&next| message.offset() < next)
        {
            return Ok(()); // already in the restored state
        }
        held.offsets.insert(partition, message.offset() + 1);
        let payload = message.payload().unwrap_or(&[]);
        let stale = &self.state.telemetry.partials_stale;
        let result = held
            .reader
            .take(payload, message.offset())
            .and_then(|complete| {
                let Some(bytes) = complete else {
                    return Ok(None);
                };
                let message = TaskMessage::decode(&bytes).context("decoding a task's message")?;
                Ok(Some(match message {
                    TaskMessage::Partial { task, partial } => {
                        if held.finalizer.partial(task, *partial)? == Receipt::Stale {
                            stale.inc();
                        }
                        None
                    }
                    TaskMessage::Marker(marker) => Some(held.finalizer.marker(marker)?),
                }))
            });
        match result {
            Ok(Some(Some(emitted))) => {
                if !emitted.is_empty() {
                    self.publisher
                        .publish(emitted, held.finalizer.monitor().rules());
                }
            }
            Ok(_) => {}
            Err(error) => {
                self.state.telemetry.partials_rejected.inc();
                if self
                    .rejected_logged
                    .is_none_or(|at| at.elapsed() >= REJECT_LOG)
                {
                    tracing::warn!(
                        error = %format!("{error:#}"),
                        offset = message.offset(),
                        "finalizer: a message of the partials topic was not taken"
                    );
                    self.rejected_logged = Some(Instant::now());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn checkpoint_due(&self) -> bool {
        self.held.is_some() && !self.state.broker_trouble() && self.cadence.due()
    }

    /// Flushes the outputs, then snapshots the finalizer with the offset to resume at.
    /// True when stored.
    pub(crate) async fn checkpoint(&mut self) -> bool {
        let started = Instant::now();
        let stored = self.write_checkpoint().await;
        self.cadence.done(started);
        stored
    }

    async fn write_checkpoint(&mut self) -> bool {
        let name = self.name();
        let Some(held) = self.held.as_mut() else {
            return false;
        };
        // Every output of the state being saved is delivered first: after a crash, what
        // closed before this checkpoint is not published again.
        let output = self.publisher.output().clone();
        if let Err(error) = tokio::task::block_in_place(|| output.flush(Duration::from_secs(30))) {
            tracing::warn!(%error, "outputs not delivered yet; finalizer checkpoint postponed");
            return false;
        }
        let topic = &self.loaded.config.scale.partials_topic;
        // Messages not complete yet are read again from their first chunk (one partition).
        let resume = held.reader.resume_offset();
        let offsets: BTreeMap<(String, i32), i64> = held
            .offsets
            .iter()
            .map(|(&p, &o)| ((topic.clone(), p), resume.map_or(o, |r| r.min(o))))
            .collect();
        let view = FinalizerSnapshotView {
            id: held.snapshot_id + 1,
            shape_fingerprint: self.shape,
            config_fingerprint: self.fingerprint,
            offsets: &offsets,
            finalizer: &held.finalizer,
            created_at_ms: now_ms(),
        };
        let started = Instant::now();
        let saved = match encode_versioned(&view) {
            Ok(bytes) => self
                .store
                .save_named(&name, view.id, view.created_at_ms, &bytes)
                .await
                .map(|manifest| (manifest, bytes.len())),
            Err(error) => Err(anyhow::Error::from(error)),
        };
        match saved {
            Ok((manifest, bytes)) => {
                held.snapshot_id = manifest.id;
                self.state.telemetry.emit(CheckpointWritten {
                    snapshot: manifest.id,
                    bytes: bytes as u64,
                    seconds: started.elapsed().as_secs_f64(),
                    pending_predictions: 0,
                    positions: offsets.len(),
                });
                true
            }
            Err(error) => {
                self.state
                    .telemetry
                    .emit(CheckpointFailed { error: &error });
                false
            }
        }
    }
}
