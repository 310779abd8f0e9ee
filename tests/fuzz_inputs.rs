//! Fuzzing with proptest (cargo-fuzz needs a nightly toolchain, which this project cannot
//! fetch): arbitrary bytes and structured near-misses into record decoding, the engine, and
//! configuration loading. Nothing may panic; bad input must come back as an error. The case
//! count is bounded so CI stays fast; raise it with PROPTEST_CASES for a longer run.

use std::borrow::Cow;

use feedback_loop_core::engine::{Engine, EngineConfig};
use feedback_loop_core::record::{Decoder, Envelope};
use proptest::prelude::*;

const CONFIG: &str = r#"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount", "country"]
segments = ["channel"]
[[models]]
name = "intent"
task = "multiclass"
[[models]]
name = "price"
task = "regression"
"#;

/// JSON-ish text assembled from fragments that look like records: most cases are close
/// to valid, which reaches deeper than random bytes.
fn record_like() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "id",
        "model",
        "model_version",
        "timestamp",
        "prediction",
        "score",
        "features",
        "segment",
        "actual",
        "x",
    ]);
    let value = prop::sample::select(vec![
        "1",
        "0",
        "-1",
        "1.5",
        "1e308",
        "-1e400",
        "\"1\"",
        "\"fraud\"",
        "\"intent\"",
        "\"price\"",
        "\"nope\"",
        "true",
        "null",
        "[]",
        "[1,2]",
        "{}",
        "{\"amount\":3,\"country\":\"DE\"}",
        "{\"channel\":\"web\"}",
        "{\"tech\":0.5,\"sales\":0.5}",
        "\"2026-01-01T00:00:00Z\"",
        "\"2026-13-01T00:00:00Z\"",
        "1767225600000",
        "99999999999999999999",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "NaN",
        "Infinity",
        "\"",
    ]);
    prop::collection::vec((key, value), 0..9).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

fn config_like() -> impl Strategy<Value = String> {
    let line = prop::sample::select(vec![
        "[join]",
        "[window]",
        "[kafka]",
        "[kafka.client]",
        "[[models]]",
        "[[rules]]",
        "[limits]",
        "[fields.prediction]",
        "max_label_delay = \"1h\"",
        "max_label_delay = \"h1\"",
        "size = \"0s\"",
        "size = 5",
        "name = \"fraud\"",
        "task = \"binary\"",
        "task = \"other\"",
        "positive_class = \"1\"",
        "model = \"*\"",
        "metric = \"counts.joined\"",
        "op = \"<\"",
        "op = \"=<\"",
        "threshold = 1",
        "threshold = nan",
        "features = [\"a\", \"a\"]",
        "segments = [\"\"]",
        "\"security.protocol\" = \"SSL\"",
        "id = \"a..b\"",
        "max_pending = 0",
        "max_pending = -1",
        "reference = \"first\"",
        "reference = { file = \"/nonexistent\" }",
        "= broken",
    ]);
    prop::collection::vec(line, 0..14).prop_map(|lines| lines.join("\n"))
}

fn engine_and_decoder() -> (Engine, Decoder) {
    let config = feedback_loop::config::from_toml_str(CONFIG).expect("fuzz config");
    (
        Engine::new(EngineConfig::from_config(&config)),
        Decoder::new(&config),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), key in prop::option::of(prop::collection::vec(any::<u8>(), 0..8))) {
        let (mut engine, decoder) = engine_and_decoder();
        let envelope = Envelope { key: key.as_deref(), timestamp_ms: Some(1_767_225_600_000) };
        match decoder.prediction(&bytes, envelope) {
            Ok(p) => { let _ = engine.observe_prediction(&p); }
            Err(e) => prop_assert!(!e.reason.is_empty()),
        }
        match decoder.outcome(&bytes, envelope) {
            Ok(o) => { engine.observe_outcome(&o); }
            Err(e) => prop_assert!(!e.reason.is_empty()),
        }
        let _ = engine.finish();
    }

    #[test]
    fn record_like_text_never_panics(records in prop::collection::vec((record_like(), any::<bool>()), 1..20)) {
        let (mut engine, decoder) = engine_and_decoder();
        let mut max_ts = i64::MIN;
        for (text, is_prediction) in &records {
            let ts = if *is_prediction {
                decoder.prediction(text.as_bytes(), Envelope::default()).ok().and_then(|p| engine.observe_prediction(&p).ok().map(|_| p.ts))
            } else {
                decoder.outcome(text.as_bytes(), Envelope::default()).ok().map(|o| { engine.observe_outcome(&o); o.ts })
            };
            if let Some(ts) = ts {
                max_ts = max_ts.max(ts);
                for record in engine.advance_watermark(max_ts) {
                    prop_assert!(serde_json::to_string(&record).is_ok());
                }
            }
        }
        for record in engine.finish() {
            let json = serde_json::to_string(&record).expect("records serialize");
            prop_assert!(!json.contains("NaN") && !json.contains("inf"));
        }
    }

    #[test]
    fn config_text_never_panics(text in config_like()) {
        match feedback_loop::config::from_toml_str(&text) {
            Ok(config) => prop_assert!(!config.models.is_empty()),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_config_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = feedback_loop::config::from_toml_str(&text);
    }
}

#[test]
fn labels_from_keys_are_borrowed_when_possible() {
    // A sanity check that decoding keeps strings borrowed (no hidden copies).
    let (_, decoder) = engine_and_decoder();
    let p = decoder
        .prediction(
            br#"{"id":"a","model":"fraud","timestamp":1,"prediction":"1"}"#,
            Envelope::default(),
        )
        .unwrap();
    assert!(matches!(p.id, Cow::Borrowed(_)));
}
