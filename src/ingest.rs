//! Admission of one input message: apply it to the engine, dead-letter it (with the
//! reason), or skip it. Pure: it reads the message's topic, partition, offset, key, payload
//! and timestamp, the wall clock passed in, and the offsets the state already reflects; it
//! changes nothing, so it is unit-tested without a broker.
//!
//! The order of the checks: another topic is skipped; a message below the next offset to
//! read (already in the state, e.g. after a restore or a rebalance) is skipped; a payload
//! over `limits.max_message_bytes` is rejected before decoding; a record that does not
//! decode is rejected with the decoder's reason; a record whose event time the wall clock
//! says cannot be right (`limits.max_clock_skew`, `limits.max_event_age`) is rejected.

use feedback_loop_core::output::rfc3339;
use feedback_loop_core::record::{DecodeError, Decoder, Envelope, Input, ModelId, Record};
use feedback_loop_core::settings::{Config, LimitsConfig};

/// One consumed message, as the transport delivered it.
#[derive(Debug, Clone, Copy)]
pub struct InputMessage<'m> {
    pub topic: &'m str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'m [u8]>,
    pub payload: &'m [u8],
    pub timestamp_ms: Option<i64>,
}

/// Which input topic a message came from: 0 = predictions, 1 = outcomes.
pub type TopicIndex = u8;

/// What to do with a message.
#[derive(Debug, PartialEq)]
pub enum Verdict<'m> {
    /// Not an input topic, or already reflected in the state: nothing to do.
    Skip,
    /// A record for the engine.
    Apply(Record<'m>),
    /// Unusable: counted as invalid (for `model` when it named a configured one) and
    /// dead-lettered with `reason`.
    Reject {
        model: Option<ModelId>,
        reason: String,
    },
}

/// The admission rules, compiled from the configuration.
#[derive(Debug, Clone)]
pub struct Ingest {
    decoder: Decoder,
    topics: [String; 2],
    limits: LimitsConfig,
}

impl Ingest {
    pub fn new(config: &Config) -> Ingest {
        Ingest {
            decoder: Decoder::new(config),
            topics: [
                config.kafka.predictions_topic.clone(),
                config.kafka.outcomes_topic.clone(),
            ],
            limits: config.limits.clone(),
        }
    }

    /// The input topic `topic` is, if it is one.
    pub(crate) fn topic_index(&self, topic: &str) -> Option<TopicIndex> {
        self.topics.iter().position(|t| t == topic).map(|i| i as u8)
    }

    /// The name of an input topic.
    pub(crate) fn topic_name(&self, index: TopicIndex) -> &str {
        &self.topics[usize::from(index.min(1))]
    }

    /// Decodes a message's record: `None` for a message that is not decoded (another
    /// topic, or a payload over the size limit). Separate from [`Ingest::admit`] so that a
    /// batch can be decoded before any of it is applied (see
    /// [`DECODE_BATCH`](feedback_loop_core::record::DECODE_BATCH)).
    pub fn decode<'m>(
        &self,
        message: &InputMessage<'m>,
    ) -> Option<Result<Record<'m>, DecodeError>> {
        let input = match self.topic_index(message.topic)? {
            0 => Input::Predictions,
            _ => Input::Outcomes,
        };
        if message.payload.len() > self.limits.max_message_bytes {
            return None;
        }
        let envelope = Envelope {
            key: message.key,
            timestamp_ms: message.timestamp_ms,
        };
        Some(self.decoder.decode(input, message.payload, envelope))
    }

    /// The verdict on a message at wall-clock time `now`, given what [`Ingest::decode`]
    /// made of it and the next offset the state expects from its partition (`None`: none
    /// read yet).
    pub(crate) fn admit<'m>(
        &self,
        message: &InputMessage<'m>,
        decoded: Option<Result<Record<'m>, DecodeError>>,
        next_offset: Option<i64>,
        now: i64,
    ) -> Verdict<'m> {
        if self.topic_index(message.topic).is_none()
            || next_offset.is_some_and(|next| message.offset < next)
        {
            return Verdict::Skip;
        }
        let limit = self.limits.max_message_bytes;
        if message.payload.len() > limit {
            return Verdict::Reject {
                model: None,
                reason: format!(
                    "message of {} bytes exceeds limits.max_message_bytes ({limit})",
                    message.payload.len()
                ),
            };
        }
        match decoded {
            None => Verdict::Skip,
            Some(Err(error)) => Verdict::Reject {
                model: error.model,
                reason: error.reason,
            },
            Some(Ok(record)) => match implausible(&self.limits, record.ts(), now) {
                Some(reason) => Verdict::Reject {
                    model: record.model(),
                    reason,
                },
                None => Verdict::Apply(record),
            },
        }
    }
}

