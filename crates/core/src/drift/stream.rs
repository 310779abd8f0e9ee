//! Drift in the engine: per (model, version) references, per-window summaries, the
//! comparisons made when a window closes, and the streaming detectors on the error stream.
//! The exact rules are in docs/semantics.md ("Drift"); docs/drift.md has the statistics.
//!
//! Memory: a window holds, per series and feature, one [`NumericSummary`] (at most
//! `sample_capacity` values) and one [`CategoricalSummary`] (at most 1000 names); a
//! reference holds the same (a `"first"` reference: its whole first windows, within the
//! same `sample_capacity` bound). The detectors' input is buffered per open window: 32 bytes
//! per joined pair attributed to it (`PendingPair`), released when the window closes.
//!
//! Order independence: everything here is a function of the input's event times and
//! contents, not of arrival order — bottom-k samples keyed by the join id's hash,
//! references from whole closed windows, detectors fed at window close in a sorted order.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use hashbrown::HashMap;

use super::summary::sample_key;
use super::{
    compare_categorical, compare_numeric, Adwin, AdwinConfig, CategoricalReference,
    CategoricalSummary, Ddm, DdmConfig, DriftRule, NumericReference, NumericSummary, PageHinkley,
    PageHinkleyConfig,
};
use crate::output::{rfc3339, DetectorOut, DetectorsOut, DriftOut, DriftValue};
use crate::record::{Decoder, Envelope, FeatureValue, Target};
use crate::settings::{ModelConfig, ReferenceConfig, Task};

/// Which reference a model's windows are compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReferenceKind {
    First,
    Previous,
    File,
}

impl ReferenceKind {
    fn name(self) -> &'static str {
        match self {
            ReferenceKind::First => "first",
            ReferenceKind::Previous => "previous",
            ReferenceKind::File => "file",
        }
    }
}

/// A decoded value of a feature, prediction or score.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RefValue {
    Number(f64),
    Category(Box<str>),
}

/// One baseline prediction, decoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BaselineRecord {
    /// (index in the model's `features`, value).
    pub features: Vec<(usize, RefValue)>,
    pub predicted: RefValue,
    /// Binary models: the positive-class probability.
    pub score: Option<f64>,
}

/// The decoded content of a baseline file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    pub records: Vec<BaselineRecord>,
}

impl Baseline {
    /// Decodes JSON lines in the prediction input format; every non-blank line must decode
    /// and name `model`.
    pub fn decode(decoder: &Decoder, model: u16, bytes: &[u8]) -> Result<Baseline, String> {
        let positive = decoder.model_positive_class(model).map(str::to_string);
        let mut records = Vec::new();
        for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let p = decoder
                .prediction(line, Envelope::default())
                .map_err(|e| format!("line {}: {e}", index + 1))?;
            if p.model != model {
                return Err(format!("line {}: names another model", index + 1));
            }
            let score = match (&p.score, &positive) {
                (Some(crate::record::Score::Positive(s)), _) => Some(*s),
                (Some(crate::record::Score::PerClass(per_class)), Some(pos)) => Some(
                    per_class
                        .iter()
                        .find(|(c, _)| c == pos)
                        .map_or(0.0, |(_, s)| *s),
                ),
                _ => None,
            };
            records.push(BaselineRecord {
                features: p
                    .features
                    .iter()
                    .map(|(i, value)| (*i, ref_value(value)))
                    .collect(),
                predicted: match &p.predicted {
                    Target::Class(label) => RefValue::Category(label.as_ref().into()),
                    Target::Value(v) => RefValue::Number(*v),
                },
                score,
            });
        }
        Ok(Baseline { records })
    }
}

fn ref_value(value: &FeatureValue<'_>) -> RefValue {
    match value {
        FeatureValue::Number(x) => RefValue::Number(*x),
        FeatureValue::Category(c) => RefValue::Category(c.as_ref().into()),
    }
}

/// The detectors of a model, `None` = disabled.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DetectorSpec {
    pub adwin: Option<AdwinConfig>,
    pub ddm: Option<DdmConfig>,
    pub page_hinkley: Option<PageHinkleyConfig>,
}

impl DetectorSpec {
    fn any(&self) -> bool {
        self.adwin.is_some() || self.ddm.is_some() || self.page_hinkley.is_some()
    }
}

