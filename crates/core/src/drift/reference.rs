//! Frozen references: the statistics of a reference period computed once
//! (sorted samples, decile cuts, bin proportions, mean/std; category
//! proportions) so that every window is compared in O(n log n) without
//! recomputing anything about the reference.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::summary::{CategoricalSummary, NumericSummary};
use super::two_sample::{bin_proportions, decile_cuts};

/// A numeric reference distribution, ready for comparisons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericReference {
    sorted: Vec<f64>,
    cuts: Vec<f64>,
    bin_proportions: Vec<f64>,
    mean: f64,
    std: f64,
}

impl NumericReference {
    /// Freezes the samples of a summary.
    pub(crate) fn from_summary(summary: &NumericSummary) -> Self {
        NumericReference::from_samples(summary.samples())
    }

    /// Freezes a slice of values; non-finite values are dropped.
    pub fn from_samples(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        crate::total_order_sort::sort_f64(&mut sorted);
        let cuts = decile_cuts(&sorted);
        let bin_proportions = if sorted.is_empty() {
            Vec::new()
        } else {
            bin_proportions(&cuts, &sorted)
        };
        let n = sorted.len() as f64;
        let (mean, std) = if sorted.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            let mean = sorted.iter().sum::<f64>() / n;
            let var = sorted.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
            (mean, var.sqrt())
        };
        NumericReference {
            sorted,
            cuts,
            bin_proportions,
            mean,
            std,
        }
    }

    /// Reference samples, sorted ascending.
    pub(crate) fn sorted_samples(&self) -> &[f64] {
        &self.sorted
    }

    /// The nine decile cut points (empty for an empty reference).
    pub fn cuts(&self) -> &[f64] {
        &self.cuts
    }

    /// Raw (unfloored) proportions of the reference in the ten PSI bins.
    pub fn bin_proportions(&self) -> &[f64] {
        &self.bin_proportions
    }

    /// Number of reference samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// True if the reference holds no sample.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Mean of the reference samples (NaN if empty).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Population standard deviation (ddof = 0) of the reference samples.
    pub fn std(&self) -> f64 {
        self.std
    }
}

/// A categorical reference distribution: counts per category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoricalReference {
    counts: BTreeMap<String, u64>,
    total: u64,
}

impl CategoricalReference {
    /// Freezes a summary.
    pub(crate) fn from_summary(summary: &CategoricalSummary) -> Self {
        CategoricalReference::from_counts(summary.counts().iter().map(|(k, &v)| (k.as_str(), v)))
    }

    /// Builds a reference from (category, count) pairs; repeated names add up.
    pub fn from_counts<'a>(counts: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut map = BTreeMap::new();
        let mut total = 0;
        for (name, n) in counts {
            *map.entry(name.to_string()).or_insert(0) += n;
            total += n;
        }
        CategoricalReference { counts: map, total }
    }

    /// Counts per category, ordered by name.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Proportion of a category (0 for unseen names or an empty reference).
    pub(crate) fn proportion(&self, category: &str) -> f64 {
        match (self.counts.get(category), self.total) {
            (Some(&n), total) if total > 0 => n as f64 / total as f64,
            _ => 0.0,
        }
    }
}
