//! `replay --tasks N`: the partitioned engine (task shards, partial windows, a finalizer)
//! prints byte for byte what one engine prints, on the examples and on a generated stream
//! with drift, alerts, retrain triggers and performance estimation (estimates and checks).

use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("feedback-loop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

fn replay(
    config: &Path,
    predictions: &Path,
    outcomes: &Path,
    tasks: u32,
) -> (bool, Vec<u8>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_feedback-loop"))
        .args(["replay", "--config"])
        .arg(config)
        .arg("--predictions")
        .arg(predictions)
        .arg("--outcomes")
        .arg(outcomes)
        .args(["--tasks", &tasks.to_string()])
        .output()
        .expect("runs replay");
    (
        output.status.success(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_same_for_every_split(
    config: &Path,
    predictions: &Path,
    outcomes: &Path,
    min_lines: usize,
) {
    let (ok, want, stderr) = replay(config, predictions, outcomes, 1);
    assert!(ok, "replay failed: {stderr}");
    let lines = want.iter().filter(|&&b| b == b'\n').count();
    assert!(
        lines >= min_lines,
        "{lines} lines: too few to mean anything"
    );
    for tasks in [2, 3, 7] {
        let (ok, got, stderr) = replay(config, predictions, outcomes, tasks);
        assert!(ok, "replay --tasks {tasks} failed: {stderr}");
        if got != want {
            let (got, want) = (
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
            );
            let first = got
                .lines()
                .zip(want.lines())
                .position(|(g, w)| g != w)
                .unwrap_or(got.lines().count().min(want.lines().count()));
            panic!(
                "--tasks {tasks}: line {} differs\n got: {:?}\nwant: {:?}",
                first + 1,
                got.lines().nth(first),
                want.lines().nth(first)
            );
        }
    }
}

#[test]
fn the_examples_replay_the_same_with_any_number_of_tasks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_same_for_every_split(
        &root.join("examples/feedback-loop.toml"),
        &root.join("examples/predictions.jsonl"),
        &root.join("examples/outcomes.jsonl"),
        100,
    );
}

#[test]
fn a_generated_stream_with_drift_alerts_and_estimation_replays_the_same_with_any_number_of_tasks() {
    let dir = temp_dir("replay-tasks");
    let status = Command::new(env!("CARGO_BIN_EXE_feedback-loop"))
        .args(["generate", "--output-dir"])
        .arg(&dir)
        .args(["--duration", "30m", "--drift-after", "12m", "--rate", "20"])
        .status()
        .expect("runs generate");
    assert!(status.success());
    // The demo's configuration: CBPE on `fraud`, rules with a retrain trigger.
    let config = dir.join("config.toml");
    std::fs::write(&config, feedback_loop::demo::DEMO_TOML).unwrap();
    let (predictions, outcomes) = (dir.join("predictions.jsonl"), dir.join("outcomes.jsonl"));
    let (ok, out, stderr) = replay(&config, &predictions, &outcomes, 1);
    assert!(ok, "{stderr}");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("feedback-loop.alert.v1"),
        "the stream fires alerts"
    );
    assert!(
        text.contains("feedback-loop.retrain.v1"),
        "and a retrain trigger"
    );
    assert!(
        text.contains("\"estimated\":{"),
        "windows carry CBPE estimates"
    );
    assert!(
        text.contains("feedback-loop.estimation-check.v1"),
        "and estimation checks"
    );
    assert_same_for_every_split(&config, &predictions, &outcomes, 500);
}
