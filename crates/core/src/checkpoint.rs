//! Snapshots of the core's state for crash recovery: the whole [`Monitor`] (join store, open
//! windows, drift references and detectors, rule state), the watermark, and the input
//! offsets the state reflects. With the partitioned engine, each task's shard
//! ([`TaskSnapshot`]) and the finalizer ([`FinalizerSnapshot`]) are snapshotted apart, each
//! with the offsets of its own input.
//!
//! Encoding: a 4-byte little-endian format version, then bincode. A snapshot also carries
//! two fingerprints of the configuration it was taken under: [`shape_fingerprint`], over
//! the settings that shape the state (a snapshot whose shape differs is not restored), and
//! [`config_fingerprint`], over those and the settings the state is only read with (the
//! rules, the drift decision rules): when only that one differs, the state is restored and
//! the new settings applied ([`Monitor::reconfigure`]).
//! [`Manifest`] and [`chunks`] split an encoded snapshot into messages for the state topic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::monitor::Monitor;
use crate::partition::{Finalizer, TaskShard};
use crate::settings::Config;
use crate::watermark::Watermark;

/// Version of the snapshot encoding; bumped on any change of the state's layout.
pub const SNAPSHOT_VERSION: u32 = 7;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("snapshot format version {found} is not {expected} (written by another release)")]
    Version { found: u32, expected: u32 },
    #[error("snapshot is truncated")]
    Truncated,
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] bincode::Error),
    #[error("snapshot checksum mismatch")]
    Checksum,
}

/// The state of one service instance at a point of its input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Increases with every snapshot of a group.
    pub id: u64,
    /// [`shape_fingerprint`] of the configuration it was taken under.
    pub shape_fingerprint: u64,
    /// [`config_fingerprint`] of the configuration it was taken under.
    pub config_fingerprint: u64,
    /// Next offset to read per (topic, partition): the state reflects everything before.
    pub offsets: BTreeMap<(String, i32), i64>,
    pub monitor: Monitor,
    pub watermark: Watermark,
    /// Wall clock when taken (informational).
    pub created_at_ms: i64,
}

/// A snapshot by reference, for writing without cloning the state first. Encodes exactly as
/// the [`Snapshot`] with the same values (same fields, same order).
#[derive(Serialize)]
pub struct SnapshotView<'a> {
    pub id: u64,
    pub shape_fingerprint: u64,
    pub config_fingerprint: u64,
    pub offsets: &'a BTreeMap<(String, i32), i64>,
    pub monitor: &'a Monitor,
    pub watermark: &'a Watermark,
    pub created_at_ms: i64,
}

impl SnapshotView<'_> {
    pub fn encode(&self) -> Result<Vec<u8>, CheckpointError> {
        encode_versioned(self)
    }
}

/// The state of one task of the partitioned engine (`scale.mode = "partitioned"`) at a
/// point of its two input partitions. Stored under the task's own key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSnapshot {
    pub id: u64,
    pub shape_fingerprint: u64,
    pub config_fingerprint: u64,
    /// Next offset to read per (topic, partition) of the task.
    pub offsets: BTreeMap<(String, i32), i64>,
    pub shard: TaskShard,
    pub watermark: Watermark,
    pub created_at_ms: i64,
}

/// A [`TaskSnapshot`] by reference (encodes exactly as the snapshot with these values).
#[derive(Serialize)]
pub struct TaskSnapshotView<'a> {
    pub id: u64,
    pub shape_fingerprint: u64,
    pub config_fingerprint: u64,
    pub offsets: &'a BTreeMap<(String, i32), i64>,
    pub shard: &'a TaskShard,
    pub watermark: &'a Watermark,
    pub created_at_ms: i64,
}

/// A [`FinalizerSnapshot`] by reference (encodes exactly as the snapshot with these
/// values).
#[derive(Serialize)]
pub struct FinalizerSnapshotView<'a> {
    pub id: u64,
    pub shape_fingerprint: u64,
    pub config_fingerprint: u64,
    pub offsets: &'a BTreeMap<(String, i32), i64>,
    pub finalizer: &'a Finalizer,
    pub created_at_ms: i64,
}

