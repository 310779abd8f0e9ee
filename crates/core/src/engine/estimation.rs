//! The engine's side of performance estimation (`[models.estimation]`, docs/estimation.md):
//! which rows go to which window, when the reference is complete and fitted, and the
//! `estimated` object of a closing window.
//!
//! Why here and not in `estimation/`: that module is the pure estimator over rows; this
//! one knows the engine's windows, label ids and watermark.
//!
//! Windows are by **prediction time** (the window that holds a prediction's timestamp),
//! whatever `window.attribute_to` says for the realized metrics. Per (model, version),
//! unsegmented:
//! - **collecting** (`reference = "first"`): every prediction's row is kept in its window,
//!   with the labels of the pairs that join. A window is *complete* once every one of its
//!   predictions is joined or expired (watermark ≥ end + `join.max_label_delay`); complete
//!   windows with at least one pair join the reference in window order until it holds
//!   `reference_size` pairs; then the estimator is fitted once. The windows not taken
//!   become estimation windows.
//! - **fitted**: rows are pushed into their window's accumulator as they arrive, labels are
//!   added as pairs join; when the engine closes a window, its estimates go in the
//!   unsegmented record of the same window bounds. An accumulator is sums plus ROC AUC
//!   samples of at most `auc_sample` rows, keyed by the hash of each row's join id (the
//!   prediction's, or the joined outcome's: the same id), so the finalizer of the
//!   partitioned engine, adding the tasks' rows in any order, keeps the same rows.
//! - **failed**: the fit failed (e.g. a multiclass class that is never an actual in the
//!   reference); no estimates for that version.
//!
//! With `reference = { file = … }` the shell gives the decoded file; each version is fitted
//! from it at its first prediction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PredictionPayload;
use crate::estimation::{
    estimate_binary, estimate_multiclass, BinaryReference, BinaryRow, BinaryWindow,
    CalibrationMode, Estimates, MulticlassReference, MulticlassRow, MulticlassWindow,
};
use crate::interner::Interner;
use crate::output::{EstimatedOut, EstimationReferenceOut};
use crate::settings::{EstimationCalibration, EstimationReference, ModelConfig, Task};
use crate::window::TumblingWindows;

/// A model's estimation settings, as the engine uses them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimationSpec {
    pub mode: CalibrationMode,
    /// `Some(n)`: `reference = "first"` with `reference_size = n`; `None`: from a file.
    pub reference_size: Option<usize>,
    /// Rows per window the ROC AUC is computed on (`auc_sample`).
    pub auc_sample: usize,
}

impl EstimationSpec {
    /// `None` when the model has no `[models.estimation]` (or is a regression model).
    pub fn from_config(model: &ModelConfig) -> Option<EstimationSpec> {
        let e = model.estimation.as_ref()?;
        if !model.task.is_classification() {
            return None;
        }
        Some(EstimationSpec {
            mode: match e.calibration {
                EstimationCalibration::Auto => CalibrationMode::Auto,
                EstimationCalibration::Isotonic => CalibrationMode::On,
                EstimationCalibration::None => CalibrationMode::Off,
            },
            reference_size: match e.reference {
                EstimationReference::First => Some(e.reference_size),
                EstimationReference::File(_) => None,
            },
            auc_sample: e.auc_sample,
        })
    }
}

/// A labelled reference row by names (a row of a reference file, or a collected row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceRow {
    /// The predicted label.
    pub predicted: String,
    /// Binary: the positive class's score (NaN: none; the row is skipped).
    pub score: f64,
    /// Multiclass: the score per class.
    pub class_scores: Vec<(String, f64)>,
    /// The actual label.
    pub actual: String,
}

impl ReferenceRow {
    /// The canonical order of collected reference rows: by score (binary), by the scores
    /// in class-name order (multiclass), then predicted and actual label. Rows equal in
    /// all of these are interchangeable.
    pub fn canonical_cmp(a: &ReferenceRow, b: &ReferenceRow) -> std::cmp::Ordering {
        let sorted = |r: &ReferenceRow| {
            let mut v: Vec<(String, f64)> = r.class_scores.clone();
            v.sort_by(|x, y| x.0.cmp(&y.0));
            v
        };
        a.score
            .total_cmp(&b.score)
            .then_with(|| {
                let (x, y) = (sorted(a), sorted(b));
                x.iter()
                    .zip(&y)
                    .map(|(p, q)| p.0.cmp(&q.0).then(p.1.total_cmp(&q.1)))
                    .find(|o| o.is_ne())
                    .unwrap_or(x.len().cmp(&y.len()))
            })
            .then_with(|| a.predicted.cmp(&b.predicted))
            .then_with(|| a.actual.cmp(&b.actual))
    }
}

/// A prediction as the estimator needs it, by label ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    /// The hash of the prediction's join id (`crate::drift::fnv1a64`): the row's key in
    /// the ROC AUC samples, the same in every task and process.
    key: u64,
    predicted: u32,
    score: f64,
    class_scores: Vec<(u32, f64)>,
}

impl Row {
    /// `None` when the prediction has no usable score for `task`; `key` is the hash of
    /// its join id.
    fn of(task: Task, p: &PredictionPayload, key: u64) -> Option<Row> {
        let class_scores = match task {
            Task::Binary if p.score.is_finite() => Vec::new(),
            Task::Multiclass => p
                .extra
                .as_ref()
                .filter(|e| !e.class_scores.is_empty())?
                .class_scores
                .clone(),
            _ => return None,
        };
        Some(Row {
            key,
            predicted: p.predicted as u32,
            score: p.score,
            class_scores,
        })
    }

    fn named(&self, actual: u32, labels: &Interner) -> ReferenceRow {
        ReferenceRow {
            predicted: labels.name(self.predicted).to_string(),
            score: self.score,
            class_scores: self
                .class_scores
                .iter()
                .map(|&(c, s)| (labels.name(c).to_string(), s))
                .collect(),
            actual: labels.name(actual).to_string(),
        }
    }
}

/// A row by names: what a task of the partitioned engine hands over (`crate::partition`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedRow {
    /// The hash of the prediction's join id (the row's key in the ROC AUC samples).
    pub key: u64,
    pub predicted: String,
    pub score: f64,
    pub class_scores: Vec<(String, f64)>,
}

impl NamedRow {
    fn of(row: &Row, names: &Interner) -> NamedRow {
        NamedRow {
            key: row.key,
            predicted: names.name(row.predicted).to_string(),
            score: row.score,
            class_scores: row
                .class_scores
                .iter()
                .map(|&(c, s)| (names.name(c).to_string(), s))
                .collect(),
        }
    }

    /// The row with this engine's label ids (`None` past the label table's capacity).
    fn row(&self, names: &mut Interner) -> Option<Row> {
        Some(Row {
            key: self.key,
            predicted: names.id(&self.predicted)?,
            score: self.score,
            class_scores: self
                .class_scores
                .iter()
                .map(|(c, s)| Some((names.id(c)?, *s)))
                .collect::<Option<Vec<_>>>()?,
        })
    }
}

