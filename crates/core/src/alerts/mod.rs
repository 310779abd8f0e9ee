//! Alert and retrain rules: turns metrics records (`feedback-loop.metrics.v1`), and for
//! rules on `estimation_check.…` paths estimation checks
//! (`feedback-loop.estimation-check.v1`), into alert events (`feedback-loop.alert.v1`, firing then resolved) and retrain triggers
//! (`feedback-loop.retrain.v1`).
//!
//! - It is part of the core: no I/O and no clock. Time is the event time of the records
//!   (their window bounds), so replaying the same records from the same checkpointed
//!   [`RuleState`] yields byte-identical events, with the same ids.
//! - Rules are validated and compiled once, against the configured models
//!   ([`RuleSet::new`]); every error names the rule. A rule's metric path is resolved to a
//!   typed [`MetricPath`] then, and read from each typed record.
//! - Each rule keeps one small state machine per series (rule, model, model_version,
//!   segment): [`hysteresis`]. Retrain triggers and their cooldown: [`retrain`]. The
//!   events and their ids: [`events`]. The whole [`RuleSet`] (and its [`RuleState`] alone)
//!   is serde-serializable so that the service can checkpoint it next to the join store.
//!
//! The user-facing semantics are in docs/rules.md.

pub mod events;
pub mod hysteresis;
pub mod retrain;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use events::{
    AlertEvent, AlertStatus, Evidence, RetrainTrigger, RuleEvent, ALERT_SCHEMA, RETRAIN_SCHEMA,
};
pub use hysteresis::{Episode, SeriesState};
pub use retrain::RetrainCooldown;

use crate::output::{EstimationCheck, MetricPath, MetricsRecord};
use crate::settings::{Duration, ModelConfig, RuleConfig};
use hysteresis::{step, Subject};
use retrain::{retrain_triggers, FiredRetrain};

/// A rule or model that cannot be loaded. The message names the rule (or model).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("rule \"{rule}\": {problem}")]
    Rule { rule: String, problem: RuleProblem },
}

/// What is wrong with a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleProblem {
    #[error("the name is empty")]
    EmptyName,
    #[error("duplicate rule name")]
    DuplicateName,
    #[error("unknown model \"{0}\" (use a configured model name or \"*\")")]
    UnknownModel(String),
    #[error("unknown metric path \"{0}\"")]
    UnknownMetricPath(String),
    #[error("unknown operator \"{0}\" (use <, <=, >, >=, == or !=)")]
    UnknownOperator(String),
    #[error("{field} must be a finite number")]
    NotFinite { field: &'static str },
    #[error(
        "resolve_threshold {resolve_threshold} is on the wrong side of threshold {threshold} \
         for op \"{op}\" (it must be {expected} threshold)"
    )]
    ResolveThresholdWrongSide {
        op: &'static str,
        threshold: f64,
        resolve_threshold: f64,
        expected: &'static str,
    },
    #[error("for_windows must be at least 1")]
    ZeroForWindows,
    #[error("invalid cooldown: {0}")]
    InvalidCooldown(String),
    #[error("segment dimension \"{dimension}\" is not listed by model \"{model}\"")]
    UnknownSegmentDimension { dimension: String, model: String },
    #[error(
        "segment dimension \"{0}\" is not listed by any model for which the metric path is valid"
    )]
    SegmentDimensionInNoModel(String),
    #[error(
        "metric path \"{metric}\" reads the estimation check, which model \"{model}\" does \
         not have (it has no [models.estimation])"
    )]
    CheckWithoutEstimation { metric: String, model: String },
    #[error(
        "metric path \"{0}\" reads the estimation check, which no model for which it is \
         valid has (none has [models.estimation])"
    )]
    CheckInNoModel(String),
    #[error("estimation checks are not segmented: a rule on \"{0}\" cannot have a segment")]
    SegmentOnCheck(String),
    #[error(
        "segment must name exactly one dimension (segment records carry one dimension each), \
         got {0}"
    )]
    SegmentDimensionCount(usize),
}

