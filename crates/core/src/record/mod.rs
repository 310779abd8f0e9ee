//! Predictions and outcomes, and their decoding from JSON with configurable field paths.
//!
//! Decoding walks the JSON once and keeps only the configured fields, borrowing strings from
//! the input where it can (no `serde_json::Value` tree): it is on the hot path of every
//! record. Labels are reduced to their canonical string form here, so that `1`, `1.0` and
//! `"1"` are one class everywhere downstream.

pub mod json_reader;

use std::borrow::Cow;
use std::fmt;

use crate::record::json_reader::{Invalid, JsonReader, KeyText, Number};
use crate::settings::{Config, Task};
use crate::short_bytes;

/// Index of a configured model (its position in `[[models]]`).
pub type ModelId = u16;

/// A decoded prediction. Strings borrow from the input where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction<'a> {
    pub id: Cow<'a, str>,
    pub model: ModelId,
    pub model_version: Option<Cow<'a, str>>,
    pub ts: i64,
    pub predicted: Target<'a>,
    pub score: Option<Score<'a>>,
    /// Only the features the model lists, in the order found: (index in the model's
    /// `features`, value).
    pub features: Vec<(usize, FeatureValue<'a>)>,
    /// Only the segment dimensions the model lists: (dimension index, canonical value).
    pub segment: Vec<(usize, Cow<'a, str>)>,
}

/// A decoded outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'a> {
    pub id: Cow<'a, str>,
    /// `None`: the outcome is for every model that predicted this id.
    pub model: Option<ModelId>,
    pub ts: i64,
    pub actual: Actual<'a>,
}

/// Which input a record came from: the predictions topic (file) or the outcomes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Predictions,
    Outcomes,
}

/// A decoded record of either input.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    Prediction(Prediction<'a>),
    Outcome(Outcome<'a>),
}

impl Record<'_> {
    /// The record's event time.
    pub fn ts(&self) -> i64 {
        match self {
            Record::Prediction(p) => p.ts,
            Record::Outcome(o) => o.ts,
        }
    }

    /// The record's join id.
    pub fn id(&self) -> &str {
        match self {
            Record::Prediction(p) => &p.id,
            Record::Outcome(o) => &o.id,
        }
    }

    /// The model the record names (`None`: an outcome for every model).
    pub fn model(&self) -> Option<ModelId> {
        match self {
            Record::Prediction(p) => Some(p.model),
            Record::Outcome(o) => o.model,
        }
    }
}

/// How many records the service and the core bench decode before any of them reaches the
/// engine (`replay` decodes its whole files first). Decoding a run of records, then joining
/// and aggregating them, keeps each half's hot code in a 32 KiB instruction cache, which
/// the two together overflow when they alternate record by record (BENCHMARKS.md, "Seventh
/// session"). Decoding is pure, so the order of effects is the same as one record at a time.
pub const DECODE_BATCH: usize = 64;

/// A predicted label (classification) or value (regression).
#[derive(Debug, Clone, PartialEq)]
pub enum Target<'a> {
    Class(Cow<'a, str>),
    Value(f64),
}

/// An observed outcome. Without a model its task is unknown, so both forms are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Actual<'a> {
    /// Canonical label form.
    pub label: Cow<'a, str>,
    /// The value as a finite number, when it is one.
    pub value: Option<f64>,
}

/// A model's confidence.
#[derive(Debug, Clone, PartialEq)]
pub enum Score<'a> {
    /// Probability of the positive class (binary models).
    Positive(f64),
    /// Probability per class label.
    PerClass(Vec<(Cow<'a, str>, f64)>),
}

/// One feature value.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue<'a> {
    Number(f64),
    Category(Cow<'a, str>),
}

/// Why a record was rejected. `model` is set when the record named a configured model, so
/// that the rejection can be counted against it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub model: Option<ModelId>,
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// What the transport knows about a record besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Envelope<'a> {
    /// The Kafka message key: the join id when the record has none.
    pub key: Option<&'a [u8]>,
    /// The Kafka message timestamp: the event time when the record has none.
    pub timestamp_ms: Option<i64>,
}

/// Compiled decoding instructions: field paths and the models' names and tasks.
#[derive(Debug, Clone)]
pub struct Decoder {
    prediction_paths: PathTree,
    outcome_paths: PathTree,
    models: Vec<ModelSchema>,
    /// The object-valued prediction fields and the keys of theirs some model uses (the
    /// union over the models: the record's model may come after them). Other keys' values
    /// are skipped, not materialized.
    kept_keys: Vec<(usize, Vec<FieldName>)>,
}