/// The finalizer's state at a point of the partials topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalizerSnapshot {
    pub id: u64,
    pub shape_fingerprint: u64,
    pub config_fingerprint: u64,
    /// Next offset to read per partition of the partials topic.
    pub offsets: BTreeMap<(String, i32), i64>,
    pub finalizer: Finalizer,
    pub created_at_ms: i64,
}

/// A 4-byte little-endian [`SNAPSHOT_VERSION`], then bincode.
pub fn encode_versioned<T: Serialize>(value: &T) -> Result<Vec<u8>, CheckpointError> {
    let mut bytes = SNAPSHOT_VERSION.to_le_bytes().to_vec();
    bincode::serialize_into(&mut bytes, value)?;
    Ok(bytes)
}

/// Decodes what [`encode_versioned`] wrote; another version is an error.
pub fn decode_versioned<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, CheckpointError> {
    let (version, body) = bytes
        .split_at_checked(4)
        .ok_or(CheckpointError::Truncated)?;
    let found = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
    if found != SNAPSHOT_VERSION {
        return Err(CheckpointError::Version {
            found,
            expected: SNAPSHOT_VERSION,
        });
    }
    Ok(bincode::deserialize(body)?)
}

impl Snapshot {
    pub fn encode(&self) -> Result<Vec<u8>, CheckpointError> {
        SnapshotView {
            id: self.id,
            shape_fingerprint: self.shape_fingerprint,
            config_fingerprint: self.config_fingerprint,
            offsets: &self.offsets,
            monitor: &self.monitor,
            watermark: &self.watermark,
            created_at_ms: self.created_at_ms,
        }
        .encode()
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, CheckpointError> {
        decode_versioned(bytes)
    }
}

/// FNV-1a, 64 bits: stable across runs and releases (unlike std's hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Fingerprint of the settings that shape the engine's state, over a stable encoding: the
/// settings' JSON form (field order fixed by the types, durations as text, floats
/// round-tripped) and the snapshot version. Computed once at start. A snapshot whose shape
/// fingerprint differs is set aside, not restored into an engine it does not fit.
///
/// Shape: `[join]`, `[window]`, `[fields]`, the `[limits]` of the state (versions, classes,
/// segment values), and per model (in order) its name, task, positive class, features,
/// segments, drift reference (`reference`, `reference_size`), `drift.enabled`,
/// `drift.sample_capacity`, `[models.detectors]` and `[models.estimation]`: what the join
/// store, the windows, the interned names, the drift summaries, samples and references, the
/// detectors' state and the estimation's reference and fit are built from. Not shape: the
/// `[[rules]]` and the drift decision (`drift.method`, `drift.threshold`,
/// `drift.min_window_samples`, `drift.features`), which only read the state
/// ([`Monitor::reconfigure`] applies them to a restored one), and the shell's settings
/// (Kafka, HTTP, checkpoint, webhook…), which the snapshot does not hold.
pub fn shape_fingerprint(config: &Config) -> u64 {
    use crate::settings::{
        DetectorsConfig, EstimationConfig, FieldsConfig, JoinConfig, ReferenceConfig, Task,
        WindowConfig,
    };
    #[derive(Serialize)]
    struct ModelShape<'a> {
        name: &'a str,
        task: Task,
        positive_class: &'a Option<String>,
        features: &'a [String],
        segments: &'a [String],
        reference: &'a ReferenceConfig,
        reference_size: usize,
        drift_enabled: bool,
        drift_sample_capacity: usize,
        detectors: &'a DetectorsConfig,
        estimation: &'a Option<EstimationConfig>,
    }
    #[derive(Serialize)]
    struct Shape<'a> {
        snapshot_version: u32,
        join: &'a JoinConfig,
        window: &'a WindowConfig,
        fields: &'a FieldsConfig,
        max_versions_per_model: usize,
        max_classes_per_model: usize,
        max_segment_values: usize,
        models: Vec<ModelShape<'a>>,
    }
    let shape = Shape {
        snapshot_version: SNAPSHOT_VERSION,
        join: &config.join,
        window: &config.window,
        fields: &config.fields,
        max_versions_per_model: config.limits.max_versions_per_model,
        max_classes_per_model: config.limits.max_classes_per_model,
        max_segment_values: config.limits.max_segment_values,
        models: config
            .models
            .iter()
            .map(|m| ModelShape {
                name: &m.name,
                task: m.task,
                positive_class: &m.positive_class,
                features: &m.features,
                segments: &m.segments,
                reference: &m.reference,
                reference_size: m.reference_size,
                drift_enabled: m.drift.enabled,
                drift_sample_capacity: m.drift.sample_capacity,
                detectors: &m.detectors,
                estimation: &m.estimation,
            })
            .collect(),
    };
    fingerprint_of(&shape)
}

