//! Loading the configuration: one TOML file, every key overridable from the environment,
//! and the files it names (drift baselines).
//!
//! Loading goes through figment (TOML, then `FEEDBACK_LOOP__SECTION__KEY` variables), serde
//! with `deny_unknown_fields` everywhere, then the schema's checks
//! ([`Config::validate`](feedback_loop_core::settings::Config::validate)) and the rules'
//! compilation against the models. Every error names the key it is about, and every
//! problem of a file is reported at once (serde's own errors too: see `extract`), so
//! `check-config` can say all that is wrong. The schema itself is the core's `settings`.

use std::path::Path;

use feedback_loop_core::alerts::{RuleError, RuleProblem, RuleSet};
use feedback_loop_core::drift::stream::Baseline;
use feedback_loop_core::engine::{decode_reference, ReferenceRow};
use feedback_loop_core::monitor::Monitor;
use feedback_loop_core::partition::{Finalizer, FinalizerError};
use feedback_loop_core::record::Decoder;
use feedback_loop_core::settings::{
    ClientValue, Config, ConfigError, EstimationReference, ReferenceConfig,
};
use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use figment::value::Value;
use figment::Figment;

/// Prefix of the environment variables that override configuration keys.
pub(crate) const ENV_PREFIX: &str = "FEEDBACK_LOOP__";

/// A validated configuration with the files it names, read and decoded.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// `reference = { file = … }` baselines: (model index, decoded file).
    pub baselines: Vec<(u16, Baseline)>,
    /// `[models.estimation]` `reference = { file = … }`: (model index, rows in windows).
    pub estimation_references: Vec<(u16, Vec<Vec<ReferenceRow>>)>,
}

impl From<Config> for LoadedConfig {
    /// A configuration that names no file (or whose files are not to be read).
    fn from(config: Config) -> Self {
        LoadedConfig {
            config,
            baselines: Vec::new(),
            estimation_references: Vec::new(),
        }
    }
}

impl LoadedConfig {
    /// A fresh core for this configuration, baselines set.
    pub fn monitor(&self) -> Result<Monitor, RuleError> {
        let mut monitor = Monitor::new(&self.config)?;
        self.set_references(&mut monitor);
        Ok(monitor)
    }

    /// A fresh finalizer of the partitioned engine over `tasks` tasks, baselines set.
    pub fn finalizer(&self, tasks: u32) -> Result<Finalizer, FinalizerError> {
        let mut finalizer = Finalizer::new(&self.config, tasks)?;
        self.set_references(finalizer.monitor_mut());
        Ok(finalizer)
    }

    fn set_references(&self, monitor: &mut Monitor) {
        for (model, baseline) in &self.baselines {
            monitor.set_baseline(*model, baseline);
        }
        for (model, windows) in &self.estimation_references {
            monitor.set_estimation_reference(*model, windows.clone());
        }
    }
}