impl RuleProblem {
    /// The `[[rules]]` key the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            RuleProblem::EmptyName | RuleProblem::DuplicateName => "name",
            RuleProblem::UnknownModel(_) => "model",
            RuleProblem::UnknownMetricPath(_)
            | RuleProblem::CheckWithoutEstimation { .. }
            | RuleProblem::CheckInNoModel(_) => "metric",
            RuleProblem::UnknownOperator(_) => "op",
            RuleProblem::NotFinite { field } => field,
            RuleProblem::ResolveThresholdWrongSide { .. } => "resolve_threshold",
            RuleProblem::ZeroForWindows => "for_windows",
            RuleProblem::InvalidCooldown(_) => "cooldown",
            RuleProblem::UnknownSegmentDimension { .. }
            | RuleProblem::SegmentDimensionInNoModel(_)
            | RuleProblem::SegmentDimensionCount(_)
            | RuleProblem::SegmentOnCheck(_) => "segment",
        }
    }
}

/// Comparison operator of a rule. Serializes as its symbol (`"<"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub fn parse(symbol: &str) -> Option<Op> {
        match symbol.trim() {
            "<" => Some(Op::Lt),
            "<=" => Some(Op::Le),
            ">" => Some(Op::Gt),
            ">=" => Some(Op::Ge),
            "==" => Some(Op::Eq),
            "!=" => Some(Op::Ne),
            _ => None,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// The alert condition: `value <op> threshold`.
    pub(crate) fn crosses(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }

    /// The resolve condition, the mirror of `Op::crosses` against the resolve threshold:
    /// `<` resolves on `>=`, `<=` on `>`, `>` on `<=`, `>=` on `<`; `==` resolves when the
    /// value differs from the threshold, `!=` when it equals it.
    pub fn resolves(self, value: f64, threshold: f64, resolve_threshold: f64) -> bool {
        match self {
            Op::Lt => value >= resolve_threshold,
            Op::Le => value > resolve_threshold,
            Op::Gt => value <= resolve_threshold,
            Op::Ge => value < resolve_threshold,
            Op::Eq => value != threshold,
            Op::Ne => value == threshold,
        }
    }
}

/// The mutable part of a [`RuleSet`]: what the service checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Rule name → series key → state of that series.
    pub series: BTreeMap<String, BTreeMap<String, SeriesState>>,
    /// Model → retrain cooldown.
    pub cooldowns: BTreeMap<String, RetrainCooldown>,
}

/// A rule after validation, with its metric path resolved per model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CompiledRule {
    pub(crate) name: String,
    /// Model name → the metric in that model's records. With `model = "*"`, only the
    /// models for which the path (and segment) is valid.
    pub(crate) models: BTreeMap<String, MetricPath<'static>>,
    pub(crate) metric: String,
    pub(crate) op: Op,
    pub(crate) threshold: f64,
    pub(crate) resolve_threshold: f64,
    pub(crate) min_samples: u64,
    pub(crate) for_windows: u32,
    pub(crate) severity: String,
    pub(crate) retrain: bool,
    pub(crate) cooldown_ms: i64,
    pub(crate) segment: Option<BTreeMap<String, String>>,
}

/// How a rule set differs from the restored one it took over ([`RuleSet::carry_over`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleChanges {
    /// Rules that did not exist (configuration order).
    pub added: Vec<String>,
    /// Rules of the same name whose definition changed (configuration order): they start
    /// with no state.
    pub changed: Vec<String>,
    /// Rules that no longer exist (their earlier order).
    pub removed: Vec<String>,
    /// (rule, alert id) of the alerts that were firing under a removed or changed rule:
    /// dropped, no `resolved` event follows.
    pub dropped_alerts: Vec<(String, String)>,
}

