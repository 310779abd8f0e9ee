//! Snapshots of the core's state for crash recovery: the whole [`Monitor`] (join store, open
//! windows, drift references and detectors, rule state), the watermark, and the input
//! offsets the state reflects.
//!
//! Encoding: a 4-byte little-endian format version, then bincode. A snapshot also carries a
//! fingerprint of the configuration that shapes the state (models, join, windows, fields,
//! limits, rules): a snapshot taken under another configuration is not restored.
//! [`Manifest`] and [`chunks`] split an encoded snapshot into messages for the state topic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::monitor::Monitor;
use crate::settings::Config;
use crate::watermark::Watermark;

/// Version of the snapshot encoding; bumped on any change of the state's layout.
pub const SNAPSHOT_VERSION: u32 = 6;

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
    pub config_fingerprint: u64,
    pub offsets: &'a BTreeMap<(String, i32), i64>,
    pub monitor: &'a Monitor,
    pub watermark: &'a Watermark,
    pub created_at_ms: i64,
}

impl SnapshotView<'_> {
    pub fn encode(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut bytes = SNAPSHOT_VERSION.to_le_bytes().to_vec();
        bincode::serialize_into(&mut bytes, self)?;
        Ok(bytes)
    }
}

impl Snapshot {
    pub fn encode(&self) -> Result<Vec<u8>, CheckpointError> {
        SnapshotView {
            id: self.id,
            config_fingerprint: self.config_fingerprint,
            offsets: &self.offsets,
            monitor: &self.monitor,
            watermark: &self.watermark,
            created_at_ms: self.created_at_ms,
        }
        .encode()
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, CheckpointError> {
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

/// Fingerprint of the configuration parts that shape the engine's state, over a stable
/// encoding: the settings' JSON form (field order fixed by the types, durations as text,
/// floats round-tripped) and the snapshot version. Computed once at start. A snapshot whose
/// fingerprint differs is set aside, not restored into an engine it does not fit.
pub fn config_fingerprint(config: &Config) -> u64 {
    #[derive(Serialize)]
    struct Shape<'a> {
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
    let shape = Shape {
        snapshot_version: SNAPSHOT_VERSION,
        join: &config.join,
        window: &config.window,
        fields: &config.fields,
        max_versions_per_model: config.limits.max_versions_per_model,
        max_classes_per_model: config.limits.max_classes_per_model,
        max_segment_values: config.limits.max_segment_values,
        models: &config.models,
        rules: &config.rules,
    };
    // The settings types are plain data (strings, numbers, durations, lists): encoding them
    // cannot fail; an empty encoding would still give a fixed fingerprint.
    let text = serde_json::to_vec(&shape).unwrap_or_default();
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
    Snapshot::decode(&bytes)
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

    /// A snapshot taken half-way, restored, and fed the rest gives the same records as an
    /// uninterrupted run.
    #[test]
    fn restored_state_continues_identically() {
        let config = config();
        let decoder = Decoder::new(&config);
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
        let run = |monitor: &mut Monitor,
                   part: &[(bool, String)],
                   max_ts: &mut i64,
                   out: &mut Vec<String>| {
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
                *max_ts = (*max_ts).max(ts);
                let emitted = monitor.advance_watermark(*max_ts - 5000);
                out.extend(
                    emitted
                        .metrics
                        .iter()
                        .map(|r| serde_json::to_string(r).unwrap()),
                );
            }
        };
        let mut whole = Monitor::new(&config).unwrap();
        let (mut max_ts, mut expected) = (i64::MIN, Vec::new());
        run(&mut whole, &lines, &mut max_ts, &mut expected);
        expected.extend(
            whole
                .finish()
                .metrics
                .iter()
                .map(|r| serde_json::to_string(r).unwrap()),
        );

        let half = lines.len() / 2;
        let mut first = Monitor::new(&config).unwrap();
        let (mut max_ts, mut actual) = (i64::MIN, Vec::new());
        run(&mut first, &lines[..half], &mut max_ts, &mut actual);
        let snapshot = Snapshot {
            id: 1,
            config_fingerprint: config_fingerprint(&config),
            offsets: BTreeMap::from([(("p".to_string(), 0), 42)]),
            monitor: first,
            watermark: Watermark::new(5000, 1000),
            created_at_ms: 0,
        };
        let encoded = snapshot.encode().unwrap();
        let manifest = Manifest {
            id: 1,
            slot: 0,
            chunks: 0,
            bytes: encoded.len() as u64,
            checksum: fnv1a(&encoded),
            version: SNAPSHOT_VERSION,
            created_at_ms: 0,
        };
        let parts: BTreeMap<u32, Vec<u8>> = chunks(1, &encoded, 1000)
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i as u32, c))
            .collect();
        let manifest = Manifest {
            chunks: parts.len() as u32,
            ..manifest
        };
        let restored = reassemble(&manifest, &parts).unwrap();
        assert_eq!(restored.offsets, snapshot.offsets);
        let mut second = restored.monitor;
        run(&mut second, &lines[half..], &mut max_ts, &mut actual);
        actual.extend(
            second
                .finish()
                .metrics
                .iter()
                .map(|r| serde_json::to_string(r).unwrap()),
        );
        assert!(expected.len() > 10);
        assert_eq!(actual, expected);
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

    /// The fingerprint is a pure function of the state-shaping settings over a stable
    /// encoding: a fixed value for a fixed file (so a toolchain or dependency upgrade that
    /// changed it would fail here, not silently discard state), different when a shaping
    /// setting changes, the same when only the shell's settings do.
    #[test]
    fn fingerprint_is_stable_and_covers_the_shaping_settings() {
        let base = config();
        assert_eq!(config_fingerprint(&base), config_fingerprint(&config()));
        let golden = config_fingerprint(&base);
        assert_eq!(
            golden, 0xdecd_f300_482b_b873_u64,
            "fingerprint changed: {golden:#x}"
        );

        let mut window = config();
        window.window.size = crate::settings::Duration(std::time::Duration::from_secs(61));
        assert_ne!(config_fingerprint(&window), golden);

        let mut estimation = config();
        estimation.models[0].estimation = Some(crate::settings::EstimationConfig {
            method: crate::settings::EstimationMethod::Cbpe,
            calibration: Default::default(),
            reference: Default::default(),
            reference_size: crate::settings::DEFAULT_ESTIMATION_REFERENCE_SIZE,
        });
        assert_ne!(config_fingerprint(&estimation), golden);
        let mut min_sample = config();
        min_sample.models[0].drift.min_window_samples += 1;
        assert_ne!(config_fingerprint(&min_sample), golden);

        let mut listen = config();
        listen.http.listen = "0.0.0.0:1".into();
        listen.kafka.group_id = "another".into();
        assert_eq!(config_fingerprint(&listen), golden);
    }
}
