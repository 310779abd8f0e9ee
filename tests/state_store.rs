//! The state topic through a real Kafka-protocol broker (the mock cluster, or
//! `KAFKA_BOOTSTRAP_SERVERS`): a restore finds the latest complete snapshot by reading only
//! the end of the topic, widening the window when a snapshot has more chunks than the
//! first window holds, and ignores a snapshot whose manifest was never written (a crash
//! half-way through a checkpoint).

mod common;

use std::collections::BTreeMap;

use common::kafka::{unique, Broker};
use common::service_toml::{ServiceToml, Topics};
use feedback_loop::kafka::state_store::StateStore;
use feedback_loop_core::checkpoint::SnapshotView;
use feedback_loop_core::monitor::Monitor;
use feedback_loop_core::record::{Decoder, Envelope};
use feedback_loop_core::settings::Config;
use feedback_loop_core::watermark::Watermark;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn config(bootstrap: &str, topic: &str, group: &str) -> Config {
    let mut topics = Topics::unique();
    topics.state = topic.to_string();
    ServiceToml::new(bootstrap, &topics)
        .text("kafka", "group_id", group)
        .value("checkpoint", "chunk_bytes", 256)
        .append("[[models]]\nname = \"m\"\ntask = \"binary\"\npositive_class = \"1\"")
        .load()
}

/// A monitor holding `pending` unlabeled predictions.
fn monitor(config: &Config, pending: usize) -> Monitor {
    let decoder = Decoder::new(config);
    let mut monitor = Monitor::new(config).unwrap();
    for i in 0..pending {
        let json = format!(
            r#"{{"id":"req-{i}","model":"m","timestamp":{},"prediction":1}}"#,
            1_767_225_600_000u64 + i as u64
        );
        let prediction = decoder
            .prediction(json.as_bytes(), Envelope::default())
            .unwrap();
        monitor
            .engine_mut()
            .observe_prediction(&prediction)
            .unwrap();
    }
    monitor
}

async fn save(store: &mut StateStore, id: u64, monitor: &Monitor) {
    let offsets = BTreeMap::from([(("predictions".to_string(), 0), id as i64 * 100)]);
    let watermark = Watermark::new(0, 1000);
    store
        .save(&SnapshotView {
            id,
            shape_fingerprint: 8,
            config_fingerprint: 7,
            offsets: &offsets,
            monitor,
            watermark: &watermark,
            created_at_ms: 0,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_reads_the_latest_complete_snapshot_from_the_end_of_the_topic() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("state");
    // The mock cluster has no CreateTopics: create it up front (the service would).
    broker.create_topic(&topic, 1).await;
    let group = unique("group");
    let config = config(&bootstrap, &topic, &group);

    let mut store = StateStore::open(&config).await.unwrap();
    // Another group's snapshots in the same topic, before and between ours.
    let other = config_for_other_group(&bootstrap, &topic);
    let mut other_store = StateStore::open(&other).await.unwrap();
    save(&mut other_store, 1, &monitor(&other, 50)).await;
    save(&mut store, 1, &monitor(&config, 10)).await;
    save(&mut other_store, 2, &monitor(&other, 50)).await;
    // Snapshot 2: hundreds of 256-byte chunks, more than the first 256-message window.
    let big = monitor(&config, 2000);
    save(&mut store, 2, &big).await;
    // A crash while writing snapshot 3: chunks in the other slot, no manifest.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for i in 0..40 {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&format!("{group}/0/{i}"))
                    .payload(&[3u8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3][..]),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let mut fresh = StateStore::open(&config).await.unwrap();
    let loaded = tokio::task::spawn_blocking(move || fresh.load(&config).map(|s| (s, fresh)))
        .await
        .unwrap()
        .unwrap()
        .0
        .expect("a snapshot");
    assert_eq!(loaded.id, 2);
    assert_eq!(loaded.shape_fingerprint, 8);
    assert_eq!(loaded.config_fingerprint, 7);
    assert_eq!(
        loaded.offsets,
        BTreeMap::from([(("predictions".to_string(), 0), 200)])
    );
    assert_eq!(loaded.monitor.engine().pending_predictions(), 2000);

    // A group that never wrote anything: no snapshot, after reading the whole topic.
    let nobody = self::config(&bootstrap, &topic, &unique("nobody"));
    let mut store = StateStore::open(&nobody).await.unwrap();
    let none = tokio::task::spawn_blocking(move || store.load(&nobody))
        .await
        .unwrap()
        .unwrap();
    assert!(none.is_none());
}

fn config_for_other_group(bootstrap: &str, topic: &str) -> Config {
    config(bootstrap, topic, &unique("other"))
}