/// A model's drift settings, as the engine uses them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelDriftSpec {
    pub enabled: bool,
    pub task: Task,
    pub reference: ReferenceKind,
    pub reference_size: usize,
    pub sample_capacity: usize,
    pub features: Vec<String>,
    /// The rule of each feature (same order as `features`).
    pub feature_rules: Vec<DriftRule>,
    /// The rule of prediction, score and label drift.
    pub rule: DriftRule,
    pub detectors: DetectorSpec,
}

impl ModelDriftSpec {
    pub fn from_config(m: &ModelConfig) -> ModelDriftSpec {
        let rule = DriftRule {
            method: m.drift.method,
            threshold: m.drift.threshold,
            min_window_samples: m.drift.min_window_samples,
        };
        let d = &m.detectors;
        ModelDriftSpec {
            enabled: m.drift.enabled,
            task: m.task,
            reference: match m.reference {
                ReferenceConfig::First => ReferenceKind::First,
                ReferenceConfig::Previous => ReferenceKind::Previous,
                ReferenceConfig::File(_) => ReferenceKind::File,
            },
            reference_size: m.reference_size,
            sample_capacity: m.drift.sample_capacity,
            features: m.features.clone(),
            feature_rules: m
                .features
                .iter()
                .map(|f| match m.drift.features.get(f) {
                    Some(o) => DriftRule {
                        method: o.method.unwrap_or(rule.method),
                        threshold: o.threshold.or(rule.threshold),
                        ..rule
                    },
                    None => rule,
                })
                .collect(),
            rule,
            detectors: DetectorSpec {
                adwin: d.adwin.enabled.then(|| d.adwin.params()),
                // DDM models a 0/1 error rate: not run on regression errors.
                ddm: (d.ddm.enabled && m.task != Task::Regression).then(|| d.ddm.params()),
                page_hinkley: d.page_hinkley.enabled.then(|| d.page_hinkley.params()),
            },
        }
    }
}

/// Sampling slots of the variables of a record (the `slot` of [`sample_key`]).
const SLOT_LABEL: u64 = 0;
const SLOT_PREDICTION: u64 = 1;
const SLOT_SCORE: u64 = 2;
const SLOT_FIRST_FEATURE: u64 = 3;

/// Values of one kind-agnostic variable: numbers in a bottom-k sample, strings in counts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ValueSummary {
    numeric: NumericSummary,
    categorical: CategoricalSummary,
    /// The variable's sampling slot.
    slot: u64,
    /// Values pushed (numbers, including non-finite ones, and strings).
    values: u64,
}

impl ValueSummary {
    fn new(capacity: usize, slot: u64) -> ValueSummary {
        ValueSummary {
            numeric: NumericSummary::with_capacity(capacity.max(1)).unwrap_or_default(),
            categorical: CategoricalSummary::default(),
            slot,
            values: 0,
        }
    }

    #[inline]
    fn push_number(&mut self, x: f64, id_hash: u64) {
        self.values += 1;
        self.numeric.push(x, sample_key(id_hash, self.slot));
    }

    #[inline]
    fn push_category(&mut self, c: &str) {
        self.values += 1;
        self.categorical.push(c);
    }

    fn push(&mut self, value: &FeatureValue<'_>, id_hash: u64) {
        match value {
            FeatureValue::Number(x) => self.push_number(*x, id_hash),
            FeatureValue::Category(c) => self.push_category(c),
        }
    }

    fn push_ref(&mut self, value: &RefValue, id_hash: u64) {
        match value {
            RefValue::Number(x) => self.push_number(*x, id_hash),
            RefValue::Category(c) => self.push_category(c),
        }
    }

    fn merge(&mut self, other: &ValueSummary) {
        self.values += other.values;
        self.numeric.merge(&other.numeric);
        self.categorical.merge(&other.categorical);
    }

