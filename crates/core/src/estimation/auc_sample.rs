//! A bounded, order-independent, mergeable sample of a window's rows, for ROC AUC
//! (estimated and realized).
//!
//! Why: every other part of a window's estimate is a sum (the expected confusion matrix,
//! the realized counts), exact and mergeable at a fixed size; ROC AUC ranks the rows, so
//! it needs the rows themselves. Keeping all of them makes a window's memory grow with its
//! size. [`AucSample`] keeps at most `capacity` rows: while a window has at most that many,
//! all of them (so the AUC is exactly what it was without a bound); beyond, a **bottom-k
//! sample**: the `capacity` rows with the smallest rank, the rank being a mixed hash of the
//! row's key (the hash of its prediction's join id), ties broken by the row's values.
//! That is a uniform sample without replacement (for a good hash), it depends only on the
//! set of rows, not on the order they arrive in, and it merges exactly: the bottom-k of a
//! union is the bottom-k of the parts' bottom-k's. The drift summaries' numeric sample
//! (`crate::drift::summary::NumericSummary`) works the same way. The approximation and its
//! bound are in docs/estimation.md ("Approximations and limits").

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::drift::summary::sample_hash;

/// A row the sample can keep: a total order over the row's values, so that rows of equal
/// rank (the same key) are kept or dropped the same way whatever their arrival order.
pub trait SampleRow: Clone {
    fn total_cmp(&self, other: &Self) -> Ordering;
}

fn slice_cmp(a: &[f64], b: &[f64]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(a.len().cmp(&b.len()))
}

/// Binary, estimated: `(raw score, calibrated probability)`.
impl SampleRow for (f64, f64) {
    fn total_cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.total_cmp(&other.1))
    }
}

/// Binary, realized: `(raw score, label)`.
impl SampleRow for (f64, bool) {
    fn total_cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Multiclass, estimated: the `K` raw scores then the `K` calibrated probabilities.
impl SampleRow for Box<[f64]> {
    fn total_cmp(&self, other: &Self) -> Ordering {
        slice_cmp(self, other)
    }
}

/// Multiclass, realized: the `K` raw scores and the label's class index.
impl SampleRow for (Box<[f64]>, usize) {
    fn total_cmp(&self, other: &Self) -> Ordering {
        slice_cmp(&self.0, &other.0).then(self.1.cmp(&other.1))
    }
}

/// The rank of the row whose key is `key`: smaller ranks are kept.
fn rank_of(key: u64) -> u64 {
    sample_hash(key, 0.0)
}

/// At most `capacity` rows: all of them while there are no more, else the bottom-k by
/// rank (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AucSample<T> {
    capacity: usize,
    /// Rows pushed (or merged) so far, kept or not.
    seen: u64,
    /// `(rank, row)`; a max-heap on `(rank, row)` once `seen > capacity`.
    entries: Vec<(u64, T)>,
}

impl<T: SampleRow> AucSample<T> {
    /// An empty sample keeping up to `capacity` rows (at least 1).
    pub fn new(capacity: usize) -> Self {
        AucSample {
            capacity: capacity.max(1),
            seen: 0,
            entries: Vec::new(),
        }
    }

    /// Adds a row; `key` identifies it (rows with the same key and values are
    /// interchangeable).
    pub fn push(&mut self, key: u64, row: T) {
        self.seen += 1;
        let entry = (rank_of(key), row);
        if self.entries.len() < self.capacity {
            self.entries.push(entry);
            if self.entries.len() == self.capacity {
                self.heapify();
            }
            return;
        }
        if less(&entry, &self.entries[0]) {
            self.entries[0] = entry;
            self.sift_down(0);
        }
    }

    /// Merges `other` in: the result is the sample of the union of both sides' rows
    /// (when both have the same capacity; else the smaller capacity is kept).
    pub fn merge(&mut self, other: &AucSample<T>) {
        self.capacity = self.capacity.min(other.capacity);
        self.seen += other.seen;
        self.entries.extend(other.entries.iter().cloned());
        let k = self.capacity;
        if self.entries.len() > k {
            self.entries.select_nth_unstable_by(k - 1, cmp);
            self.entries.truncate(k);
        }
        if self.entries.len() == k {
            self.heapify();
        }
    }

