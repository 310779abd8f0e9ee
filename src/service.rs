//! The Kafka service (`run`): consume predictions and outcomes, drive the engine, publish
//! what it emits, dead-letter what it cannot use.
//!
//! One task owns the engine and the watermark (no locks on the hot path). Per message:
//! decode, apply to the engine, advance the watermark, publish closed windows, remember the
//! offset. Offsets are stored (for librdkafka's auto-commit) every [`STORE_EVERY`] messages
//! and on each tick, always after the messages they cover were applied. A tick every
//! [`TICK`] applies rebalances to the watermark, advances it while partitions are idle, and
//! refreshes gauges. On shutdown: stop consuming, flush the producer, commit, return.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rdkafka::consumer::{CommitMode, Consumer};
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
use crate::record::{Decoder, Envelope};
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;
use crate::watermark::Watermark;
use crate::webhook::RetrainWebhook;

/// Messages between two offset stores.
pub const STORE_EVERY: u64 = 1000;
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
}

impl SharedState {
    pub fn new(telemetry: Arc<Telemetry>) -> Arc<SharedState> {
        Arc::new(SharedState {
            telemetry,
            latest: Mutex::new(BTreeMap::new()),
            running: AtomicBool::new(false),
            assigned: AtomicBool::new(false),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.running.load(Ordering::Relaxed) && self.assigned.load(Ordering::Relaxed)
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
    consumer
        .subscribe(&[
            &config.kafka.predictions_topic,
            &config.kafka.outcomes_topic,
        ])
        .context("subscribing to the input topics")?;

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
        offsets: HashMap::new(),
        since_store: 0,
        output,
        dead_letters,
        state: state.clone(),
        config,
    };
    state.running.store(true, Ordering::Relaxed);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error_log = Instant::now() - Duration::from_secs(60);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            _ = ticker.tick() => pipeline.tick(&consumer),
            message = consumer.recv() => match message {
                Ok(message) => pipeline.handle(&consumer, &message),
                Err(error) => {
                    if last_error_log.elapsed() > Duration::from_secs(5) {
                        tracing::warn!(%error, "consumer error");
                        last_error_log = Instant::now();
                    }
                }
            },
        }
    }
    state.running.store(false, Ordering::Relaxed);
    tracing::info!("stopping: storing offsets, flushing the producer, committing");
    pipeline.store_offsets(&consumer);
    if let Err(error) = pipeline.output.flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "producer flush incomplete");
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!("offsets committed"),
        // Nothing stored yet is not an error worth failing the shutdown for.
        Err(error) => tracing::warn!(%error, "final commit"),
    }
    Ok(())
}

/// The loop's state.
struct Pipeline {
    config: Config,
    decoder: Decoder,
    monitor: Monitor,
    webhook: Option<RetrainWebhook>,
    watermark: Watermark,
    /// Next offset to commit per (topic, partition), not yet stored.
    offsets: HashMap<(String, i32), i64>,
    since_store: u64,
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

    fn handle(&mut self, consumer: &InputConsumer, message: &BorrowedMessage<'_>) {
        let started = Instant::now();
        let now = now_ms();
        self.apply_assignment_changes(consumer, now);
        let topic = message.topic();
        let partition = message.partition();
        let telemetry = &self.state.telemetry;
        telemetry.input_records.with_label_values(&[topic]).inc();
        let Some(index) = self.topic_index(topic) else {
            return;
        };
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
            self.finish_message(consumer, message, started, now);
            return;
        }
        let envelope = Envelope {
            key: message.key(),
            timestamp_ms: message.timestamp().to_millis(),
        };
        // Ok(event time), or Err(reason) for the dead-letter topic.
        let outcome: Result<i64, String> = if index == 0 {
            match self.decoder.prediction(payload, envelope) {
                Ok(p) if self.implausible(p.ts, now).is_some() => {
                    self.monitor.engine_mut().observe_invalid(Some(p.model));
                    Err(self.implausible(p.ts, now).unwrap_or_default())
                }
                Ok(p) => match self.monitor.engine_mut().observe_prediction(&p) {
                    Ok(_) => Ok(p.ts),
                    // The engine counted the rejection itself.
                    Err(rejection) => Err(rejection.to_string()),
                },
                Err(error) => {
                    self.monitor.engine_mut().observe_invalid(error.model);
                    Err(error.reason)
                }
            }
        } else {
            match self.decoder.outcome(payload, envelope) {
                Ok(o) if self.implausible(o.ts, now).is_some() => {
                    self.monitor.engine_mut().observe_invalid(o.model);
                    Err(self.implausible(o.ts, now).unwrap_or_default())
                }
                Ok(o) => {
                    self.monitor.engine_mut().observe_outcome(&o);
                    Ok(o.ts)
                }
                Err(error) => {
                    self.monitor.engine_mut().observe_invalid(error.model);
                    Err(error.reason)
                }
            }
        };
        match outcome {
            Ok(ts) => self.watermark.observe((index, partition), ts, now),
            Err(reason) => {
                self.watermark.touch((index, partition), now);
                self.dead_letter(message, reason);
            }
        }
        self.finish_message(consumer, message, started, now);
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

    /// After a message: advance the watermark, remember the offset, time it.
    fn finish_message(
        &mut self,
        consumer: &InputConsumer,
        message: &BorrowedMessage<'_>,
        started: Instant,
        now: i64,
    ) {
        self.advance(now);
        self.offsets.insert(
            (message.topic().to_string(), message.partition()),
            message.offset() + 1,
        );
        self.since_store += 1;
        if self.since_store >= STORE_EVERY {
            self.store_offsets(consumer);
        }
        self.state
            .telemetry
            .processing_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// Moves the engine's watermark and publishes the windows that closed.
    fn advance(&mut self, now: i64) {
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

    fn tick(&mut self, consumer: &InputConsumer) {
        let now = now_ms();
        self.apply_assignment_changes(consumer, now);
        self.state
            .assigned
            .store(consumer.context().has_assignment(), Ordering::Relaxed);
        self.advance(now);
        self.store_offsets(consumer);
        let telemetry = &self.state.telemetry;
        let engine = self.monitor.engine();
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

    fn store_offsets(&mut self, consumer: &InputConsumer) {
        self.since_store = 0;
        if self.offsets.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in self.offsets.drain() {
            if list
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .is_err()
            {
                continue;
            }
        }
        if let Err(error) = consumer.store_offsets(&list) {
            // A partition revoked in between: its offsets are no longer ours to store.
            tracing::debug!(%error, "storing offsets");
        }
    }
}
