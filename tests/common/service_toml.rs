//! The service configuration the broker tests start from, written once: every topic
//! unique to the test, the consumer-group timings tansu and the mock cluster need
//! (`session.timeout.ms` 6000, heartbeat 1000), no event-age limit (the test streams are
//! from 2026-01-01) and the state topic. A test sets the keys it cares about and appends
//! its models and rules.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use feedback_loop_core::settings::Config;

use super::kafka::{unique, Broker};

/// Every topic a service touches, named uniquely for one test.
pub struct Topics {
    pub predictions: String,
    pub outcomes: String,
    pub metrics: String,
    pub alerts: String,
    pub retrain: String,
    pub dead_letters: String,
    pub state: String,
}

impl Topics {
    pub fn unique() -> Topics {
        Topics {
            predictions: unique("predictions"),
            outcomes: unique("outcomes"),
            metrics: unique("metrics"),
            alerts: unique("alerts"),
            retrain: unique("retrain"),
            dead_letters: unique("dlq"),
            state: unique("state"),
        }
    }

    /// Creates the two input topics with `input_partitions` each, the others with one.
    pub async fn create(&self, broker: &Broker, input_partitions: i32) {
        broker
            .create_topic(&self.predictions, input_partitions)
            .await;
        broker.create_topic(&self.outcomes, input_partitions).await;
        self.create_outputs(broker).await;
    }

    /// Creates the output and state topics (one partition each).
    pub async fn create_outputs(&self, broker: &Broker) {
        for topic in [
            &self.metrics,
            &self.alerts,
            &self.retrain,
            &self.dead_letters,
            &self.state,
        ] {
            broker.create_topic(topic, 1).await;
        }
    }
}

/// A configuration file under construction: sections of `key = value` lines, then free
/// text (the `[[models]]` and `[[rules]]` arrays).
pub struct ServiceToml {
    sections: Vec<(String, Vec<(String, String)>)>,
    tail: String,
}

impl ServiceToml {
    pub fn new(bootstrap: &str, topics: &Topics) -> ServiceToml {
        let mut toml = ServiceToml {
            sections: Vec::new(),
            tail: String::new(),
        };
        toml = toml
            .text("kafka", "bootstrap_servers", bootstrap)
            .text("kafka", "group_id", &unique("group"))
            .text("kafka", "predictions_topic", &topics.predictions)
            .text("kafka", "outcomes_topic", &topics.outcomes)
            .text("kafka", "metrics_topic", &topics.metrics)
            .text("kafka", "alerts_topic", &topics.alerts)
            .text("kafka", "retrain_topic", &topics.retrain)
            .text("kafka", "dead_letter_topic", &topics.dead_letters)
            .value("kafka.consumer", "session.timeout.ms", 6000)
            .value("kafka.consumer", "heartbeat.interval.ms", 1000)
            .text("limits", "max_event_age", "0s")
            .text("checkpoint", "topic", &topics.state);
        toml
    }

    /// Sets `key` of `[section]` to a string.
    pub fn text(self, section: &str, key: &str, value: &str) -> ServiceToml {
        self.value(section, key, format!("{value:?}"))
    }

    /// Sets `key` of `[section]` to a TOML value written as is (a number, a boolean).
    pub fn value(mut self, section: &str, key: &str, value: impl Display) -> ServiceToml {
        let index = match self.sections.iter().position(|(name, _)| name == section) {
            Some(index) => index,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let keys = &mut self.sections[index].1;
        let line = (key.to_string(), value.to_string());
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(existing) => *existing = line,
            None => keys.push(line),
        }
        self
    }

    /// Appends free text after the sections (`[[models]]`, `[[rules]]`).
    pub fn append(mut self, text: &str) -> ServiceToml {
        self.tail.push('\n');
        self.tail.push_str(text);
        self
    }

    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (section, keys) in &self.sections {
            text.push_str(&format!("[{section}]\n"));
            for (key, value) in keys {
                text.push_str(&format!("{key:?} = {value}\n"));
            }
        }
        text.push_str(&self.tail);
        text.push('\n');
        text
    }

    /// Loaded as `run` would load it (checked).
    pub fn load(&self) -> Config {
        feedback_loop::config::from_toml_str(&self.to_text())
            .unwrap_or_else(|e| panic!("test configuration: {e}\n{}", self.to_text()))
    }

    /// Written to `feedback-loop.toml` in `dir` (created), for a service process.
    pub fn write(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).expect("test directory");
        let path = dir.join("feedback-loop.toml");
        std::fs::write(&path, self.to_text()).expect("writing the test configuration");
        path
    }
}