    /// The kept rows, in no particular order (the set does not depend on the history).
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &T> {
        self.entries.iter().map(|(_, row)| row)
    }

    /// Rows kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no row is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Rows pushed or merged in, kept or not.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// True while the sample holds every row seen.
    pub fn is_exact(&self) -> bool {
        self.seen == self.entries.len() as u64
    }

    fn heapify(&mut self) {
        for i in (0..self.entries.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.entries.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut largest = i;
            if l < n && less(&self.entries[largest], &self.entries[l]) {
                largest = l;
            }
            if r < n && less(&self.entries[largest], &self.entries[r]) {
                largest = r;
            }
            if largest == i {
                return;
            }
            self.entries.swap(i, largest);
            i = largest;
        }
    }
}

fn cmp<T: SampleRow>(a: &(u64, T), b: &(u64, T)) -> Ordering {
    a.0.cmp(&b.0).then_with(|| a.1.total_cmp(&b.1))
}

fn less<T: SampleRow>(a: &(u64, T), b: &(u64, T)) -> bool {
    cmp(a, b).is_lt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::fnv1a64;

    fn key(i: u64) -> u64 {
        fnv1a64(format!("req-{i}").as_bytes())
    }

    fn sorted(s: &AucSample<(f64, bool)>) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = s
            .rows()
            .map(|&(x, y)| (x.to_bits(), u64::from(y)))
            .collect();
        v.sort_unstable();
        v
    }

    fn row(i: u64) -> (f64, bool) {
        ((i % 97) as f64 / 97.0, i % 3 == 0)
    }

    #[test]
    fn keeps_every_row_up_to_the_capacity() {
        let mut s = AucSample::new(10);
        for i in 0..10 {
            s.push(key(i), row(i));
        }
        assert!(s.is_exact());
        assert_eq!(s.len(), 10);
        assert_eq!(s.seen(), 10);
        let mut all: Vec<(u64, u64)> = (0..10)
            .map(|i| (row(i).0.to_bits(), u64::from(row(i).1)))
            .collect();
        all.sort_unstable();
        assert_eq!(sorted(&s), all);
        s.push(key(10), row(10));
        assert!(!s.is_exact());
        assert_eq!(s.len(), 10);
    }

    #[test]
    fn keeps_the_smallest_ranks() {
        let mut s = AucSample::new(50);
        for i in 0..1000 {
            s.push(key(i), row(i));
        }
        let mut ranked: Vec<(u64, u64)> = (0..1000).map(|i| (rank_of(key(i)), i)).collect();
        ranked.sort_unstable();
        let mut want: Vec<(u64, u64)> = ranked[..50]
            .iter()
            .map(|&(_, i)| (row(i).0.to_bits(), u64::from(row(i).1)))
            .collect();
        want.sort_unstable();
        assert_eq!(sorted(&s), want);
    }

    proptest::proptest! {
        /// Pushed in any order, or split in parts merged in any order: the same rows.
        #[test]
        fn order_independent_and_mergeable(
            ids in proptest::collection::vec(0u64..400, 0..300),
            capacity in 1usize..40,
            cut in 0usize..300,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let mut one = AucSample::new(capacity);
            for &i in &ids {
                one.push(key(i), row(i));
            }
            let mut shuffled = ids.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let cut = cut.min(shuffled.len());
            let (mut a, mut b) = (AucSample::new(capacity), AucSample::new(capacity));
            for &i in &shuffled[..cut] {
                a.push(key(i), row(i));
            }
            for &i in &shuffled[cut..] {
                b.push(key(i), row(i));
            }
            b.merge(&a);
            proptest::prop_assert_eq!(sorted(&b), sorted(&one));
            proptest::prop_assert_eq!(b.seen(), one.seen());
            proptest::prop_assert_eq!(b.len(), ids.len().min(capacity));
        }
    }
}
