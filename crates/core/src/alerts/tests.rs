//! Tests of the rules: sequences of small metrics records through a [`RuleSet`], checking the
//! exact window of each event, the ids, the cooldown, muting, segments, wildcard rules,
//! validation messages and checkpoint round trips.

use super::*;
use crate::output::parse_rfc3339;
use serde_json::{json, Value};

fn models() -> Vec<ModelConfig> {
    serde_json::from_value(json!([
        { "name": "fraud", "task": "binary", "positive_class": "1",
          "features": ["amount", "geo.country"], "segments": ["channel"] },
        { "name": "churn", "task": "multiclass" },
        { "name": "price", "task": "regression", "features": ["sqft"] },
    ]))
    .expect("test models")
}

/// The typed record of a JSON one (the tests build and edit records as JSON).
fn typed(record: &Value) -> MetricsRecord {
    serde_json::from_value(record.clone()).expect("a metrics record")
}

fn typed_all(records: &[Value]) -> Vec<MetricsRecord> {
    records.iter().map(typed).collect()
}

fn parse_duration_ms(text: &str) -> Result<i64, String> {
    Duration::parse(text).map(|d| d.as_millis_i64())
}

/// A rule from JSON (the same serde structs the TOML goes through).
fn rule(fields: Value) -> RuleConfig {
    serde_json::from_value(fields).expect("test rule config")
}

fn f1_rule() -> RuleConfig {
    rule(json!({
        "name": "f1-drop", "model": "fraud", "metric": "classification.f1", "op": "<",
        "threshold": 0.8, "resolve_threshold": 0.85, "min_samples": 200, "for_windows": 2,
        "severity": "critical", "retrain": true, "cooldown": "1h"
    }))
}

fn rules(configs: &[RuleConfig]) -> RuleSet {
    RuleSet::new(configs, &models()).expect("valid rules")
}

/// `2026-01-01T<hh:mm>:00Z` for minute `index` of the day.
fn minute(index: u32) -> String {
    format!("2026-01-01T{:02}:{:02}:00Z", index / 60, index % 60)
}

/// A metrics record of model `model`, version `version`, window `[minute(index),
/// minute(index + 1))`, with the given F1 (`None` = null) and joined count.
fn record_of(
    model: &str,
    version: Option<&str>,
    index: u32,
    f1: Option<f64>,
    joined: u64,
) -> Value {
    json!({
        "schema": "feedback-loop.metrics.v1",
        "record_id": format!("{model}/{}/{}", version.unwrap_or("-"), minute(index)),
        "model": model,
        "model_version": version,
        "window": { "start": minute(index), "end": minute(index + 1) },
        "counts": { "predictions": joined, "outcomes": joined, "joined": joined,
                    "expired_predictions": 0, "orphan_outcomes": 0, "duplicates": 0,
                    "late": 0, "invalid": 0, "label_coverage": 1.0 },
        "classification": {
            "accuracy": f1, "precision": f1, "recall": f1, "f1": f1,
            "averages": { "micro": {}, "macro": {}, "weighted": {} },
            "per_class": {}, "confusion_matrix": { "labels": [], "matrix": [] },
            "roc_auc": null, "log_loss": null, "brier": null },
    })
}

fn record(index: u32, f1: f64) -> Value {
    record_of("fraud", Some("1.0"), index, Some(f1), 500)
}

fn alerts(events: &[RuleEvent]) -> Vec<&AlertEvent> {
    events
        .iter()
        .filter_map(|event| match event {
            RuleEvent::Alert(alert) => Some(alert),
            RuleEvent::Retrain(_) => None,
        })
        .collect()
}

fn triggers(events: &[RuleEvent]) -> Vec<&RetrainTrigger> {
    events
        .iter()
        .filter_map(|event| match event {
            RuleEvent::Retrain(trigger) => Some(trigger),
            RuleEvent::Alert(_) => None,
        })
        .collect()
}

/// Feeds the F1 values one window each; returns the events per window index.
fn run(set: &mut RuleSet, f1s: &[f64]) -> Vec<Vec<RuleEvent>> {
    f1s.iter()
        .enumerate()
        .map(|(index, f1)| set.evaluate(&typed(&record(index as u32, *f1))))
        .collect()
}

fn statuses(per_window: &[Vec<RuleEvent>]) -> Vec<Vec<AlertStatus>> {
    per_window
        .iter()
        .map(|events| alerts(events).iter().map(|alert| alert.status).collect())
        .collect()
}

use AlertStatus::{Firing, Resolved};