/// One (model, version)'s estimation rows of one window by prediction time, by names:
/// the predictions' rows and the labels joined so far (with whether each pair's time is
/// before the window's close), or, handed over later, the labels joined after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EstimationRows {
    pub rows: Vec<NamedRow>,
    /// (row, actual label, before the window's close).
    pub labelled: Vec<(NamedRow, String, bool)>,
}

/// A row with its actual's label id and whether the pair's time is before its window's
/// close.
type LabelledRow = (Row, u32, bool);

/// Labelled rows by names, as a task hands them over.
fn named_labels(labelled: &[LabelledRow], names: &Interner) -> Vec<(NamedRow, String, bool)> {
    labelled
        .iter()
        .map(|(row, actual, before)| {
            (
                NamedRow::of(row, names),
                names.name(*actual).to_string(),
                *before,
            )
        })
        .collect()
}

/// A task's estimation input, kept raw per window until handed over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TaskRows {
    /// (window start, model, version) -> rows and labels, until the window is handed over.
    open: BTreeMap<(i64, u16, u16), RawWindow>,
    /// Labels of pairs after their window's close, and of windows handed over already,
    /// until every prediction of the window is joined or expired (end +
    /// `join.max_label_delay`).
    late: BTreeMap<(i64, u16, u16), Vec<LabelledRow>>,
    /// Start of the last window handed over.
    handed: Option<i64>,
}

/// Rows of one window while the reference is being collected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RawWindow {
    rows: Vec<Row>,
    /// The joined pairs of the window: the row again, with the actual's label id, and
    /// whether the pair's time is before the window's close ([`EstimationState::observe_joined`]).
    labelled: Vec<(Row, u32, bool)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Fitted {
    Binary(BinaryReference),
    Multiclass(MulticlassReference),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Accumulator {
    Binary(BinaryWindow),
    Multiclass(MulticlassWindow),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Phase {
    Collecting {
        windows: BTreeMap<i64, RawWindow>,
        reference: Vec<Vec<ReferenceRow>>,
        pairs: usize,
    },
    Fitted {
        fitted: Box<Fitted>,
        reference: EstimationReferenceOut,
        windows: BTreeMap<i64, Accumulator>,
        /// Labels of open windows joined at or after their close time: added after the
        /// window's estimate (its `realized` must not depend on processing order), in
        /// time for its check.
        deferred: BTreeMap<i64, Vec<(Row, u32)>>,
        /// Closed windows that had an estimate, still getting labels until every
        /// prediction is joined or expired; then their estimation-check is due.
        checking: BTreeMap<i64, Accumulator>,
    },
    Failed {
        error: String,
    },
}

/// What a label means for one model: its task and positive class.
#[derive(Clone, Copy)]
struct Labels<'a> {
    positive: &'a str,
    names: &'a Interner,
}

impl Fitted {
    fn fit(
        task: Task,
        positive: &str,
        mode: CalibrationMode,
        windows: &[Vec<ReferenceRow>],
    ) -> Result<Fitted, String> {
        match task {
            Task::Binary => {
                let windows: Vec<Vec<BinaryRow>> = windows
                    .iter()
                    .map(|w| {
                        w.iter()
                            .filter(|r| r.score.is_finite())
                            .map(|r| BinaryRow {
                                score: r.score,
                                y_pred: r.predicted == positive,
                                y_true: Some(r.actual == positive),
                            })
                            .collect()
                    })
                    .collect();
                BinaryReference::fit(&windows, mode)
                    .map(Fitted::Binary)
                    .map_err(|e| e.to_string())
            }
            Task::Multiclass => {
                let mut classes: Vec<String> = windows
                    .iter()
                    .flatten()
                    .flat_map(|r| r.class_scores.iter().map(|(c, _)| c.clone()))
                    .collect();
                classes.sort();
                classes.dedup();
                let index = |name: &str| classes.binary_search_by(|c| c.as_str().cmp(name)).ok();
                let windows: Vec<Vec<MulticlassRow>> = windows
                    .iter()
                    .map(|w| {
                        w.iter()
                            .filter_map(|r| {
                                let mut scores = vec![0.0; classes.len()];
                                for (c, s) in &r.class_scores {
                                    if let Some(i) = index(c) {
                                        scores[i] = *s;
                                    }
                                }
                                Some(MulticlassRow {
                                    scores,
                                    y_pred: index(&r.predicted),
                                    y_true: Some(index(&r.actual)?),
                                })
                            })
                            .collect()
                    })
                    .collect();
                MulticlassReference::fit(&classes, &windows, mode)
                    .map(Fitted::Multiclass)
                    .map_err(|e| e.to_string())
            }
            Task::Regression => Err("estimation applies to classification only".to_string()),
        }
    }

    fn calibrated(&self) -> bool {
        match self {
            Fitted::Binary(r) => r.calibrator().is_isotonic(),
            Fitted::Multiclass(r) => r.calibrators().iter().any(|c| c.is_isotonic()),
        }
    }

    /// An empty window whose ROC AUC samples keep up to `auc_sample` rows.
    fn new_window(&self, auc_sample: usize) -> Accumulator {
        match self {
            Fitted::Binary(_) => Accumulator::Binary(BinaryWindow::new(auc_sample)),
            Fitted::Multiclass(r) => Accumulator::Multiclass(MulticlassWindow::new(r, auc_sample)),
        }
    }

    fn multiclass_row(r: &MulticlassReference, row: &Row, labels: Labels<'_>) -> MulticlassRow {
        let classes = r.classes();
        let index = |id: u32| {
            let name = labels.names.name(id);
            classes.binary_search_by(|c| c.as_str().cmp(name)).ok()
        };
        let mut scores = vec![0.0; classes.len()];
        for &(c, s) in &row.class_scores {
            if let Some(i) = index(c) {
                scores[i] = s;
            }
        }
        MulticlassRow {
            scores,
            y_pred: index(row.predicted),
            y_true: None,
        }
    }

    /// Adds a row (a non-finite score or a malformed row is skipped).
    fn push(&self, window: &mut Accumulator, row: &Row, labels: Labels<'_>) {
        match (self, window) {
            (Fitted::Binary(r), Accumulator::Binary(w)) => {
                let binary = BinaryRow {
                    score: row.score,
                    y_pred: labels.names.name(row.predicted) == labels.positive,
                    y_true: None,
                };
                let _skipped = w.push(r, row.key, &binary);
            }
            (Fitted::Multiclass(r), Accumulator::Multiclass(w)) => {
                let _skipped = w.push(r, row.key, &Fitted::multiclass_row(r, row, labels));
            }
            _ => {}
        }
    }

    /// Adds the label of a row pushed before (an actual outside the classes is skipped).
    fn add_outcome(&self, window: &mut Accumulator, row: &Row, actual: u32, labels: Labels<'_>) {
        match (self, window) {
            (Fitted::Binary(_), Accumulator::Binary(w)) => {
                let _skipped = w.add_outcome(
                    row.key,
                    row.score,
                    labels.names.name(row.predicted) == labels.positive,
                    labels.names.name(actual) == labels.positive,
                );
            }
            (Fitted::Multiclass(r), Accumulator::Multiclass(w)) => {
                let mut m = Fitted::multiclass_row(r, row, labels);
                let name = labels.names.name(actual);
                m.y_true = r.classes().binary_search_by(|c| c.as_str().cmp(name)).ok();
                if m.y_true.is_some() {
                    let _skipped = w.add_outcome(r, row.key, &m);
                }
            }
            _ => {}
        }
    }

    /// The window's estimates; `None` for a window without estimated rows.
    fn estimates(&self, window: &Accumulator) -> Option<Estimates> {
        let estimates = match (self, window) {
            (Fitted::Binary(r), Accumulator::Binary(w)) => estimate_binary(r, w),
            (Fitted::Multiclass(r), Accumulator::Multiclass(w)) => estimate_multiclass(r, w),
            _ => return None,
        };
        (estimates.rows > 0).then_some(estimates)
    }
}

/// One model's estimation: settings, reference file, one phase per version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ModelEstimation {
    spec: EstimationSpec,
    task: Task,
    positive: String,
    /// `reference = { file = … }`: the decoded file, in windows.
    file: Option<Vec<Vec<ReferenceRow>>>,
    versions: BTreeMap<u16, Phase>,
    /// Fits that failed since the last [`EstimationState::take_failures`]: (version,
    /// why). Reported once, not state.
    #[serde(skip)]
    failures: Vec<(u16, String)>,
}

