//! `check-config` as a user runs it on a file with several mistakes: every problem listed at
//! once, each with its key, the file named once, exit code 2.

use std::process::Command;

#[test]
fn check_config_lists_every_problem_and_names_the_file_once() {
    let dir = std::env::temp_dir().join(format!("feedback-loop-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        r#"
[join]
max_label_dely = "1h"

[window]
size = "1 minute"

[[models]]
name = "fraud"
task = "binray"
positive_class = "1"

[[rules]]
name = "f1-drop"
model = "fruad"
metric = "classification.f1"
op = "<"
threshold = 0.8
"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_feedback-loop"))
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("runs check-config");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0],
        format!("{}: 4 problems", file.display()),
        "{stderr}"
    );
    for expected in [
        "  `join.max_label_dely`: unknown key (did you mean `max_label_delay`?)",
        "  `models[0].task`: unknown value `binray`",
        "  `window.size`: ",
        "  `rules[0].model`: rule \"f1-drop\": unknown model \"fruad\"",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "no line starting with {expected:?}:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.matches("bad.toml").count(),
        1,
        "the file is named once:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
