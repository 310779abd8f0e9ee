//! The state topic: where snapshots (see `checkpoint.rs`) are written and read back.
//!
//! Keys, all prefixed with the consumer group: `<group>/manifest` names the current
//! snapshot; `<group>/<slot>/<i>` holds chunk `i` of the snapshot in slot 0 or 1. A new
//! snapshot is written to the slot the manifest does not name, every chunk acknowledged,
//! and only then the manifest: a crash half-way leaves the previous snapshot intact. The
//! topic is compacted, so it keeps the latest value of each key.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::checkpoint::{
    chunks, fnv1a, reassemble, Manifest, Snapshot, SnapshotView, SNAPSHOT_VERSION,
};
use crate::config::Config;
use crate::kafka::client;

pub struct StateStore {
    producer: FutureProducer,
    topic: String,
    group: String,
    chunk_bytes: usize,
    /// The manifest of the latest stored snapshot.
    current: Option<Manifest>,
}

impl StateStore {
    /// Connects, creating the compacted topic when it is missing.
    pub async fn open(config: &Config) -> anyhow::Result<StateStore> {
        let topic = config.checkpoint.topic.clone();
        ensure_topic(config, &topic).await?;
        let producer: FutureProducer = client::producer(config)
            .set("compression.type", "zstd")
            .set(
                "message.max.bytes",
                (config.checkpoint.chunk_bytes + 64 * 1024).to_string(),
            )
            .create()
            .context("creating the state producer")?;
        Ok(StateStore {
            producer,
            topic,
            group: config.kafka.group_id.clone(),
            chunk_bytes: config.checkpoint.chunk_bytes,
            current: None,
        })
    }

    fn manifest_key(&self) -> String {
        format!("{}/manifest", self.group)
    }

    fn chunk_key(&self, slot: u8, index: u32) -> String {
        format!("{}/{slot}/{index}", self.group)
    }

    /// Reads the latest snapshot of this group, if any (blocking; call from a blocking task
    /// or before the loop starts).
    pub fn load(&mut self, config: &Config) -> anyhow::Result<Option<Snapshot>> {
        let consumer: BaseConsumer = client::base(config)
            .set("group.id", format!("{}-state-reader", self.group))
            .set("enable.auto.commit", "false")
            .set(
                "fetch.max.bytes",
                (4 * self.chunk_bytes + 1024 * 1024).to_string(),
            )
            .create()
            .context("creating the state reader")?;
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .context("reading the state topic's metadata")?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut assignment = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for &partition in &partitions {
            assignment.add_partition_offset(&self.topic, partition, Offset::Beginning)?;
            let (_, high) = consumer
                .fetch_watermarks(&self.topic, partition, Duration::from_secs(10))
                .context("reading the state topic's end offsets")?;
            ends.insert(partition, high);
        }
        consumer.assign(&assignment)?;
        drop(assignment);
        let prefix = format!("{}/", self.group);
        let mut latest: HashMap<String, Vec<u8>> = HashMap::new();
        let mut read_to: HashMap<i32, i64> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(200)) {
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
            // Some brokers report a high watermark below the log end: also wait for quiet.
            if caught_up && quiet_since.elapsed() > Duration::from_millis(500) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "reading the state topic `{}` did not finish within 60 s",
                    self.topic
                );
            }
        }
        drop(consumer);
        let Some(manifest) = latest.get(&self.manifest_key()) else {
            return Ok(None);
        };
        let manifest: Manifest =
            serde_json::from_slice(manifest).context("decoding the state manifest")?;
        if manifest.version != SNAPSHOT_VERSION {
            tracing::warn!(
                found = manifest.version,
                "snapshot from another format version: starting fresh"
            );
            return Ok(None);
        }
        let mut parts = BTreeMap::new();
        for i in 0..manifest.chunks {
            if let Some(value) = latest.remove(&self.chunk_key(manifest.slot, i)) {
                parts.insert(i, value);
            }
        }
        let snapshot = reassemble(&manifest, &parts).context("reassembling the latest snapshot")?;
        self.current = Some(manifest);
        Ok(Some(snapshot))
    }

    /// Writes a snapshot: chunks to the free slot, then the manifest. Returns when the
    /// broker has acknowledged all of it.
    pub async fn save(&mut self, snapshot: &SnapshotView<'_>) -> anyhow::Result<Manifest> {
        let encoded = snapshot.encode()?;
        let slot = match &self.current {
            Some(m) => 1 - m.slot.min(1),
            None => 0,
        };
        let parts = chunks(snapshot.id, &encoded, self.chunk_bytes);
        let keys: Vec<String> = (0..parts.len())
            .map(|i| self.chunk_key(slot, i as u32))
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
            id: snapshot.id,
            slot,
            chunks: parts.len() as u32,
            bytes: encoded.len() as u64,
            checksum: fnv1a(&encoded),
            version: SNAPSHOT_VERSION,
            created_at_ms: snapshot.created_at_ms,
        };
        let value = serde_json::to_vec(&manifest)?;
        let key = self.manifest_key();
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(&key).payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(error, _)| error)
            .context("writing the snapshot manifest")?;
        self.current = Some(manifest.clone());
        Ok(manifest)
    }
}

/// Creates the state topic (compacted, one partition) when it does not exist.
async fn ensure_topic(config: &Config, topic: &str) -> anyhow::Result<()> {
    let probe: BaseConsumer = client::base(config).create()?;
    let metadata = probe
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("reading the state topic's metadata")?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    drop(probe);
    if exists {
        return Ok(());
    }
    tracing::info!(%topic, "creating the compacted state topic");
    let admin: AdminClient<DefaultClientContext> = client::base(config).create()?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = tokio::time::timeout(
        Duration::from_secs(15),
        admin.create_topics([&new], &options),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "creating the state topic `{topic}` timed out; create it with cleanup.policy=compact"
        )
    })?
    .with_context(|| format!("creating the state topic `{topic}`"))?;
    for result in created {
        if let Err((name, code)) = result {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                bail!("creating the state topic `{name}`: {code}");
            }
        }
    }
    Ok(())
}