/// Why an event time cannot be right, judged by the wall clock; `None` if plausible.
fn implausible(limits: &LimitsConfig, ts: i64, now: i64) -> Option<String> {
    let skew = limits.max_clock_skew.as_millis_i64();
    if ts > now.saturating_add(skew) {
        return Some(format!(
            "timestamp {} is more than limits.max_clock_skew ({}) in the future",
            rfc3339(ts),
            limits.max_clock_skew
        ));
    }
    let age = limits.max_event_age.as_millis_i64();
    if age > 0 && ts < now.saturating_sub(age) {
        return Some(format!(
            "timestamp {} is older than limits.max_event_age ({})",
            rfc3339(ts),
            limits.max_event_age
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn ingest() -> Ingest {
        let config = crate::config::from_toml_str(
            r#"
[limits]
max_message_bytes = 200
max_clock_skew = "1h"
max_event_age = "1d"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
"#,
        )
        .expect("valid test configuration");
        Ingest::new(&config)
    }

    fn message<'m>(topic: &'m str, offset: i64, payload: &'m [u8]) -> InputMessage<'m> {
        InputMessage {
            topic,
            partition: 3,
            offset,
            key: Some(b"k1"),
            payload,
            timestamp_ms: Some(NOW),
        }
    }

    fn verdict(ingest: &Ingest, m: InputMessage<'_>, next: Option<i64>) -> String {
        let decoded = ingest.decode(&m);
        match ingest.admit(&m, decoded, next, NOW) {
            Verdict::Skip => "skip".into(),
            Verdict::Apply(record) => format!("apply {}", record.ts()),
            Verdict::Reject { model, reason } => format!("reject {model:?} {reason}"),
        }
    }

    #[test]
    fn a_valid_prediction_is_applied_with_its_event_time() {
        let ingest = ingest();
        let payload = format!(r#"{{"model":"fraud","timestamp":{NOW},"prediction":1}}"#);
        let m = message("model-predictions", 7, payload.as_bytes());
        assert_eq!(verdict(&ingest, m, None), format!("apply {NOW}"));
        // The key stands in for the missing id.
        let decoded = ingest.decode(&m);
        let Verdict::Apply(Record::Prediction(p)) = ingest.admit(&m, decoded, None, NOW) else {
            panic!("a prediction");
        };
        assert_eq!(p.id, "k1");
    }

    #[test]
    fn other_topics_and_offsets_already_in_the_state_are_skipped() {
        let ingest = ingest();
        let payload = br#"{"id":"x","actual":1}"#;
        assert_eq!(
            verdict(&ingest, message("elsewhere", 7, payload), None),
            "skip"
        );
        assert_eq!(
            verdict(&ingest, message("actual-outcomes", 7, payload), Some(8)),
            "skip"
        );
        assert_eq!(
            verdict(&ingest, message("actual-outcomes", 8, payload), Some(8)),
            format!("apply {NOW}")
        );
    }

    #[test]
    fn bad_messages_are_rejected_with_their_reason() {
        let ingest = ingest();
        let big = vec![b' '; 201];
        assert_eq!(
            verdict(&ingest, message("model-predictions", 0, &big), None),
            "reject None message of 201 bytes exceeds limits.max_message_bytes (200)"
        );
        let not_json = b"{nope";
        assert!(
            verdict(&ingest, message("model-predictions", 0, not_json), None)
                .starts_with("reject None invalid JSON"),
        );
        let unknown = br#"{"model":"other","prediction":1}"#;
        assert!(
            verdict(&ingest, message("model-predictions", 0, unknown), None)
                .starts_with("reject None unknown model")
        );
        let future = format!(
            r#"{{"model":"fraud","timestamp":{},"prediction":1}}"#,
            NOW + 2 * 3_600_000
        );
        assert_eq!(
            verdict(&ingest, message("model-predictions", 0, future.as_bytes()), None),
            "reject Some(0) timestamp 2026-01-01T02:00:00Z is more than limits.max_clock_skew (1h) in the future"
        );
        let old = format!(
            r#"{{"model":"fraud","timestamp":{},"prediction":1}}"#,
            NOW - 2 * 86_400_000
        );
        assert!(verdict(
            &ingest,
            message("model-predictions", 0, old.as_bytes()),
            None
        )
        .contains("older than limits.max_event_age (1d)"));
    }
}