/// Loads a TOML file, applies `FEEDBACK_LOOP__…` overrides from the process environment,
/// validates the result, and reads the baseline files it names (paths relative to the
/// file's directory). Every problem is reported at once ([`ConfigError::Several`]), each
/// naming its key.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::Parse(format!(
            "configuration file {} does not exist",
            path.display()
        )));
    }
    let figment = Figment::new()
        .merge(Toml::file(path))
        .merge(env_overrides());
    let config = extract_checked(&figment, |config| {
        for (table, property, value) in client_env_overrides(std::env::vars()) {
            let kafka = &mut config.kafka;
            let table = match table {
                ClientTable::Client => &mut kafka.client,
                ClientTable::Consumer => &mut kafka.consumer,
                ClientTable::Producer => &mut kafka.producer,
            };
            table.insert(property, value);
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let baselines = load_baselines(&config, base)?;
    let estimation_references = load_estimation_references(&config, base)?;
    Ok(LoadedConfig {
        config,
        baselines,
        estimation_references,
    })
}

/// Parses TOML text (no environment overrides, no files read): for tests and embedded
/// configurations.
pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
    extract_checked(&Figment::new().merge(Toml::string(text)), |_| {})
}

/// Extracts the configuration, completes it with `complete`, and runs every check: the
/// schema's, then the rules'. All problems together.
fn extract_checked(
    figment: &Figment,
    complete: impl FnOnce(&mut Config),
) -> Result<Config, ConfigError> {
    let (config, mut problems) = extract(figment);
    let Some(mut config) = config else {
        return Err(ConfigError::from_all(problems)
            .err()
            .unwrap_or_else(|| ConfigError::Parse("the configuration could not be read".into())));
    };
    complete(&mut config);
    // A key whose value was refused (and taken out) is reported once, not again by the
    // checks that now see its default.
    let reported: Vec<String> = problems.iter().filter_map(key_of).collect();
    problems.extend(
        check(&config)
            .into_iter()
            .filter(|p| key_of(p).is_none_or(|key| !reported.contains(&key))),
    );
    ConfigError::from_all(problems)?;
    Ok(config)
}

fn key_of(problem: &ConfigError) -> Option<String> {
    match problem {
        ConfigError::Invalid { key, .. } => Some(key.clone()),
        _ => None,
    }
}

/// The schema's checks, then the rules' (their metric paths, models, segments).
fn check(config: &Config) -> Vec<ConfigError> {
    let mut problems = config.problems();
    problems.extend(rule_problems(config));
    problems
}

/// Each rule compiled on its own against the models, so that every rule's problem is
/// reported, under `rules[i].<key>`; an unknown model gets the closest configured name.
fn rule_problems(config: &Config) -> Vec<ConfigError> {
    let names: Vec<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
    let mut problems = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let error = if config.rules[..i].iter().any(|r| r.name == rule.name) {
            RuleError::Rule {
                rule: rule.name.clone(),
                problem: RuleProblem::DuplicateName,
            }
        } else {
            match RuleSet::new(std::slice::from_ref(rule), &config.models) {
                Ok(_) => continue,
                Err(error) => error,
            }
        };
        let RuleError::Rule { problem, .. } = &error;
        let mut message = error.to_string();
        if let RuleProblem::UnknownModel(name) = problem {
            if let Some(close) = closest(name, names.iter().copied()) {
                message.push_str(&format!(" (did you mean `{close}`?)"));
            }
        }
        problems.push(ConfigError::invalid(
            format!("rules[{i}].{}", problem.field()),
            message,
        ));
    }
    problems
}

/// At most this many problems of the file's shape (unknown keys, values of the wrong
/// type) are collected before giving up.
const MAX_SHAPE_PROBLEMS: usize = 100;

/// Deserializes the merged configuration, collecting every problem serde finds rather than
/// the first: after each error, the offending key is taken out of the value tree (an
/// unknown variant is replaced by the closest valid one, so that a required key stays
/// present; an array item missing a required key is dropped, later items keeping their
/// original index in the messages) and the tree deserialized again. `None` when the
/// configuration cannot be completed: then only these problems are known.
fn extract(figment: &Figment) -> (Option<Config>, Vec<ConfigError>) {
    let mut value: Value = match figment.extract() {
        Ok(value) => value,
        Err(errors) => {
            return (
                None,
                errors
                    .into_iter()
                    .map(|e| describe_figment_error(&e, figment, None, &e.path))
                    .collect(),
            )
        }
    };
    let mut problems = Vec::new();
    let mut taken_out: Vec<Vec<String>> = Vec::new();
    let mut dropped = DroppedItems::default();
    for _ in 0..MAX_SHAPE_PROBLEMS {
        let error = match value.deserialize::<Config>() {
            Ok(config) if dropped.is_empty() => return (Some(config), problems),
            Ok(_) => return (None, problems),
            Err(error) => error,
        };
        let Some(error) = error.into_iter().next() else {
            break;
        };
        let path = error.path.clone();
        let original = dropped.original(&path);
        let mut describe = |value: &Value| {
            problems.push(describe_figment_error(
                &error,
                figment,
                Some(value),
                &original,
            ));
        };
        match &error.kind {
            Kind::MissingField(field) => {
                let mut full = path.clone();
                full.push(field.to_string());
                // A required key this loop took out was reported as it was.
                if !taken_out.contains(&full) {
                    let mut key = original.clone();
                    key.push(field.to_string());
                    problems.push(ConfigError::invalid(
                        display_path(&key),
                        "missing: this key is required",
                    ));
                }
                let item = path.split_last().and_then(|(index, array)| {
                    Some((array.to_vec(), index.parse::<usize>().ok()?))
                });
                let Some((array, index)) = item else {
                    return (None, problems);
                };
                match node(&mut value, &array) {
                    Some(Value::Array(_, items)) if index < items.len() => {
                        items.remove(index);
                        dropped.push(&array, original.last().cloned(), index);
                    }
                    _ => return (None, problems),
                }
            }
            Kind::UnknownVariant(found, expected) if !expected.is_empty() => {
                describe(&value);
                // The likely meant variant, so that checks depending on it stay quiet.
                let stand_in = closest(found, expected.iter().copied()).unwrap_or(expected[0]);
                if !replace(&mut value, &path, stand_in) {
                    return (None, problems);
                }
            }
            _ => {
                describe(&value);
                match take_out(&mut value, &path) {
                    Some(taken) => taken_out.push(taken),
                    None => return (None, problems),
                }
            }
        }
    }
    (None, problems)
}

