//! The whole core as one unit: the engine, and the rules evaluated on the records it emits.
//! `replay` and the Kafka service both drive a `Monitor`, so they emit the same things.

use crate::alerts::{RuleChanges, RuleError, RuleEvent, RuleSet};
use crate::drift::stream::Baseline;
use crate::engine::{Engine, EngineConfig};
use crate::output::{EstimationCheck, MetricsRecord};
use crate::settings::Config;

/// What one watermark step emitted: the closed windows' records, the estimation checks
/// that became due, then the rule events the records caused, then those the checks caused.
#[derive(Debug, Default)]
pub struct Emitted {
    pub metrics: Vec<MetricsRecord>,
    /// `feedback-loop.estimation-check.v1` records, in window order (only rules on
    /// `estimation_check.…` paths see them).
    pub checks: Vec<EstimationCheck>,
    /// The events of the metrics records (window by window), then those of the checks
    /// (window by window): a check rule's event comes after every record and check of the
    /// step.
    pub events: Vec<RuleEvent>,
    /// When, after its end, a window's metrics records are due (its close) and when its
    /// estimation check is (every prediction joined or expired), in ms: the output order.
    pub due_after_end: DueAfterEnd,
    /// Performance-estimation fits that failed in this step (not output records: the
    /// shell logs and counts them).
    pub fit_failures: Vec<crate::output::EstimationFitFailure>,
}

/// See [`Emitted::due_after_end`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DueAfterEnd {
    pub metrics: i64,
    pub checks: i64,
}

impl Emitted {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
            && self.checks.is_empty()
            && self.events.is_empty()
            && self.fit_failures.is_empty()
    }

    /// The metrics records and checks in output order: by the time each is due (a
    /// window's records at its close, its check once every prediction of it is joined or
    /// expired: at the close with `attribute_to = "prediction"`, `max_label_delay` after
    /// the end with `"outcome"`), records before checks due at the same time. An order of
    /// event time only: one watermark step past several closes gives the same lines as
    /// one step per close (and the partitioned engine the same as a single one).
    pub fn records_in_order(&self) -> Vec<Output<'_>> {
        let mut out = Vec::with_capacity(self.metrics.len() + self.checks.len());
        for group in in_due_order(&self.metrics, &self.checks, self.due_after_end) {
            match group {
                Due::Window(records) => out.extend(records.iter().map(Output::Metrics)),
                Due::Checks(checks) => out.extend(checks.iter().map(Output::Check)),
            }
        }
        out
    }
}

/// One window's metrics records, or one window's estimation checks.
enum Due<'a> {
    Window(&'a [MetricsRecord]),
    Checks(&'a [EstimationCheck]),
}

/// A step's records and checks by window, in the order they are due (a window's records
/// at its close, its checks at its end + `due.checks`; records first at equal times). Both
/// inputs are in window order. The one order the output and the rules follow.
fn in_due_order<'a>(
    metrics: &'a [MetricsRecord],
    checks: &'a [EstimationCheck],
    due: DueAfterEnd,
) -> Vec<Due<'a>> {
    let mut out = Vec::new();
    let mut checks = checks.chunk_by(|a, b| a.window == b.window).peekable();
    for window in metrics.chunk_by(|a, b| a.window == b.window) {
        let close = window[0].window.end.saturating_add(due.metrics);
        while let Some(checked) =
            checks.next_if(|c| c[0].window.end.saturating_add(due.checks) < close)
        {
            out.push(Due::Checks(checked));
        }
        out.push(Due::Window(window));
    }
    out.extend(checks.map(Due::Checks));
    out
}

/// A line of output: a metrics record or an estimation check.
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    Metrics(&'a MetricsRecord),
    Check(&'a EstimationCheck),
}

/// What [`Monitor::reconfigure`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Models whose drift decision rules (method, threshold, minimum sample, per-feature
    /// overrides) changed.
    pub drift_rules: Vec<String>,
    pub rules: RuleChanges,
}

impl Reconfigured {
    /// Nothing that the state carries changed.
    pub fn is_empty(&self) -> bool {
        self.drift_rules.is_empty() && self.rules.is_empty()
    }
}

