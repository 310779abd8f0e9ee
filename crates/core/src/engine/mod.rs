//! The core engine: decoded records in, metrics records out.
//!
//! Synchronous, deterministic, no I/O, no clock: the caller passes records with their event
//! times and advances the watermark; the engine joins (`JoinStore`), attributes every
//! count to a window (docs/semantics.md, "Attribution"), and emits a window's records when
//! the watermark closes it. The Kafka service and `replay` drive the same engine.

mod estimation;
mod partial;

use std::collections::BTreeMap;

pub use estimation::{decode_reference, EstimationRows, EstimationSpec, NamedRow, ReferenceRow};
pub use partial::{PartialError, PartialKind, QualityPartial, SeriesPartial, WindowPartial};

use crate::drift::fnv1a64;
use crate::drift::stream::{Baseline, DriftEngine, ModelDriftSpec, SeriesOutput};
use crate::interner::Interner;
use crate::join::{
    JoinSink, JoinStore, Joined, OutcomeArrival, OutcomeEntry, PredictionArrival, PredictionEntry,
    ALL_MODELS,
};
use crate::metrics::{classification_metrics, BinaryPair, LabelContext};
use crate::output::{Counts, MetricsRecord, WindowBounds, METRICS_SCHEMA};
use crate::record::{ModelId, Outcome, Prediction, Record, Score, Target};
use crate::settings::{AttributeTo, Config, Task};
/// The join store's sink over the engine's fields (a macro, so that the borrow of the
/// join store stays separate from the borrows of the rest).
macro_rules! attribution {
    ($engine:ident) => {
        Attribution {
            config: &$engine.config,
            windows_spec: $engine.windows_spec,
            windows: &mut $engine.windows,
            models: &mut $engine.models,
            labels: &mut $engine.labels,
            stats: &mut $engine.stats,
            drift: &mut $engine.drift,
            series: &mut $engine.series,
            estimation: &mut $engine.estimation,
        }
    };
}

use crate::window::{
    ModelCounts, Quality, SeriesId, SeriesIndex, SeriesKey, TumblingWindows, Window,
};

/// Segment value that collects the values beyond `limits.max_segment_values`.
pub(crate) const OTHER_SEGMENT: &str = "__other__";

/// The engine's settings, in milliseconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EngineConfig {
    pub max_label_delay: i64,
    pub max_outcome_lead: i64,
    pub max_pending: usize,
    pub window_size: i64,
    pub attribute_to: AttributeTo,
    pub max_versions_per_model: usize,
    pub max_classes_per_model: usize,
    pub max_segment_values: usize,
    pub models: Vec<ModelSpec>,
    /// Drift settings, one per model (same order as `models`).
    pub drift: Vec<ModelDriftSpec>,
    /// Estimation settings per model (same order as `models`; missing or `None`: none).
    pub estimation: Vec<Option<EstimationSpec>>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub task: Task,
    pub positive_class: Option<String>,
    pub segments: Vec<String>,
}

impl EngineConfig {
    pub fn from_config(config: &Config) -> EngineConfig {
        EngineConfig {
            max_label_delay: config.join.max_label_delay.as_millis_i64(),
            max_outcome_lead: config.join.max_outcome_lead.as_millis_i64(),
            max_pending: config.join.max_pending,
            window_size: config.window.size.as_millis_i64(),
            attribute_to: config.window.attribute_to,
            max_versions_per_model: config.limits.max_versions_per_model,
            max_classes_per_model: config.limits.max_classes_per_model,
            max_segment_values: config.limits.max_segment_values,
            models: config
                .models
                .iter()
                .map(|m| ModelSpec {
                    name: m.name.clone(),
                    task: m.task,
                    positive_class: m.positive_class.clone(),
                    segments: m.segments.clone(),
                })
                .collect(),
            drift: config
                .models
                .iter()
                .map(ModelDriftSpec::from_config)
                .collect(),
            estimation: config
                .models
                .iter()
                .map(EstimationSpec::from_config)
                .collect(),
        }
    }
}

/// Which count of a prediction's series to add to.
#[derive(Debug, Clone, Copy)]
enum SeriesCount {
    Predictions,
    Duplicates,
    Late,
}

/// Why the engine refused a decoded record (it counts as invalid for its model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Rejection {
    #[error("model `{model}` has more than {limit} versions (limits.max_versions_per_model)")]
    TooManyVersions { model: String, limit: usize },
    #[error(
        "model `{model}` has more than {limit} distinct labels (limits.max_classes_per_model)"
    )]
    TooManyClasses { model: String, limit: usize },
}

/// What became of an accepted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Disposition {
    Joined,
    Pending,
    Duplicate,
    Late,
}

/// Totals since start, for the Prometheus side and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    pub predictions: u64,
    pub outcomes: u64,
    pub joined: u64,
    pub expired_predictions: u64,
    pub evicted_predictions: u64,
    pub evicted_outcomes: u64,
    pub orphan_outcomes: u64,
    pub duplicates: u64,
    pub late: u64,
    pub invalid: u64,
    pub windows_closed: u64,
    pub records_emitted: u64,
    pub segment_overflows: u64,
}