impl ModelEstimation {
    /// The phase of `version`, created at its first row; `None` when there is nothing to
    /// estimate with (a file reference the shell did not give).
    fn phase(&mut self, version: u16) -> Option<&mut Phase> {
        if !self.versions.contains_key(&version) {
            let phase = match (self.spec.reference_size, &self.file) {
                (Some(_), _) => Phase::Collecting {
                    windows: BTreeMap::new(),
                    reference: Vec::new(),
                    pairs: 0,
                },
                (None, Some(file)) => fitted_phase(
                    Fitted::fit(self.task, &self.positive, self.spec.mode, file),
                    file,
                ),
                (None, None) => return None,
            };
            if let Phase::Failed { error } = &phase {
                self.failures.push((version, error.clone()));
            }
            self.versions.insert(version, phase);
        }
        self.versions.get_mut(&version)
    }
}

fn fitted_phase(fit: Result<Fitted, String>, windows: &[Vec<ReferenceRow>]) -> Phase {
    match fit {
        Ok(fitted) => Phase::Fitted {
            fitted: Box::new(fitted),
            reference: EstimationReferenceOut {
                windows: windows.len() as u64,
                pairs: windows.iter().map(Vec::len).sum::<usize>() as u64,
            },
            windows: BTreeMap::new(),
            deferred: BTreeMap::new(),
            checking: BTreeMap::new(),
        },
        Err(error) => Phase::Failed { error },
    }
}

/// Every model's estimation state (indexed like `[[models]]`; `None`: not configured).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct EstimationState {
    models: Vec<Option<ModelEstimation>>,
    /// Start of the last window the engine closed: later pairs of it are not added.
    last_closed: Option<i64>,
    /// A task's engine: rows and labels are kept raw and handed over, not estimated.
    #[serde(default)]
    task: Option<TaskRows>,
}

