//! The Kafka service (`run`): consume predictions and outcomes, drive the engine, publish
//! what it emits, dead-letter what it cannot use.
//!
//! One task owns the engine and the watermark (no locks on the hot path). The messages
//! already fetched are taken in batches of up to [`DECODE_BATCH`] and decoded together; then
//! per message: apply to the engine, advance the watermark, publish closed windows, remember
//! the offset. With checkpoints (the default), the state is snapshotted to the state topic every
//! `checkpoint.interval` with the offsets it reflects, and only then are those offsets
//! committed: committed offsets never run ahead of a checkpoint. On start the latest
//! snapshot is restored and messages below its offsets are skipped. Without checkpoints,
//! offsets are stored for librdkafka's auto-commit every [`STORE_EVERY`] messages and on
//! each tick, after the messages they cover were applied (at-least-once, state lost on a
//! crash). A tick every
//! [`TICK`] applies rebalances to the watermark, advances it while partitions are idle, and
//! refreshes gauges. On shutdown: stop consuming, flush the producer, commit, return.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::kafka::client;
use crate::kafka::consumer::{AssignmentChange, InputConsumer, InputContext};
use crate::kafka::dead_letter::{DeadLetter, DeadLetterQueue};
use crate::kafka::producer::OutputProducer;
use crate::monitor::{Emitted, Monitor};
use crate::output::MetricsRecord;
use crate::record::{DecodeError, Decoder, Envelope, Input, Record, DECODE_BATCH};
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;
use crate::watermark::Watermark;
use crate::webhook::RetrainWebhook;

/// Messages between two offset stores.
pub const STORE_EVERY: u64 = 1000;
/// How long the consume loop may go without a turn before the service reports not ready.
/// It only blocks that long waiting on the cluster (a checkpoint's flush or write that began
/// as the cluster became unreachable, before the loop saw the "brokers down" error).
pub const LOOP_STALL_MS: i64 = 10_000;
/// Messages handled between two yields to the scheduler.
pub const YIELD_EVERY: u32 = 256;
/// Period of the housekeeping tick.
pub const TICK: Duration = Duration::from_millis(500);

/// What the HTTP side and the demo read while the service runs.
pub struct SharedState {
    pub telemetry: Arc<Telemetry>,
    /// The latest unsegmented record per `model/version`.
    pub latest: Mutex<BTreeMap<String, MetricsRecord>>,
    /// True while the consume loop runs.
    pub running: AtomicBool,
    /// True while partitions are assigned.
    pub assigned: AtomicBool,
    /// Wall-clock time of the latest "brokers down" error, 0 once the cluster is reachable
    /// again: a message arrived, or the consumer's statistics showed a broker connected since.
    pub broker_error_at: std::sync::atomic::AtomicI64,
    /// Wall-clock time of the consume loop's latest housekeeping tick (every [`TICK`]).
    pub loop_at: std::sync::atomic::AtomicI64,
}

