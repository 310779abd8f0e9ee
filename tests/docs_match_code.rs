//! The documentation that describes the code's shape cannot drift from it:
//!
//! - the metric-path table of docs/rules.md lists exactly the paths the code knows
//!   (`feedback_loop_core::output::metric_path::catalog`, the one list of metric names);
//! - every file path docs/architecture.md names exists, and its folder map mentions every
//!   module of both crates.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use feedback_loop_core::output::metric_path::catalog;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Expands `a.{b,c}.d` into `a.b.d`, `a.c.d` (any number of brace groups).
fn expand(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    let close = open + pattern[open..].find('}').expect("a closing brace");
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    pattern[open + 1..close]
        .split(',')
        .flat_map(|choice| expand(&format!("{head}{choice}{tail}")))
        .collect()
}

#[test]
fn the_metric_path_table_lists_exactly_the_known_paths() {
    let text = read("docs/rules.md");
    let section = &text[text.find("### Metric paths").expect("the section")..];
    let section = &section[..section[4..].find("\n### ").map_or(section.len(), |i| i + 4)];
    // "Drift leaves: `psi`, `wasserstein`, …" spells out `<leaf>`.
    let leaves_at = section.find("Drift leaves:").expect("the drift leaves");
    let leaves_text = &section[leaves_at..section[leaves_at..].find(". ").unwrap() + leaves_at];
    let leaves: Vec<&str> = leaves_text.split('`').skip(1).step_by(2).collect();
    assert!(leaves.len() >= 5, "drift leaves: {leaves:?}");

    let mut documented = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let pattern = line.split('`').nth(1).expect("a path in backticks");
        for path in expand(pattern) {
            if let Some(prefix) = path.strip_suffix(".<leaf>") {
                documented.extend(leaves.iter().map(|leaf| format!("{prefix}.{leaf}")));
            } else {
                documented.insert(path);
            }
        }
    }
    let known: BTreeSet<String> = catalog().into_iter().map(|(path, _)| path).collect();
    let missing: Vec<_> = known.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/rules.md's metric paths differ from the code's:\n  not documented: \
         {missing:?}\n  documented but unknown: {unknown:?}"
    );
}

#[test]
fn the_architecture_map_matches_the_tree() {
    let text = read("docs/architecture.md");
    // Every path in backticks that names a file or folder of the repository exists.
    for path in text.split('`').skip(1).step_by(2) {
        let looks_like_path =
            (path.starts_with("src/") || path.starts_with("crates/") || path.starts_with("tests/"))
                && !path.contains(' ');
        if looks_like_path {
            assert!(
                root().join(path).exists(),
                "docs/architecture.md names {path}, which does not exist"
            );
        }
    }
    // The folder map mentions every module file and folder of both crates.
    let map_at = text.find("## Crate and folder map").expect("the map");
    let map = &text[map_at..text[map_at..].find("## Data flow").unwrap() + map_at];
    for dir in ["src", "crates/core/src"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().to_string();
            let shown = if Path::new(&entry.path()).is_dir() {
                format!("{name}/")
            } else {
                name.clone()
            };
            assert!(
                map.contains(&shown),
                "docs/architecture.md's folder map does not mention {dir}/{shown}"
            );
        }
    }
}

#[test]
fn every_exported_metric_is_documented_and_every_documented_one_exported() {
    let text = read("docs/operations.md");
    let at = text
        .find("## Metrics (`GET /metrics`)")
        .expect("the metrics section");
    let section = &text[at..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let documented: BTreeSet<String> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1))
        .map(|name| format!("feedback_loop_{name}"))
        .collect();
    let telemetry = feedback_loop::telemetry::Telemetry::new().expect("telemetry");
    let exported: BTreeSet<String> = telemetry.metric_names().iter().cloned().collect();
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&exported).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/operations.md's metric table differs from what /metrics exports:\n  \
         not documented: {undocumented:?}\n  documented but not exported: {unknown:?}"
    );
    assert!(
        !section.contains("planned"),
        "a metric marked planned in docs/operations.md: every listed one is exported"
    );
}

#[test]
fn the_sample_configuration_holds_every_documented_key() {
    let reference = read("docs/configuration.md");
    let sample = read("config/feedback-loop.toml");
    // `section.key` of the reference's tables; the sample holds it as `key =` (or commented
    // `# key =`) under `[section]` (or a table of that section's array).
    let mut current = String::new();
    let mut present = BTreeSet::new();
    for line in sample.lines() {
        let line = line.trim();
        let bare = line.trim_start_matches('#').trim();
        if bare.starts_with('[') {
            current = bare
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            // `[models.drift.features.amount]`: a table of `models.drift.features`.
            if let Some(i) = current.find(".features.") {
                current.truncate(i + ".features".len());
            }
            present.insert(current.clone());
            continue;
        }
        if let Some((key, _)) = bare.split_once('=') {
            let key = key.trim().trim_matches('"');
            if !key.is_empty() && !key.contains(' ') {
                present.insert(format!("{current}.{key}"));
                // Inline tables: `adwin = { delta = … }` holds `adwin.delta`.
                if let Some(inline) = bare.split_once('{').map(|(_, rest)| rest) {
                    for pair in inline.trim_end_matches('}').split(',') {
                        if let Some((inner, _)) = pair.split_once('=') {
                            present.insert(format!("{current}.{key}.{}", inner.trim()));
                        }
                    }
                }
            }
        }
    }
    let mut missing = Vec::new();
    for line in reference.lines().filter(|l| l.starts_with("| `")) {
        let key = line.split('`').nth(1).unwrap_or_default();
        // Keys of free-form tables (`kafka.client."…"`) and placeholders are examples.
        if key.contains('"') || key.contains('<') || !key.contains('.') {
            continue;
        }
        if !present.contains(key) {
            missing.push(key.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "config/feedback-loop.toml lacks documented keys: {missing:?}"
    );
}
