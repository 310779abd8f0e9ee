//! Reading the input partitions in step by event time: which partitions to pause because
//! they run too far ahead of the others, and when to resume them.
//!
//! In a backlog the consumer fetches every partition as fast as the broker serves it, not in
//! event-time order: the outcomes topic (small messages) gets read minutes or hours of event
//! time ahead of the predictions. Each outcome read ahead of its prediction waits in the join
//! store, which then holds up to the whole backlog of outcomes (memory, cache misses, large
//! checkpoints) and, past `join.max_pending`, evicts outcomes that would have joined. Kafka
//! Streams picks the next record by timestamp among a task's partitions; Flink pauses sources
//! whose watermark drifts ahead (watermark alignment). This does the latter: a partition whose
//! largest event time is more than `max_lead` ahead of the slowest partition *being read* is
//! paused, and resumed once the others are within `max_lead / 2` of it.
//!
//! "Being read" means not paused and delivered something in the last [`READING_WITHIN_MS`]:
//! a partition at the end of its log holds nobody back, so nothing waits on it longer than
//! that. When no partition is being read, every paused one is resumed.
//!
//! At a start, the partitions' first fetches do not arrive together (on tansu, the whole
//! predictions topic was delivered before the first outcome). A partition that has
//! delivered nothing yet, may have something to read (its lag is not known to be 0) and was
//! assigned less than [`FIRST_MESSAGE_WAIT_MS`] ago is *awaited*: its clock is taken to be
//! the earliest event time any partition started reading at in that time, so the others
//! read at most `max_lead` past that until it delivers (or the wait ends).
//!
//! Pure and deterministic: the caller passes the partitions' clocks and the processing
//! time, and applies the returned changes to its consumer.

use std::collections::{BTreeMap, BTreeSet};

use crate::watermark::{PartitionId, PartitionReading};

/// A partition that delivered nothing for this long (processing time) no longer holds the
/// others back: it has likely reached the end of its log.
pub const READING_WITHIN_MS: i64 = 1_000;

/// How long (processing time, from its assignment) a partition that has delivered nothing
/// is awaited at the earliest event time seen (see the module documentation).
pub const FIRST_MESSAGE_WAIT_MS: i64 = 5_000;

/// Which partitions are paused for running ahead. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct ReadAlignment {
    /// 0: off.
    max_lead: i64,
    paused: BTreeSet<PartitionId>,
    /// The first largest event time seen of each partition (about where its reading
    /// started) and the processing time it was seen at.
    started_at: BTreeMap<PartitionId, (i64, i64)>,
}

/// What to change in the consumer: partitions to pause and to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlignmentChanges {
    pub pause: Vec<PartitionId>,
    pub resume: Vec<PartitionId>,
}

impl AlignmentChanges {
    pub fn is_empty(&self) -> bool {
        self.pause.is_empty() && self.resume.is_empty()
    }
}

impl ReadAlignment {
    /// `max_lead_ms`: how far (event time) a partition may run ahead of the slowest one being
    /// read; 0 turns alignment off.
    pub fn new(max_lead_ms: i64) -> ReadAlignment {
        ReadAlignment {
            max_lead: max_lead_ms.max(0),
            paused: BTreeSet::new(),
            started_at: BTreeMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_lead > 0
    }

    /// The partitions paused now.
    pub fn paused(&self) -> impl ExactSizeIterator<Item = PartitionId> + '_ {
        self.paused.iter().copied()
    }

    /// Forgets every pause (on a rebalance, or when the caller stops reading): returns the
    /// partitions that were paused, for the caller to resume those it still holds.
    pub fn reset(&mut self) -> Vec<PartitionId> {
        self.started_at.clear();
        std::mem::take(&mut self.paused).into_iter().collect()
    }

