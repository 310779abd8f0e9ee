//! The service loop of `scale.mode = "partitioned"`: several instances of one consumer
//! group share the input, and publish what one instance would (docs/operations.md,
//! "Several instances"; docs/semantics.md, "The partitioned engine").
//!
//! Every instance runs two parts in one loop:
//! - its **tasks** (`tasks::TaskSet`): one engine shard per input partition pair it holds
//!   in the input group, sending partial windows and markers to the partials topic;
//! - the **finalizer** (`final_stage::FinalStage`), on the instance that holds task 0:
//!   it reads the partials topic, merges the partials and publishes. With one instance,
//!   both run here: no extra deployment.
//!
//! The finalizer is polled first (biased select): its input is small, and a busy input
//! must not starve it. Housekeeping (rebalances, markers, checkpoints) runs on the clock,
//! as in the one-instance loop. On shutdown: the tasks are checkpointed and their offsets
//! committed, then the finalizer.

pub(crate) mod final_stage;
pub(crate) mod tasks;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use rdkafka::consumer::Consumer;

use crate::config::LoadedConfig;
use crate::kafka::client;
use crate::kafka::consumer::{InputConsumer, InputContext};
use crate::kafka::dead_letter::DeadLetterQueue;
use crate::kafka::log_limit::{Producer, QuietContext};
use crate::kafka::partials::{final_consumer, FinalConsumer, PartialsSender};
use crate::kafka::producer::OutputProducer;
use crate::kafka::state_store::StateStore;
use crate::pipeline::{consumer_error, take_batch, wait_for_input_topics, TICK, YIELD_EVERY};
use crate::publisher::Publisher;
use crate::shared_state::SharedState;
use crate::shutdown::Shutdown;
use crate::wall_clock::now_ms;
use crate::webhook::RetrainWebhook;

use final_stage::FinalStage;
use tasks::TaskSet;

/// The finalizer runs where task 0 runs: started when it arrives, stopped when it leaves.
fn follow_task_zero(
    tasks: &TaskSet,
    finals: &mut FinalStage,
    reader: &FinalConsumer,
) -> anyhow::Result<()> {
    match (tasks.runs(0), finals.holds()) {
        (true, false) => finals.acquire(reader),
        (false, true) => {
            finals.release(reader);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Runs the partitioned service until `shutdown` fires.
pub async fn run(
    loaded: LoadedConfig,
    state: Arc<SharedState>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let config = &loaded.config;
    let telemetry = state.telemetry.clone();
    telemetry.initialise(config);
    let consumer: InputConsumer = client::consumer(config)
        .create_with_context(InputContext::new(telemetry.clone()))
        .context("creating the Kafka consumer")?;
    let Some(partitions) = wait_for_input_topics(config, &mut shutdown).await? else {
        return Ok(());
    };
    tracing::info!(
        bootstrap = %config.kafka.bootstrap_servers,
        group = %config.kafka.group_id,
        partitions,
        partials_topic = %config.scale.partials_topic,
        "input topics checked; partitioned engine: one task per input partition"
    );
    let producer: Producer = client::producer(config)
        .create_with_context(QuietContext)
        .context("creating the Kafka producer")?;
    let webhook = match &config.retrain.webhook {
        Some(webhook) => Some(RetrainWebhook::new(webhook.clone(), telemetry.clone())?),
        None => None,
    };
    let sender = PartialsSender::open(config).await?;
    let mut tasks = TaskSet::new(
        config,
        partitions,
        sender,
        StateStore::open(config).await?,
        DeadLetterQueue::new(
            producer.clone(),
            config.kafka.dead_letter_topic.clone(),
            telemetry.clone(),
        ),
        state.clone(),
    );
    let mut finals = FinalStage::new(
        loaded.clone(),
        partitions as u32,
        StateStore::open(config).await?,
        Publisher::new(
            OutputProducer::new(producer, telemetry.clone()),
            webhook,
            &config.kafka,
            state.clone(),
        ),
        state.clone(),
    );
    let final_consumer = final_consumer(config)?;
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
    let mut last_final_error_log = Instant::now() - Duration::from_secs(60);
    let mut last_tick = Instant::now();
    let mut stream = consumer.stream();
    let mut partials = final_consumer.stream();
    let mut since_yield = 0u32;
    let result: anyhow::Result<()> = loop {
        let step: anyhow::Result<()> = tokio::select! {
            biased;
            _ = shutdown.recv() => break Ok(()),
            _ = ticker.tick() => Ok(()),
            message = partials.next() => match message {
                Some(Ok(message)) => finals.handle(&message),
                Some(Err(error)) => {
                    consumer_error(&state, &error, &mut last_final_error_log);
                    Ok(())
                }
                None => break Ok(()),
            },
            message = stream.next() => match message {
                Some(Ok(message)) => {
                    if state.broker_error_at.swap(0, Ordering::Relaxed) != 0 {
                        tasks.cluster_back();
                    }
                    let (batch, error) = take_batch(&mut stream, message);
                    since_yield += batch.len() as u32 - 1;
                    let handled = tasks
                        .handle_batch(&consumer, &batch)
                        .and_then(|()| follow_task_zero(&tasks, &mut finals, &final_consumer));
                    if let Some(error) = error {
                        consumer_error(&state, &error, &mut last_error_log);
                    }
                    handled
                }
                Some(Err(error)) => {
                    consumer_error(&state, &error, &mut last_error_log);
                    Ok(())
                }
                None => break Ok(()),
            },
        };
        if let Err(error) = step {
            break Err(error);
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            if let Err(error) = tasks
                .tick(&consumer)
                .and_then(|()| follow_task_zero(&tasks, &mut finals, &final_consumer))
            {
                break Err(error);
            }
            state.in_charge.store(finals.holds(), Ordering::Relaxed);
            if tasks.delivery_failed() {
                break Err(anyhow::anyhow!(
                    "a partial window could not be delivered to `{}`: stopping, so that the \
                     tasks continue from their checkpoints",
                    config.scale.partials_topic
                ));
            }
            if tasks.checkpoint_due() {
                tasks.checkpoint(&consumer).await;
            }
            if finals.checkpoint_due() {
                finals.checkpoint().await;
            }
        }
        since_yield += 1;
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    };
    drop(stream);
    drop(partials);
    state.running.store(false, Ordering::Relaxed);
    // On an error the state since the last checkpoints is not saved: the tasks and the
    // finalizer continue from those (here after a restart, or on other instances).
    result?;
    tracing::info!(
        tasks = tasks.running(),
        finalizer = finals.holds(),
        "stopping: checkpointing the tasks, then the finalizer; committing"
    );
    tasks.finish(&consumer).await;
    // What the tasks sent last is taken before the finalizer's last checkpoint, when it is
    // in this instance (as with one instance): read the partials topic up to its end.
    if finals.holds() {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(300), final_consumer.recv()).await {
                Ok(Ok(message)) => finals.handle(&message)?,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        finals.checkpoint().await;
    }
    if let Err(error) = finals.publisher().output().flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "producer flush incomplete");
    }
    Ok(())
}
