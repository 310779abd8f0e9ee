//! The interval join store: predictions wait for their outcome, outcomes wait for
//! predictions that arrive after them, both until the watermark passes their bound.
//!
//! Rules (docs/semantics.md): a prediction `p` and an outcome `o` match when they share the
//! key, `o` names no model or `p`'s model, and `-lead <= o.ts - p.ts <= delay`. Each
//! `(key, model, version)` prediction joins at most once; the first outcome for a key and
//! model scope wins and later ones are duplicates.
//!
//! Layout, for memory: each pending entry lives in a slab slot holding its key once; a
//! hashbrown `HashTable<u32>` maps a key to the first slot of its chain (entries of the same
//! key are linked through `next`); a [`DeadlineQueue`] of `(deadline, seq, slot)` orders
//! expiry and eviction. Queue entries of slots that left early (joined) are skipped when
//! popped, and the queue is compacted when such stale entries outnumber live ones, so memory
//! stays proportional to what is pending.

mod deadline_queue;

use std::borrow::Cow;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::join::deadline_queue::DeadlineQueue;
use crate::short_bytes;

/// Outcome scope meaning "every model".
pub(crate) const ALL_MODELS: u16 = u16::MAX;
const NONE: u32 = u32::MAX;

/// Where a new prediction went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionArrival {
    /// Joined a stored outcome at once.
    Joined,
    /// Stored, waiting for its outcome.
    Pending,
    /// The same `(key, model, version)` is pending or already joined.
    Duplicate,
}

/// Where a new outcome went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeArrival {
    /// Accepted: stored, after joining this many pending predictions.
    Accepted { joined: usize },
    /// An accepted outcome for the same key already covers this one's scope.
    Duplicate,
}

/// Receives what the store decides: pairs, expiries and released outcomes.
pub trait JoinSink<P, O> {
    /// A prediction and an outcome matched. `prediction_ts` / `outcome_ts` are event times.
    fn joined(&mut self, prediction: &PredictionEntry<P>, outcome: &OutcomeEntry<O>);
    /// A prediction left unjoined: its deadline passed (`evicted = false`) or room was needed.
    fn expired(&mut self, prediction: PredictionEntry<P>, evicted: bool);
    /// An accepted outcome left the store; `joined` lists the `(model, version)`s it joined.
    fn released(&mut self, outcome: OutcomeEntry<O>, evicted: bool);
}

/// A pending prediction's join fields and its payload.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PredictionEntry<P> {
    pub ts: i64,
    pub model: u16,
    pub version: u16,
    pub payload: P,
}

/// A stored outcome's join fields, what it joined, and its payload.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OutcomeEntry<O> {
    pub ts: i64,
    /// A model id, or [`ALL_MODELS`].
    pub scope: u16,
    pub joined: Joined,
    pub payload: O,
}

/// The `(model, version)`s an outcome has joined. Most outcomes join one prediction, so
/// the first is kept inline: no allocation per outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Joined {
    first: Option<(u16, u16)>,
    more: Vec<(u16, u16)>,
}

impl Joined {
    pub fn push(&mut self, series: (u16, u16)) {
        match self.first {
            None => self.first = Some(series),
            Some(_) => self.more.push(series),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.first.iter().chain(&self.more).copied()
    }

    pub fn contains(&self, series: (u16, u16)) -> bool {
        self.iter().any(|s| s == series)
    }
}

impl<O> OutcomeEntry<O> {
    fn covers(&self, model: u16) -> bool {
        self.scope == ALL_MODELS || self.scope == model
    }
}

/// A join key: up to [`INLINE_KEY`] bytes in place (no allocation for the usual request
/// ids), longer ones on the heap.
#[derive(Debug, Clone)]
enum JoinKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<str>),
}

/// Longest key kept in place: what fits beside the length in the 24 bytes of the enum.
const INLINE_KEY: usize = 22;

impl JoinKey {
    fn new(key: &str) -> JoinKey {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key.as_bytes());
            JoinKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            JoinKey::Heap(key.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            JoinKey::Inline { len, bytes } => &bytes[..*len as usize],
            JoinKey::Heap(key) => key.as_bytes(),
        }
    }
}

#[derive(Debug, Clone)]
struct Slot<E> {
    key: JoinKey,
    /// The key's hash: the index rehashes and removes without reading (or hashing) keys.
    hash: u64,
    seq: u32,
    next: u32,
    entry: E,
}

/// Slots, key index and deadline queue for one side of the join.
#[derive(Debug, Clone)]
struct Side<E> {
    slots: Vec<Option<Slot<E>>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    deadlines: DeadlineQueue,
    live: usize,
}

