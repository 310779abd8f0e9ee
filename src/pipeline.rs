//! The Kafka service loop (`run`): consume predictions and outcomes, drive the core,
//! publish what it emits, dead-letter what it cannot use, checkpoint.
//!
//! One task owns the core and the watermark (no locks on the hot path). The messages
//! already fetched are taken in batches of up to [`DECODE_BATCH`] and decoded together;
//! then per message: admission (`crate::ingest`), apply to the engine, advance the
//! watermark, publish closed windows (`crate::publisher`), record the offset
//! (`crate::offsets`, which owns the commit policy). With checkpoints (the default), the
//! state is snapshotted to the state topic every `checkpoint.interval` with the offsets it
//! reflects, and only then are those offsets committed. On start the latest snapshot is
//! restored. A tick every `TICK` applies rebalances to the watermark, advances it while
//! partitions are idle, and refreshes gauges. On shutdown: stop consuming, checkpoint,
//! flush the producer, commit, return.
//!
//! **The whole input or nothing.** Windows are closed and published, and the state
//! checkpointed, only while this instance holds every partition of both input topics ("in
//! charge"). Two instances of a group overlap in every rolling deploy, and a crashed
//! instance's replacement starts while the dead one still holds its partitions (until
//! `session.timeout.ms`): an instance holding part of the input would publish windows
//! computed from part of the data. So an instance that is not in charge reads nothing into
//! its state (what it skips is read again after the next rebalance: nothing is committed
//! meanwhile), and one that takes charge first restores the group's latest checkpoint,
//! which the previous holder wrote, and goes on from its offsets. The eager range assignor
//! (the consumer's default here) reassigns every partition on a rebalance, so reading
//! resumes at the committed offsets, never past the checkpoint.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};

use feedback_loop_core::checkpoint::{config_fingerprint, shape_fingerprint, SnapshotView};
use feedback_loop_core::monitor::Monitor;
use feedback_loop_core::record::{DecodeError, Record, DECODE_BATCH};
use feedback_loop_core::settings::Config;
use feedback_loop_core::watermark::Watermark;

use crate::config::LoadedConfig;
use crate::history::DeadLetterNote;
use crate::ingest::{Ingest, InputMessage, TopicIndex, Verdict};
use crate::kafka::client::{self, InputTopics};
use crate::kafka::consumer::{AssignmentChange, InputConsumer, InputContext};
use crate::kafka::dead_letter::{DeadLetter, DeadLetterQueue};
use crate::kafka::log_limit::{PlainConsumer, Producer, QuietContext};
use crate::kafka::partition_pauses::PartitionPauses;
use crate::kafka::producer::OutputProducer;
use crate::kafka::state_store::StateStore;
use crate::offsets::Offsets;
use crate::publisher::Publisher;
use crate::shared_state::{SharedState, LOOP_STALL_MS};
use crate::shutdown::Shutdown;
use crate::telemetry::events::{
    CheckpointFailed, CheckpointWritten, DeadLettered, StateRestored, StateSetAside,
};
use crate::wall_clock::now_ms;
use crate::webhook::RetrainWebhook;

/// Messages handled between two yields to the scheduler.
pub(crate) const YIELD_EVERY: u32 = 256;
/// Period of the housekeeping tick.
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// How often a missing input topic is logged while `run` waits for it.
const TOPIC_WAIT_LOG: Duration = Duration::from_secs(30);

/// How often the input topics are looked up while some are missing.
const TOPIC_WAIT_POLL: Duration = Duration::from_secs(1);

