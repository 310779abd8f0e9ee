//! Mergeable, bounded-memory summaries of a feature over a time window:
//! [`NumericSummary`] keeps the samples KS and Wasserstein need (exact up to
//! a capacity, then an order-independent bottom-k sample by hash) and
//! [`CategoricalSummary`] keeps per-category counts with a cap on the number
//! of distinct categories. Both merge, so per-partition summaries can be
//! combined into one window.

use hashbrown::HashMap;

use serde::{Deserialize, Serialize};

use super::DriftError;

/// Default number of samples a [`NumericSummary`] keeps exactly.
pub const DEFAULT_SAMPLE_CAPACITY: usize = 10_000;
/// Default number of distinct categories a [`CategoricalSummary`] tracks.
pub(crate) const DEFAULT_MAX_CATEGORIES: usize = 1_000;
/// Bucket receiving counts of categories beyond the cap.
pub(crate) const OTHER_CATEGORY: &str = "__other__";

/// FNV-1a, 64 bits: the deterministic hash of a join id (std's hasher is randomized per
/// process, so it cannot be used for anything that must be reproducible).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finalizer: a bijective 64-bit mix with full avalanche.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sampling hash of one observation: `key` identifies the observation (the caller mixes
/// the record's id hash and the variable), `x` is the value.
#[inline]
pub(crate) fn sample_hash(key: u64, x: f64) -> u64 {
    mix64(
        mix64(key)
            .wrapping_add(x.to_bits())
            .wrapping_add(0x9E37_79B9_7F4A_7C15),
    )
}

/// The key of variable `slot` of the record whose id hashes to `id_hash`.
#[inline]
pub(crate) fn sample_key(id_hash: u64, slot: u64) -> u64 {
    id_hash ^ slot.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Samples of a numeric feature. While `count <= capacity` the samples are exactly the
/// finite values seen. Beyond that they are a **bottom-k sample**: the `capacity` values
/// with the smallest `sample_hash` of (observation key, value) — a uniform sample without
/// replacement (for a good hash) that depends only on the set of observations, not on the
/// order they arrive in, and merges exactly (the bottom-k of a union is the bottom-k of
/// the bottom-k's). Non-finite inputs (NaN, +-inf) are not sampled; they are counted in
/// `non_finite`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    capacity: usize,
    count: u64,
    non_finite: u64,
    samples: Vec<f64>,
    /// `sample_hash` of each sample (same order); a max-heap on `(hash, value bits)` once
    /// `count > capacity`.
    hashes: Vec<u64>,
    heap: bool,
}

impl Default for NumericSummary {
    fn default() -> Self {
        NumericSummary::new()
    }
}

impl NumericSummary {
    /// Summary keeping up to [`DEFAULT_SAMPLE_CAPACITY`] exact samples.
    pub fn new() -> Self {
        NumericSummary {
            capacity: DEFAULT_SAMPLE_CAPACITY,
            count: 0,
            non_finite: 0,
            samples: Vec::new(),
            hashes: Vec::new(),
            heap: false,
        }
    }

    /// Summary with a custom capacity (must be at least 1).
    pub fn with_capacity(capacity: usize) -> Result<Self, DriftError> {
        if capacity == 0 {
            return Err(DriftError::InvalidParameter(
                "sample capacity must be at least 1".into(),
            ));
        }
        Ok(NumericSummary {
            capacity,
            ..NumericSummary::new()
        })
    }

