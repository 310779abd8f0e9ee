//! Rules over a replayed stream: the alert fires in exactly the window where the condition
//! has held `for_windows` times (computed here from the metrics records themselves), once,
//! and the retrain trigger honours the cooldown.

mod common;

use serde_json::Value;

fn replay(extra: &str) -> Vec<Value> {
    let root = env!("CARGO_MANIFEST_DIR");
    let base = std::fs::read_to_string(format!("{root}/examples/feedback-loop.toml")).unwrap();
    let config = feedback_loop::config::from_toml_str(&format!("{base}\n{extra}"))
        .expect("config with rules");
    let (predictions, outcomes) = common::example_inputs();
    common::replay_lines(config, &predictions, &outcomes)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const RULE: &str = r#"
[[rules]]
name = "accuracy-drop"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.70
resolve_threshold = 0.75
min_samples = 50
for_windows = 2
severity = "critical"
retrain = true
cooldown = "5m"
"#;

#[test]
fn alert_fires_where_the_condition_held_for_windows_times() {
    let lines = replay(RULE);
    let schema = |v: &Value| v["schema"].as_str().unwrap_or("").to_string();
    // Independent expectation from the records: the second consecutive window below 0.70
    // (windows with fewer than 50 pairs ignored) of fraud 1.0, unsegmented.
    let mut streak = 0;
    let mut expected_fire = None;
    for r in lines
        .iter()
        .filter(|v| schema(v) == "feedback-loop.metrics.v1")
    {
        if r["model"] != "fraud" || r["model_version"] != "1.0" || r.get("segment").is_some() {
            continue;
        }
        if r["counts"]["joined"].as_u64().unwrap() < 50 {
            continue;
        }
        let accuracy = r["classification"]["accuracy"].as_f64().unwrap();
        streak = if accuracy < 0.70 { streak + 1 } else { 0 };
        if streak == 2 {
            expected_fire = Some(r["window"]["start"].as_str().unwrap().to_string());
            break;
        }
    }
    let expected_fire = expected_fire.expect("the example data drifts: accuracy falls below 0.70");
    let alerts: Vec<&Value> = lines
        .iter()
        .filter(|v| schema(v) == "feedback-loop.alert.v1" && v["model_version"] == "1.0")
        .collect();
    let firing: Vec<&&Value> = alerts.iter().filter(|a| a["status"] == "firing").collect();
    assert!(!firing.is_empty(), "no alert fired");
    assert_eq!(firing[0]["window"]["start"], expected_fire.as_str());
    assert_eq!(firing[0]["rule"], "accuracy-drop");
    assert_eq!(firing[0]["severity"], "critical");
    // No second firing of the same episode before a resolve.
    let mut state = "resolved";
    for alert in &alerts {
        let status = alert["status"].as_str().unwrap();
        assert_ne!(status, state, "two {status} events in a row: {alert}");
        state = if status == "firing" {
            "firing"
        } else {
            "resolved"
        };
    }
    // The trigger names the rule and carries the evidence.
    let triggers: Vec<&Value> = lines
        .iter()
        .filter(|v| schema(v) == "feedback-loop.retrain.v1")
        .collect();
    assert!(!triggers.is_empty());
    assert_eq!(triggers[0]["rules"][0], "accuracy-drop");
    assert!(triggers[0]["evidence"][0]["value"].as_f64().unwrap() < 0.70);
    // Cooldown: triggers of one model at least 5 minutes of event time apart.
    let ends: Vec<i64> = triggers
        .iter()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t["window"]["end"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    assert!(ends.windows(2).all(|w| w[1] - w[0] >= 300_000), "{ends:?}");
    // Deterministic: a second run gives the same lines.
    assert_eq!(lines, replay(RULE));
}