impl<E> Side<E> {
    fn new() -> Self {
        Side {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            deadlines: DeadlineQueue::new(),
            live: 0,
        }
    }

    fn slot(&self, i: u32) -> &Slot<E> {
        match &self.slots[i as usize] {
            Some(slot) => slot,
            None => unreachable!("chains only link occupied slots"),
        }
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot<E> {
        match &mut self.slots[i as usize] {
            Some(slot) => slot,
            None => unreachable!("chains only link occupied slots"),
        }
    }

    /// First slot of `key`'s chain, or [`NONE`].
    fn head(&self, hash: u64, key: &[u8]) -> u32 {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                matches!(&slots[i as usize], Some(s) if s.hash == hash
                        && short_bytes::equal(s.key.as_bytes(), key))
            })
            .copied()
            .unwrap_or(NONE)
    }

    /// Slots of the chain from `head`, in insertion order, written into `out` (a reused
    /// buffer: no allocation per record on the hot path).
    fn chain_into(&self, head: u32, out: &mut Vec<u32>) {
        out.clear();
        let mut i = head;
        while i != NONE {
            out.push(i);
            i = self.slot(i).next;
        }
    }

    /// Appends an entry at the end of `key`'s chain, whose first slot is `head` ([`NONE`]
    /// for a key with no entry on this side).
    fn insert(&mut self, head: u32, hash: u64, key: &str, deadline: i64, seq: u32, entry: E) {
        let slot = Slot {
            key: JoinKey::new(key),
            hash,
            seq,
            next: NONE,
            entry,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        if head == NONE {
            let slots = &self.slots;
            self.index
                .insert_unique(hash, i, |&j| match &slots[j as usize] {
                    Some(s) => s.hash,
                    None => 0,
                });
        } else {
            let mut last = head;
            while self.slot(last).next != NONE {
                last = self.slot(last).next;
            }
            self.slot_mut(last).next = i;
        }
        self.deadlines.push((deadline, seq, i));
        self.live += 1;
    }

    /// Unlinks and frees slot `i`, returning its entry.
    fn remove(&mut self, i: u32) -> E {
        let (hash, next) = {
            let slot = self.slot(i);
            (slot.hash, slot.next)
        };
        // Most keys have one entry, so `i` is usually the head: found by slot number,
        // without comparing keys.
        match self.index.find_entry(hash, |&j| j == i) {
            Ok(head) => {
                if next == NONE {
                    head.remove();
                } else {
                    *head.into_mut() = next;
                }
            }
            Err(_) => {
                let slots = &self.slots;
                let key: &[u8] = match &slots[i as usize] {
                    Some(s) => s.key.as_bytes(),
                    None => unreachable!("removing an occupied slot"),
                };
                let mut prev = self.head(hash, key);
                while prev != NONE && self.slot(prev).next != i {
                    prev = self.slot(prev).next;
                }
                if prev != NONE {
                    self.slot_mut(prev).next = next;
                }
            }
        }
        self.live -= 1;
        self.free.push(i);
        match self.slots[i as usize].take() {
            Some(slot) => slot.entry,
            None => unreachable!("removing an occupied slot"),
        }
    }

    /// The live slot with the smallest `(deadline, seq)` if its deadline is below `limit`.
    fn pop_due(&mut self, limit: i64) -> Option<u32> {
        while let Some((deadline, seq, i)) = self.deadlines.peek() {
            let live = matches!(&self.slots[i as usize], Some(s) if s.seq == seq);
            if !live {
                self.deadlines.pop();
                continue;
            }
            if deadline >= limit {
                return None;
            }
            self.deadlines.pop();
            return Some(i);
        }
        None
    }

    /// Drops queue entries of slots that already left, once they outnumber the live ones.
    fn compact_deadlines(&mut self) {
        if self.deadlines.len() > 2 * self.live + 1024 {
            let slots = &self.slots;
            self.deadlines
                .retain(|&(_, seq, i)| matches!(&slots[i as usize], Some(s) if s.seq == seq));
        }
    }

    fn shrink(&mut self) {
        if self.live == 0 {
            self.slots.clear();
            self.free.clear();
            self.deadlines.clear();
        }
    }
}

