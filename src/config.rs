//! Loading the configuration: one TOML file, every key overridable from the environment,
//! and the files it names (drift baselines).
//!
//! Loading goes through figment (TOML, then `FEEDBACK_LOOP__SECTION__KEY` variables), serde
//! with `deny_unknown_fields` everywhere, then the schema's checks
//! ([`Config::validate`](feedback_loop_core::settings::Config::validate)) and the rules'
//! compilation against the models. Every error names the key it is about, so
//! `check-config` can say what is wrong. The schema itself is the core's `settings`.

use std::path::Path;

use feedback_loop_core::alerts::{RuleError, RuleSet};
use feedback_loop_core::drift::stream::Baseline;
use feedback_loop_core::monitor::Monitor;
use feedback_loop_core::record::Decoder;
use feedback_loop_core::settings::{ClientValue, Config, ConfigError, ReferenceConfig};
use figment::providers::{Env, Format, Toml};
use figment::Figment;

/// Prefix of the environment variables that override configuration keys.
pub(crate) const ENV_PREFIX: &str = "FEEDBACK_LOOP__";

/// A validated configuration with the files it names, read and decoded.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// `reference = { file = … }` baselines: (model index, decoded file).
    pub baselines: Vec<(u16, Baseline)>,
}

impl From<Config> for LoadedConfig {
    /// A configuration that names no file (or whose files are not to be read).
    fn from(config: Config) -> Self {
        LoadedConfig {
            config,
            baselines: Vec::new(),
        }
    }
}

impl LoadedConfig {
    /// A fresh core for this configuration, baselines set.
    pub fn monitor(&self) -> Result<Monitor, RuleError> {
        let mut monitor = Monitor::new(&self.config)?;
        for (model, baseline) in &self.baselines {
            monitor.set_baseline(*model, baseline);
        }
        Ok(monitor)
    }
}

/// Loads a TOML file, applies `FEEDBACK_LOOP__…` overrides from the process environment,
/// validates the result, and reads the baseline files it names (paths relative to the
/// file's directory).
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::Parse(format!(
            "configuration file {} does not exist",
            path.display()
        )));
    }
    let mut config = extract(
        Figment::new()
            .merge(Toml::file(path))
            .merge(env_overrides()),
    )?;
    for (table, property, value) in client_env_overrides(std::env::vars()) {
        let kafka = &mut config.kafka;
        let table = match table {
            ClientTable::Client => &mut kafka.client,
            ClientTable::Consumer => &mut kafka.consumer,
            ClientTable::Producer => &mut kafka.producer,
        };
        table.insert(property, value);
    }
    check(&config)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let baselines = load_baselines(&config, base)?;
    Ok(LoadedConfig { config, baselines })
}

/// Parses TOML text (no environment overrides, no files read): for tests and embedded
/// configurations.
pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
    let config = extract(Figment::new().merge(Toml::string(text)))?;
    check(&config)?;
    Ok(config)
}

/// The schema's checks, then the rules' (their metric paths, models, segments).
fn check(config: &Config) -> Result<(), ConfigError> {
    config.validate()?;
    RuleSet::new(&config.rules, &config.models)
        .map_err(|e| ConfigError::invalid("rules", e.to_string()))?;
    Ok(())
}

/// Reads and decodes the baseline files of `reference = { file = … }` (paths relative to
/// `base`). This is the only file I/O of drift: the engine gets decoded values.
fn load_baselines(config: &Config, base: &Path) -> Result<Vec<(u16, Baseline)>, ConfigError> {
    let decoder = Decoder::new(config);
    let mut loaded = Vec::new();
    for (i, model) in config.models.iter().enumerate() {
        let ReferenceConfig::File(file) = &model.reference else {
            continue;
        };
        let key = format!("models[{i}].reference.file");
        let path = base.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| ConfigError::invalid(&key, format!("{}: {e}", path.display())))?;
        let baseline = Baseline::decode(&decoder, i as u16, &bytes)
            .map_err(|e| ConfigError::invalid(&key, format!("{}: {e}", path.display())))?;
        loaded.push((i as u16, baseline));
    }
    Ok(loaded)
}