impl std::ops::AddAssign<&EngineStats> for EngineStats {
    /// Totals of several engines (the tasks of one instance).
    fn add_assign(&mut self, other: &EngineStats) {
        self.predictions += other.predictions;
        self.outcomes += other.outcomes;
        self.joined += other.joined;
        self.expired_predictions += other.expired_predictions;
        self.evicted_predictions += other.evicted_predictions;
        self.evicted_outcomes += other.evicted_outcomes;
        self.orphan_outcomes += other.orphan_outcomes;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.invalid += other.invalid;
        self.windows_closed += other.windows_closed;
        self.records_emitted += other.records_emitted;
        self.segment_overflows += other.segment_overflows;
    }
}

/// Per-model state: interned versions and segment values, the labels it has used.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ModelState {
    spec: ModelSpec,
    /// Version names; `""` is the absent version.
    versions: Interner,
    classes: ClassSet,
    segment_values: Vec<Interner>,
    /// Versions (by id) that have had a series in a closed window: the versions a window
    /// with only model-level counts reports (by event time, so that the partitioned engine's
    /// finalizer, which learns versions as windows close, reports the same).
    #[serde(default)]
    closed_versions: Vec<bool>,
}

/// What a pending prediction carries besides its join fields.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PredictionPayload {
    /// Class label id, or the bits of the predicted value (regression).
    predicted: u64,
    /// Binary: probability of the positive class; NaN when absent.
    score: f64,
    /// Series ids of the prediction's values of the first two segment dimensions
    /// ([`NO_SEGMENT`] when absent), inline because most models have at most two.
    segments: [u32; 2],
    extra: Option<Box<PredictionExtra>>,
}

const NO_SEGMENT: u32 = u32::MAX;
/// Version of the record of a model none of whose versions has been seen yet (`null`).
const UNSEEN_VERSION: u16 = u16::MAX;
const INLINE_SEGMENTS: usize = 2;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct PredictionExtra {
    /// Multiclass: probability per label id.
    class_scores: Vec<(u32, f64)>,
    /// (dimension, series id) of the dimensions beyond the first two.
    segments: Vec<(u16, u32)>,
}

/// What a stored outcome carries.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OutcomePayload {
    label: OutcomeLabel,
    /// NaN when the actual is not a number.
    value: f64,
    /// FNV-1a of the join id (the pair's tie-breaker in the detectors' order, and its key
    /// in the estimation's ROC AUC samples; 0 when neither uses it). Kept on the outcome
    /// rather than on the (more numerous, longer-lived) pending predictions.
    id_hash: u64,
}

/// A stored outcome's label: its id when the label table already knows it (the common
/// case: no allocation per outcome), else its name.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum OutcomeLabel {
    Known(u32),
    Other(Box<str>),
}

impl OutcomeLabel {
    fn new(labels: &mut Interner, label: &str) -> OutcomeLabel {
        match labels.get(label) {
            Some(id) => OutcomeLabel::Known(id),
            None => OutcomeLabel::Other(label.into()),
        }
    }

    fn name<'l>(&'l self, labels: &'l Interner) -> &'l str {
        match self {
            OutcomeLabel::Known(id) => labels.name(*id),
            OutcomeLabel::Other(name) => name,
        }
    }
}