/// The join store. `P` and `O` are the engine's payloads (labels, scores, segments).
/// It serializes as its settings and its entries in insertion order (see [`JoinStoreState`]);
/// the index and the deadline queue are rebuilt on load.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(
    from = "JoinStoreState<P, O>",
    bound(deserialize = "P: serde::de::DeserializeOwned, O: serde::de::DeserializeOwned")
)]
pub struct JoinStore<P, O> {
    predictions: Side<PredictionEntry<P>>,
    outcomes: Side<OutcomeEntry<O>>,
    hasher: DefaultHashBuilder,
    max_label_delay: i64,
    max_outcome_lead: i64,
    max_pending: usize,
    seq: u32,
    /// Reused buffers for chain walks.
    scratch_predictions: Vec<u32>,
    scratch_outcomes: Vec<u32>,
}

/// The serialized form of a [`JoinStore`]: entries with their keys and sequence numbers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JoinStoreState<P, O> {
    max_label_delay: i64,
    max_outcome_lead: i64,
    max_pending: usize,
    seq: u32,
    predictions: Vec<(Box<str>, u32, PredictionEntry<P>)>,
    outcomes: Vec<(Box<str>, u32, OutcomeEntry<O>)>,
}

/// [`JoinStoreState`] borrowed from the store: serialized the same, without copying a store
/// that may hold millions of entries (a checkpoint would otherwise hold it twice).
#[derive(serde::Serialize)]
#[serde(rename = "JoinStoreState")]
struct JoinStoreStateView<'a, P, O> {
    max_label_delay: i64,
    max_outcome_lead: i64,
    max_pending: usize,
    seq: u32,
    predictions: Vec<(Cow<'a, str>, u32, &'a PredictionEntry<P>)>,
    outcomes: Vec<(Cow<'a, str>, u32, &'a OutcomeEntry<O>)>,
}

/// A side's entries, borrowed, in insertion order (sequence numbers grow; a wrap-around
/// after 2^32 insertions only changes the order of ties).
fn side_entry_refs<E>(side: &Side<E>) -> Vec<(Cow<'_, str>, u32, &E)> {
    let mut entries: Vec<(Cow<'_, str>, u32, &E)> = side
        .slots
        .iter()
        .flatten()
        .map(|slot| {
            (
                String::from_utf8_lossy(slot.key.as_bytes()),
                slot.seq,
                &slot.entry,
            )
        })
        .collect();
    entries.sort_by_key(|(_, seq, _)| *seq);
    entries
}

impl<P: serde::Serialize, O: serde::Serialize> serde::Serialize for JoinStore<P, O> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        JoinStoreStateView {
            max_label_delay: self.max_label_delay,
            max_outcome_lead: self.max_outcome_lead,
            max_pending: self.max_pending,
            seq: self.seq,
            predictions: side_entry_refs(&self.predictions),
            outcomes: side_entry_refs(&self.outcomes),
        }
        .serialize(serializer)
    }
}

impl<P, O> From<JoinStoreState<P, O>> for JoinStore<P, O> {
    fn from(state: JoinStoreState<P, O>) -> Self {
        let mut store = JoinStore::new(
            state.max_label_delay,
            state.max_outcome_lead,
            state.max_pending,
        );
        for (key, seq, entry) in state.predictions {
            let hash = store.hasher.hash_one(&*key);
            let deadline = entry.ts.saturating_add(store.max_label_delay);
            let head = store.predictions.head(hash, key.as_bytes());
            store
                .predictions
                .insert(head, hash, &key, deadline, seq, entry);
        }
        for (key, seq, entry) in state.outcomes {
            let hash = store.hasher.hash_one(&*key);
            let deadline = entry.ts.saturating_add(store.max_outcome_lead);
            let head = store.outcomes.head(hash, key.as_bytes());
            store
                .outcomes
                .insert(head, hash, &key, deadline, seq, entry);
        }
        store.seq = state.seq;
        store
    }
}

impl<P, O> JoinStore<P, O> {
    pub fn new(max_label_delay: i64, max_outcome_lead: i64, max_pending: usize) -> Self {
        JoinStore {
            predictions: Side::new(),
            outcomes: Side::new(),
            hasher: DefaultHashBuilder::default(),
            max_label_delay,
            max_outcome_lead,
            max_pending: max_pending.max(1),
            seq: 0,
            scratch_predictions: Vec::new(),
            scratch_outcomes: Vec::new(),
        }
    }

    pub fn pending_predictions(&self) -> usize {
        self.predictions.live
    }