    /// Adds one value; `key` identifies the observation (see `sample_key`): equal
    /// (key, value) observations are interchangeable. Non-finite values are only counted.
    #[inline]
    pub fn push(&mut self, x: f64, key: u64) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        self.count += 1;
        let h = sample_hash(key, x);
        if self.samples.len() < self.capacity {
            self.samples.push(x);
            self.hashes.push(h);
            return;
        }
        if !self.heap {
            self.heapify();
        }
        if (h, x.to_bits()) < (self.hashes[0], self.samples[0].to_bits()) {
            self.hashes[0] = h;
            self.samples[0] = x;
            self.sift_down(0);
        }
    }

    /// Adds every value of a slice; the key of a value is its position.
    pub fn extend(&mut self, values: &[f64]) {
        for (i, &x) in values.iter().enumerate() {
            self.push(x, sample_key(i as u64, 0));
        }
    }

    fn less(&self, i: usize, j: usize) -> bool {
        (self.hashes[i], self.samples[i].to_bits()) < (self.hashes[j], self.samples[j].to_bits())
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.hashes.swap(i, j);
        self.samples.swap(i, j);
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.samples.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut largest = i;
            if l < n && self.less(largest, l) {
                largest = l;
            }
            if r < n && self.less(largest, r) {
                largest = r;
            }
            if largest == i {
                return;
            }
            self.swap(i, largest);
            i = largest;
        }
    }

    fn heapify(&mut self) {
        for i in (0..self.samples.len() / 2).rev() {
            self.sift_down(i);
        }
        self.heap = true;
    }

    /// Merges `other` into `self`: the result is exactly the summary of the union of the
    /// observations (concatenation while it fits the capacity, else the bottom-k of the
    /// union) provided both sides have the same capacity; with different capacities the
    /// smaller one is kept.
    pub fn merge(&mut self, other: &NumericSummary) {
        self.non_finite += other.non_finite;
        let total = self.count + other.count;
        if !other.is_exact() {
            self.capacity = self.capacity.min(other.capacity);
        }
        self.samples.extend_from_slice(&other.samples);
        self.hashes.extend_from_slice(&other.hashes);
        self.count = total;
        self.heap = false;
        let k = self.capacity;
        if self.samples.len() > k {
            let mut pairs: Vec<(u64, u64)> = self
                .hashes
                .iter()
                .zip(&self.samples)
                .map(|(&h, x)| (h, x.to_bits()))
                .collect();
            pairs.select_nth_unstable(k - 1);
            pairs.truncate(k);
            pairs.sort_unstable();
            self.hashes = pairs.iter().map(|p| p.0).collect();
            self.samples = pairs.iter().map(|p| f64::from_bits(p.1)).collect();
        }
        if self.count as usize > k {
            self.heapify();
        }
    }

    /// The kept samples (unsorted; the order depends on the history, the set does not).
    pub fn samples(&self) -> &[f64] {
        &self.samples
    }

    /// Number of finite values seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of non-finite values seen (and ignored).
    #[cfg(test)]
    pub(crate) fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// True while the samples are exactly the values seen.
    pub(crate) fn is_exact(&self) -> bool {
        self.count as usize <= self.capacity
    }
}

/// Per-category counts. At most `max_categories` distinct names are kept;
/// further new names are counted under `OTHER_CATEGORY`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSummary {
    max_categories: usize,
    counts: HashMap<String, u64>,
    total: u64,
}

impl Default for CategoricalSummary {
    fn default() -> Self {
        CategoricalSummary::new(DEFAULT_MAX_CATEGORIES)
    }
}

impl CategoricalSummary {
    /// Summary tracking up to `max_categories` distinct names.
    pub fn new(max_categories: usize) -> Self {
        CategoricalSummary {
            max_categories,
            counts: HashMap::new(),
            total: 0,
        }
    }

    /// Adds one occurrence of `category`.
    pub fn push(&mut self, category: &str) {
        self.add(category, 1);
    }

    /// Adds `n` occurrences of `category`.
    pub fn add(&mut self, category: &str, n: u64) {
        self.total += n;
        if let Some(c) = self.counts.get_mut(category) {
            *c += n;
            return;
        }
        let distinct = self.counts.len() - usize::from(self.counts.contains_key(OTHER_CATEGORY));
        let key = if distinct < self.max_categories && category != OTHER_CATEGORY {
            category
        } else {
            OTHER_CATEGORY
        };
        *self.counts.entry(key.to_string()).or_insert(0) += n;
    }

    /// Adds all counts of `other` (same overflow rule).
    pub fn merge(&mut self, other: &CategoricalSummary) {
        let mut names: Vec<&String> = other.counts.keys().collect();
        names.sort();
        for name in names {
            if let Some(&n) = other.counts.get(name) {
                self.add(name, n);
            }
        }
    }

    /// Counts per category.
    pub fn counts(&self) -> &HashMap<String, u64> {
        &self.counts
    }