#[test]
fn fires_exactly_when_the_condition_held_for_windows_and_not_again_while_firing() {
    let mut set = rules(&[f1_rule()]);
    let per_window = run(&mut set, &[0.9, 0.7, 0.9, 0.7, 0.71, 0.6, 0.5]);
    assert_eq!(
        statuses(&per_window),
        vec![vec![], vec![], vec![], vec![], vec![Firing], vec![], vec![]]
    );
    let fired = alerts(&per_window[4])[0];
    assert_eq!(fired.window.start_text(), "2026-01-01T00:04:00Z");
    assert_eq!(fired.fired_at, "2026-01-01T00:05:00Z");
    assert_eq!(fired.value, 0.71);
    assert_eq!(fired.record_id, "fraud/1.0/2026-01-01T00:04:00Z");
    assert_eq!(fired.alert_id, "f1-drop/fraud/1.0/2026-01-01T00:04:00Z");
    assert_eq!(
        fired.summary,
        "fraud 1.0: classification.f1 = 0.71 < 0.8 for 2 windows (window 2026-01-01T00:04:00Z)"
    );
    assert_eq!(set.firing_alerts().count(), 1);
}

#[test]
fn resolve_needs_the_resolve_threshold() {
    let mut set = rules(&[f1_rule()]);
    // 0.82 and 0.849 are between threshold (0.8) and resolve threshold (0.85): still firing.
    let per_window = run(&mut set, &[0.7, 0.7, 0.82, 0.849, 0.85, 0.9]);
    assert_eq!(
        statuses(&per_window),
        vec![vec![], vec![Firing], vec![], vec![], vec![Resolved], vec![]]
    );
    let fired = alerts(&per_window[1])[0];
    let resolved = alerts(&per_window[4])[0];
    assert_eq!(resolved.alert_id, fired.alert_id, "one episode, one id");
    assert_eq!(resolved.fired_at, fired.fired_at);
    assert_eq!(resolved.value, 0.85);
    assert_eq!(resolved.window.start_text(), minute(4));
    assert_eq!(resolved.resolve_threshold, 0.85);
    assert_eq!(set.firing_alerts().count(), 0);
}

#[test]
fn resolve_threshold_defaults_to_threshold_and_ops_mirror() {
    let ge = rule(
        json!({"name": "r", "model": "fraud", "metric": "classification.f1",
                         "op": ">=", "threshold": 0.5}),
    );
    let mut set = rules(&[ge]);
    // >= 0.5 crosses at 0.5 exactly; resolves only when < 0.5.
    let per_window = run(&mut set, &[0.4, 0.5, 0.5, 0.49]);
    assert_eq!(
        statuses(&per_window),
        vec![vec![], vec![Firing], vec![], vec![Resolved]]
    );
    assert!(Op::Lt.resolves(0.85, 0.8, 0.85));
    assert!(!Op::Le.resolves(0.85, 0.8, 0.85));
    assert!(Op::Gt.resolves(0.3, 0.5, 0.3));
    assert!(Op::Eq.resolves(0.0, 1.0, 1.0));
    assert!(!Op::Ne.resolves(0.0, 1.0, 1.0));
}

#[test]
fn refire_after_resolve_is_a_new_episode_with_a_new_id() {
    let mut set = rules(&[f1_rule()]);
    let per_window = run(&mut set, &[0.7, 0.7, 0.9, 0.7, 0.7]);
    assert_eq!(
        statuses(&per_window),
        vec![vec![], vec![Firing], vec![Resolved], vec![], vec![Firing]]
    );
    let first = alerts(&per_window[1])[0];
    let resolved = alerts(&per_window[2])[0];
    let second = alerts(&per_window[4])[0];
    assert_eq!(first.alert_id, resolved.alert_id);
    assert_ne!(first.alert_id, second.alert_id);
    assert_eq!(second.alert_id, "f1-drop/fraud/1.0/2026-01-01T00:04:00Z");

    // Deterministic: a second run over the same records gives byte-identical events.
    let mut again = rules(&[f1_rule()]);
    let rerun = run(&mut again, &[0.7, 0.7, 0.9, 0.7, 0.7]);
    let as_json = |windows: &[Vec<RuleEvent>]| -> Vec<String> {
        windows
            .iter()
            .flatten()
            .map(|event| event.to_json().expect("serializes"))
            .collect()
    };
    assert_eq!(as_json(&per_window), as_json(&rerun));
}

