//! The event-time watermark over several input partitions.
//!
//! Each partition remembers the largest event time it delivered and when (processing time,
//! passed in by the caller) it last delivered anything. The watermark is the minimum over the
//! active partitions of their largest event time, less `allowed_lateness`. A partition that
//! has been silent for `idle_timeout` *and has nothing left to read* (its consumer lag, from
//! the client's statistics, is 0) stops holding it back: a partition that is merely slow to
//! be fetched, as in a backlog, keeps holding it. When every partition is idle,
//! event time is taken to advance with the wall clock from the last event seen, so windows
//! still close and unlabeled predictions still expire during quiet periods.

use std::collections::BTreeMap;

/// A partition of one of the input topics: (topic index, partition number).
pub type PartitionId = (u8, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PartitionClock {
    max_ts: Option<i64>,
    /// Processing time of the last message (or of the assignment).
    last_active: i64,
    /// The last known consumer lag was 0: nothing waits to be read.
    #[serde(default)]
    caught_up: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Watermark {
    partitions: BTreeMap<PartitionId, PartitionClock>,
    allowed_lateness: i64,
    idle_timeout: i64,
    /// Largest event time over all partitions, and when any partition was last active.
    max_ts: Option<i64>,
    last_activity: i64,
}

impl Watermark {
    pub fn new(allowed_lateness_ms: i64, idle_timeout_ms: i64) -> Self {
        Watermark {
            partitions: BTreeMap::new(),
            allowed_lateness: allowed_lateness_ms,
            idle_timeout: idle_timeout_ms,
            max_ts: None,
            last_activity: i64::MIN,
        }
    }

    /// Starts tracking a partition (on assignment). It holds the watermark back until it
    /// delivers something or goes idle.
    pub fn assign(&mut self, partition: PartitionId, now: i64) {
        let clock = self.partitions.entry(partition).or_insert(PartitionClock {
            max_ts: None,
            last_active: now,
            caught_up: false,
        });
        clock.last_active = now;
    }

    /// After a restore: processing times from before the restart mean nothing now; every
    /// partition counts as active from `now`.
    pub fn restart(&mut self, now: i64) {
        for clock in self.partitions.values_mut() {
            clock.last_active = now;
            clock.caught_up = false;
        }
        self.last_activity = now;
    }

    /// Stops tracking a partition (on revocation).
    pub fn revoke(&mut self, partition: PartitionId) {
        self.partitions.remove(&partition);
    }

    /// Notes a message with event time `ts` from `partition` at processing time `now`.
    pub fn observe(&mut self, partition: PartitionId, ts: i64, now: i64) {
        let clock = self.partitions.entry(partition).or_insert(PartitionClock {
            max_ts: None,
            last_active: now,
            caught_up: false,
        });
        clock.max_ts = Some(clock.max_ts.map_or(ts, |m| m.max(ts)));
        clock.last_active = now;
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        self.last_activity = now;
    }

    /// Notes a partition's consumer lag (messages left to read), when the client reports it.
    pub fn observe_lag(&mut self, partition: PartitionId, lag: i64) {
        if let Some(clock) = self.partitions.get_mut(&partition) {
            clock.caught_up = lag == 0;
        }
    }

    /// Notes activity without an event time (e.g. a message that did not decode).
    pub fn touch(&mut self, partition: PartitionId, now: i64) {
        if let Some(clock) = self.partitions.get_mut(&partition) {
            clock.last_active = now;
        }
        self.last_activity = now;
    }

    fn is_active(&self, clock: &PartitionClock, now: i64) -> bool {
        now.saturating_sub(clock.last_active) < self.idle_timeout || !clock.caught_up
    }

    /// Whether every partition is idle at `now` (false without partitions): event time
    /// then moves on with the wall clock.
    pub fn all_idle(&self, now: i64) -> bool {
        !self.partitions.is_empty() && !self.partitions.values().any(|c| self.is_active(c, now))
    }

    /// The watermark at processing time `now`, if there is one.
    pub fn current(&self, now: i64) -> Option<i64> {
        // The least largest event time over the active partitions (None: one of them has
        // delivered nothing yet); called per message, so one pass and no allocation.
        let mut any_active = false;
        let mut min = i64::MAX;
        for clock in self.partitions.values() {
            if self.is_active(clock, now) {
                any_active = true;
                min = min.min(clock.max_ts?);
            }
        }
        let event_time = if any_active {
            min
        } else {
            // Everything is idle: event time moves on with the wall clock.
            let idle_for = now.saturating_sub(self.last_activity).max(0);
            self.max_ts?.saturating_add(idle_for)
        };
        Some(event_time.saturating_sub(self.allowed_lateness))
    }

    pub fn partitions(&self) -> impl Iterator<Item = PartitionId> + '_ {
        self.partitions.keys().copied()
    }

    /// Each partition's clock as [`ReadAlignment`](crate::read_alignment::ReadAlignment)
    /// reads it: the largest event time delivered (if any) and when it last delivered.
    pub fn clocks(&self) -> impl Iterator<Item = PartitionReading> + Clone + '_ {
        self.partitions
            .iter()
            .map(|(&partition, clock)| PartitionReading {
                partition,
                max_ts: clock.max_ts,
                last_active: clock.last_active,
                caught_up: clock.caught_up,
            })
    }
}