    /// Total number of occurrences.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(v: &[f64]) -> Vec<f64> {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn merge_under_capacity_equals_union() {
        let a: Vec<f64> = (0..300).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..200).map(|i| (i as f64 * 0.11).cos()).collect();
        let mut sa = NumericSummary::with_capacity(1000).expect("capacity");
        sa.extend(&a);
        let mut sb = NumericSummary::with_capacity(1000).expect("capacity");
        sb.extend(&b);
        sa.merge(&sb);
        let mut union = NumericSummary::with_capacity(1000).expect("capacity");
        union.extend(&a);
        union.extend(&b);
        assert_eq!(sa.count(), union.count());
        assert_eq!(sorted(sa.samples()), sorted(union.samples()));
        assert!(sa.is_exact());
    }

    #[test]
    fn reservoir_memory_is_bounded() {
        let mut s = NumericSummary::with_capacity(100).expect("capacity");
        for i in 0..100_000u64 {
            s.push(i as f64, sample_key(fnv1a64(&i.to_le_bytes()), 0));
        }
        assert_eq!(s.samples().len(), 100);
        assert_eq!(s.count(), 100_000);
        assert!(!s.is_exact());
        // A uniform sample of 0..100000 has a mean near 50000.
        let mean = s.samples().iter().sum::<f64>() / 100.0;
        assert!((mean - 50_000.0).abs() < 10_000.0, "mean {mean}");
        let mut other = NumericSummary::with_capacity(100).expect("capacity");
        for i in 0..500u64 {
            other.push(1.0, sample_key(fnv1a64(&(1_000_000 + i).to_le_bytes()), 0));
        }
        s.merge(&other);
        assert_eq!(s.samples().len(), 100);
        assert_eq!(s.count(), 100_500);
    }

    #[test]
    fn bottom_k_is_order_independent_and_mergeable() {
        let obs: Vec<(f64, u64)> = (0..5000u64)
            .map(|i| {
                let x = ((i * 7919) % 1000) as f64 / 10.0;
                (x, sample_key(fnv1a64(format!("req-{i}").as_bytes()), 3))
            })
            .collect();
        let build = |items: &[(f64, u64)]| {
            let mut s = NumericSummary::with_capacity(300).expect("capacity");
            for &(x, k) in items {
                s.push(x, k);
            }
            s
        };
        let forward = build(&obs);
        let mut reversed_obs = obs.clone();
        reversed_obs.reverse();
        let reversed = build(&reversed_obs);
        assert_eq!(sorted(forward.samples()), sorted(reversed.samples()));
        // Any split, merged in any order, gives the same sample.
        for cut in [0, 1, 299, 300, 301, 2500, 4999] {
            let (a, b) = obs.split_at(cut);
            let mut ab = build(a);
            ab.merge(&build(b));
            let mut ba = build(b);
            ba.merge(&build(a));
            assert_eq!(sorted(ab.samples()), sorted(forward.samples()), "cut {cut}");
            assert_eq!(sorted(ba.samples()), sorted(forward.samples()), "cut {cut}");
            assert_eq!(ab.count(), 5000);
        }
        assert_eq!(forward.samples().len(), 300);
    }

    #[test]
    fn non_finite_values_are_ignored_and_counted() {
        let mut s = NumericSummary::new();
        s.extend(&[1.0, f64::NAN, 2.0, f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(s.count(), 2);
        assert_eq!(s.non_finite(), 3);
        assert_eq!(s.samples(), &[1.0, 2.0]);
    }

    #[test]
    fn zero_capacity_is_rejected() {
        assert!(NumericSummary::with_capacity(0).is_err());
    }

    #[test]
    fn categories_overflow_into_other() {
        let mut s = CategoricalSummary::new(2);
        for c in ["a", "b", "c", "a", "d"] {
            s.push(c);
        }
        assert_eq!(s.counts().get("a"), Some(&2));
        assert_eq!(s.counts().get("b"), Some(&1));
        assert_eq!(s.counts().get(OTHER_CATEGORY), Some(&2));
        assert_eq!(s.total(), 5);
    }

    #[test]
    fn categorical_merge_adds_counts() {
        let mut a = CategoricalSummary::default();
        a.push("x");
        a.push("y");
        let mut b = CategoricalSummary::default();
        b.push("y");
        b.push("z");
        a.merge(&b);
        assert_eq!(a.counts().get("y"), Some(&2));
        assert_eq!(a.counts().get("z"), Some(&1));
        assert_eq!(a.total(), 4);
    }
}
