//! Synthetic traffic: predictions of two models and their delayed outcomes, with drift
//! injected part-way. Used by `demo`, by `generate` (into a cluster or into files) and to
//! make the example data.
//!
//! Deterministic for a seed: the caller passes the clock (`until(now)`), the generator
//! returns every message due by then, in send order. Models:
//! - `fraud`, binary (positive class `1`), a champion `1.0` and a shadow `2.0-shadow` that
//!   score the same requests; features `amount` (numeric) and `country` (categorical);
//!   segment `channel`. Its outcomes name no model, so one outcome joins both versions.
//! - `intent`, multiclass (`billing`, `tech`, `sales`, `other`) with a score object;
//!   features `length`, `lang`. Its outcomes name the model.
//!
//! After the drift time, amounts grow, a new country appears, and both models get worse.

use std::collections::VecDeque;

use serde_json::json;

/// Which topic a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Predictions,
    Outcomes,
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub stream: Stream,
    pub key: String,
    pub payload: String,
    /// Event time (and send time), epoch milliseconds.
    pub ts: i64,
}

#[derive(Debug, Clone)]
pub struct TrafficConfig {
    pub seed: u64,
    /// Requests per second (each `fraud` request gives two predictions: champion and shadow).
    pub rate_per_s: f64,
    /// Outcomes arrive uniformly between these delays after the prediction.
    pub min_label_delay_ms: i64,
    pub max_label_delay_ms: i64,
    /// Share of requests that never get an outcome.
    pub missing_outcome_rate: f64,
    /// Event time from which the data drifts; `None`: never.
    pub drift_at_ms: Option<i64>,
    pub start_ms: i64,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            seed: 7,
            rate_per_s: 200.0,
            min_label_delay_ms: 2_000,
            max_label_delay_ms: 30_000,
            missing_outcome_rate: 0.1,
            drift_at_ms: None,
            start_ms: 0,
        }
    }
}

/// A small deterministic PRNG (SplitMix64): no dependency, identical streams everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

const INTENTS: [&str; 4] = ["billing", "tech", "sales", "other"];

/// The generator. See the module documentation.
#[derive(Debug, Clone)]
pub struct TrafficGenerator {
    config: TrafficConfig,
    rng: SplitMix64,
    next_request_ms: f64,
    sequence: u64,
    /// Outcomes waiting for their send time, ordered by it.
    delayed: VecDeque<Message>,
}

impl TrafficGenerator {
    pub fn new(config: TrafficConfig) -> Self {
        TrafficGenerator {
            rng: SplitMix64::new(config.seed),
            next_request_ms: config.start_ms as f64,
            sequence: 0,
            delayed: VecDeque::new(),
            config,
        }
    }

    /// Every message due at or before `now_ms`, in send order.
    pub fn until(&mut self, now_ms: i64) -> Vec<Message> {
        self.due(|t| t <= now_ms as f64)
    }

    /// Every message due strictly before `end_ms`, in send order: the end of a run of a
    /// given duration, which holds requests in `[start, start + duration)` and no request
    /// at its end instant (it would open a window of one request).
    pub fn before(&mut self, end_ms: i64) -> Vec<Message> {
        self.due(|t| t < end_ms as f64)
    }

    fn due(&mut self, is_due: impl Fn(f64) -> bool) -> Vec<Message> {
        let mut out = Vec::new();
        let interval = 1000.0 / self.config.rate_per_s.max(0.001);
        while is_due(self.next_request_ms) {
            let ts = self.next_request_ms as i64;
            while self.delayed.front().is_some_and(|m| m.ts <= ts) {
                out.extend(self.delayed.pop_front());
            }
            self.request(ts, &mut out);
            self.next_request_ms += interval;
        }
        while self.delayed.front().is_some_and(|m| is_due(m.ts as f64)) {
            out.extend(self.delayed.pop_front());
        }
        out
    }

    /// Outcomes still waiting (for draining at the end of a finite run).
    pub fn drain(&mut self) -> Vec<Message> {
        self.delayed.drain(..).collect()
    }

    fn drifted(&self, ts: i64) -> bool {
        self.config.drift_at_ms.is_some_and(|d| ts >= d)
    }

    fn request(&mut self, ts: i64, out: &mut Vec<Message>) {
        self.sequence += 1;
        if self.sequence % 3 == 0 {
            self.intent_request(ts, out)
        } else {
            self.fraud_request(ts, out)
        }
    }

    fn schedule_outcome(&mut self, ts: i64, key: String, payload: serde_json::Value) {
        if self.rng.unit() < self.config.missing_outcome_rate {
            return;
        }
        let span = (self.config.max_label_delay_ms - self.config.min_label_delay_ms).max(0);
        let delay = self.config.min_label_delay_ms + (self.rng.unit() * span as f64) as i64;
        let at = ts + delay;
        let mut payload = payload;
        payload["timestamp"] = json!(at);
        let message = Message {
            stream: Stream::Outcomes,
            key,
            payload: payload.to_string(),
            ts: at,
        };
        let position = self.delayed.partition_point(|m| m.ts <= at);
        self.delayed.insert(position, message);
    }

