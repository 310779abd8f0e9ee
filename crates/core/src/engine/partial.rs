//! A window handed over by name: the engine's side of the partitioned engine
//! ([`crate::partition`]).
//!
//! A task's engine joins and aggregates its share of the input like any engine, but when
//! its watermark passes a window's close it hands the window over as one
//! [`WindowPartial`] per model instead of closing it. Partials carry names (versions,
//! segment values, labels), not the engine's interned ids, which are local to a process.
//! A finalizer's engine merges the partials of every task into its own windows and
//! closes them with the same code as a single engine: the records come out the same.

use std::collections::BTreeMap;

use super::{version_name, Engine, EngineConfig, EstimationRows};
use crate::drift::stream::DriftPartial;
use crate::interner::Interner;
use crate::metrics::{ConfusionMatrix, RegressionAggregate, ScoreAggregate};
use crate::settings::Task;
use crate::window::{ModelCounts, Quality, SeriesCounts, SeriesKey, SeriesWindow};

/// What a partial holds, and so when the finalizer takes it in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PartialKind {
    /// A window the task passed: due when the window closes.
    Window,
    /// Performance-estimation labels of a window handed over before, joined since: due
    /// when every prediction of the window is joined or expired (end +
    /// `join.max_label_delay`), for its estimation check.
    LateLabels,
}

/// One model's share of one window from one task.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WindowPartial {
    pub kind: PartialKind,
    pub model: String,
    pub window_start: i64,
    /// The model's series in the window, by (version, segment).
    pub series: Vec<SeriesPartial>,
    /// Counts that belong to the model rather than to a version (outcomes, orphans…).
    pub model_counts: Option<ModelCounts>,
    pub drift: Option<DriftPartial>,
    /// Performance estimation (`[models.estimation]`): (version, rows and labels of the
    /// window by prediction time), by version.
    pub estimation: Vec<(String, EstimationRows)>,
}

/// A series' aggregates in a [`WindowPartial`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeriesPartial {
    /// `""` is the absent version.
    pub version: String,
    /// (dimension: its index in the model's `segments`, value).
    pub segment: Option<(u16, String)>,
    pub counts: SeriesCounts,
    pub quality: QualityPartial,
}

/// A series' quality aggregate with its labels by name.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum QualityPartial {
    Classification {
        /// (actual, predicted, count), sorted.
        cells: Vec<(String, String, u64)>,
        scores: ScoreAggregate,
    },
    Regression(RegressionAggregate),
}

/// Why a partial, or a configuration, does not fit the partitioned engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartialError {
    #[error("a partial names model `{0}`, which is not configured")]
    UnknownModel(String),
    #[error("a partial of model `{model}` names segment dimension {dimension}, which the model does not have")]
    UnknownSegment { model: String, dimension: u16 },
    #[error("a partial of model `{model}` holds another kind of quality aggregate than the model's task")]
    KindMismatch { model: String },
}

impl Engine {
    /// The engine of a task: an engine whose windows are handed over
    /// ([`Engine::advance_task_watermark`]), never closed.
    pub fn for_task(config: EngineConfig) -> Result<Engine, PartialError> {
        let mut engine = Engine::new(config);
        engine.estimation.for_task();
        Ok(engine)
    }

    /// The engine of a finalizer: its windows come from partials
    /// ([`Engine::merge_partial`]). The tasks applied the limits on versions, labels and
    /// segment values, each to its share; their union is kept whole here.
    pub fn for_finalizer(config: EngineConfig) -> Result<Engine, PartialError> {
        let mut engine = Engine::new(config);
        for model in &mut engine.models {
            model.versions = Interner::with_capacity_limit(usize::MAX);
            for values in &mut model.segment_values {
                *values = Interner::with_capacity_limit(usize::MAX);
            }
        }
        engine.labels = Interner::with_capacity_limit(usize::MAX);
        Ok(engine)
    }