#[test]
fn cooldown_suppresses_a_second_trigger_and_lets_one_through_after_it() {
    let mut config = f1_rule();
    config.for_windows = 1;
    config.resolve_threshold = None;
    config.cooldown = "10m".into();
    let mut set = rules(&[config]);
    // Bad in even windows, good in odd ones: fires at 0, 2, 4, … (window ends 00:01, 00:03 …).
    let f1s: Vec<f64> = (0..13)
        .map(|i| if i % 2 == 0 { 0.5 } else { 0.9 })
        .collect();
    let per_window = run(&mut set, &f1s);
    let fired: Vec<usize> = (0..13)
        .filter(|i| alerts(&per_window[*i]).iter().any(|a| a.status == Firing))
        .collect();
    assert_eq!(fired, vec![0, 2, 4, 6, 8, 10, 12]);
    let triggered: Vec<usize> = (0..13)
        .filter(|i| !triggers(&per_window[*i]).is_empty())
        .collect();
    // First at end 00:01; the next allowed window end is >= 00:11, i.e. window 10.
    assert_eq!(triggered, vec![0, 10]);
    let trigger = triggers(&per_window[10])[0];
    assert_eq!(trigger.trigger_id, "fraud/1.0/2026-01-01T00:10:00Z");
    assert_eq!(trigger.created_at, "2026-01-01T00:11:00Z");
    assert_eq!(trigger.rules, vec!["f1-drop".to_string()]);
    assert_eq!(trigger.evidence.len(), 1);
    assert_eq!(trigger.evidence[0].value, 0.5);
    assert_eq!(
        trigger.evidence[0].record_id,
        "fraud/1.0/2026-01-01T00:10:00Z"
    );
    assert_eq!(per_window[10][1].kafka_key(), "fraud");
    assert_eq!(per_window[10][1].schema(), RETRAIN_SCHEMA);
}

#[test]
fn rules_firing_in_the_same_window_share_one_trigger() {
    let coverage = rule(json!({
        "name": "coverage", "model": "fraud", "metric": "counts.label_coverage", "op": "<",
        "threshold": 0.5, "retrain": true, "cooldown": "5m"
    }));
    let accuracy = rule(json!({
        "name": "accuracy", "model": "*", "metric": "classification.accuracy", "op": "<",
        "threshold": 0.8, "retrain": true
    }));
    let mut set = rules(&[coverage, accuracy]);
    let mut bad = record(0, 0.5);
    bad["counts"]["label_coverage"] = json!(0.2);
    let other_model = record_of("churn", None, 0, Some(0.5), 500);
    let events = set.evaluate_batch(&typed_all(&[bad, other_model]));
    assert_eq!(alerts(&events).len(), 3);
    let triggers = triggers(&events);
    assert_eq!(triggers.len(), 2, "one per model");
    assert_eq!(triggers[0].model, "fraud");
    assert_eq!(triggers[0].rules, vec!["coverage", "accuracy"]);
    assert_eq!(triggers[0].evidence.len(), 2);
    assert_eq!(triggers[1].model, "churn");
    assert_eq!(triggers[1].trigger_id, "churn/-/2026-01-01T00:00:00Z");
    // The cooldown of the first rule in the evidence (coverage, 5m) applies to fraud.
    assert_eq!(
        set.state().cooldowns["fraud"].quiet_until_ms,
        parse_rfc3339("2026-01-01T00:06:00Z").expect("valid time")
    );
    assert_eq!(
        set.state().cooldowns["churn"].quiet_until_ms,
        parse_rfc3339("2026-01-01T01:01:00Z").expect("valid time")
    );
}

#[test]
fn min_samples_mutes_small_windows() {
    let mut set = rules(&[f1_rule()]);
    let events: Vec<Vec<RuleEvent>> = vec![
        set.evaluate(&typed(&record_of("fraud", Some("1.0"), 0, Some(0.5), 500))),
        // Muted: 199 < 200. Does not count, does not break the streak.
        set.evaluate(&typed(&record_of("fraud", Some("1.0"), 1, Some(0.5), 199))),
        set.evaluate(&typed(&record_of("fraud", Some("1.0"), 2, Some(0.5), 200))),
        // Muted while firing: a good value does not resolve.
        set.evaluate(&typed(&record_of("fraud", Some("1.0"), 3, Some(0.99), 10))),
        set.evaluate(&typed(&record_of("fraud", Some("1.0"), 4, Some(0.99), 300))),
    ];
    assert_eq!(
        statuses(&events),
        vec![vec![], vec![], vec![Firing], vec![], vec![Resolved]]
    );
}

#[test]
fn no_data_breaks_the_streak_and_does_not_resolve() {
    let mut set = rules(&[f1_rule()]);
    let events: Vec<Vec<RuleEvent>> = [Some(0.5), None, Some(0.5), Some(0.5), None, Some(0.9)]
        .iter()
        .enumerate()
        .map(|(index, f1)| {
            set.evaluate(&typed(&record_of(
                "fraud",
                Some("1.0"),
                index as u32,
                *f1,
                500,
            )))
        })
        .collect();
    assert_eq!(
        statuses(&events),
        vec![vec![], vec![], vec![], vec![Firing], vec![], vec![Resolved]]
    );
    // Absent (not only null) is no data too.
    let mut set = rules(&[f1_rule()]);
    let mut absent = record(1, 0.5);
    absent["classification"] = json!(null);
    assert!(set.evaluate(&typed(&record(0, 0.5))).is_empty());
    assert!(set.evaluate(&typed(&absent)).is_empty());
    assert!(
        set.evaluate(&typed(&record(2, 0.5))).is_empty(),
        "streak was reset"
    );
}

