//! Replay with `[models.estimation]` (docs/estimation.md): the multiclass example model
//! `intent` gets an `estimated` object once its reference is fitted, the other model's
//! records are byte for byte those of a run without the section, a rule can watch an
//! estimated metric, and a rule can watch the estimation check's error.

use serde_json::Value;

fn replay(extra: &str) -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let base = std::fs::read_to_string(format!("{root}/examples/feedback-loop.toml"))
        .expect("example config");
    let config = feedback_loop::config::from_toml_str(&format!("{base}\n{extra}"))
        .expect("config with estimation");
    let predictions =
        std::fs::read(format!("{root}/examples/predictions.jsonl")).expect("predictions");
    let outcomes = std::fs::read(format!("{root}/examples/outcomes.jsonl")).expect("outcomes");
    let mut out = Vec::new();
    feedback_loop::replay::replay(
        &config.into(),
        &predictions,
        &outcomes,
        &mut out,
        &mut Vec::new(),
    )
    .expect("replay runs");
    String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Appended after the example's last `[[models]]` (`intent`, multiclass).
const ESTIMATION: &str = r#"
[models.estimation]
method = "cbpe"
calibration = "isotonic"
reference_size = 300

[[rules]]
name = "intent-estimated-accuracy"
model = "intent"
metric = "estimated.metrics.accuracy.value"
op = "<"
threshold = 0.2
"#;

#[test]
fn replay_emits_estimates_for_the_configured_model_only() {
    let with = replay(ESTIMATION);
    let without = replay("");
    let parse = |l: &String| serde_json::from_str::<Value>(l).expect("JSON line");
    let metrics = |lines: &[String], model: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| {
                let v = parse(l);
                v["schema"] == "feedback-loop.metrics.v1" && v["model"] == model
            })
            .cloned()
            .collect()
    };
    assert_eq!(metrics(&with, "fraud"), metrics(&without, "fraud"));
    assert!(without.iter().all(|l| !l.contains("\"estimated\"")));

    let intent: Vec<Value> = metrics(&with, "intent").iter().map(parse).collect();
    let estimated: Vec<&Value> = intent
        .iter()
        .filter(|r| r.get("estimated").is_some())
        .collect();
    assert!(
        estimated.len() >= 3,
        "{} of {} windows estimated",
        estimated.len(),
        intent.len()
    );
    // The reference's windows come first and carry none.
    assert!(intent[0].get("estimated").is_none());
    for r in &estimated {
        let e = &r["estimated"];
        assert!(r.get("segment").is_none());
        assert_eq!(e["method"], "cbpe");
        assert_eq!(e["calibrated"], true);
        assert!(e["reference"]["pairs"].as_u64() >= Some(300));
        // Every intent prediction has scores: the estimate covers the window's predictions.
        assert_eq!(e["n"], r["counts"]["predictions"]);
        for metric in ["accuracy", "precision", "recall", "f1", "roc_auc"] {
            let m = &e["metrics"][metric];
            let value = m["value"].as_f64().expect("a value");
            assert!((0.0..=1.0).contains(&value), "{metric} {value}");
            assert!(m["lower"].as_f64() <= Some(value) && Some(value) <= m["upper"].as_f64());
            assert!(m["alert"].is_boolean());
        }
    }
    // Deterministic.
    assert_eq!(with, replay(ESTIMATION));
}