    /// A task's watermark step: moves the watermark (never backwards), expires what it
    /// passed, and hands over the windows it passed: their partials, in window order, then
    /// by model. A window is handed over at the watermark at which a single engine would
    /// close it.
    pub fn advance_task_watermark(&mut self, watermark: i64) -> Vec<WindowPartial> {
        if !self.expire_until(watermark) {
            return Vec::new();
        }
        let mut out = Vec::new();
        while let Some((start, window)) = self.next_closed_window(watermark) {
            let models = &self.models;
            let drift = self.drift.take_partials(start, |model, version| {
                version_name(&models[model as usize], version).to_string()
            });
            let mut partials: BTreeMap<u16, WindowPartial> = BTreeMap::new();
            let new = |model: u16| WindowPartial {
                kind: PartialKind::Window,
                model: models[model as usize].spec.name.clone(),
                window_start: start,
                series: Vec::new(),
                model_counts: None,
                drift: None,
                estimation: Vec::new(),
            };
            for id in window.series_ids() {
                let Some(series) = window.series(id) else {
                    continue;
                };
                let key = self.series.key(id);
                let state = &models[key.model as usize];
                let quality = match &series.quality {
                    Quality::Classification { confusion, scores } => {
                        let mut cells: Vec<(String, String, u64)> = confusion
                            .cells()
                            .map(|(actual, predicted, n)| {
                                (
                                    self.labels.name(actual).to_string(),
                                    self.labels.name(predicted).to_string(),
                                    n,
                                )
                            })
                            .collect();
                        cells.sort();
                        QualityPartial::Classification {
                            cells,
                            scores: scores.clone(),
                        }
                    }
                    Quality::Regression(aggregate) => QualityPartial::Regression(aggregate.clone()),
                };
                partials
                    .entry(key.model)
                    .or_insert_with(|| new(key.model))
                    .series
                    .push(SeriesPartial {
                        version: version_name(state, key.version).to_string(),
                        segment: key.segment.map(|(dim, value)| {
                            (
                                dim,
                                state.segment_values[dim as usize].name(value).to_string(),
                            )
                        }),
                        counts: series.counts.clone(),
                        quality,
                    });
            }
            for model in window.model_ids() {
                partials
                    .entry(model)
                    .or_insert_with(|| new(model))
                    .model_counts = window.model(model).cloned();
            }
            for (model, drift) in drift {
                partials.entry(model).or_insert_with(|| new(model)).drift = Some(drift);
            }
            for (model, version, rows) in self.estimation.take_window(start, &self.labels) {
                let version = version_name(&models[model as usize], version).to_string();
                partials
                    .entry(model)
                    .or_insert_with(|| new(model))
                    .estimation
                    .push((version, rows));
            }
            for mut p in partials.into_values() {
                p.series
                    .sort_by(|a, b| (&a.version, &a.segment).cmp(&(&b.version, &b.segment)));
                p.estimation.sort_by(|a, b| a.0.cmp(&b.0));
                out.push(p);
            }
        }
        // Estimation labels joined after their window was handed over, once the window
        // is complete: one partial per (window, model).
        let late = self.estimation.take_late_labels(
            watermark,
            &self.windows_spec,
            self.config.max_label_delay,
            &self.labels,
        );
        let mut by_window: BTreeMap<(i64, u16), WindowPartial> = BTreeMap::new();
        for (start, model, version, rows) in late {
            let state = &self.models[model as usize];
            by_window
                .entry((start, model))
                .or_insert_with(|| WindowPartial {
                    kind: PartialKind::LateLabels,
                    model: state.spec.name.clone(),
                    window_start: start,
                    series: Vec::new(),
                    model_counts: None,
                    drift: None,
                    estimation: Vec::new(),
                })
                .estimation
                .push((version_name(state, version).to_string(), rows));
        }
        for mut p in by_window.into_values() {
            p.estimation.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(p);
        }
        out
    }

    /// When the finalizer takes a partial in: at its window's close, or, for late labels,
    /// once every prediction of the window is joined or expired.
    pub fn due_of(&self, partial: &WindowPartial) -> i64 {
        match partial.kind {
            PartialKind::Window => self.close_of(partial.window_start),
            PartialKind::LateLabels => self
                .windows_spec
                .end_of(partial.window_start)
                .saturating_add(self.config.max_label_delay),
        }
    }

