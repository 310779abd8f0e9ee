//! The Kafka service against a Kafka-protocol broker over TCP, with real rdkafka clients on
//! the other side: librdkafka's mock cluster by default, a real broker when
//! `KAFKA_BOOTSTRAP_SERVERS` is set (CI: tansu).
//!
//! A known stream is produced; the metrics records the service publishes must equal what
//! `replay` prints for the same input (numbers within 1e-9: sums may be taken in another
//! order). Bad messages go to the dead-letter topic with their reason and leave the good
//! records' metrics unchanged. `/metrics` passes `promtool check metrics`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::kafka::{consume, produce, Broker};
use common::service_toml::{ServiceToml, Topics};
use feedback_loop::shared_state::SharedState;
use feedback_loop::shutdown::Shutdown;
use feedback_loop::telemetry::Telemetry;
use feedback_loop::traffic::DEMO_MODELS_TOML;
use feedback_loop_core::settings::Config;
use serde_json::Value;

async fn topics(broker: &Broker) -> Topics {
    let t = Topics::unique();
    t.create(broker, 4).await;
    t
}

fn config(bootstrap: &str, t: &Topics) -> Config {
    ServiceToml::new(bootstrap, t)
        .text("join", "max_label_delay", "10s")
        .text("join", "max_outcome_lead", "5s")
        .text("window", "size", "10s")
        .text("window", "allowed_lateness", "1s")
        .text("window", "idle_timeout", "3s")
        .text("checkpoint", "interval", "1s")
        .value("limits", "max_message_bytes", 2_000_000)
        .append(DEMO_MODELS_TOML)
        .append(
            r#"[[rules]]
name = "accuracy-drop"
model = "fraud"
metric = "classification.accuracy"
op = "<"
threshold = 0.75
min_samples = 20
retrain = true
cooldown = "30s""#,
        )
        .load()
}

/// Two minutes of event time at 40 requests/s, outcomes up to 8 s late, drift after 1 min.
fn stream() -> Vec<feedback_loop::traffic::Message> {
    common::traffic(11, 40.0, 8_000, 120_000)
}

fn to_kafka(
    t: &Topics,
    messages: &[feedback_loop::traffic::Message],
) -> Vec<(String, String, Vec<u8>, i64)> {
    common::to_kafka(messages, &t.predictions, &t.outcomes)
}

struct Running {
    state: Arc<SharedState>,
    notify: tokio::sync::broadcast::Sender<()>,
    service: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: std::net::SocketAddr,
}

async fn start_service(config: Config) -> Running {
    let (notify, _) = tokio::sync::broadcast::channel(1);
    let state = SharedState::new(Arc::new(Telemetry::new().unwrap()), 1440);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(feedback_loop::http::serve(
        listener,
        state.clone(),
        Shutdown::new(notify.subscribe()),
    ));
    let service = tokio::spawn(feedback_loop::pipeline::run(
        config.into(),
        state.clone(),
        Shutdown::new(notify.subscribe()),
    ));
    Running {
        state,
        notify,
        service,
        http,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.notify.send(());
        tokio::time::timeout(Duration::from_secs(20), self.service)
            .await
            .expect("service stops within 20 s")
            .expect("service task")
            .expect("service ends cleanly");
    }
}

/// Records the service published, by record id.
fn by_id(received: &[common::kafka::Received]) -> BTreeMap<String, Value> {
    received
        .iter()
        .map(|m| {
            let value: Value = serde_json::from_slice(&m.payload).expect("metrics record is JSON");
            (value["record_id"].as_str().unwrap().to_string(), value)
        })
        .collect()
}