/// Array items [`extract`] dropped: (array path as now, original indices dropped).
#[derive(Default)]
struct DroppedItems(Vec<(Vec<String>, Vec<usize>)>);

impl DroppedItems {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records that the item now at `index` of `array` (originally `original`) was dropped.
    fn push(&mut self, array: &[String], original: Option<String>, index: usize) {
        let original = original
            .and_then(|o| o.parse::<usize>().ok())
            .unwrap_or(index);
        match self.0.iter_mut().find(|(path, _)| path == array) {
            Some((_, indices)) => indices.push(original),
            None => self.0.push((array.to_vec(), vec![original])),
        }
    }

    /// `path` (current indices) with the indices the items had in the file.
    fn original(&self, path: &[String]) -> Vec<String> {
        let mut out = path.to_vec();
        for (array, indices) in &self.0 {
            let depth = array.len();
            if path.len() > depth && path[..depth] == array[..] {
                if let Ok(mut index) = path[depth].parse::<usize>() {
                    let mut sorted = indices.clone();
                    sorted.sort_unstable();
                    for dropped in sorted {
                        if dropped <= index {
                            index += 1;
                        }
                    }
                    out[depth] = index.to_string();
                }
            }
        }
        out
    }
}

/// Removes the key at `path` (the innermost table key on it: an array item's error takes
/// the whole array out). Returns the path removed.
fn take_out(value: &mut Value, path: &[String]) -> Option<Vec<String>> {
    let last_key = path
        .iter()
        .rposition(|segment| segment.parse::<usize>().is_err())?;
    let (parent, key) = (&path[..last_key], &path[last_key]);
    match node(value, parent)? {
        Value::Dict(_, dict) => dict.remove(key).map(|_| path[..=last_key].to_vec()),
        _ => None,
    }
}

/// Replaces the value at `path` with the string `new`, keeping its tag (its source).
fn replace(value: &mut Value, path: &[String], new: &str) -> bool {
    match node(value, path) {
        Some(old) => {
            *old = Value::String(old.tag(), new.to_string());
            true
        }
        None => false,
    }
}

