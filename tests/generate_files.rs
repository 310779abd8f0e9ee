//! `generate --output-dir` then `replay`, as a new user's first hour does: the files hold
//! exactly the requests of `--duration` (none at its end instant), and windows too small
//! to decide drift report their statistics with `drifted: null`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("feedback-loop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn timestamp_ms(v: &Value) -> i64 {
    v["timestamp"].as_i64().expect("numeric timestamp")
}

#[test]
fn generated_files_end_before_the_duration_and_small_windows_decide_no_drift() {
    let dir = temp_dir("generate");
    let status = Command::new(env!("CARGO_BIN_EXE_feedback-loop"))
        .args(["generate", "--output-dir"])
        .arg(&dir)
        .args([
            "--duration",
            "20m",
            "--drift-after",
            "10m",
            "--rate",
            "5",
            "--start",
            "2026-01-01T00:00:00Z",
        ])
        .status()
        .expect("runs generate");
    assert!(status.success());
    let start = 1_767_225_600_000_i64; // 2026-01-01T00:00:00Z
    let end = start + 20 * 60_000;
    let predictions = std::fs::read(dir.join("predictions.jsonl")).unwrap();
    let outcomes = std::fs::read(dir.join("outcomes.jsonl")).unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&predictions)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 20 min at 5 requests/s = 6000 requests: 2000 `intent` predictions and 4000 `fraud`
    // requests scored by two versions each.
    assert_eq!(lines.len(), 10_000);
    let last = lines.iter().map(timestamp_ms).max().unwrap();
    assert!(last < end, "a prediction at {last}, the run ends at {end}");

    // The example configuration, with a reference of 1000 predictions (5 windows).
    let config = feedback_loop::config::from_toml_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/feedback-loop.toml"
        ))
        .unwrap()
        .replace("task = \"", "reference_size = 1000\ntask = \""),
    )
    .unwrap();
    assert_eq!(config.models[1].reference_size, 1000);
    let out = common::replay_lines(config, &predictions, &outcomes);
    // Every window with predictions holds a few hundred requests: no window of one stray
    // request at the end, so every feature's drift is decided. (The windows after the end
    // hold late outcomes only: no feature values, `drifted: null`.)
    let mut decided = 0;
    for line in &out {
        let record: Value = serde_json::from_str(line).unwrap();
        let Some(features) = record["drift"]["features"].as_object() else {
            continue;
        };
        if record["counts"]["predictions"] == 0 {
            continue;
        }
        for (name, value) in features {
            let n = value["n_window"].as_u64().unwrap();
            assert!(n >= 100, "{name}: a window of {n} values: {record}");
            assert!(value["drifted"].is_boolean(), "{name}: {value}");
            decided += 1;
        }
    }
    assert!(decided > 0, "no drift compared");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rules_on_drifted_neither_fire_nor_resolve_below_the_minimum_sample() {
    // Every window of the example data is below a minimum of 10 000 values: the rule on
    // `drifted` sees no value and never fires, where with a minimum of 0 it does.
    let root = env!("CARGO_MANIFEST_DIR");
    let base = std::fs::read_to_string(format!("{root}/examples/feedback-loop.toml")).unwrap();
    let (predictions, outcomes) = common::example_inputs();
    // (alert events, `drifted` values null, `drifted` values decided) of fraud's `amount`.
    let run = |min: usize| -> (usize, usize, usize) {
        // The first [[models]] is `fraud`: its drift table goes right after it.
        let text = base.replacen(
            "segments = [\"channel\"]\n",
            &format!(
                "segments = [\"channel\"]\nreference_size = 1000\n\
                 [models.drift]\nmin_window_samples = {min}\n"
            ),
            1,
        );
        let text = format!(
            "{text}\n[[rules]]\nname = \"amount-drift\"\nmodel = \"fraud\"\n\
             metric = \"drift.features.amount.drifted\"\nop = \"==\"\nthreshold = 1\n"
        );
        let config = feedback_loop::config::from_toml_str(&text).unwrap();
        assert_eq!(config.models[0].drift.min_window_samples, min);
        let (mut alerts, mut null, mut decided) = (0, 0, 0);
        for line in &common::replay_lines(config, &predictions, &outcomes) {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["schema"] == "feedback-loop.alert.v1" {
                alerts += 1;
            }
            let amount = &v["drift"]["features"]["amount"];
            if amount.is_object() {
                if amount["drifted"].is_null() {
                    null += 1;
                } else {
                    decided += 1;
                }
            }
        }
        (alerts, null, decided)
    };
    let (alerts, _, decided) = run(0);
    assert!(alerts > 0, "the example data drifts after 10 minutes");
    assert!(decided > 0);
    let (alerts, null, decided) = run(10_000);
    assert_eq!((alerts, decided), (0, 0));
    assert!(null > 0);
}

/// The first hour again: `generate --output-dir` then `replay --config
/// config/feedback-loop.toml`, as the README says, replays every line (the default
/// configuration names both generated models), and the bad-line total is said once.
#[test]
fn generated_files_replay_under_the_default_configuration_with_no_bad_lines() {
    let dir = temp_dir("default-config");
    let status = Command::new(env!("CARGO_BIN_EXE_feedback-loop"))
        .args(["generate", "--output-dir"])
        .arg(&dir)
        .args(["--duration", "5m", "--rate", "5"])
        .status()
        .expect("runs generate");
    assert!(status.success());
    let output = replay_under_the_default_config(&dir, "predictions.jsonl", "outcomes.jsonl");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.lines().count(),
        1,
        "replay says only its summary: {stderr}"
    );
    assert!(stderr.contains(", 0 bad lines,"), "{stderr}");
    let records = String::from_utf8_lossy(&output.stdout).lines().count();
    assert!(records > 10, "{records} records");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad lines: each file's first ones one by one, then the total once, for both files.
#[test]
fn the_bad_line_total_is_said_once() {
    let dir = temp_dir("bad-lines");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = "{not json\n".repeat(30);
    std::fs::write(dir.join("p.jsonl"), &bad).unwrap();
    std::fs::write(dir.join("o.jsonl"), &bad).unwrap();
    let output = replay_under_the_default_config(&dir, "p.jsonl", "o.jsonl");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("line ").count(), 40, "20 per file: {stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("60 bad lines"))
            .count(),
        1,
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary's `replay` of two files in `dir` under config/feedback-loop.toml.
fn replay_under_the_default_config(
    dir: &std::path::Path,
    predictions: &str,
    outcomes: &str,
) -> std::process::Output {
    let root = env!("CARGO_MANIFEST_DIR");
    Command::new(env!("CARGO_BIN_EXE_feedback-loop"))
        .args([
            "replay",
            "--config",
            &format!("{root}/config/feedback-loop.toml"),
        ])
        .arg("--predictions")
        .arg(dir.join(predictions))
        .arg("--outcomes")
        .arg(dir.join(outcomes))
        .output()
        .expect("runs replay")
}
