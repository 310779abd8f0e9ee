//! The tasks an instance runs (`scale.mode = "partitioned"`): task p is partition p of
//! both input topics, held together (the range assignor gives partition p of two topics
//! with the same partition count to the same member). A task owns a [`TaskShard`], the
//! clocks of its two partitions, and their offsets.
//!
//! Lifecycle of a task: when this instance holds both of its partitions, the task is
//! restored from its latest checkpoint (`<group>/task-<p>` in the state topic; a fresh
//! shard without one) and reads from the snapshot's offsets on (messages before them,
//! re-delivered from older committed offsets, are passed over). Each message is applied to
//! its task's shard; when the task's watermark passes a window, the task sends the
//! window's partials then its marker to the partials topic. Every `checkpoint.interval`:
//! the partials are flushed (delivered), then each task is snapshotted under its own key,
//! then its offsets are committed. When a partition of a task is revoked, the task is
//! dropped: whoever holds it next continues from its checkpoint, and re-sends partials the
//! finalizer already has (it replaces them, or drops them when their window has closed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;

use feedback_loop_core::checkpoint::{
    config_fingerprint, decode_versioned, encode_versioned, shape_fingerprint, TaskSnapshot,
    TaskSnapshotView,
};
use feedback_loop_core::engine::EngineStats;
use feedback_loop_core::partition::{TaskMessage, TaskShard};
use feedback_loop_core::record::{DecodeError, Record};
use feedback_loop_core::settings::Config;
use feedback_loop_core::watermark::Watermark;

use crate::ingest::{Ingest, InputMessage, TopicIndex, Verdict};
use crate::kafka::consumer::{AssignmentChange, InputConsumer};
use crate::kafka::dead_letter::DeadLetterQueue;
use crate::kafka::partials::PartialsSender;
use crate::kafka::partition_pauses::PartitionPauses;
use crate::kafka::state_store::StateStore;
use crate::offsets::Offsets;
use crate::pipeline::{dead_letter, input_message, silence_was_not_idleness, CheckpointCadence};
use crate::shared_state::SharedState;
use crate::telemetry::events::{CheckpointFailed, CheckpointWritten, StateRestored, StateSetAside};
use crate::wall_clock::now_ms;

/// How often a task's partition held without its pair is logged.
const UNPAIRED_LOG: Duration = Duration::from_secs(30);

/// One task: its shard, its two partitions' clocks and offsets.
struct Task {
    shard: TaskShard,
    watermark: Watermark,
    offsets: Offsets,
    snapshot_id: u64,
    /// The last marker sent: (watermark, idle).
    sent: Option<(i64, bool)>,
}

/// See the module documentation.
pub(crate) struct TaskSet {
    config: Config,
    ingest: Ingest,
    /// The input topics' partition count: the number of tasks.
    partitions: i32,
    owned: BTreeSet<(TopicIndex, i32)>,
    tasks: BTreeMap<i32, Task>,
    sender: PartialsSender,
    store: StateStore,
    shape: u64,
    fingerprint: u64,
    cadence: CheckpointCadence,
    /// Pauses the partitions that run ahead of the others in event time.
    pauses: PartitionPauses,
    unpaired_logged: Option<Instant>,
    input_counters: [prometheus::IntCounter; 2],
    dead_letters: DeadLetterQueue,
    state: Arc<SharedState>,
}

impl TaskSet {
    pub(crate) fn new(
        config: &Config,
        partitions: i32,
        sender: PartialsSender,
        store: StateStore,
        dead_letters: DeadLetterQueue,
        state: Arc<SharedState>,
    ) -> TaskSet {
        let telemetry = &state.telemetry;
        TaskSet {
            config: config.clone(),
            ingest: Ingest::new(config),
            partitions,
            owned: BTreeSet::new(),
            tasks: BTreeMap::new(),
            sender,
            store,
            shape: shape_fingerprint(config),
            fingerprint: config_fingerprint(config),
            cadence: CheckpointCadence::new(config),
            pauses: PartitionPauses::new(config, telemetry.clone()),
            unpaired_logged: None,
            input_counters: [
                telemetry
                    .input_records
                    .with_label_values(&[config.kafka.predictions_topic.as_str()]),
                telemetry
                    .input_records
                    .with_label_values(&[config.kafka.outcomes_topic.as_str()]),
            ],
            dead_letters,
            state: state.clone(),
        }
    }