/// Each window with an estimate gets one `feedback-loop.estimation-check.v1` line, once its
/// predictions are all joined or expired: after the metrics records of the window that
/// closes at its end + `join.max_label_delay` (1 minute in the example: the next window).
#[test]
fn replay_emits_one_estimation_check_per_estimated_window_after_its_labels() {
    let with = replay(ESTIMATION);
    let parse = |l: &String| serde_json::from_str::<Value>(l).expect("JSON line");
    let lines: Vec<Value> = with.iter().map(parse).collect();
    let estimated: Vec<&Value> = lines
        .iter()
        .filter(|v| v["schema"] == "feedback-loop.metrics.v1" && v.get("estimated").is_some())
        .collect();
    let checks: Vec<(usize, &Value)> = lines
        .iter()
        .enumerate()
        .filter(|(_, v)| v["schema"] == "feedback-loop.estimation-check.v1")
        .collect();
    assert_eq!(
        checks.len(),
        estimated.len(),
        "one check per estimated window"
    );
    assert!(replay("").iter().all(|l| !l.contains("estimation-check")));
    for ((at, check), record) in checks.iter().zip(&estimated) {
        assert_eq!(check["model"], "intent");
        assert_eq!(check["window"], record["window"]);
        assert_eq!(check["n"], record["estimated"]["n"]);
        let (labeled, unlabeled) = (check["labeled"].as_u64(), check["unlabeled"].as_u64());
        assert_eq!(
            labeled.zip(unlabeled).map(|(l, u)| l + u),
            check["n"].as_u64()
        );
        assert!(labeled > Some(0), "labels were joined: {check}");
        // The line before is a metrics record of a window that ends at least one minute
        // (max_label_delay) after the check's window, or the last window at the end.
        let before = &lines[at - 1];
        assert!(
            before["schema"] == "feedback-loop.metrics.v1"
                || before["schema"] == "feedback-loop.estimation-check.v1",
            "{before}"
        );
        for metric in ["accuracy", "precision", "recall", "f1", "roc_auc"] {
            let m = &check["metrics"][metric];
            let e = &record["estimated"]["metrics"][metric];
            assert_eq!(m["estimated"], e["value"], "{metric}");
            assert_eq!(m["lower"], e["lower"]);
            assert_eq!(m["upper"], e["upper"]);
            let (est, real) = (m["estimated"].as_f64(), m["realized"].as_f64());
            if let (Some(est), Some(real)) = (est, real) {
                let error = m["error"].as_f64().expect("an error");
                assert!((error - (est - real)).abs() < 1e-12);
                let inside = m["lower"].as_f64() <= Some(real) && Some(real) <= m["upper"].as_f64();
                assert_eq!(m["within_band"].as_bool(), Some(inside));
            }
        }
    }
    let end = |v: &Value| v["window"]["end"].as_str().map(str::to_string);
    for (at, check) in &checks {
        let previous_metrics = lines[..*at]
            .iter()
            .rev()
            .find(|v| v["schema"] == "feedback-loop.metrics.v1")
            .expect("a metrics record before");
        // Windows are 1 minute: the record before closes the window after the check's.
        assert!(
            end(previous_metrics) > end(check),
            "{} then {}",
            previous_metrics["record_id"],
            check["record_id"]
        );
    }
}

/// A rule on the check's error (issue 18): `abs_error >= 0` crosses on every check with a
/// defined accuracy, so it fires on the first check with `labeled >= min_samples`.
const CHECK_RULE: &str = r#"
[[rules]]
name = "intent-accuracy-check"
model = "intent"
metric = "estimation_check.metrics.accuracy.abs_error"
op = ">="
threshold = 0.0
min_samples = 1
"#;

#[test]
fn a_rule_on_the_estimation_check_fires_on_the_check_after_its_line() {
    let with = replay(&format!("{ESTIMATION}{CHECK_RULE}"));
    let without = replay(ESTIMATION);
    let parse = |l: &String| serde_json::from_str::<Value>(l).expect("JSON line");
    let lines: Vec<Value> = with.iter().map(parse).collect();
    // Records, checks and the other rule's events are those of the run without the rule.
    let not_the_rule = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| parse(l)["rule"] != "intent-accuracy-check")
            .cloned()
            .collect()
    };
    assert_eq!(not_the_rule(&with), without);

    let events: Vec<(usize, &Value)> = lines
        .iter()
        .enumerate()
        .filter(|(_, v)| v["rule"] == "intent-accuracy-check")
        .collect();
    assert_eq!(events.len(), 1, "fires once, never resolves (|error| >= 0)");
    let (at, alert) = events[0];
    assert_eq!(alert["schema"], "feedback-loop.alert.v1");
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        alert["metric"],
        "estimation_check.metrics.accuracy.abs_error"
    );
    let (check_at, check) = lines
        .iter()
        .enumerate()
        .find(|(_, v)| {
            v["schema"] == "feedback-loop.estimation-check.v1"
                && v["metrics"]["accuracy"]["abs_error"].is_number()
        })
        .expect("a check with an accuracy error");
    assert_eq!(alert["record_id"], check["record_id"]);
    assert_eq!(alert["window"], check["window"]);
    assert_eq!(alert["value"], check["metrics"]["accuracy"]["abs_error"]);
    let record_id = check["record_id"].as_str().expect("a record id");
    assert!(record_id.ends_with("/estimation-check"), "{record_id}");
    assert_eq!(
        alert["alert_id"],
        format!("intent-accuracy-check/{record_id}")
    );
    // After the check's line, and after every record and check of the step that emitted it.
    assert!(at > check_at, "event at {at}, check at {check_at}");
    for line in &lines[check_at + 1..at] {
        assert!(
            line["schema"] == "feedback-loop.metrics.v1"
                || line["schema"] == "feedback-loop.estimation-check.v1"
                || line["schema"] == "feedback-loop.alert.v1"
                || line["schema"] == "feedback-loop.retrain.v1",
            "{line}"
        );
    }
    // Every check carries abs_error = |error|.
    for v in lines
        .iter()
        .filter(|v| v["schema"] == "feedback-loop.estimation-check.v1")
    {
        for metric in ["accuracy", "precision", "recall", "f1", "roc_auc"] {
            let m = &v["metrics"][metric];
            assert_eq!(
                m["abs_error"].as_f64(),
                m["error"].as_f64().map(f64::abs),
                "{metric}"
            );
        }
    }
    assert_eq!(with, replay(&format!("{ESTIMATION}{CHECK_RULE}")));
}
