//! The state topic: where snapshots (see `checkpoint.rs`) are written and read back.
//!
//! A snapshot has a name: the consumer group for the one-instance state; with
//! `scale.mode = "partitioned"`, `<group>/task-<p>` for task p and `<group>/final` for the
//! finalizer. Keys: `<name>/manifest` names the current snapshot; `<name>/<slot>/<i>`
//! holds chunk `i` of the snapshot in slot 0 or 1. A new
//! snapshot is written to the slot the manifest does not name, every chunk acknowledged,
//! and only then the manifest: a crash half-way leaves the previous snapshot intact. The
//! topic is compacted, so it keeps the latest value of each key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::kafka::client;
use crate::kafka::log_limit::{PlainConsumer, Producer, QuietContext};
use feedback_loop_core::checkpoint::{
    chunks, fnv1a, reassemble_bytes, Manifest, Snapshot, SnapshotView, SNAPSHOT_VERSION,
};
use feedback_loop_core::settings::Config;

pub struct StateStore {
    producer: Producer,
    topic: String,
    group: String,
    chunk_bytes: usize,
    /// The manifest of the latest stored snapshot, by name (see [`StateStore::load_named`]).
    current: HashMap<String, Manifest>,
}

impl StateStore {
    /// Connects, creating the compacted topic when it is missing.
    pub async fn open(config: &Config) -> anyhow::Result<StateStore> {
        let topic = config.checkpoint.topic.clone();
        ensure_topic(config, &topic, 1, true).await?;
        let producer: Producer = client::producer(config)
            .set("compression.type", "zstd")
            .set(
                "message.max.bytes",
                (config.checkpoint.chunk_bytes + 64 * 1024).to_string(),
            )
            .create_with_context(QuietContext)
            .context("creating the state producer")?;
        Ok(StateStore {
            producer,
            topic,
            group: config.kafka.group_id.clone(),
            chunk_bytes: config.checkpoint.chunk_bytes,
            current: HashMap::new(),
        })
    }