/// The engine. See the module documentation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Engine {
    config: EngineConfig,
    windows_spec: TumblingWindows,
    models: Vec<ModelState>,
    labels: Interner,
    join: JoinStore<PredictionPayload, OutcomePayload>,
    windows: BTreeMap<i64, Window>,
    /// Dense ids of the series the windows hold.
    series: SeriesIndex,
    watermark: i64,
    max_event_ts: Option<i64>,
    /// Model-level counts seen before any event time (placed in the first window).
    unplaced: Vec<(u16, ModelCounts)>,
    /// Reused by [`Engine::observe_prediction`]; not state.
    #[serde(skip)]
    segments_scratch: Vec<(u16, u32)>,
    stats: EngineStats,
    drift: DriftEngine,
    /// Performance estimation (`[models.estimation]`), by prediction-time window.
    estimation: estimation::EstimationState,
    /// Estimation checks emitted by the last watermark steps, until taken
    /// ([`Engine::take_estimation_checks`]); not state.
    #[serde(skip)]
    checks: Vec<crate::output::EstimationCheck>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let models = config
            .models
            .iter()
            .map(|spec| ModelState {
                spec: spec.clone(),
                versions: Interner::with_capacity_limit(config.max_versions_per_model),
                classes: ClassSet::default(),
                segment_values: spec
                    .segments
                    .iter()
                    .map(|_| Interner::with_capacity_limit(config.max_segment_values + 1))
                    .collect(),
                closed_versions: Vec::new(),
            })
            .collect::<Vec<_>>();
        let label_capacity = config
            .max_classes_per_model
            .saturating_mul(models.len().max(1));
        Engine {
            windows_spec: TumblingWindows::new(config.window_size),
            labels: Interner::with_capacity_limit(label_capacity),
            join: JoinStore::new(
                config.max_label_delay,
                config.max_outcome_lead,
                config.max_pending,
            ),
            windows: BTreeMap::new(),
            series: SeriesIndex::default(),
            watermark: i64::MIN,
            max_event_ts: None,
            unplaced: Vec::new(),
            segments_scratch: Vec::new(),
            stats: EngineStats::default(),
            drift: DriftEngine::new(config.drift.clone(), config.window_size),
            estimation: estimation::EstimationState::new(&config.estimation, &config.models),
            checks: Vec::new(),
            models,
            config,
        }
    }

    /// Sets the drift baseline of model `model` (its index in `[[models]]`), decoded by the
    /// shell from its `reference = { file = … }`.
    pub fn set_baseline(&mut self, model: u16, baseline: &Baseline) {
        self.drift.set_baseline(model, baseline);
    }

    /// Sets the estimation reference of model `model` (its `[models.estimation]`
    /// `reference = { file = … }`), decoded by the shell, in windows of `window.size`.
    pub fn set_estimation_reference(&mut self, model: u16, windows: Vec<Vec<ReferenceRow>>) {
        self.estimation.set_reference(model, windows);
    }

    /// Applies the settings of `config` that do not shape the state to a restored engine:
    /// the drift decision rules (`[models.drift]` method, threshold, `min_window_samples`,
    /// per-feature overrides). Everything else in `config` must equal what the engine was
    /// built with (the caller compares [`crate::checkpoint::shape_fingerprint`]s). Returns
    /// the indices of the models whose rules changed.
    pub fn reconfigure(&mut self, config: &EngineConfig) -> Vec<u16> {
        let mut changed = Vec::new();
        for (model, (old, new)) in self.config.drift.iter_mut().zip(&config.drift).enumerate() {
            if old.rule == new.rule && old.feature_rules == new.feature_rules {
                continue;
            }
            old.rule = new.rule;
            old.feature_rules.clone_from(&new.feature_rules);
            self.drift
                .set_rules(model as u16, new.rule, &new.feature_rules);
            changed.push(model as u16);
        }
        changed
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn pending_predictions(&self) -> usize {
        self.join.pending_predictions()
    }

    pub fn pending_outcomes(&self) -> usize {
        self.join.pending_outcomes()
    }

    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    fn note_event_time(&mut self, ts: i64) {
        let first = self.max_event_ts.is_none();
        self.max_event_ts = Some(self.max_event_ts.map_or(ts, |m| m.max(ts)));
        if first && !self.unplaced.is_empty() {
            let start = self.windows_spec.start_of(ts);
            let window = self.windows.entry(start).or_default();
            for (model, counts) in self.unplaced.drain(..) {
                window.model_mut(model).merge(&counts);
            }
        }
    }

    /// Adds model-level counts at the largest event time seen (or holds them until one is).
    fn add_model_counts_now(&mut self, model: u16, add: impl Fn(&mut ModelCounts)) {
        match self.max_event_ts {
            Some(ts) => {
                let start = self.windows_spec.start_of(ts);
                add(self.windows.entry(start).or_default().model_mut(model));
            }
            None => {
                let mut counts = ModelCounts::default();
                add(&mut counts);
                self.unplaced.push((model, counts));
            }
        }
    }

    /// Counts a record that failed decoding or validation. Only records that named a
    /// configured model reach a metrics record; all are in [`EngineStats::invalid`].
    pub fn observe_invalid(&mut self, model: Option<ModelId>) {
        self.stats.invalid += 1;
        if let Some(model) = model {
            self.add_model_counts_now(model, |c| c.invalid += 1);
        }
    }

    /// Adds a decoded record (an outcome is never rejected).
    pub fn observe(&mut self, record: &Record<'_>) -> Result<Disposition, Rejection> {
        match record {
            Record::Prediction(p) => self.observe_prediction(p),
            Record::Outcome(o) => Ok(self.observe_outcome(o)),
        }
    }

    /// Adds a decoded prediction.
    pub fn observe_prediction(&mut self, p: &Prediction<'_>) -> Result<Disposition, Rejection> {
        // A buffer reused across records: no allocation per prediction for its segments.
        let mut segments = std::mem::take(&mut self.segments_scratch);
        segments.clear();
        let result = self.observe_prediction_with(p, &mut segments);
        self.segments_scratch = segments;
        result
    }

    fn observe_prediction_with(
        &mut self,
        p: &Prediction<'_>,
        segments: &mut Vec<(u16, u32)>,
    ) -> Result<Disposition, Rejection> {
        let model_index = p.model as usize;
        let Some(state) = self.models.get_mut(model_index) else {
            // The decoder only produces configured model ids.
            self.stats.invalid += 1;
            return Ok(Disposition::Late);
        };
        let version = match state.versions.id(p.model_version.as_deref().unwrap_or("")) {
            Some(v) => v as u16,
            None => {
                let rejection = Rejection::TooManyVersions {
                    model: state.spec.name.clone(),
                    limit: self.config.max_versions_per_model,
                };
                self.observe_invalid(Some(p.model));
                return Err(rejection);
            }
        };
        for (dim, value) in &p.segment {
            let values = &mut state.segment_values[*dim];
            let id = match values.get(value) {
                Some(id) => id,
                None if values.len() < self.config.max_segment_values => {
                    values.id(value).unwrap_or(0)
                }
                None => {
                    self.stats.segment_overflows += 1;
                    values.id(OTHER_SEGMENT).unwrap_or(0)
                }
            };
            segments.push((*dim as u16, id));
        }
        let series = SeriesKey {
            model: p.model,
            version,
            segment: None,
        };
        // From here on, each segment's series id rather than its value id.
        for segment in segments.iter_mut() {
            segment.1 = self.series.id(SeriesKey {
                segment: Some(*segment),
                ..series
            });
        }

        if p.ts < self.watermark {
            self.stats.late += 1;
            let start = self
                .windows_spec
                .start_of(self.max_event_ts.unwrap_or(p.ts));
            let task = state.spec.task;
            self.add_series_counts(start, series, segments, task, SeriesCount::Late);
            return Ok(Disposition::Late);
        }

        let payload = self.prediction_payload(p, segments)?;
        let positive_score = (!payload.score.is_nan()).then_some(payload.score);
        self.note_event_time(p.ts);
        let entry = PredictionEntry {
            ts: p.ts,
            model: p.model,
            version,
            payload,
        };
        let task = self.models[model_index].spec.task;
        let estimated = self
            .estimation
            .enabled(p.model)
            .then(|| entry.payload.clone());
        let arrival = self
            .join
            .insert_prediction(&p.id, entry, &mut attribution!(self));
        let start = self.windows_spec.start_of(p.ts);
        Ok(match arrival {
            PredictionArrival::Duplicate => {
                self.stats.duplicates += 1;
                self.add_series_counts(start, series, segments, task, SeriesCount::Duplicates);
                Disposition::Duplicate
            }
            PredictionArrival::Joined | PredictionArrival::Pending => {
                self.stats.predictions += 1;
                self.add_series_counts(start, series, segments, task, SeriesCount::Predictions);
                if let Some(payload) = &estimated {
                    self.estimation.observe_prediction(
                        p.model,
                        version,
                        start,
                        payload,
                        fnv1a64(p.id.as_bytes()),
                        &self.labels,
                    );
                }
                let score = if task == Task::Binary {
                    positive_score
                } else {
                    None
                };
                self.drift.observe_prediction(
                    p.model,
                    version,
                    start,
                    &p.features,
                    &p.predicted,
                    score,
                    if self.drift.uses_ids(p.model) {
                        fnv1a64(p.id.as_bytes())
                    } else {
                        0
                    },
                );
                if arrival == PredictionArrival::Joined {
                    Disposition::Joined
                } else {
                    Disposition::Pending
                }
            }
        })
    }

    fn prediction_payload(
        &mut self,
        p: &Prediction<'_>,
        segments: &[(u16, u32)],
    ) -> Result<PredictionPayload, Rejection> {
        let model = p.model as usize;
        let task = self.models[model].spec.task;
        let predicted = match &p.predicted {
            Target::Class(label) => self.class_id(model, label)? as u64,
            Target::Value(v) => v.to_bits(),
        };
        let mut score = f64::NAN;
        let mut class_scores = Vec::new();
        match (&p.score, task) {
            (Some(Score::Positive(s)), _) => score = *s,
            (Some(Score::PerClass(per_class)), Task::Binary) => {
                let positive = self.models[model]
                    .spec
                    .positive_class
                    .as_deref()
                    .unwrap_or("");
                score = per_class
                    .iter()
                    .find(|(class, _)| class == positive)
                    .map_or(0.0, |(_, s)| *s);
            }
            (Some(Score::PerClass(per_class)), _) => {
                for (class, s) in per_class {
                    let id = self.class_id(model, class)?;
                    class_scores.push((id, *s));
                }
            }
            (None, _) => {}
        }
        let mut inline = [NO_SEGMENT; INLINE_SEGMENTS];
        let mut overflow = Vec::new();
        for &(dim, value) in segments {
            match inline.get_mut(dim as usize) {
                Some(slot) => *slot = value,
                None => overflow.push((dim, value)),
            }
        }
        let extra = (!class_scores.is_empty() || !overflow.is_empty()).then(|| {
            Box::new(PredictionExtra {
                class_scores,
                segments: overflow,
            })
        });
        Ok(PredictionPayload {
            predicted,
            score,
            segments: inline,
            extra,
        })
    }

    fn class_id(&mut self, model: usize, label: &str) -> Result<u32, Rejection> {
        class_id_of(
            &mut self.labels,
            &mut self.models[model],
            self.config.max_classes_per_model,
            label,
        )
        .ok_or_else(|| {
            let rejection = Rejection::TooManyClasses {
                model: self.models[model].spec.name.clone(),
                limit: self.config.max_classes_per_model,
            };
            self.observe_invalid(Some(model as u16));
            rejection
        })
    }

    /// Adds a decoded outcome.
    pub fn observe_outcome(&mut self, o: &Outcome<'_>) -> Disposition {
        let scope = o.model.unwrap_or(ALL_MODELS);
        if o.ts < self.watermark {
            self.stats.late += 1;
            for model in self.models_in_scope(scope) {
                self.add_model_counts_now(model, |c| c.late += 1);
            }
            return Disposition::Late;
        }
        self.note_event_time(o.ts);
        let id_hash = if self
            .models_in_scope(scope)
            .any(|m| self.drift.uses_ids(m) || self.estimation.enabled(m))
        {
            fnv1a64(o.id.as_bytes())
        } else {
            0
        };
        let entry = OutcomeEntry {
            ts: o.ts,
            scope,
            joined: Joined::default(),
            payload: OutcomePayload {
                label: OutcomeLabel::new(&mut self.labels, &o.actual.label),
                value: o.actual.value.unwrap_or(f64::NAN),
                id_hash,
            },
        };
        let arrival = self
            .join
            .insert_outcome(&o.id, entry, &mut attribution!(self));
        let start = self.windows_spec.start_of(o.ts);
        let (disposition, add): (Disposition, fn(&mut ModelCounts)) = match arrival {
            OutcomeArrival::Duplicate => {
                self.stats.duplicates += 1;
                (Disposition::Duplicate, |c| c.duplicates += 1)
            }
            OutcomeArrival::Accepted { joined } => {
                self.stats.outcomes += 1;
                let d = if joined > 0 {
                    Disposition::Joined
                } else {
                    Disposition::Pending
                };
                (d, |c| c.outcomes += 1)
            }
        };
        for model in self.models_in_scope(scope) {
            add(self.windows.entry(start).or_default().model_mut(model));
            if matches!(arrival, OutcomeArrival::Accepted { .. }) {
                self.drift
                    .observe_outcome(model, start, &o.actual.label, o.actual.value, id_hash);
            }
        }
        disposition
    }

    fn models_in_scope(&self, scope: u16) -> std::ops::Range<u16> {
        models_in_scope(scope, self.models.len())
    }

    /// Adds one to a count of a prediction's series: the unsegmented `series` and the
    /// segment series `segments` ((dimension, series id)). One copy for every count (not a
    /// closure per count): it is inlined into the hot path of every prediction.
    fn add_series_counts(
        &mut self,
        start: i64,
        series: SeriesKey,
        segments: &[(u16, SeriesId)],
        task: Task,
        count: SeriesCount,
    ) {
        let window = self.windows.entry(start).or_default();
        let base = self.series.id(series);
        for id in std::iter::once(base).chain(segments.iter().map(|&(_, id)| id)) {
            let counts = &mut window.series_mut(id, task).counts;
            match count {
                SeriesCount::Predictions => counts.predictions += 1,
                SeriesCount::Duplicates => counts.duplicates += 1,
                SeriesCount::Late => counts.late += 1,
            }
        }
    }

    /// Moves the watermark to `watermark` (never backwards): expires what it passed, then
    /// closes and returns the windows it passed.
    pub fn advance_watermark(&mut self, watermark: i64) -> Vec<MetricsRecord> {
        if !self.expire_until(watermark) {
            return Vec::new();
        }
        let wait = self.close_wait();
        self.estimation.advance(
            watermark,
            &self.windows_spec,
            self.config.max_label_delay,
            wait,
            &self.labels,
        );
        let mut records = Vec::new();
        while let Some((start, window)) = self.next_closed_window(watermark) {
            let keys = self.record_keys(&window);
            let series: Vec<(u16, u16)> = keys
                .iter()
                .filter(|(k, _)| k.segment.is_none() && k.version != UNSEEN_VERSION)
                .map(|(k, _)| (k.model, k.version))
                .collect();
            let mut drift = self.drift.close(start, &series);
            let mut estimated = self.estimation.close(start, &self.labels);
            for &(model, version) in &series {
                let closed = &mut self.models[model as usize].closed_versions;
                *crate::window::grow(closed, version as usize, || false) = true;
            }
            self.emit(
                start,
                &window,
                keys,
                &mut drift,
                &mut estimated,
                &mut records,
            );
        }
        for (model, version, start, estimates) in
            self.estimation
                .checks(watermark, &self.windows_spec, self.config.max_label_delay)
        {
            let state = &self.models[model as usize];
            let version = version_name(state, version);
            self.checks.push(crate::output::EstimationCheck::new(
                &state.spec.name,
                (!version.is_empty()).then_some(version),
                WindowBounds {
                    start,
                    end: self.windows_spec.end_of(start),
                },
                &estimates,
            ));
        }
        self.stats.records_emitted += records.len() as u64;
        records
    }

    /// Moves the watermark to `watermark` and expires the join entries it passed; `false`
    /// (and nothing done) when it is not ahead of the current one.
    fn expire_until(&mut self, watermark: i64) -> bool {
        if watermark <= self.watermark {
            return false;
        }
        self.watermark = watermark;
        if self.join.next_deadline().is_some_and(|d| d < watermark) {
            self.join.advance(watermark, &mut attribution!(self));
        }
        true
    }

    /// When a window's records and its estimation check are due, after its end.
    pub fn due_after_end(&self) -> crate::monitor::DueAfterEnd {
        crate::monitor::DueAfterEnd {
            metrics: self.close_wait(),
            checks: self.config.max_label_delay,
        }
    }

    /// Removes the earliest open window if `watermark` has passed its close (counted in
    /// `windows_closed`); `None` otherwise. Closing (a single engine) and handing over (a
    /// task) take windows through this.
    fn next_closed_window(&mut self, watermark: i64) -> Option<(i64, Window)> {
        let (&start, _) = self.windows.first_key_value()?;
        if self.close_of(start) > watermark {
            return None;
        }
        let window = self.windows.remove(&start)?;
        self.stats.windows_closed += 1;
        Some((start, window))
    }

    /// How long after its end a window closes: with `attribute_to = "prediction"`, once
    /// every prediction in it is joined or expired.
    fn close_wait(&self) -> i64 {
        match self.config.attribute_to {
            AttributeTo::Outcome => 0,
            AttributeTo::Prediction => self.config.max_label_delay,
        }
    }

    /// The estimation-check records (`feedback-loop.estimation-check.v1`,
    /// docs/estimation.md) of the watermark steps since the last call: one per (model,
    /// version, window) that had an estimate, once every prediction of the window is
    /// joined or expired (watermark ≥ end + `join.max_label_delay`), in window order.
    pub fn take_estimation_checks(&mut self) -> Vec<crate::output::EstimationCheck> {
        std::mem::take(&mut self.checks)
    }

    /// The performance-estimation fits that failed since the last call (a version gets no
    /// estimates then; docs/estimation.md), each reported once.
    pub fn take_estimation_failures(&mut self) -> Vec<crate::output::EstimationFitFailure> {
        self.estimation
            .take_failures()
            .into_iter()
            .map(|(model, version, error)| {
                let state = &self.models[model as usize];
                let version = version_name(state, version);
                crate::output::EstimationFitFailure {
                    model: state.spec.name.clone(),
                    model_version: (!version.is_empty()).then(|| version.to_string()),
                    error,
                }
            })
            .collect()
    }

    /// End of input: everything pending expires, every window closes.
    pub fn finish(&mut self) -> Vec<MetricsRecord> {
        self.advance_watermark(i64::MAX)
    }

    /// The series that get a record when `window` closes, with their ids in it (none for
    /// a model that has only model-level counts in this window).
    fn record_keys(&self, window: &Window) -> Vec<(SeriesKey, Option<SeriesId>)> {
        let mut keys: Vec<(SeriesKey, Option<SeriesId>)> = window
            .series_ids()
            .map(|id| (self.series.key(id), Some(id)))
            .collect();
        // Models with model-level counts but no series in this window.
        for model in window.model_ids() {
            if keys.iter().any(|(k, _)| k.model == model) {
                continue;
            }
            let state = &self.models[model as usize];
            let mut versions: Vec<u16> = state
                .closed_versions
                .iter()
                .enumerate()
                .filter(|(_, closed)| **closed)
                .map(|(version, _)| version as u16)
                .collect();
            if versions.is_empty() {
                versions.push(UNSEEN_VERSION);
            }
            for version in versions {
                let key = SeriesKey {
                    model,
                    version,
                    segment: None,
                };
                keys.push((key, None));
            }
        }
        keys
    }

    fn emit(
        &self,
        start: i64,
        window: &Window,
        keys: Vec<(SeriesKey, Option<SeriesId>)>,
        drift: &mut hashbrown::HashMap<(u16, u16), SeriesOutput>,
        estimated: &mut hashbrown::HashMap<(u16, u16), crate::output::EstimatedOut>,
        out: &mut Vec<MetricsRecord>,
    ) {
        let bounds = WindowBounds {
            start,
            end: self.windows_spec.end_of(start),
        };
        let mut records: Vec<(SortKey, MetricsRecord)> = keys
            .into_iter()
            .map(|(key, id)| {
                let mut record = self.record(&bounds, window, key, id);
                if key.segment.is_none() {
                    if let Some(extra) = drift.remove(&(key.model, key.version)) {
                        record.drift = extra.drift;
                        record.detectors = extra.detectors;
                    }
                    record.estimated = estimated.remove(&(key.model, key.version));
                }
                (self.sort_key(&key), record)
            })
            .collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(records.into_iter().map(|(_, r)| r));
    }

    fn sort_key(&self, key: &SeriesKey) -> SortKey {
        let state = &self.models[key.model as usize];
        let version = version_name(state, key.version);
        let segment = key.segment.map(|(dim, value)| {
            (
                state.spec.segments[dim as usize].clone(),
                state.segment_values[dim as usize].name(value).to_string(),
            )
        });
        (
            state.spec.name.clone(),
            (!version.is_empty()).then(|| version.to_string()),
            segment,
        )
    }

    fn record(
        &self,
        bounds: &WindowBounds,
        window: &Window,
        key: SeriesKey,
        id: Option<SeriesId>,
    ) -> MetricsRecord {
        let state = &self.models[key.model as usize];
        let version = version_name(state, key.version);
        let model_version = (!version.is_empty()).then(|| version.to_string());
        let series = id.and_then(|id| window.series(id));
        let model_counts = match key.segment {
            None => window.model(key.model).cloned().unwrap_or_default(),
            Some(_) => ModelCounts::default(),
        };
        let sc = series.map(|s| s.counts.clone()).unwrap_or_default();
        let resolved = sc.joined + sc.expired_predictions;
        let counts = Counts {
            predictions: sc.predictions,
            outcomes: model_counts.outcomes,
            joined: sc.joined,
            expired_predictions: sc.expired_predictions,
            orphan_outcomes: model_counts.orphan_outcomes,
            duplicates: sc.duplicates + model_counts.duplicates,
            late: sc.late + model_counts.late,
            invalid: model_counts.invalid,
            label_coverage: (resolved > 0).then(|| sc.joined as f64 / resolved as f64),
        };
        let segment = key.segment.map(|(dim, value)| {
            BTreeMap::from([(
                state.spec.segments[dim as usize].clone(),
                state.segment_values[dim as usize].name(value).to_string(),
            )])
        });
        let mut record_id = format!(
            "{}/{}/{}",
            state.spec.name,
            if version.is_empty() { "-" } else { version },
            bounds.start_text()
        );
        if let Some(segment) = &segment {
            for (dim, value) in segment {
                record_id.push_str(&format!("/{dim}={value}"));
            }
        }
        let empty = Quality::empty(state.spec.task);
        let quality = series.map(|s| &s.quality).unwrap_or(&empty);
        let (classification, regression) = match quality {
            Quality::Classification { confusion, scores } => {
                let name = |id: u32| self.labels.name(id).to_string();
                let context = LabelContext {
                    name: &name,
                    positive_class: state.spec.positive_class.as_deref(),
                };
                (
                    Some(classification_metrics(confusion, scores, &context)),
                    None,
                )
            }
            Quality::Regression(aggregate) => (None, Some(aggregate.metrics())),
        };
        MetricsRecord {
            schema: METRICS_SCHEMA.to_string(),
            record_id,
            model: state.spec.name.clone(),
            model_version,
            segment,
            window: *bounds,
            counts,
            classification,
            regression,
            drift: None,
            detectors: None,
            estimated: None,
        }
    }
}

