//! Producing output records (metrics, alerts, triggers) without blocking the input loop:
//! each send is enqueued at once and its delivery awaited in a task that counts failures.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::telemetry::Telemetry;

/// The output side: one idempotent producer for every output topic.
#[derive(Clone)]
pub struct OutputProducer {
    producer: FutureProducer,
    telemetry: Arc<Telemetry>,
}

impl OutputProducer {
    pub fn new(producer: FutureProducer, telemetry: Arc<Telemetry>) -> Self {
        OutputProducer {
            producer,
            telemetry,
        }
    }

    pub fn inner(&self) -> &FutureProducer {
        &self.producer
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
                Ok(_) => telemetry
                    .output_records
                    .with_label_values(&[topic.as_str()])
                    .inc(),
                Err((error, _)) => {
                    telemetry
                        .output_errors
                        .with_label_values(&[topic.as_str()])
                        .inc();
                    tracing::error!(%topic, %key, %error, "could not produce an output record");
                }
            }
        });
    }

    /// Waits until everything enqueued was delivered (or `timeout` passed).
    pub fn flush(&self, timeout: Duration) -> rdkafka::error::KafkaResult<()> {
        use rdkafka::producer::Producer;
        self.producer.flush(timeout)
    }
}