    /// The name of the one-instance state: the consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    fn manifest_key(name: &str) -> String {
        format!("{name}/manifest")
    }

    fn chunk_key(name: &str, slot: u8, index: u32) -> String {
        format!("{name}/{slot}/{index}")
    }

    /// Reads the latest snapshot of this group, if any (blocking; call from a blocking task
    /// or before the loop starts).
    pub fn load(&mut self, config: &Config) -> anyhow::Result<Option<Snapshot>> {
        let name = self.group.clone();
        let mut found = self.load_named(config, std::slice::from_ref(&name))?;
        found
            .remove(&name)
            .map(|bytes| Snapshot::decode(&bytes).context("decoding the latest snapshot"))
            .transpose()
    }

    /// Reads the latest snapshot stored under each of `names` (the group, or the group's
    /// tasks and finalizer), encoded, in one pass over the end of the topic (blocking).
    /// A name without a snapshot (or with one of another format version) is absent.
    ///
    /// Only the end of the topic is read: the latest manifest and the chunks it names are
    /// among the last writes, and a compacted topic still holds every snapshot written
    /// since its last compaction (brokers never compact the active segment; some never
    /// compact at all), so reading it from the beginning would take longer with every
    /// checkpoint. The suffix starts with the last 256 messages per partition and grows
    /// eightfold until it holds a complete snapshot of every name or the whole topic.
    pub fn load_named(
        &mut self,
        config: &Config,
        names: &[String],
    ) -> anyhow::Result<HashMap<String, Vec<u8>>> {
        let consumer: PlainConsumer = client::other_consumer(config)
            .set("group.id", format!("{}-state-reader", self.group))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set(
                "fetch.max.bytes",
                (4 * self.chunk_bytes + 1024 * 1024).to_string(),
            )
            .create_with_context(QuietContext)
            .context("creating the state reader")?;
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .context("reading the state topic's metadata")?;
        let mut ends = HashMap::new();
        for topic in metadata.topics().iter().filter(|t| t.name() == self.topic) {
            for partition in topic.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(&self.topic, partition.id(), Duration::from_secs(10))
                    .context("reading the state topic's end offsets")?;
                ends.insert(partition.id(), high);
            }
        }
        let mut window: i64 = 256;
        loop {
            let starts: HashMap<i32, i64> = ends
                .iter()
                .map(|(&p, &high)| (p, (high - window).max(0)))
                .collect();
            let whole_topic = starts.values().all(|&start| start == 0);
            let mut latest = self.read_from(&consumer, &starts, &ends)?;
            let mut found = HashMap::new();
            let mut incomplete = false;
            for name in names {
                let Some(manifest) = latest.remove(&Self::manifest_key(name)) else {
                    incomplete = true;
                    continue;
                };
                let manifest: Manifest = serde_json::from_slice(&manifest)
                    .with_context(|| format!("decoding the state manifest of `{name}`"))?;
                if manifest.version != SNAPSHOT_VERSION {
                    tracing::warn!(
                        name,
                        found = manifest.version,
                        "snapshot from another format version: starting fresh"
                    );
                    continue;
                }
                let mut parts = BTreeMap::new();
                for i in 0..manifest.chunks {
                    if let Some(value) = latest.remove(&Self::chunk_key(name, manifest.slot, i)) {
                        parts.insert(i, value);
                    }
                }
                if parts.len() < manifest.chunks as usize && !whole_topic {
                    // Some chunks were written before the suffix began.
                    incomplete = true;
                    continue;
                }
                let bytes = reassemble_bytes(&manifest, &parts)
                    .with_context(|| format!("reassembling the latest snapshot of `{name}`"))?;
                found.insert(name.clone(), (manifest, bytes));
            }
            if incomplete && !whole_topic {
                window = window.saturating_mul(8);
                continue;
            }
            tracing::debug!(
                window,
                found = found.len(),
                "state read from the end of the state topic"
            );
            return Ok(found
                .into_iter()
                .map(|(name, (manifest, bytes))| {
                    self.current.insert(name.clone(), manifest);
                    (name, bytes)
                })
                .collect());
        }
    }

    /// The latest value of each of this group's keys from `starts` on, read until every
    /// partition reached its end offset and the topic has been quiet for half a second.
    fn read_from(
        &self,
        consumer: &PlainConsumer,
        starts: &HashMap<i32, i64>,
        ends: &HashMap<i32, i64>,
    ) -> anyhow::Result<HashMap<String, Vec<u8>>> {
        let mut assignment = TopicPartitionList::new();
        for (&partition, &start) in starts {
            assignment.add_partition_offset(&self.topic, partition, Offset::Offset(start))?;
        }
        consumer.assign(&assignment)?;
        drop(assignment);
        // Every key of this group: its own, its tasks' and its finalizer's.
        let prefix = format!("{}/", self.group);
        let mut latest: HashMap<String, Vec<u8>> = HashMap::new();
        let mut read_to: HashMap<i32, i64> = starts.clone();
        if starts
            .iter()
            .all(|(p, &start)| ends.get(p).is_some_and(|&end| start >= end))
        {
            return Ok(latest); // nothing to read (an empty topic: a first start)
        }
        // Partitions whose end the consumer reached, by the high watermark of its fetches.
        let mut at_end: HashSet<i32> = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    at_end.insert(partition);
                }
                Some(Ok(message)) => {
                    quiet_since = Instant::now();
                    read_to.insert(message.partition(), message.offset() + 1);
                    if let (Some(key), Some(value)) = (message.key(), message.payload()) {
                        let key = String::from_utf8_lossy(key);
                        if key.starts_with(&prefix) {
                            latest.insert(key.into_owned(), value.to_vec());
                        }
                    }
                }
                Some(Err(error)) => tracing::warn!(%error, "reading the state topic"),
                None => {}
            }
            let caught_up = ends
                .iter()
                .all(|(p, &high)| read_to.get(p).copied().unwrap_or(0) >= high);
            // The end of every partition reached (librdkafka's end-of-partition event, from
            // its fetches' high watermark). Without that event, some brokers report a high
            // watermark below the log end to `fetch_watermarks` (tansu): then the read is
            // taken as complete after 500 ms without a message.
            let all_at_end = ends.keys().all(|p| at_end.contains(p));
            if caught_up && (all_at_end || quiet_since.elapsed() > Duration::from_millis(500)) {
                return Ok(latest);
            }
            if Instant::now() > deadline {
                bail!(
                    "reading the state topic `{}` did not finish within 60 s",
                    self.topic
                );
            }
        }
    }

    /// Writes a snapshot of the group (one instance in charge of the whole input).
    pub async fn save(&mut self, snapshot: &SnapshotView<'_>) -> anyhow::Result<Manifest> {
        let name = self.group.clone();
        self.save_named(
            &name,
            snapshot.id,
            snapshot.created_at_ms,
            &snapshot.encode()?,
        )
        .await
    }

    /// Writes an encoded snapshot under `name`: chunks to the slot its manifest does not
    /// name, then the manifest. Returns when the broker has acknowledged all of it.
    pub async fn save_named(
        &mut self,
        name: &str,
        id: u64,
        created_at_ms: i64,
        encoded: &[u8],
    ) -> anyhow::Result<Manifest> {
        let slot = match self.current.get(name) {
            Some(m) => 1 - m.slot.min(1),
            None => 0,
        };
        let parts = chunks(id, encoded, self.chunk_bytes);
        let keys: Vec<String> = (0..parts.len())
            .map(|i| Self::chunk_key(name, slot, i as u32))
            .collect();
        let mut deliveries = Vec::with_capacity(parts.len());
        for (key, part) in keys.iter().zip(&parts) {
            let record = FutureRecord::to(&self.topic).key(key).payload(part);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => return Err(error).context("enqueueing a snapshot chunk"),
            }
        }
        for delivery in deliveries {
            delivery
                .await
                .context("snapshot chunk delivery")?
                .map_err(|(error, _)| error)
                .context("writing a snapshot chunk")?;
        }
        let manifest = Manifest {
            id,
            slot,
            chunks: parts.len() as u32,
            bytes: encoded.len() as u64,
            checksum: fnv1a(encoded),
            version: SNAPSHOT_VERSION,
            created_at_ms,
        };
        let value = serde_json::to_vec(&manifest)?;
        let key = Self::manifest_key(name);
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(&key).payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(error, _)| error)
            .context("writing the snapshot manifest")?;
        self.current.insert(name.to_string(), manifest.clone());
        Ok(manifest)
    }
}