    /// When the window starting at `start` closes: the watermark that passes its end,
    /// plus `join.max_label_delay` with `attribute_to = "prediction"`.
    pub fn close_of(&self, start: i64) -> i64 {
        self.windows_spec
            .end_of(start)
            .saturating_add(self.close_wait())
    }

    /// Whether a partial fits this engine's configuration; its model's index if so.
    pub fn check_partial(&self, partial: &WindowPartial) -> Result<usize, PartialError> {
        let model = self
            .models
            .iter()
            .position(|m| m.spec.name == partial.model)
            .ok_or_else(|| PartialError::UnknownModel(partial.model.clone()))?;
        let spec = &self.models[model].spec;
        for series in &partial.series {
            if let Some((dimension, _)) = series.segment {
                if dimension as usize >= spec.segments.len() {
                    return Err(PartialError::UnknownSegment {
                        model: spec.name.clone(),
                        dimension,
                    });
                }
            }
            let fits = matches!(
                (&series.quality, spec.task),
                (QualityPartial::Regression(_), Task::Regression)
                    | (
                        QualityPartial::Classification { .. },
                        Task::Binary | Task::Multiclass
                    )
            );
            if !fits {
                return Err(PartialError::KindMismatch {
                    model: spec.name.clone(),
                });
            }
        }
        Ok(model)
    }

    /// Adds a task's partial to this (finalizer's) engine's window. Checked whole
    /// ([`Engine::check_partial`]) before anything is added: an error leaves the engine as
    /// it was.
    pub fn merge_partial(&mut self, partial: &WindowPartial) -> Result<(), PartialError> {
        let model = self.check_partial(partial)?;
        let task = self.models[model].spec.task;
        let start = partial.window_start;
        let model_id = model as u16;
        for (version, rows) in &partial.estimation {
            let version = self.models[model].versions.id(version).unwrap_or(0) as u16;
            self.estimation
                .merge_rows(model_id, version, start, rows, &mut self.labels);
        }
        if partial.kind == PartialKind::LateLabels {
            // Only labels: the window itself is closed.
            return Ok(());
        }
        for series in &partial.series {
            let state = &mut self.models[model];
            // Unbounded interners (`for_finalizer`): an id is always given.
            let version = state.versions.id(&series.version).unwrap_or(0) as u16;
            let segment = series.segment.as_ref().map(|(dim, value)| {
                let values = &mut state.segment_values[*dim as usize];
                (*dim, values.id(value).unwrap_or(0))
            });
            let id = self.series.id(SeriesKey {
                model: model_id,
                version,
                segment,
            });
            let quality = match &series.quality {
                QualityPartial::Classification { cells, scores } => {
                    let mut confusion = ConfusionMatrix::default();
                    for (actual, predicted, n) in cells {
                        let actual = self.labels.id(actual).unwrap_or(0);
                        let predicted = self.labels.id(predicted).unwrap_or(0);
                        state.classes.insert(actual);
                        state.classes.insert(predicted);
                        confusion.add_count((actual, predicted), *n);
                    }
                    Quality::Classification {
                        confusion,
                        scores: scores.clone(),
                    }
                }
                QualityPartial::Regression(aggregate) => Quality::Regression(aggregate.clone()),
            };
            self.windows
                .entry(start)
                .or_default()
                .series_mut(id, task)
                .merge(&SeriesWindow {
                    counts: series.counts.clone(),
                    quality,
                });
        }
        let window = self.windows.entry(start).or_default();
        if let Some(counts) = &partial.model_counts {
            window.model_mut(model_id).merge(counts);
        }
        if let Some(drift) = &partial.drift {
            let versions = &mut self.models[model].versions;
            self.drift.merge_partial(start, model_id, drift, |name| {
                versions.id(name).unwrap_or(0) as u16
            });
        }
        Ok(())
    }
}
