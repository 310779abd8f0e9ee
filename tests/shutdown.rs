//! SIGTERM: the `run` binary stops consuming, flushes, commits its offsets and exits 0
//! within 10 s; and when the stop cannot finish (the cluster went away), it still exits
//! within `shutdown.timeout`.

mod common;

use std::time::{Duration, Instant};

use common::kafka::{produce, unique, Broker};
use common::service_toml::{ServiceToml, Topics};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// A running `run` binary that has consumed a produced stream and is ready.
struct Started {
    broker: Broker,
    bootstrap: String,
    group: String,
    /// Next offset of every input partition written to.
    ends: std::collections::BTreeMap<(String, i32), i64>,
    child: common::Service,
    dir: std::path::PathBuf,
}

async fn start(broker: Broker, shutdown_timeout: Option<&str>) -> Started {
    let bootstrap = broker.bootstrap();
    let group = unique("group");
    let t = Topics::unique();
    t.create(&broker, 2).await;
    let (predictions, outcomes) = (t.predictions.clone(), t.outcomes.clone());
    let mut messages = Vec::new();
    for i in 0..2000i64 {
        let ts = 1_767_225_600_000 + i * 100;
        let id = format!("r{i}");
        let prediction = format!(
            r#"{{"id":"{id}","model":"m","timestamp":{ts},"prediction":{}}}"#,
            i % 2
        );
        messages.push((predictions.clone(), id.clone(), prediction.into_bytes(), ts));
        let outcome = format!(
            r#"{{"id":"{id}","timestamp":{},"actual":{}}}"#,
            ts + 500,
            (i / 3) % 2
        );
        messages.push((outcomes.clone(), id, outcome.into_bytes(), ts + 500));
    }
    let ends = produce(&bootstrap, &messages).await;

    let port = common::free_port();
    let address = format!("127.0.0.1:{port}");
    let mut toml = ServiceToml::new(&bootstrap, &t)
        .text("kafka", "group_id", &group)
        .text("http", "listen", &address)
        .append("[[models]]\nname = \"m\"\ntask = \"binary\"\npositive_class = \"1\"");
    if let Some(timeout) = shutdown_timeout {
        toml = toml.text("shutdown", "timeout", timeout);
    }
    let config = toml.write(&std::env::temp_dir().join(unique("shutdown")));
    let dir = config.parent().expect("a directory").to_path_buf();
    let mut command = common::service_command(&config);
    command.env("RUST_LOG", "warn");
    let child = common::Service::spawn(command, &dir.join("service.log"));

    // Wait until it has consumed everything.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let consumed = common::metric(&client, &address, "feedback_loop_input_records_total{")
            .await
            .unwrap_or(0.0);
        if consumed as usize >= messages.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "consumed only {consumed} of {}",
            messages.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let ready = client
            .get(format!("http://{address}/readyz"))
            .send()
            .await
            .unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Started {
        broker,
        bootstrap,
        group,
        ends,
        child,
        dir,
    }
}

/// Sends SIGTERM and waits up to `limit` for the exit.
async fn terminate(
    child: &mut std::process::Child,
    limit: Duration,
) -> (std::process::ExitStatus, Duration) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break (exit, stopped.elapsed());
        }
        if stopped.elapsed() > limit {
            let _ = child.kill();
            panic!("still running {limit:?} after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_and_exits_zero() {
    // `_broker` keeps the mock cluster alive to the end (a `..` pattern would drop it here).
    let Started {
        broker: _broker,
        bootstrap,
        group,
        ends,
        mut child,
        dir,
    } = start(Broker::start(), None).await;
    let (exit, _) = terminate(&mut child.child, Duration::from_secs(10)).await;
    assert!(exit.success(), "exit status {exit}");
    drop(child);

    // The group's committed offsets are the ends of the input partitions.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    for (topic, partition) in ends.keys() {
        wanted.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .unwrap();
    let mut found = std::collections::BTreeMap::new();
    for element in committed.elements() {
        if let Offset::Offset(o) = element.offset() {
            found.insert((element.topic().to_string(), element.partition()), o);
        }
    }
    // Drop the list before the consumer (a live list makes the consumer's drop hang).
    drop(committed);
    drop(consumer);
    assert_eq!(found, ends);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_cannot_finish_ends_at_the_shutdown_timeout() {
    // Always the mock cluster, even where a real broker is configured: the test destroys
    // the cluster under the service.
    let Started {
        broker,
        mut child,
        dir,
        ..
    } = start(Broker::mock(), Some("2s")).await;
    // The cluster goes away: the final checkpoint can never be stored. The whole mock
    // cluster is destroyed rather than its broker taken down: `broker_down` re-binds the
    // listener's port at once and librdkafka aborts the process when that bind loses a race
    // for the port (rdkafka_mock.c "Failed to-create mock broker listener", 2 runs in 40).
    assert!(!broker.is_real());
    drop(broker);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (exit, took) = terminate(&mut child.child, Duration::from_secs(15)).await;
    assert_eq!(exit.code(), Some(1), "exit status {exit}");
    assert!(took >= Duration::from_millis(1900), "exited after {took:?}");
    assert!(took < Duration::from_secs(8), "exited after {took:?}");
    let _ = std::fs::remove_dir_all(dir);
}
