//! The dead-letter topic: a message that cannot be used is produced there with its original
//! key and bytes, and headers saying why and where it came from. A failed produce is retried
//! with backoff until it succeeds or the service stops; it is never dropped silently.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::telemetry::Telemetry;

/// Where a bad message came from, and why it is bad.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub source_topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: String,
}

impl DeadLetter {
    fn headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let timestamp = self.timestamp_ms.map(|t| t.to_string()).unwrap_or_default();
        OwnedHeaders::new()
            .insert(Header {
                key: "feedback-loop.reason",
                value: Some(self.reason.as_bytes()),
            })
            .insert(Header {
                key: "feedback-loop.source.topic",
                value: Some(self.source_topic.as_bytes()),
            })
            .insert(Header {
                key: "feedback-loop.source.partition",
                value: Some(partition.as_bytes()),
            })
            .insert(Header {
                key: "feedback-loop.source.offset",
                value: Some(offset.as_bytes()),
            })
            .insert(Header {
                key: "feedback-loop.source.timestamp",
                value: Some(timestamp.as_bytes()),
            })
    }
}

#[derive(Clone)]
pub struct DeadLetterQueue {
    producer: FutureProducer,
    topic: String,
    telemetry: Arc<Telemetry>,
}

impl DeadLetterQueue {
    pub fn new(producer: FutureProducer, topic: String, telemetry: Arc<Telemetry>) -> Self {
        DeadLetterQueue {
            producer,
            topic,
            telemetry,
        }
    }

    /// Enqueues a dead letter; delivery (with retries) continues in the background.
    pub fn send(&self, letter: DeadLetter) {
        self.telemetry
            .dead_letters
            .with_label_values(&[letter.source_topic.as_str()])
            .inc();
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let mut record = FutureRecord::to(&this.topic)
                    .payload(&letter.payload)
                    .headers(letter.headers());
                if let Some(key) = &letter.key {
                    record = record.key(key);
                }
                match this.producer.send(record, Duration::from_secs(30)).await {
                    Ok(_) => return,
                    Err((error, _)) => {
                        this.telemetry.dead_letter_failures.inc();
                        tracing::warn!(%error, topic = %this.topic, source = %letter.source_topic,
                            offset = letter.offset, "dead letter not delivered, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }
}