#[test]
fn segment_filter_watches_only_that_slice() {
    let mut web = f1_rule();
    web.name = "f1-web".into();
    web.for_windows = 1;
    web.segment = Some(BTreeMap::from([("channel".to_string(), "web".to_string())]));
    let mut plain = f1_rule();
    plain.for_windows = 1;
    let mut set = rules(&[plain, web]);
    let segment_record = |value: &str, f1: f64| {
        let mut one = record(0, f1);
        one["segment"] = json!({ "channel": value });
        one["record_id"] = json!(format!("fraud/1.0/{}/channel={value}", minute(0)));
        one
    };
    let events = set.evaluate_batch(&typed_all(&[
        record(0, 0.9),
        segment_record("app", 0.1),
        segment_record("web", 0.5),
    ]));
    let fired = alerts(&events);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].rule, "f1-web");
    assert_eq!(
        fired[0].segment,
        Some(BTreeMap::from([("channel".to_string(), "web".to_string())]))
    );
    assert_eq!(
        fired[0].alert_id,
        "f1-web/fraud/1.0/2026-01-01T00:00:00Z/channel=web"
    );
    assert!(fired[0].summary.starts_with("fraud 1.0 [channel=web]: "));
    let json: Value = serde_json::from_str(&events[0].to_json().expect("json")).expect("parse");
    assert_eq!(json["segment"]["channel"], "web");
    let firing: Vec<_> = set.firing_alerts().collect();
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].0, "f1-web");
    assert_eq!(firing[0].4, "critical");
    assert!(firing[0].3.is_some());
}

#[test]
fn wildcard_applies_to_every_model_where_the_path_is_valid() {
    let any_f1 = rule(
        json!({"name": "any-f1", "model": "*", "metric": "classification.f1",
                             "op": "<", "threshold": 0.8}),
    );
    let any_mae = rule(
        json!({"name": "any-mae", "model": "*", "metric": "regression.mae",
                              "op": ">", "threshold": 10.0}),
    );
    let mut set = rules(&[any_f1, any_mae]);
    let mut price = record_of("price", Some("7"), 0, Some(0.1), 500);
    price["regression"] = json!({ "mae": 12.5, "rmse": 13.0, "mape": 0.1, "r2": 0.5 });
    let events = set.evaluate_batch(&typed_all(&[
        record_of("fraud", Some("1.0"), 0, Some(0.5), 500),
        record_of("churn", Some("2"), 0, Some(0.5), 500),
        price, // carries a classification.f1 of 0.1, but the path is not valid for it
        record_of("unknown-model", None, 0, Some(0.5), 500),
    ]));
    let fired: Vec<(String, String)> = alerts(&events)
        .iter()
        .map(|alert| (alert.rule.clone(), alert.model.clone()))
        .collect();
    assert_eq!(
        fired,
        vec![
            ("any-f1".to_string(), "fraud".to_string()),
            ("any-f1".to_string(), "churn".to_string()),
            ("any-mae".to_string(), "price".to_string()),
        ]
    );
}

#[test]
fn a_boolean_metric_counts_as_one() {
    let adwin = rule(
        json!({"name": "adwin", "model": "fraud", "metric": "detectors.adwin.drift",
                            "op": "==", "threshold": 1.0}),
    );
    let mut set = rules(&[adwin]);
    let with_drift = |index: u32, drift: bool| {
        let mut one = record(index, 0.9);
        one["detectors"] =
            json!({ "adwin": { "drift": drift, "detections": 0, "estimation": 0.1 } });
        one
    };
    assert!(set.evaluate(&typed(&with_drift(0, false))).is_empty());
    let fired = set.evaluate(&typed(&with_drift(1, true)));
    assert_eq!(alerts(&fired)[0].status, Firing);
    assert_eq!(alerts(&fired)[0].value, 1.0);
    let resolved = set.evaluate(&typed(&with_drift(2, false)));
    assert_eq!(alerts(&resolved)[0].status, Resolved);
    assert_eq!(alerts(&resolved)[0].value, 0.0);
}

