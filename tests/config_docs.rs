//! The configuration documentation cannot drift from the code:
//!
//! - every ```toml block in docs/configuration.md loads with `Config::from_toml_str`
//!   (parse, `deny_unknown_fields`, validation);
//! - config/feedback-loop.toml (the reference file, also the image's default config),
//!   config/feedback-loop.compose.toml (docker-compose.yml) and examples/feedback-loop.toml
//!   load too;
//! - every key of config/feedback-loop.toml is documented in docs/configuration.md as
//!   `` `section.key` ``.
//!
//! Block conventions (a comment line anywhere in the block):
//! - `# fragment`: the block shows a few keys only; [`MINIMAL_MODEL`] is appended before
//!   loading (unless the block has its own `[[models]]`), so that validation, which requires
//!   at least one model, can pass. The appended model is `fraud` (binary, features `amount`
//!   and `country`, segment `channel`), so fragments can name it in rules.
//! - `# invalid`: the block is an example of a mistake; it must FAIL to load.
//! - `# skip-check: <reason>`: not loaded (keys documented ahead of the code). Each skip is
//!   printed; the reason is mandatory.

use std::path::PathBuf;

use figment::providers::{Format, Toml};
use figment::value::Value;
use figment::Figment;

const MINIMAL_MODEL: &str = r#"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount", "country"]
segments = ["channel"]
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// (line number of the opening fence, block text) of every ```toml block.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.starts_with("```toml") => current = Some((i + 1, String::new())),
            Some(_) if trimmed.starts_with("```") => blocks.push(current.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "unterminated ```toml block");
    blocks
}

fn has_marker(block: &str, marker: &str) -> bool {
    block.lines().any(|l| l.trim_start().starts_with(marker))
}

#[test]
fn every_toml_block_in_configuration_md_loads() {
    let doc = read("docs/configuration.md");
    let blocks = toml_blocks(&doc);
    assert!(
        blocks.len() >= 5,
        "expected TOML examples in docs/configuration.md, found {}",
        blocks.len()
    );
    let mut failures = Vec::new();
    for (line, block) in &blocks {
        if let Some(reason) = block
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("# skip-check:"))
        {
            assert!(
                !reason.trim().is_empty(),
                "docs/configuration.md:{line}: `# skip-check:` needs a reason"
            );
            eprintln!("docs/configuration.md:{line}: skipped ({})", reason.trim());
            continue;
        }
        let mut text = block.clone();
        if has_marker(block, "# fragment") && !block.contains("[[models]]") {
            text.push_str(MINIMAL_MODEL);
        }
        let result = feedback_loop::config::from_toml_str(&text);
        match (has_marker(block, "# invalid"), result) {
            (false, Err(e)) => failures.push(format!("docs/configuration.md:{line}: {e}\n{text}")),
            (true, Ok(_)) => failures.push(format!(
                "docs/configuration.md:{line}: marked `# invalid` but loads\n{text}"
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn shipped_config_files_load() {
    for path in [
        "config/feedback-loop.toml",
        "config/feedback-loop.compose.toml",
        "examples/feedback-loop.toml",
        "config/demo.toml",
    ] {
        assert!(root().join(path).exists(), "{path} is gone");
        feedback_loop::config::from_toml_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

/// The demo runs config/demo.toml, and its models are the ones the tests use for the
/// generator's traffic (`traffic::DEMO_MODELS_TOML`): one description of that traffic.
#[test]
fn the_demo_runs_config_demo_toml_whose_models_are_the_generators() {
    assert_eq!(feedback_loop::demo::DEMO_TOML, read("config/demo.toml"));
    let demo = feedback_loop::config::from_toml_str(&read("config/demo.toml")).unwrap();
    let traffic =
        feedback_loop::config::from_toml_str(feedback_loop::traffic::DEMO_MODELS_TOML).unwrap();
    let json = |c: &feedback_loop_core::settings::Config| serde_json::to_string(&c.models).unwrap();
    assert_eq!(json(&demo), json(&traffic));
    assert!(
        !demo.rules.is_empty(),
        "the demo's rules are in config/demo.toml"
    );

    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_feedback-loop"))
        .args(["demo", "--print-config"])
        .output()
        .expect("runs demo --print-config");
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        read("config/demo.toml")
    );
}

/// Dotted leaf keys of a TOML document (tables are not keys themselves); arrays of tables
/// contribute `array.key`; the free-form `kafka.client`, `kafka.consumer` and
/// `kafka.producer` tables (librdkafka properties) and `headers` maps contribute only
/// themselves.
fn keys(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Dict(_, dict) => {
            for (k, v) in dict {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let free_form = matches!(
                    key.as_str(),
                    "kafka.client" | "kafka.consumer" | "kafka.producer"
                ) || key.ends_with(".headers");
                let table = matches!(v, Value::Dict(..))
                    || matches!(v, Value::Array(_, items) if items.iter().any(|i| matches!(i, Value::Dict(..))));
                if free_form || !table {
                    out.push(key.clone());
                }
                if !free_form {
                    keys(&key, v, out);
                }
            }
        }
        Value::Array(_, items) => {
            for item in items {
                if let Value::Dict(..) = item {
                    keys(prefix, item, out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn every_key_of_the_reference_config_is_documented() {
    let doc = read("docs/configuration.md");
    let value: Value = Figment::from(Toml::string(&read("config/feedback-loop.toml")))
        .extract()
        .expect("config/feedback-loop.toml parses");
    let mut all = Vec::new();
    keys("", &value, &mut all);
    all.sort();
    all.dedup();
    let missing: Vec<_> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "keys of config/feedback-loop.toml not documented in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn block_extraction_understands_the_conventions() {
    let md = "text\n```toml\n# fragment\n[join]\nmax_pending = 5\n```\n```sh\nls\n```\n";
    let blocks = toml_blocks(md);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 2);
    assert!(has_marker(&blocks[0].1, "# fragment"));
}