    /// Given every held partition's clock at processing time `now`, what to pause and what to
    /// resume; the returned changes are taken as applied.
    pub fn update(
        &mut self,
        clocks: impl IntoIterator<Item = PartitionReading> + Clone,
        now: i64,
    ) -> AlignmentChanges {
        let mut changes = AlignmentChanges::default();
        if !self.enabled() {
            return changes;
        }
        let mut awaited = false;
        for clock in clocks.clone() {
            match clock.max_ts {
                Some(ts) => {
                    self.started_at.entry(clock.partition).or_insert((ts, now));
                }
                None => {
                    awaited |= !clock.caught_up
                        && now.saturating_sub(clock.last_active) < FIRST_MESSAGE_WAIT_MS;
                }
            }
        }
        let being_read = clocks
            .clone()
            .into_iter()
            .filter(|c| {
                !self.paused.contains(&c.partition)
                    && now.saturating_sub(c.last_active) < READING_WITHIN_MS
            })
            .filter_map(|c| c.max_ts)
            .min();
        // Only starts of the last few seconds count: a partition added by a rebalance to
        // others read for hours is awaited at where its peers started *recently*, not hours
        // ago (which would pause them all until it delivers).
        let awaited_at = if awaited {
            self.started_at
                .values()
                .filter(|(_, seen)| now.saturating_sub(*seen) < FIRST_MESSAGE_WAIT_MS)
                .map(|(ts, _)| *ts)
                .min()
        } else {
            None
        };
        let reference = match (being_read, awaited_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(reference) = reference else {
            changes.resume = self.reset();
            return changes;
        };
        let pause_above = reference.saturating_add(self.max_lead);
        let resume_at_most = reference.saturating_add(self.max_lead / 2);
        // A paused partition whose clock is no longer passed in is no longer read here (e.g.
        // its task was dropped): nothing holds it back.
        // (Runs per batch: nothing to look for, and no set built, while nothing is paused.)
        if !self.paused.is_empty() {
            let tracked: BTreeSet<PartitionId> =
                clocks.clone().into_iter().map(|c| c.partition).collect();
            let untracked: Vec<PartitionId> = self.paused.difference(&tracked).copied().collect();
            for partition in untracked {
                self.paused.remove(&partition);
                changes.resume.push(partition);
            }
        }
        for clock in clocks {
            let Some(ts) = clock.max_ts else { continue };
            if self.paused.contains(&clock.partition) {
                if ts <= resume_at_most {
                    self.paused.remove(&clock.partition);
                    changes.resume.push(clock.partition);
                }
            } else if ts > pause_above {
                self.paused.insert(clock.partition);
                changes.pause.push(clock.partition);
            }
        }
        changes
    }

    /// Stops tracking a partition that is no longer held (revoked); true when it was paused
    /// (the caller resumes it, so that a later assignment does not find it paused).
    pub fn forget(&mut self, partition: PartitionId) -> bool {
        self.started_at.remove(&partition);
        self.paused.remove(&partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(partition: PartitionId, max_ts: Option<i64>, last_active: i64) -> PartitionReading {
        PartitionReading {
            partition,
            max_ts,
            last_active,
            // A partition that delivered nothing has nothing to read, unless a test says
            // otherwise (`awaited`).
            caught_up: max_ts.is_none(),
        }
    }

    fn awaited(partition: PartitionId, assigned_at: i64) -> PartitionReading {
        PartitionReading {
            partition,
            max_ts: None,
            last_active: assigned_at,
            caught_up: false,
        }
    }

    const P: PartitionId = (0, 0);
    const O: PartitionId = (1, 0);

    #[test]
    fn off_changes_nothing() {
        let mut a = ReadAlignment::new(0);
        let clocks = [reading(P, Some(0), 100), reading(O, Some(1_000_000), 100)];
        assert!(a.update(clocks, 100).is_empty());
        assert_eq!(a.paused().len(), 0);
    }

    #[test]
    fn a_partition_ahead_is_paused_then_resumed_when_the_others_come_within_half_the_lead() {
        let mut a = ReadAlignment::new(60_000);
        // Outcomes 60 s ahead: not more than the lead, read on.
        let changes = a.update(
            [reading(P, Some(0), 100), reading(O, Some(60_000), 100)],
            100,
        );
        assert!(changes.is_empty());
        // 60.001 s ahead: paused.
        let changes = a.update(
            [reading(P, Some(0), 200), reading(O, Some(60_001), 200)],
            200,
        );
        assert_eq!(changes.pause, vec![O]);
        assert!(changes.resume.is_empty());
        // Paused, it delivers nothing; predictions come within 40 s: still paused.
        let changes = a.update(
            [reading(P, Some(20_001), 700), reading(O, Some(60_001), 200)],
            700,
        );
        assert!(changes.is_empty());
        assert_eq!(a.paused().collect::<Vec<_>>(), vec![O]);
        // Within 30 s: resumed.
        let changes = a.update(
            [reading(P, Some(30_001), 900), reading(O, Some(60_001), 200)],
            900,
        );
        assert_eq!(changes.resume, vec![O]);
        assert_eq!(a.paused().len(), 0);
    }

    #[test]
    fn a_partition_not_being_read_holds_nobody_back() {
        let mut a = ReadAlignment::new(10_000);
        // P delivered long ago (the end of its log): O is not paused however far ahead.
        let clocks = [reading(P, Some(0), 100), reading(O, Some(500_000), 5_000)];
        assert!(a.update(clocks, 5_000).is_empty());
        // Nor by a partition that has delivered nothing yet.
        let clocks = [reading(P, None, 5_000), reading(O, Some(500_000), 5_000)];
        assert!(a.update(clocks, 5_000).is_empty());
    }

    #[test]
    fn a_partition_not_delivered_yet_is_awaited_at_the_earliest_start() {
        let mut a = ReadAlignment::new(10_000);
        // At a start the predictions arrive first; the outcomes have not delivered yet.
        let changes = a.update([reading(P, Some(5_000), 100), awaited(O, 0)], 100);
        assert!(changes.is_empty(), "within the lead of where P started");
        let changes = a.update([reading(P, Some(10_001 + 5_000), 200), awaited(O, 0)], 200);
        assert_eq!(
            changes.pause,
            vec![P],
            "P ran the lead past where it started"
        );
        // O delivers: it is the reference now, P resumes once O is within half the lead.
        let changes = a.update(
            [reading(P, Some(15_001), 200), reading(O, Some(6_000), 300)],
            300,
        );
        assert!(changes.is_empty());
        let changes = a.update(
            [reading(P, Some(15_001), 200), reading(O, Some(10_001), 400)],
            400,
        );
        assert_eq!(changes.resume, vec![P]);
    }

    #[test]
    fn an_awaited_partition_that_never_delivers_is_waited_for_a_bounded_time() {
        let mut a = ReadAlignment::new(10_000);
        let changes = a.update([reading(P, Some(50_000), 100), awaited(O, 0)], 100);
        // P started at 50 s and is not past it by the lead: read on.
        assert!(changes.is_empty());
        let changes = a.update([reading(P, Some(70_000), 200), awaited(O, 0)], 200);
        assert_eq!(changes.pause, vec![P]);
        // P paused, O silent: at the end of the wait, nothing holds P back.
        let changes = a.update(
            [reading(P, Some(70_000), 200), awaited(O, 0)],
            FIRST_MESSAGE_WAIT_MS,
        );
        assert_eq!(changes.resume, vec![P]);
        // A partition known to be empty (lag 0) is not awaited at all.
        let mut a = ReadAlignment::new(10_000);
        let empty = PartitionReading {
            caught_up: true,
            ..awaited(O, 0)
        };
        assert!(a
            .update([reading(P, Some(50_000), 100), empty], 100)
            .is_empty());
        assert!(a
            .update([reading(P, Some(90_000), 200), empty], 200)
            .is_empty());
    }

    #[test]
    fn a_partition_added_to_others_read_long_since_pauses_nobody() {
        let mut a = ReadAlignment::new(10_000);
        // P has been read for an hour (it started at event time 0).
        assert!(a.update([reading(P, Some(0), 0)], 0).is_empty());
        let hour = 3_600_000;
        assert!(a.update([reading(P, Some(hour), hour)], hour).is_empty());
        // A rebalance adds O (nothing delivered yet): P is not held back to where it
        // started an hour ago.
        let changes = a.update(
            [reading(P, Some(hour + 500), hour + 500), awaited(O, hour)],
            hour + 500,
        );
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn when_nothing_is_being_read_every_paused_partition_resumes() {
        let mut a = ReadAlignment::new(10_000);
        let changes = a.update(
            [reading(P, Some(0), 100), reading(O, Some(50_000), 100)],
            100,
        );
        assert_eq!(changes.pause, vec![O]);
        // P went silent (its end), O is paused: nothing is being read, O resumes at once.
        let changes = a.update(
            [reading(P, Some(0), 100), reading(O, Some(50_000), 100)],
            100 + READING_WITHIN_MS,
        );
        assert_eq!(changes.resume, vec![O]);
        assert_eq!(a.paused().len(), 0);
    }

    #[test]
    fn the_slowest_partition_being_read_is_never_paused() {
        let mut a = ReadAlignment::new(1_000);
        let clocks: Vec<PartitionReading> = (0..8)
            .map(|p| reading((0, p), Some(i64::from(p) * 10_000), 50))
            .collect();
        let changes = a.update(clocks.clone(), 50);
        assert_eq!(changes.pause, (1..8).map(|p| (0, p)).collect::<Vec<_>>());
        // Every other partition paused: the reference is still partition 0, nothing changes.
        assert!(a.update(clocks, 60).is_empty());
        assert_eq!(a.paused().len(), 7);
    }

    #[test]
    fn a_paused_partition_no_longer_passed_in_is_resumed() {
        let mut a = ReadAlignment::new(1_000);
        let changes = a.update([reading(P, Some(0), 10), reading(O, Some(5_000), 10)], 10);
        assert_eq!(changes.pause, vec![O]);
        let changes = a.update([reading(P, Some(0), 20)], 20);
        assert_eq!(changes.resume, vec![O]);
        assert_eq!(a.paused().len(), 0);
    }

    #[test]
    fn reset_and_forget() {
        let mut a = ReadAlignment::new(1_000);
        a.update(
            [
                reading(P, Some(0), 10),
                reading(O, Some(5_000), 10),
                reading((1, 1), Some(9_000), 10),
            ],
            10,
        );
        assert_eq!(a.paused().len(), 2);
        assert!(a.forget(O));
        assert!(!a.forget(P));
        assert_eq!(a.reset(), vec![(1, 1)]);
        assert_eq!(a.paused().len(), 0);
    }
}