#[derive(Debug, Clone)]
struct ModelSchema {
    name: String,
    task: Task,
    positive_class: Option<String>,
    /// For each kept feature key (index in `kept_keys`' features list), its index in this
    /// model's `features`, if the model lists it.
    feature_of_kept: Vec<Option<usize>>,
    /// The same for segment dimensions.
    segment_of_kept: Vec<Option<usize>>,
}

// Slots of the prediction fields.
const P_ID: usize = 0;
const P_MODEL: usize = 1;
const P_VERSION: usize = 2;
const P_TS: usize = 3;
const P_PREDICTION: usize = 4;
const P_SCORE: usize = 5;
const P_FEATURES: usize = 6;
const P_SEGMENT: usize = 7;
const P_SLOTS: usize = 8;
// Slots of the outcome fields.
const O_ID: usize = 0;
const O_MODEL: usize = 1;
const O_TS: usize = 2;
const O_ACTUAL: usize = 3;
const O_SLOTS: usize = 4;

impl Decoder {
    pub fn new(config: &Config) -> Decoder {
        let p = &config.fields.prediction;
        let o = &config.fields.outcome;
        let kept_features = union(config.models.iter().map(|m| &m.features));
        let kept_segments = union(config.models.iter().map(|m| &m.segments));
        let index_in = |kept: &[String], listed: &[String]| -> Vec<Option<usize>> {
            kept.iter()
                .map(|k| listed.iter().position(|l| l == k))
                .collect()
        };
        Decoder {
            prediction_paths: PathTree::new(&[
                (&p.id, P_ID),
                (&p.model, P_MODEL),
                (&p.model_version, P_VERSION),
                (&p.timestamp, P_TS),
                (&p.prediction, P_PREDICTION),
                (&p.score, P_SCORE),
                (&p.features, P_FEATURES),
                (&p.segment, P_SEGMENT),
            ]),
            outcome_paths: PathTree::new(&[
                (&o.id, O_ID),
                (&o.model, O_MODEL),
                (&o.timestamp, O_TS),
                (&o.actual, O_ACTUAL),
            ]),
            models: config
                .models
                .iter()
                .map(|m| ModelSchema {
                    name: m.name.clone(),
                    task: m.task,
                    positive_class: m.positive_class.clone(),
                    feature_of_kept: index_in(&kept_features, &m.features),
                    segment_of_kept: index_in(&kept_segments, &m.segments),
                })
                .collect(),
            kept_keys: vec![
                (
                    P_FEATURES,
                    kept_features.iter().map(|k| FieldName::new(k)).collect(),
                ),
                (
                    P_SEGMENT,
                    kept_segments.iter().map(|k| FieldName::new(k)).collect(),
                ),
            ],
        }
    }

    /// The positive class of a binary model.
    pub(crate) fn model_positive_class(&self, model: ModelId) -> Option<&str> {
        self.models
            .get(model as usize)
            .and_then(|m| m.positive_class.as_deref())
    }

    fn model_id(&self, name: &str) -> Option<ModelId> {
        self.models
            .iter()
            .position(|m| m.name == name)
            .and_then(|i| ModelId::try_from(i).ok())
    }