/// Creates a topic with `partitions` partitions (compacted or not) when it does not exist:
/// the state topic, the partials topic.
pub(crate) async fn ensure_topic(
    config: &Config,
    topic: &str,
    partitions: i32,
    compacted: bool,
) -> anyhow::Result<()> {
    let probe: PlainConsumer = client::base(config).create_with_context(QuietContext)?;
    let metadata = probe
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of topic `{topic}`"))?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    drop(probe);
    if exists {
        return Ok(());
    }
    let policy = if compacted { "compact" } else { "delete" };
    tracing::info!(%topic, partitions, cleanup_policy = policy, "creating a topic");
    let admin: AdminClient<QuietContext> =
        client::base(config).create_with_context(QuietContext)?;
    let new =
        NewTopic::new(topic, partitions, TopicReplication::Fixed(-1)).set("cleanup.policy", policy);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = tokio::time::timeout(
        Duration::from_secs(15),
        admin.create_topics([&new], &options),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "creating topic `{topic}` timed out; create it ({partitions} partition(s), \
             cleanup.policy={policy})"
        )
    })?
    .with_context(|| format!("creating topic `{topic}`"))?;
    for result in created {
        if let Err((name, code)) = result {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                bail!("creating topic `{name}`: {code}");
            }
        }
    }
    Ok(())
}