fn version_name(state: &ModelState, version: u16) -> &str {
    if version == UNSEEN_VERSION {
        ""
    } else {
        state.versions.name(version as u32)
    }
}

type SortKey = (String, Option<String>, Option<(String, String)>);

/// The model ids an outcome of `scope` is for.
fn models_in_scope(scope: u16, models: usize) -> std::ops::Range<u16> {
    if scope == ALL_MODELS {
        0..models as u16
    } else {
        scope..scope + 1
    }
}

/// The label id of `label` for a model, interning it and adding it to the model's labels
/// if there is room; `None` past `limit` labels for the model.
fn class_id_of(
    labels: &mut Interner,
    state: &mut ModelState,
    limit: usize,
    label: &str,
) -> Option<u32> {
    if let Some(id) = labels.get(label) {
        if state.classes.contains(id) {
            return Some(id);
        }
    }
    if state.classes.len() >= limit {
        return None;
    }
    let id = labels.id(label)?;
    state.classes.insert(id);
    Some(id)
}

/// [`class_id_of`] for a stored outcome's label.
fn outcome_class_id(
    labels: &mut Interner,
    state: &mut ModelState,
    limit: usize,
    label: &OutcomeLabel,
) -> Option<u32> {
    match label {
        OutcomeLabel::Known(id) if state.classes.contains(*id) => Some(*id),
        OutcomeLabel::Known(_) if state.classes.len() >= limit => None,
        OutcomeLabel::Known(id) => {
            state.classes.insert(*id);
            Some(*id)
        }
        OutcomeLabel::Other(name) => class_id_of(labels, state, limit, name),
    }
}