    /// Decodes one record of `input`.
    #[inline]
    pub fn decode<'a>(
        &self,
        input: Input,
        bytes: &'a [u8],
        envelope: Envelope<'a>,
    ) -> Result<Record<'a>, DecodeError> {
        match input {
            Input::Predictions => self.prediction(bytes, envelope).map(Record::Prediction),
            Input::Outcomes => self.outcome(bytes, envelope).map(Record::Outcome),
        }
    }

    /// Decodes one prediction record.
    pub fn prediction<'a>(
        &self,
        bytes: &'a [u8],
        envelope: Envelope<'a>,
    ) -> Result<Prediction<'a>, DecodeError> {
        let mut slots: [Option<Json<'a>>; P_SLOTS] = Default::default();
        extract(bytes, &self.prediction_paths, &self.kept_keys, &mut slots)?;
        let [id, model, version, ts, predicted, score, features, segment] = slots;

        let model_name = match model {
            Some(Json::Str(name)) => name,
            Some(other) => {
                return Err(no_model(format!(
                    "`model` must be a string, got {}",
                    other.kind()
                )))
            }
            None => return Err(no_model("missing field `model`".into())),
        };
        let model = self
            .model_id(&model_name)
            .ok_or_else(|| no_model(format!("unknown model `{model_name}`")))?;
        let schema = &self.models[model as usize];
        let fail = |reason: String| DecodeError {
            model: Some(model),
            reason,
        };

        let id = join_id(id, envelope.key, "id").map_err(fail)?;
        let model_version = match version {
            None | Some(Json::Null) => None,
            Some(Json::Str(v)) => Some(v),
            Some(Json::Int(i)) => Some(Cow::Owned(i.to_string())),
            Some(Json::UInt(u)) => Some(Cow::Owned(u.to_string())),
            Some(other) => {
                return Err(fail(format!(
                    "`model_version` must be a string, got {}",
                    other.kind()
                )))
            }
        };
        let ts = event_time(ts, envelope.timestamp_ms).map_err(fail)?;
        let predicted = match predicted {
            None => return Err(fail("missing field `prediction`".into())),
            Some(value) => target(value, schema.task, "prediction").map_err(fail)?,
        };
        let score = match score {
            None | Some(Json::Null) => None,
            Some(value) => Some(decode_score(value, schema.task).map_err(fail)?),
        };
        let features = match features {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Selected(entries)) => entries
                .into_iter()
                .filter_map(|(kept, value)| {
                    let index = schema.feature_of_kept.get(kept).copied().flatten()?;
                    let value = match value {
                        Json::Int(i) => FeatureValue::Number(i as f64),
                        Json::UInt(u) => FeatureValue::Number(u as f64),
                        Json::Float(f) if f.is_finite() => FeatureValue::Number(f),
                        Json::Str(s) => FeatureValue::Category(s),
                        Json::Bool(b) => FeatureValue::Category(Cow::Borrowed(bool_label(b))),
                        // null, non-finite, arrays, objects: the feature is missing here.
                        _ => return None,
                    };
                    Some((index, value))
                })
                .collect(),
            Some(other) => {
                return Err(fail(format!(
                    "`features` must be an object, got {}",
                    other.kind()
                )))
            }
        };
        let segment = match segment {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Selected(entries)) => entries
                .into_iter()
                .filter_map(|(kept, value)| {
                    let dim = schema.segment_of_kept.get(kept).copied().flatten()?;
                    canonical_label(value).ok().map(|v| (dim, v))
                })
                .collect(),
            Some(other) => {
                return Err(fail(format!(
                    "`segment` must be an object, got {}",
                    other.kind()
                )))
            }
        };
        Ok(Prediction {
            id,
            model,
            model_version,
            ts,
            predicted,
            score,
            features,
            segment,
        })
    }

    /// Decodes one outcome record.
    pub fn outcome<'a>(
        &self,
        bytes: &'a [u8],
        envelope: Envelope<'a>,
    ) -> Result<Outcome<'a>, DecodeError> {
        let mut slots: [Option<Json<'a>>; O_SLOTS] = Default::default();
        extract(bytes, &self.outcome_paths, &[], &mut slots)?;
        let [id, model, ts, actual] = slots;
        let model = match model {
            None | Some(Json::Null) => None,
            Some(Json::Str(name)) => Some(
                self.model_id(&name)
                    .ok_or_else(|| no_model(format!("unknown model `{name}`")))?,
            ),
            Some(other) => {
                return Err(no_model(format!(
                    "`model` must be a string, got {}",
                    other.kind()
                )))
            }
        };
        let fail = |reason: String| DecodeError { model, reason };
        let id = join_id(id, envelope.key, "id").map_err(fail)?;
        let ts = event_time(ts, envelope.timestamp_ms).map_err(fail)?;
        let actual = match actual {
            None => return Err(fail("missing field `actual`".into())),
            Some(value) => {
                let value_num = number_of(&value);
                let label = canonical_label(value).map_err(|e| fail(format!("`actual`: {e}")))?;
                let actual = Actual {
                    label,
                    value: value_num,
                };
                if let Some(m) = model {
                    if self.models[m as usize].task == Task::Regression && actual.value.is_none() {
                        return Err(fail(format!(
                            "`actual` must be a finite number for regression model `{}`",
                            self.models[m as usize].name
                        )));
                    }
                }
                actual
            }
        };
        Ok(Outcome {
            id,
            model,
            ts,
            actual,
        })
    }
}

