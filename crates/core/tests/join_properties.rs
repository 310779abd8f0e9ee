//! Property tests of the engine's accounting: every record ends in exactly one state,
//! windows partition the pairs, and aggregates merge like the union of their inputs.

use std::borrow::Cow;

use feedback_loop_core::engine::{Disposition, Engine, EngineConfig, ModelSpec};
use feedback_loop_core::metrics::{
    classification_metrics, ConfusionMatrix, LabelContext, RegressionAggregate, ScoreAggregate,
};
use feedback_loop_core::output::MetricsRecord;
use feedback_loop_core::record::{Actual, Outcome, Prediction, Target};
use feedback_loop_core::settings::{AttributeTo, Task};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Input {
    Prediction {
        id: u8,
        model: u16,
        version: u8,
        ts: i64,
        label: bool,
    },
    Outcome {
        id: u8,
        model: Option<u16>,
        ts: i64,
        label: bool,
    },
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (0u8..20, 0u16..2, 0u8..2, 0i64..600_000, any::<bool>()).prop_map(
            |(id, model, version, ts, label)| Input::Prediction {
                id,
                model,
                version,
                ts,
                label
            }
        ),
        (
            0u8..20,
            prop::option::of(0u16..2),
            0i64..600_000,
            any::<bool>()
        )
            .prop_map(|(id, model, ts, label)| Input::Outcome {
                id,
                model,
                ts,
                label
            }),
    ]
}

fn engine(attribute_to: AttributeTo, max_pending: usize) -> Engine {
    let model = |name: &str| ModelSpec {
        name: name.into(),
        task: Task::Binary,
        positive_class: Some("true".into()),
        segments: vec!["s".into()],
    };
    Engine::new(EngineConfig {
        max_label_delay: 60_000,
        max_outcome_lead: 10_000,
        max_pending,
        window_size: 30_000,
        attribute_to,
        max_versions_per_model: 8,
        max_classes_per_model: 8,
        max_segment_values: 2,
        models: vec![model("a"), model("b")],
        drift: Vec::new(),
        estimation: Vec::new(),
    })
}

