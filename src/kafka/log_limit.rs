//! librdkafka's errors and warnings, rate-limited: without a broker every client reports
//! the same error (`AllBrokersDown`, connection refused) for every broker and every retry,
//! hundreds of identical lines a second. Each kind of message (a global error's code, a log
//! line's facility) is logged at most once per `REPEAT_INTERVAL` (10 s); the next one logged
//! says how many were suppressed since. All clients of the process share one limiter.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The same kind of librdkafka error is logged at most once per this.
pub(crate) const REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Per kind: when it was last logged and how many were suppressed since.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    kinds: Mutex<HashMap<String, (Instant, u64)>>,
}

impl LogLimiter {
    pub(crate) fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed)`: log this one, noting `suppressed` repeats held back since the
    /// previous line of its kind; `None`: hold it back.
    pub(crate) fn admit(&self, kind: &str, now: Instant) -> Option<u64> {
        let Ok(mut kinds) = self.kinds.lock() else {
            return Some(0);
        };
        match kinds.get_mut(kind) {
            Some((last, suppressed)) if now.saturating_duration_since(*last) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                let held = std::mem::take(suppressed);
                *last = now;
                Some(held)
            }
            None => {
                kinds.insert(kind.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

fn limiter() -> &'static LogLimiter {
    static LIMITER: OnceLock<LogLimiter> = OnceLock::new();
    LIMITER.get_or_init(|| LogLimiter::new(REPEAT_INTERVAL))
}

/// An "error" that is a signal asked for: the state reader sets `enable.partition.eof` to
/// learn that it has read a partition to its end, and librdkafka reports each one as a
/// global error too.
fn is_signal(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    )
}

/// A global error of a librdkafka client, rate-limited by the error (its code); a signal
/// ([`is_signal`]) at debug level.
pub(crate) fn error(error: &KafkaError, reason: &str) {
    if is_signal(error) {
        tracing::debug!(target: "librdkafka", "librdkafka: {error}: {reason}");
        return;
    }
    let kind = error.to_string();
    if let Some(suppressed) = limiter().admit(&kind, Instant::now()) {
        if suppressed > 0 {
            tracing::error!(target: "librdkafka", suppressed,
                "librdkafka: {kind}: {reason} ({suppressed} more like it in the last {}s)",
                REPEAT_INTERVAL.as_secs());
        } else {
            tracing::error!(target: "librdkafka", "librdkafka: {kind}: {reason}");
        }
    }
}

/// A log line of a librdkafka client: warnings and errors are rate-limited by facility
/// (`FAIL`, `CONFWARN`…); the rest go through (filtered by level as usual).
pub(crate) fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let severe = matches!(
        level,
        RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning
    );
    if !severe {
        match level {
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            _ => tracing::info!(target: "librdkafka", "librdkafka: {facility} {message}"),
        }
        return;
    }
    let Some(suppressed) = limiter().admit(&format!("log {facility}"), Instant::now()) else {
        return;
    };
    let more = if suppressed > 0 {
        format!(
            " ({suppressed} more {facility} lines in the last {}s)",
            REPEAT_INTERVAL.as_secs()
        )
    } else {
        String::new()
    };
    if matches!(level, RDKafkaLogLevel::Warning) {
        tracing::warn!(target: "librdkafka", "librdkafka: {facility} {message}{more}");
    } else {
        tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}{more}");
    }
}

/// The context of the service's clients other than the input consumer: librdkafka's
/// errors and log lines through the limiter.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self::error(&error, reason);
    }
}

impl ConsumerContext for QuietContext {}

/// The service's producers.
pub type Producer = rdkafka::producer::FutureProducer<QuietContext>;

/// A consumer for metadata and the state topic.
pub type PlainConsumer = rdkafka::consumer::BaseConsumer<QuietContext>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_partition_is_no_error() {
        assert!(is_signal(&KafkaError::Global(
            RDKafkaErrorCode::PartitionEOF
        )));
        assert!(is_signal(&KafkaError::PartitionEOF(3)));
        assert!(!is_signal(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
    }

    #[test]
    fn a_kind_is_logged_once_per_interval_with_the_count_held_back() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.admit("AllBrokersDown", t0), Some(0));
        for i in 0..194 {
            assert_eq!(
                limiter.admit("AllBrokersDown", t0 + Duration::from_micros(i)),
                None
            );
        }
        // Another kind is not held back by the first.
        assert_eq!(limiter.admit("BrokerTransportFailure", t0), Some(0));
        assert_eq!(
            limiter.admit("AllBrokersDown", t0 + Duration::from_secs(9)),
            None
        );
        assert_eq!(
            limiter.admit("AllBrokersDown", t0 + Duration::from_secs(10)),
            Some(195)
        );
        assert_eq!(
            limiter.admit("AllBrokersDown", t0 + Duration::from_secs(11)),
            None
        );
        assert_eq!(
            limiter.admit("AllBrokersDown", t0 + Duration::from_secs(30)),
            Some(1)
        );
    }
}