impl RuleChanges {
    /// No rule was added, changed or removed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl std::fmt::Display for RuleChanges {
    /// `added r2; changed r1; removed r3 (dropped firing alert <id>)`, or `unchanged`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (verb, names) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removed", &self.removed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{verb} {}", names.join(", ")));
            }
        }
        if parts.is_empty() {
            parts.push("unchanged".to_string());
        }
        if !self.dropped_alerts.is_empty() {
            let ids: Vec<&str> = self
                .dropped_alerts
                .iter()
                .map(|(_, id)| id.as_str())
                .collect();
            parts.push(format!("dropped firing alerts {}", ids.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A firing alert for the Prometheus gauge: (rule, model, model_version, segment, severity).
pub type FiringAlert<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a BTreeMap<String, String>>,
    &'a str,
);

/// The compiled rules and their state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    state: RuleState,
}

fn rule_error(rule: &RuleConfig, problem: RuleProblem) -> RuleError {
    RuleError::Rule {
        rule: rule.name.clone(),
        problem,
    }
}

fn compile(rule: &RuleConfig, models: &[ModelConfig]) -> Result<CompiledRule, RuleError> {
    let error = |problem| rule_error(rule, problem);
    if rule.name.trim().is_empty() {
        return Err(error(RuleProblem::EmptyName));
    }
    let op =
        Op::parse(&rule.op).ok_or_else(|| error(RuleProblem::UnknownOperator(rule.op.clone())))?;
    if !rule.threshold.is_finite() {
        return Err(error(RuleProblem::NotFinite { field: "threshold" }));
    }
    let resolve_threshold = rule.resolve_threshold.unwrap_or(rule.threshold);
    if !resolve_threshold.is_finite() {
        return Err(error(RuleProblem::NotFinite {
            field: "resolve_threshold",
        }));
    }
    let expected = match op {
        Op::Lt | Op::Le if resolve_threshold < rule.threshold => Some(">="),
        Op::Gt | Op::Ge if resolve_threshold > rule.threshold => Some("<="),
        Op::Eq | Op::Ne if resolve_threshold != rule.threshold => Some("equal to"),
        _ => None,
    };
    if let Some(expected) = expected {
        return Err(error(RuleProblem::ResolveThresholdWrongSide {
            op: op.symbol(),
            threshold: rule.threshold,
            resolve_threshold,
            expected,
        }));
    }
    if rule.for_windows == 0 {
        return Err(error(RuleProblem::ZeroForWindows));
    }
    let cooldown_ms = Duration::parse(&rule.cooldown)
        .map_err(|e| error(RuleProblem::InvalidCooldown(e)))?
        .as_millis_i64();
    let segment = rule.segment.clone().filter(|segment| !segment.is_empty());
    if let Some(segment) = &segment {
        if segment.len() != 1 {
            return Err(error(RuleProblem::SegmentDimensionCount(segment.len())));
        }
    }

    let wildcard = rule.model == "*";
    let candidates: Vec<&ModelConfig> = if wildcard {
        models.iter().collect()
    } else {
        let found: Vec<_> = models
            .iter()
            .filter(|model| model.name == rule.model)
            .collect();
        if found.is_empty() {
            return Err(error(RuleProblem::UnknownModel(rule.model.clone())));
        }
        found
    };
    let mut with_path = Vec::new();
    let mut without_estimation = None;
    for model in candidates {
        if let Some(path) = MetricPath::parse(&rule.metric, model.task, &model.features) {
            // Only models with `[models.estimation]` have checks.
            if path.is_check() && model.estimation.is_none() {
                if !wildcard {
                    return Err(error(RuleProblem::CheckWithoutEstimation {
                        metric: rule.metric.clone(),
                        model: model.name.clone(),
                    }));
                }
                without_estimation = Some(model);
                continue;
            }
            if path.is_check() && segment.is_some() {
                return Err(error(RuleProblem::SegmentOnCheck(rule.metric.clone())));
            }
            with_path.push((model, path));
        }
    }
    if with_path.is_empty() {
        if without_estimation.is_some() {
            return Err(error(RuleProblem::CheckInNoModel(rule.metric.clone())));
        }
        return Err(error(RuleProblem::UnknownMetricPath(rule.metric.clone())));
    }
    let mut compiled_models = BTreeMap::new();
    let mut missing_dimension = None;
    for (model, path) in with_path {
        let unlisted = segment
            .iter()
            .flat_map(|segment| segment.keys())
            .find(|dimension| !model.segments.contains(dimension));
        match unlisted {
            Some(dimension) if wildcard => missing_dimension = Some(dimension.clone()),
            Some(dimension) => {
                return Err(error(RuleProblem::UnknownSegmentDimension {
                    dimension: dimension.clone(),
                    model: model.name.clone(),
                }))
            }
            None => {
                compiled_models.insert(model.name.clone(), path);
            }
        }
    }
    if compiled_models.is_empty() {
        let dimension = missing_dimension.unwrap_or_default();
        return Err(error(RuleProblem::SegmentDimensionInNoModel(dimension)));
    }
    Ok(CompiledRule {
        name: rule.name.clone(),
        models: compiled_models,
        metric: rule.metric.clone(),
        op,
        threshold: rule.threshold,
        resolve_threshold,
        min_samples: rule.min_samples,
        for_windows: rule.for_windows,
        severity: rule.severity.clone(),
        retrain: rule.retrain,
        cooldown_ms,
        segment,
    })
}

impl RuleSet {
    /// Validates and compiles the rules against the configured models.
    pub fn new(rules: &[RuleConfig], models: &[ModelConfig]) -> Result<RuleSet, RuleError> {
        let mut compiled: Vec<CompiledRule> = Vec::with_capacity(rules.len());
        for rule in rules {
            if compiled.iter().any(|earlier| earlier.name == rule.name) {
                return Err(rule_error(rule, RuleProblem::DuplicateName));
            }
            compiled.push(compile(rule, models)?);
        }
        Ok(RuleSet {
            rules: compiled,
            state: RuleState::default(),
        })
    }

    /// `(rule, model, retrain)` for each model each rule applies to (with `model = "*"`,
    /// the models whose records have the rule's metric).
    pub fn rule_models(&self) -> impl Iterator<Item = (&str, &str, bool)> {
        self.rules.iter().flat_map(|rule| {
            rule.models
                .keys()
                .map(move |model| (rule.name.as_str(), model.as_str(), rule.retrain))
        })
    }

    /// The state to checkpoint.
    pub fn state(&self) -> &RuleState {
        &self.state
    }

    /// Restores a checkpointed state onto freshly compiled rules. Series of rules that no
    /// longer exist are dropped; a rule whose definition changed keeps its series state.
    pub fn restore(&mut self, mut state: RuleState) {
        state
            .series
            .retain(|rule, _| self.rules.iter().any(|compiled| &compiled.name == rule));
        self.state = state;
    }

    /// Takes over the state of `old` (a restored rule set, compiled from an earlier
    /// configuration of the same models) for the rules whose definition is unchanged
    /// (same name, same compiled definition): their series (consecutive crossing windows,
    /// firing alerts with their ids) continue. A new rule, or a rule whose definition
    /// changed, starts with no state. The retrain cooldowns (per model) are kept. A firing
    /// alert of a removed or changed rule is dropped without a `resolved` event (no window
    /// resolved it); it is listed in [`RuleChanges::dropped_alerts`] so the caller can say
    /// so.
    pub fn carry_over(&mut self, mut old: RuleSet) -> RuleChanges {
        let mut changes = RuleChanges::default();
        let mut state = RuleState {
            series: BTreeMap::new(),
            cooldowns: std::mem::take(&mut old.state.cooldowns),
        };
        for rule in &self.rules {
            match old.rules.iter().find(|earlier| earlier.name == rule.name) {
                None => changes.added.push(rule.name.clone()),
                Some(earlier) if earlier == rule => {
                    if let Some(series) = old.state.series.remove(&rule.name) {
                        state.series.insert(rule.name.clone(), series);
                    }
                }
                Some(_) => changes.changed.push(rule.name.clone()),
            }
        }
        for earlier in &old.rules {
            if !self.rules.iter().any(|rule| rule.name == earlier.name) {
                changes.removed.push(earlier.name.clone());
            }
        }
        // What is left of the old series belongs to removed or changed rules.
        for (rule, series_of_rule) in old.state.series {
            for series in series_of_rule.into_values() {
                if let Some(episode) = series.firing {
                    changes
                        .dropped_alerts
                        .push((rule.clone(), episode.alert_id));
                }
            }
        }
        self.state = state;
        changes
    }

    /// Evaluates one record (a batch of one; see [`RuleSet::evaluate_batch`]).
    #[cfg(test)]
    pub(crate) fn evaluate(&mut self, record: &MetricsRecord) -> Vec<RuleEvent> {
        self.evaluate_batch(std::slice::from_ref(record))
    }

    /// Evaluates the records of one closed window (in the order the engine emits them), then
    /// emits at most one retrain trigger per model. Events come out in record order, rules in
    /// configuration order, then the triggers in order of their first evidence.
    pub(crate) fn evaluate_batch(&mut self, records: &[MetricsRecord]) -> Vec<RuleEvent> {
        self.evaluate_subjects(records.iter().map(Subject::Metrics))
    }

    /// Evaluates the estimation checks of one window (as the engine emits them, once the
    /// window's predictions are all joined or expired) with the rules on
    /// `estimation_check.…` paths, like [`RuleSet::evaluate_batch`] does with metrics
    /// records: the other rules do not see them.
    pub(crate) fn evaluate_checks(&mut self, checks: &[EstimationCheck]) -> Vec<RuleEvent> {
        self.evaluate_subjects(checks.iter().map(Subject::Check))
    }

    fn evaluate_subjects<'a>(
        &mut self,
        subjects: impl Iterator<Item = Subject<'a>>,
    ) -> Vec<RuleEvent> {
        let mut events = Vec::new();
        let mut fired_retrain = Vec::new();
        for subject in subjects {
            for rule in &self.rules {
                let series = self.state.series.entry(rule.name.clone()).or_default();
                if let Some(alert) = step(rule, series, subject) {
                    if rule.retrain && alert.status == AlertStatus::Firing {
                        fired_retrain.push(FiredRetrain {
                            model: alert.model.clone(),
                            window: alert.window,
                            cooldown_ms: rule.cooldown_ms,
                            evidence: Evidence {
                                rule: rule.name.clone(),
                                metric: rule.metric.clone(),
                                value: alert.value,
                                threshold: rule.threshold,
                                op: rule.op,
                                window: alert.window,
                                record_id: alert.record_id.clone(),
                                model_version: alert.model_version.clone(),
                                segment: alert.segment.clone(),
                            },
                        });
                    }
                    events.push(RuleEvent::Alert(alert));
                }
            }
        }
        self.state
            .series
            .retain(|_, series_of_rule| !series_of_rule.is_empty());
        events.extend(retrain_triggers(&mut self.state.cooldowns, fired_retrain));
        events
    }

    /// The alerts currently firing: (rule, model, model_version, segment, severity), for a
    /// Prometheus gauge. Ordered by rule name, then series.
    pub fn firing_alerts(&self) -> impl Iterator<Item = FiringAlert<'_>> {
        self.state
            .series
            .iter()
            .filter_map(move |(rule_name, series_of_rule)| {
                let rule = self.rules.iter().find(|rule| &rule.name == rule_name)?;
                Some(
                    series_of_rule
                        .values()
                        .filter(|series| series.firing.is_some())
                        .map(move |series| {
                            (
                                rule.name.as_str(),
                                series.model.as_str(),
                                series.model_version.as_deref(),
                                series.segment.as_ref(),
                                rule.severity.as_str(),
                            )
                        }),
                )
            })
            .flatten()
    }
}

#[cfg(test)]
mod tests;