/// Fingerprint of every setting the core's state is built or read with: the shape
/// ([`shape_fingerprint`]) and the `[[models]]` and `[[rules]]` in full. Two configurations
/// of the same shape with different fingerprints differ in rules or drift decisions only.
pub fn config_fingerprint(config: &Config) -> u64 {
    #[derive(Serialize)]
    struct Full<'a> {
        snapshot_version: u32,
        join: &'a crate::settings::JoinConfig,
        window: &'a crate::settings::WindowConfig,
        fields: &'a crate::settings::FieldsConfig,
        max_versions_per_model: usize,
        max_classes_per_model: usize,
        max_segment_values: usize,
        models: &'a [crate::settings::ModelConfig],
        rules: &'a [crate::settings::RuleConfig],
    }
    fingerprint_of(&Full {
        snapshot_version: SNAPSHOT_VERSION,
        join: &config.join,
        window: &config.window,
        fields: &config.fields,
        max_versions_per_model: config.limits.max_versions_per_model,
        max_classes_per_model: config.limits.max_classes_per_model,
        max_segment_values: config.limits.max_segment_values,
        models: &config.models,
        rules: &config.rules,
    })
}

fn fingerprint_of(value: &impl Serialize) -> u64 {
    // The settings types are plain data (strings, numbers, durations, lists): encoding them
    // cannot fail; an empty encoding would still give a fixed fingerprint.
    let text = serde_json::to_vec(value).unwrap_or_default();
    fnv1a(&text)
}

/// Describes a stored snapshot: which slot holds it, in how many chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: u64,
    /// Snapshots alternate between two slots, so a crash while writing one leaves the
    /// other, still named by the manifest, intact.
    pub slot: u8,
    pub chunks: u32,
    pub bytes: u64,
    pub checksum: u64,
    pub version: u32,
    pub created_at_ms: i64,
}

/// Splits an encoded snapshot into chunks of at most `chunk_bytes` (each prefixed with the
/// snapshot id, so a chunk from another snapshot is recognized).
pub fn chunks(id: u64, encoded: &[u8], chunk_bytes: usize) -> Vec<Vec<u8>> {
    encoded
        .chunks(chunk_bytes.max(1))
        .map(|part| {
            let mut chunk = id.to_le_bytes().to_vec();
            chunk.extend_from_slice(part);
            chunk
        })
        .collect()
}

/// Reassembles a snapshot from its manifest and chunks (chunk index -> value).
pub fn reassemble(
    manifest: &Manifest,
    chunks: &BTreeMap<u32, Vec<u8>>,
) -> Result<Snapshot, CheckpointError> {
    Snapshot::decode(&reassemble_bytes(manifest, chunks)?)
}