/// Waits until both input topics exist, for at most `kafka.topic_wait` (not ready
/// meanwhile: the loop has not started), logging what is missing every 30 s. Returns their
/// partition count, or `None` when told to stop while waiting.
pub(crate) async fn wait_for_input_topics(
    config: &Config,
    shutdown: &mut Shutdown,
) -> anyhow::Result<Option<i32>> {
    let base: PlainConsumer = client::consumer(config)
        .create_with_context(QuietContext)
        .context("creating the metadata client")?;
    let limit = config.kafka.topic_wait.0;
    let started = Instant::now();
    let mut logged: Option<Instant> = None;
    loop {
        let missing = match client::check_input_topics(&base, config, Duration::from_secs(10))? {
            InputTopics::Ready(partitions) => {
                if logged.is_some() {
                    tracing::info!(
                        waited_s = started.elapsed().as_secs(),
                        "the input topics exist now"
                    );
                }
                return Ok(Some(partitions));
            }
            InputTopics::Missing(missing) => missing,
        };
        let list = missing
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if started.elapsed() >= limit {
            if limit.is_zero() {
                anyhow::bail!("input topic {list} does not exist (kafka.topic_wait = \"0s\")");
            }
            anyhow::bail!(
                "input topic {list} still does not exist after kafka.topic_wait ({})",
                config.kafka.topic_wait
            );
        }
        if logged.is_none_or(|at| at.elapsed() >= TOPIC_WAIT_LOG) {
            tracing::warn!(
                bootstrap = %config.kafka.bootstrap_servers,
                waited_s = started.elapsed().as_secs(),
                "input topic {list} does not exist yet; waiting up to kafka.topic_wait ({}), \
                 not ready meanwhile",
                config.kafka.topic_wait
            );
            logged = Some(Instant::now());
        }
        tokio::select! {
            _ = shutdown.recv() => return Ok(None),
            _ = tokio::time::sleep(TOPIC_WAIT_POLL) => {}
        }
    }
}

/// Runs the service until `shutdown` fires.
pub async fn run(
    loaded: LoadedConfig,
    state: Arc<SharedState>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let config = &loaded.config;
    let telemetry = state.telemetry.clone();
    // Counters whose labels the configuration tells exist at 0 from now on.
    telemetry.initialise(config);
    let consumer: InputConsumer = client::consumer(config)
        .create_with_context(InputContext::new(telemetry.clone()))
        .context("creating the Kafka consumer")?;
    let Some(partitions) = wait_for_input_topics(config, &mut shutdown).await? else {
        return Ok(()); // told to stop while waiting
    };
    tracing::info!(
        bootstrap = %config.kafka.bootstrap_servers,
        group = %config.kafka.group_id,
        partitions,
        "input topics checked"
    );
    let producer: Producer = client::producer(config)
        .create_with_context(QuietContext)
        .context("creating the Kafka producer")?;
    let webhook = match &config.retrain.webhook {
        Some(webhook) => Some(RetrainWebhook::new(webhook.clone(), telemetry.clone())?),
        None => None,
    };
    let mut pipeline = Pipeline {
        ingest: Ingest::new(config),
        monitor: loaded.monitor()?,
        loaded: loaded.clone(),
        partitions,
        owned: BTreeSet::new(),
        in_charge: false,
        not_in_charge_logged: None,
        watermark: Watermark::new(
            config.window.allowed_lateness.as_millis_i64(),
            config.window.idle_timeout.as_millis_i64(),
        ),
        pauses: PartitionPauses::new(config, telemetry.clone()),
        offsets: Offsets::new(config.checkpoint.enabled),
        checkpoints: None,
        input_counters: [
            telemetry
                .input_records
                .with_label_values(&[config.kafka.predictions_topic.as_str()]),
            telemetry
                .input_records
                .with_label_values(&[config.kafka.outcomes_topic.as_str()]),
        ],
        publisher: Publisher::new(
            OutputProducer::new(producer.clone(), telemetry.clone()),
            webhook,
            &config.kafka,
            state.clone(),
        ),
        dead_letters: DeadLetterQueue::new(
            producer,
            config.kafka.dead_letter_topic.clone(),
            telemetry.clone(),
        ),
        max_message_bytes: config.limits.max_message_bytes,
        state: state.clone(),
    };
    if config.checkpoint.enabled {
        pipeline.checkpoints = Some(Checkpoints::open(config).await?);
    }
    // The latest checkpoint is restored when this instance takes charge of the whole input
    // (`Pipeline::take_charge`), not now: another instance may write a newer one until then.
    consumer
        .subscribe(&[
            &config.kafka.predictions_topic,
            &config.kafka.outcomes_topic,
        ])
        .context("subscribing to the input topics")?;
    state.loop_at.store(now_ms(), Ordering::Relaxed);
    state.running.store(true, Ordering::Relaxed);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error_log = Instant::now() - Duration::from_secs(60);
    let mut last_tick = Instant::now();
    let mut stream = consumer.stream();
    let mut since_yield = 0u32;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            _ = ticker.tick() => {}
            message = stream.next() => match message {
                Some(Ok(message)) => {
                    if state.broker_error_at.swap(0, Ordering::Relaxed) != 0 {
                        pipeline.cluster_back();
                    }
                    let (batch, error) = take_batch(&mut stream, message);
                    pipeline.handle_batch(&consumer, &batch);
                    since_yield += batch.len() as u32 - 1;
                    if let Some(error) = error {
                        consumer_error(&state, &error, &mut last_error_log);
                    }
                }
                Some(Err(error)) => consumer_error(&state, &error, &mut last_error_log),
                None => break,
            },
        }
        // Housekeeping on the clock, not only on the timer: while a backlog drains, the
        // consumer is always ready and timers would not get a turn.
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            pipeline.tick(&consumer);
            if pipeline.checkpoint_due(config) {
                pipeline.checkpoint(&consumer).await;
            }
        }
        // rdkafka's stream does not take part in tokio's cooperative budget: give the
        // other tasks (HTTP, producer deliveries, the shutdown signal) their turn.
        since_yield += 1;
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
    drop(stream);
    state.running.store(false, Ordering::Relaxed);
    tracing::info!("stopping: writing a checkpoint, flushing the producer, committing");
    let stored = if !pipeline.in_charge {
        // The state is not the group's (another instance holds part of the input): the
        // latest checkpoint stands, nothing is committed.
        false
    } else if config.checkpoint.enabled {
        pipeline.checkpoint(&consumer).await
    } else {
        true
    };
    if let Err(error) = pipeline.publisher.output().flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "producer flush incomplete");
    }
    pipeline
        .offsets
        .commit_final(&consumer, &pipeline.ingest, stored);
    Ok(())
}