#[test]
fn drift_and_per_class_paths_resolve_dotted_names() {
    let country = rule(json!({"name": "geo", "model": "fraud",
                              "metric": "drift.features.geo.country.ks.p_value",
                              "op": "<", "threshold": 0.01}));
    let class = rule(json!({"name": "cls", "model": "churn",
                            "metric": "classification.per_class.v1.2.recall",
                            "op": "<", "threshold": 0.5}));
    let mut set = rules(&[country, class]);
    let mut fraud = record(0, 0.9);
    fraud["drift"] = json!({ "reference": "first", "features": { "geo.country": {
        "kind": "numeric", "method": "ks", "threshold": 0.05, "n_reference": 100,
        "n_window": 100, "ks": { "statistic": 0.5, "p_value": 0.001 }, "drifted": true } } });
    let mut churn = record_of("churn", None, 0, Some(0.9), 500);
    churn["classification"]["per_class"] = json!({ "v1.2": { "recall": 0.1, "support": 3 } });
    let events = set.evaluate_batch(&typed_all(&[fraud, churn]));
    let fired: Vec<&str> = alerts(&events).iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(fired, vec!["geo", "cls"]);
}

#[test]
fn validation_errors_name_the_rule() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"metric": "classification.f2"}),
            r#"rule "f1-drop": unknown metric path "classification.f2""#,
        ),
        (
            json!({"model": "nope"}),
            r#"rule "f1-drop": unknown model "nope""#,
        ),
        (
            json!({"op": "=<"}),
            r#"rule "f1-drop": unknown operator "=<""#,
        ),
        (
            json!({"segment": {"country": "DE"}}),
            r#"rule "f1-drop": segment dimension "country" is not listed by model "fraud""#,
        ),
        (
            json!({"resolve_threshold": 0.75}),
            r#"rule "f1-drop": resolve_threshold 0.75 is on the wrong side of threshold 0.8"#,
        ),
        (
            json!({"op": ">", "resolve_threshold": 0.85}),
            r#"rule "f1-drop": resolve_threshold 0.85 is on the wrong side"#,
        ),
        (
            json!({"for_windows": 0}),
            r#"rule "f1-drop": for_windows must be at least 1"#,
        ),
        (
            json!({"cooldown": "1 week"}),
            r#"rule "f1-drop": invalid cooldown"#,
        ),
        (
            json!({"metric": "regression.mae"}),
            r#"rule "f1-drop": unknown metric path "regression.mae""#,
        ),
        (
            json!({"metric": "drift.features.nope.psi"}),
            r#"rule "f1-drop": unknown metric path"#,
        ),
        (
            json!({"model": "*", "metric": "classification.f1", "segment": {"channel": "x", "region": "y"}}),
            r#"rule "f1-drop": segment must name exactly one dimension"#,
        ),
    ];
    for (changes, expected) in cases {
        let mut fields = serde_json::to_value(f1_rule()).expect("to json");
        for (key, value) in changes.as_object().expect("object") {
            fields[key] = value.clone();
        }
        let config = rule(fields);
        let message = RuleSet::new(&[config], &models())
            .expect_err(expected)
            .to_string();
        assert!(message.starts_with(expected), "{message:?} vs {expected:?}");
    }
    let duplicate = RuleSet::new(&[f1_rule(), f1_rule()], &models())
        .expect_err("duplicate")
        .to_string();
    assert_eq!(duplicate, r#"rule "f1-drop": duplicate rule name"#);
    let unknown_field: Result<RuleConfig, _> = serde_json::from_value(json!({
        "name": "x", "model": "fraud", "metric": "counts.joined", "op": "<", "threshold": 1,
        "treshold": 2
    }));
    assert!(unknown_field
        .expect_err("deny_unknown_fields")
        .to_string()
        .contains("treshold"));
}

#[test]
fn defaults_are_as_documented() {
    let config = rule(
        json!({"name": "x", "model": "fraud", "metric": "counts.joined",
                             "op": "<", "threshold": 1}),
    );
    assert_eq!(config.min_samples, 0);
    assert_eq!(config.for_windows, 1);
    assert_eq!(config.severity, "warning");
    assert!(!config.retrain);
    assert_eq!(config.cooldown, "1h");
    assert_eq!(parse_duration_ms("250ms"), Ok(250));
    assert_eq!(parse_duration_ms("90s"), Ok(90_000));
    assert_eq!(parse_duration_ms("5m"), Ok(300_000));
    assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
    assert!(parse_duration_ms("90").is_err());
    assert!(parse_duration_ms("h").is_err());
}

#[test]
fn times_parse_as_rfc3339() {
    assert_eq!(
        parse_rfc3339("2023-11-14T22:14:00Z"),
        Some(1_700_000_040_000)
    );
    assert_eq!(
        parse_rfc3339("2023-11-14T22:14:00.250Z"),
        Some(1_700_000_040_250)
    );
    assert_eq!(
        parse_rfc3339("2023-11-15T00:14:00+02:00"),
        Some(1_700_000_040_000)
    );
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2023-11-14 22:14:00"), None);
    assert_eq!(parse_rfc3339("garbage"), None);
}

