//! Crash test: the service is killed with SIGKILL at random points while it drains a
//! pre-loaded stream, restarted each time, and once the input is drained the metrics records
//! it published, deduplicated by record id, equal what `replay` prints for the same input:
//! no window missing, none extra, every copy of a window with the same values.
//!
//! On a real broker (`KAFKA_BOOTSTRAP_SERVERS`, CI: tansu) the stream has over 200,000 pairs;
//! on the mock cluster (which drops data beyond 5 MB per partition) a smaller one.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::kafka::{produce, unique, Broker};
use feedback_loop::config::Config;
use feedback_loop::traffic::{
    SplitMix64, Stream, TrafficConfig, TrafficGenerator, DEMO_MODELS_TOML,
};
use serde_json::Value;

fn start(config: &std::path::Path) -> common::KillOnDrop {
    common::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_feedback-loop"))
            .args(["run", "--config"])
            .arg(config)
            .env(
                "RUST_LOG",
                std::env::var("CRASH_TEST_LOG")
                    .unwrap_or_else(|_| "warn,feedback_loop::service=info".into()),
            )
            .spawn()
            .expect("start the service"),
    )
}

async fn consumed(client: &reqwest::Client, address: &str) -> Option<u64> {
    let body = client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(common::metric_sum(&body, "feedback_loop_input_records_total{") as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_service_publishes_what_replay_prints() {
    let broker = Broker::start();
    if !broker.is_real() {
        // librdkafka's mock cluster does not survive members killed mid-rebalance (the new
        // member stays in wait-sync, "Unknown member"), and drops data beyond 5 MB per
        // partition: this test needs a real broker (CI runs it against tansu).
        eprintln!(
            "crash test skipped: set KAFKA_BOOTSTRAP_SERVERS to run it against a real broker"
        );
        return;
    }
    let bootstrap = broker.bootstrap();
    let requests = 140_000.0;
    let (predictions, outcomes, metrics, state) =
        (unique("p"), unique("o"), unique("metrics"), unique("state"));
    broker.create_topic(&predictions, 4).await;
    broker.create_topic(&outcomes, 4).await;
    for topic in [&metrics, &state] {
        broker.create_topic(topic, 1).await;
    }
    let (alerts, retrain, dlq) = (unique("alerts"), unique("retrain"), unique("dlq"));
    for topic in [&alerts, &retrain, &dlq] {
        broker.create_topic(topic, 1).await;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let text = format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{group}"
predictions_topic = "{predictions}"
outcomes_topic = "{outcomes}"
metrics_topic = "{metrics}"
alerts_topic = "{alerts}"
retrain_topic = "{retrain}"
dead_letter_topic = "{dlq}"
[kafka.client]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000
{debug}
[http]
listen = "{address}"
[join]
max_label_delay = "5s"
max_outcome_lead = "2s"
[window]
size = "10s"
allowed_lateness = "1s"
idle_timeout = "2s"
[limits]
max_event_age = "0s"
[checkpoint]
topic = "{state}"
interval = "500ms"
{DEMO_MODELS_TOML}
"#,
        group = unique("group"),
        // librdkafka's debug contexts for the service, e.g. CRASH_TEST_RDKAFKA_DEBUG=fetch
        // (with CRASH_TEST_LOG=librdkafka=debug,...).
        debug = std::env::var("CRASH_TEST_RDKAFKA_DEBUG")
            .map(|contexts| format!("\"debug\" = \"{contexts}\""))
            .unwrap_or_default(),
    );
    let config = Config::from_toml_str(&text).unwrap();
    let dir = std::env::temp_dir().join(unique("crash"));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("feedback-loop.toml");
    std::fs::write(&config_path, &text).unwrap();

    // The stream: 500 requests/s of event time, outcomes up to 4 s late, drift half-way.
    let start_ms = 1_767_225_600_000;
    let span_ms = (requests / 500.0 * 1000.0) as i64;
    let mut generator = TrafficGenerator::new(TrafficConfig {
        seed: 3,
        rate_per_s: 500.0,
        min_label_delay_ms: 0,
        max_label_delay_ms: 4_000,
        missing_outcome_rate: 0.1,
        drift_at_ms: Some(start_ms + span_ms / 2),
        start_ms,
    });
    let mut messages = generator.until(start_ms + span_ms);
    messages.extend(generator.drain());

    // What replay prints.
    let (mut p_lines, mut o_lines) = (String::new(), String::new());
    for m in &messages {
        let file = if m.stream == Stream::Predictions {
            &mut p_lines
        } else {
            &mut o_lines
        };
        file.push_str(&m.payload);
        file.push('\n');
    }
    let mut out = Vec::new();
    let summary = feedback_loop::replay::replay(
        &config,
        p_lines.as_bytes(),
        o_lines.as_bytes(),
        &mut out,
        &mut Vec::new(),
    )
    .unwrap();
    let expected: BTreeMap<String, Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["schema"] == "feedback-loop.metrics.v1")
        .map(|v| (v["record_id"].as_str().unwrap().to_string(), v))
        .collect();
    let pairs: u64 = expected
        .values()
        .filter(|v| v.get("segment").is_none())
        .map(|v| v["counts"]["joined"].as_u64().unwrap())
        .sum();
    eprintln!(
        "{} messages, {pairs} pairs, {} records expected ({} lines replayed)",
        messages.len(),
        expected.len(),
        summary.records
    );
    if broker.is_real() {
        assert!(
            pairs >= 200_000,
            "the crash test needs at least 200k pairs, has {pairs}"
        );
    }

    let kafka: Vec<(String, String, Vec<u8>, i64)> = messages
        .iter()
        .map(|m| {
            let topic = if m.stream == Stream::Predictions {
                predictions.clone()
            } else {
                outcomes.clone()
            };
            (topic, m.key.clone(), m.payload.clone().into_bytes(), m.ts)
        })
        .collect();
    produce(&bootstrap, &kafka).await;

    // Three kills at random points of the drain.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill points seed: {seed}");
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
            let n = consumed(&client, &address).await.unwrap_or(0);
            if n != last_n {
                (last_n, last_change) = (n, Instant::now());
            }
            let drained = n > 0 && last_change.elapsed() > Duration::from_secs(3);
            if n >= target || drained {
                let body = client
                    .get(format!("http://{address}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let health: Vec<&str> = body
                    .lines()
                    .filter(|l| {
                        !l.starts_with('#')
                            && !l.contains("model_")
                            && !l.contains("_bucket")
                            && !l.contains("consumer_lag")
                    })
                    .collect();
                eprintln!("kill {kill}: SIGKILL after {n} messages in this run; {health:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "run {kill} consumed only {n} of {target} in 90 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = std::process::Command::new("kill")
            .args(["-KILL", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        drop(child);
    }

    // The last run drains everything; idle partitions then let every window close.
    let last = start(&config_path);
    let reader = common::kafka::Reader::new(&bootstrap, &metrics, 1);
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut published: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    loop {
        for payload in reader.read_for(Duration::from_secs(3)).await {
            let v: Value = serde_json::from_slice(&payload).unwrap();
            published
                .entry(v["record_id"].as_str().unwrap().to_string())
                .or_default()
                .push(v);
        }
        if expected.keys().all(|k| published.contains_key(k)) {
            // Anything still in flight (a last re-publication) arrives too.
            for payload in reader.read_for(Duration::from_secs(2)).await {
                let v: Value = serde_json::from_slice(&payload).unwrap();
                published
                    .entry(v["record_id"].as_str().unwrap().to_string())
                    .or_default()
                    .push(v);
            }
            break;
        }
        if Instant::now() >= deadline {
            // Say whether the service did not close the windows or the reader missed them.
            let body = client
                .get(format!("http://{address}/metrics"))
                .send()
                .await
                .map(|r| r.text());
            let body = match body {
                Ok(text) => text.await.unwrap_or_default(),
                Err(error) => format!("metrics unreachable: {error}"),
            };
            let health: Vec<&str> = body
                .lines()
                .filter(|l| !l.starts_with('#') && !l.contains("model_") && !l.contains("_bucket"))
                .collect();
            panic!(
                "after 150 s, {} of {} windows published; the service says: {health:?}",
                expected
                    .keys()
                    .filter(|k| published.contains_key(*k))
                    .count(),
                expected.len()
            );
        }
    }
    std::process::Command::new("kill")
        .args(["-TERM", &last.0.id().to_string()])
        .status()
        .unwrap();
    drop(last);

    let extra: Vec<&String> = published
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        extra.is_empty(),
        "windows replay does not have: {:?}",
        &extra[..extra.len().min(5)]
    );
    let mut problems = Vec::new();
    let mut duplicates = 0;
    for (id, want) in &expected {
        for copy in &published[id] {
            common::compare(id, want, copy, &mut problems);
        }
        duplicates += published[id].len() - 1;
    }
    eprintln!(
        "{} windows, {duplicates} duplicate copies (same content)",
        expected.len()
    );
    assert!(
        problems.is_empty(),
        "{} differences: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    let _ = std::fs::remove_dir_all(dir);
}