fn label(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_record_ends_in_exactly_one_state(
        inputs in prop::collection::vec(input(), 1..120),
        by_prediction in any::<bool>(),
        max_pending in prop::sample::select(vec![3usize, 1000]),
        lateness in 0i64..120_000,
    ) {
        let attribute_to = if by_prediction { AttributeTo::Prediction } else { AttributeTo::Outcome };
        let mut engine = engine(attribute_to, max_pending);
        let mut records: Vec<MetricsRecord> = Vec::new();
        let (mut predictions_in, mut outcomes_in) = (0u64, 0u64);
        let mut prediction_states = [0u64; 4]; // accepted (joined|pending), duplicate, late
        let mut outcome_states = [0u64; 4];
        let mut max_ts = i64::MIN;
        for input in &inputs {
            let ts = match input {
                Input::Prediction { id, model, version, ts, label: l } => {
                    predictions_in += 1;
                    let p = Prediction {
                        id: Cow::Owned(id.to_string()),
                        model: *model,
                        model_version: Some(Cow::Owned(version.to_string())),
                        ts: *ts,
                        predicted: Target::Class(Cow::Borrowed(label(*l))),
                        score: None,
                        features: vec![],
                        segment: vec![(0, Cow::Owned((id % 3).to_string()))],
                    };
                    let d = engine.observe_prediction(&p).expect("within limits");
                    prediction_states[match d { Disposition::Joined | Disposition::Pending => 0, Disposition::Duplicate => 1, Disposition::Late => 2 }] += 1;
                    *ts
                }
                Input::Outcome { id, model, ts, label: l } => {
                    outcomes_in += 1;
                    let o = Outcome {
                        id: Cow::Owned(id.to_string()),
                        model: *model,
                        ts: *ts,
                        actual: Actual { label: Cow::Borrowed(label(*l)), value: None },
                    };
                    let d = engine.observe_outcome(&o);
                    outcome_states[match d { Disposition::Joined | Disposition::Pending => 0, Disposition::Duplicate => 1, Disposition::Late => 2 }] += 1;
                    *ts
                }
            };
            max_ts = max_ts.max(ts);
            records.extend(engine.advance_watermark(max_ts - lateness));
        }
        records.extend(engine.finish());
        let stats = engine.stats().clone();
        prop_assert_eq!(engine.pending_predictions(), 0);
        prop_assert_eq!(engine.pending_outcomes(), 0);
        prop_assert_eq!(engine.open_windows(), 0);

        // Predictions: accepted ones are joined or expired, each exactly once.
        prop_assert_eq!(prediction_states.iter().sum::<u64>(), predictions_in);
        prop_assert_eq!(stats.predictions, prediction_states[0]);
        prop_assert_eq!(stats.joined + stats.expired_predictions, stats.predictions);
        prop_assert_eq!(outcome_states.iter().sum::<u64>(), outcomes_in);
        prop_assert_eq!(stats.outcomes, outcome_states[0]);
        prop_assert_eq!(stats.duplicates, prediction_states[1] + outcome_states[1]);
        prop_assert_eq!(stats.late, prediction_states[2] + outcome_states[2]);

        // Windows partition the pairs and the predictions: the unsegmented records add up.
        let unsegmented: Vec<&MetricsRecord> = records.iter().filter(|r| r.segment.is_none()).collect();
        let sum = |f: fn(&MetricsRecord) -> u64| unsegmented.iter().map(|r| f(r)).sum::<u64>();
        prop_assert_eq!(sum(|r| r.counts.joined), stats.joined);
        prop_assert_eq!(sum(|r| r.counts.predictions), stats.predictions);
        prop_assert_eq!(sum(|r| r.counts.expired_predictions), stats.expired_predictions);
        let confusion_total: u64 = unsegmented.iter()
            .filter_map(|r| r.classification.as_ref())
            .map(|c| c.confusion_matrix.matrix.iter().flatten().sum::<u64>())
            .sum();
        prop_assert_eq!(confusion_total, stats.joined);
        // Each segment dimension partitions its series too (every prediction has a value).
        let segmented_joined: u64 = records.iter().filter(|r| r.segment.is_some()).map(|r| r.counts.joined).sum();
        prop_assert_eq!(segmented_joined, stats.joined);
        // One record per series and window: ids are unique.
        let mut ids: Vec<&str> = records.iter().map(|r| r.record_id.as_str()).collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        prop_assert_eq!(ids.len(), before);
        // Windows come out in order.
        prop_assert!(records.windows(2).all(|w| w[0].window.end <= w[1].window.end));
    }

    #[test]
    fn classification_aggregates_merge_like_the_union(
        pairs in prop::collection::vec((0u32..4, 0u32..4, 0.0f64..1.0, any::<bool>()), 0..200),
    ) {
        let (mut a, mut b, mut all) = (ConfusionMatrix::default(), ConfusionMatrix::default(), ConfusionMatrix::default());
        let (mut sa, mut sb, mut sall) = (ScoreAggregate::default(), ScoreAggregate::default(), ScoreAggregate::default());
        for (i, (actual, predicted, score, _)) in pairs.iter().enumerate() {
            let (c, s) = if i % 2 == 0 { (&mut a, &mut sa) } else { (&mut b, &mut sb) };
            c.add(*actual, *predicted);
            s.add_binary(*score, *actual == 1);
            all.add(*actual, *predicted);
            sall.add_binary(*score, *actual == 1);
        }
        a.merge(&b);
        sa.merge(&sb);
        let name = |id: u32| id.to_string();
        let context = LabelContext { name: &name, positive_class: Some("1") };
        let merged = classification_metrics(&a, &sa, &context);
        let union = classification_metrics(&all, &sall, &context);
        prop_assert_eq!(&merged.confusion_matrix, &union.confusion_matrix);
        prop_assert_eq!(&merged.per_class, &union.per_class);
        prop_assert_eq!(merged.roc_auc, union.roc_auc);
        let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-9,
            (None, None) => true,
            _ => false,
        };
        prop_assert!(close(merged.log_loss, union.log_loss));
        prop_assert!(close(merged.brier, union.brier));
    }

    #[test]
    fn regression_aggregates_merge_like_the_union(
        pairs in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3, any::<bool>()), 0..200),
    ) {
        let (mut a, mut b, mut all) = (RegressionAggregate::default(), RegressionAggregate::default(), RegressionAggregate::default());
        for (actual, predicted, left) in &pairs {
            if *left { a.add(*actual, *predicted) } else { b.add(*actual, *predicted) }
            all.add(*actual, *predicted);
        }
        a.merge(&b);
        let (m, u) = (a.metrics(), all.metrics());
        for (x, y) in [(m.mae, u.mae), (m.rmse, u.rmse), (m.mape, u.mape), (m.r2, u.r2)] {
            match (x, y) {
                (Some(x), Some(y)) => prop_assert!((x - y).abs() <= 1e-9 * y.abs().max(1.0), "{} vs {}", x, y),
                (x, y) => prop_assert_eq!(x, y),
            }
        }
    }
}