#[test]
fn state_round_trip_continues_identically() {
    let mut retrain_fast = f1_rule();
    retrain_fast.cooldown = "3m".into();
    let f1s = [0.7, 0.7, 0.82, 0.9, 0.7, 0.7, 0.7, 0.9, 0.6, 0.6, 0.6];
    let to_json = |events: Vec<RuleEvent>| -> Vec<String> {
        events
            .iter()
            .map(|event| event.to_json().expect("serializes"))
            .collect()
    };

    let mut uninterrupted = rules(&[retrain_fast.clone()]);
    let expected: Vec<String> = (0..f1s.len())
        .flat_map(|i| to_json(uninterrupted.evaluate(&typed(&record(i as u32, f1s[i])))))
        .collect();
    assert!(expected
        .iter()
        .any(|event| event.contains("feedback-loop.retrain.v1")));

    for cut in 1..f1s.len() {
        // Whole RuleSet through JSON.
        let mut first = rules(&[retrain_fast.clone()]);
        let mut got: Vec<String> = (0..cut)
            .flat_map(|i| to_json(first.evaluate(&typed(&record(i as u32, f1s[i])))))
            .collect();
        let saved = serde_json::to_string(&first).expect("serialize");
        let mut restored: RuleSet = serde_json::from_str(&saved).expect("deserialize");
        assert_eq!(restored, first);
        // Only the state, restored onto freshly compiled rules.
        let state = serde_json::to_string(first.state()).expect("serialize state");
        let mut fresh = rules(&[retrain_fast.clone()]);
        fresh.restore(serde_json::from_str(&state).expect("deserialize state"));
        let mut got_fresh = got.clone();
        for (i, f1) in f1s.iter().enumerate().skip(cut) {
            got.extend(to_json(restored.evaluate(&typed(&record(i as u32, *f1)))));
            got_fresh.extend(to_json(fresh.evaluate(&typed(&record(i as u32, *f1)))));
        }
        assert_eq!(got, expected, "cut at {cut}");
        assert_eq!(got_fresh, expected, "cut at {cut} (state only)");
    }
}

#[test]
fn alert_json_has_the_contract_fields() {
    let mut set = rules(&[f1_rule()]);
    let per_window = run(&mut set, &[0.7, 0.71]);
    let json: Value =
        serde_json::from_str(&per_window[1][0].to_json().expect("json")).expect("parse");
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "schema",
        "alert_id",
        "status",
        "rule",
        "severity",
        "model",
        "model_version",
        "metric",
        "op",
        "threshold",
        "resolve_threshold",
        "value",
        "window",
        "record_id",
        "summary",
        "fired_at",
    ];
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys_sorted, expected);
    assert_eq!(json["schema"], ALERT_SCHEMA);
    assert_eq!(json["status"], "firing");
    assert_eq!(json["op"], "<");
    assert_eq!(json["severity"], "critical");
    assert_eq!(json["window"]["end"], "2026-01-01T00:02:00Z");
    assert_eq!(
        json["summary"],
        "fraud 1.0: classification.f1 = 0.71 < 0.8 for 2 windows (window 2026-01-01T00:01:00Z)"
    );
    assert_eq!(per_window[1][0].kafka_key(), "fraud");
}

// Rules on the estimation check (`estimation_check.metrics.…`, issue 18).

/// `models()` with `[models.estimation]` on `fraud` (binary) only.
fn models_with_estimation() -> Vec<ModelConfig> {
    let mut models = models();
    models[0].estimation =
        Some(serde_json::from_value(json!({ "method": "cbpe" })).expect("estimation config"));
    models
}

fn check_rule(fields: Value) -> RuleConfig {
    let mut base = json!({
        "name": "accuracy-check", "model": "fraud",
        "metric": "estimation_check.metrics.accuracy.abs_error", "op": ">",
        "threshold": 0.05, "resolve_threshold": 0.03, "min_samples": 50, "for_windows": 2,
        "retrain": true, "cooldown": "1h"
    });
    for (key, value) in fields.as_object().expect("fields") {
        base[key] = value.clone();
    }
    rule(base)
}