/// A model's label ids, as bits.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct ClassSet {
    bits: Vec<u64>,
    len: usize,
}

impl ClassSet {
    fn contains(&self, id: u32) -> bool {
        self.bits
            .get(id as usize / 64)
            .is_some_and(|word| word & (1 << (id % 64)) != 0)
    }

    fn insert(&mut self, id: u32) {
        if !self.contains(id) {
            let word = id as usize / 64;
            if self.bits.len() <= word {
                self.bits.resize(word + 1, 0);
            }
            self.bits[word] |= 1 << (id % 64);
            self.len += 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The join store's sink: attributes joins, expiries and orphans to windows.
struct Attribution<'e> {
    config: &'e EngineConfig,
    windows_spec: TumblingWindows,
    windows: &'e mut BTreeMap<i64, Window>,
    models: &'e mut [ModelState],
    labels: &'e mut Interner,
    stats: &'e mut EngineStats,
    drift: &'e mut DriftEngine,
    series: &'e mut SeriesIndex,
    estimation: &'e mut estimation::EstimationState,
}

impl Attribution<'_> {
    fn window(&mut self, ts: i64) -> &mut Window {
        let start = self.windows_spec.start_of(ts);
        self.windows.entry(start).or_default()
    }

    /// The series of a prediction: unsegmented, then one per segment value.
    fn series_ids<'p>(
        &mut self,
        p: &'p PredictionEntry<PredictionPayload>,
    ) -> impl Iterator<Item = SeriesId> + 'p {
        let base = self.series.id(SeriesKey {
            model: p.model,
            version: p.version,
            segment: None,
        });
        let inline = p
            .payload
            .segments
            .iter()
            .copied()
            .filter(|&id| id != NO_SEGMENT);
        let overflow = p
            .payload
            .extra
            .iter()
            .flat_map(|e| e.segments.iter().map(|&(_, id)| id));
        std::iter::once(base).chain(inline).chain(overflow)
    }
}

