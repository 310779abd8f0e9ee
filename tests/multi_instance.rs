//! Several instances share the work (issue #15): three `run` processes of one consumer group
//! in `[scale] mode = "partitioned"` drain a stream from 6-partition input topics, each
//! running the engine tasks of the partitions it holds, and one of them merging the partial
//! windows. Mid-stream one is killed with SIGKILL and its replacement starts at once (before
//! the group notices the dead member), another is stopped with SIGTERM and restarted. Every
//! copy of every record on the metrics topic must equal `replay`'s record with its id, and
//! the alerts and retrain triggers `replay`'s events; each instance must have read part of
//! the input. Needs a real broker (`KAFKA_BOOTSTRAP_SERVERS`; CI: tansu).

mod common;

use std::time::Duration;

use common::kafka::{consume, produce, unique, Broker};
use common::service_toml::{ServiceToml, Topics};
use feedback_loop::traffic::DEMO_MODELS_TOML;
use serde_json::Value;

/// The rule of tests/kafka_service.rs: the drift half-way makes it fire, with a trigger.
const ACCURACY_RULE: &str = r#"[[rules]]
name = "accuracy-drop"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.75
min_samples = 20
retrain = true
cooldown = "30s""#;

/// Starts an instance; its runs append to one log beside its configuration.
fn start(config: &std::path::Path) -> common::Service {
    let mut command = common::service_command(config);
    command.env(
        "RUST_LOG",
        std::env::var("MULTI_TEST_LOG").unwrap_or_else(|_| {
            "warn,feedback_loop::pipeline=info,feedback_loop::kafka::consumer=info".into()
        }),
    );
    common::Service::spawn(command, &config.with_file_name("service.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Kafka-protocol broker: KAFKA_BOOTSTRAP_SERVERS=host:port cargo test --test multi_instance -- --ignored (.ci/run does, against tansu)"]
async fn three_partitioned_instances_killed_and_restarted_publish_what_replay_prints() {
    let broker = Broker::start();
    if !broker.is_real() {
        // librdkafka's mock cluster does not survive members killed mid-rebalance.
        panic!("the multi-instance test needs a real broker: set KAFKA_BOOTSTRAP_SERVERS");
    }
    let bootstrap = broker.bootstrap();
    let t = Topics::unique();
    t.create(&broker, 6).await;
    let dir = std::env::temp_dir().join(unique("multi"));
    let ports = [
        common::free_port(),
        common::free_port(),
        common::free_port(),
    ];
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    // One consumer group and one partials topic (the service creates it): one service.
    let group = unique("group");
    let partials = unique("partials");
    let mut configs = Vec::new();
    let mut config = None;
    for (i, address) in addresses.iter().enumerate() {
        let toml = ServiceToml::new(&bootstrap, &t)
            .text("kafka", "group_id", &group)
            .text("http", "listen", address)
            .text("scale", "mode", "partitioned")
            .text("scale", "partials_topic", &partials)
            .text("join", "max_label_delay", "5s")
            .text("join", "max_outcome_lead", "2s")
            .text("window", "size", "10s")
            .text("window", "allowed_lateness", "1s")
            .text("window", "idle_timeout", "2s")
            .text("checkpoint", "interval", "500ms")
            .append(DEMO_MODELS_TOML)
            .append(ACCURACY_RULE);
        config.get_or_insert_with(|| toml.load());
        configs.push(toml.write(&dir.join(format!("instance-{i}"))));
    }
    let config = config.expect("a configuration");

    // 280 s of event time at 500 requests/s, outcomes up to 4 s late, drift half-way: the
    // crash test's stream, over 200k pairs.
    let messages = common::traffic(15, 500.0, 4_000, 280_000);
    let (expected, expected_events) = common::replay(&config, &messages);
    let pairs = common::joined_pairs(&expected);
    let total = messages.len() as u64;
    eprintln!(
        "{total} messages, {pairs} pairs, {} records and {} events expected",
        expected.len(),
        expected_events.len()
    );
    assert!(pairs >= 200_000, "the test needs 200k pairs, has {pairs}");
    assert!(
        !expected_events.is_empty(),
        "the drift makes the rule fire (alerts and triggers to compare)"
    );
    produce(
        &bootstrap,
        &common::to_kafka(&messages, &t.predictions, &t.outcomes),
    )
    .await;
    let client = reqwest::Client::new();
    let [a_at, b_at, c_at] = [&addresses[0], &addresses[1], &addresses[2]].map(String::as_str);

    let a = start(&configs[0]);
    let b = start(&configs[1]);
    let c = start(&configs[2]);
    // A holds part of the input, then is killed; its replacement starts at once, while the
    // group still counts A as a member (session.timeout.ms 6 s).
    common::wait_until_read(&client, a_at, total / 12, "A before SIGKILL").await;
    let read_by_a = common::records_read(&client, a_at).await;
    common::signal(&a, "KILL");
    drop(a);
    let a = start(&configs[0]);
    // Past half of the stream (re-reads included), B is stopped as a deploy stops it, and
    // restarted once it has exited.
    common::wait_until_read_by(
        &client,
        &[a_at, b_at, c_at],
        read_by_a,
        total * 55 / 100,
        "all before SIGTERM of B",
    )
    .await;
    let read_by_b = common::records_read(&client, b_at).await;
    let status = common::terminate(b, Duration::from_secs(30)).await;
    assert!(status.success(), "B after SIGTERM: {status}");
    let b = start(&configs[1]);

    let reader = common::kafka::Reader::new(&bootstrap, &t.metrics, 1);
    let published = common::read_until_published_by(
        &reader,
        &expected,
        Duration::from_secs(240),
        &client,
        &[a_at, b_at, c_at],
    )
    .await;
    let mut events: Vec<Value> = Vec::new();
    for topic in [&t.alerts, &t.retrain] {
        for message in consume(&bootstrap, topic, usize::MAX, Duration::from_secs(10)).await {
            events.push(serde_json::from_slice(&message.payload).expect("event is JSON"));
        }
    }
    let read_by_c = common::records_read(&client, c_at).await;
    for (name, service) in [("A", a), ("B", b), ("C", c)] {
        let status = common::terminate(service, Duration::from_secs(30)).await;
        eprintln!("{name} after SIGTERM: {status}");
    }
    for (i, config) in configs.iter().enumerate() {
        for line in common::assignment_lines(config) {
            eprintln!("instance {i}: {line}");
        }
    }

    common::assert_every_copy_as_expected(&expected, &published);
    common::assert_events_as_expected(&expected_events, &events);
    // The work was shared: each first instance read part of the input.
    eprintln!("read: A {read_by_a} (killed), B {read_by_b} (stopped), C {read_by_c}");
    for (name, read) in [("A", read_by_a), ("B", read_by_b), ("C", read_by_c)] {
        assert!(
            read > 0 && read < total,
            "{name} read {read} of {total} messages: the input was not shared"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
