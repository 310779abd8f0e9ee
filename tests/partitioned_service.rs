//! `scale.mode = "partitioned"` with one instance: its tasks (one per input partition) send
//! partial windows through the partials topic to the finalizer in the same process, which
//! publishes what `replay` prints, every copy. Then the instance is stopped (SIGTERM) and
//! restarted mid-stream: the tasks and the finalizer continue from their checkpoints.
//! Runs against librdkafka's mock cluster, or a real broker with `KAFKA_BOOTSTRAP_SERVERS`.

mod common;

use std::time::Duration;

use common::kafka::{produce, unique, Broker};
use common::service_toml::{ServiceToml, Topics};
use feedback_loop::traffic::DEMO_MODELS_TOML;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partitioned_instance_publishes_what_replay_prints_across_a_restart() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let t = Topics::unique();
    t.create(&broker, 3).await;
    let partials = unique("partials");
    broker.create_topic(&partials, 1).await;
    let dir = std::env::temp_dir().join(unique("partitioned"));
    let address = format!("127.0.0.1:{}", common::free_port());
    let toml = ServiceToml::new(&bootstrap, &t)
        .text("http", "listen", &address)
        .text("join", "max_label_delay", "5s")
        .text("join", "max_outcome_lead", "2s")
        .text("window", "size", "10s")
        .text("window", "allowed_lateness", "1s")
        .text("window", "idle_timeout", "30s")
        .text("checkpoint", "interval", "500ms")
        .text("scale", "mode", "partitioned")
        .text("scale", "partials_topic", &partials)
        .append(DEMO_MODELS_TOML);
    let config = toml.load();
    let path = toml.write(&dir);
    let messages = common::traffic(23, 40.0, 4_000, 200_000);
    let (expected, _) = common::replay(&config, &messages);
    let kafka = common::to_kafka(&messages, &t.predictions, &t.outcomes);
    let (first, rest) = kafka.split_at(kafka.len() / 2);
    eprintln!(
        "{} messages, {} records expected",
        kafka.len(),
        expected.len()
    );
    let client = reqwest::Client::new();
    let start = || {
        let mut command = common::service_command(&path);
        command.env(
            "RUST_LOG",
            "warn,feedback_loop::scale=info,feedback_loop::kafka=info",
        );
        common::Service::spawn(command, &dir.join("service.log"))
    };

    produce(&bootstrap, first).await;
    let service = start();
    common::wait_until_read(&client, &address, first.len() as u64, "first part").await;
    // A checkpoint or two after the first part, then a graceful stop mid-stream.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut service = service;
    common::signal(&service, "TERM");
    let status = service.child.wait().expect("wait for the service");
    assert!(status.success(), "the graceful stop failed: {status:?}");
    drop(service);

    produce(&bootstrap, rest).await;
    let service = start();
    let reader = common::kafka::Reader::new(&bootstrap, &t.metrics, 1);
    let published = common::read_until_published(
        &reader,
        &expected,
        Duration::from_secs(120),
        &client,
        &address,
    )
    .await;
    common::signal(&service, "TERM");
    drop(service);
    common::assert_every_copy_as_expected(&expected, &published);
    // The restart read the tasks' snapshots to the end of the state topic's partitions:
    // an end of partition is what the reader asked for, not an error.
    let log = std::fs::read_to_string(dir.join("service.log")).expect("the service's log");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "errors logged: {errors:#?}");
    let _ = std::fs::remove_dir_all(dir);
}
