//! The input consumer's context: rebalance callbacks feed the watermark's partition set and
//! readiness, statistics feed the consumer-lag gauges.

use std::sync::atomic::{AtomicBool, Ordering};
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
}

impl InputContext {
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        InputContext {
            telemetry,
            changes: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
            lags: Mutex::new(Vec::new()),
            assigned: AtomicBool::new(false),
        }
    }

    /// Assignment changes since the last call.
    pub fn take_changes(&self) -> Vec<AssignmentChange> {
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
    pub fn take_lags(&self) -> Vec<(String, i32, i64)> {
        self.lags
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    pub fn has_assignment(&self) -> bool {
        self.assigned.load(Ordering::Relaxed)
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for InputContext {
    fn stats(&self, statistics: Statistics) {
        let mut lags = Vec::new();
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // -1 is librdkafka's "internal" partition; a negative lag means unknown.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lags.push((topic.clone(), *partition, p.consumer_lag));
                    self.telemetry
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
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
