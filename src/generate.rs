//! `generate` into Kafka: synthetic traffic (see `traffic.rs`) produced in real time, event
//! time = wall clock, until stopped or for a given duration.

use std::time::Duration;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::shutdown::Shutdown;
use crate::traffic::{Stream, TrafficConfig, TrafficGenerator};
use crate::wall_clock::now_ms;

/// Where generated traffic goes.
#[derive(Debug, Clone)]
pub struct TrafficTarget {
    pub bootstrap_servers: String,
    pub predictions_topic: String,
    pub outcomes_topic: String,
    /// Extra librdkafka properties.
    pub client: Vec<(String, String)>,
}

/// Produces traffic until `shutdown` fires or `duration` has passed. Returns the number of
/// messages produced.
pub async fn produce(
    target: TrafficTarget,
    mut traffic: TrafficConfig,
    duration: Option<Duration>,
    mut shutdown: Shutdown,
) -> anyhow::Result<u64> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &target.bootstrap_servers)
        .set("client.id", "feedback-loop-generator")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "60000");
    for (key, value) in &target.client {
        client.set(key, value);
    }
    let producer: FutureProducer = client
        .create()
        .context("creating the generator's producer")?;
    let started = now_ms();
    if traffic.start_ms == 0 {
        traffic.start_ms = started;
    }
    let mut generator = TrafficGenerator::new(traffic);
    let end = duration.map(|d| started + d.as_millis() as i64);
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut produced = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = ticker.tick() => {}
        }
        let now = now_ms();
        // A run of `duration` holds the requests of [started, end): none at `end` itself.
        let due = match end {
            Some(e) if now >= e => generator.before(e),
            _ => generator.until(now),
        };
        for message in due {
            let topic = match message.stream {
                Stream::Predictions => &target.predictions_topic,
                Stream::Outcomes => &target.outcomes_topic,
            };
            let record = FutureRecord::to(topic)
                .key(&message.key)
                .payload(&message.payload)
                .timestamp(message.ts);
            // Enqueue without waiting for delivery; back off while the queue is full.
            let mut pending = record;
            loop {
                match producer.send_result(pending) {
                    Ok(_delivery) => break,
                    Err((error, back)) => {
                        if !matches!(
                            error,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ) {
                            return Err(error).context("producing generated traffic");
                        }
                        pending = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            produced += 1;
        }
        if end.is_some_and(|e| now >= e) {
            break;
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing generated traffic")?;
    Ok(produced)
}