/// The check of `fraud` for window `index`: accuracy `error` (`estimated − realized`)
/// and `labeled` of 100 estimated predictions.
fn check(index: u32, error: f64, labeled: u64) -> EstimationCheck {
    use crate::output::{CheckMetric, CheckMetrics};
    let metric = CheckMetric {
        estimated: Some(0.8 + error),
        realized: Some(0.8),
        error: Some(error),
        abs_error: Some(error.abs()),
        sampling_error: Some(0.01),
        lower: Some(0.77 + error),
        upper: Some(0.83 + error),
        within_band: Some(error.abs() <= 0.03),
    };
    let start = parse_rfc3339(&minute(index)).expect("a time");
    EstimationCheck {
        schema: "feedback-loop.estimation-check.v1".to_string(),
        record_id: format!("fraud/-/{}/estimation-check", minute(index)),
        model: "fraud".to_string(),
        model_version: None,
        window: crate::output::WindowBounds {
            start,
            end: start + 60_000,
        },
        n: 100,
        labeled,
        unlabeled: 100 - labeled,
        metrics: CheckMetrics {
            accuracy: metric.clone(),
            precision: metric.clone(),
            recall: metric.clone(),
            f1: metric.clone(),
            roc_auc: metric,
        },
    }
}

fn check_set(configs: &[RuleConfig]) -> RuleSet {
    RuleSet::new(configs, &models_with_estimation()).expect("valid rules")
}

/// One check per window: (accuracy error, labeled).
fn run_checks(set: &mut RuleSet, checks: &[(f64, u64)]) -> Vec<Vec<RuleEvent>> {
    checks
        .iter()
        .enumerate()
        .map(|(index, (error, labeled))| {
            set.evaluate_checks(&[check(index as u32, *error, *labeled)])
        })
        .collect()
}

#[test]
fn a_check_rule_fires_after_for_windows_on_the_absolute_error_and_resolves() {
    let mut set = check_set(&[check_rule(json!({}))]);
    // |error|: negative errors count; 0.04 is between the thresholds: stays firing.
    let per_window = run_checks(
        &mut set,
        &[
            (0.06, 100),
            (0.01, 100),
            (-0.07, 100),
            (0.08, 100),
            (-0.04, 100),
            (0.02, 100),
        ],
    );
    assert_eq!(
        statuses(&per_window),
        vec![vec![], vec![], vec![], vec![Firing], vec![], vec![Resolved]]
    );
    let fired = alerts(&per_window[3])[0];
    let id = format!("accuracy-check/fraud/-/{}/estimation-check", minute(2));
    assert_ne!(
        fired.alert_id,
        format!("accuracy-check/fraud/-/{}", minute(2)),
        "distinct from a metrics alert's id"
    );
    // The episode starts in the window where it fired (the 2nd crossing, window 3); the id
    // is the rule and that check's record id.
    let id = id.replace(&minute(2), &minute(3));
    assert_eq!(fired.alert_id, id);
    assert_eq!(
        fired.record_id,
        format!("fraud/-/{}/estimation-check", minute(3))
    );
    assert_eq!(fired.metric, "estimation_check.metrics.accuracy.abs_error");
    assert_eq!(fired.value, 0.08);
    assert_eq!(fired.fired_at, minute(4));
    assert!(fired.segment.is_none());
    let resolved = alerts(&per_window[5])[0];
    assert_eq!(resolved.alert_id, id);
    assert_eq!(
        resolved.record_id,
        format!("fraud/-/{}/estimation-check", minute(5))
    );
    assert!(set.state().series.is_empty(), "{:?}", set.state());
    // The retrain trigger of the firing window.
    let fired_triggers = triggers(&per_window[3]);
    assert_eq!(fired_triggers.len(), 1);
    assert_eq!(fired_triggers[0].evidence[0].record_id, fired.record_id);
    assert_eq!(fired_triggers[0].rules, vec!["accuracy-check".to_string()]);
}

#[test]
fn a_check_rule_is_muted_below_min_samples_labeled() {
    let mut set = check_set(&[check_rule(json!({}))]);
    // 49 labeled < min_samples 50: ignored, the streak is not broken.
    let per_window = run_checks(&mut set, &[(0.1, 50), (0.0, 49), (0.1, 50)]);
    assert_eq!(statuses(&per_window), vec![vec![], vec![], vec![Firing]]);
    // While firing, a muted window does not resolve.
    let later = set.evaluate_checks(&[check(3, 0.0, 10)]);
    assert!(later.is_empty());
    assert_eq!(set.firing_alerts().count(), 1);
}

#[test]
fn a_check_rule_on_a_boolean_leaf_and_on_the_signed_error() {
    let mut set = check_set(&[
        check_rule(json!({
            "name": "outside", "metric": "estimation_check.metrics.f1.within_band",
            "op": "==", "threshold": 0.0, "resolve_threshold": null, "for_windows": 1,
            "retrain": false
        })),
        check_rule(json!({
            "name": "over", "metric": "estimation_check.metrics.f1.error",
            "op": ">", "threshold": 0.05, "resolve_threshold": 0.05, "for_windows": 1,
            "retrain": false
        })),
    ]);
    let events = set.evaluate_checks(&[check(0, -0.1, 100)]);
    let fired: Vec<&str> = alerts(&events).iter().map(|a| a.rule.as_str()).collect();
    // An estimate under the realized value is outside the band, not over.
    assert_eq!(fired, vec!["outside"]);
}