    fn fraud_request(&mut self, ts: i64, out: &mut Vec<Message>) {
        let drifted = self.drifted(ts);
        let id = format!("f-{}", self.sequence);
        let countries: &[&str] = if drifted {
            &["DE", "FR", "US", "BR", "NG"]
        } else {
            &["DE", "FR", "US", "BR"]
        };
        let country = *self.rng.pick(countries);
        let channel = *self.rng.pick(&["web", "app", "store"]);
        let log_amount = 3.5 + 1.0 * self.rng.normal() + if drifted { 0.8 } else { 0.0 };
        let amount = (log_amount.exp() * 100.0).round() / 100.0;
        // Ground truth: risk grows with the amount and for some countries.
        let country_risk = match country {
            "BR" => 0.8,
            "NG" => 1.5,
            "US" => 0.3,
            _ => 0.0,
        };
        let z = (log_amount - 3.5) * 1.6 + country_risk - 1.6;
        let truth = self.rng.unit() < sigmoid(z);
        // The models learned the old world: after drift they under-react to the new country
        // and to large amounts.
        let learned_z = if drifted {
            (log_amount.min(4.5) - 3.5) * 1.6 + country_risk.min(0.8) - 1.6
        } else {
            z
        };
        for (version, noise) in [("1.0", 0.9), ("2.0-shadow", 0.6)] {
            let score = sigmoid(learned_z + noise * self.rng.normal());
            let score = (score * 10_000.0).round() / 10_000.0;
            let payload = json!({
                "id": id, "model": "fraud", "model_version": version, "timestamp": ts,
                "prediction": if score >= 0.5 { 1 } else { 0 }, "score": score,
                "features": { "amount": amount, "country": country },
                "segment": { "channel": channel },
            });
            out.push(Message {
                stream: Stream::Predictions,
                key: id.clone(),
                payload: payload.to_string(),
                ts,
            });
        }
        self.schedule_outcome(
            ts,
            id.clone(),
            json!({ "id": id, "actual": if truth { 1 } else { 0 } }),
        );
    }

    fn intent_request(&mut self, ts: i64, out: &mut Vec<Message>) {
        let drifted = self.drifted(ts);
        let id = format!("i-{}", self.sequence);
        let truth_index = (self.rng.next_u64() % 4) as usize;
        let lang = *self.rng.pick(if drifted {
            &["en", "de", "es"]
        } else {
            &["en", "en", "de"]
        });
        let length = (40.0 + 15.0 * truth_index as f64 + 12.0 * self.rng.normal())
            .max(1.0)
            .round();
        let accuracy = if drifted && lang == "es" { 0.45 } else { 0.85 };
        let predicted_index = if self.rng.unit() < accuracy {
            truth_index
        } else {
            (truth_index + 1 + (self.rng.next_u64() % 3) as usize) % 4
        };
        // A score object that puts most mass on the predicted class.
        let mut weights = [0.0f64; 4];
        for (i, w) in weights.iter_mut().enumerate() {
            *w = 0.2 + self.rng.unit() + if i == predicted_index { 2.5 } else { 0.0 };
        }
        let total: f64 = weights.iter().sum();
        let score: serde_json::Map<String, serde_json::Value> = INTENTS
            .iter()
            .zip(weights)
            .map(|(class, w)| {
                (
                    class.to_string(),
                    json!((w / total * 10_000.0).round() / 10_000.0),
                )
            })
            .collect();
        let payload = json!({
            "id": id, "model": "intent", "model_version": "2024-06", "timestamp": ts,
            "prediction": INTENTS[predicted_index], "score": score,
            "features": { "length": length, "lang": lang },
        });
        out.push(Message {
            stream: Stream::Predictions,
            key: id.clone(),
            payload: payload.to_string(),
            ts,
        });
        self.schedule_outcome(
            ts,
            id.clone(),
            json!({ "id": id, "model": "intent", "actual": INTENTS[truth_index] }),
        );
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The configuration that matches the generated traffic (used by `demo` and the examples).
pub const DEMO_MODELS_TOML: &str = r#"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount", "country"]
segments = ["channel"]
reference_size = 2000

# Performance estimated from the scores before the labels arrive (CBPE, docs/estimation.md).
[models.estimation]
method = "cbpe"
reference_size = 600

[[models]]
name = "intent"
task = "multiclass"
features = ["length", "lang"]
reference_size = 1000
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_ordered() {
        let config = TrafficConfig {
            rate_per_s: 50.0,
            ..TrafficConfig::default()
        };
        let a = TrafficGenerator::new(config.clone()).until(60_000);
        let b = TrafficGenerator::new(config).until(60_000);
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].ts <= w[1].ts));
        let outcomes = a.iter().filter(|m| m.stream == Stream::Outcomes).count();
        let predictions = a.len() - outcomes;
        assert!(
            predictions > 3000 && outcomes > 1000,
            "{predictions} {outcomes}"
        );
    }

    #[test]
    fn a_run_of_a_duration_has_no_request_at_its_end() {
        let config = TrafficConfig {
            rate_per_s: 5.0,
            start_ms: 1_000_000,
            ..TrafficConfig::default()
        };
        let end = config.start_ms + 20 * 60_000;
        let mut generator = TrafficGenerator::new(config.clone());
        let messages = generator.before(end);
        let predictions: Vec<&Message> = messages
            .iter()
            .filter(|m| m.stream == Stream::Predictions)
            .collect();
        assert!(predictions.iter().all(|m| m.ts < end));
        // 20 min at 5/s = 6000 requests: every third an `intent` prediction, the others two
        // `fraud` predictions (champion and shadow).
        assert_eq!(predictions.len(), 2000 + 4000 * 2);
        // `until` includes the end instant: the request due exactly then.
        let mut inclusive = TrafficGenerator::new(config);
        let with_end = inclusive.until(end);
        assert!(with_end
            .iter()
            .any(|m| m.stream == Stream::Predictions && m.ts == end));
        // What `before` left is what comes next.
        assert_eq!(
            generator.until(end).first().map(|m| m.ts),
            Some(end),
            "the request at the end instant is the next one"
        );
    }
}