impl JoinSink<PredictionPayload, OutcomePayload> for Attribution<'_> {
    fn joined(&mut self, p: &PredictionEntry<PredictionPayload>, o: &OutcomeEntry<OutcomePayload>) {
        let model = p.model as usize;
        let task = self.models[model].spec.task;
        let at = match self.config.attribute_to {
            AttributeTo::Outcome => p.ts.max(o.ts),
            AttributeTo::Prediction => p.ts,
        };
        // The pair's contribution, computed once and added to each of its series.
        enum Contribution {
            Class {
                actual: u32,
                predicted: u32,
                binary: Option<BinaryPair>,
                multiclass_p: Option<f64>,
            },
            Value {
                actual: f64,
                predicted: f64,
            },
        }
        let contribution = match task {
            Task::Regression => {
                if o.payload.value.is_nan() {
                    // Only an outcome naming no model can get here with a non-number.
                    self.stats.invalid += 1;
                    let start = self.windows_spec.start_of(at);
                    self.windows
                        .entry(start)
                        .or_default()
                        .model_mut(p.model)
                        .invalid += 1;
                    return;
                }
                Contribution::Value {
                    actual: o.payload.value,
                    predicted: f64::from_bits(p.payload.predicted),
                }
            }
            Task::Binary | Task::Multiclass => {
                let limit = self.config.max_classes_per_model;
                let Some(actual) = outcome_class_id(
                    self.labels,
                    &mut self.models[model],
                    limit,
                    &o.payload.label,
                ) else {
                    self.stats.invalid += 1;
                    let start = self.windows_spec.start_of(at);
                    self.windows
                        .entry(start)
                        .or_default()
                        .model_mut(p.model)
                        .invalid += 1;
                    return;
                };
                let predicted = p.payload.predicted as u32;
                let start = self.windows_spec.start_of(p.ts);
                let close_at = self.windows_spec.end_of(start).saturating_add(
                    match self.config.attribute_to {
                        AttributeTo::Outcome => 0,
                        AttributeTo::Prediction => self.config.max_label_delay,
                    },
                );
                self.estimation.observe_joined(
                    p.model,
                    p.version,
                    start,
                    &p.payload,
                    // The join id's hash: the same as the prediction's (the same id).
                    o.payload.id_hash,
                    actual,
                    p.ts.max(o.ts) < close_at,
                    self.labels,
                );
                let (binary, multiclass_p) = if task == Task::Binary {
                    let positive = self.models[model]
                        .spec
                        .positive_class
                        .as_deref()
                        .unwrap_or("");
                    let s = p.payload.score;
                    (
                        (!s.is_nan()).then(|| {
                            BinaryPair::new(s, o.payload.label.name(self.labels) == positive)
                        }),
                        None,
                    )
                } else {
                    let p_actual = p.payload.extra.as_ref().and_then(|e| {
                        (!e.class_scores.is_empty()).then(|| {
                            e.class_scores
                                .iter()
                                .find(|(c, _)| *c == actual)
                                .map_or(0.0, |(_, s)| *s)
                        })
                    });
                    (None, p_actual)
                };
                Contribution::Class {
                    actual,
                    predicted,
                    binary,
                    multiclass_p,
                }
            }
        };
        self.stats.joined += 1;
        let error = match &contribution {
            Contribution::Class {
                actual, predicted, ..
            } => f64::from(u8::from(actual != predicted)),
            Contribution::Value { actual, predicted } => (actual - predicted).abs(),
        };
        let start = self.windows_spec.start_of(at);
        self.drift.observe_pair(
            p.model,
            p.version,
            at,
            p.ts,
            o.payload.id_hash,
            start,
            error,
        );
        let ids = self.series_ids(p);
        let window = self.windows.entry(start).or_default();
        for id in ids {
            let series = window.series_mut(id, task);
            series.counts.joined += 1;
            match (&mut series.quality, &contribution) {
                (
                    Quality::Classification { confusion, scores },
                    Contribution::Class {
                        actual,
                        predicted,
                        binary,
                        multiclass_p,
                    },
                ) => {
                    confusion.add(*actual, *predicted);
                    match (binary, multiclass_p) {
                        (Some(pair), _) => scores.add_binary_pair(pair),
                        (None, Some(p)) => scores.add_multiclass(*p),
                        (None, None) => scores.add_unscored(),
                    }
                }
                (Quality::Regression(agg), Contribution::Value { actual, predicted }) => {
                    agg.add(*actual, *predicted)
                }
                _ => {}
            }
        }
    }

    fn expired(&mut self, p: PredictionEntry<PredictionPayload>, evicted: bool) {
        self.stats.expired_predictions += 1;
        if evicted {
            self.stats.evicted_predictions += 1;
        }
        let at = match self.config.attribute_to {
            AttributeTo::Outcome => p.ts.saturating_add(self.config.max_label_delay),
            AttributeTo::Prediction => p.ts,
        };
        let task = self.models[p.model as usize].spec.task;
        let ids = self.series_ids(&p);
        let window = self
            .windows
            .entry(self.windows_spec.start_of(at))
            .or_default();
        for id in ids {
            window.series_mut(id, task).counts.expired_predictions += 1;
        }
    }

    fn released(&mut self, o: OutcomeEntry<OutcomePayload>, evicted: bool) {
        if evicted {
            self.stats.evicted_outcomes += 1;
        }
        let at = o.ts.saturating_add(self.config.max_outcome_lead);
        for model in models_in_scope(o.scope, self.models.len()) {
            if !o.joined.iter().any(|(m, _)| m == model) {
                self.stats.orphan_outcomes += 1;
                self.window(at).model_mut(model).orphan_outcomes += 1;
            }
        }
    }
}