fn assert_same(
    expected: &BTreeMap<String, Value>,
    actual: &BTreeMap<String, Value>,
    ignore_invalid: bool,
) {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} records missing (first: {:?}), {} extra (first: {:?})",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(3).collect::<Vec<_>>()
    );
    let mut problems = Vec::new();
    for (id, e) in expected {
        let mut a = actual[id].clone();
        let mut e = e.clone();
        if ignore_invalid {
            a["counts"]["invalid"] = Value::Null;
            e["counts"]["invalid"] = Value::Null;
        }
        common::compare(id, &e, &a, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "{} differences: {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_metrics_equal_replay() {
    let broker = Broker::start();
    let t = topics(&broker).await;
    let config = config(&broker.bootstrap(), &t);
    let messages = stream();
    let (expected, expected_events) = common::replay(&config, &messages);
    assert!(expected.len() > 50, "the stream makes enough windows");
    assert!(
        expected
            .values()
            .any(|v| v["schema"] == "feedback-loop.estimation-check.v1"),
        "fraud's [models.estimation] makes estimation checks"
    );
    produce(&broker.bootstrap(), &to_kafka(&t, &messages)).await;

    let running = start_service(config.clone()).await;
    let received = consume(
        &broker.bootstrap(),
        &t.metrics,
        expected.len(),
        Duration::from_secs(120),
    )
    .await;
    // Keys are model names.
    assert!(received
        .iter()
        .all(|m| m.key.as_deref() == Some(b"fraud".as_slice())
            || m.key.as_deref() == Some(b"intent".as_slice())));
    assert_same(&expected, &by_id(&received), false);

    // Alerts and triggers equal replay's too.
    let alerts = consume(&broker.bootstrap(), &t.alerts, 1000, Duration::from_secs(5)).await;
    let triggers = consume(
        &broker.bootstrap(),
        &t.retrain,
        1000,
        Duration::from_secs(5),
    )
    .await;
    let mut published: Vec<Value> = alerts
        .iter()
        .chain(&triggers)
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    let mut replayed = expected_events.clone();
    let id = |v: &Value| format!("{}{}{}", v["alert_id"], v["status"], v["trigger_id"]);
    published.sort_by_key(id);
    replayed.sort_by_key(id);
    assert!(!replayed.is_empty(), "the drift makes the rule fire");
    assert_eq!(published, replayed);

    // The Prometheus endpoint, as a scraper sees it.
    let body = reqwest::get(format!("http://{}/metrics", running.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("feedback_loop_model_quality{"), "{body}");
    assert!(
        body.contains("feedback_loop_input_records_total{"),
        "{body}"
    );
    promtool_check_metrics(&body);
    let ready = readyz(&running).await;
    assert_eq!(ready.status(), 200);
    let models: Value = reqwest::get(format!("http://{}/api/v1/models", running.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        models["models"].as_array().map(Vec::len),
        Some(3),
        "fraud 1.0, fraud 2.0-shadow, intent"
    );
    assert!(
        models["segments"]["fraud"]["channel"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "fraud's segment values: {}",
        models["segments"]
    );
    check_history_api(&running, &expected, &expected_events).await;
    assert!(running.state.is_ready());
    running.stop().await;
}

async fn readyz(running: &Running) -> reqwest::Response {
    reqwest::get(format!("http://{}/readyz", running.http))
        .await
        .unwrap()
}

async fn get_json(running: &Running, path: &str) -> Value {
    let response = reqwest::get(format!("http://{}{path}", running.http))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// The history API answers every series' windows as published (oldest first, the newest
/// `limit`), and the alert events as replay printed them; the page is served at `/`.
async fn check_history_api(
    running: &Running,
    expected: &BTreeMap<String, Value>,
    expected_events: &[Value],
) {
    let mut series: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    // The history keeps metrics records; estimation checks are on the topic only.
    let metrics = expected
        .values()
        .filter(|r| r["schema"] == "feedback-loop.metrics.v1");
    for record in metrics {
        let mut query = String::new();
        if let Some(version) = record["model_version"].as_str() {
            query.push_str(&format!("version={version}&"));
        }
        if let Some((dimension, value)) =
            record["segment"].as_object().and_then(|s| s.iter().next())
        {
            let value = value.as_str().unwrap();
            query.push_str(&format!("segment={dimension}%3D{value}&"));
        }
        let path = format!(
            "/api/v1/models/{}/windows?{query}",
            record["model"].as_str().unwrap()
        );
        series.entry(path).or_default().push(record);
    }
    assert!(
        series.len() > 3,
        "versions and segments: {:?}",
        series.keys()
    );
    for (path, mut records) in series {
        records.sort_by_key(|r| r["window"]["start"].as_str().unwrap().to_string());
        let answer = get_json(running, &path).await;
        let windows = answer["windows"].as_array().expect("windows");
        let ids: Vec<&str> = windows
            .iter()
            .map(|w| w["record_id"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = records
            .iter()
            .map(|r| r["record_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, want, "{path}");
        let mut problems = Vec::new();
        for (got, want) in windows.iter().zip(&records) {
            common::compare(&path, want, got, &mut problems);
        }
        assert!(problems.is_empty(), "{path}: {problems:?}");
        let newest = get_json(running, &format!("{path}limit=2")).await;
        let newest: Vec<&str> = newest["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["record_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            newest,
            want[want.len().saturating_sub(2)..],
            "{path}limit=2"
        );
    }
    let bad = reqwest::get(format!(
        "http://{}/api/v1/models/fraud/windows?segment=channel",
        running.http
    ))
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("dimension=value"));

    let alerts = get_json(running, "/api/v1/alerts").await;
    let events = alerts["events"].as_array().unwrap();
    assert_eq!(events.len(), expected_events.len().min(1000));
    let id = |v: &Value| format!("{}{}{}", v["alert_id"], v["status"], v["trigger_id"]);
    let mut got: Vec<String> = events.iter().map(id).collect();
    let mut want: Vec<String> = expected_events.iter().map(id).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // Firing now: the episodes whose last event fired.
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for event in expected_events.iter().filter(|e| e["alert_id"].is_string()) {
        last.insert(event["alert_id"].as_str().unwrap().to_string(), event);
    }
    let firing: Vec<&str> = last
        .values()
        .filter(|e| e["status"] == "firing")
        .map(|e| e["alert_id"].as_str().unwrap())
        .collect();
    let shown: Vec<&str> = alerts["firing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, firing);

    let page = reqwest::get(format!("http://{}/", running.http))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script>") && !html.contains("<!--SCRIPT-->"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_goes_to_the_dead_letter_topic() {
    let broker = Broker::start();
    let t = topics(&broker).await;
    let config = config(&broker.bootstrap(), &t);
    let messages = stream();
    let (expected, _) = common::replay(&config, &messages);
    let mut kafka = to_kafka(&t, &messages);
    let ts = messages[500].ts;
    let bad: Vec<(String, &[u8], &str)> = vec![
        (t.predictions.clone(), b"{not json", "invalid JSON"),
        (t.predictions.clone(), br#"{"id":"b1","model":"nope","timestamp":1767225630000,"prediction":1}"#, "unknown model `nope`"),
        (t.predictions.clone(), br#"{"id":"b2","model":"fraud","timestamp":1767225630000}"#, "missing field `prediction`"),
        (t.predictions.clone(), br#"{"id":"b3","model":"fraud","timestamp":1767225630000,"prediction":1,"score":"NaN"}"#, "probability"),
        (t.predictions.clone(), b"\xff\xfe\x00garbage", "invalid JSON"),
        (t.outcomes.clone(), br#"{"id":"b4","timestamp":"yesterday","actual":1}"#, "RFC 3339"),
        (t.outcomes.clone(), br#"[1,2,3]"#, "missing field `actual`"),
        (t.predictions.clone(), br#"{"id":"b5","model":"fraud","timestamp":4102444800000,"prediction":1}"#, "in the future"),
        (t.outcomes.clone(), br#"{"id":"b6","model":"fraud","timestamp":1767225630000,"actual":Infinity}"#, "invalid JSON"),
        (t.predictions.clone(), br#"{"id":"b7","model":"fraud","timestamp":1767225630000,"prediction":{"a":1}}"#, "label must be"),
        (t.predictions.clone(), br#"{"id":7,"model":"intent","timestamp":1767225630000,"prediction":"tech","score":[0.5]}"#, "score"),
    ];
    // A 3 MB message (over limits.max_message_bytes = 2 MB): dead-lettered, cut to 2 MB.
    let huge = {
        let mut v =
            br#"{"id":"huge","model":"fraud","timestamp":1767225630000,"prediction":1,"pad":""#
                .to_vec();
        v.extend(std::iter::repeat_n(b'x', 3_000_000));
        v.extend(br#""}"#);
        v
    };
    kafka.insert(
        900,
        (t.predictions.clone(), "huge".into(), huge.clone(), ts),
    );
    for (i, (topic, payload, _)) in bad.iter().enumerate() {
        kafka.insert(
            500 + i * 37,
            (topic.clone(), format!("bad-{i}"), payload.to_vec(), ts),
        );
    }
    produce(&broker.bootstrap(), &kafka).await;

    let running = start_service(config.clone()).await;
    let received = consume(
        &broker.bootstrap(),
        &t.metrics,
        expected.len(),
        Duration::from_secs(120),
    )
    .await;
    assert_same(&expected, &by_id(&received), true);
    let mut dead = consume(
        &broker.bootstrap(),
        &t.dead_letters,
        bad.len() + 1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        dead.len(),
        bad.len() + 1,
        "every bad message is dead-lettered"
    );
    let huge_letter = dead
        .iter()
        .position(|d| d.key.as_deref() == Some(b"huge".as_slice()))
        .expect("the huge message is dead-lettered");
    let huge_letter = dead.remove(huge_letter);
    assert_eq!(&huge_letter.payload[..], &huge[..2_000_000]);
    let huge_header = |name: &str| {
        huge_letter
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert!(huge_header("feedback-loop.reason")
        .unwrap_or_default()
        .contains("max_message_bytes"));
    assert_eq!(
        huge_header("feedback-loop.truncated"),
        Some(huge.len().to_string())
    );
    for (topic, payload, reason) in &bad {
        let letter = dead
            .iter()
            .find(|d| d.payload == *payload)
            .unwrap_or_else(|| panic!("no dead letter for {:?}", String::from_utf8_lossy(payload)));
        let header = |name: &str| {
            letter
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert!(
            header("feedback-loop.reason").contains(reason),
            "{:?} vs {reason}",
            header("feedback-loop.reason")
        );
        assert_eq!(&header("feedback-loop.source.topic"), topic);
        assert!(header("feedback-loop.source.offset").parse::<i64>().is_ok());
        assert!(header("feedback-loop.source.partition")
            .parse::<i32>()
            .is_ok());
        assert!(letter.key.is_some());
    }
    let body = reqwest::get(format!("http://{}/metrics", running.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dead_count: u64 = body
        .lines()
        .filter(|l| l.starts_with("feedback_loop_dead_letters_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(dead_count, bad.len() as u64 + 1);
    // The status API lists them, with their reasons, and the records read per topic.
    let status = get_json(&running, "/api/v1/status").await;
    assert_eq!(status["dead_letters"]["total"], dead_count);
    let recent = status["dead_letters"]["recent"].as_array().unwrap();
    assert_eq!(recent.len() as u64, dead_count);
    for (topic, _, reason) in &bad {
        assert!(
            recent
                .iter()
                .any(|r| r["topic"] == *topic && r["reason"].as_str().unwrap().contains(reason)),
            "{reason} in {recent:?}"
        );
    }
    assert!(status["input_records"][&t.predictions].as_u64() > Some(0));
    running.stop().await;
}

/// The counters whose labels the configuration tells are on `/metrics` at 0 as soon as the
/// service starts, before any message: `increase(…) > 0` then sees the first burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_counters_exist_at_zero_from_the_start() {
    let broker = Broker::start();
    let t = topics(&broker).await;
    let running = start_service(config(&broker.bootstrap(), &t)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !running.state.is_ready() {
        assert!(std::time::Instant::now() < deadline, "ready within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = reqwest::get(format!("http://{}/metrics", running.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let zero = |series: String| {
        assert!(
            body.lines().any(|l| l == format!("{series} 0")),
            "{series} 0 not in\n{body}"
        );
    };
    for topic in [&t.predictions, &t.outcomes] {
        zero(format!(
            r#"feedback_loop_dead_letters_total{{reason="invalid_json",topic="{topic}"}}"#
        ));
        zero(format!(
            r#"feedback_loop_input_records_total{{topic="{topic}"}}"#
        ));
    }
    for topic in [&t.metrics, &t.alerts, &t.retrain] {
        zero(format!(
            r#"feedback_loop_output_errors_total{{topic="{topic}"}}"#
        ));
    }
    zero(r#"feedback_loop_join_events_total{event="orphaned"}"#.into());
    zero(
        r#"feedback_loop_alerts_total{model="fraud",rule="accuracy-drop",status="firing"}"#.into(),
    );
    zero(r#"feedback_loop_retrain_triggers_total{model="fraud"}"#.into());
    promtool_check_metrics(&body);
    running.stop().await;
}

/// Runs `promtool check metrics` on an exposition. promtool comes with Debian's
/// `prometheus` package; CI installs it, so there it must be present.
fn promtool_check_metrics(body: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) if std::env::var("CI").is_err() => {
            eprintln!("promtool not available ({error}); skipped outside CI");
            return;
        }
        Err(error) => panic!("promtool is required in CI: {error}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.trim().is_empty(),
        "promtool check metrics:\n{text}"
    );
}

/// Partitions that never receive a message (few keys, many partitions) must not hold the
/// watermark back: the group has no offsets for them and librdkafka reports no consumer
/// lag, yet they have nothing to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_that_never_receive_data_do_not_hold_windows_back() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let broker = Broker::start();
    let t = topics(&broker).await;
    let config = config(&broker.bootstrap(), &t);
    let messages = stream();
    let (expected, _) = common::replay(&config, &messages);
    // Everything into partition 0 of each topic; partitions 1-3 stay empty.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let records = to_kafka(&t, &messages);
    let mut deliveries = Vec::with_capacity(records.len());
    for (topic, key, payload, ts) in &records {
        let mut record = FutureRecord::to(topic)
            .partition(0)
            .key(key)
            .payload(payload)
            .timestamp(*ts);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for delivery in deliveries {
        delivery.await.expect("delivery").expect("delivered");
    }

    let running = start_service(config.clone()).await;
    let received = consume(
        &broker.bootstrap(),
        &t.metrics,
        expected.len(),
        Duration::from_secs(90),
    )
    .await;
    assert_same(&expected, &by_id(&received), false);
    running.stop().await;
}

/// A backlog (everything produced before the service starts) with a join store that holds
/// only a few seconds of traffic. Read as fetched, the outcomes (small messages) can run
/// far ahead of their predictions and overflow `join.max_pending` (in one run here without
/// `kafka.max_read_ahead`: 5 669 entries evicted, so metrics unlike replay's; how far they
/// run ahead depends on how the fetches interleave). Read in step by event time, the
/// partitions ahead are paused, nothing is evicted, and every record equals replay's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_read_in_step_by_event_time() {
    let broker = Broker::start();
    // Five minutes of event time at 40 requests/s: 12 000 outcomes.
    let messages = common::traffic(23, 40.0, 8_000, 300_000);
    let (expected, aligned, evicted, pauses) = drain_backlog(&broker, &messages, "10s").await;
    assert!(pauses > 0, "the outcomes ran ahead and were paused");
    assert_eq!(evicted, 0, "nothing evicted when read in step");
    assert_same(&expected, &aligned, false);
}

/// Produces `messages` to fresh topics, then runs the service over them with
/// `kafka.max_read_ahead = read_ahead` and a join store of 2 000 entries a side: replay's
/// records, the service's, and the service's evicted entries and partition pauses.
async fn drain_backlog(
    broker: &Broker,
    messages: &[feedback_loop::traffic::Message],
    read_ahead: &str,
) -> (BTreeMap<String, Value>, BTreeMap<String, Value>, u64, u64) {
    let t = topics(broker).await;
    let config = ServiceToml::new(&broker.bootstrap(), &t)
        .text("kafka", "max_read_ahead", read_ahead)
        .text("join", "max_label_delay", "10s")
        .text("join", "max_outcome_lead", "5s")
        .value("join", "max_pending", 2_000)
        .text("window", "size", "10s")
        .text("window", "allowed_lateness", "1s")
        .text("window", "idle_timeout", "3s")
        .append(DEMO_MODELS_TOML)
        .load();
    let (expected, _) = common::replay(&config, messages);
    produce(&broker.bootstrap(), &to_kafka(&t, messages)).await;
    let started = std::time::Instant::now();
    let running = start_service(config).await;
    let received = consume(
        &broker.bootstrap(),
        &t.metrics,
        expected.len(),
        Duration::from_secs(90),
    )
    .await;
    eprintln!(
        "max_read_ahead {read_ahead}: {} of {} records in {:?}",
        received.len(),
        expected.len(),
        started.elapsed()
    );
    // The engine's counters reach the telemetry on the next tick.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let telemetry = running.state.telemetry.clone();
    let evicted = telemetry.join_events.with_label_values(&["evicted"]).get();
    let pauses = telemetry.partition_pauses.get();
    eprintln!("evicted {evicted}, pauses {pauses}");
    running.stop().await;
    (expected, by_id(&received), evicted, pauses)
}

/// Input topics created after the service started: it waits for them, not ready
/// meanwhile, then goes on by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_input_topics_are_waited_for() {
    let broker = Broker::start();
    let t = Topics::unique();
    t.create_outputs(&broker).await;
    let running = start_service(config(&broker.bootstrap(), &t)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!running.service.is_finished(), "the service waits");
    let ready = readyz(&running).await;
    assert_eq!(
        ready.status(),
        503,
        "not ready while the topics are missing"
    );

    broker.create_topic(&t.predictions, 4).await;
    broker.create_topic(&t.outcomes, 4).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !running.state.is_ready() {
        assert!(
            !running.service.is_finished(),
            "the service stopped instead of waiting"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "ready within 60 s of the topics' creation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = readyz(&running).await;
    assert_eq!(ready.status(), 200);
    running.stop().await;
}

/// `kafka.topic_wait = "0s"`: a missing input topic stops the service at once, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_topic_wait_a_missing_input_topic_fails_fast() {
    let broker = Broker::start();
    let t = Topics::unique();
    t.create_outputs(&broker).await;
    broker.create_topic(&t.outcomes, 4).await;
    let mut config = config(&broker.bootstrap(), &t);
    config.kafka.topic_wait = feedback_loop_core::settings::Duration::from_millis(0);
    let running = start_service(config).await;
    let result = tokio::time::timeout(Duration::from_secs(30), running.service)
        .await
        .expect("the service stops by itself")
        .expect("service task");
    let error = format!("{:#}", result.expect_err("a missing topic is an error"));
    assert!(
        error.contains(&format!("`{}` does not exist", t.predictions)),
        "{error}"
    );
    assert!(!error.contains(&t.outcomes), "{error}");
}