fn extract(figment: Figment) -> Result<Config, ConfigError> {
    figment.extract().map_err(|errors| {
        ConfigError::Parse(
            errors
                .into_iter()
                .map(|e| describe_figment_error(&e))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Environment overrides: `FEEDBACK_LOOP__JOIN__MAX_LABEL_DELAY=2h` sets `join.max_label_delay`.
/// `[kafka.client]`, `[kafka.consumer]` and `[kafka.producer]` properties are handled by
/// [`client_env_overrides`], since their names contain dots.
fn env_overrides() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            !CLIENT_ENV_INFIXES
                .iter()
                .any(|(infix, _)| key.starts_with(infix))
        })
        .split("__")
}

/// The tables of librdkafka properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientTable {
    Client,
    Consumer,
    Producer,
}

const CLIENT_ENV_INFIXES: [(&str, ClientTable); 3] = [
    ("kafka__client__", ClientTable::Client),
    ("kafka__consumer__", ClientTable::Consumer),
    ("kafka__producer__", ClientTable::Producer),
];

/// `FEEDBACK_LOOP__KAFKA__CLIENT__SECURITY_PROTOCOL=SASL_SSL` sets the librdkafka property
/// `security.protocol` of `[kafka.client]` (`…__KAFKA__CONSUMER__…`, `…__KAFKA__PRODUCER__…`:
/// of `[kafka.consumer]`, `[kafka.producer]`): librdkafka names use dots where environment
/// names cannot, and no librdkafka property has an underscore, so each underscore stands
/// for a dot.
fn client_env_overrides(
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(ClientTable, String, ClientValue)> {
    vars.filter_map(|(name, value)| {
        let rest = name.strip_prefix(ENV_PREFIX)?;
        let lower = rest.to_ascii_lowercase();
        CLIENT_ENV_INFIXES.iter().find_map(|(infix, table)| {
            let property = lower.strip_prefix(infix)?;
            (!property.is_empty()).then(|| {
                (
                    *table,
                    property.replace('_', "."),
                    ClientValue(value.clone()),
                )
            })
        })
    })
    .collect()
}

fn describe_figment_error(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let source = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(source) => format!(" (in {source})"),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{source}", error.kind)
    } else {
        format!("`{key}`: {}{source}", error.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feedback_loop_core::settings::AttributeTo;

    const MINIMAL: &str = r#"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
"#;

    #[test]
    fn defaults_apply() {
        let config = from_toml_str(MINIMAL).unwrap();
        assert_eq!(config.join.max_label_delay.as_millis_i64(), 3_600_000);
        assert_eq!(config.window.attribute_to, AttributeTo::Outcome);
        assert_eq!(config.http.listen, "0.0.0.0:9898");
    }

    #[test]
    fn errors_name_the_key() {
        let err = from_toml_str(&format!("[join]\nmax_label_delay = \"2 hours\"\n{MINIMAL}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("join.max_label_delay"), "{err}");

        let err = from_toml_str(&format!("[window]\nsise = \"1m\"\n{MINIMAL}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sise"), "{err}");

        let err = from_toml_str("[[models]]\nname = \"x\"\ntask = \"binary\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("models[0].positive_class"), "{err}");
    }

    #[test]
    fn drift_keys_parse_and_validate() {
        let config = from_toml_str(&format!(
            "{MINIMAL}features = [\"amount\"]\nreference = \"previous\"\n[models.drift]\nmethod = \"psi\"\n[models.drift.features.amount]\nmethod = \"ks\"\nthreshold = 0.01\n[models.detectors]\nddm = {{ enabled = false }}\n"
        ))
        .unwrap();
        assert_eq!(config.models[0].reference, ReferenceConfig::Previous);
        assert!(!config.models[0].detectors.ddm.enabled);

        let err = from_toml_str(&format!(
            "{MINIMAL}[models.drift.features.age]\nmethod = \"psi\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("models[0].drift.features.age"), "{err}");

        let err = from_toml_str(&format!("{MINIMAL}reference = \"last\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reference"), "{err}");

        let err = from_toml_str(&format!(
            "{MINIMAL}[models.detectors]\nadwin = {{ delta = 2.0 }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("models[0].detectors.adwin.delta"), "{err}");

        let config = from_toml_str(MINIMAL).unwrap();
        assert_eq!(config.models[0].drift.min_window_samples, 100);
        let err = from_toml_str(&format!(
            "{MINIMAL}[models.drift]\nsample_capacity = 50\nmin_window_samples = 51\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("models[0].drift.min_window_samples"), "{err}");

        let err = from_toml_str(&format!("{MINIMAL}[models.drift]\nmethd = \"ks\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("methd"), "{err}");
    }

    #[test]
    fn client_properties_from_environment() {
        let vars = vec![
            (
                "FEEDBACK_LOOP__KAFKA__CLIENT__SECURITY_PROTOCOL".to_string(),
                "SASL_SSL".to_string(),
            ),
            (
                "FEEDBACK_LOOP__JOIN__MAX_PENDING".to_string(),
                "5".to_string(),
            ),
            (
                "FEEDBACK_LOOP__KAFKA__CONSUMER__SESSION_TIMEOUT_MS".to_string(),
                "6000".to_string(),
            ),
            (
                "FEEDBACK_LOOP__KAFKA__PRODUCER__LINGER_MS".to_string(),
                "20".to_string(),
            ),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let overrides = client_env_overrides(vars.into_iter());
        assert_eq!(
            overrides,
            vec![
                (
                    ClientTable::Client,
                    "security.protocol".to_string(),
                    ClientValue("SASL_SSL".into())
                ),
                (
                    ClientTable::Consumer,
                    "session.timeout.ms".to_string(),
                    ClientValue("6000".into())
                ),
                (
                    ClientTable::Producer,
                    "linger.ms".to_string(),
                    ClientValue("20".into())
                ),
            ]
        );
    }

    #[test]
    fn consumer_and_producer_properties_go_to_that_client_only() {
        let config = from_toml_str(&format!(
            "[kafka.client]\n\"socket.timeout.ms\" = 1000\n             [kafka.consumer]\n\"session.timeout.ms\" = 6000\n\"enable.auto.offset.store\" = true\n             [kafka.producer]\n\"linger.ms\" = 20\n\"socket.timeout.ms\" = 2000\n{MINIMAL}"
        ))
        .unwrap();
        let consumer = crate::kafka::client::consumer(&config);
        let producer = crate::kafka::client::producer(&config);
        assert_eq!(consumer.get("session.timeout.ms"), Some("6000"));
        assert_eq!(consumer.get("socket.timeout.ms"), Some("1000"));
        assert_eq!(consumer.get("linger.ms"), None);
        // Offset safety: the service's setting stands.
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(producer.get("session.timeout.ms"), None);
        assert_eq!(producer.get("linger.ms"), Some("20"));
        // [kafka.producer] comes after [kafka.client].
        assert_eq!(producer.get("socket.timeout.ms"), Some("2000"));
        let reader = crate::kafka::client::other_consumer(&config);
        assert_eq!(reader.get("session.timeout.ms"), Some("6000"));
        assert_eq!(reader.get("linger.ms"), None);
        let base = crate::kafka::client::base(&config);
        assert_eq!(base.get("session.timeout.ms"), None);
        assert_eq!(base.get("linger.ms"), None);
    }

    #[test]
    fn rules_are_validated_by_name() {
        let err = from_toml_str(&format!(
            "{MINIMAL}\n[[rules]]\nname = \"f1-drop\"\nmodel = \"fraud\"\nmetric = \"classification.f2\"\nop = \"<\"\nthreshold = 0.8\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("f1-drop") && err.contains("classification.f2"),
            "{err}"
        );
        let err = from_toml_str(&format!(
            "{MINIMAL}\n[[rules]]\nname = \"x\"\nmodel = \"nope\"\nmetric = \"counts.joined\"\nop = \"<\"\nthreshold = 1\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown model") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn client_values_become_text() {
        let config = from_toml_str(&format!(
            "[kafka.client]\n\"socket.timeout.ms\" = 1000\n\"enable.idempotence\" = true\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(config.kafka.client["socket.timeout.ms"].0, "1000");
        assert_eq!(config.kafka.client["enable.idempotence"].0, "true");
    }
}