impl EstimationState {
    pub(crate) fn new(specs: &[Option<EstimationSpec>], models: &[super::ModelSpec]) -> Self {
        let models = models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let spec = specs.get(i).cloned().flatten()?;
                m.task.is_classification().then(|| ModelEstimation {
                    spec,
                    task: m.task,
                    positive: m.positive_class.clone().unwrap_or_default(),
                    file: None,
                    versions: BTreeMap::new(),
                    failures: Vec::new(),
                })
            })
            .collect();
        EstimationState {
            models,
            last_closed: None,
            task: None,
        }
    }

    /// Makes this the estimation state of a task's engine (see [`TaskRows`]).
    pub(crate) fn for_task(&mut self) {
        self.task = Some(TaskRows::default());
    }

    /// A task hands window `start` over: the rows and labels of it (and of any earlier
    /// window), by (model, version), named.
    pub(crate) fn take_window(
        &mut self,
        start: i64,
        names: &Interner,
    ) -> Vec<(u16, u16, EstimationRows)> {
        let Some(task) = self.task.as_mut() else {
            return Vec::new();
        };
        task.handed = Some(task.handed.map_or(start, |h| h.max(start)));
        let later = task.open.split_off(&(start.saturating_add(1), 0, 0));
        let taken = std::mem::replace(&mut task.open, later);
        taken
            .into_iter()
            .map(|((_, model, version), raw)| {
                let rows = EstimationRows {
                    rows: raw.rows.iter().map(|r| NamedRow::of(r, names)).collect(),
                    labelled: named_labels(&raw.labelled, names),
                };
                (model, version, rows)
            })
            .collect()
    }

    /// A task's labels joined after their window was handed over, of the windows whose
    /// predictions are all joined or expired at `watermark` (end + `max_label_delay`):
    /// by (window start, model, version), named.
    pub(crate) fn take_late_labels(
        &mut self,
        watermark: i64,
        spec: &TumblingWindows,
        max_label_delay: i64,
        names: &Interner,
    ) -> Vec<(i64, u16, u16, EstimationRows)> {
        let Some(task) = self.task.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(entry) = task.late.first_entry() {
            let (start, model, version) = *entry.key();
            if spec.end_of(start).saturating_add(max_label_delay) > watermark {
                break;
            }
            let labels = entry.remove();
            out.push((
                start,
                model,
                version,
                EstimationRows {
                    rows: Vec::new(),
                    labelled: named_labels(&labels, names),
                },
            ));
        }
        out
    }

    /// A finalizer adds a task's rows of window `start` (at the window's close) or its
    /// late labels (once the window is complete).
    pub(crate) fn merge_rows(
        &mut self,
        model: u16,
        version: u16,
        start: i64,
        rows: &EstimationRows,
        names: &mut Interner,
    ) {
        for named in &rows.rows {
            if let Some(row) = named.row(names) {
                self.add_row(model, version, start, row, names);
            }
        }
        for (named, actual, before_close) in &rows.labelled {
            let (Some(row), Some(actual)) = (named.row(names), names.id(actual)) else {
                continue;
            };
            self.add_label(model, version, start, row, actual, *before_close, names);
        }
    }

    /// True when `model` estimates.
    pub(crate) fn enabled(&self, model: u16) -> bool {
        matches!(self.models.get(model as usize), Some(Some(_)))
    }

    /// Sets a model's `reference = { file = … }` rows, in windows.
    pub(crate) fn set_reference(&mut self, model: u16, windows: Vec<Vec<ReferenceRow>>) {
        if let Some(Some(m)) = self.models.get_mut(model as usize) {
            m.file = Some(windows);
        }
    }

    /// A new prediction (not a duplicate, not late) of window `start`; `key` is the hash
    /// of its join id ([`crate::drift::fnv1a64`]).
    pub(crate) fn observe_prediction(
        &mut self,
        model: u16,
        version: u16,
        start: i64,
        payload: &PredictionPayload,
        key: u64,
        names: &Interner,
    ) {
        let Some(Some(m)) = self.models.get_mut(model as usize) else {
            return;
        };
        let Some(row) = Row::of(m.task, payload, key) else {
            return;
        };
        if let Some(task) = self.task.as_mut() {
            task.open
                .entry((start, model, version))
                .or_default()
                .rows
                .push(row);
            return;
        }
        self.add_row(model, version, start, row, names);
    }

    /// [`EstimationState::observe_prediction`] with the row made.
    fn add_row(&mut self, model: u16, version: u16, start: i64, row: Row, names: &Interner) {
        let Some(Some(m)) = self.models.get_mut(model as usize) else {
            return;
        };
        let last_closed = self.last_closed;
        let positive = m.positive.clone();
        let labels = Labels {
            positive: &positive,
            names,
        };
        let auc_sample = m.spec.auc_sample;
        match m.phase(version) {
            Some(Phase::Collecting { windows, .. }) => {
                windows.entry(start).or_default().rows.push(row)
            }
            Some(Phase::Fitted {
                fitted, windows, ..
            }) if last_closed.is_none_or(|c| start > c) => {
                let window = windows
                    .entry(start)
                    .or_insert_with(|| fitted.new_window(auc_sample));
                fitted.push(window, &row, labels);
            }
            _ => {}
        }
    }

    /// A joined pair: the prediction of window `start` and its actual's label id.
    /// `before_close`: the pair's time (the later of prediction and outcome) is before
    /// the time the window closes (its end, + `join.max_label_delay` with
    /// `attribute_to = "prediction"`). Only those pairs count in the `realized` values of
    /// the window's estimate: which later ones are joined by the close depends on the
    /// order partitions are read in. All count in the estimation check. `key` is the hash
    /// of the pair's join id, as for [`EstimationState::observe_prediction`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe_joined(
        &mut self,
        model: u16,
        version: u16,
        start: i64,
        payload: &PredictionPayload,
        key: u64,
        actual: u32,
        before_close: bool,
        names: &Interner,
    ) {
        let Some(Some(m)) = self.models.get_mut(model as usize) else {
            return;
        };
        let Some(row) = Row::of(m.task, payload, key) else {
            return;
        };
        if let Some(task) = self.task.as_mut() {
            // A pair after the close goes with the late labels even while its window is
            // open: which of them are joined by the hand-over depends on the order the two
            // partitions are read in, and a task restored from a checkpoint re-reads in
            // another order. Split by time, the window's partial and its late labels hold
            // the same labels however the task read them, so a re-sent copy of either
            // replaces the first one exactly.
            if !before_close || task.handed.is_some_and(|h| start <= h) {
                task.late.entry((start, model, version)).or_default().push((
                    row,
                    actual,
                    before_close,
                ));
            } else {
                task.open
                    .entry((start, model, version))
                    .or_default()
                    .labelled
                    .push((row, actual, before_close));
            }
            return;
        }
        self.add_label(model, version, start, row, actual, before_close, names);
    }

    /// [`EstimationState::observe_joined`] with the row made.
    #[allow(clippy::too_many_arguments)]
    fn add_label(
        &mut self,
        model: u16,
        version: u16,
        start: i64,
        row: Row,
        actual: u32,
        before_close: bool,
        names: &Interner,
    ) {
        let Some(Some(m)) = self.models.get_mut(model as usize) else {
            return;
        };
        let last_closed = self.last_closed;
        let positive = m.positive.clone();
        let labels = Labels {
            positive: &positive,
            names,
        };
        let auc_sample = m.spec.auc_sample;
        match m.phase(version) {
            Some(Phase::Collecting { windows, .. }) => windows
                .entry(start)
                .or_default()
                .labelled
                .push((row, actual, before_close)),
            // The window may not have the row yet: a prediction that joins as it arrives
            // is pushed after the join. The row's push and its label commute.
            Some(Phase::Fitted {
                fitted,
                windows,
                deferred,
                ..
            }) if last_closed.is_none_or(|c| start > c) => {
                if before_close {
                    let window = windows
                        .entry(start)
                        .or_insert_with(|| fitted.new_window(auc_sample));
                    fitted.add_outcome(window, &row, actual, labels);
                } else {
                    deferred.entry(start).or_default().push((row, actual));
                }
            }
            // A closed window that had an estimate: its label counts for the check.
            Some(Phase::Fitted {
                fitted, checking, ..
            }) => {
                if let Some(window) = checking.get_mut(&start) {
                    fitted.add_outcome(window, &row, actual, labels);
                }
            }
            _ => {}
        }
    }

    /// The watermark moved to `watermark`: complete collected windows join the reference,
    /// which is fitted once it holds enough pairs.
    pub(crate) fn advance(
        &mut self,
        watermark: i64,
        spec: &TumblingWindows,
        max_label_delay: i64,
        close_wait: i64,
        names: &Interner,
    ) {
        if self.task.is_some() {
            return; // a task hands its rows over; the finalizer fits and estimates
        }
        for m in self.models.iter_mut().flatten() {
            let Some(size) = m.spec.reference_size else {
                continue;
            };
            let (task, mode, auc_sample) = (m.task, m.spec.mode, m.spec.auc_sample);
            let positive = m.positive.clone();
            let failures = &mut m.failures;
            for (&version, phase) in m.versions.iter_mut() {
                let Phase::Collecting {
                    windows,
                    reference,
                    pairs,
                } = phase
                else {
                    continue;
                };
                // The start of the window that completed the reference, if this call
                // completes it.
                let mut completed_by = None;
                while *pairs < size {
                    let Some((&start, _)) = windows.first_key_value() else {
                        break;
                    };
                    if spec.end_of(start).saturating_add(max_label_delay) > watermark {
                        break;
                    }
                    let Some(window) = windows.remove(&start) else {
                        break;
                    };
                    if window.labelled.is_empty() {
                        continue;
                    }
                    completed_by = Some(start);
                    *pairs += window.labelled.len();
                    let mut rows: Vec<ReferenceRow> = window
                        .labelled
                        .iter()
                        .map(|(row, actual, _)| row.named(*actual, names))
                        .collect();
                    // Pairs join in the order partitions are read; the fit (ties in the
                    // ROC AUC components, the "auto" calibration's splits) depends on row
                    // order: a canonical order makes it the same for every reading order.
                    rows.sort_by(ReferenceRow::canonical_cmp);
                    reference.push(rows);
                }
                if *pairs < size {
                    continue;
                }
                // The fit is due when the completing window is complete; the windows that
                // close at or after that time get estimates, whatever steps the watermark
                // took (one step past several closes, or one per close).
                let fit_at = completed_by.map_or(watermark, |start| {
                    spec.end_of(start).saturating_add(max_label_delay)
                });
                let fit = Fitted::fit(task, &positive, mode, reference);
                let mut next = fitted_phase(fit, reference);
                if let Phase::Failed { error } = &next {
                    failures.push((version, error.clone()));
                }
                if let Phase::Fitted {
                    fitted,
                    windows: accumulators,
                    deferred,
                    ..
                } = &mut next
                {
                    let labels = Labels {
                        positive: &positive,
                        names,
                    };
                    for (&start, raw) in windows.iter() {
                        if spec.end_of(start).saturating_add(close_wait) < fit_at
                            || self.last_closed.is_some_and(|c| start <= c)
                        {
                            continue;
                        }
                        let mut window = fitted.new_window(auc_sample);
                        for row in &raw.rows {
                            fitted.push(&mut window, row, labels);
                        }
                        for (row, actual, before_close) in &raw.labelled {
                            if *before_close {
                                fitted.add_outcome(&mut window, row, *actual, labels);
                            } else {
                                deferred
                                    .entry(start)
                                    .or_default()
                                    .push((row.clone(), *actual));
                            }
                        }
                        accumulators.insert(start, window);
                    }
                }
                *phase = next;
            }
        }
    }

    /// The engine closes window `start`: the estimates of every fitted (model, version)
    /// with rows in it, by (model, version).
    pub(crate) fn close(
        &mut self,
        start: i64,
        names: &Interner,
    ) -> hashbrown::HashMap<(u16, u16), EstimatedOut> {
        self.last_closed = Some(start);
        let mut out = hashbrown::HashMap::new();
        for (model, m) in self.models.iter_mut().enumerate() {
            let Some(m) = m else { continue };
            let labels = Labels {
                positive: &m.positive,
                names,
            };
            for (&version, phase) in m.versions.iter_mut() {
                let Phase::Fitted {
                    fitted,
                    reference,
                    windows,
                    deferred,
                    checking,
                } = phase
                else {
                    continue;
                };
                while let Some(entry) = windows.first_entry() {
                    if *entry.key() > start {
                        break;
                    }
                    let closing = *entry.key() == start;
                    let mut window = entry.remove();
                    if closing {
                        if let Some(e) = fitted.estimates(&window) {
                            let calibrated = fitted.calibrated();
                            out.insert(
                                (model as u16, version),
                                EstimatedOut::new(&e, calibrated, *reference),
                            );
                            for (row, actual) in deferred.remove(&start).unwrap_or_default() {
                                fitted.add_outcome(&mut window, &row, actual, labels);
                            }
                            checking.insert(start, window);
                        }
                    }
                }
                while let Some(entry) = deferred.first_entry() {
                    if *entry.key() > start {
                        break;
                    }
                    entry.remove();
                }
            }
        }
        out
    }

    /// The estimation checks due at `watermark`: closed windows with an estimate whose
    /// predictions are all joined or expired (watermark ≥ end + `max_label_delay`), as
    /// `(model, version, window start, final estimates)`, in window order, then model,
    /// then version.
    pub(crate) fn checks(
        &mut self,
        watermark: i64,
        spec: &TumblingWindows,
        max_label_delay: i64,
    ) -> Vec<(u16, u16, i64, Estimates)> {
        let mut out = Vec::new();
        for (model, m) in self.models.iter_mut().enumerate() {
            let Some(m) = m else { continue };
            for (&version, phase) in m.versions.iter_mut() {
                let Phase::Fitted {
                    fitted, checking, ..
                } = phase
                else {
                    continue;
                };
                while let Some(entry) = checking.first_entry() {
                    let start = *entry.key();
                    if spec.end_of(start).saturating_add(max_label_delay) > watermark {
                        break;
                    }
                    let window = entry.remove();
                    if let Some(e) = fitted.estimates(&window) {
                        out.push((model as u16, version, start, e));
                    }
                }
            }
        }
        out.sort_by_key(|&(model, version, start, _)| (start, model, version));
        out
    }

    /// The fits that failed since the last call: (model, version, why), each once.
    pub(crate) fn take_failures(&mut self) -> Vec<(u16, u16, String)> {
        let mut out = Vec::new();
        for (model, m) in self.models.iter_mut().enumerate() {
            if let Some(m) = m {
                out.extend(
                    m.failures
                        .drain(..)
                        .map(|(version, why)| (model as u16, version, why)),
                );
            }
        }
        out
    }

    /// Why a version's fit failed, if it did (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn failure(&self, model: u16, version: u16) -> Option<&str> {
        match self
            .models
            .get(model as usize)?
            .as_ref()?
            .versions
            .get(&version)?
        {
            Phase::Failed { error } => Some(error),
            _ => None,
        }
    }
}

