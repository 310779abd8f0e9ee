//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod kafka;

use serde_json::Value;

/// Numbers must agree within this (absolute, or relative above 1).
pub const TOLERANCE: f64 = 1e-9;

/// Compares two JSON values; numbers within TOLERANCE (absolute, or relative above 1).
pub fn compare(path: &str, expected: &Value, actual: &Value, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            let scale = e.abs().max(1.0);
            let close = (e - a).abs() <= TOLERANCE * scale;
            if !close {
                problems.push(format!("{path}: expected {e}, got {a}"));
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                match a.get(key) {
                    Some(av) => compare(&format!("{path}.{key}"), ev, av, problems),
                    None => problems.push(format!("{path}.{key}: missing")),
                }
            }
            for key in a.keys().filter(|k| !e.contains_key(*k)) {
                problems.push(format!("{path}.{key}: not expected"));
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                compare(&format!("{path}[{i}]"), ev, av, problems);
            }
        }
        (e, a) if e == a => {}
        (e, a) => problems.push(format!("{path}: expected {e}, got {a}")),
    }
}

/// The sum of the samples of every series whose line starts with `prefix` in a Prometheus
/// text exposition (e.g. `feedback_loop_input_records_total{`).
pub fn metric_sum(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A child process, killed if the test ends (or fails) before it stops.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
