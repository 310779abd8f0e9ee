//! Tumbling event-time windows and what one window accumulates.
//!
//! Windows are `[k·size, (k+1)·size)` in epoch milliseconds. A window holds, per series
//! (model, version, optional segment value), counts and a mergeable quality aggregate, and
//! per model the counts that cannot be tied to a version (outcomes name no version).

use hashbrown::HashMap;

use crate::metrics::{ConfusionMatrix, RegressionAggregate, ScoreAggregate};

/// Window arithmetic for one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TumblingWindows {
    size_ms: i64,
}

impl TumblingWindows {
    pub fn new(size_ms: i64) -> Self {
        TumblingWindows {
            size_ms: size_ms.max(1),
        }
    }

    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// Start of the window holding `ts`.
    pub fn start_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.size_ms) * self.size_ms
    }

    pub fn end_of(&self, start: i64) -> i64 {
        start.saturating_add(self.size_ms)
    }
}

/// A series of records: one model version, optionally one value of one segment dimension.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SeriesKey {
    pub model: u16,
    pub version: u16,
    /// (dimension index in the model's `segments`, interned value).
    pub segment: Option<(u16, u32)>,
}

/// Counts that belong to a series (docs/semantics.md, "version-level").
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesCounts {
    pub predictions: u64,
    pub joined: u64,
    pub expired_predictions: u64,
    pub duplicates: u64,
    pub late: u64,
}

impl SeriesCounts {
    pub fn merge(&mut self, other: &SeriesCounts) {
        self.predictions += other.predictions;
        self.joined += other.joined;
        self.expired_predictions += other.expired_predictions;
        self.duplicates += other.duplicates;
        self.late += other.late;
    }
}

/// Counts that belong to a model ("model-level").
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelCounts {
    pub outcomes: u64,
    pub orphan_outcomes: u64,
    pub duplicates: u64,
    pub late: u64,
    pub invalid: u64,
}

impl ModelCounts {
    pub fn merge(&mut self, other: &ModelCounts) {
        self.outcomes += other.outcomes;
        self.orphan_outcomes += other.orphan_outcomes;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.invalid += other.invalid;
    }
}

/// The quality aggregate of a series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Quality {
    Classification {
        confusion: ConfusionMatrix,
        scores: ScoreAggregate,
    },
    Regression(RegressionAggregate),
}

impl Quality {
    pub fn merge(&mut self, other: &Quality) {
        match (self, other) {
            (
                Quality::Classification { confusion, scores },
                Quality::Classification {
                    confusion: c2,
                    scores: s2,
                },
            ) => {
                confusion.merge(c2);
                scores.merge(s2);
            }
            (Quality::Regression(a), Quality::Regression(b)) => a.merge(b),
            // A series has one task: different kinds never meet.
            _ => {}
        }
    }
}

/// Everything a series accumulates in one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesWindow {
    pub counts: SeriesCounts,
    pub quality: Quality,
}

impl SeriesWindow {
    pub fn merge(&mut self, other: &SeriesWindow) {
        self.counts.merge(&other.counts);
        self.quality.merge(&other.quality);
    }
}

/// One open window.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub series: HashMap<SeriesKey, SeriesWindow>,
    pub models: HashMap<u16, ModelCounts>,
}

impl Window {
    /// Adds another window's aggregates (for combining partitions or instances).
    pub fn merge(&mut self, other: &Window) {
        for (key, series) in &other.series {
            match self.series.get_mut(key) {
                Some(mine) => mine.merge(series),
                None => {
                    self.series.insert(*key, series.clone());
                }
            }
        }
        for (model, counts) in &other.models {
            self.models.entry(*model).or_default().merge(counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        let w = TumblingWindows::new(60_000);
        assert_eq!(w.start_of(0), 0);
        assert_eq!(w.start_of(59_999), 0);
        assert_eq!(w.start_of(60_000), 60_000);
        assert_eq!(w.start_of(-1), -60_000);
        assert_eq!(w.end_of(60_000), 120_000);
    }
}
