//! The input consumer's context: rebalance callbacks feed the watermark's partition set and
//! readiness, statistics feed the consumer-lag gauges.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::telemetry::Telemetry;

/// A change of the assignment, for the service loop to apply to its watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignmentChange {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

pub type InputConsumer = StreamConsumer<InputContext>;

pub struct InputContext {
    telemetry: Arc<Telemetry>,
    changes: Mutex<Vec<AssignmentChange>>,
    /// Set when `changes` is not empty, so the loop can check it per message for free.
    changed: AtomicBool,
    assigned: AtomicBool,
    /// Consumer lag per (topic, partition), from the latest statistics.
    lags: Mutex<Vec<(String, i32, i64)>>,
    /// Wall-clock ms of the latest statistics that showed a broker connection up (0: none).
    broker_up_at: AtomicI64,
}

impl InputContext {
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        InputContext {
            telemetry,
            changes: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
            lags: Mutex::new(Vec::new()),
            assigned: AtomicBool::new(false),
            broker_up_at: AtomicI64::new(0),
        }
    }

    /// Assignment changes since the last call.
    pub(crate) fn take_changes(&self) -> Vec<AssignmentChange> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    fn push_change(&self, change: AssignmentChange) {
        if let Ok(mut changes) = self.changes.lock() {
            changes.push(change);
            self.changed.store(true, Ordering::Release);
        }
    }

    /// Consumer lags reported since the last call.
    pub(crate) fn take_lags(&self) -> Vec<(String, i32, i64)> {
        self.lags
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    pub(crate) fn has_assignment(&self) -> bool {
        self.assigned.load(Ordering::Relaxed)
    }

    /// Wall-clock ms of the latest statistics (every second) in which a broker was connected:
    /// the service's evidence that the cluster is reachable again after an outage.
    pub(crate) fn broker_up_at(&self) -> i64 {
        self.broker_up_at.load(Ordering::Relaxed)
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// Messages left for the service to handle in a partition: the log end minus the offset
/// after the last message passed to the application. Before any was passed: the log end
/// minus the group's committed offset (librdkafka's consumer lag), or 0 for an empty
/// partition (one that never received a message has no committed offset, ever). Not the
/// log end minus the next offset to *fetch*: librdkafka prefetches whole partitions into
/// its local queue, so that difference is 0 long before the service has read them.
/// `None`: not known yet.
fn messages_left(p: &rdkafka::statistics::Partition) -> Option<i64> {
    if p.hi_offset < 0 {
        return None;
    }
    if p.app_offset >= 0 {
        return Some((p.hi_offset - p.app_offset).max(0));
    }
    if p.consumer_lag >= 0 {
        return Some(p.consumer_lag);
    }
    (p.lo_offset >= 0 && p.lo_offset == p.hi_offset).then_some(0)
}

impl ClientContext for InputContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::log_limit::log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::log_limit::error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        if statistics
            .brokers
            .values()
            .any(|b| b.source != "internal" && b.state == "UP")
        {
            self.broker_up_at
                .store(crate::wall_clock::now_ms(), Ordering::Relaxed);
        }
        let mut lags = Vec::new();
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // -1 is librdkafka's "internal" partition.
                if *partition < 0 {
                    continue;
                }
                if let Some(lag) = messages_left(p) {
                    // For the watermark, "nothing left" also needs a fetch that reached the
                    // log end since this partition's fetching (re)started: librdkafka resets
                    // `eof_offset` at each fetch start and sets it when a fetch reaches the
                    // end. Until then `hi_offset` can be the previous assignment's (after a
                    // rebalance), and the lag 0 whatever was produced since.
                    let fetched_to_end = p.fetch_state == "active"
                        && p.eof_offset >= 0
                        && p.eof_offset == p.hi_offset;
                    lags.push((
                        topic.clone(),
                        *partition,
                        if fetched_to_end { lag } else { lag.max(1) },
                    ));
                    self.telemetry
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(lag);
                }
            }
        }
        if let Ok(mut stored) = self.lags.lock() {
            *stored = lags;
        }
    }
}

impl ConsumerContext for InputContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            tracing::info!(partitions = ?partitions(list), "partitions revoked");
            self.push_change(AssignmentChange::Revoked(partitions(list)));
            self.assigned.store(false, Ordering::Relaxed);
            self.telemetry.ready.set(0);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = ?partitions(list), "partitions assigned");
                self.push_change(AssignmentChange::Assigned(partitions(list)));
                let any = list.count() > 0;
                self.assigned.store(any, Ordering::Relaxed);
                self.telemetry.ready.set(any as i64);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::messages_left;
    use rdkafka::statistics::Partition;

    fn partition(lo: i64, hi: i64, next: i64, app: i64, lag: i64) -> Partition {
        Partition {
            lo_offset: lo,
            hi_offset: hi,
            next_offset: next,
            app_offset: app,
            consumer_lag: lag,
            ..Partition::default()
        }
    }

    #[test]
    fn prefetched_messages_are_not_read_yet() {
        // librdkafka fetched the whole partition into its queue; none reached the service.
        assert_eq!(messages_left(&partition(0, 17_000, 17_000, -1, -1)), None);
        // Some did: what is left is counted from the last one handed over.
        assert_eq!(
            messages_left(&partition(0, 17_000, 17_000, 5_000, -1)),
            Some(12_000)
        );
        // None handed over yet after a restart: from the committed offset.
        assert_eq!(
            messages_left(&partition(0, 17_000, 17_000, -1, 9_000)),
            Some(9_000)
        );
    }

    #[test]
    fn an_empty_partition_has_nothing_left() {
        assert_eq!(messages_left(&partition(0, 0, 0, -1, -1)), Some(0));
        assert_eq!(messages_left(&partition(-1, -1, -1, -1, -1)), None);
    }
}
