//! The dead-letter topic: a message that cannot be used is produced there with its original
//! key and bytes, and headers saying why and where it came from. A failed produce is retried
//! with backoff until it succeeds or the service stops; it is never dropped silently.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::log_limit::Producer;
use crate::telemetry::events::DeadLetterRetry;
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
    /// Set when `payload` was cut: the original length.
    pub original_length: Option<usize>,
    pub reason: String,
}

impl DeadLetter {
    fn headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let timestamp = self.timestamp_ms.map(|t| t.to_string()).unwrap_or_default();
        let original = self.original_length.map(|n| n.to_string());
        let mut headers = OwnedHeaders::new();
        for (key, value) in [
            ("feedback-loop.reason", Some(self.reason.as_str())),
            (
                "feedback-loop.source.topic",
                Some(self.source_topic.as_str()),
            ),
            ("feedback-loop.source.partition", Some(partition.as_str())),
            ("feedback-loop.source.offset", Some(offset.as_str())),
            ("feedback-loop.source.timestamp", Some(timestamp.as_str())),
            ("feedback-loop.truncated", original.as_deref()),
        ] {
            if let Some(value) = value {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
        }
        headers
    }
}

#[derive(Clone)]
pub struct DeadLetterQueue {
    producer: Producer,
    topic: String,
    telemetry: Arc<Telemetry>,
}

impl DeadLetterQueue {
    pub fn new(producer: Producer, topic: String, telemetry: Arc<Telemetry>) -> Self {
        DeadLetterQueue {
            producer,
            topic,
            telemetry,
        }
    }

    /// Enqueues a dead letter; delivery (with retries) continues in the background.
    pub fn send(&self, letter: DeadLetter) {
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
                        this.telemetry.emit(DeadLetterRetry {
                            error: &error,
                            topic: &this.topic,
                            source_topic: &letter.source_topic,
                            offset: letter.offset,
                        });
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }
}
