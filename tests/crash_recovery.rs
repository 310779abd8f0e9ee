//! Crash test: the service is killed with SIGKILL at random points while it drains a
//! pre-loaded stream, restarted each time, and once the input is drained the metrics records
//! it published, deduplicated by record id, equal what `replay` prints for the same input:
//! no window missing, none extra, every copy of a window with the same values.
//!
//! On a real broker (`KAFKA_BOOTSTRAP_SERVERS`, CI: tansu) the stream has over 200,000 pairs;
//! on the mock cluster (which drops data beyond 5 MB per partition) a smaller one.

mod common;

use std::time::{Duration, Instant};

use common::kafka::{produce, unique, Broker};
use common::service_toml::{ServiceToml, Topics};
use feedback_loop::traffic::{SplitMix64, DEMO_MODELS_TOML};

/// Starts the service; every run appends to one log beside the configuration.
fn start(config: &std::path::Path) -> common::Service {
    let mut command = common::service_command(config);
    command.env(
        "RUST_LOG",
        std::env::var("CRASH_TEST_LOG")
            .unwrap_or_else(|_| "warn,feedback_loop::pipeline=info".into()),
    );
    common::Service::spawn(command, &config.with_file_name("service.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Kafka-protocol broker: KAFKA_BOOTSTRAP_SERVERS=host:port cargo test --test crash_recovery -- --ignored (.ci/run does, against tansu)"]
async fn killed_and_restarted_service_publishes_what_replay_prints() {
    let broker = Broker::start();
    if !broker.is_real() {
        // librdkafka's mock cluster does not survive members killed mid-rebalance (the new
        // member stays in wait-sync, "Unknown member"), and drops data beyond 5 MB per
        // partition: this test needs a real broker (CI runs it against tansu).
        panic!("the crash test needs a real broker: set KAFKA_BOOTSTRAP_SERVERS");
    }
    let bootstrap = broker.bootstrap();
    let requests = 140_000.0;
    let t = Topics::unique();
    t.create(&broker, 4).await;
    let port = common::free_port();
    let address = format!("127.0.0.1:{port}");
    let mut toml = ServiceToml::new(&bootstrap, &t)
        .text("http", "listen", &address)
        .text("join", "max_label_delay", "5s")
        .text("join", "max_outcome_lead", "2s")
        .text("window", "size", "10s")
        .text("window", "allowed_lateness", "1s")
        .text("window", "idle_timeout", "2s")
        .text("checkpoint", "interval", "500ms")
        .append(DEMO_MODELS_TOML);
    // librdkafka's debug contexts for the service, e.g. CRASH_TEST_RDKAFKA_DEBUG=fetch
    // (with CRASH_TEST_LOG=librdkafka=debug,...).
    if let Ok(contexts) = std::env::var("CRASH_TEST_RDKAFKA_DEBUG") {
        toml = toml.text("kafka.client", "debug", &contexts);
    }
    let config = toml.load();
    let dir = std::env::temp_dir().join(unique("crash"));
    let config_path = toml.write(&dir);
    let (predictions, outcomes, metrics) = (t.predictions, t.outcomes, t.metrics);

    // The stream: 500 requests/s of event time, outcomes up to 4 s late, drift half-way.
    let messages = common::traffic(3, 500.0, 4_000, (requests / 500.0 * 1000.0) as i64);
    let (expected, _) = common::replay(&config, &messages);
    let pairs = common::joined_pairs(&expected);
    eprintln!(
        "{} messages, {pairs} pairs, {} records expected",
        messages.len(),
        expected.len()
    );
    if broker.is_real() {
        assert!(
            pairs >= 200_000,
            "the crash test needs at least 200k pairs, has {pairs}"
        );
    }
    let kafka = common::to_kafka(&messages, &predictions, &outcomes);
    produce(&bootstrap, &kafka).await;

    // Three kills at random points of the drain.
    // CRASH_TEST_SEED repeats a run's kill points (the seed is printed).
    let seed = std::env::var("CRASH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill points seed: {seed} (CRASH_TEST_SEED repeats it)");
    let mut rng = SplitMix64::new(seed);
    let client = reqwest::Client::new();
    let total = messages.len() as u64;
    for kill in 0..3 {
        let child = start(&config_path);
        let target = ((0.15 + 0.25 * rng.unit()) * total as f64) as u64;
        let deadline = Instant::now() + Duration::from_secs(90);
        // Kill at the target, or when this run has read all that is left (later runs restart
        // close to the end: what they must read can be less than the target).
        let (mut last_n, mut last_change) = (0, Instant::now());
        loop {
            let n = common::metric(&client, &address, "feedback_loop_input_records_total{")
                .await
                .unwrap_or(0.0) as u64;
            if n != last_n {
                (last_n, last_change) = (n, Instant::now());
            }
            let drained = n > 0 && last_change.elapsed() > Duration::from_secs(3);
            if n >= target || drained {
                let body = common::scrape(&client, &address).await.unwrap_or_default();
                let health = common::health_lines(&body);
                eprintln!("kill {kill}: SIGKILL after {n} messages in this run; {health:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "run {kill} consumed only {n} of {target} in 90 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        common::signal(&child, "KILL");
        drop(child);
    }

    // The last run drains everything; idle partitions then let every window close.
    let last = start(&config_path);
    let reader = common::kafka::Reader::new(&bootstrap, &metrics, 1);
    // Say whether the service did not close the windows or the reader missed them.
    let published = common::read_until_published(
        &reader,
        &expected,
        Duration::from_secs(150),
        &client,
        &address,
    )
    .await;
    common::signal(&last, "TERM");
    drop(last);
    common::assert_every_copy_as_expected(&expected, &published);
    let _ = std::fs::remove_dir_all(dir);
}

/// What an operator does without thinking of it: a crashed pod's replacement starts at once,
/// while the dead member still holds its partitions (until `session.timeout.ms`), and a
/// rolling deploy starts the new pod before the old one stops. While an instance holds only
/// some of the partitions it must not publish windows computed from a part of the data:
/// every copy of every window on the metrics topic equals replay's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Kafka-protocol broker: KAFKA_BOOTSTRAP_SERVERS=host:port cargo test --test crash_recovery -- --ignored (.ci/run does, against tansu)"]
async fn replacements_that_overlap_the_old_instance_publish_what_replay_prints() {
    let broker = Broker::start();
    if !broker.is_real() {
        panic!("the overlap test needs a real broker: set KAFKA_BOOTSTRAP_SERVERS");
    }
    let bootstrap = broker.bootstrap();
    let t = Topics::unique();
    t.create(&broker, 3).await;
    let ports = [
        common::free_port(),
        common::free_port(),
        common::free_port(),
    ];
    let dir = std::env::temp_dir().join(unique("overlap"));
    let mut configs = Vec::new();
    let mut config = None;
    // One consumer group: the instances share the input.
    let group = unique("group");
    for (i, port) in ports.iter().enumerate() {
        let toml = ServiceToml::new(&bootstrap, &t)
            .text("kafka", "group_id", &group)
            .text("http", "listen", &format!("127.0.0.1:{port}"))
            .text("join", "max_label_delay", "5s")
            .text("join", "max_outcome_lead", "2s")
            .text("window", "size", "10s")
            .text("window", "allowed_lateness", "1s")
            .text("window", "idle_timeout", "2s")
            .text("checkpoint", "interval", "500ms")
            .append(DEMO_MODELS_TOML);
        config.get_or_insert_with(|| toml.load());
        configs.push(toml.write(&dir.join(format!("instance-{i}"))));
    }
    let config = config.expect("a configuration");
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();

    let messages = common::traffic(5, 500.0, 4_000, 160_000);
    let (expected, _) = common::replay(&config, &messages);
    let total = messages.len() as u64;
    eprintln!("{total} messages, {} records expected", expected.len());
    let kafka = common::to_kafka(&messages, &t.predictions, &t.outcomes);
    produce(&bootstrap, &kafka).await;
    let client = reqwest::Client::new();

    // A reads a fifth, is killed; B starts at once, while A is still a member.
    let a = start(&configs[0]);
    common::wait_until_read(&client, &addresses[0], total / 5, "A").await;
    common::signal(&a, "KILL");
    drop(a);
    let b = start(&configs[1]);
    // B reads some, is killed too, while A may still be a member; C starts at once.
    common::wait_until_read(&client, &addresses[1], total / 10, "B").await;
    common::signal(&b, "KILL");
    drop(b);
    let c = start(&configs[2]);
    common::wait_until_read(&client, &addresses[2], total / 3, "C").await;
    // A rolling deploy: D (on A's port) starts, C is stopped once D has taken part of the
    // input (a rebalance) and some seconds have passed.
    let d = start(&configs[0]);
    tokio::time::sleep(Duration::from_secs(12)).await;
    common::signal(&c, "TERM");
    drop(c);
    let c = d;
    let last_address = &addresses[0];

    let reader = common::kafka::Reader::new(&bootstrap, &t.metrics, 1);
    let published = common::read_until_published(
        &reader,
        &expected,
        Duration::from_secs(150),
        &client,
        last_address,
    )
    .await;
    common::signal(&c, "TERM");
    drop(c);
    // Who held what, when: the instances' assignment lines.
    for (i, config) in configs.iter().enumerate() {
        for line in common::assignment_lines(config) {
            eprintln!("instance {i}: {line}");
        }
    }
    common::assert_every_copy_as_expected(&expected, &published);
    let _ = std::fs::remove_dir_all(dir);
}
