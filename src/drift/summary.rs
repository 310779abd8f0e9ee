//! Mergeable, bounded-memory summaries of a feature over a time window:
//! [`NumericSummary`] keeps the samples KS and Wasserstein need (exact up to
//! a capacity, then a deterministic uniform reservoir) and
//! [`CategoricalSummary`] keeps per-category counts with a cap on the number
//! of distinct categories. Both merge, so per-partition summaries can be
//! combined into one window.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::DriftError;

/// Default number of samples a [`NumericSummary`] keeps exactly.
pub const DEFAULT_SAMPLE_CAPACITY: usize = 10_000;
/// Default number of distinct categories a [`CategoricalSummary`] tracks.
pub const DEFAULT_MAX_CATEGORIES: usize = 1_000;
/// Bucket receiving counts of categories beyond the cap.
pub const OTHER_CATEGORY: &str = "__other__";

/// SplitMix64: a tiny, seedable, deterministic generator (Steele et al. 2014).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..bound` (multiply-shift; bias < bound / 2^64).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// Samples of a numeric feature. While `count <= capacity` the samples are
/// exactly the finite values seen; beyond that they are a uniform random
/// sample of size `capacity` (reservoir sampling, Algorithm R) drawn with a
/// generator seeded by the caller, so results are reproducible.
/// Non-finite inputs (NaN, +-inf) are not sampled; they are counted in
/// `non_finite`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    capacity: usize,
    count: u64,
    non_finite: u64,
    samples: Vec<f64>,
    rng: SplitMix64,
}

impl NumericSummary {
    /// Summary keeping up to [`DEFAULT_SAMPLE_CAPACITY`] exact samples.
    pub fn new(seed: u64) -> Self {
        NumericSummary {
            capacity: DEFAULT_SAMPLE_CAPACITY,
            count: 0,
            non_finite: 0,
            samples: Vec::new(),
            rng: SplitMix64 { state: seed },
        }
    }

    /// Summary with a custom capacity (must be at least 1).
    pub fn with_capacity(capacity: usize, seed: u64) -> Result<Self, DriftError> {
        if capacity == 0 {
            return Err(DriftError::InvalidParameter(
                "sample capacity must be at least 1".into(),
            ));
        }
        Ok(NumericSummary {
            capacity,
            ..NumericSummary::new(seed)
        })
    }

    /// Adds one value; non-finite values are only counted.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        self.count += 1;
        if self.samples.len() < self.capacity {
            self.samples.push(x);
        } else {
            let slot = self.rng.below(self.count) as usize;
            if slot < self.capacity {
                self.samples[slot] = x;
            }
        }
    }

    /// Adds every value of a slice.
    pub fn extend(&mut self, values: &[f64]) {
        for &x in values {
            self.push(x);
        }
    }

    /// Merges `other` into `self`. If the combined count fits the capacity
    /// the samples are concatenated (exact). Otherwise each side contributes
    /// a share of `capacity` proportional to the number of values it
    /// represents (`round(capacity * n_self / (n_self + n_other))`, limited
    /// by what each side holds), chosen uniformly without replacement
    /// (partial Fisher-Yates) from its samples with `self`'s generator.
    pub fn merge(&mut self, other: &NumericSummary) {
        self.non_finite += other.non_finite;
        let total = self.count + other.count;
        if total as usize <= self.capacity {
            self.samples.extend_from_slice(&other.samples);
            self.count = total;
            return;
        }
        let own_share = (self.capacity as f64 * self.count as f64 / total as f64).round() as usize;
        let own_take = own_share.min(self.samples.len());
        let other_take = (self.capacity - own_take).min(other.samples.len());
        let own_take = (self.capacity - other_take).min(self.samples.len());
        let mut own = std::mem::take(&mut self.samples);
        let mut theirs = other.samples.clone();
        let mut merged = self.choose(&mut own, own_take);
        merged.extend(self.choose(&mut theirs, other_take));
        self.samples = merged;
        self.count = total;
    }

    /// `k` elements of `pool` chosen uniformly without replacement.
    fn choose(&mut self, pool: &mut [f64], k: usize) -> Vec<f64> {
        let n = pool.len();
        for i in 0..k.min(n) {
            let j = i + self.rng.below((n - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool[..k.min(n)].to_vec()
    }

    /// The kept samples (insertion order, unsorted).
    pub fn samples(&self) -> &[f64] {
        &self.samples
    }

    /// Number of finite values seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of non-finite values seen (and ignored).
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// Maximum number of samples kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True while the samples are exactly the values seen.
    pub fn is_exact(&self) -> bool {
        self.count as usize <= self.capacity
    }
}

/// Per-category counts. At most `max_categories` distinct names are kept;
/// further new names are counted under [`OTHER_CATEGORY`].
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
        let mut sa = NumericSummary::with_capacity(1000, 1).expect("capacity");
        sa.extend(&a);
        let mut sb = NumericSummary::with_capacity(1000, 2).expect("capacity");
        sb.extend(&b);
        sa.merge(&sb);
        let mut union = NumericSummary::with_capacity(1000, 3).expect("capacity");
        union.extend(&a);
        union.extend(&b);
        assert_eq!(sa.count(), union.count());
        assert_eq!(sorted(sa.samples()), sorted(union.samples()));
        assert!(sa.is_exact());
    }

    #[test]
    fn reservoir_memory_is_bounded() {
        let mut s = NumericSummary::with_capacity(100, 42).expect("capacity");
        for i in 0..100_000 {
            s.push(i as f64);
        }
        assert_eq!(s.samples().len(), 100);
        assert_eq!(s.count(), 100_000);
        assert!(!s.is_exact());
        // A uniform sample of 0..100000 has a mean near 50000.
        let mean = s.samples().iter().sum::<f64>() / 100.0;
        assert!((mean - 50_000.0).abs() < 10_000.0, "mean {mean}");
        let mut other = NumericSummary::with_capacity(100, 7).expect("capacity");
        other.extend(&vec![1.0; 500]);
        s.merge(&other);
        assert_eq!(s.samples().len(), 100);
        assert_eq!(s.count(), 100_500);
    }

    #[test]
    fn reservoir_is_deterministic() {
        let run = |seed| {
            let mut s = NumericSummary::with_capacity(10, seed).expect("capacity");
            for i in 0..1000 {
                s.push(i as f64);
            }
            s.samples().to_vec()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn non_finite_values_are_ignored_and_counted() {
        let mut s = NumericSummary::new(0);
        s.extend(&[1.0, f64::NAN, 2.0, f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(s.count(), 2);
        assert_eq!(s.non_finite(), 3);
        assert_eq!(s.samples(), &[1.0, 2.0]);
    }

    #[test]
    fn zero_capacity_is_rejected() {
        assert!(NumericSummary::with_capacity(0, 0).is_err());
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