/// Where the reading of one partition stands: see [`Watermark::clocks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionReading {
    pub partition: PartitionId,
    /// Largest event time delivered, if anything was.
    pub max_ts: Option<i64>,
    /// Processing time of the last message (or of the assignment).
    pub last_active: i64,
    /// Its consumer lag was 0 when last reported: nothing waits to be read.
    pub caught_up: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_active_partitions() {
        let mut w = Watermark::new(5, 1000);
        w.assign((0, 0), 0);
        w.assign((0, 1), 0);
        w.observe((0, 0), 100, 10);
        assert_eq!(
            w.current(10),
            None,
            "partition 1 has delivered nothing and is not idle"
        );
        w.observe((0, 1), 50, 20);
        assert_eq!(w.current(20), Some(45));
        w.observe((0, 1), 200, 30);
        assert_eq!(w.current(30), Some(95));
    }

    #[test]
    fn idle_partitions_stop_holding_it_back() {
        let mut w = Watermark::new(0, 1000);
        w.assign((0, 0), 0);
        w.assign((1, 0), 0);
        w.observe((0, 0), 10_000, 100);
        w.observe((1, 0), 5_000, 100);
        w.observe((0, 0), 12_000, 900);
        assert_eq!(w.current(900), Some(5_000));
        // Partition (1, 0) silent for the idle timeout, but its lag is unknown: it holds.
        assert_eq!(w.current(1_200), Some(5_000));
        // Caught up (lag 0) and silent: only (0, 0) counts.
        w.observe_lag((1, 0), 0);
        assert_eq!(w.current(1_200), Some(12_000));
    }

    #[test]
    fn a_partition_with_a_backlog_holds_it_back_however_long_it_is_silent() {
        let mut w = Watermark::new(0, 1000);
        w.assign((0, 0), 0);
        w.assign((1, 0), 0);
        w.observe((0, 0), 50_000, 100);
        w.observe_lag((1, 0), 120_000);
        assert_eq!(
            w.current(60_000),
            None,
            "(1, 0) has not delivered and has data to read"
        );
    }

    #[test]
    fn all_idle_advances_with_the_wall_clock() {
        let mut w = Watermark::new(1_000, 1_000);
        w.assign((0, 0), 0);
        w.observe((0, 0), 50_000, 100);
        w.observe_lag((0, 0), 0);
        assert_eq!(w.current(100), Some(49_000));
        // 10 s of silence: event time is taken to have moved 10 s on.
        assert_eq!(w.current(10_100), Some(59_000));
    }
}
