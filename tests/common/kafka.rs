//! A Kafka-protocol broker for the tests: librdkafka's mock cluster (in process, real TCP),
//! or a real broker when `KAFKA_BOOTSTRAP_SERVERS` is set (CI runs tansu). Plus producing a
//! known stream and reading an output topic with a real rdkafka client.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};

pub enum Broker {
    Mock(MockCluster<'static, DefaultProducerContext>),
    Real(String),
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub partition: i32,
}

impl Broker {
    pub fn start() -> Broker {
        match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            Ok(servers) if !servers.is_empty() => Broker::Real(servers),
            _ => Broker::Mock(MockCluster::new(1).expect("mock cluster")),
        }
    }

    /// librdkafka's mock cluster, whatever the environment says.
    pub fn mock() -> Broker {
        Broker::Mock(MockCluster::new(1).expect("mock cluster"))
    }

    pub fn is_real(&self) -> bool {
        matches!(self, Broker::Real(_))
    }

    pub fn bootstrap(&self) -> String {
        match self {
            Broker::Mock(cluster) => cluster.bootstrap_servers(),
            Broker::Real(servers) => servers.clone(),
        }
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) {
        match self {
            Broker::Mock(cluster) => cluster
                .create_topic(name, partitions, 1)
                .expect("create topic"),
            Broker::Real(servers) => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", servers)
                    .create()
                    .expect("admin client");
                let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
                let results = admin
                    .create_topics(
                        [&topic],
                        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                    )
                    .await
                    .expect("create topics");
                for result in results {
                    if let Err((topic, error)) = result {
                        panic!("creating {topic}: {error}");
                    }
                }
            }
        }
    }
}

/// A unique suffix for topic and group names.
pub fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Produces `(topic, key, payload, timestamp)` messages and waits for every delivery.
/// Returns the next offset of every partition written to: `(topic, partition) -> offset`.
pub async fn produce(
    bootstrap: &str,
    messages: &[(String, String, Vec<u8>, i64)],
) -> std::collections::BTreeMap<(String, i32), i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("message.max.bytes", "10000000")
        .create()
        .expect("producer");
    let mut deliveries = Vec::with_capacity(messages.len());
    for (topic, key, payload, ts) in messages {
        let mut record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .timestamp(*ts);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
            }
        }
    }
    let mut ends = std::collections::BTreeMap::new();
    for (delivery, (topic, ..)) in deliveries.into_iter().zip(messages) {
        let delivered = delivery.await.expect("delivery future").expect("delivered");
        let end = ends
            .entry((topic.clone(), delivered.partition))
            .or_insert(0);
        *end = (*end).max(delivered.offset + 1);
    }
    ends
}

/// Reads `topic` from the beginning until `count` messages arrived or `timeout` passed.
pub async fn consume(
    bootstrap: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "20000000")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|header| {
                                (
                                    header.key.to_string(),
                                    String::from_utf8_lossy(header.value.unwrap_or(&[]))
                                        .to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Received {
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().unwrap_or(&[]).to_vec(),
                    headers,
                    partition: message.partition(),
                });
            }
            Ok(Err(error)) => panic!("consuming {topic}: {error}"),
            Err(_) => break,
        }
    }
    out
}

/// Reads one topic from the beginning without a consumer group (assigned partitions), so
/// it can be polled repeatedly without paying a group join each time.
pub struct Reader {
    consumer: StreamConsumer,
}

impl Reader {
    pub fn new(bootstrap: &str, topic: &str, partitions: i32) -> Reader {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.max.bytes", "20000000")
            .create()
            .expect("reader");
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&list).expect("assign");
        drop(list);
        Reader { consumer }
    }

    /// Messages that arrive within `wait` (returns early after a quiet second).
    pub async fn read_for(&self, wait: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left.min(Duration::from_secs(1)), self.consumer.recv()).await
            {
                Ok(Ok(message)) => out.push(message.payload().unwrap_or(&[]).to_vec()),
                Ok(Err(error)) => panic!("reading: {error}"),
                Err(_) => break,
            }
        }
        out
    }
}
