//! Several instances share the work (issue #15): three `run` processes of one consumer group
//! in `[scale] mode = "partitioned"` drain a stream from 6-partition input topics, each
//! running the engine tasks of the partitions it holds, and one of them merging the partial
//! windows. Mid-stream the one merging is killed with SIGKILL and its replacement starts at
//! once (before the group notices the dead member); once the group has rebalanced without
//! the dead member, the rest of the stream arrives and another instance is stopped with
//! SIGTERM and restarted. Every copy of every record on the metrics topic must equal
//! `replay`'s record with its id, and the alerts and retrain triggers `replay`'s events;
//! each instance must have read part of the input. Needs a real broker
//! (`KAFKA_BOOTSTRAP_SERVERS`; CI: tansu).

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
            "warn,feedback_loop::pipeline=info,feedback_loop::kafka::consumer=info,\
             feedback_loop::scale=info,feedback_loop::kafka::partials=info"
                .into()
        }),
    );
    common::Service::spawn(command, &config.with_file_name("service.log"))
}

/// The lines of an instance's log (every run of it) that contain one of `needles`.
fn log_lines(config: &std::path::Path, needles: &[&str]) -> Vec<String> {
    std::fs::read_to_string(config.with_file_name("service.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Waits (at most 60 s) until one of the instances says it runs the finalizer (it holds
/// task 0) and has not said since that it lost it: its index.
async fn wait_for_finalizer(configs: &[std::path::PathBuf]) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let holder = configs.iter().position(|config| {
            log_lines(
                config,
                &["finalizer: this instance holds", "finalizer: task 0 moved"],
            )
            .last()
            .is_some_and(|l| l.contains("holds"))
        });
        if let Some(holder) = holder {
            return holder;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no instance ran the finalizer in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tasks an instance runs, by the latest "tasks of this instance" line of its log after
/// its first `earlier` lines (none before its first).
fn tasks_held(config: &std::path::Path, earlier: usize) -> Vec<u32> {
    let lines = log_lines(config, &[""]);
    let Some(line) = lines[earlier.min(lines.len())..]
        .iter()
        .rev()
        .find(|l| l.contains("tasks of this instance"))
    else {
        return Vec::new();
    };
    let Some(list) = line
        .split("tasks=[")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
    else {
        return Vec::new();
    };
    list.split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

/// Waits (at most 60 s) until the running instances hold every task between them: the
/// killed member's session has expired and the group has rebalanced without it.
async fn wait_until_live_instances_hold_every_task(
    configs: &[std::path::PathBuf],
    killed: usize,
    earlier: usize,
    tasks: u32,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut held: Vec<u32> = configs
            .iter()
            .enumerate()
            .flat_map(|(i, config)| tasks_held(config, if i == killed { earlier } else { 0 }))
            .collect();
        held.sort_unstable();
        if held == (0..tasks).collect::<Vec<_>>() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the live instances hold tasks {held:?} after 60 s, not all {tasks}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 60 s) until a line of the instance's log after its first `earlier` lines
/// says that it runs tasks.
async fn wait_for_tasks(config: &std::path::Path, earlier: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !log_lines(config, &[""])[earlier..]
        .iter()
        .any(|l| l.contains("tasks of this instance") && !l.contains("tasks=[]"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the replacement got no task in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
            // Longer than the pauses a kill or a rebalance makes: a task whose partitions
            // were silent that long would move event time on with the wall clock (the idle
            // rule), which `replay` has no notion of.
            .text("window", "idle_timeout", "30s")
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
    // Three fifths of the stream before the start, the rest once the group has settled
    // after the kill (below): the SIGTERM comes while it is read.
    let kafka = common::to_kafka(&messages, &t.predictions, &t.outcomes);
    let (first, rest) = kafka.split_at(kafka.len() * 3 / 5);
    produce(&bootstrap, first).await;
    let client = reqwest::Client::new();
    let at: Vec<&str> = addresses.iter().map(String::as_str).collect();

    let mut running: Vec<common::Service> = configs.iter().map(|c| start(c)).collect();
    // A sixth of the stream in, the instance that merges the partials is killed; its
    // replacement starts at once, while the group still counts the dead member
    // (session.timeout.ms 6 s).
    common::wait_until_read_by(&client, &at, total / 6, "before SIGKILL").await;
    let killed = wait_for_finalizer(&configs).await;
    let name = |i: usize| ["A", "B", "C"][i];
    eprintln!("SIGKILL to {}, which runs the finalizer", name(killed));
    let mut read = [0; 3];
    read[killed] = common::records_read(&client, at[killed]).await;
    common::signal(&running[killed], "KILL");
    drop(running.remove(killed)); // reaped: its HTTP port is free
    let earlier = log_lines(&configs[killed], &[""]).len();
    running.insert(killed, start(&configs[killed]));
    // Once the group has given the replacement tasks and, the dead member's session
    // expired, rebalanced without it, the rest of the stream arrives and another instance
    // is stopped as a deploy stops it, and restarted once it has exited. (tansu may give
    // the replacement tasks while the dead member still holds some; twice in ten runs a
    // SIGTERM whose rebalance began as that member expired left the whole group
    // unassigned for over 240 s.)
    wait_for_tasks(&configs[killed], earlier).await;
    wait_until_live_instances_hold_every_task(&configs, killed, earlier, 6).await;
    produce(&bootstrap, rest).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "{} of {total} read (re-reads included) before SIGTERM",
        read[killed] + common::records_read_by(&client, &at).await
    );
    let stopped = (killed + 1) % 3;
    let steady = (killed + 2) % 3;
    eprintln!("SIGTERM to {}", name(stopped));
    read[stopped] = common::records_read(&client, at[stopped]).await;
    let status = common::terminate(running.remove(stopped), Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "{} after SIGTERM: {status}",
        name(stopped)
    );
    running.insert(stopped, start(&configs[stopped]));

    let reader = common::kafka::Reader::new(&bootstrap, &t.metrics, 1);
    let published =
        common::read_until_published_by(&reader, &expected, Duration::from_secs(240), &client, &at)
            .await;
    let mut events: Vec<Value> = Vec::new();
    for topic in [&t.alerts, &t.retrain] {
        for message in consume(&bootstrap, topic, usize::MAX, Duration::from_secs(10)).await {
            events.push(serde_json::from_slice(&message.payload).expect("event is JSON"));
        }
    }
    read[steady] = common::records_read(&client, at[steady]).await;
    for (i, service) in running.into_iter().enumerate() {
        let status = common::terminate(service, Duration::from_secs(30)).await;
        eprintln!("{} after SIGTERM: {status}", name(i));
    }
    // Who held which tasks and the partials topic, when.
    for (i, config) in configs.iter().enumerate() {
        for line in log_lines(
            config,
            &["tasks of this instance", "finalizer:", "stopping"],
        ) {
            eprintln!("{}: {line}", name(i));
        }
    }

    for line in common::differing_windows(&expected, &published) {
        eprintln!("differs: {line}");
    }
    // The events first: the windows that differ are listed above.
    common::assert_events_as_expected(&expected_events, &events);
    common::assert_every_copy_as_expected(&expected, &published);
    // The work was shared: each first instance read part of the input.
    eprintln!(
        "read: {} (killed) {}, {} (stopped) {}, {} {}",
        name(killed),
        read[killed],
        name(stopped),
        read[stopped],
        name(steady),
        read[steady]
    );
    for (i, read) in read.iter().enumerate() {
        assert!(
            *read > 0 && *read < total,
            "{} read {read} of {total} messages: the input was not shared",
            name(i)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