    /// The frozen reference: numeric when at least as many numbers as strings were seen
    /// (and at least one), categorical when more strings; `None` when empty.
    fn freeze(&self) -> Option<Frozen> {
        let (n, c) = (self.numeric.count(), self.categorical.total());
        if n == 0 && c == 0 {
            None
        } else if n >= c {
            Some(Frozen::Numeric(NumericReference::from_summary(
                &self.numeric,
            )))
        } else {
            Some(Frozen::Categorical(CategoricalReference::from_summary(
                &self.categorical,
            )))
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Frozen {
    Numeric(NumericReference),
    Categorical(CategoricalReference),
}

impl Frozen {
    fn compare(&self, window: &ValueSummary, rule: &DriftRule) -> DriftValue {
        // A method that does not apply to the kind falls back to `auto`.
        match self {
            Frozen::Numeric(r) => DriftValue::Numeric(
                compare_numeric(r, window.numeric.samples(), rule)
                    .or_else(|_| compare_numeric(r, window.numeric.samples(), &rule.auto()))
                    .expect("auto applies to numeric data"),
            ),
            Frozen::Categorical(r) => DriftValue::Categorical(
                compare_categorical(r, &window.categorical, rule)
                    .or_else(|_| compare_categorical(r, &window.categorical, &rule.auto()))
                    .expect("auto applies to categorical data"),
            ),
        }
    }
}

/// What a series accumulates about its predictions (a window, or a reference).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PredictionSet {
    predictions: u64,
    features: Vec<ValueSummary>,
    prediction: ValueSummary,
    score: ValueSummary,
}

impl PredictionSet {
    fn new(spec: &ModelDriftSpec, capacity: usize) -> PredictionSet {
        PredictionSet {
            predictions: 0,
            features: (0..spec.features.len())
                .map(|i| ValueSummary::new(capacity, SLOT_FIRST_FEATURE + i as u64))
                .collect(),
            prediction: ValueSummary::new(capacity, SLOT_PREDICTION),
            score: ValueSummary::new(capacity, SLOT_SCORE),
        }
    }

    fn add(
        &mut self,
        features: &[(usize, FeatureValue<'_>)],
        predicted: &Target<'_>,
        score: Option<f64>,
        id_hash: u64,
    ) {
        self.predictions += 1;
        for (i, value) in features {
            if let Some(summary) = self.features.get_mut(*i) {
                summary.push(value, id_hash);
            }
        }
        match predicted {
            Target::Class(label) => self.prediction.push_category(label),
            Target::Value(v) => self.prediction.push_number(*v, id_hash),
        }
        if let Some(s) = score {
            self.score.push_number(s, id_hash);
        }
    }

    fn merge(&mut self, other: &PredictionSet) {
        self.predictions += other.predictions;
        for (a, b) in self.features.iter_mut().zip(&other.features) {
            a.merge(b);
        }
        self.prediction.merge(&other.prediction);
        self.score.merge(&other.score);
    }

    fn freeze(&self) -> FrozenSet {
        FrozenSet {
            features: self.features.iter().map(ValueSummary::freeze).collect(),
            prediction: self.prediction.freeze(),
            score: self.score.freeze(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FrozenSet {
    features: Vec<Option<Frozen>>,
    prediction: Option<Frozen>,
    score: Option<Frozen>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Detectors {
    adwin: Option<Adwin>,
    ddm: Option<Ddm>,
    page_hinkley: Option<PageHinkley>,
    /// Pairs fed so far: the index of the next one.
    pairs: u64,
}

impl Detectors {
    fn new(spec: &DetectorSpec) -> Detectors {
        Detectors {
            adwin: spec.adwin.map(|c| Adwin::new(c).unwrap_or_default()),
            ddm: spec.ddm.map(Ddm::new),
            page_hinkley: spec.page_hinkley.map(PageHinkley::new),
            pairs: 0,
        }
    }
}

/// A joined pair waiting for its window to close: what orders it and its error.
/// 32 bytes per joined pair of an open window.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct PendingPair {
    /// The time the pair is attributed to.
    at: i64,
    /// The prediction's event time.
    prediction_ts: i64,
    /// FNV-1a of the join id.
    id_hash: u64,
    error: f64,
}

impl PendingPair {
    fn order(a: &PendingPair, b: &PendingPair) -> std::cmp::Ordering {
        (a.at, a.prediction_ts, a.id_hash)
            .cmp(&(b.at, b.prediction_ts, b.id_hash))
            .then(a.error.total_cmp(&b.error))
    }
}

/// Detections of one detector in one window.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Detections {
    count: u64,
    last: Option<(u64, i64)>,
}

impl Detections {
    fn add(&mut self, index: u64, at: i64) {
        self.count += 1;
        self.last = Some((index, at));
    }

    fn out(&self, estimation: f64) -> DetectorOut {
        DetectorOut {
            drift: self.count > 0,
            detections: self.count,
            last_detection_index: self.last.map(|(i, _)| i),
            last_detection_at: self.last.map(|(_, at)| rfc3339(at)),
            estimation: estimation.is_finite().then_some(estimation),
        }
    }
}

/// Per (model, version) state that outlives windows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SeriesState {
    /// `"first"`: the closed windows merged so far; `None` once frozen.
    filling: Option<PredictionSet>,
    frozen: Option<Arc<FrozenSet>>,
    /// `"previous"`: the last closed window of the series that had predictions.
    previous: Option<(i64, PredictionSet)>,
    detectors: Detectors,
}

/// Per model state: spec, series, label reference.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ModelState {
    spec: ModelDriftSpec,
    series: Vec<SeriesState>,
    label_filling: Option<ValueSummary>,
    label_frozen: Option<Frozen>,
    label_previous: Option<(i64, ValueSummary)>,
    baseline: Option<Arc<FrozenSet>>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct DriftWindow {
    series: HashMap<(u16, u16), PredictionSet>,
    labels: HashMap<u16, ValueSummary>,
    /// Joined pairs attributed to the window, fed to the detectors when it closes.
    pairs: HashMap<(u16, u16), Vec<PendingPair>>,
}

/// One model's drift inputs of one window, versions by name: what a task of the
/// partitioned engine hands over (`crate::partition`). Summaries and pairs merge exactly
/// (bottom-k samples keyed by id hash, counts, pairs sorted at close), so merging the
/// partials of every task gives what one engine over all the input would hold.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DriftPartial {
    /// (version name, the window's predictions), by version name.
    series: Vec<(String, PredictionSet)>,
    labels: Option<ValueSummary>,
    /// (version name, joined pairs for the detectors), by version name.
    pairs: Vec<(String, Vec<PendingPair>)>,
}

impl DriftPartial {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.labels.is_none() && self.pairs.is_empty()
    }
}

/// What drift adds to the unsegmented record of a series.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SeriesOutput {
    pub drift: Option<DriftOut>,
    pub detectors: Option<DetectorsOut>,
}

/// All drift state of an engine.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DriftEngine {
    models: Vec<ModelState>,
    windows: BTreeMap<i64, DriftWindow>,
    window_size: i64,
}

impl DriftEngine {
    pub fn new(specs: Vec<ModelDriftSpec>, window_size: i64) -> DriftEngine {
        let models = specs
            .into_iter()
            .map(|spec| ModelState {
                label_filling: None,
                label_frozen: None,
                label_previous: None,
                series: Vec::new(),
                baseline: None,
                spec,
            })
            .collect();
        DriftEngine {
            models,
            windows: BTreeMap::new(),
            window_size,
        }
    }

    /// Sets (or replaces) the baseline of a model (`reference = { file = … }`), decoded by
    /// the shell from the file.
    pub fn set_baseline(&mut self, model: u16, baseline: &Baseline) {
        if let Some(m) = self.models.get_mut(model as usize) {
            m.baseline = Some(Arc::new(freeze_baseline(&m.spec, baseline)));
        }
    }

    /// Replaces the `drifted` decision rules of `model` (its `[models.drift]` method,
    /// threshold, minimum sample and per-feature overrides) on a restored engine: the
    /// summaries, samples and references do not depend on them (`Monitor::reconfigure`).
    pub fn set_rules(&mut self, model: u16, rule: DriftRule, feature_rules: &[DriftRule]) {
        if let Some(m) = self.models.get_mut(model as usize) {
            if m.spec.feature_rules.len() == feature_rules.len() {
                m.spec.rule = rule;
                m.spec.feature_rules = feature_rules.to_vec();
            }
        }
    }

    fn series(&mut self, model: u16, version: u16) -> Option<&mut SeriesState> {
        let m = self.models.get_mut(model as usize)?;
        while m.series.len() <= version as usize {
            m.series.push(SeriesState {
                filling: None,
                frozen: None,
                previous: None,
                detectors: Detectors::new(&m.spec.detectors),
            });
        }
        m.series.get_mut(version as usize)
    }

    /// A counted prediction (valid, not late, not a duplicate), in the window of its time;
    /// `id_hash` = [`super::fnv1a64`] of its join id.
    #[allow(clippy::too_many_arguments)]
    pub fn observe_prediction(
        &mut self,
        model: u16,
        version: u16,
        window_start: i64,
        features: &[(usize, FeatureValue<'_>)],
        predicted: &Target<'_>,
        score: Option<f64>,
        id_hash: u64,
    ) {
        let Some(m) = self.models.get(model as usize) else {
            return;
        };
        if !m.spec.enabled {
            return;
        }
        let spec = &m.spec;
        self.windows
            .entry(window_start)
            .or_default()
            .series
            .entry((model, version))
            .or_insert_with(|| PredictionSet::new(spec, spec.sample_capacity))
            .add(features, predicted, score, id_hash);
    }

    /// Whether the model's drift or detectors use the records' id hashes (the callers skip
    /// hashing ids otherwise).
    pub(crate) fn uses_ids(&self, model: u16) -> bool {
        self.models
            .get(model as usize)
            .is_some_and(|m| m.spec.enabled || m.spec.detectors.any())
    }

    /// An accepted outcome, for one model in its scope, in the window of its time.
    /// `value` is the actual as a number (regression models; `None` if it is not one);
    /// `id_hash` = [`super::fnv1a64`] of its join id.
    pub fn observe_outcome(
        &mut self,
        model: u16,
        window_start: i64,
        label: &str,
        value: Option<f64>,
        id_hash: u64,
    ) {
        let Some(m) = self.models.get_mut(model as usize) else {
            return;
        };
        if !m.spec.enabled {
            return;
        }
        let v = match m.spec.task {
            Task::Regression => match value {
                Some(x) => FeatureValue::Number(x),
                None => return,
            },
            Task::Binary | Task::Multiclass => FeatureValue::Category(Cow::Borrowed(label)),
        };
        let capacity = m.spec.sample_capacity;
        self.windows
            .entry(window_start)
            .or_default()
            .labels
            .entry(model)
            .or_insert_with(|| ValueSummary::new(capacity, SLOT_LABEL))
            .push(&v, id_hash);
    }

    /// Removes the window starting at `start` (a task hands it over instead of closing
    /// it), split by model; `version_name` names a model's version id.
    pub(crate) fn take_partials(
        &mut self,
        start: i64,
        version_name: impl Fn(u16, u16) -> String,
    ) -> BTreeMap<u16, DriftPartial> {
        let mut out: BTreeMap<u16, DriftPartial> = BTreeMap::new();
        let Some(window) = self.windows.remove(&start) else {
            return out;
        };
        for ((model, version), set) in window.series {
            out.entry(model)
                .or_default()
                .series
                .push((version_name(model, version), set));
        }
        for (model, summary) in window.labels {
            out.entry(model).or_default().labels = Some(summary);
        }
        for ((model, version), pairs) in window.pairs {
            out.entry(model)
                .or_default()
                .pairs
                .push((version_name(model, version), pairs));
        }
        for partial in out.values_mut() {
            partial.series.sort_by(|a, b| a.0.cmp(&b.0));
            partial.pairs.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, pairs) in &mut partial.pairs {
                pairs.sort_unstable_by(PendingPair::order);
            }
        }
        out
    }

    /// Adds a task's partial of model `model`'s window at `start` (a finalizer);
    /// `version_id` gives the id of a version name.
    pub(crate) fn merge_partial(
        &mut self,
        start: i64,
        model: u16,
        partial: &DriftPartial,
        mut version_id: impl FnMut(&str) -> u16,
    ) {
        if self.models.get(model as usize).is_none() {
            return;
        }
        let window = self.windows.entry(start).or_default();
        for (version, set) in &partial.series {
            match window.series.entry((model, version_id(version))) {
                hashbrown::hash_map::Entry::Occupied(mut mine) => mine.get_mut().merge(set),
                hashbrown::hash_map::Entry::Vacant(slot) => {
                    slot.insert(set.clone());
                }
            }
        }
        if let Some(labels) = &partial.labels {
            match window.labels.entry(model) {
                hashbrown::hash_map::Entry::Occupied(mut mine) => mine.get_mut().merge(labels),
                hashbrown::hash_map::Entry::Vacant(slot) => {
                    slot.insert(labels.clone());
                }
            }
        }
        for (version, pairs) in &partial.pairs {
            window
                .pairs
                .entry((model, version_id(version)))
                .or_default()
                .extend_from_slice(pairs);
        }
    }

    /// A joined pair's error; `at` is the time the pair is attributed to (in the window
    /// starting at `window_start`). Buffered: the detectors are fed when the window closes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe_pair(
        &mut self,
        model: u16,
        version: u16,
        at: i64,
        prediction_ts: i64,
        id_hash: u64,
        window_start: i64,
        error: f64,
    ) {
        let Some(m) = self.models.get(model as usize) else {
            return;
        };
        if !m.spec.detectors.any() {
            return;
        }
        self.windows
            .entry(window_start)
            .or_default()
            .pairs
            .entry((model, version))
            .or_default()
            .push(PendingPair {
                at,
                prediction_ts,
                id_hash,
                error,
            });
    }

    /// Feeds a closing window's pairs to the detectors of their series, in the documented
    /// order: (attributed time, prediction time, id hash, error).
    fn feed_detectors(
        &mut self,
        pairs: HashMap<(u16, u16), Vec<PendingPair>>,
    ) -> HashMap<(u16, u16), [Detections; 3]> {
        let mut found = HashMap::new();
        for ((model, version), mut list) in pairs {
            let Some(s) = self.series(model, version) else {
                continue;
            };
            list.sort_unstable_by(PendingPair::order);
            let d = &mut s.detectors;
            let mut slots = [Detections::default(); 3];
            for pair in &list {
                let index = d.pairs;
                d.pairs += 1;
                let fired = [
                    d.adwin.as_mut().is_some_and(|a| a.update(pair.error)),
                    d.ddm.as_mut().is_some_and(|a| a.update(pair.error)),
                    d.page_hinkley
                        .as_mut()
                        .is_some_and(|a| a.update(pair.error)),
                ];
                for (slot, fired) in slots.iter_mut().zip(fired) {
                    if fired {
                        slot.add(index, pair.at);
                    }
                }
            }
            found.insert((model, version), slots);
        }
        found
    }

    /// `"first"` references: a closing window's predictions (and labels) join the
    /// references that are not complete yet; complete = at least `reference_size` values.
    fn fill_references(&mut self, window: &DriftWindow) {
        for (&(model, version), set) in &window.series {
            if self.models[model as usize].spec.reference != ReferenceKind::First {
                continue;
            }
            let size = self.models[model as usize].spec.reference_size;
            let Some(s) = self.series(model, version) else {
                continue;
            };
            if s.frozen.is_some() {
                continue;
            }
            let filling = match &mut s.filling {
                Some(f) => {
                    f.merge(set);
                    f
                }
                None => s.filling.insert(set.clone()),
            };
            if filling.predictions as usize >= size {
                s.frozen = Some(Arc::new(filling.freeze()));
                s.filling = None;
            }
        }
        for (&model, summary) in &window.labels {
            let m = &mut self.models[model as usize];
            if m.spec.reference != ReferenceKind::First || m.label_frozen.is_some() {
                continue;
            }
            let filling = match &mut m.label_filling {
                Some(f) => {
                    f.merge(summary);
                    f
                }
                None => m.label_filling.insert(summary.clone()),
            };
            if filling.values as usize >= m.spec.reference_size {
                m.label_frozen = filling.freeze();
                if m.label_frozen.is_some() {
                    m.label_filling = None;
                }
            }
        }
    }

    /// Closes the window starting at `start`: the drift and detector objects of the given
    /// unsegmented series, then the window becomes the `"previous"` reference.
    pub fn close(
        &mut self,
        start: i64,
        series: &[(u16, u16)],
    ) -> HashMap<(u16, u16), SeriesOutput> {
        let mut window = self.windows.remove(&start).unwrap_or_default();
        self.fill_references(&window);
        let detections = self.feed_detectors(std::mem::take(&mut window.pairs));
        let empty_cache: HashMap<u16, Option<DriftValue>> = HashMap::new();
        let mut label_cache = empty_cache;
        let mut out = HashMap::new();
        for &(model, version) in series {
            let Some(m) = self.models.get(model as usize) else {
                continue;
            };
            let spec = &m.spec;
            let state = m.series.get(version as usize);
            let mut output = SeriesOutput::default();
            if spec.enabled {
                let label = label_cache
                    .entry(model)
                    .or_insert_with(|| {
                        label_drift(m, start, self.window_size, window.labels.get(&model))
                    })
                    .clone();
                let reference: Option<Arc<FrozenSet>> = match spec.reference {
                    ReferenceKind::First => state.and_then(|s| s.frozen.clone()),
                    ReferenceKind::File => m.baseline.clone(),
                    ReferenceKind::Previous => state
                        .and_then(|s| s.previous.as_ref())
                        .filter(|(p, set)| *p == start - self.window_size && set.predictions > 0)
                        .map(|(_, set)| Arc::new(set.freeze())),
                };
                let empty;
                let current = match window.series.get(&(model, version)) {
                    Some(set) => set,
                    None => {
                        empty = PredictionSet::new(spec, 1);
                        &empty
                    }
                };
                output.drift = Some(match reference {
                    Some(r) => DriftOut {
                        reference: spec.reference.name().to_string(),
                        features: Some(
                            spec.features
                                .iter()
                                .enumerate()
                                .map(|(i, name)| {
                                    let value = r.features[i].as_ref().map(|f| {
                                        f.compare(&current.features[i], &spec.feature_rules[i])
                                    });
                                    (name.clone(), value)
                                })
                                .collect(),
                        ),
                        prediction: r
                            .prediction
                            .as_ref()
                            .map(|f| f.compare(&current.prediction, &spec.rule)),
                        score: match spec.task {
                            Task::Binary => r
                                .score
                                .as_ref()
                                .map(|f| f.compare(&current.score, &spec.rule)),
                            _ => None,
                        },
                        label,
                    },
                    None => DriftOut {
                        reference: spec.reference.name().to_string(),
                        features: None,
                        prediction: None,
                        score: None,
                        label,
                    },
                });
            }
            if spec.detectors.any() {
                let fresh;
                let d = match state {
                    Some(s) => &s.detectors,
                    None => {
                        fresh = Detectors::new(&spec.detectors);
                        &fresh
                    }
                };
                let found = detections
                    .get(&(model, version))
                    .copied()
                    .unwrap_or_default();
                output.detectors = Some(DetectorsOut {
                    adwin: d.adwin.as_ref().map(|a| found[0].out(a.estimation())),
                    ddm: d.ddm.as_ref().map(|a| found[1].out(a.estimation())),
                    page_hinkley: d
                        .page_hinkley
                        .as_ref()
                        .map(|a| found[2].out(a.estimation())),
                });
            }
            out.insert((model, version), output);
        }
        // This window becomes the "previous" reference of what it holds.
        for ((model, version), set) in window.series {
            if self.models[model as usize].spec.reference == ReferenceKind::Previous {
                if let Some(s) = self.series(model, version) {
                    s.previous = Some((start, set));
                }
            }
        }
        for (model, summary) in window.labels {
            let m = &mut self.models[model as usize];
            if m.spec.reference == ReferenceKind::Previous {
                m.label_previous = Some((start, summary));
            }
        }
        out
    }
}

fn label_drift(
    m: &ModelState,
    start: i64,
    size: i64,
    window: Option<&ValueSummary>,
) -> Option<DriftValue> {
    let empty;
    let current = match window {
        Some(w) => w,
        None => {
            empty = ValueSummary::new(1, SLOT_LABEL);
            &empty
        }
    };
    match m.spec.reference {
        ReferenceKind::First => m
            .label_frozen
            .as_ref()
            .map(|f| f.compare(current, &m.spec.rule)),
        ReferenceKind::Previous => m
            .label_previous
            .as_ref()
            .filter(|(p, _)| *p == start - size)
            .and_then(|(_, s)| s.freeze())
            .map(|f| f.compare(current, &m.spec.rule)),
        // Baseline files hold predictions, not outcomes.
        ReferenceKind::File => None,
    }
}

fn freeze_baseline(spec: &ModelDriftSpec, baseline: &Baseline) -> FrozenSet {
    let n = baseline.records.len().max(1);
    // Capacity = the number of records: a baseline is kept exactly (the keys only matter
    // beyond the capacity).
    let mut set = PredictionSet::new(spec, n);
    for (line, r) in baseline.records.iter().enumerate() {
        let key = line as u64;
        set.predictions += 1;
        for (i, v) in &r.features {
            if let Some(s) = set.features.get_mut(*i) {
                s.push_ref(v, key);
            }
        }
        set.prediction.push_ref(&r.predicted, key);
        if let Some(s) = r.score {
            set.score.push_number(s, key);
        }
    }
    set.freeze()
}