/// The encoded snapshot that a manifest's chunks hold, checked against the manifest.
pub fn reassemble_bytes(
    manifest: &Manifest,
    chunks: &BTreeMap<u32, Vec<u8>>,
) -> Result<Vec<u8>, CheckpointError> {
    let mut bytes = Vec::with_capacity(manifest.bytes as usize);
    for i in 0..manifest.chunks {
        let chunk = chunks.get(&i).ok_or(CheckpointError::Truncated)?;
        let (id, part) = chunk
            .split_at_checked(8)
            .ok_or(CheckpointError::Truncated)?;
        let mut id_bytes = [0u8; 8];
        id_bytes.copy_from_slice(id);
        if u64::from_le_bytes(id_bytes) != manifest.id {
            return Err(CheckpointError::Truncated);
        }
        bytes.extend_from_slice(part);
    }
    if bytes.len() as u64 != manifest.bytes || fnv1a(&bytes) != manifest.checksum {
        return Err(CheckpointError::Checksum);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Decoder, Envelope};

    fn config() -> Config {
        Config::from_toml_for_tests(
            r#"
[join]
max_label_delay = "1m"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount"]
segments = ["channel"]
"#,
        )
        .unwrap()
    }

    /// Predictions every 50 ms (6 windows of 60 s), outcomes 20 s later for 6 in 7 of them,
    /// in time order.
    fn stream() -> Vec<(bool, String)> {
        let mut lines = Vec::new();
        for i in 0..3000i64 {
            let ts = 1_767_225_600_000 + i * 50;
            lines.push((true, format!(r#"{{"id":"r{i}","model":"fraud","timestamp":{ts},"prediction":{},"score":0.{:02},"features":{{"amount":{}}},"segment":{{"channel":"c{}"}}}}"#, i % 2, i % 100, i % 37, i % 3)));
            if i % 7 != 0 {
                lines.push((
                    false,
                    format!(
                        r#"{{"id":"r{i}","timestamp":{},"actual":{}}}"#,
                        ts + 20_000,
                        (i / 3) % 2
                    ),
                ));
            }
        }
        lines.sort_by_key(|(p, l)| {
            (
                l.split("\"timestamp\":")
                    .nth(1)
                    .and_then(|t| t.split([',', '}']).next())
                    .and_then(|t| t.parse::<i64>().ok()),
                !*p,
            )
        });
        lines
    }

    /// What a run emitted, as JSON lines: metrics records, rule events.
    #[derive(Default)]
    struct Out {
        max_ts: i64,
        metrics: Vec<String>,
        events: Vec<String>,
    }

    impl Out {
        fn new() -> Out {
            Out {
                max_ts: i64::MIN,
                ..Out::default()
            }
        }

        fn take(&mut self, emitted: crate::monitor::Emitted) {
            self.metrics.extend(emitted.metrics.iter().map(json));
            self.events.extend(emitted.events.iter().map(json));
        }

        fn feed(&mut self, config: &Config, monitor: &mut Monitor, part: &[(bool, String)]) {
            let decoder = Decoder::new(config);
            for (is_prediction, line) in part {
                let ts = if *is_prediction {
                    let p = decoder
                        .prediction(line.as_bytes(), Envelope::default())
                        .unwrap();
                    monitor.engine_mut().observe_prediction(&p).unwrap();
                    p.ts
                } else {
                    let o = decoder
                        .outcome(line.as_bytes(), Envelope::default())
                        .unwrap();
                    monitor.engine_mut().observe_outcome(&o);
                    o.ts
                };
                self.max_ts = self.max_ts.max(ts);
                let emitted = monitor.advance_watermark(self.max_ts - 5000);
                self.take(emitted);
            }
        }
    }

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string(value).unwrap()
    }

    /// `monitor` through a snapshot taken under `config`, encoded in chunks and reassembled.
    fn through_snapshot(config: &Config, monitor: Monitor) -> Snapshot {
        let snapshot = Snapshot {
            id: 1,
            shape_fingerprint: shape_fingerprint(config),
            config_fingerprint: config_fingerprint(config),
            offsets: BTreeMap::from([(("p".to_string(), 0), 42)]),
            monitor,
            watermark: Watermark::new(5000, 1000),
            created_at_ms: 0,
        };
        let encoded = snapshot.encode().unwrap();
        let parts: BTreeMap<u32, Vec<u8>> = chunks(1, &encoded, 1000)
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i as u32, c))
            .collect();
        let manifest = Manifest {
            id: 1,
            slot: 0,
            chunks: parts.len() as u32,
            bytes: encoded.len() as u64,
            checksum: fnv1a(&encoded),
            version: SNAPSHOT_VERSION,
            created_at_ms: 0,
        };
        let restored = reassemble(&manifest, &parts).unwrap();
        assert_eq!(restored.offsets, snapshot.offsets);
        assert_eq!(restored.shape_fingerprint, snapshot.shape_fingerprint);
        assert_eq!(restored.config_fingerprint, snapshot.config_fingerprint);
        restored
    }

    /// A snapshot taken half-way, restored, and fed the rest gives the same records as an
    /// uninterrupted run.
    #[test]
    fn restored_state_continues_identically() {
        let config = config();
        let lines = stream();
        let mut whole = Monitor::new(&config).unwrap();
        let mut expected = Out::new();
        expected.feed(&config, &mut whole, &lines);
        expected.take(whole.finish());

        let half = lines.len() / 2;
        let mut first = Monitor::new(&config).unwrap();
        let mut actual = Out::new();
        actual.feed(&config, &mut first, &lines[..half]);
        let mut second = through_snapshot(&config, first).monitor;
        actual.feed(&config, &mut second, &lines[half..]);
        actual.take(second.finish());
        assert!(expected.metrics.len() > 10);
        assert_eq!(actual.metrics, expected.metrics);
    }

    /// The model of [`stream`] with drift on `amount` against the first 500 predictions,
    /// then `extra` (drift settings, rules) appended.
    fn config_with(extra: &str) -> Config {
        Config::from_toml_for_tests(&format!(
            r#"
[join]
max_label_delay = "1m"
[[models]]
name = "fraud"
task = "binary"
positive_class = "1"
features = ["amount"]
segments = ["channel"]
reference_size = 500
{extra}
"#
        ))
        .unwrap()
    }

    /// The rules of the configuration before the edit: `streak` fires only after
    /// `for_windows` windows, `edited` never (accuracy is about 0.67 in every window),
    /// `gone` fires on the first window.
    fn rules_before(for_windows: usize) -> String {
        format!(
            r#"
[models.drift]
method = "psi"
threshold = 0.2
[[rules]]
name = "streak"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.9
for_windows = {for_windows}
[[rules]]
name = "edited"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.6
[[rules]]
name = "gone"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.9
"#
        )
    }

    /// The same after the edit: `edited`'s threshold crosses every window now, `gone` is
    /// removed, `added` is new, and the drift threshold is so small that every window
    /// drifts.
    fn rules_after(for_windows: usize) -> String {
        format!(
            r#"
[models.drift]
method = "psi"
threshold = 1e-12
[[rules]]
name = "streak"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.9
for_windows = {for_windows}
[[rules]]
name = "edited"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.7
[[rules]]
name = "added"
model = "fraud"
metric = "classification.accuracy"
op = ">"
threshold = 0.5
"#
        )
    }

    fn events_of<'a>(events: &'a [String], rule: &str) -> Vec<&'a String> {
        let tag = format!(r#""rule":"{rule}""#);
        events.iter().filter(|e| e.contains(&tag)).collect()
    }

    /// Issue 15: a snapshot taken under configuration A and restored under B, which edits
    /// a rule's threshold, adds and removes rules and changes the drift threshold, keeps
    /// the join store and the open windows, and B applies from the restore on: the records
    /// are A's up to the snapshot and B's after it (no window loses labels), the edited
    /// rule fires on a window that crosses only its new threshold, and the unchanged rule
    /// keeps its consecutive count.
    #[test]
    fn a_rule_or_drift_edit_keeps_the_state_and_applies() {
        let lines = stream();
        let half = lines.len() / 2;
        // Windows the first half closes: the unchanged rule fires on the one after.
        let closed_before = {
            let config = config_with("");
            let mut monitor = Monitor::new(&config).unwrap();
            let mut out = Out::new();
            out.feed(&config, &mut monitor, &lines[..half]);
            out.metrics
                .iter()
                .filter(|r| !r.contains(r#""segment":"#))
                .count()
        };
        assert!(
            closed_before >= 1,
            "the snapshot is taken after a window closed"
        );
        let for_windows = closed_before + 1;
        let a = config_with(&rules_before(for_windows));
        let b = config_with(&rules_after(for_windows));
        assert_eq!(shape_fingerprint(&a), shape_fingerprint(&b));
        assert_ne!(config_fingerprint(&a), config_fingerprint(&b));

        let uninterrupted = |config: &Config| {
            let mut monitor = Monitor::new(config).unwrap();
            let mut out = Out::new();
            out.feed(config, &mut monitor, &lines);
            out.take(monitor.finish());
            out
        };
        let (whole_a, whole_b) = (uninterrupted(&a), uninterrupted(&b));

        let mut first = Monitor::new(&a).unwrap();
        let mut actual = Out::new();
        actual.feed(&a, &mut first, &lines[..half]);
        let (pending, outcomes, open) = (
            first.engine().pending_predictions(),
            first.engine().pending_outcomes(),
            first.engine().open_windows(),
        );
        assert!(pending > 0 && open > 0);
        let streak = first.rules().state().series["streak"].clone();
        let mut second = through_snapshot(&a, first).monitor;
        let changes = second.reconfigure(&b).unwrap();

        // The state is kept.
        assert_eq!(second.engine().pending_predictions(), pending);
        assert_eq!(second.engine().pending_outcomes(), outcomes);
        assert_eq!(second.engine().open_windows(), open);
        assert_eq!(second.rules().state().series["streak"], streak);
        assert!(streak
            .values()
            .any(|s| s.consecutive as usize == closed_before));
        // What changed, said.
        assert_eq!(changes.drift_rules, ["fraud"]);
        assert_eq!(changes.rules.added, ["added"]);
        assert_eq!(changes.rules.changed, ["edited"]);
        assert_eq!(changes.rules.removed, ["gone"]);
        assert_eq!(changes.rules.dropped_alerts.len(), 1, "{changes:?}");
        assert_eq!(changes.rules.dropped_alerts[0].0, "gone");
        assert_eq!(
            changes.to_string(),
            format!(
                "rules: added added; changed edited; removed gone; dropped firing alerts {}; \
                 drift rules changed: fraud",
                changes.rules.dropped_alerts[0].1
            )
        );

        let before = actual.metrics.len();
        actual.feed(&b, &mut second, &lines[half..]);
        actual.take(second.finish());
        // A's records up to the snapshot, B's after it: the same windows, the same counts.
        assert_eq!(actual.metrics[..before], whole_a.metrics[..before]);
        assert_eq!(actual.metrics[before..], whole_b.metrics[before..]);
        assert_ne!(
            whole_a.metrics[before..],
            whole_b.metrics[before..],
            "the drift threshold makes a difference after the restore"
        );
        assert!(actual.metrics[before..]
            .iter()
            .any(|r| r.contains(r#""drifted":true"#)));

        // The unchanged rule fires where it fires without a restart (its count was kept).
        let streak_events = events_of(&actual.events, "streak");
        assert_eq!(streak_events.len(), 1);
        assert_eq!(streak_events, events_of(&whole_a.events, "streak"));
        // The edited rule fires on the first window after the restore, on its new
        // threshold only; it never fired under the old one.
        assert!(events_of(&whole_a.events, "edited").is_empty());
        let edited = events_of(&actual.events, "edited");
        assert!(!edited.is_empty());
        assert!(edited[0].contains(r#""threshold":0.7"#), "{}", edited[0]);
        let window = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["window"]["start"].clone()
        };
        assert_eq!(window(edited[0]), window(&actual.metrics[before]));
        // The new rule starts from the restore; the removed one says nothing more.
        assert!(!events_of(&actual.events, "added").is_empty());
        let gone = events_of(&actual.events, "gone");
        assert!(gone.iter().all(|e| e.contains(r#""status":"firing""#)));
    }

    /// A window-size edit changes the shape: the snapshot is not restorable.
    #[test]
    fn a_window_size_edit_is_not_restorable() {
        let a = config_with(&rules_before(2));
        let mut b = config_with(&rules_before(2));
        b.window.size = crate::settings::Duration(std::time::Duration::from_secs(120));
        assert_ne!(shape_fingerprint(&a), shape_fingerprint(&b));
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let encoded = vec![9, 0, 0, 0, 1, 2, 3];
        assert!(matches!(
            Snapshot::decode(&encoded),
            Err(CheckpointError::Version { found: 9, .. })
        ));
        assert!(matches!(
            Snapshot::decode(&[1, 0]),
            Err(CheckpointError::Truncated)
        ));
        let manifest = Manifest {
            id: 7,
            slot: 1,
            chunks: 1,
            bytes: 3,
            checksum: 0,
            version: 1,
            created_at_ms: 0,
        };
        let parts = BTreeMap::from([(0u32, chunks(8, &[1, 2, 3], 10).remove(0))]);
        assert!(
            reassemble(&manifest, &parts).is_err(),
            "a chunk of another snapshot is refused"
        );
    }

    /// The fingerprints are pure functions of the settings over a stable encoding: fixed
    /// values for a fixed file (so a toolchain or dependency upgrade that changed them would
    /// fail here, not silently discard state). The shape fingerprint changes with a setting
    /// the state is built from, not with one it is only read with (rules, the drift
    /// decision); the full one changes with both; neither with the shell's settings.
    #[test]
    fn fingerprints_are_stable_and_split_shape_from_the_rest() {
        use crate::settings::{DriftMethod, FeatureDriftConfig, RuleConfig};
        let base = config();
        assert_eq!(shape_fingerprint(&base), shape_fingerprint(&config()));
        assert_eq!(config_fingerprint(&base), config_fingerprint(&config()));
        // Pinned values: changed when SNAPSHOT_VERSION went to 6 and 7 (both hash it) and when
        // the fingerprint was split in two (issue 15): the shape one hashes a projection
        // of `[[models]]` without rules or drift decisions.
        let shape = shape_fingerprint(&base);
        assert_eq!(
            shape, 0xbd02_0232_dc71_bd23,
            "shape fingerprint changed: {shape:#x}"
        );
        let golden = config_fingerprint(&base);
        assert_eq!(
            golden, 0x916d_2623_8c59_b558,
            "fingerprint changed: {golden:#x}"
        );

        // Shape: both change.
        /// A named edit of the configuration.
        type Edit = (&'static str, fn(&mut Config));
        let shaping: [Edit; 7] = [
            ("window size", |c| {
                c.window.size = crate::settings::Duration(std::time::Duration::from_secs(61))
            }),
            ("join bound", |c| c.join.max_pending += 1),
            ("segments", |c| c.models[0].segments.push("region".into())),
            ("reference size", |c| c.models[0].reference_size += 1),
            ("sample capacity", |c| {
                c.models[0].drift.sample_capacity += 1
            }),
            ("detectors", |c| {
                c.models[0].detectors.adwin.enabled = !c.models[0].detectors.adwin.enabled
            }),
            ("estimation", |c| {
                c.models[0].estimation = Some(crate::settings::EstimationConfig {
                    method: crate::settings::EstimationMethod::Cbpe,
                    calibration: Default::default(),
                    reference: Default::default(),
                    reference_size: crate::settings::DEFAULT_ESTIMATION_REFERENCE_SIZE,
                    auc_sample: crate::settings::DEFAULT_ESTIMATION_AUC_SAMPLE,
                })
            }),
        ];
        for (what, edit) in shaping {
            let mut edited = config();
            edit(&mut edited);
            assert_ne!(shape_fingerprint(&edited), shape, "{what}");
            assert_ne!(config_fingerprint(&edited), golden, "{what}");
        }

        // Not shape: only the full one changes.
        let reading: [Edit; 5] = [
            ("min_window_samples", |c| {
                c.models[0].drift.min_window_samples += 1
            }),
            ("drift method", |c| {
                c.models[0].drift.method = DriftMethod::Psi
            }),
            ("drift threshold", |c| {
                c.models[0].drift.threshold = Some(0.3)
            }),
            ("per-feature drift", |c| {
                c.models[0].drift.features.insert(
                    "amount".into(),
                    FeatureDriftConfig {
                        method: Some(DriftMethod::Js),
                        threshold: None,
                    },
                );
            }),
            ("a rule", |c| {
                c.rules.push(RuleConfig {
                    name: "r".into(),
                    model: "fraud".into(),
                    metric: "classification.f1".into(),
                    op: "<".into(),
                    threshold: 0.5,
                    resolve_threshold: None,
                    min_samples: 0,
                    for_windows: 1,
                    severity: "warning".into(),
                    retrain: false,
                    cooldown: "1h".into(),
                    segment: None,
                })
            }),
        ];
        for (what, edit) in reading {
            let mut edited = config();
            edit(&mut edited);
            assert_eq!(shape_fingerprint(&edited), shape, "{what}");
            assert_ne!(config_fingerprint(&edited), golden, "{what}");
        }

        // The shell's settings: neither.
        let mut listen = config();
        listen.http.listen = "0.0.0.0:1".into();
        listen.kafka.group_id = "another".into();
        assert_eq!(shape_fingerprint(&listen), shape);
        assert_eq!(config_fingerprint(&listen), golden);
    }
}