impl SharedState {
    pub fn new(telemetry: Arc<Telemetry>) -> Arc<SharedState> {
        Arc::new(SharedState {
            telemetry,
            latest: Mutex::new(BTreeMap::new()),
            running: AtomicBool::new(false),
            assigned: AtomicBool::new(false),
            broker_error_at: std::sync::atomic::AtomicI64::new(0),
            loop_at: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// A "brokers down" error came, and the cluster has not been seen reachable since.
    pub fn broker_trouble(&self) -> bool {
        self.broker_error_at.load(Ordering::Relaxed) != 0
    }

    pub fn is_ready(&self) -> bool {
        self.running.load(Ordering::Relaxed)
            && self.assigned.load(Ordering::Relaxed)
            && !self.broker_trouble()
            && now_ms().saturating_sub(self.loop_at.load(Ordering::Relaxed)) < LOOP_STALL_MS
    }
}

/// Wall-clock milliseconds: the shell's clock, passed into the core.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the service until `shutdown` fires.
pub async fn run(
    config: Config,
    state: Arc<SharedState>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let telemetry = state.telemetry.clone();
    let consumer: InputConsumer = client::consumer(&config)
        .create_with_context(InputContext::new(telemetry.clone()))
        .context("creating the Kafka consumer")?;
    let partitions = {
        let base = client::consumer(&config).create::<rdkafka::consumer::BaseConsumer>()?;
        client::check_input_topics(&base, &config, Duration::from_secs(10))?
    };
    tracing::info!(
        bootstrap = %config.kafka.bootstrap_servers,
        group = %config.kafka.group_id,
        partitions,
        "input topics checked"
    );
    let producer: FutureProducer = client::producer(&config)
        .create()
        .context("creating the Kafka producer")?;
    let output = OutputProducer::new(producer.clone(), telemetry.clone());
    let dead_letters = DeadLetterQueue::new(
        producer,
        config.kafka.dead_letter_topic.clone(),
        telemetry.clone(),
    );
    let mut pipeline = Pipeline {
        decoder: Decoder::new(&config),
        monitor: Monitor::new(&config)?,
        webhook: match &config.retrain.webhook {
            Some(webhook) => Some(RetrainWebhook::new(webhook.clone(), telemetry.clone())?),
            None => None,
        },
        watermark: Watermark::new(
            config.window.allowed_lateness.as_millis_i64(),
            config.window.idle_timeout.as_millis_i64(),
        ),
        positions: BTreeMap::new(),
        since_store: 0,
        store: None,
        snapshot_id: 0,
        last_checkpoint: Instant::now(),
        checkpoint_cost: Duration::ZERO,
        input_counters: [
            telemetry
                .input_records
                .with_label_values(&[config.kafka.predictions_topic.as_str()]),
            telemetry
                .input_records
                .with_label_values(&[config.kafka.outcomes_topic.as_str()]),
        ],
        output,
        dead_letters,
        state: state.clone(),
        config,
    };
    if pipeline.config.checkpoint.enabled {
        pipeline.restore().await?;
    }
    // Join the group only now: partitions assigned during a long restore would sit unread.
    consumer
        .subscribe(&[
            &pipeline.config.kafka.predictions_topic,
            &pipeline.config.kafka.outcomes_topic,
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
                    // The messages already fetched join it, up to DECODE_BATCH: they are
                    // decoded together, then applied one by one, in order.
                    let mut batch = Vec::with_capacity(DECODE_BATCH);
                    batch.push(message);
                    let mut error = None;
                    let mut no_wait = std::task::Context::from_waker(Waker::noop());
                    while batch.len() < DECODE_BATCH {
                        match stream.poll_next_unpin(&mut no_wait) {
                            Poll::Ready(Some(Ok(message))) => batch.push(message),
                            Poll::Ready(Some(Err(e))) => {
                                error = Some(e);
                                break;
                            }
                            Poll::Ready(None) | Poll::Pending => break,
                        }
                    }
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
            if pipeline.checkpoint_due() {
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
    tracing::info!("stopping: flushing the producer, writing a checkpoint, committing");
    let committable = if pipeline.config.checkpoint.enabled {
        pipeline.checkpoint(&consumer).await
    } else {
        pipeline.store_offsets(&consumer);
        true
    };
    if let Err(error) = pipeline.output.flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "producer flush incomplete");
    }
    // Commit exactly the positions the state (and the last checkpoint) reflects.
    if committable && !pipeline.positions.is_empty() {
        match consumer.commit(&pipeline.position_list(), CommitMode::Sync) {
            Ok(()) => tracing::info!("offsets committed"),
            Err(error) => tracing::warn!(%error, "final commit"),
        }
    }
    Ok(())
}

/// Notes a consumer error: a cluster that cannot be reached makes the service not ready
/// (librdkafka reconnects with backoff by itself; the state stays). Logged at most every 5 s.
fn consumer_error(state: &SharedState, error: &KafkaError, last_log: &mut Instant) {
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

/// The loop's state.
struct Pipeline {
    config: Config,
    decoder: Decoder,
    monitor: Monitor,
    webhook: Option<RetrainWebhook>,
    watermark: Watermark,
    /// Next offset to read per (topic index, partition): what the state reflects.
    positions: BTreeMap<(u8, i32), i64>,
    since_store: u64,
    store: Option<crate::kafka::state_store::StateStore>,
    snapshot_id: u64,
    /// When the last checkpoint finished, and how long it took.
    last_checkpoint: Instant,
    checkpoint_cost: Duration,
    /// `input_records_total` of the predictions and the outcomes topic, resolved once.
    input_counters: [prometheus::IntCounter; 2],
    output: OutputProducer,
    dead_letters: DeadLetterQueue,
    state: Arc<SharedState>,
}

impl Pipeline {
    fn topic_index(&self, topic: &str) -> Option<u8> {
        if topic == self.config.kafka.predictions_topic {
            Some(0)
        } else if topic == self.config.kafka.outcomes_topic {
            Some(1)
        } else {
            None
        }
    }

    /// Decodes a batch of messages (see [`DECODE_BATCH`]), then handles them in order. The
    /// wall clock is read once per batch, and `processing_seconds` gives each message its
    /// own handling time plus an equal share of the batch's decoding.
    fn handle_batch(&mut self, consumer: &InputConsumer, messages: &[BorrowedMessage<'_>]) {
        let started = Instant::now();
        let now = now_ms();
        // Rebalances are reported while polling, and the batch was polled whole: applying
        // them once, before its first message, is what applying them per message did.
        self.apply_assignment_changes(consumer, now);
        let decoded: Vec<_> = messages.iter().map(|m| self.decode(m)).collect();
        let mut last = Instant::now();
        let decode_share = last.duration_since(started) / messages.len().max(1) as u32;
        for (message, decoded) in messages.iter().zip(decoded) {
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
    }

    /// A message's record, or `None` for a message that is not decoded (another topic, or
    /// one over `limits.max_message_bytes`). Pure: it changes nothing.
    fn decode<'m>(
        &self,
        message: &'m BorrowedMessage<'_>,
    ) -> Option<Result<Record<'m>, DecodeError>> {
        let input = self.input_of(message.topic())?;
        let payload = message.payload().unwrap_or(&[]);
        if payload.len() > self.config.limits.max_message_bytes {
            return None;
        }
        let envelope = Envelope {
            key: message.key(),
            timestamp_ms: message.timestamp().to_millis(),
        };
        Some(self.decoder.decode(input, payload, envelope))
    }

    fn input_of(&self, topic: &str) -> Option<Input> {
        match self.topic_index(topic)? {
            0 => Some(Input::Predictions),
            _ => Some(Input::Outcomes),
        }
    }

    /// Applies one message, decoded beforehand by [`Pipeline::decode`], at wall-clock time
    /// `now`; false for a message passed over (another topic, or already in the state).
    fn handle(
        &mut self,
        consumer: &InputConsumer,
        message: &BorrowedMessage<'_>,
        decoded: Option<Result<Record<'_>, DecodeError>>,
        now: i64,
    ) -> bool {
        let topic = message.topic();
        let partition = message.partition();
        let Some(index) = self.topic_index(topic) else {
            return false;
        };
        self.input_counters[index as usize].inc();
        // Already reflected in the state: after a restore (the group's committed offsets may
        // be older than the snapshot's) and after a rebalance that hands back a partition
        // this instance kept reading (it restarts at the last commit).
        if self
            .positions
            .get(&(index, partition))
            .is_some_and(|&next| message.offset() < next)
        {
            return false;
        }
        let payload = message.payload().unwrap_or(&[]);
        let limits = &self.config.limits;
        if payload.len() > limits.max_message_bytes {
            let reason = format!(
                "message of {} bytes exceeds limits.max_message_bytes ({})",
                payload.len(),
                limits.max_message_bytes
            );
            self.monitor.engine_mut().observe_invalid(None);
            self.watermark.touch((index, partition), now);
            self.dead_letter(message, reason);
            self.finish_message(consumer, message, now);
            return true;
        }
        // `decode` returned `None` only for what was turned away above.
        let Some(decoded) = decoded else {
            return false;
        };
        // Ok(event time), or Err(reason) for the dead-letter topic.
        let outcome: Result<i64, String> = match decoded {
            Ok(record) => match self.implausible(record.ts(), now) {
                Some(reason) => {
                    self.monitor.engine_mut().observe_invalid(record.model());
                    Err(reason)
                }
                None => match self.monitor.engine_mut().observe(&record) {
                    Ok(_) => Ok(record.ts()),
                    // The engine counted the rejection itself.
                    Err(rejection) => Err(rejection.to_string()),
                },
            },
            Err(error) => {
                self.monitor.engine_mut().observe_invalid(error.model);
                Err(error.reason)
            }
        };
        match outcome {
            Ok(ts) => self.watermark.observe((index, partition), ts, now),
            Err(reason) => {
                self.watermark.touch((index, partition), now);
                self.dead_letter(message, reason);
            }
        }
        self.finish_message(consumer, message, now);
        true
    }

    /// Why an event time cannot be right, judged by the wall clock; `None` if plausible.
    fn implausible(&self, ts: i64, now: i64) -> Option<String> {
        let limits = &self.config.limits;
        let skew = limits.max_clock_skew.as_millis_i64();
        if ts > now.saturating_add(skew) {
            return Some(format!(
                "timestamp {} is more than limits.max_clock_skew ({}) in the future",
                crate::output::rfc3339(ts),
                limits.max_clock_skew
            ));
        }
        let age = limits.max_event_age.as_millis_i64();
        if age > 0 && ts < now.saturating_sub(age) {
            return Some(format!(
                "timestamp {} is older than limits.max_event_age ({})",
                crate::output::rfc3339(ts),
                limits.max_event_age
            ));
        }
        None
    }

    /// Sends a message to the dead-letter topic. A payload over `limits.max_message_bytes`
    /// is cut to that size (header `feedback-loop.truncated` gives the original length), so
    /// that the dead letter itself can be produced.
    fn dead_letter(&self, message: &BorrowedMessage<'_>, reason: String) {
        let payload = message.payload().unwrap_or(&[]);
        let limit = self.config.limits.max_message_bytes;
        self.dead_letters.send(DeadLetter {
            source_topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            payload: payload[..payload.len().min(limit)].to_vec(),
            original_length: (payload.len() > limit).then_some(payload.len()),
            reason,
        });
    }

    /// After a message: advance the watermark, remember the offset.
    fn finish_message(
        &mut self,
        consumer: &InputConsumer,
        message: &BorrowedMessage<'_>,
        now: i64,
    ) {
        self.advance(now);
        if let Some(index) = self.topic_index(message.topic()) {
            self.positions
                .insert((index, message.partition()), message.offset() + 1);
        }
        self.since_store += 1;
        if self.since_store >= STORE_EVERY && !self.config.checkpoint.enabled {
            self.store_offsets(consumer);
        }
    }

    /// Moves the engine's watermark and publishes the windows that closed.
    fn advance(&mut self, now: i64) {
        // Without an assignment, silence means nothing (a rebalance, a restart): event time
        // must not move on with the wall clock then. Nor while the cluster is unreachable:
        // what is produced meanwhile arrives when it is back.
        if !self.state.assigned.load(Ordering::Relaxed) || self.state.broker_trouble() {
            return;
        }
        let Some(watermark) = self.watermark.current(now) else {
            return;
        };
        let emitted = self.monitor.advance_watermark(watermark);
        if !emitted.is_empty() {
            self.publish(emitted);
        }
    }

    fn publish(&mut self, emitted: Emitted) {
        let telemetry = &self.state.telemetry;
        for event in &emitted.events {
            telemetry.observe_event(event);
            let json = match event.to_json() {
                Ok(json) => json,
                Err(error) => {
                    tracing::error!(%error, "could not serialize a rule event");
                    continue;
                }
            };
            let topic = match event {
                crate::rules::RuleEvent::Alert(alert) => {
                    tracing::warn!(alert = %alert.alert_id, status = ?alert.status, "{}", alert.summary);
                    &self.config.kafka.alerts_topic
                }
                crate::rules::RuleEvent::Retrain(trigger) => {
                    tracing::warn!(trigger = %trigger.trigger_id, rules = ?trigger.rules, "retrain trigger");
                    if let Some(webhook) = &self.webhook {
                        webhook.send(trigger.trigger_id.clone(), json.clone());
                    }
                    &self.config.kafka.retrain_topic
                }
            };
            self.output.send(topic, event.kafka_key().to_string(), json);
        }
        if !emitted.events.is_empty() {
            telemetry.set_firing_alerts(self.monitor.rules());
        }
        for record in emitted.metrics {
            telemetry.observe_record(&record);
            match serde_json::to_string(&record) {
                Ok(json) => {
                    self.output
                        .send(&self.config.kafka.metrics_topic, record.model.clone(), json)
                }
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

    /// Applies rebalances to the watermark's partition set. Called before every message, so
    /// that a newly assigned partition holds the watermark back before any message counts.
    fn apply_assignment_changes(&mut self, consumer: &InputConsumer, now: i64) {
        let changes = consumer.context().take_changes();
        if changes.is_empty() {
            return;
        }
        self.state
            .assigned
            .store(consumer.context().has_assignment(), Ordering::Relaxed);
        for change in changes {
            match change {
                AssignmentChange::Assigned(list) => {
                    for (topic, partition) in list {
                        if let Some(index) = self.topic_index(&topic) {
                            self.watermark.assign((index, partition), now);
                        }
                    }
                }
                AssignmentChange::Revoked(list) => {
                    for (topic, partition) in list {
                        if let Some(index) = self.topic_index(&topic) {
                            self.watermark.revoke((index, partition));
                        }
                    }
                }
            }
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
        let error_at = self.state.broker_error_at.load(Ordering::Relaxed);
        if error_at != 0 && consumer.context().broker_up_at() > error_at {
            self.state.broker_error_at.store(0, Ordering::Relaxed);
            self.cluster_back();
        }
        // The loop was stuck (waiting on the cluster): the partitions were not idle, the
        // service was not reading; their clocks start over.
        let previous = self.state.loop_at.swap(now, Ordering::Relaxed);
        if now.saturating_sub(previous) > LOOP_STALL_MS {
            self.watermark.restart(now);
        }
        self.apply_assignment_changes(consumer, now);
        for (topic, partition, lag) in consumer.context().take_lags() {
            if let Some(index) = self.topic_index(&topic) {
                self.watermark.observe_lag((index, partition), lag);
            }
        }
        self.state
            .assigned
            .store(consumer.context().has_assignment(), Ordering::Relaxed);
        self.advance(now);
        if !self.config.checkpoint.enabled {
            self.store_offsets(consumer);
        }
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

    /// The positions as a partition list with topic names.
    fn position_list(&self) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (&(index, partition), &offset) in &self.positions {
            let topic = if index == 0 {
                &self.config.kafka.predictions_topic
            } else {
                &self.config.kafka.outcomes_topic
            };
            let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
        }
        list
    }

    /// Without checkpoints: hands the positions to librdkafka's auto-commit.
    fn store_offsets(&mut self, consumer: &InputConsumer) {
        self.since_store = 0;
        if self.positions.is_empty() {
            return;
        }
        if let Err(error) = consumer.store_offsets(&self.position_list()) {
            // A partition revoked in between: its offsets are no longer ours to store.
            tracing::debug!(%error, "storing offsets");
        }
    }

    /// Loads the latest snapshot of the group and continues from it.
    async fn restore(&mut self) -> anyhow::Result<()> {
        let mut store = crate::kafka::state_store::StateStore::open(&self.config).await?;
        let config = self.config.clone();
        let loaded = tokio::task::block_in_place(|| store.load(&config))?;
        self.store = Some(store);
        let Some(snapshot) = loaded else {
            tracing::info!("no checkpoint for this group: starting from an empty state");
            return Ok(());
        };
        if snapshot.config_fingerprint != crate::checkpoint::config_fingerprint(&self.config) {
            tracing::warn!(
                snapshot = snapshot.id,
                "the configuration changed since the checkpoint: its state is not restored; \
                 reading resumes at the group's committed offsets with an empty state"
            );
            self.snapshot_id = snapshot.id;
            return Ok(());
        }
        let now = now_ms();
        for ((topic, partition), offset) in &snapshot.offsets {
            if let Some(index) = self.topic_index(topic) {
                self.positions.insert((index, *partition), *offset);
            }
        }
        self.monitor = snapshot.monitor;
        self.watermark = snapshot.watermark;
        self.watermark.restart(now);
        self.snapshot_id = snapshot.id;
        tracing::info!(
            snapshot = snapshot.id,
            pending = self.monitor.engine().pending_predictions(),
            open_windows = self.monitor.engine().open_windows(),
            "restored the state from the latest checkpoint"
        );
        Ok(())
    }

    fn checkpoint_due(&self) -> bool {
        // While the cluster is unreachable a snapshot cannot be stored: waiting for it would
        // only block the loop.
        self.config.checkpoint.enabled
            && !self.state.broker_trouble()
            && self.store.is_some()
            // A large state on a slow broker: checkpoints take at most a fifth of the time.
            && self.last_checkpoint.elapsed()
                >= self.config.checkpoint.interval.0.max(self.checkpoint_cost * 4)
    }

    /// Writes a snapshot with the current positions, then commits those positions. A failed
    /// write commits nothing (the next checkpoint tries again).
    async fn checkpoint(&mut self, consumer: &InputConsumer) -> bool {
        let started = Instant::now();
        let stored = self.write_checkpoint(consumer).await;
        self.checkpoint_cost = started.elapsed();
        self.last_checkpoint = Instant::now();
        stored
    }

    async fn write_checkpoint(&mut self, consumer: &InputConsumer) -> bool {
        if self.store.is_none() {
            return false;
        }
        // Every output of the state being saved must be delivered first: after a crash,
        // windows closed before this checkpoint are not emitted again.
        let output = self.output.clone();
        if let Err(error) = tokio::task::block_in_place(|| output.flush(Duration::from_secs(30))) {
            tracing::warn!(%error, "outputs not delivered yet; checkpoint postponed");
            return false;
        }
        let Some(store) = self.store.as_mut() else {
            return false;
        };
        let offsets: BTreeMap<(String, i32), i64> = self
            .positions
            .iter()
            .map(|(&(index, partition), &offset)| {
                let topic = if index == 0 {
                    self.config.kafka.predictions_topic.clone()
                } else {
                    self.config.kafka.outcomes_topic.clone()
                };
                ((topic, partition), offset)
            })
            .collect();
        let view = crate::checkpoint::SnapshotView {
            id: self.snapshot_id + 1,
            config_fingerprint: crate::checkpoint::config_fingerprint(&self.config),
            offsets: &offsets,
            monitor: &self.monitor,
            watermark: &self.watermark,
            created_at_ms: now_ms(),
        };
        let started = Instant::now();
        match store.save(&view).await {
            Ok(manifest) => {
                self.snapshot_id = manifest.id;
                tracing::debug!(
                    snapshot = manifest.id,
                    bytes = manifest.bytes,
                    pending = self.monitor.engine().pending_predictions(),
                    positions = self.positions.len(),
                    "checkpoint written"
                );
                let telemetry = &self.state.telemetry;
                telemetry.checkpoints.inc();
                telemetry.checkpoint_bytes.set(manifest.bytes as i64);
                telemetry
                    .checkpoint_seconds
                    .observe(started.elapsed().as_secs_f64());
                if !self.positions.is_empty() {
                    if let Err(error) = consumer.commit(&self.position_list(), CommitMode::Async) {
                        tracing::warn!(%error, "committing offsets after a checkpoint");
                    }
                }
                true
            }
            Err(error) => {
                self.state.telemetry.checkpoint_failures.inc();
                tracing::error!(error = %format!("{error:#}"), "checkpoint failed; offsets not committed");
                false
            }
        }
    }
}
