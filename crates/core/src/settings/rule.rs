//! `[[rules]]`: alert and retrain rules as the user writes them. They are compiled (and
//! checked against the models) by `alerts::RuleSet::new`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Severity of a rule that names none.
pub const DEFAULT_SEVERITY: &str = "warning";
/// Retrain cooldown of a rule that names none.
pub const DEFAULT_COOLDOWN: &str = "1h";

/// One `[[rules]]` table of the TOML configuration, as written by the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; appears in events and ids.
    pub name: String,
    /// A configured model name, or `"*"` for every model where `metric` is valid.
    pub model: String,
    /// Dotted path of a numeric (or boolean) field of the metrics record.
    pub metric: String,
    /// One of `<`, `<=`, `>`, `>=`, `==`, `!=`.
    pub op: String,
    pub threshold: f64,
    /// Hysteresis: the alert resolves only past this value. Default: `threshold`.
    #[serde(default)]
    pub resolve_threshold: Option<f64>,
    /// Windows with fewer joined pairs (`counts.joined`) are muted.
    #[serde(default)]
    pub min_samples: u64,
    /// Consecutive crossing windows needed to fire.
    #[serde(default = "default_for_windows")]
    pub for_windows: u32,
    /// Free text, passed through to the events.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Also emit a retrain trigger when the rule fires.
    #[serde(default)]
    pub retrain: bool,
    /// At most one retrain trigger per model per cooldown: `"250ms"`, `"90s"`, `"5m"`,
    /// `"1h"`, `"1d"`.
    #[serde(default = "default_cooldown")]
    pub cooldown: String,
    /// Watch this slice (e.g. `{ channel = "web" }`) instead of the unsegmented record.
    #[serde(default)]
    pub segment: Option<BTreeMap<String, String>>,
}

fn default_for_windows() -> u32 {
    1
}

fn default_severity() -> String {
    DEFAULT_SEVERITY.to_string()
}

fn default_cooldown() -> String {
    DEFAULT_COOLDOWN.to_string()
}
