//! Replay agrees with the independent Python oracle (tests/oracle/core_oracle.py, which
//! re-implements docs/semantics.md and computes every metric with scikit-learn): same
//! records, in the same order, numbers within 1e-9.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::compare;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/core");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/oracle/core_oracle.py)", root.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("expected.jsonl").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 5,
        "expected the oracle cases under {}",
        root.display()
    );
    cases
}

#[test]
fn replay_matches_the_scikit_learn_oracle() {
    let mut failures = Vec::new();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let config =
            feedback_loop::config::load(&case.join("config.toml")).expect("case config loads");
        let predictions = std::fs::read(case.join("predictions.jsonl")).unwrap();
        let outcomes = std::fs::read(case.join("outcomes.jsonl")).unwrap();
        let mut out = Vec::new();
        let mut diagnostics = Vec::new();
        feedback_loop::replay::replay(&config, &predictions, &outcomes, &mut out, &mut diagnostics)
            .expect("replay runs");
        let actual: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let expected: Vec<Value> = std::fs::read_to_string(case.join("expected.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!expected.is_empty(), "{name}: no expected records");
        let mut problems = Vec::new();
        if expected.len() != actual.len() {
            problems.push(format!(
                "{} records expected, {} produced",
                expected.len(),
                actual.len()
            ));
        }
        for (e, a) in expected.iter().zip(&actual) {
            let id = e["record_id"].as_str().unwrap_or("?").to_string();
            compare(&id, e, a, &mut problems);
        }
        if !problems.is_empty() {
            let shown: Vec<&String> = problems.iter().take(15).collect();
            failures.push(format!(
                "case {name}: {} differences, first:\n  {}",
                problems.len(),
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