/// The distinct names in some lists, in first-seen order.
fn union<'c>(lists: impl Iterator<Item = &'c Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for name in lists.flatten() {
        if !all.contains(name) {
            all.push(name.clone());
        }
    }
    all
}

fn no_model(reason: String) -> DecodeError {
    DecodeError {
        model: None,
        reason,
    }
}

fn join_id<'a>(
    value: Option<Json<'a>>,
    key: Option<&'a [u8]>,
    field: &str,
) -> Result<Cow<'a, str>, String> {
    match value {
        Some(Json::Str(s)) if !s.is_empty() => Ok(s),
        Some(Json::Int(i)) => Ok(Cow::Owned(i.to_string())),
        Some(Json::UInt(u)) => Ok(Cow::Owned(u.to_string())),
        Some(Json::Null) | None => match key {
            Some(bytes) if !bytes.is_empty() => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|_| format!("missing field `{field}` and the message key is not UTF-8")),
            _ => Err(format!("missing field `{field}` (and no message key)")),
        },
        Some(other) => Err(format!(
            "`{field}` must be a non-empty string or an integer, got {}",
            other.kind()
        )),
    }
}

/// The largest accepted event time (year 9999) and the smallest (year 1): outside this
/// range a timestamp is surely an error, and windows could not be printed as RFC 3339.
const MAX_TS: i64 = 253_402_300_799_999;
const MIN_TS: i64 = -62_135_596_800_000;

fn event_time(value: Option<Json<'_>>, fallback: Option<i64>) -> Result<i64, String> {
    let ms = match value {
        Some(Json::Int(i)) => i,
        Some(Json::UInt(u)) => {
            i64::try_from(u).map_err(|_| format!("`timestamp` {u} is out of range"))?
        }
        Some(Json::Float(f)) if f.is_finite() && f.abs() < 9.0e15 => f.trunc() as i64,
        Some(Json::Str(s)) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| format!("`timestamp` `{s}` is not RFC 3339 ({e})"))?,
        Some(Json::Null) | None => fallback
            .ok_or_else(|| "missing field `timestamp` (and no message timestamp)".to_string())?,
        Some(other) => {
            return Err(format!(
                "`timestamp` must be epoch milliseconds or an RFC 3339 string, got {}",
                other.kind()
            ))
        }
    };
    if !(MIN_TS..=MAX_TS).contains(&ms) {
        return Err(format!("`timestamp` {ms} is outside years 1..9999"));
    }
    Ok(ms)
}

fn target<'a>(value: Json<'a>, task: Task, field: &str) -> Result<Target<'a>, String> {
    match task {
        Task::Regression => number_of(&value)
            .map(Target::Value)
            .ok_or_else(|| format!("`{field}` must be a finite number for a regression model")),
        Task::Binary | Task::Multiclass => canonical_label(value)
            .map(Target::Class)
            .map_err(|e| format!("`{field}`: {e}")),
    }
}

