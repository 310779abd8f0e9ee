//! Tumbling event-time windows and what one window accumulates.
//!
//! Windows are `[k·size, (k+1)·size)` in epoch milliseconds. A window holds, per series
//! (model, version, optional segment value), counts and a mergeable quality aggregate, and
//! per model the counts that cannot be tied to a version (outcomes name no version).
//!
//! Series have dense ids ([`SeriesIndex`]), so a window keeps its series in a `Vec` and
//! finding a pair's series is indexing rather than hashing: it happens several times per
//! record.

use crate::metrics::{ConfusionMatrix, RegressionAggregate, ScoreAggregate};
use crate::settings::Task;

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

    /// Start of the window holding `ts`.
    pub(crate) fn start_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.size_ms) * self.size_ms
    }

    pub(crate) fn end_of(&self, start: i64) -> i64 {
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

/// A series' dense id, given by a [`SeriesIndex`].
pub type SeriesId = u32;

const UNASSIGNED: SeriesId = SeriesId::MAX;

/// Dense ids for series, assigned on first use and never reused: by model, version and
/// segment dimension, the ids are vectors indexed by the interned version and value ids.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesIndex {
    keys: Vec<SeriesKey>,
    /// `[model][version]`.
    versions: Vec<Vec<VersionSeries>>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct VersionSeries {
    unsegmented: SeriesId,
    /// `[dimension][value id]`.
    segments: Vec<Vec<SeriesId>>,
}

impl SeriesIndex {
    /// The id of `key`, assigned if it has none yet.
    pub fn id(&mut self, key: SeriesKey) -> SeriesId {
        let model = grow(&mut self.versions, key.model as usize, Vec::new);
        let version = grow(model, key.version as usize, || VersionSeries {
            unsegmented: UNASSIGNED,
            segments: Vec::new(),
        });
        let slot = match key.segment {
            None => &mut version.unsegmented,
            Some((dim, value)) => {
                let values = grow(&mut version.segments, dim as usize, Vec::new);
                grow(values, value as usize, || UNASSIGNED)
            }
        };
        if *slot == UNASSIGNED {
            *slot = self.keys.len() as SeriesId;
            self.keys.push(key);
        }
        *slot
    }

    pub fn key(&self, id: SeriesId) -> SeriesKey {
        self.keys[id as usize]
    }
}

/// The indices of the `Some` items.
fn occupied<T>(items: &[Option<T>]) -> impl Iterator<Item = usize> + '_ {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.is_some())
        .map(|(i, _)| i)
}

/// `items[index]`, after growing `items` with `new` up to it.
pub(crate) fn grow<T>(items: &mut Vec<T>, index: usize, new: impl FnMut() -> T) -> &mut T {
    if items.len() <= index {
        items.resize_with(index + 1, new);
    }
    &mut items[index]
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
    /// The aggregate of a series with no pairs yet.
    pub fn empty(task: Task) -> Quality {
        match task {
            Task::Regression => Quality::Regression(RegressionAggregate::default()),
            Task::Binary | Task::Multiclass => Quality::Classification {
                confusion: ConfusionMatrix::default(),
                scores: ScoreAggregate::default(),
            },
        }
    }

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
    /// Indexed by [`SeriesId`]; `None` for series this window has not seen.
    series: Vec<Option<SeriesWindow>>,
    /// Indexed by model id; `None` for models with no model-level counts here.
    models: Vec<Option<ModelCounts>>,
}

impl Window {
    /// The aggregates of series `id`, created empty (for a model of `task`) if new.
    pub(crate) fn series_mut(&mut self, id: SeriesId, task: Task) -> &mut SeriesWindow {
        grow(&mut self.series, id as usize, || None).get_or_insert_with(|| SeriesWindow {
            counts: SeriesCounts::default(),
            quality: Quality::empty(task),
        })
    }

    pub fn series(&self, id: SeriesId) -> Option<&SeriesWindow> {
        self.series.get(id as usize).and_then(Option::as_ref)
    }

    /// The ids of the series this window has seen, ascending.
    pub(crate) fn series_ids(&self) -> impl Iterator<Item = SeriesId> + '_ {
        occupied(&self.series).map(|id| id as SeriesId)
    }

    /// The model-level counts of `model`, created zero if new.
    pub(crate) fn model_mut(&mut self, model: u16) -> &mut ModelCounts {
        grow(&mut self.models, model as usize, || None).get_or_insert_with(ModelCounts::default)
    }

    pub fn model(&self, model: u16) -> Option<&ModelCounts> {
        self.models.get(model as usize).and_then(Option::as_ref)
    }

    /// The models with model-level counts in this window, ascending.
    pub(crate) fn model_ids(&self) -> impl Iterator<Item = u16> + '_ {
        occupied(&self.models).map(|id| id as u16)
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

    #[test]
    fn series_ids_are_dense_and_stable() {
        let mut index = SeriesIndex::default();
        let key = |model, version, segment| SeriesKey {
            model,
            version,
            segment,
        };
        assert_eq!(index.id(key(1, 2, None)), 0);
        assert_eq!(index.id(key(1, 2, Some((1, 5)))), 1);
        assert_eq!(index.id(key(0, 0, None)), 2);
        assert_eq!(index.id(key(1, 2, None)), 0);
        assert_eq!(index.id(key(1, 2, Some((1, 5)))), 1);
        assert_eq!(index.key(1), key(1, 2, Some((1, 5))));
        let mut window = Window::default();
        window.series_mut(2, Task::Binary).counts.joined += 1;
        window.series_mut(0, Task::Binary).counts.joined += 1;
        assert_eq!(window.series_ids().collect::<Vec<_>>(), vec![0, 2]);
        assert!(window.series(1).is_none());
        let mut other = SeriesWindow {
            counts: SeriesCounts::default(),
            quality: Quality::empty(Task::Binary),
        };
        other.counts.joined += 2;
        window.series_mut(1, Task::Binary).counts.joined += 1;
        window.series_mut(2, Task::Binary).merge(&other);
        let joined: Vec<u64> = window
            .series_ids()
            .map(|id| window.series(id).map_or(0, |s| s.counts.joined))
            .collect();
        assert_eq!(joined, vec![1, 1, 3]);
    }
}
