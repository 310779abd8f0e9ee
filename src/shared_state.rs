//! What the service loop shares with the HTTP side and the demo's summary while it runs:
//! the telemetry, the latest records, their history, and the facts readiness is judged
//! from.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use feedback_loop_core::output::MetricsRecord;

use crate::history::History;
use crate::telemetry::Telemetry;
use crate::wall_clock::now_ms;

/// How long the consume loop may go without a turn before the service reports not ready.
/// It only blocks that long waiting on the cluster (a checkpoint's flush or write that began
/// as the cluster became unreachable, before the loop saw the "brokers down" error).
pub(crate) const LOOP_STALL_MS: i64 = 10_000;

pub struct SharedState {
    pub telemetry: Arc<Telemetry>,
    /// The latest unsegmented record per `model/version`.
    pub latest: Mutex<BTreeMap<String, MetricsRecord>>,
    /// Every series' recent windows, the recent events and dead letters (the page, the API).
    pub history: Mutex<History>,
    /// True while the consume loop runs.
    pub running: AtomicBool,
    /// True while partitions are assigned.
    pub assigned: AtomicBool,
    /// True while this instance publishes the windows: in `"single"` mode while it holds
    /// every input partition (src/pipeline.rs, "the whole input or nothing"), in
    /// `"partitioned"` mode while it runs the finalizer (src/scale).
    pub in_charge: AtomicBool,
    /// Wall-clock time of the latest "brokers down" error, 0 once the cluster is reachable
    /// again: a message arrived, or the consumer's statistics showed a broker connected since.
    pub broker_error_at: AtomicI64,
    /// Wall-clock time of the consume loop's latest housekeeping tick.
    pub loop_at: AtomicI64,
}

impl SharedState {
    /// `history_windows`: windows kept per series (`http.history_windows`).
    pub fn new(telemetry: Arc<Telemetry>, history_windows: usize) -> Arc<SharedState> {
        Arc::new(SharedState {
            telemetry,
            latest: Mutex::new(BTreeMap::new()),
            history: Mutex::new(History::new(history_windows)),
            running: AtomicBool::new(false),
            assigned: AtomicBool::new(false),
            in_charge: AtomicBool::new(false),
            broker_error_at: AtomicI64::new(0),
            loop_at: AtomicI64::new(0),
        })
    }

    /// A "brokers down" error came, and the cluster has not been seen reachable since.
    pub(crate) fn broker_trouble(&self) -> bool {
        self.broker_error_at.load(Ordering::Relaxed) != 0
    }

    pub fn is_ready(&self) -> bool {
        self.running.load(Ordering::Relaxed)
            && self.assigned.load(Ordering::Relaxed)
            && !self.broker_trouble()
            && now_ms().saturating_sub(self.loop_at.load(Ordering::Relaxed)) < LOOP_STALL_MS
    }
}