impl std::fmt::Display for Reconfigured {
    /// `rules: added r2; changed r1; drift rules: fraud`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rules: {}", self.rules)?;
        if !self.drift_rules.is_empty() {
            write!(f, "; drift rules changed: {}", self.drift_rules.join(", "))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Monitor {
    engine: Engine,
    rules: RuleSet,
}

impl Monitor {
    pub fn new(config: &Config) -> Result<Monitor, RuleError> {
        Ok(Monitor {
            engine: Engine::new(EngineConfig::from_config(config)),
            rules: RuleSet::new(&config.rules, &config.models)?,
        })
    }

    /// A monitor around a given engine (the partitioned engine's finalizer), with the
    /// configuration's rules.
    pub fn with_engine(engine: Engine, config: &Config) -> Result<Monitor, RuleError> {
        Ok(Monitor {
            engine,
            rules: RuleSet::new(&config.rules, &config.models)?,
        })
    }

    /// Sets the drift baseline of model `model` (its index in `[[models]]`), decoded by the
    /// shell from its `reference = { file = … }`.
    pub fn set_baseline(&mut self, model: u16, baseline: &Baseline) {
        self.engine.set_baseline(model, baseline);
    }

    /// Sets the estimation reference of model `model` (`[models.estimation]`
    /// `reference = { file = … }`), decoded by the shell with
    /// [`crate::engine::decode_reference`].
    pub fn set_estimation_reference(
        &mut self,
        model: u16,
        windows: Vec<Vec<crate::engine::ReferenceRow>>,
    ) {
        self.engine.set_estimation_reference(model, windows);
    }

    /// Applies `config` to a restored monitor whose state it does not shape (same
    /// [`crate::checkpoint::shape_fingerprint`]): the state (join store, open windows, drift
    /// references and samples, detectors, estimation) is kept and the new settings apply
    /// from the next window that closes: the drift decision rules, and the rules rebuilt
    /// from `config.rules`, carrying over the state of each rule whose definition is
    /// unchanged ([`RuleSet::carry_over`]). On an error (a rule that does not compile) the
    /// monitor is unchanged.
    pub fn reconfigure(&mut self, config: &Config) -> Result<Reconfigured, RuleError> {
        let rules = RuleSet::new(&config.rules, &config.models)?;
        let changed = self.engine.reconfigure(&EngineConfig::from_config(config));
        let old = std::mem::replace(&mut self.rules, rules);
        let rule_changes = self.rules.carry_over(old);
        Ok(Reconfigured {
            drift_rules: changed
                .into_iter()
                .filter_map(|model| config.models.get(model as usize))
                .map(|model| model.name.clone())
                .collect(),
            rules: rule_changes,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Advances the watermark; the rules see the closed windows one window at a time.
    pub fn advance_watermark(&mut self, watermark: i64) -> Emitted {
        let metrics = self.engine.advance_watermark(watermark);
        self.evaluate(metrics)
    }

    /// End of input: every window closes.
    pub fn finish(&mut self) -> Emitted {
        let metrics = self.engine.finish();
        self.evaluate(metrics)
    }

    /// The rules see the closed windows' records one window at a time, then the checks
    /// that became due one window at a time (a check's window closed earlier: its event
    /// follows the records' events).
    /// The rules over a step's records and checks, one window at a time, in the order
    /// they are due (as [`Emitted::records_in_order`] writes them): the events come out
    /// in an order of event time, whatever steps the watermark took.
    fn evaluate(&mut self, metrics: Vec<MetricsRecord>) -> Emitted {
        let mut events = Vec::new();
        let checks = self.engine.take_estimation_checks();
        let due = self.engine.due_after_end();
        for group in in_due_order(&metrics, &checks, due) {
            events.extend(match group {
                Due::Window(records) => self.rules.evaluate_batch(records),
                Due::Checks(checked) => self.rules.evaluate_checks(checked),
            });
        }
        Emitted {
            metrics,
            checks,
            events,
            due_after_end: due,
            fit_failures: self.engine.take_estimation_failures(),
        }
    }
}
