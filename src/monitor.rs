//! The whole core as one unit: the engine, and the rules evaluated on the records it emits.
//! `replay` and the Kafka service both drive a `Monitor`, so they emit the same things.

use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::output::MetricsRecord;
use crate::rules::{RuleError, RuleEvent, RuleSet};

/// What one watermark step emitted: the closed windows' records, then the rule events
/// they caused.
#[derive(Debug, Default)]
pub struct Emitted {
    pub metrics: Vec<MetricsRecord>,
    pub events: Vec<RuleEvent>,
}

impl Emitted {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.events.is_empty()
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
            rules: RuleSet::new(&config.rules, &config.model_infos())?,
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

    fn evaluate(&mut self, metrics: Vec<MetricsRecord>) -> Emitted {
        let mut events = Vec::new();
        let mut start = 0;
        while start < metrics.len() {
            let window = &metrics[start].window.start;
            let end = metrics[start..]
                .iter()
                .position(|r| &r.window.start != window)
                .map_or(metrics.len(), |n| start + n);
            let batch: Vec<serde_json::Value> = metrics[start..end]
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
            events.extend(self.rules.evaluate_batch(&batch));
            start = end;
        }
        Emitted { metrics, events }
    }
}