    fn name(&self, task: i32) -> String {
        format!("{}/task-{task}", self.config.kafka.group_id)
    }

    /// Whether this instance runs task `p`.
    pub(crate) fn runs(&self, p: i32) -> bool {
        self.tasks.contains_key(&p)
    }

    /// The tasks this instance runs.
    pub(crate) fn running(&self) -> usize {
        self.tasks.len()
    }

    /// Whether a partial could not be delivered: the caller stops the instance, its tasks
    /// continue from their checkpoints (here or elsewhere).
    pub(crate) fn delivery_failed(&self) -> bool {
        self.sender.failed()
    }

    /// Decodes a batch, then handles its messages in order (as the one-instance loop does).
    pub(crate) fn handle_batch(
        &mut self,
        consumer: &InputConsumer,
        messages: &[BorrowedMessage<'_>],
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let now = now_ms();
        self.apply_assignment_changes(consumer, now)?;
        let inputs: Vec<InputMessage<'_>> = messages.iter().map(input_message).collect();
        let decoded: Vec<_> = inputs.iter().map(|m| self.ingest.decode(m)).collect();
        let mut last = Instant::now();
        let decode_share = last.duration_since(started) / messages.len().max(1) as u32;
        for (message, decoded) in inputs.iter().zip(decoded) {
            let applied = self.handle(message, decoded, now)?;
            let done = Instant::now();
            if applied {
                self.state
                    .telemetry
                    .processing_seconds
                    .observe((decode_share + done.duration_since(last)).as_secs_f64());
            }
            last = done;
        }
        self.align(consumer, now);
        Ok(())
    }

    /// Pauses the partitions of this instance's tasks that ran more than
    /// `kafka.max_read_ahead` (event time) ahead of the slowest one being read, resumes those
    /// the others caught up with (as the one-instance loop does).
    fn align(&mut self, consumer: &InputConsumer, now: i64) {
        let clocks = self.tasks.values().flat_map(|task| task.watermark.clocks());
        self.pauses.align(consumer, &self.ingest, clocks, now);
    }

    /// Handles one message; false for one passed over (no task here for its partition, or
    /// already in the task's state).
    fn handle(
        &mut self,
        message: &InputMessage<'_>,
        decoded: Option<Result<Record<'_>, DecodeError>>,
        now: i64,
    ) -> anyhow::Result<bool> {
        let Some(index) = self.ingest.topic_index(message.topic) else {
            return Ok(false);
        };
        self.input_counters[usize::from(index)].inc();
        let Some(task) = self.tasks.get_mut(&message.partition) else {
            // Its pair is not held here: read again by whoever holds both.
            return Ok(false);
        };
        let partition = (index, message.partition);
        let next = task.offsets.next(index, message.partition);
        match self.ingest.admit(message, decoded, next, now) {
            Verdict::Skip => return Ok(false),
            Verdict::Apply(record) => match task.shard.engine_mut().observe(&record) {
                Ok(_) => task.watermark.observe(partition, record.ts(), now),
                Err(rejection) => {
                    task.watermark.touch(partition, now);
                    dead_letter(
                        &self.state,
                        &self.dead_letters,
                        self.config.limits.max_message_bytes,
                        message,
                        rejection.to_string(),
                    );
                }
            },
            Verdict::Reject { model, reason } => {
                task.shard.engine_mut().observe_invalid(model);
                task.watermark.touch(partition, now);
                dead_letter(
                    &self.state,
                    &self.dead_letters,
                    self.config.limits.max_message_bytes,
                    message,
                    reason,
                );
            }
        }
        task.offsets
            .applied(index, message.partition, message.offset);
        let partition = message.partition;
        self.advance(partition, now, false)?;
        Ok(true)
    }

    /// Moves a task's watermark; sends the partials of the windows it passed, then its
    /// marker. Without partials, the marker is sent on the tick only (when it changed).
    fn advance(&mut self, p: i32, now: i64, tick: bool) -> anyhow::Result<()> {
        // As in the one-instance loop: without an assignment or a cluster, silence is not
        // idleness, event time does not move on.
        if !self.state.assigned.load(Ordering::Relaxed) || self.state.broker_trouble() {
            return Ok(());
        }
        let Some(task) = self.tasks.get_mut(&p) else {
            return Ok(());
        };
        let idle = task.watermark.all_idle(now);
        let target = task.watermark.current(now);
        let moved = target.is_some_and(|w| w > task.shard.engine().watermark());
        if !moved && !tick {
            return Ok(());
        }
        let step = task
            .shard
            .advance_watermark(target.unwrap_or(i64::MIN), idle);
        let marker = (step.marker.watermark, step.marker.idle);
        if step.partials.is_empty() && (!tick || task.sent == Some(marker)) {
            return Ok(());
        }
        if step.marker.watermark == i64::MIN && !idle {
            // Nothing read yet and not idle: nothing to tell.
            return Ok(());
        }
        for message in TaskMessage::of_step(step) {
            self.sender.send(&message)?;
        }
        task.sent = Some(marker);
        Ok(())
    }

    /// After a "brokers down" error, the cluster is reachable again: the partitions'
    /// silence meanwhile was not idleness.
    pub(crate) fn cluster_back(&mut self) {
        tracing::info!("the cluster is reachable again");
        self.restart_clocks(now_ms());
    }

    fn restart_clocks(&mut self, now: i64) {
        for task in self.tasks.values_mut() {
            task.watermark.restart(now);
        }
    }

    /// Housekeeping: assignment changes, consumer lags, markers of every task.
    pub(crate) fn tick(&mut self, consumer: &InputConsumer) -> anyhow::Result<()> {
        let now = now_ms();
        if silence_was_not_idleness(&self.state, consumer, now) {
            self.restart_clocks(now);
        }
        self.apply_assignment_changes(consumer, now)?;
        for (topic, partition, lag) in consumer.context().take_lags() {
            if let (Some(index), Some(task)) = (
                self.ingest.topic_index(&topic),
                self.tasks.get_mut(&partition),
            ) {
                task.watermark.observe_lag((index, partition), lag);
            }
        }
        self.state
            .assigned
            .store(consumer.context().has_assignment(), Ordering::Relaxed);
        let held: Vec<i32> = self.tasks.keys().copied().collect();
        for p in held {
            self.advance(p, now, true)?;
        }
        self.align(consumer, now);
        self.note_unpaired();
        let mut stats = EngineStats::default();
        let (mut pending_predictions, mut pending_outcomes, mut open_windows) = (0, 0, 0);
        for task in self.tasks.values() {
            let engine = task.shard.engine();
            stats += engine.stats();
            pending_predictions += engine.pending_predictions();
            pending_outcomes += engine.pending_outcomes();
            open_windows += engine.open_windows();
        }
        self.state.telemetry.observe_engine(
            &stats,
            pending_predictions,
            pending_outcomes,
            open_windows,
        );
        Ok(())
    }

    /// Applies rebalances: a task whose two partitions are now held is restored; one that
    /// lost a partition is dropped.
    fn apply_assignment_changes(
        &mut self,
        consumer: &InputConsumer,
        now: i64,
    ) -> anyhow::Result<()> {
        let changes = consumer.context().take_changes();
        if changes.is_empty() {
            return Ok(());
        }
        self.state
            .assigned
            .store(consumer.context().has_assignment(), Ordering::Relaxed);
        // A task with a partition revoked may have been held by another instance since:
        // it is set aside, and kept only if its checkpoint is still the latest (below).
        let mut revoked = BTreeSet::new();
        let mut revoked_ids = Vec::new();
        for change in changes {
            match change {
                AssignmentChange::Assigned(list) => {
                    for (topic, partition) in list {
                        if let Some(index) = self.ingest.topic_index(&topic) {
                            self.owned.insert((index, partition));
                        }
                    }
                }
                AssignmentChange::Revoked(list) => {
                    for (topic, partition) in list {
                        if let Some(index) = self.ingest.topic_index(&topic) {
                            self.owned.remove(&(index, partition));
                            revoked.insert(partition);
                            revoked_ids.push((index, partition));
                        }
                    }
                }
            }
        }
        self.pauses.revoked(consumer, &self.ingest, &revoked_ids);
        let paired: BTreeSet<i32> = (0..self.partitions)
            .filter(|&p| self.owned.contains(&(0, p)) && self.owned.contains(&(1, p)))
            .collect();
        let mut set_aside = BTreeMap::new();
        let mut dropped = Vec::new();
        for p in self.tasks.keys().copied().collect::<Vec<_>>() {
            if !paired.contains(&p) {
                self.tasks.remove(&p);
                dropped.push(p);
            } else if revoked.contains(&p) {
                if let Some(task) = self.tasks.remove(&p) {
                    set_aside.insert(p, task);
                }
            }
        }
        let new: Vec<i32> = paired
            .iter()
            .filter(|p| !self.tasks.contains_key(p))
            .copied()
            .collect();
        if !new.is_empty() {
            self.restore(&new, set_aside, now)?;
        }
        if !dropped.is_empty() || !new.is_empty() {
            tracing::info!(
                tasks = ?self.tasks.keys().collect::<Vec<_>>(),
                dropped = ?dropped,
                restored = ?new,
                "tasks of this instance"
            );
        }
        Ok(())
    }

    /// Restores tasks from their latest checkpoints (fresh without one), in one read of
    /// the state topic. A task `held` here before the rebalance is kept as it is when its
    /// latest checkpoint is still its own (no other instance checkpointed it since, so no
    /// other committed its offsets: what is read again is passed over). An unreadable
    /// state topic stops the instance: a task must not read on from offsets its state does
    /// not reflect.
    fn restore(
        &mut self,
        tasks: &[i32],
        mut held: BTreeMap<i32, Task>,
        now: i64,
    ) -> anyhow::Result<()> {
        let names: Vec<String> = tasks.iter().map(|&p| self.name(p)).collect();
        let store = &mut self.store;
        let config = &self.config;
        let mut found = tokio::task::block_in_place(|| store.load_named(config, &names))
            .context("reading the tasks' checkpoints")?;
        for (&p, name) in tasks.iter().zip(&names) {
            let mut task = Task {
                shard: TaskShard::new(&self.config, p as u32, self.partitions as u32)
                    .context("a task's engine")?,
                watermark: Watermark::new(
                    self.config.window.allowed_lateness.as_millis_i64(),
                    self.config.window.idle_timeout.as_millis_i64(),
                ),
                offsets: Offsets::new(true),
                snapshot_id: 0,
                sent: None,
            };
            let latest = match found.remove(name) {
                Some(bytes) => Some(
                    decode_versioned::<TaskSnapshot>(&bytes)
                        .with_context(|| format!("decoding the checkpoint of task {p}"))?,
                ),
                None => None,
            };
            if let Some(mut kept) = held.remove(&p) {
                if latest.as_ref().map_or(0, |s| s.id) == kept.snapshot_id {
                    kept.watermark.restart(now);
                    kept.sent = None;
                    self.tasks.insert(p, kept);
                    continue;
                }
            }
            if let Some(snapshot) = latest {
                task.snapshot_id = snapshot.id;
                if snapshot.shape_fingerprint != self.shape {
                    self.state.telemetry.emit(StateSetAside {
                        snapshot: snapshot.id,
                    });
                } else {
                    let mut shard = snapshot.shard;
                    if snapshot.config_fingerprint != self.fingerprint {
                        shard.reconfigure(&self.config);
                    }
                    task.shard = shard;
                    task.watermark = snapshot.watermark;
                    task.offsets.restore(&self.ingest, &snapshot.offsets);
                    self.state.telemetry.emit(StateRestored {
                        snapshot: snapshot.id,
                        pending_predictions: task.shard.engine().pending_predictions(),
                        open_windows: task.shard.engine().open_windows(),
                        changes: None,
                    });
                }
            }
            for topic in 0..2u8 {
                task.watermark.assign((topic, p), now);
            }
            task.watermark.restart(now);
            self.tasks.insert(p, task);
        }
        Ok(())
    }

    /// Logs, at most every 30 s, partitions held without their pair (a rebalance in
    /// progress, or an assignor that does not keep partition p of both topics together).
    fn note_unpaired(&mut self) {
        let unpaired: Vec<(TopicIndex, i32)> = self
            .owned
            .iter()
            .filter(|(_, p)| !self.tasks.contains_key(p))
            .copied()
            .collect();
        if unpaired.is_empty()
            || self
                .unpaired_logged
                .is_some_and(|at| at.elapsed() < UNPAIRED_LOG)
        {
            return;
        }
        tracing::warn!(
            partitions = ?unpaired,
            "input partitions held without the same partition of the other input topic: \
             not read here (partition p of both topics must go to one instance: the range \
             assignor does)"
        );
        self.unpaired_logged = Some(Instant::now());
    }

    pub(crate) fn checkpoint_due(&self) -> bool {
        !self.tasks.is_empty() && !self.state.broker_trouble() && self.cadence.due()
    }

    /// Flushes the partials, then snapshots every task under its key and commits its
    /// offsets. A task whose partitions were revoked meanwhile is not snapshotted (another
    /// instance may hold it now). True when every task was stored.
    pub(crate) async fn checkpoint(&mut self, consumer: &InputConsumer) -> bool {
        let started = Instant::now();
        let stored = self.write_checkpoints(consumer).await;
        self.cadence.done(started);
        stored
    }

    async fn write_checkpoints(&mut self, consumer: &InputConsumer) -> bool {
        let sender = &self.sender;
        if let Err(error) = tokio::task::block_in_place(|| sender.flush(Duration::from_secs(30))) {
            tracing::warn!(%error, "partials not delivered yet; task checkpoints postponed");
            return false;
        }
        if self.sender.failed() {
            return false;
        }
        let assigned: BTreeSet<(String, i32)> = match consumer.assignment() {
            Ok(list) => list
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "reading the assignment; task checkpoints postponed");
                return false;
            }
        };
        let mut all = true;
        let names: BTreeMap<i32, String> = self.tasks.keys().map(|&p| (p, self.name(p))).collect();
        for (p, task) in self.tasks.iter_mut() {
            let held = [
                &self.config.kafka.predictions_topic,
                &self.config.kafka.outcomes_topic,
            ]
            .iter()
            .all(|topic| assigned.contains(&(topic.to_string(), *p)));
            if !held {
                all = false;
                continue;
            }
            let offsets = task.offsets.by_name(&self.ingest);
            let view = TaskSnapshotView {
                id: task.snapshot_id + 1,
                shape_fingerprint: self.shape,
                config_fingerprint: self.fingerprint,
                offsets: &offsets,
                shard: &task.shard,
                watermark: &task.watermark,
                created_at_ms: now_ms(),
            };
            let started = Instant::now();
            let saved = match encode_versioned(&view) {
                Ok(bytes) => self
                    .store
                    .save_named(&names[p], view.id, view.created_at_ms, &bytes)
                    .await
                    .map(|manifest| (manifest, bytes.len())),
                Err(error) => Err(anyhow::Error::from(error)),
            };
            match saved {
                Ok((manifest, bytes)) => {
                    task.snapshot_id = manifest.id;
                    self.state.telemetry.emit(CheckpointWritten {
                        snapshot: manifest.id,
                        bytes: bytes as u64,
                        seconds: started.elapsed().as_secs_f64(),
                        pending_predictions: task.shard.engine().pending_predictions(),
                        positions: task.offsets.len(),
                    });
                    task.offsets.commit_checkpointed(consumer, &self.ingest);
                }
                Err(error) => {
                    self.state
                        .telemetry
                        .emit(CheckpointFailed { error: &error });
                    all = false;
                }
            }
        }
        all
    }

    /// At shutdown: every partial delivered, every task checkpointed, its offsets
    /// committed (synchronously).
    pub(crate) async fn finish(&mut self, consumer: &InputConsumer) {
        if self.tasks.is_empty() {
            return;
        }
        if self.checkpoint(consumer).await {
            for task in self.tasks.values_mut() {
                task.offsets.commit_final(consumer, &self.ingest, true);
            }
        }
    }
}