fn decode_score(value: Json<'_>, task: Task) -> Result<Score<'_>, String> {
    let probability =
        |v: &Json<'_>| -> Option<f64> { number_of(v).filter(|p| (0.0..=1.0).contains(p)) };
    match (value, task) {
        (Json::Object(entries), Task::Binary | Task::Multiclass) => {
            let mut per_class = Vec::with_capacity(entries.len());
            for (class, v) in entries {
                let p = probability(&v)
                    .ok_or_else(|| format!("`score.{class}` must be a probability in [0, 1]"))?;
                per_class.push((class, p));
            }
            Ok(Score::PerClass(per_class))
        }
        (value, Task::Binary) => probability(&value).map(Score::Positive).ok_or_else(|| {
            "`score` must be a probability in [0, 1] or an object class -> probability".into()
        }),
        (_, Task::Multiclass) => Err("`score` must be an object class -> probability".into()),
        (_, Task::Regression) => Err("`score` does not apply to a regression model".into()),
    }
}

fn bool_label(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The canonical string form of a label (see docs/semantics.md).
pub(crate) fn canonical_label(value: Json<'_>) -> Result<Cow<'_, str>, String> {
    /// The commonest integer labels, without an allocation.
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match value {
        Json::Str(s) => Ok(s),
        Json::Int(i) if (0..10).contains(&i) => Ok(Cow::Borrowed(SMALL[i as usize])),
        Json::Int(i) => Ok(Cow::Owned(i.to_string())),
        Json::UInt(u) => Ok(Cow::Owned(u.to_string())),
        Json::Bool(b) => Ok(Cow::Borrowed(bool_label(b))),
        Json::Float(f) if f.is_finite() => {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Ok(Cow::Owned((f as i64).to_string()))
            } else {
                Ok(Cow::Owned(f.to_string()))
            }
        }
        other => Err(format!(
            "a label must be a string, integer, finite number or boolean, got {}",
            other.kind()
        )),
    }
}

fn number_of(value: &Json<'_>) -> Option<f64> {
    match value {
        Json::Int(i) => Some(*i as f64),
        Json::UInt(u) => Some(*u as f64),
        Json::Float(f) if f.is_finite() => Some(*f),
        Json::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// The part of a JSON value decoding needs: scalars, and objects one level deep.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
    /// An object of which only the keys of a keep list were read: (index in that list,
    /// value).
    Selected(Vec<(usize, Json<'a>)>),
    Array,
}

impl Json<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Int(_) | Json::UInt(_) | Json::Float(_) => "a number",
            Json::Str(_) => "a string",
            Json::Object(_) | Json::Selected(_) => "an object",
            Json::Array => "an array",
        }
    }
}

/// An object key the decoder looks for, and its compact text (see [`next_known_key`]).
#[derive(Debug, Clone)]
struct FieldName {
    name: String,
    text: Option<KeyText>,
}

impl FieldName {
    fn new(name: &str) -> FieldName {
        FieldName {
            name: name.to_string(),
            text: KeyText::new(name),
        }
    }
}

/// Which of `names` is the object's next key, when it is written compactly: tried at the
/// raw text ([`JsonReader::next_key_is`]), without reading the key as a string and
/// comparing it with each name. Only `likely` (the name after the previous key's: records
/// keep their fields in one order) and the one after it (for an absent field) are tried;
/// `None` leaves the key to [`JsonReader::next_key`], which reads any key (see
/// [`next_field`]).
#[inline]
fn next_known_key(
    reader: &mut JsonReader<'_>,
    first: &mut bool,
    names: &[FieldName],
    likely: usize,
) -> Option<usize> {
    (likely..names.len().min(likely + 2)).find(|&i| {
        names[i]
            .text
            .as_ref()
            .is_some_and(|text| reader.next_key_is(first, text))
    })
}

/// The next key of the object that is one of `names` (its position in them), the values
/// of the others passed over; `None` after the closing `}`. Tried at the compact text
/// first ([`next_known_key`], `likely` as there), else read as a string. Inlined into
/// its two loops: as a call it costs ~240 instructions per event more.
#[inline(always)]
fn next_field(
    reader: &mut JsonReader<'_>,
    first: &mut bool,
    names: &[FieldName],
    likely: usize,
) -> Result<Option<usize>, Invalid> {
    loop {
        if let Some(i) = next_known_key(reader, first, names, likely) {
            return Ok(Some(i));
        }
        let Some(key) = reader.next_key(first)? else {
            return Ok(None);
        };
        match names
            .iter()
            .position(|n| short_bytes::equal(n.name.as_bytes(), key.as_bytes()))
        {
            Some(i) => return Ok(Some(i)),
            None => reader.skip_value()?,
        }
    }
}

/// The configured field paths as a tree of object keys; leaves are slot numbers.
#[derive(Debug, Clone, Default)]
struct PathTree {
    names: Vec<FieldName>,
    nodes: Vec<PathNode>,
}

#[derive(Debug, Clone)]
enum PathNode {
    Leaf(usize),
    Branch(PathTree),
}

impl PathTree {
    fn new(paths: &[(&String, usize)]) -> PathTree {
        let mut tree = PathTree::default();
        for (path, slot) in paths {
            tree.insert(&path.split('.').collect::<Vec<_>>(), *slot);
        }
        tree
    }

    /// A path that is a prefix of another (`a` and `a.b`) keeps the leaf: the shorter path wins.
    fn insert(&mut self, parts: &[&str], slot: usize) {
        let Some((first, rest)) = parts.split_first() else {
            return;
        };
        let index = match self.names.iter().position(|n| n.name == *first) {
            Some(i) => i,
            None => {
                let node = if rest.is_empty() {
                    PathNode::Leaf(slot)
                } else {
                    PathNode::Branch(PathTree::default())
                };
                self.names.push(FieldName::new(first));
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        if let PathNode::Branch(child) = &mut self.nodes[index] {
            if rest.is_empty() {
                self.nodes[index] = PathNode::Leaf(slot);
            } else {
                child.insert(rest, slot);
            }
        }
    }
}

/// Fills `slots` with the values at the configured paths; the rest of the record is skipped.
/// `kept_keys` lists, for the object-valued slots, the keys to keep (the others are skipped).
fn extract<'a>(
    bytes: &'a [u8],
    tree: &PathTree,
    kept_keys: &[(usize, Vec<FieldName>)],
    slots: &mut [Option<Json<'a>>],
) -> Result<(), DecodeError> {
    // One validation of the whole record; the reader then slices strings without another.
    let text = std::str::from_utf8(bytes).map_err(|e| {
        no_model(format!(
            "invalid JSON: not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let mut reader = JsonReader::new(text);
    extract_object(&mut reader, tree, kept_keys, slots)
        .and_then(|()| reader.end())
        .map_err(|Invalid| no_model(format!("invalid JSON: {}", reader.syntax_error())))
}

/// The values at `tree`'s paths in the value at the reader. A value that is not an object
/// has none of them (it is checked and skipped).
fn extract_object<'a>(
    reader: &mut JsonReader<'a>,
    tree: &PathTree,
    kept_keys: &[(usize, Vec<FieldName>)],
    slots: &mut [Option<Json<'a>>],
) -> Result<(), Invalid> {
    if reader.peek() != Some(b'{') {
        return reader.skip_value();
    }
    reader.begin_object()?;
    let mut first = true;
    let mut likely = 0;
    while let Some(found) = next_field(reader, &mut first, &tree.names, likely)? {
        likely = found + 1;
        match &tree.nodes[found] {
            PathNode::Leaf(slot) => {
                let keep = kept_keys
                    .iter()
                    .find(|(s, _)| s == slot)
                    .map(|(_, keys)| keys.as_slice());
                read_value(reader, keep, &mut slots[*slot])?;
            }
            PathNode::Branch(child) => extract_object(reader, child, kept_keys, slots)?,
        }
    }
    Ok(())
}

/// A field's value into `out`: scalars as they are, an object one level deep (with
/// `keep`, only those keys, by their index in it), an array as its kind only.
fn read_value<'a>(
    reader: &mut JsonReader<'a>,
    keep: Option<&[FieldName]>,
    out: &mut Option<Json<'a>>,
) -> Result<(), Invalid> {
    if reader.peek() != Some(b'{') {
        let value = read_shallow(reader)?;
        put(out, value);
        return Ok(());
    }
    if keep.is_some_and(|keep| keep.is_empty()) {
        // No key is wanted (no model lists any): checked and passed over whole.
        reader.skip_value()?;
        put(out, Json::Selected(Vec::new()));
        return Ok(());
    }
    reader.begin_object()?;
    let mut first = true;
    match keep {
        Some(keep) => {
            let mut entries = Vec::new();
            let mut likely = 0;
            while let Some(found) = next_field(reader, &mut first, keep, likely)? {
                likely = found + 1;
                entries.push((found, read_shallow(reader)?));
            }
            put(out, Json::Selected(entries));
        }
        None => {
            let mut entries = Vec::new();
            while let Some(key) = reader.next_key(&mut first)? {
                let value = read_shallow(reader)?;
                entries.push((key, value));
            }
            put(out, Json::Object(entries));
        }
    }
    Ok(())
}

/// `*slot = Some(value)`, calling the old value's drop glue only when there is an old value
/// (a field given twice). `Json`'s drop glue is recursive, so never inlined: an assignment
/// would call it for every field, though the slot is almost always empty.
#[inline(always)]
fn put<'a>(slot: &mut Option<Json<'a>>, value: Json<'a>) {
    if let Some(old) = slot.replace(value) {
        drop(old);
    }
}

/// A value inside an object field: scalars kept, nested objects and arrays checked and
/// reduced to their kind, so that a deep input cannot make decoding allocate without bound.
#[inline(always)]
fn read_shallow<'a>(reader: &mut JsonReader<'a>) -> Result<Json<'a>, Invalid> {
    Ok(match reader.peek() {
        Some(b'"') => Json::Str(reader.string()?),
        Some(b'-' | b'0'..=b'9') => match reader.number()? {
            Number::PosInt(u) => match i64::try_from(u) {
                Ok(i) => Json::Int(i),
                Err(_) => Json::UInt(u),
            },
            Number::NegInt(i) => Json::Int(i),
            Number::Float(f) => Json::Float(f),
        },
        Some(b't') => {
            reader.literal(b"true")?;
            Json::Bool(true)
        }
        Some(b'f') => {
            reader.literal(b"false")?;
            Json::Bool(false)
        }
        Some(b'n') => {
            reader.literal(b"null")?;
            Json::Null
        }
        Some(b'{') => {
            reader.skip_value()?;
            Json::Object(Vec::new())
        }
        Some(b'[') => {
            reader.skip_value()?;
            Json::Array
        }
        // Not a value: the reader says what is wrong.
        _ => return reader.skip_value().map(|()| Json::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(extra: &str) -> Decoder {
        let config = Config::from_toml_for_tests(&format!(
            r#"{extra}
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount", "country"]
segments = ["channel"]
[[models]]
name = "price"
task = "regression"
"#
        ))
        .unwrap();
        Decoder::new(&config)
    }

    #[test]
    fn decodes_a_prediction() {
        let d = decoder("");
        let p = d
            .prediction(
                br#"{"id":"a1","model":"fraud","model_version":"3","timestamp":1700000000000,
                    "prediction":1,"score":0.9,"features":{"amount":12.5,"country":"DE","other":1},
                    "segment":{"channel":"web","x":"y"},"extra":{"deep":[1,2]}}"#,
                Envelope::default(),
            )
            .unwrap();
        assert_eq!(p.id, "a1");
        assert_eq!(p.model, 0);
        assert_eq!(p.model_version.as_deref(), Some("3"));
        assert_eq!(p.ts, 1_700_000_000_000);
        assert_eq!(p.predicted, Target::Class("1".into()));
        assert_eq!(p.score, Some(Score::Positive(0.9)));
        assert_eq!(p.features.len(), 2);
        assert_eq!(p.segment, vec![(0, Cow::Borrowed("web"))]);
    }

    /// Keys matched at their compact text and keys read as strings decode alike: in the
    /// configured order, in another, spaced out, escaped, or among unknown keys.
    #[test]
    fn known_keys_decode_alike_however_written() {
        let d = decoder("");
        let compact = br#"{"id":"a1","model":"fraud","model_version":"3","timestamp":17,"prediction":1,"score":0.5,"features":{"amount":2,"country":"DE"},"segment":{"channel":"web"}}"#;
        let expected = d.prediction(compact, Envelope::default()).unwrap();
        assert_eq!(expected.features.len(), 2);
        assert_eq!(expected.segment, vec![(0, Cow::Borrowed("web"))]);
        let variants: [&[u8]; 5] = [
            br#"{"segment":{"channel":"web"},"features":{"country":"DE","amount":2},"score":0.5,"prediction":1,"timestamp":17,"model_version":"3","model":"fraud","id":"a1"}"#,
            br#"{ "id" : "a1" , "model":"fraud" ,"model_version": "3","timestamp":17,"prediction":1,"score":0.5,"features":{ "amount":2,"country" :"DE"},"segment":{ "channel" : "web" } }"#,
            br#"{"id":"a1","model":"fraud","model_version":"3","timestamp":17,"prediction":1,"score":0.5,"features":{"amount":2,"country":"DE"},"segment":{"channel":"web"}}"#,
            br#"{"x":1,"id":"a1","y":{"id":"b"},"model":"fraud","model_version":"3","timestamp":17,"z":[1],"prediction":1,"score":0.5,"features":{"a":1,"amount":2,"country":"DE"},"segment":{"channelx":"no","channel":"web"}}"#,
            br#"{"id":"a1","model":"fraud","timestamp":17,"model_version":"3","score":0.5,"prediction":1,"segment":{"channel":"web"},"features":{"amount":2,"country":"DE"}}"#,
        ];
        for variant in variants {
            let mut p = d.prediction(variant, Envelope::default()).unwrap();
            p.features.sort_by_key(|(i, _)| *i);
            assert_eq!(p, expected, "{}", String::from_utf8_lossy(variant));
        }
        // A compact key that is only a prefix of a known one is not taken for it.
        let error = d
            .prediction(br#"{"id":"a","models":"fraud"}"#, Envelope::default())
            .unwrap_err();
        assert_eq!(error.reason, "missing field `model`");
    }

    #[test]
    fn features_and_segments_no_model_uses_are_skipped_but_checked() {
        let d = decoder("");
        fn features(d: &Decoder, json: &'static str) -> Option<Json<'static>> {
            let mut slots: [Option<Json>; P_SLOTS] = Default::default();
            extract(
                json.as_bytes(),
                &d.prediction_paths,
                &d.kept_keys,
                &mut slots,
            )
            .unwrap();
            slots[P_FEATURES].take()
        }
        // "price" lists no features; "fraud" lists amount and country: only those are kept.
        assert_eq!(
            features(
                &d,
                r#"{"features":{"other":{"deep":[1]},"amount":1,"x":"y","country":"DE"}}"#
            ),
            Some(Json::Selected(vec![
                (0, Json::Int(1)),
                (1, Json::Str("DE".into()))
            ]))
        );
        // Not an object: kept as is, so decoding can say what it is.
        assert_eq!(features(&d, r#"{"features":[1,2]}"#), Some(Json::Array));
        assert_eq!(
            features(&d, r#"{"features":"a"}"#),
            Some(Json::Str("a".into()))
        );
        let error = d
            .prediction(
                br#"{"id":"a","model":"fraud","timestamp":1,"prediction":1,"features":"a"}"#,
                Envelope::default(),
            )
            .unwrap_err();
        assert_eq!(error.reason, "`features` must be an object, got a string");
    }

    #[test]
    fn labels_are_canonical() {
        for (json, label) in [
            ("1", "1"),
            ("\"1\"", "1"),
            ("1.0", "1"),
            ("true", "true"),
            ("0.5", "0.5"),
        ] {
            let mut value = None;
            read_value(&mut JsonReader::new(json), None, &mut value).unwrap();
            let value = value.unwrap();
            assert_eq!(canonical_label(value).unwrap(), label, "{json}");
        }
    }

    #[test]
    fn timestamps_rfc3339_and_fallbacks() {
        let d = decoder("");
        let o = d
            .outcome(
                br#"{"id":"a","timestamp":"2023-11-14T22:13:20.5+01:00","actual":"1"}"#,
                Envelope::default(),
            )
            .unwrap();
        assert_eq!(o.ts, 1_699_996_400_500);
        assert_eq!(o.model, None);
        let o = d
            .outcome(
                br#"{"actual":0}"#,
                Envelope {
                    key: Some(b"k1"),
                    timestamp_ms: Some(42),
                },
            )
            .unwrap();
        assert_eq!((o.id.as_ref(), o.ts), ("k1", 42));
    }

    #[test]
    fn nested_paths() {
        let d = decoder("[fields.prediction]\ntimestamp = \"meta.ts\"\nid = \"meta.request.id\"\n");
        let p = d
            .prediction(
                br#"{"meta":{"ts":5,"request":{"id":"r9"}},"model":"price","prediction":"2.5"}"#,
                Envelope::default(),
            )
            .unwrap();
        assert_eq!(
            (p.id.as_ref(), p.ts, p.predicted),
            ("r9", 5, Target::Value(2.5))
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let d = decoder("");
        let err = |bytes: &[u8]| d.prediction(bytes, Envelope::default()).unwrap_err();
        assert!(err(b"{not json").reason.starts_with("invalid JSON"));
        assert_eq!(err(br#"{"model":"nope"}"#).reason, "unknown model `nope`");
        let e = err(br#"{"model":"fraud","id":"a","timestamp":1}"#);
        assert_eq!(
            (e.model, e.reason.as_str()),
            (Some(0), "missing field `prediction`")
        );
        let e = err(br#"{"model":"fraud","id":"a","timestamp":"yesterday","prediction":1}"#);
        assert!(e.reason.contains("RFC 3339"), "{}", e.reason);
        let e = err(br#"{"model":"fraud","id":"a","timestamp":1,"prediction":1,"score":1.5}"#);
        assert!(e.reason.contains("probability"), "{}", e.reason);
        let e = err(br#"{"model":"price","id":"a","timestamp":1,"prediction":"abc"}"#);
        assert!(e.reason.contains("finite number"), "{}", e.reason);
        assert!(err(br#"[1,2]"#).reason.contains("missing field `model`"));
        assert!(err(b"{\"model\":\"fraud\"} trailing")
            .reason
            .starts_with("invalid JSON"));
        assert_eq!(
            err(b"{\"model\":\"fr\xffaud\"}").reason,
            "invalid JSON: not UTF-8 (invalid byte at offset 12)"
        );
    }
}