#[test]
fn metrics_and_check_rules_do_not_see_each_others_records() {
    let mut set = check_set(&[f1_rule(), check_rule(json!({"for_windows": 1}))]);
    // A check does nothing to the metrics rule's streak, a record nothing to the check rule.
    assert!(set.evaluate(&typed(&record(0, 0.5))).is_empty());
    let events = set.evaluate_checks(&[check(0, 0.5, 100)]);
    assert_eq!(
        alerts(&events)
            .iter()
            .map(|a| a.rule.as_str())
            .collect::<Vec<_>>(),
        vec!["accuracy-check"]
    );
    let events = set.evaluate(&typed(&record(1, 0.5)));
    let fired = alerts(&events);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].rule, "f1-drop");
    assert_eq!(
        fired[0].alert_id,
        format!("f1-drop/fraud/1.0/{}", minute(1))
    );
    // Both retrain rules fired for fraud; the check's window (0) came first, its trigger
    // started the cooldown, so the metrics rule's firing in window 1 (within 1h) has none.
    assert!(triggers(&events).is_empty());
}

#[test]
fn check_paths_are_checked_at_load() {
    let error = |fields: Value, models: &[ModelConfig]| {
        RuleSet::new(&[check_rule(fields)], models)
            .expect_err("invalid")
            .to_string()
    };
    // Wrong task: the regression model has no check path.
    let message = error(json!({"model": "price"}), &models_with_estimation());
    assert!(
        message.contains(r#"rule "accuracy-check": unknown metric path "estimation_check.metrics.accuracy.abs_error""#),
        "{message}"
    );
    let RuleError::Rule { problem, .. } = RuleSet::new(
        &[check_rule(json!({"model": "price"}))],
        &models_with_estimation(),
    )
    .expect_err("invalid");
    assert_eq!(problem.field(), "metric");
    // A classification model without [models.estimation].
    let message = error(json!({"model": "churn"}), &models_with_estimation());
    assert!(
        message.contains(r#"model "churn" does not have (it has no [models.estimation])"#),
        "{message}"
    );
    let message = error(json!({"model": "*"}), &models());
    assert!(
        message.contains("none has [models.estimation]"),
        "{message}"
    );
    // An unknown leaf or metric.
    for metric in [
        "estimation_check.metrics.accuracy.value",
        "estimation_check.metrics.mae.error",
        "estimation_check.accuracy.error",
    ] {
        let message = error(json!({"metric": metric}), &models_with_estimation());
        assert!(
            message.contains("unknown metric path"),
            "{metric}: {message}"
        );
    }
    // Checks are not segmented.
    let RuleError::Rule { problem, .. } = RuleSet::new(
        &[check_rule(json!({"segment": {"channel": "web"}}))],
        &models_with_estimation(),
    )
    .expect_err("invalid");
    assert_eq!(problem.field(), "segment");
    // "*" keeps the models with estimation only.
    let set = check_set(&[check_rule(json!({"model": "*"}))]);
    let applies: Vec<&str> = set.rule_models().map(|(_, model, _)| model).collect();
    assert_eq!(applies, vec!["fraud"]);
}

#[test]
fn a_check_rule_state_round_trips_and_carries_over() {
    let mut set = check_set(&[check_rule(json!({}))]);
    run_checks(&mut set, &[(0.1, 100)]);
    let state = set.state().clone();
    assert_eq!(state.series["accuracy-check"].len(), 1);
    let mut restored = check_set(&[check_rule(json!({}))]);
    restored.restore(serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap());
    let events = restored.evaluate_checks(&[check(1, 0.1, 100)]);
    assert_eq!(statuses(&[events]), vec![vec![Firing]]);
    // carry_over: an unchanged check rule keeps its firing episode; the same name on
    // another path (a changed rule) starts with none.
    let mut same = check_set(&[check_rule(json!({}))]);
    let changes = same.carry_over(restored.clone());
    assert!(changes.is_empty(), "{changes}");
    assert_eq!(same.firing_alerts().count(), 1);
    let mut other = check_set(&[check_rule(
        json!({"metric": "estimation_check.metrics.f1.abs_error"}),
    )]);
    let changes = other.carry_over(restored);
    assert_eq!(changes.changed, vec!["accuracy-check".to_string()]);
    assert_eq!(changes.dropped_alerts.len(), 1);
    assert!(changes.dropped_alerts[0].1.ends_with("/estimation-check"));
}