/// The value at `path` (table keys and array indices).
fn node<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    let mut current = value;
    for segment in path {
        current = match current {
            Value::Dict(_, dict) => dict.get_mut(segment)?,
            Value::Array(_, items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// `models[1].task` for the path `models.1.task`.
fn display_path(path: &[String]) -> String {
    let mut key = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            key.push_str(&format!("[{segment}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    key
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo (at
/// most a third of the word's length, and at least 1).
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance over characters, case-insensitive: insertions, deletions, substitutions
/// and transpositions of neighbours (`fruad` → `fraud` is 1), each costing 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Reads and decodes the baseline files of `reference = { file = … }` (paths relative to
/// `base`). This is the only file I/O of drift: the engine gets decoded values.
fn load_baselines(config: &Config, base: &Path) -> Result<Vec<(u16, Baseline)>, ConfigError> {
    let decoder = Decoder::new(config);
    let mut loaded = Vec::new();
    for (i, model) in config.models.iter().enumerate() {
        let ReferenceConfig::File(file) = &model.reference else {
            continue;
        };
        let key = format!("models[{i}].reference.file");
        let path = base.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| ConfigError::invalid(&key, format!("{}: {e}", path.display())))?;
        let baseline = Baseline::decode(&decoder, i as u16, &bytes)
            .map_err(|e| ConfigError::invalid(&key, format!("{}: {e}", path.display())))?;
        loaded.push((i as u16, baseline));
    }
    Ok(loaded)
}

/// Reads and decodes the `[models.estimation]` reference files (paths relative to `base`):
/// predictions with their `actual`, grouped in windows of `window.size`.
#[allow(clippy::type_complexity)]
fn load_estimation_references(
    config: &Config,
    base: &Path,
) -> Result<Vec<(u16, Vec<Vec<ReferenceRow>>)>, ConfigError> {
    let decoder = Decoder::new(config);
    let mut loaded = Vec::new();
    for (i, model) in config.models.iter().enumerate() {
        let Some(EstimationReference::File(file)) = model.estimation.as_ref().map(|e| &e.reference)
        else {
            continue;
        };
        let key = format!("models[{i}].estimation.reference.file");
        let path = base.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| ConfigError::invalid(&key, format!("{}: {e}", path.display())))?;
        let windows = decode_reference(
            &decoder,
            i as u16,
            model.positive_class.as_deref(),
            config.window.size.as_millis_i64(),
            &bytes,
        )
        .map_err(|e| ConfigError::invalid(&key, format!("{}: {e}", path.display())))?;
        loaded.push((i as u16, windows));
    }
    Ok(loaded)
}

/// Environment overrides: `FEEDBACK_LOOP__JOIN__MAX_LABEL_DELAY=2h` sets `join.max_label_delay`.
/// `[kafka.client]`, `[kafka.consumer]` and `[kafka.producer]` properties are handled by
/// [`client_env_overrides`], since their names contain dots.
fn env_overrides() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            !CLIENT_ENV_INFIXES
                .iter()
                .any(|(infix, _)| key.starts_with(infix))
        })
        .split("__")
}

/// The tables of librdkafka properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientTable {
    Client,
    Consumer,
    Producer,
}

const CLIENT_ENV_INFIXES: [(&str, ClientTable); 3] = [
    ("kafka__client__", ClientTable::Client),
    ("kafka__consumer__", ClientTable::Consumer),
    ("kafka__producer__", ClientTable::Producer),
];

/// `FEEDBACK_LOOP__KAFKA__CLIENT__SECURITY_PROTOCOL=SASL_SSL` sets the librdkafka property
/// `security.protocol` of `[kafka.client]` (`…__KAFKA__CONSUMER__…`, `…__KAFKA__PRODUCER__…`:
/// of `[kafka.consumer]`, `[kafka.producer]`): librdkafka names use dots where environment
/// names cannot, and no librdkafka property has an underscore, so each underscore stands
/// for a dot.
fn client_env_overrides(
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(ClientTable, String, ClientValue)> {
    vars.filter_map(|(name, value)| {
        let rest = name.strip_prefix(ENV_PREFIX)?;
        let lower = rest.to_ascii_lowercase();
        CLIENT_ENV_INFIXES.iter().find_map(|(infix, table)| {
            let property = lower.strip_prefix(infix)?;
            (!property.is_empty()).then(|| {
                (
                    *table,
                    property.replace('_', "."),
                    ClientValue(value.clone()),
                )
            })
        })
    })
    .collect()
}

/// One figment error as a configuration error naming its key (`models[1].task`), with the
/// closest known key or variant for a typo, and where the value came from when that is not
/// the file itself (an environment variable).
fn describe_figment_error(
    error: &figment::Error,
    figment: &Figment,
    value: Option<&Value>,
    path: &[String],
) -> ConfigError {
    let metadata = error.metadata.as_ref().or_else(|| {
        let tag = value?.find_ref(&error.path.join("."))?.tag();
        figment.get_metadata(tag)
    });
    let source = match metadata {
        Some(m) if m.source.is_none() => format!(" (from {})", m.name),
        _ => String::new(),
    };
    let suggestion = match &error.kind {
        Kind::UnknownField(field, expected) | Kind::UnknownVariant(field, expected) => {
            closest(field, expected.iter().copied())
                .map(|close| format!(" (did you mean `{close}`?)"))
                .unwrap_or_default()
        }
        _ => String::new(),
    };
    let message = match &error.kind {
        Kind::UnknownField(..) => "unknown key".to_string(),
        Kind::UnknownVariant(found, expected) => format!(
            "unknown value `{found}` (expected {})",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        kind => kind.to_string(),
    };
    if path.is_empty() {
        ConfigError::Parse(format!("{message}{suggestion}{source}"))
    } else {
        ConfigError::invalid(display_path(path), format!("{message}{suggestion}{source}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feedback_loop_core::settings::AttributeTo;

    const MINIMAL: &str = r#"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
"#;

    #[test]
    fn defaults_apply() {
        let config = from_toml_str(MINIMAL).unwrap();
        assert_eq!(config.join.max_label_delay.as_millis_i64(), 3_600_000);
        assert_eq!(config.window.attribute_to, AttributeTo::Outcome);
        assert_eq!(config.http.listen, "0.0.0.0:9898");
    }

    #[test]
    fn errors_name_the_key() {
        let err = from_toml_str(&format!("[join]\nmax_label_delay = \"2 hours\"\n{MINIMAL}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("join.max_label_delay"), "{err}");

        let err = from_toml_str(&format!("[window]\nsise = \"1m\"\n{MINIMAL}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sise"), "{err}");

        let err = from_toml_str("[[models]]\nname = \"x\"\ntask = \"binary\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("models[0].positive_class"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let text = r#"
[join]
max_label_dely = "1h"
max_outcome_lead = "2 hours"

[windw]
size = "1m"

[window]
attribute_to = "outcom"

[[models]]
name = "fraud"
task = "binary"

[[models]]
name = "eta"
task = "regresion"
refrence_size = 10

[models.drift]
sample_capacity = 0

[[rules]]
name = "f1-drop"
model = "fruad"
metric = "classification.f1"
op = "<"
threshold = 0.8

[[rules]]
name = "r2"
model = "eta"
metric = "regression.r2"
op = "<<"
threshold = 0.5
"#;
        let error = from_toml_str(text).unwrap_err();
        let problems: Vec<String> = error.problems().iter().map(|p| p.to_string()).collect();
        let expected = [
            "`join.max_label_dely`: unknown key (did you mean `max_label_delay`?)",
            "`join.max_outcome_lead`: `2 hours` has an unknown unit",
            "`models[1].refrence_size`: unknown key (did you mean `reference_size`?)",
            "`models[1].task`: unknown value `regresion`",
            "`window.attribute_to`: unknown value `outcom`",
            "`windw`: unknown key (did you mean `window`?)",
            "`models[0].positive_class`: model `fraud` is binary",
            "`models[1].drift.sample_capacity`: must be at least 1",
            "`rules[0].model`: rule \"f1-drop\": unknown model \"fruad\"",
            "`rules[1].op`: rule \"r2\": unknown operator \"<<\"",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, expected) in problems.iter().zip(expected) {
            assert!(problem.starts_with(expected), "{problem} vs {expected}");
        }
        assert!(problems[3].ends_with("(did you mean `regression`?)"));
        assert!(problems[8].ends_with("(did you mean `fraud`?)"));
        // The stand-in for `regresion` is `regression`: no complaint that `eta` is binary.
        assert!(!problems
            .iter()
            .any(|p| p.contains("models[1].positive_class")));
    }

    #[test]
    fn items_missing_a_required_key_keep_the_others_indices() {
        let text = r#"
[[models]]
name = "x"

[[models]]
name = "y"
task = "binary"
positve_class = "1"

[[models]]
task = "binary"

[[models]]
name = "z"
task = "regression"
feature = ["a"]
"#;
        let error = from_toml_str(text).unwrap_err();
        let problems: Vec<String> = error.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "`models[0].task`: missing: this key is required",
                "`models[1].positve_class`: unknown key (did you mean `positive_class`?)",
                "`models[2].name`: missing: this key is required",
                "`models[3].feature`: unknown key (did you mean `features`?)",
            ]
        );
    }

    #[test]
    fn a_refused_value_is_reported_once() {
        let error =
            from_toml_str("[[models]]\nname = \"x\"\ntask = \"binary\"\npositive_class = 1\n")
                .unwrap_err();
        let problems: Vec<String> = error.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("`models[0].positive_class`: invalid type"));
    }

    #[test]
    fn typos_find_the_closest_name() {
        let keys = ["max_label_delay", "max_outcome_lead", "max_pending"];
        assert_eq!(closest("max_label_dely", keys), Some("max_label_delay"));
        assert_eq!(closest("MAX_PENDING", keys), Some("max_pending"));
        assert_eq!(closest("fruad", ["fraud", "eta"]), Some("fraud"));
        assert_eq!(closest("something_else", keys), None);
        assert_eq!(edit_distance("fruad", "fraud"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn drift_keys_parse_and_validate() {
        let config = from_toml_str(&format!(
            "{MINIMAL}features = [\"amount\"]\nreference = \"previous\"\n[models.drift]\nmethod = \"psi\"\n[models.drift.features.amount]\nmethod = \"ks\"\nthreshold = 0.01\n[models.detectors]\nddm = {{ enabled = false }}\n"
        ))
        .unwrap();
        assert_eq!(config.models[0].reference, ReferenceConfig::Previous);
        assert!(!config.models[0].detectors.ddm.enabled);

        let err = from_toml_str(&format!(
            "{MINIMAL}[models.drift.features.age]\nmethod = \"psi\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("models[0].drift.features.age"), "{err}");

        let err = from_toml_str(&format!("{MINIMAL}reference = \"last\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reference"), "{err}");

        let err = from_toml_str(&format!(
            "{MINIMAL}[models.detectors]\nadwin = {{ delta = 2.0 }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("models[0].detectors.adwin.delta"), "{err}");

        let config = from_toml_str(MINIMAL).unwrap();
        assert_eq!(config.models[0].drift.min_window_samples, 100);
        let err = from_toml_str(&format!(
            "{MINIMAL}[models.drift]\nsample_capacity = 50\nmin_window_samples = 51\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("models[0].drift.min_window_samples"), "{err}");

        let err = from_toml_str(&format!("{MINIMAL}[models.drift]\nmethd = \"ks\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("methd"), "{err}");
    }

    #[test]
    fn client_properties_from_environment() {
        let vars = vec![
            (
                "FEEDBACK_LOOP__KAFKA__CLIENT__SECURITY_PROTOCOL".to_string(),
                "SASL_SSL".to_string(),
            ),
            (
                "FEEDBACK_LOOP__JOIN__MAX_PENDING".to_string(),
                "5".to_string(),
            ),
            (
                "FEEDBACK_LOOP__KAFKA__CONSUMER__SESSION_TIMEOUT_MS".to_string(),
                "6000".to_string(),
            ),
            (
                "FEEDBACK_LOOP__KAFKA__PRODUCER__LINGER_MS".to_string(),
                "20".to_string(),
            ),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let overrides = client_env_overrides(vars.into_iter());
        assert_eq!(
            overrides,
            vec![
                (
                    ClientTable::Client,
                    "security.protocol".to_string(),
                    ClientValue("SASL_SSL".into())
                ),
                (
                    ClientTable::Consumer,
                    "session.timeout.ms".to_string(),
                    ClientValue("6000".into())
                ),
                (
                    ClientTable::Producer,
                    "linger.ms".to_string(),
                    ClientValue("20".into())
                ),
            ]
        );
    }

    #[test]
    fn cooperative_assignment_is_refused_by_key() {
        let error = from_toml_str(&format!(
            "[kafka.consumer]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n{MINIMAL}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("kafka.consumer.\"partition.assignment.strategy\"")
                && error.contains("cooperative"),
            "{error}"
        );
        from_toml_str(&format!(
            "[kafka.consumer]\n\"partition.assignment.strategy\" = \"roundrobin\"\n{MINIMAL}"
        ))
        .expect("an eager assignor is fine");
    }

    #[test]
    fn the_partitioned_mode_needs_checkpoints_and_the_range_assignor() {
        let error = from_toml_str(&format!(
            "[scale]\nmode = \"partitioned\"\n[checkpoint]\nenabled = false\n             [kafka.consumer]\n\"partition.assignment.strategy\" = \"roundrobin\"\n{MINIMAL}"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("checkpoint.enabled"), "{error}");
        assert!(
            error.contains("kafka.consumer.\"partition.assignment.strategy\"")
                && error.contains("range"),
            "{error}"
        );
        let error = from_toml_str(&format!("[scale]\nmode = \"many\"\n{MINIMAL}"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("scale.mode") || error.contains("mode"),
            "{error}"
        );
        from_toml_str(&format!(
            "[scale]\nmode = \"partitioned\"\n[kafka.consumer]\n\"partition.assignment.strategy\" = \"range\"\n{MINIMAL}"
        ))
        .expect("checkpoints on by default, the range assignor");
    }

    #[test]
    fn consumer_and_producer_properties_go_to_that_client_only() {
        let config = from_toml_str(&format!(
            "[kafka.client]\n\"socket.timeout.ms\" = 1000\n             [kafka.consumer]\n\"session.timeout.ms\" = 6000\n\"enable.auto.offset.store\" = true\n             [kafka.producer]\n\"linger.ms\" = 20\n\"socket.timeout.ms\" = 2000\n{MINIMAL}"
        ))
        .unwrap();
        let consumer = crate::kafka::client::consumer(&config);
        let producer = crate::kafka::client::producer(&config);
        assert_eq!(consumer.get("session.timeout.ms"), Some("6000"));
        assert_eq!(consumer.get("socket.timeout.ms"), Some("1000"));
        assert_eq!(consumer.get("linger.ms"), None);
        // Offset safety: the service's setting stands.
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(producer.get("session.timeout.ms"), None);
        assert_eq!(producer.get("linger.ms"), Some("20"));
        // [kafka.producer] comes after [kafka.client].
        assert_eq!(producer.get("socket.timeout.ms"), Some("2000"));
        let reader = crate::kafka::client::other_consumer(&config);
        assert_eq!(reader.get("session.timeout.ms"), Some("6000"));
        assert_eq!(reader.get("linger.ms"), None);
        let base = crate::kafka::client::base(&config);
        assert_eq!(base.get("session.timeout.ms"), None);
        assert_eq!(base.get("linger.ms"), None);
    }

    #[test]
    fn rules_are_validated_by_name() {
        let err = from_toml_str(&format!(
            "{MINIMAL}\n[[rules]]\nname = \"f1-drop\"\nmodel = \"fraud\"\nmetric = \"classification.f2\"\nop = \"<\"\nthreshold = 0.8\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("f1-drop") && err.contains("classification.f2"),
            "{err}"
        );
        let err = from_toml_str(&format!(
            "{MINIMAL}\n[[rules]]\nname = \"x\"\nmodel = \"nope\"\nmetric = \"counts.joined\"\nop = \"<\"\nthreshold = 1\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown model") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn client_values_become_text() {
        let config = from_toml_str(&format!(
            "[kafka.client]\n\"socket.timeout.ms\" = 1000\n\"enable.idempotence\" = true\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(config.kafka.client["socket.timeout.ms"].0, "1000");
        assert_eq!(config.kafka.client["enable.idempotence"].0, "true");
    }
}
