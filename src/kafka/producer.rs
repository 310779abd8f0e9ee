//! Producing output records (metrics, alerts, triggers) without blocking the input loop:
//! each send is enqueued at once and its delivery awaited in a task that counts failures.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureRecord;

use super::log_limit::Producer;
use crate::telemetry::events::{OutputDelivered, OutputFailed};
use crate::telemetry::Telemetry;

/// The output side: one idempotent producer for every output topic.
#[derive(Clone)]
pub struct OutputProducer {
    producer: Producer,
    telemetry: Arc<Telemetry>,
}

impl OutputProducer {
    pub fn new(producer: Producer, telemetry: Arc<Telemetry>) -> Self {
        OutputProducer {
            producer,
            telemetry,
        }
    }

    /// Sends `payload` to `topic` with `key`. librdkafka retries on its own (idempotent
    /// producer, `message.timeout.ms`); what still fails is counted and logged.
    pub fn send(&self, topic: &str, key: String, payload: String) {
        let producer = self.producer.clone();
        let telemetry = self.telemetry.clone();
        let topic = topic.to_string();
        tokio::spawn(async move {
            let record = FutureRecord::to(&topic).key(&key).payload(&payload);
            match producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => telemetry.emit(OutputDelivered { topic: &topic }),
                Err((error, _)) => telemetry.emit(OutputFailed {
                    topic: &topic,
                    key: &key,
                    error: &error,
                }),
            }
        });
    }

    /// Waits until everything enqueued was delivered (or `timeout` passed).
    pub fn flush(&self, timeout: Duration) -> rdkafka::error::KafkaResult<()> {
        use rdkafka::producer::Producer;
        self.producer.flush(timeout)
    }
}