/// On the tick: whether the partitions' silence since the last one was not idleness, so that
/// their idle clocks must start over: the cluster is reachable again after an outage (the
/// consumer's statistics show a broker connected since the error; logged), or the loop was
/// stuck waiting on the cluster and was not reading.
pub(crate) fn silence_was_not_idleness(
    state: &SharedState,
    consumer: &InputConsumer,
    now: i64,
) -> bool {
    let mut restart = false;
    let error_at = state.broker_error_at.load(Ordering::Relaxed);
    if error_at != 0 && consumer.context().broker_up_at() > error_at {
        state.broker_error_at.store(0, Ordering::Relaxed);
        tracing::info!("the cluster is reachable again");
        restart = true;
    }
    let previous = state.loop_at.swap(now, Ordering::Relaxed);
    restart || now.saturating_sub(previous) > LOOP_STALL_MS
}

/// The messages already fetched join `first`, up to [`DECODE_BATCH`]: they are decoded
/// together, then applied one by one, in order. Also returns the error that ended the
/// batch, if one did.
pub(crate) fn take_batch<'c, S>(
    stream: &mut S,
    first: BorrowedMessage<'c>,
) -> (Vec<BorrowedMessage<'c>>, Option<KafkaError>)
where
    S: futures_util::Stream<Item = Result<BorrowedMessage<'c>, KafkaError>> + Unpin,
{
    let mut batch = Vec::with_capacity(DECODE_BATCH);
    batch.push(first);
    let mut no_wait = std::task::Context::from_waker(Waker::noop());
    while batch.len() < DECODE_BATCH {
        match stream.poll_next_unpin(&mut no_wait) {
            Poll::Ready(Some(Ok(message))) => batch.push(message),
            Poll::Ready(Some(Err(e))) => return (batch, Some(e)),
            Poll::Ready(None) | Poll::Pending => break,
        }
    }
    (batch, None)
}

/// Notes a consumer error: a cluster that cannot be reached makes the service not ready
/// (librdkafka reconnects with backoff by itself; the state stays). Logged at most every 5 s.
pub(crate) fn consumer_error(state: &SharedState, error: &KafkaError, last_log: &mut Instant) {
    use rdkafka::types::RDKafkaErrorCode as Code;
    if matches!(
        error.rdkafka_error_code(),
        Some(Code::AllBrokersDown | Code::BrokerTransportFailure)
    ) {
        state.broker_error_at.store(now_ms(), Ordering::Relaxed);
    }
    if last_log.elapsed() > Duration::from_secs(5) {
        tracing::warn!(%error, "consumer error");
        *last_log = Instant::now();
    }
}

/// Sends a message to the dead-letter topic. A payload over `limits.max_message_bytes`
/// is cut to that size (header `feedback-loop.truncated` gives the original length), so
/// that the dead letter itself can be produced.
pub(crate) fn dead_letter(
    state: &SharedState,
    queue: &DeadLetterQueue,
    limit: usize,
    message: &InputMessage<'_>,
    reason: String,
) {
    state.telemetry.emit(DeadLettered {
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
        reason: &reason,
    });
    if let Ok(mut history) = state.history.lock() {
        history.dead_letter(DeadLetterNote {
            topic: message.topic.to_string(),
            partition: message.partition,
            offset: message.offset,
            reason: reason.clone(),
            at: feedback_loop_core::output::rfc3339(now_ms()),
        });
    }
    let payload = message.payload;
    queue.send(DeadLetter {
        source_topic: message.topic.to_string(),
        partition: message.partition,
        offset: message.offset,
        timestamp_ms: message.timestamp_ms,
        key: message.key.map(<[u8]>::to_vec),
        payload: payload[..payload.len().min(limit)].to_vec(),
        original_length: (payload.len() > limit).then_some(payload.len()),
        reason,
    });
}

/// The checkpoint side of the loop: the state topic, the fingerprints of the configuration
/// (computed once), and the cadence.
struct Checkpoints {
    store: StateStore,
    /// Of the settings that shape the state: a snapshot with another is not restored.
    shape: u64,
    /// Of all the core's settings: a snapshot with another (and the same shape) is restored
    /// and reconfigured.
    fingerprint: u64,
    snapshot_id: u64,
    cadence: CheckpointCadence,
}

/// When a checkpoint is due: every `checkpoint.interval`, and with a large state on a slow
/// broker at most a fifth of the time (an interval of at least 4 times the last one's cost).
pub(crate) struct CheckpointCadence {
    interval: Duration,
    /// When the last checkpoint finished, and how long it took.
    last: Instant,
    cost: Duration,
}

impl CheckpointCadence {
    pub(crate) fn new(config: &Config) -> CheckpointCadence {
        CheckpointCadence {
            interval: config.checkpoint.interval.0,
            last: Instant::now(),
            cost: Duration::ZERO,
        }
    }

    pub(crate) fn due(&self) -> bool {
        self.last.elapsed() >= self.interval.max(self.cost * 4)
    }

    /// A checkpoint that began at `started` has finished.
    pub(crate) fn done(&mut self, started: Instant) {
        self.cost = started.elapsed();
        self.last = Instant::now();
    }
}

impl Checkpoints {
    async fn open(config: &Config) -> anyhow::Result<Checkpoints> {
        Ok(Checkpoints {
            store: StateStore::open(config).await?,
            shape: shape_fingerprint(config),
            fingerprint: config_fingerprint(config),
            snapshot_id: 0,
            cadence: CheckpointCadence::new(config),
        })
    }
}

/// The loop's state.
struct Pipeline {
    ingest: Ingest,
    monitor: Monitor,
    /// The configuration with its files, for a fresh state.
    loaded: LoadedConfig,
    /// The input topics' partition count.
    partitions: i32,
    /// The input partitions assigned to this instance.
    owned: BTreeSet<(TopicIndex, i32)>,
    /// Whether this instance holds every input partition and its state continues the
    /// group's (see the module documentation).
    in_charge: bool,
    /// When "not in charge" was last logged.
    not_in_charge_logged: Option<Instant>,
    watermark: Watermark,
    /// Pauses the partitions that run ahead of the others in event time.
    pauses: PartitionPauses,
    offsets: Offsets,
    /// `None` without checkpoints.
    checkpoints: Option<Checkpoints>,
    /// `input_records_total` of the predictions and the outcomes topic, resolved once.
    input_counters: [prometheus::IntCounter; 2],
    publisher: Publisher,
    dead_letters: DeadLetterQueue,
    max_message_bytes: usize,
    state: Arc<SharedState>,
}

pub(crate) fn input_message<'m>(message: &'m BorrowedMessage<'_>) -> InputMessage<'m> {
    InputMessage {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key(),
        payload: message.payload().unwrap_or(&[]),
        timestamp_ms: message.timestamp().to_millis(),
    }
}

impl Pipeline {
    /// Decodes a batch of messages (see [`DECODE_BATCH`]), then handles them in order. The
    /// wall clock is read once per batch, and `processing_seconds` gives each message its
    /// own handling time plus an equal share of the batch's decoding.
    fn handle_batch(&mut self, consumer: &InputConsumer, messages: &[BorrowedMessage<'_>]) {
        let started = Instant::now();
        let now = now_ms();
        // Rebalances are reported while polling, and the batch was polled whole: applying
        // them once, before its first message, is what applying them per message did.
        self.apply_assignment_changes(consumer, now);
        let inputs: Vec<InputMessage<'_>> = messages.iter().map(input_message).collect();
        let decoded: Vec<_> = inputs.iter().map(|m| self.ingest.decode(m)).collect();
        let mut last = Instant::now();
        let decode_share = last.duration_since(started) / messages.len().max(1) as u32;
        for (message, decoded) in inputs.iter().zip(decoded) {
            let applied = self.handle(consumer, message, decoded, now);
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
    }

    /// Handles one message, decoded beforehand, at wall-clock time `now`; false for a
    /// message passed over (another topic, or already in the state).
    fn handle(
        &mut self,
        consumer: &InputConsumer,
        message: &InputMessage<'_>,
        decoded: Option<Result<Record<'_>, DecodeError>>,
        now: i64,
    ) -> bool {
        let Some(index) = self.ingest.topic_index(message.topic) else {
            return false;
        };
        self.input_counters[usize::from(index)].inc();
        if !self.in_charge {
            // Read again, by the instance in charge, after the next rebalance.
            return false;
        }
        let partition = (index, message.partition);
        let next = self.offsets.next(index, message.partition);
        let engine = self.monitor.engine_mut();
        match self.ingest.admit(message, decoded, next, now) {
            Verdict::Skip => return false,
            Verdict::Apply(record) => match engine.observe(&record) {
                Ok(_) => self.watermark.observe(partition, record.ts(), now),
                // The engine counted the rejection itself.
                Err(rejection) => {
                    self.watermark.touch(partition, now);
                    self.dead_letter(message, rejection.to_string());
                }
            },
            Verdict::Reject { model, reason } => {
                engine.observe_invalid(model);
                self.watermark.touch(partition, now);
                self.dead_letter(message, reason);
            }
        }
        self.advance(now);
        self.offsets
            .applied(index, message.partition, message.offset);
        self.offsets.after_message(consumer, &self.ingest);
        true
    }

    fn dead_letter(&self, message: &InputMessage<'_>, reason: String) {
        dead_letter(
            &self.state,
            &self.dead_letters,
            self.max_message_bytes,
            message,
            reason,
        );
    }

    /// Pauses the partitions that ran more than `kafka.max_read_ahead` (event time) ahead
    /// of the slowest one being read, and resumes those the others caught up with (see
    /// `read_alignment`). Out of charge, nothing stays paused.
    fn align(&mut self, consumer: &InputConsumer, now: i64) {
        if self.in_charge {
            self.pauses
                .align(consumer, &self.ingest, self.watermark.clocks(), now);
        } else {
            self.pauses.resume_all(consumer, &self.ingest);
        }
    }

    /// Moves the engine's watermark and publishes the windows that closed.
    fn advance(&mut self, now: i64) {
        // Without an assignment, silence means nothing (a rebalance, a restart): event time
        // must not move on with the wall clock then. Nor while the cluster is unreachable:
        // what is produced meanwhile arrives when it is back.
        if !self.in_charge
            || !self.state.assigned.load(Ordering::Relaxed)
            || self.state.broker_trouble()
        {
            return;
        }
        let Some(watermark) = self.watermark.current(now) else {
            return;
        };
        let emitted = self.monitor.advance_watermark(watermark);
        if !emitted.is_empty() {
            self.publisher.publish(emitted, self.monitor.rules());
        }
    }

    /// Applies rebalances to the watermark's partition set. Called before every batch, so
    /// that a newly assigned partition holds the watermark back before any message counts.
    fn apply_assignment_changes(&mut self, consumer: &InputConsumer, now: i64) {
        let changes = consumer.context().take_changes();
        if changes.is_empty() {
            return;
        }
        self.state
            .assigned
            .store(consumer.context().has_assignment(), Ordering::Relaxed);
        let mut revoked = Vec::new();
        for change in changes {
            match change {
                AssignmentChange::Assigned(list) => {
                    for (topic, partition) in list {
                        if let Some(index) = self.ingest.topic_index(&topic) {
                            self.owned.insert((index, partition));
                            self.watermark.assign((index, partition), now);
                        }
                    }
                }
                AssignmentChange::Revoked(list) => {
                    for (topic, partition) in list {
                        if let Some(index) = self.ingest.topic_index(&topic) {
                            self.owned.remove(&(index, partition));
                            self.watermark.revoke((index, partition));
                            revoked.push((index, partition));
                        }
                    }
                }
            }
        }
        self.pauses.revoked(consumer, &self.ingest, &revoked);
        let whole = self.owns_whole_input();
        if whole && !self.in_charge {
            self.take_charge(now);
        } else if !whole && self.in_charge {
            self.in_charge = false;
            self.state.in_charge.store(false, Ordering::Relaxed);
            tracing::info!(
                held = self.owned.len(),
                of = 2 * self.partitions,
                "a rebalance: this instance no longer holds every input partition; no \
                 window is closed or published, no checkpoint written, until it holds them \
                 all again (then it continues from the latest checkpoint)"
            );
            self.not_in_charge_logged = Some(Instant::now());
        }
    }

    /// Whether every partition of both input topics is assigned here.
    fn owns_whole_input(&self) -> bool {
        (0..2u8).all(|topic| (0..self.partitions).all(|p| self.owned.contains(&(topic, p))))
    }

    /// This instance now holds the whole input: with checkpoints, it continues from the
    /// group's latest one (written by whoever held the input last, this instance
    /// included), from a fresh state when there is none; without, from its own state.
    fn take_charge(&mut self, now: i64) {
        if self.checkpoints.is_some() {
            let config = self.loaded.config.clone();
            match self.restore(&config) {
                Ok(()) => {}
                Err(error) => {
                    // The state topic cannot be read now: stay out of charge; the next
                    // assignment change (or tick) tries again.
                    tracing::warn!(error = %format!("{error:#}"), "restoring the latest checkpoint");
                    return;
                }
            }
        }
        self.in_charge = true;
        self.state.in_charge.store(true, Ordering::Relaxed);
        self.watermark.restart(now);
        tracing::info!(
            partitions = self.partitions,
            "this instance holds every input partition: it closes and publishes windows"
        );
    }

    /// Logs, at most every 30 s, that this instance holds part of the input only.
    fn note_not_in_charge(&mut self) {
        if self.in_charge || !self.state.assigned.load(Ordering::Relaxed) {
            return;
        }
        if self
            .not_in_charge_logged
            .is_none_or(|at| at.elapsed() >= TOPIC_WAIT_LOG)
        {
            tracing::warn!(
                held = self.owned.len(),
                of = 2 * self.partitions,
                "this instance holds part of the input only (another instance of the group \
                 holds the rest: a rolling deploy, or a crashed instance until \
                 session.timeout.ms): it waits, reading nothing into its state; one \
                 instance per consumer group (docs/operations.md)"
            );
            self.not_in_charge_logged = Some(Instant::now());
        }
    }

    /// After a "brokers down" error, the cluster is reachable again. The partitions' silence
    /// during the outage was not idleness: their idle clocks start over.
    fn cluster_back(&mut self) {
        tracing::info!("the cluster is reachable again");
        self.watermark.restart(now_ms());
    }

    fn tick(&mut self, consumer: &InputConsumer) {
        let now = now_ms();
        if silence_was_not_idleness(&self.state, consumer, now) {
            self.watermark.restart(now);
        }
        self.apply_assignment_changes(consumer, now);
        for (topic, partition, lag) in consumer.context().take_lags() {
            if let Some(index) = self.ingest.topic_index(&topic) {
                self.watermark.observe_lag((index, partition), lag);
            }
        }
        self.state
            .assigned
            .store(consumer.context().has_assignment(), Ordering::Relaxed);
        self.note_not_in_charge();
        self.advance(now);
        self.align(consumer, now);
        self.offsets.on_tick(consumer, &self.ingest);
        let telemetry = &self.state.telemetry;
        let engine = self.monitor.engine();
        tracing::trace!(
            stats = ?engine.stats(),
            engine_watermark = engine.watermark(),
            watermark = ?self.watermark.current(now),
            clocks = ?self.watermark,
            assigned = self.state.assigned.load(Ordering::Relaxed),
            "tick"
        );
        telemetry.observe_engine(
            engine.stats(),
            engine.pending_predictions(),
            engine.pending_outcomes(),
            engine.open_windows(),
        );
        let watermark = engine.watermark();
        if watermark > i64::MIN / 2 {
            telemetry
                .watermark_lag
                .set((now.saturating_sub(watermark)) as f64 / 1000.0);
        }
    }

    /// Loads the latest snapshot of the group and continues from it; without one (or
    /// with one of another configuration), from a fresh state at the committed offsets.
    fn restore(&mut self, config: &Config) -> anyhow::Result<()> {
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        let store = &mut checkpoints.store;
        let loaded = tokio::task::block_in_place(|| store.load(config))?;
        // Whatever this process held is replaced: by the snapshot, or by a fresh state.
        self.monitor = self.loaded.monitor()?;
        self.offsets = Offsets::new(config.checkpoint.enabled);
        self.watermark = Watermark::new(
            config.window.allowed_lateness.as_millis_i64(),
            config.window.idle_timeout.as_millis_i64(),
        );
        for &partition in &self.owned {
            self.watermark.assign(partition, now_ms());
        }
        let Some(snapshot) = loaded else {
            tracing::info!("no checkpoint for this group: starting from an empty state");
            return Ok(());
        };
        checkpoints.snapshot_id = snapshot.id;
        if snapshot.shape_fingerprint != checkpoints.shape {
            self.state.telemetry.emit(StateSetAside {
                snapshot: snapshot.id,
            });
            return Ok(());
        }
        let reconfigured = snapshot.config_fingerprint != checkpoints.fingerprint;
        let mut monitor = snapshot.monitor;
        // Rules and drift decisions that changed apply to the restored state (the
        // configuration's rules compiled at start: this cannot fail).
        let changes = if reconfigured {
            Some(monitor.reconfigure(config)?)
        } else {
            None
        };
        self.offsets.restore(&self.ingest, &snapshot.offsets);
        self.monitor = monitor;
        self.watermark = snapshot.watermark;
        self.watermark.restart(now_ms());
        self.state.telemetry.emit(StateRestored {
            snapshot: snapshot.id,
            pending_predictions: self.monitor.engine().pending_predictions(),
            open_windows: self.monitor.engine().open_windows(),
            changes: changes.as_ref(),
        });
        Ok(())
    }

    fn checkpoint_due(&self, config: &Config) -> bool {
        // While the cluster is unreachable a snapshot cannot be stored: waiting for it would
        // only block the loop.
        let Some(checkpoints) = &self.checkpoints else {
            return false;
        };
        self.in_charge
            && config.checkpoint.enabled
            && !self.state.broker_trouble()
            && checkpoints.cadence.due()
    }

    /// Writes a snapshot with the current positions, then commits those positions. A failed
    /// write commits nothing (the next checkpoint tries again). True when stored.
    async fn checkpoint(&mut self, consumer: &InputConsumer) -> bool {
        let started = Instant::now();
        let stored = self.write_checkpoint(consumer).await;
        if let Some(checkpoints) = self.checkpoints.as_mut() {
            checkpoints.cadence.done(started);
        }
        stored
    }

    async fn write_checkpoint(&mut self, consumer: &InputConsumer) -> bool {
        if self.checkpoints.is_none() {
            return false;
        }
        // Every output of the state being saved must be delivered first: after a crash,
        // windows closed before this checkpoint are not emitted again.
        let output = self.publisher.output().clone();
        if let Err(error) = tokio::task::block_in_place(|| output.flush(Duration::from_secs(30))) {
            tracing::warn!(%error, "outputs not delivered yet; checkpoint postponed");
            return false;
        }
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            return false;
        };
        let offsets = self.offsets.by_name(&self.ingest);
        let view = SnapshotView {
            id: checkpoints.snapshot_id + 1,
            shape_fingerprint: checkpoints.shape,
            config_fingerprint: checkpoints.fingerprint,
            offsets: &offsets,
            monitor: &self.monitor,
            watermark: &self.watermark,
            created_at_ms: now_ms(),
        };
        let started = Instant::now();
        match checkpoints.store.save(&view).await {
            Ok(manifest) => {
                checkpoints.snapshot_id = manifest.id;
                self.state.telemetry.emit(CheckpointWritten {
                    snapshot: manifest.id,
                    bytes: manifest.bytes,
                    seconds: started.elapsed().as_secs_f64(),
                    pending_predictions: self.monitor.engine().pending_predictions(),
                    positions: self.offsets.len(),
                });
                self.offsets.commit_checkpointed(consumer, &self.ingest);
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
