//! A rolling deploy, as Kubernetes does one: a second instance of the group starts while the
//! first runs, a rebalance splits the input partitions between them for a while, then the
//! first stops. An instance holding part of the input must not publish windows computed
//! from part of the data: every copy of every window on the metrics topic equals what
//! `replay` prints. Needs a real broker (`KAFKA_BOOTSTRAP_SERVERS`; CI: tansu).

mod common;

use std::time::{Duration, Instant};

use common::kafka::{produce, unique, Broker};
use common::service_toml::{ServiceToml, Topics};
use feedback_loop::traffic::DEMO_MODELS_TOML;

fn start(config: &std::path::Path) -> common::Service {
    let mut command = common::service_command(config);
    command.env(
        "RUST_LOG",
        "warn,feedback_loop::pipeline=info,feedback_loop::kafka::consumer=info",
    );
    common::Service::spawn(command, &config.with_file_name("service.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Kafka-protocol broker: KAFKA_BOOTSTRAP_SERVERS=host:port cargo test --test rolling_deploy -- --ignored (.ci/run does, against tansu)"]
async fn a_rolling_deploy_publishes_only_windows_of_the_whole_input() {
    let broker = Broker::start();
    if !broker.is_real() {
        // librdkafka's mock cluster loses the remaining member when the other leaves
        // mid-rebalance ("Unknown member", stuck in wait-sync): a real broker is needed.
        panic!("the rolling deploy test needs a real broker: set KAFKA_BOOTSTRAP_SERVERS");
    }
    let bootstrap = broker.bootstrap();
    let t = Topics::unique();
    t.create(&broker, 3).await;
    let dir = std::env::temp_dir().join(unique("rolling"));
    let ports = [common::free_port(), common::free_port()];
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut configs = Vec::new();
    let mut config = None;
    // One consumer group: the instances share the input.
    let group = unique("group");
    for (i, address) in addresses.iter().enumerate() {
        let toml = ServiceToml::new(&bootstrap, &t)
            .text("kafka", "group_id", &group)
            .text("http", "listen", address)
            .text("join", "max_label_delay", "5s")
            .text("join", "max_outcome_lead", "2s")
            .text("window", "size", "10s")
            .text("window", "allowed_lateness", "1s")
            // Longer than the pause between the two parts of the traffic: an idle input
            // would close the window that the second part continues.
            .text("window", "idle_timeout", "30s")
            .text("checkpoint", "interval", "500ms")
            .append(DEMO_MODELS_TOML);
        config.get_or_insert_with(|| toml.load());
        configs.push(toml.write(&dir.join(format!("instance-{i}"))));
    }
    let config = config.expect("a configuration");
    // 300 s of event time at 60 requests/s: within the mock cluster's 5 MB per partition.
    let messages = common::traffic(11, 60.0, 4_000, 300_000);
    let (expected, _) = common::replay(&config, &messages);
    let kafka = common::to_kafka(&messages, &t.predictions, &t.outcomes);
    let (first, rest) = kafka.split_at(kafka.len() * 2 / 5);
    eprintln!(
        "{} messages, {} records expected",
        kafka.len(),
        expected.len()
    );
    let client = reqwest::Client::new();

    // The first instance reads the first part alone.
    produce(&bootstrap, first).await;
    let a = start(&configs[0]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::records_read(&client, &addresses[0]).await < first.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the first instance did not read the first part"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The second starts; once the group has rebalanced, both hold part of the input.
    let b = start(&configs[1]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let split = common::assignment_lines(&configs[1])
            .iter()
            .any(|l| l.contains("partitions assigned"));
        if split {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second instance got no partition in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The rest of the traffic arrives while they share the input.
    produce(&bootstrap, rest).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Neither holds the whole input: neither publishes, and their status says so (the page
    // shows it as a banner).
    for address in &addresses {
        assert_eq!(
            common::publishes(&client, address).await,
            Some(false),
            "{address} holds part of the input"
        );
    }
    common::signal(&a, "TERM");
    drop(a);

    let reader = common::kafka::Reader::new(&bootstrap, &t.metrics, 1);
    let published = common::read_until_published(
        &reader,
        &expected,
        Duration::from_secs(120),
        &client,
        &addresses[1],
    )
    .await;
    assert_eq!(
        common::publishes(&client, &addresses[1]).await,
        Some(true),
        "the remaining instance publishes"
    );
    common::signal(&b, "TERM");
    drop(b);
    for (i, config) in configs.iter().enumerate() {
        for line in common::assignment_lines(config) {
            eprintln!("instance {i}: {line}");
        }
    }
    common::assert_every_copy_as_expected(&expected, &published);
    let _ = std::fs::remove_dir_all(dir);
}