/// Decodes a `reference = { file = … }` of `[models.estimation]`: JSON lines, each a
/// prediction of `model` in the input format that also has the outcome's `actual` field
/// (and its own id and timestamp). Rows are grouped by their window of `window_size`
/// milliseconds (the thresholds are the spread over these windows), in time order.
pub fn decode_reference(
    decoder: &crate::record::Decoder,
    model: u16,
    positive: Option<&str>,
    window_size: i64,
    bytes: &[u8],
) -> Result<Vec<Vec<ReferenceRow>>, String> {
    use crate::record::{Envelope, Score, Target};
    let windows_spec = TumblingWindows::new(window_size);
    let mut windows: BTreeMap<i64, Vec<ReferenceRow>> = BTreeMap::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = |e: &dyn std::fmt::Display| format!("line {}: {e}", index + 1);
        let p = decoder
            .prediction(line, Envelope::default())
            .map_err(|e| at(&e))?;
        if p.model != model {
            return Err(at(&"names another model"));
        }
        let o = decoder
            .outcome(line, Envelope::default())
            .map_err(|e| at(&format!("no actual: {e}")))?;
        let Target::Class(predicted) = &p.predicted else {
            return Err(at(&"the prediction is not a class label"));
        };
        let (score, class_scores) = match (&p.score, positive) {
            (Some(Score::Positive(s)), _) => (*s, Vec::new()),
            (Some(Score::PerClass(per_class)), Some(pos)) => (
                per_class
                    .iter()
                    .find(|(c, _)| c == pos)
                    .map_or(0.0, |(_, s)| *s),
                Vec::new(),
            ),
            (Some(Score::PerClass(per_class)), None) => (
                f64::NAN,
                per_class.iter().map(|(c, s)| (c.to_string(), *s)).collect(),
            ),
            (None, _) => return Err(at(&"no score: estimation needs one")),
        };
        windows
            .entry(windows_spec.start_of(p.ts))
            .or_default()
            .push(ReferenceRow {
                predicted: predicted.to_string(),
                score,
                class_scores,
                actual: o.actual.label.to_string(),
            });
    }
    if windows.is_empty() {
        return Err("the file has no rows".to_string());
    }
    Ok(windows.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use crate::output::MetricsRecord;
    use crate::record::{Decoder, Envelope, Input};
    use crate::settings::Config;
    use serde_json::{json, Value};

    const T0: i64 = 1_767_225_600_000;
    const MINUTE: i64 = 60_000;

    fn config(task: &str, estimation: &str) -> Config {
        let positive = if task == "binary" {
            "positive_class = \"1\"\n"
        } else {
            ""
        };
        Config::from_toml_for_tests(&format!(
            "[join]\nmax_label_delay = \"30s\"\n[window]\nsize = \"1m\"\n\
             [[models]]\nname = \"m\"\ntask = \"{task}\"\n{positive}\
             [models.drift]\nenabled = false\n[models.estimation]\n{estimation}"
        ))
        .expect("test config")
    }

    fn golden() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/oracle/estimation_golden.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("JSON")
    }

    /// One window of input: prediction lines, outcome lines, the window index.
    struct Chunk {
        window: i64,
        predictions: Vec<Value>,
        outcomes: Vec<Value>,
    }

    fn apply(engine: &mut Engine, decoder: &Decoder, chunk: &Chunk) -> Vec<MetricsRecord> {
        for (input, lines) in [
            (Input::Predictions, &chunk.predictions),
            (Input::Outcomes, &chunk.outcomes),
        ] {
            for line in lines {
                let bytes = serde_json::to_vec(line).expect("JSON");
                let record = decoder
                    .decode(input, &bytes, Envelope::default())
                    .expect("decodes");
                engine.observe(&record).expect("accepted");
            }
        }
        engine.advance_watermark(T0 + (chunk.window + 1) * MINUTE)
    }

    /// The golden case's rows as chunks: one window per chunk, outcomes (at the
    /// prediction's time) for the reference windows only.
    fn binary_chunks(case: &Value) -> (Vec<Chunk>, Vec<Vec<BinaryRow>>) {
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut windows: Vec<Vec<BinaryRow>> = Vec::new();
        for (period, labelled) in [("reference", true), ("analysis", false)] {
            let p = &case[period];
            let n = p["score"].as_array().expect("scores").len();
            for i in 0..n {
                let window = p["window"][i].as_i64().expect("window");
                let ts = p["ts_ms"][i].as_i64().expect("ts");
                let id = format!("{period}-{i}");
                let y_pred = p["y_pred"][i].as_i64() == Some(1);
                let y_true = p["y_true"][i].as_i64() == Some(1);
                let score = p["score"][i].as_f64().expect("score");
                if chunks.last().is_none_or(|c| c.window != window) {
                    chunks.push(Chunk {
                        window,
                        predictions: Vec::new(),
                        outcomes: Vec::new(),
                    });
                    windows.push(Vec::new());
                }
                let chunk = chunks.last_mut().expect("a chunk");
                chunk.predictions.push(json!({
                    "id": id, "model": "m", "timestamp": ts,
                    "prediction": if y_pred { "1" } else { "0" }, "score": score,
                }));
                if labelled {
                    chunk.outcomes.push(json!({
                        "id": id, "timestamp": ts, "actual": if y_true { "1" } else { "0" },
                    }));
                }
                windows.last_mut().expect("a window").push(BinaryRow {
                    score,
                    y_pred,
                    y_true: labelled.then_some(y_true),
                });
            }
        }
        (chunks, windows)
    }

    fn assert_same(got: &EstimatedOut, want: &Estimates, calibrated: bool) {
        assert_eq!(got.method, "cbpe");
        assert_eq!(got.calibrated, calibrated);
        assert_eq!(got.n, want.rows as u64);
        let expected = EstimatedOut::new(want, calibrated, got.reference);
        assert_eq!(got, &expected);
    }

    fn close(a: Option<f64>, b: &Value) -> bool {
        match (a, b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-3),
            (None, None) => true,
            _ => false,
        }
    }

    #[test]
    fn binary_engine_estimates_equal_the_estimator_and_nannyml() {
        let golden = golden();
        let case = &golden["cases"]["binary_covariate_shift"];
        let config = config(
            "binary",
            "method = \"cbpe\"\ncalibration = \"isotonic\"\nreference_size = 4000\n",
        );
        let decoder = Decoder::new(&config);
        let mut engine = Engine::new(EngineConfig::from_config(&config));
        let (chunks, windows) = binary_chunks(case);
        let reference = BinaryReference::fit(&canonical_binary(&windows[..8]), CalibrationMode::On)
            .expect("reference fits");
        let nannyml = case["results"]["on"]["chunks"].as_array().expect("chunks");
        let mut estimated = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            let records = apply(&mut engine, &decoder, chunk);
            assert_eq!(records.len(), 1, "one record per window");
            let record = &records[0];
            if i < 8 {
                assert!(record.estimated.is_none(), "reference window {i}");
                continue;
            }
            let got = record.estimated.as_ref().expect("an estimate");
            assert_eq!(
                got.reference,
                EstimationReferenceOut {
                    windows: 8,
                    pairs: 4000
                }
            );
            let want = reference.estimate(&windows[i]).expect("estimates");
            assert_same(got, &want, true);
            // NannyML's numbers for the same chunk (calibration forced on).
            let chunk = &nannyml[i];
            assert_eq!(chunk["window"].as_i64(), Some(chunk_window(i)));
            for (name, m) in [
                ("accuracy", &got.metrics.accuracy),
                ("precision", &got.metrics.precision),
                ("recall", &got.metrics.recall),
                ("f1", &got.metrics.f1),
                ("roc_auc", &got.metrics.roc_auc),
            ] {
                let w = &chunk["metrics"][name];
                for (field, v, key) in [
                    ("value", m.value, "value"),
                    ("sampling_error", m.sampling_error, "sampling_error"),
                    ("lower", m.lower, "lower_confidence_boundary"),
                    ("upper", m.upper, "upper_confidence_boundary"),
                    ("threshold_lower", m.threshold_lower, "lower_threshold"),
                    ("threshold_upper", m.threshold_upper, "upper_threshold"),
                ] {
                    assert!(
                        close(v, &w[key]),
                        "window {i} {name}.{field}: {v:?} vs {}",
                        w[key]
                    );
                }
                assert_eq!(Some(m.alert), w["alert"].as_bool(), "{name}.alert");
            }
            estimated += 1;
        }
        assert_eq!(estimated, 8);
    }

    /// Reference windows in the engine's canonical row order (`ReferenceRow::canonical_cmp`).
    fn canonical_binary(windows: &[Vec<BinaryRow>]) -> Vec<Vec<BinaryRow>> {
        windows
            .iter()
            .map(|w| {
                let mut w = w.clone();
                w.sort_by(|a, b| {
                    a.score
                        .total_cmp(&b.score)
                        .then(a.y_pred.cmp(&b.y_pred))
                        .then(a.y_true.cmp(&b.y_true))
                });
                w
            })
            .collect()
    }

    fn chunk_window(i: usize) -> i64 {
        i as i64
    }

    #[test]
    fn a_restored_engine_continues_identically() {
        let golden = golden();
        let case = &golden["cases"]["binary_concept_drift"];
        let config = config("binary", "method = \"cbpe\"\nreference_size = 2000\n");
        let decoder = Decoder::new(&config);
        let (chunks, _) = binary_chunks(case);
        let mut engine = Engine::new(EngineConfig::from_config(&config));
        let mut straight = Vec::new();
        for chunk in &chunks {
            straight.extend(apply(&mut engine, &decoder, chunk));
        }
        straight.extend(engine.finish());
        // Snapshot at every chunk boundary once, restore, continue.
        for cut in [2, 5, 9] {
            let mut first = Engine::new(EngineConfig::from_config(&config));
            let mut records = Vec::new();
            for chunk in &chunks[..cut] {
                records.extend(apply(&mut first, &decoder, chunk));
            }
            let bytes = bincode::serialize(&first).expect("encodes");
            let mut restored: Engine = bincode::deserialize(&bytes).expect("decodes");
            for chunk in &chunks[cut..] {
                records.extend(apply(&mut restored, &decoder, chunk));
            }
            records.extend(restored.finish());
            assert_eq!(records, straight, "cut at {cut}");
        }
        // The reference took whole windows until 2000 pairs: 4 windows of 500.
        let first = straight.iter().find_map(|r| r.estimated.as_ref());
        assert_eq!(
            first.map(|e| e.reference),
            Some(EstimationReferenceOut {
                windows: 4,
                pairs: 2000
            })
        );
    }

    #[test]
    fn multiclass_engine_estimates_equal_the_estimator() {
        let golden = golden();
        let case = &golden["cases"]["multiclass_4"];
        let config = config("multiclass", "method = \"cbpe\"\nreference_size = 4000\n");
        let decoder = Decoder::new(&config);
        let mut engine = Engine::new(EngineConfig::from_config(&config));
        let mut classes: Vec<String> = case["reference"]["scores"]
            .as_object()
            .expect("scores")
            .keys()
            .cloned()
            .collect();
        classes.sort();
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut windows: Vec<Vec<MulticlassRow>> = Vec::new();
        for (period, labelled) in [("reference", true), ("analysis", false)] {
            let p = &case[period];
            let n = p["y_pred"].as_array().expect("rows").len();
            for i in 0..n {
                let window = p["window"][i].as_i64().expect("window");
                if chunks.last().is_none_or(|c| c.window != window) {
                    chunks.push(Chunk {
                        window,
                        predictions: Vec::new(),
                        outcomes: Vec::new(),
                    });
                    windows.push(Vec::new());
                }
                let id = format!("{period}-{i}");
                let ts = p["ts_ms"][i].as_i64().expect("ts");
                let scores: serde_json::Map<String, Value> = classes
                    .iter()
                    .map(|c| (c.clone(), p["scores"][c][i].clone()))
                    .collect();
                let chunk = chunks.last_mut().expect("a chunk");
                chunk.predictions.push(json!({
                    "id": id, "model": "m", "timestamp": ts,
                    "prediction": p["y_pred"][i], "score": scores,
                }));
                if labelled {
                    chunk
                        .outcomes
                        .push(json!({ "id": id, "timestamp": ts, "actual": p["y_true"][i] }));
                }
                let index = |v: &Value| classes.iter().position(|c| Some(c.as_str()) == v.as_str());
                windows.last_mut().expect("a window").push(MulticlassRow {
                    scores: classes
                        .iter()
                        .map(|c| p["scores"][c][i].as_f64().expect("score"))
                        .collect(),
                    y_pred: index(&p["y_pred"][i]),
                    y_true: if labelled {
                        index(&p["y_true"][i])
                    } else {
                        None
                    },
                });
            }
        }
        let canonical: Vec<Vec<MulticlassRow>> = windows[..8]
            .iter()
            .map(|w| {
                let mut w = w.clone();
                w.sort_by(|a, b| {
                    a.scores
                        .iter()
                        .zip(&b.scores)
                        .map(|(x, y)| x.total_cmp(y))
                        .find(|o| o.is_ne())
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(a.y_pred.cmp(&b.y_pred))
                        .then(a.y_true.cmp(&b.y_true))
                });
                w
            })
            .collect();
        let reference = MulticlassReference::fit(&classes, &canonical, CalibrationMode::Auto)
            .expect("reference fits");
        let calibrated = reference.calibrators().iter().any(|c| c.is_isotonic());
        let mut estimated = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            let records = apply(&mut engine, &decoder, chunk);
            let got = records.iter().find_map(|r| r.estimated.as_ref());
            if i < 8 {
                assert!(got.is_none());
                continue;
            }
            let want = reference.estimate(&windows[i]).expect("estimates");
            assert_same(got.expect("an estimate"), &want, calibrated);
            estimated += 1;
        }
        assert_eq!(estimated, 8);
    }

    #[test]
    fn a_failed_fit_gives_no_estimates() {
        // Scores name a class ("c") that is never an actual in the reference.
        let config = config("multiclass", "method = \"cbpe\"\nreference_size = 2\n");
        let decoder = Decoder::new(&config);
        let mut engine = Engine::new(EngineConfig::from_config(&config));
        let mut records = Vec::new();
        for w in 0..3 {
            let mut chunk = Chunk {
                window: w,
                predictions: Vec::new(),
                outcomes: Vec::new(),
            };
            for i in 0..4 {
                let id = format!("{w}-{i}");
                let ts = T0 + w * MINUTE + i * 1000;
                let actual = if i % 2 == 0 { "a" } else { "b" };
                chunk.predictions.push(json!({
                    "id": id, "model": "m", "timestamp": ts, "prediction": actual,
                    "score": { "a": 0.5, "b": 0.3, "c": 0.2 },
                }));
                chunk
                    .outcomes
                    .push(json!({ "id": id, "timestamp": ts, "actual": actual }));
            }
            records.extend(apply(&mut engine, &decoder, &chunk));
        }
        records.extend(engine.finish());
        assert!(records.iter().all(|r| r.estimated.is_none()));
        let failure = engine.estimation.failure(0, 0).expect("failed").to_string();
        assert!(failure.contains("\"c\""), "{failure}");
        // Reported once, by name.
        let reported = engine.take_estimation_failures();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert_eq!(reported[0].model, "m");
        assert_eq!(reported[0].error, failure);
        assert!(engine.take_estimation_failures().is_empty());
    }

    /// A binary stream whose labels arrive one window after their predictions, one in
    /// five never: every window with an estimate gets one estimation check, when its last
    /// prediction is joined or expired, equal to the estimator on the same rows and labels.
    #[test]
    fn estimation_checks_equal_the_estimator_on_the_same_rows() {
        for attribute_to in ["outcome", "prediction"] {
            let config = Config::from_toml_for_tests(&format!(
                "[join]\nmax_label_delay = \"2m\"\n[window]\nsize = \"1m\"\n\
                 attribute_to = \"{attribute_to}\"\n\
                 [[models]]\nname = \"m\"\ntask = \"binary\"\npositive_class = \"1\"\n\
                 [models.drift]\nenabled = false\n[models.estimation]\nmethod = \"cbpe\"\n\
                 calibration = \"isotonic\"\nreference_size = 200\n"
            ))
            .expect("test config");
            let decoder = Decoder::new(&config);
            let mut engine = Engine::new(EngineConfig::from_config(&config));
            let mut seed = 7_u64;
            let mut uniform = move || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 11) as f64 / (1u64 << 53) as f64
            };
            let windows = 10;
            // rows[w]: the window's rows, with the label when one is sent.
            let mut rows: Vec<Vec<BinaryRow>> = Vec::new();
            let mut chunks: Vec<Chunk> = (0..=windows + 3)
                .map(|w| Chunk {
                    window: w,
                    predictions: Vec::new(),
                    outcomes: Vec::new(),
                })
                .collect();
            for w in 0..windows {
                let mut window = Vec::new();
                for i in 0..100 {
                    let ts = T0 + w * MINUTE + i * 500;
                    let score = uniform();
                    // Later windows drift: the scores overstate the positives.
                    let p_true = if w >= 6 { score * 0.6 } else { score };
                    let y_true = uniform() < p_true;
                    let y_pred = score >= 0.5;
                    let id = format!("{w}-{i}");
                    chunks[w as usize].predictions.push(json!({
                        "id": id, "model": "m", "timestamp": ts,
                        "prediction": if y_pred { "1" } else { "0" }, "score": score,
                    }));
                    let labelled = i % 5 != 4;
                    if labelled {
                        // One window later, 60 s after the prediction.
                        chunks[w as usize + 1].outcomes.push(json!({
                            "id": id, "timestamp": ts + MINUTE,
                            "actual": if y_true { "1" } else { "0" },
                        }));
                    }
                    window.push(BinaryRow {
                        score,
                        y_pred,
                        y_true: labelled.then_some(y_true),
                    });
                }
                rows.push(window);
            }
            // The reference: whole windows of 80 pairs until 200 pairs.
            let labelled: Vec<Vec<BinaryRow>> = rows[..3]
                .iter()
                .map(|w| w.iter().filter(|r| r.y_true.is_some()).copied().collect())
                .collect();
            let reference = BinaryReference::fit(&canonical_binary(&labelled), CalibrationMode::On)
                .expect("reference fits");
            let mut checks = Vec::new();
            let mut estimated = Vec::new();
            for chunk in &chunks {
                let records = apply(&mut engine, &decoder, chunk);
                let watermark = engine.watermark();
                for check in engine.take_estimation_checks() {
                    // Due once every prediction is joined or expired, not before.
                    let due = check.window.end + 2 * MINUTE;
                    assert!(watermark >= due && watermark < due + MINUTE, "{check:?}");
                    checks.push(check);
                }
                estimated.extend(
                    records
                        .into_iter()
                        .filter_map(|r| Some((r.window, r.estimated?))),
                );
            }
            engine.finish();
            checks.extend(engine.take_estimation_checks());
            assert!(estimated.len() >= 4, "{attribute_to}: {}", estimated.len());
            assert_eq!(
                checks.len(),
                estimated.len(),
                "{attribute_to}: one per estimate"
            );
            for (check, (bounds, e)) in checks.iter().zip(&estimated) {
                assert_eq!(check.window, *bounds);
                let w = ((bounds.start - T0) / MINUTE) as usize;
                let want = reference.estimate(&rows[w]).expect("estimates");
                assert_eq!(
                    check,
                    &crate::output::EstimationCheck::new("m", None, *bounds, &want),
                    "{attribute_to} window {w}"
                );
                assert_eq!((check.n, check.labeled, check.unlabeled), (100, 80, 20));
                assert_eq!(e.n, check.n);
                assert_eq!(e.metrics.accuracy.value, check.metrics.accuracy.estimated);
                assert_eq!(e.metrics.f1.lower, check.metrics.f1.lower);
                let acc = &check.metrics.accuracy;
                let realized = want.get(crate::estimation::Metric::Accuracy).realized;
                assert_eq!(acc.realized, Some(realized));
                assert_eq!(acc.error, Some(acc.estimated.unwrap() - realized));
                assert_eq!(
                    acc.within_band,
                    Some(acc.lower.unwrap() <= realized && realized <= acc.upper.unwrap())
                );
                // At close the record's realized values count the labels joined by then:
                // all of them with "prediction", none yet with "outcome" here.
                let at_close = e.metrics.accuracy.realized;
                match attribute_to {
                    "prediction" => assert_eq!(at_close, Some(realized)),
                    _ => assert_eq!(at_close, None),
                }
            }
            // The drifted windows: realized accuracy falls, the estimate does not see it.
            let drifted = checks.iter().filter(|c| c.window.start >= T0 + 6 * MINUTE);
            let errors: Vec<f64> = drifted.filter_map(|c| c.metrics.accuracy.error).collect();
            assert!(
                !errors.is_empty() && errors.iter().all(|&e| e > 0.0),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn regression_models_cannot_estimate() {
        let err = Config::from_toml_for_tests(
            "[[models]]\nname = \"p\"\ntask = \"regression\"\n[models.estimation]\nmethod = \"cbpe\"\n",
        )
        .expect_err("regression");
        assert!(err.to_string().contains("models[0].estimation"), "{err}");
    }

    #[test]
    fn auc_sample_defaults_and_is_validated_under_its_key() {
        let spec = |c: &Config| EstimationSpec::from_config(&c.models[0]).expect("estimates");
        let c = config("binary", "method = \"cbpe\"\n");
        assert_eq!(
            spec(&c).auc_sample,
            crate::settings::DEFAULT_ESTIMATION_AUC_SAMPLE
        );
        let c = config("binary", "method = \"cbpe\"\nauc_sample = 2500\n");
        assert_eq!(spec(&c).auc_sample, 2500);
        let err = Config::from_toml_for_tests(
            "[[models]]\nname = \"m\"\ntask = \"binary\"\npositive_class = \"1\"\n\
             [models.estimation]\nmethod = \"cbpe\"\nauc_sample = 99\n",
        )
        .expect_err("too small");
        assert!(
            err.to_string().contains("models[0].estimation.auc_sample"),
            "{err}"
        );
    }
}