    pub fn pending_outcomes(&self) -> usize {
        self.outcomes.live
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn matches(&self, p_ts: i64, o_ts: i64) -> bool {
        let d = o_ts.saturating_sub(p_ts);
        -self.max_outcome_lead <= d && d <= self.max_label_delay
    }

    /// Adds a prediction: joins it with a stored outcome, or stores it.
    pub(crate) fn insert_prediction(
        &mut self,
        key: &str,
        prediction: PredictionEntry<P>,
        sink: &mut impl JoinSink<P, O>,
    ) -> PredictionArrival {
        let hash = self.hasher.hash_one(key);
        let mut pending = std::mem::take(&mut self.scratch_predictions);
        let mut outcomes = std::mem::take(&mut self.scratch_outcomes);
        self.predictions
            .chain_into(self.predictions.head(hash, key.as_bytes()), &mut pending);
        self.outcomes
            .chain_into(self.outcomes.head(hash, key.as_bytes()), &mut outcomes);
        let arrival = self.insert_prediction_with(key, hash, prediction, &pending, &outcomes, sink);
        self.scratch_predictions = pending;
        self.scratch_outcomes = outcomes;
        arrival
    }

    fn insert_prediction_with(
        &mut self,
        key: &str,
        hash: u64,
        prediction: PredictionEntry<P>,
        pending: &[u32],
        outcomes: &[u32],
        sink: &mut impl JoinSink<P, O>,
    ) -> PredictionArrival {
        let (model, version) = (prediction.model, prediction.version);
        if pending.iter().any(|&i| {
            let e = &self.predictions.slot(i).entry;
            e.model == model && e.version == version
        }) {
            return PredictionArrival::Duplicate;
        }
        if outcomes.iter().any(|&i| {
            self.outcomes
                .slot(i)
                .entry
                .joined
                .contains((model, version))
        }) {
            return PredictionArrival::Duplicate;
        }
        let partner = outcomes.iter().copied().find(|&i| {
            let o = &self.outcomes.slot(i).entry;
            o.covers(model) && self.matches(prediction.ts, o.ts)
        });
        if let Some(i) = partner {
            let outcome = &mut self.outcomes.slot_mut(i).entry;
            outcome.joined.push((model, version));
            sink.joined(&prediction, outcome);
            return PredictionArrival::Joined;
        }
        let mut head = pending.first().copied().unwrap_or(NONE);
        if self.predictions.live >= self.max_pending {
            if let Some(i) = self.predictions.pop_due(i64::MAX) {
                let evicted = self.predictions.remove(i);
                sink.expired(evicted, true);
                // The evicted entry may have been this key's.
                head = self.predictions.head(hash, key.as_bytes());
            }
        }
        let deadline = prediction.ts.saturating_add(self.max_label_delay);
        let seq = self.next_seq();
        self.predictions
            .insert(head, hash, key, deadline, seq, prediction);
        PredictionArrival::Pending
    }

    /// Adds an outcome: rejects it as a duplicate, or joins the pending predictions it
    /// matches and stores it for predictions still to come.
    pub(crate) fn insert_outcome(
        &mut self,
        key: &str,
        outcome: OutcomeEntry<O>,
        sink: &mut impl JoinSink<P, O>,
    ) -> OutcomeArrival {
        let hash = self.hasher.hash_one(key);
        let mut stored = std::mem::take(&mut self.scratch_outcomes);
        let mut head = self.outcomes.head(hash, key.as_bytes());
        self.outcomes.chain_into(head, &mut stored);
        let duplicate = stored.iter().any(|&i| {
            let s = &self.outcomes.slot(i).entry;
            s.scope == ALL_MODELS || s.scope == outcome.scope
        });
        self.scratch_outcomes = stored;
        if duplicate {
            return OutcomeArrival::Duplicate;
        }
        let mut outcome = outcome;
        let mut joined = 0;
        let mut pending = std::mem::take(&mut self.scratch_predictions);
        self.predictions
            .chain_into(self.predictions.head(hash, key.as_bytes()), &mut pending);
        for &i in &pending {
            let p = &self.predictions.slot(i).entry;
            if outcome.covers(p.model) && self.matches(p.ts, outcome.ts) {
                let prediction = self.predictions.remove(i);
                outcome.joined.push((prediction.model, prediction.version));
                sink.joined(&prediction, &outcome);
                joined += 1;
            }
        }
        self.scratch_predictions = pending;
        if self.outcomes.live >= self.max_pending {
            if let Some(i) = self.outcomes.pop_due(i64::MAX) {
                let evicted = self.outcomes.remove(i);
                sink.released(evicted, true);
                // The evicted entry may have been this key's.
                head = self.outcomes.head(hash, key.as_bytes());
            }
        }
        let deadline = outcome.ts.saturating_add(self.max_outcome_lead);
        let seq = self.next_seq();
        self.outcomes
            .insert(head, hash, key, deadline, seq, outcome);
        self.predictions.compact_deadlines();
        OutcomeArrival::Accepted { joined }
    }

    /// Expires what the watermark has passed: predictions with `wm > ts + max_label_delay`,
    /// then outcomes with `wm > ts + max_outcome_lead`, each in deadline order.
    pub fn advance(&mut self, watermark: i64, sink: &mut impl JoinSink<P, O>) {
        while let Some(i) = self.predictions.pop_due(watermark) {
            let entry = self.predictions.remove(i);
            sink.expired(entry, false);
        }
        while let Some(i) = self.outcomes.pop_due(watermark) {
            let entry = self.outcomes.remove(i);
            sink.released(entry, false);
        }
        self.predictions.compact_deadlines();
        self.outcomes.compact_deadlines();
        self.predictions.shrink();
        self.outcomes.shrink();
    }

    /// The smallest deadline among pending entries (stale queue entries may make it earlier
    /// than the true one; it is only used to skip work).
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        let p = self.predictions.deadlines.peek().map(|(d, _, _)| d);
        let o = self.outcomes.deadlines.peek().map(|(d, _, _)| d);
        match (p, o) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_up_to_22_bytes_stay_in_place() {
        assert_eq!(std::mem::size_of::<JoinKey>(), 24);
        for key in ["", "a", "req-000000001", "0123456789012345678901"] {
            let k = JoinKey::new(key);
            assert!(matches!(k, JoinKey::Inline { .. }), "{key}");
            assert_eq!(k.as_bytes(), key.as_bytes());
        }
        let uuid = "3f2b8c1e-9d4a-4e7b-8f60-1a2b3c4d5e6f";
        let k = JoinKey::new(uuid);
        assert!(matches!(k, JoinKey::Heap(_)));
        assert_eq!(k.as_bytes(), uuid.as_bytes());
    }

    struct Discard;
    impl JoinSink<u32, u32> for Discard {
        fn joined(&mut self, _: &PredictionEntry<u32>, _: &OutcomeEntry<u32>) {}
        fn expired(&mut self, _: PredictionEntry<u32>, _: bool) {}
        fn released(&mut self, _: OutcomeEntry<u32>, _: bool) {}
    }

    /// The store serializes from borrowed entries exactly as its owned state did (the
    /// snapshot format is unchanged), and reads back to the same bytes.
    #[test]
    fn serializing_borrowed_entries_writes_the_owned_state_bytes() {
        let mut store: JoinStore<u32, u32> = JoinStore::new(10_000, 5_000, 100);
        let insert = |store: &mut JoinStore<u32, u32>, i: u32| {
            let key = if i % 3 == 0 {
                format!("3f2b8c1e-9d4a-4e7b-8f60-{i:012}")
            } else {
                format!("req-{i}")
            };
            let ts = i64::from(i) * 100;
            if i % 2 == 0 {
                let prediction = PredictionEntry {
                    ts,
                    model: 1,
                    version: 0,
                    payload: i,
                };
                store.insert_prediction(&key, prediction, &mut Discard);
            } else {
                let outcome = OutcomeEntry {
                    ts,
                    scope: 1,
                    joined: Joined::default(),
                    payload: i,
                };
                store.insert_outcome(&key, outcome, &mut Discard);
            }
        };
        for i in 0..40 {
            insert(&mut store, i);
        }
        // Outcomes before 1 s expire; later ones take their slots: slot order is not
        // insertion order any more.
        let before = store.pending_outcomes();
        store.advance(6_000, &mut Discard);
        assert!(store.pending_outcomes() < before);
        for i in 40..50 {
            insert(&mut store, i);
        }
        assert!(store.pending_predictions() > 0 && store.pending_outcomes() > 0);
        let borrowed = bincode::serialize(&store).unwrap();
        // The owned form reads the bytes, in insertion order, and writes the same bytes.
        let owned: JoinStoreState<u32, u32> = bincode::deserialize(&borrowed).unwrap();
        assert_eq!(owned.predictions.len(), store.pending_predictions());
        assert_eq!(owned.outcomes.len(), store.pending_outcomes());
        assert!(owned.outcomes.windows(2).all(|w| w[0].1 < w[1].1));
        assert!(owned.outcomes.iter().any(|(_, _, o)| o.payload >= 40));
        assert_eq!(bincode::serialize(&owned).unwrap(), borrowed);
        let back: JoinStore<u32, u32> = bincode::deserialize(&borrowed).unwrap();
        assert_eq!(bincode::serialize(&back).unwrap(), borrowed);
    }
}
