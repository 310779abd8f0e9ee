//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod browser;
pub mod kafka;
pub mod service_toml;

use std::collections::BTreeMap;

use serde_json::Value;

/// Numbers must agree within this (absolute, or relative above 1).
pub const TOLERANCE: f64 = 1e-9;

/// Compares two JSON values; numbers within TOLERANCE (absolute, or relative above 1).
pub fn compare(path: &str, expected: &Value, actual: &Value, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            let scale = e.abs().max(1.0);
            let close = (e - a).abs() <= TOLERANCE * scale;
            if !close {
                problems.push(format!("{path}: expected {e}, got {a}"));
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                match a.get(key) {
                    Some(av) => compare(&format!("{path}.{key}"), ev, av, problems),
                    None => problems.push(format!("{path}.{key}: missing")),
                }
            }
            for key in a.keys().filter(|k| !e.contains_key(*k)) {
                problems.push(format!("{path}.{key}: not expected"));
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                compare(&format!("{path}[{i}]"), ev, av, problems);
            }
        }
        (e, a) if e == a => {}
        (e, a) => problems.push(format!("{path}: expected {e}, got {a}")),
    }
}

/// The sum of the samples of every series whose line starts with `prefix` in a Prometheus
/// text exposition (e.g. `feedback_loop_input_records_total{`).
pub fn metric_sum(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A running `run` binary. Killed when the test ends (or fails) before it stops, and by the
/// kernel if the test process itself dies first, so a crashed test leaves no service behind.
/// Its output goes to a log file; a failing test prints the log's tail.
pub struct Service {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Service {
    /// Spawns `command` (from [`service_command`]) with stdout and stderr appended to `log`.
    pub fn spawn(mut command: std::process::Command, log: &std::path::Path) -> Service {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let child = command
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .expect("start the service");
        Service {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of the service's log, for failure messages, without
    /// librdkafka's repeated connection errors (the whole log stays in the file).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("Connect to ipv4") && !l.contains("Global error"))
            .collect();
        format!(
            "(whole log: {})\n{}",
            self.log.display(),
            kept[kept.len().saturating_sub(lines)..].join("\n")
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("the service's log {}", self.log_tail(60));
        }
    }
}

/// A free TCP port on 127.0.0.1 (for a service's HTTP listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The `run` binary on a configuration file; callers add environment, then [`Service::spawn`].
pub fn service_command(config: &std::path::Path) -> std::process::Command {
    let mut command = binary_command();
    command.args(["run", "--config"]).arg(config);
    command
}

/// The `feedback-loop` binary, arguments to be added. The child gets SIGKILL when the test
/// thread that spawned it exits, so a test process that crashes (no destructors run) cannot
/// leave it running against a vanished mock cluster.
pub fn binary_command() -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_feedback-loop"));
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// A running service's `/metrics`, if it answers.
pub async fn scrape(client: &reqwest::Client, address: &str) -> Option<String> {
    client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// [`metric_sum`] over a running service's `/metrics`.
pub async fn metric(client: &reqwest::Client, address: &str, prefix: &str) -> Option<f64> {
    Some(metric_sum(&scrape(client, address).await?, prefix))
}

/// The service's own lines of a scrape, for failure messages: no comments, per-model
/// series or histogram buckets.
pub fn health_lines(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.contains("model_") && !l.contains("_bucket"))
        .collect()
}

/// Demo traffic from 2026-01-01 for `span_ms` of event time: outcomes up to
/// `max_label_delay_ms` late, 10 % missing, drift half-way.
pub fn traffic(
    seed: u64,
    rate_per_s: f64,
    max_label_delay_ms: i64,
    span_ms: i64,
) -> Vec<feedback_loop::traffic::Message> {
    let start_ms = 1_767_225_600_000;
    let mut generator =
        feedback_loop::traffic::TrafficGenerator::new(feedback_loop::traffic::TrafficConfig {
            seed,
            rate_per_s,
            min_label_delay_ms: 0,
            max_label_delay_ms,
            missing_outcome_rate: 0.1,
            drift_at_ms: Some(start_ms + span_ms / 2),
            start_ms,
        });
    let mut messages = generator.until(start_ms + span_ms);
    messages.extend(generator.drain());
    messages
}

/// What `replay` prints for these messages: the metrics records and estimation checks by
/// record id, and the alert and trigger events.
pub fn replay(
    config: &feedback_loop_core::settings::Config,
    messages: &[feedback_loop::traffic::Message],
) -> (BTreeMap<String, Value>, Vec<Value>) {
    use feedback_loop::traffic::Stream;
    let (mut predictions, mut outcomes) = (String::new(), String::new());
    for m in messages {
        let file = match m.stream {
            Stream::Predictions => &mut predictions,
            Stream::Outcomes => &mut outcomes,
        };
        file.push_str(&m.payload);
        file.push('\n');
    }
    let mut out = Vec::new();
    feedback_loop::replay::replay(
        &config.clone().into(),
        predictions.as_bytes(),
        outcomes.as_bytes(),
        &mut out,
        &mut Vec::new(),
    )
    .expect("replay");
    let mut metrics = BTreeMap::new();
    let mut events = Vec::new();
    for line in String::from_utf8(out).expect("UTF-8").lines() {
        let value: Value = serde_json::from_str(line).expect("JSON");
        if value["schema"] == "feedback-loop.metrics.v1"
            || value["schema"] == "feedback-loop.estimation-check.v1"
        {
            metrics.insert(value["record_id"].as_str().expect("id").to_string(), value);
        } else {
            events.push(value);
        }
    }
    (metrics, events)
}

/// Pairs joined over all windows (counted on the model-level metrics records, not per
/// segment; estimation checks share the map).
pub fn joined_pairs(records: &BTreeMap<String, Value>) -> u64 {
    records
        .values()
        .filter(|v| v["schema"] == "feedback-loop.metrics.v1" && v.get("segment").is_none())
        .map(|v| v["counts"]["joined"].as_u64().expect("joined count"))
        .sum()
}

/// The messages as `(topic, key, payload, timestamp)` for [`kafka::produce`].
pub fn to_kafka(
    messages: &[feedback_loop::traffic::Message],
    predictions_topic: &str,
    outcomes_topic: &str,
) -> Vec<(String, String, Vec<u8>, i64)> {
    use feedback_loop::traffic::Stream;
    messages
        .iter()
        .map(|m| {
            let topic = match m.stream {
                Stream::Predictions => predictions_topic,
                Stream::Outcomes => outcomes_topic,
            };
            (
                topic.to_string(),
                m.key.clone(),
                m.payload.clone().into_bytes(),
                m.ts,
            )
        })
        .collect()
}

/// Adds metrics records read from the output topic to `published`, every copy kept.
pub fn collect(published: &mut BTreeMap<String, Vec<Value>>, payloads: Vec<Vec<u8>>) {
    for payload in payloads {
        let v: Value = serde_json::from_slice(&payload).expect("metrics record is JSON");
        let id = v["record_id"].as_str().expect("record_id").to_string();
        published.entry(id).or_default().push(v);
    }
}

/// How published records (every copy) compare with the expected ones.
pub struct Published {
    /// Differences of any copy from the expected record, and expected records missing.
    pub problems: Vec<String>,
    /// Published record ids that are not expected.
    pub extra: Vec<String>,
    /// Copies beyond the first.
    pub duplicates: usize,
}

pub fn check_published(
    expected: &BTreeMap<String, Value>,
    published: &BTreeMap<String, Vec<Value>>,
) -> Published {
    let mut problems = Vec::new();
    let mut duplicates = 0;
    for (id, want) in expected {
        match published.get(id) {
            None => problems.push(format!("{id}: not published")),
            Some(copies) => {
                for copy in copies {
                    compare(id, want, copy, &mut problems);
                }
                duplicates += copies.len() - 1;
            }
        }
    }
    let extra = published
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    Published {
        problems,
        extra,
        duplicates,
    }
}

/// Sends `signal` ("KILL", "TERM") to a service process.
pub fn signal(service: &Service, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), service.id().to_string()])
        .status()
        .expect("runs kill");
    assert!(status.success(), "kill -{signal} {}", service.id());
}

/// The input records a running service has read since it started
/// (`feedback_loop_input_records_total`).
pub async fn records_read(client: &reqwest::Client, address: &str) -> u64 {
    metric(client, address, "feedback_loop_input_records_total{")
        .await
        .unwrap_or(0.0) as u64
}

/// Whether the service at `address` publishes the windows (`GET /api/v1/status`,
/// `publishes`); `None` if it does not answer.
pub async fn publishes(client: &reqwest::Client, address: &str) -> Option<bool> {
    let status: serde_json::Value = client
        .get(format!("http://{address}/api/v1/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    status["publishes"].as_bool()
}

/// Waits until the service at `address` has read `n` records, for at most 90 s.
pub async fn wait_until_read(client: &reqwest::Client, address: &str, n: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let read = records_read(client, address).await;
        if read >= n {
            eprintln!("{what}: {read} records read");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: only {read} of {n} read in 90 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The input records several running services have read since each started, summed.
pub async fn records_read_by(client: &reqwest::Client, addresses: &[&str]) -> u64 {
    let mut sum = 0;
    for address in addresses {
        sum += records_read(client, address).await;
    }
    sum
}

/// Waits until the services at `addresses` have read `n` records together, for at most
/// 90 s.
pub async fn wait_until_read_by(client: &reqwest::Client, addresses: &[&str], n: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let read = records_read_by(client, addresses).await;
        if read >= n {
            eprintln!("{what}: {read} records read");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: only {read} of {n} read in 90 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Stops a service as an orchestrator does: SIGTERM, then up to `within` for it to exit on
/// its own (a service still running then is killed, and the test fails). Its exit status.
pub async fn terminate(
    mut service: Service,
    within: std::time::Duration,
) -> std::process::ExitStatus {
    signal(&service, "TERM");
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = service.child.try_wait().expect("waits for the service") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not stop within {within:?} of SIGTERM; its log {}",
            service.log_tail(30)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An alert or retrain-trigger event's id, as consumers deduplicate them
/// (docs/operations.md): `alert_id` and `status`, or `trigger_id`.
pub fn event_id(event: &Value) -> String {
    match event.get("trigger_id") {
        Some(id) => format!("trigger {}", id.as_str().unwrap_or_default()),
        None => format!(
            "alert {} {}",
            event["alert_id"].as_str().unwrap_or_default(),
            event["status"].as_str().unwrap_or_default()
        ),
    }
}

/// Every copy of every published alert and trigger equals the expected event with its id,
/// every expected event is published, and nothing else is.
pub fn assert_events_as_expected(expected: &[Value], published: &[Value]) {
    let want: BTreeMap<String, &Value> = expected.iter().map(|e| (event_id(e), e)).collect();
    assert_eq!(want.len(), expected.len(), "expected events with one id");
    let mut problems = Vec::new();
    let mut extra = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for event in published {
        let id = event_id(event);
        match want.get(&id) {
            Some(want) => compare(&id, want, event, &mut problems),
            None => extra.push(id.clone()),
        }
        seen.insert(id);
    }
    let missing: Vec<&String> = want.keys().filter(|id| !seen.contains(*id)).collect();
    eprintln!(
        "{} events, {} published copies, {} missing, {} extra, {} differences",
        want.len(),
        published.len(),
        missing.len(),
        extra.len(),
        problems.len()
    );
    assert!(missing.is_empty(), "events not published: {missing:?}");
    assert!(extra.is_empty(), "events replay does not have: {extra:?}");
    assert!(
        problems.is_empty(),
        "{} differences: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

/// The lines of a service's log (`service.log` beside its configuration) that say which
/// partitions it held and whether it was in charge of the whole input.
pub fn assignment_lines(config: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(config.with_file_name("service.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains("partitions assigned")
                || l.contains("partitions revoked")
                || l.contains("input partition")
                || l.contains("part of the input")
        })
        .map(str::to_string)
        .collect()
}

/// Reads the metrics topic until every expected window is published (every copy kept), for
/// at most `limit`; on timeout, fails with what the service at `address` says.
pub async fn read_until_published(
    reader: &kafka::Reader,
    expected: &BTreeMap<String, Value>,
    limit: std::time::Duration,
    client: &reqwest::Client,
    address: &str,
) -> BTreeMap<String, Vec<Value>> {
    read_until_published_by(reader, expected, limit, client, &[address]).await
}

/// [`read_until_published`] for several instances of the service: on timeout, fails with
/// what each of them says, in the order of `addresses`.
pub async fn read_until_published_by(
    reader: &kafka::Reader,
    expected: &BTreeMap<String, Value>,
    limit: std::time::Duration,
    client: &reqwest::Client,
    addresses: &[&str],
) -> BTreeMap<String, Vec<Value>> {
    let deadline = std::time::Instant::now() + limit;
    let mut published: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    loop {
        collect(
            &mut published,
            reader.read_for(std::time::Duration::from_secs(3)).await,
        );
        if expected.keys().all(|k| published.contains_key(k)) {
            // Anything still in flight (a last re-publication) arrives too.
            collect(
                &mut published,
                reader.read_for(std::time::Duration::from_secs(2)).await,
            );
            return published;
        }
        if std::time::Instant::now() >= deadline {
            let mut says = Vec::new();
            for address in addresses {
                let body = scrape(client, address)
                    .await
                    .unwrap_or_else(|| "metrics unreachable".into());
                says.push(format!("{:?}", health_lines(&body)));
            }
            panic!(
                "after {limit:?}, {} of {} windows published; the service says: {}",
                expected
                    .keys()
                    .filter(|k| published.contains_key(*k))
                    .count(),
                expected.len(),
                says.join("; the next instance says: ")
            );
        }
    }
}

/// The published windows that differ from the expected record, one line each, for a
/// failure's diagnosis: the record id, how many fields differ, and the counts replay has
/// against every published copy's.
pub fn differing_windows(
    expected: &BTreeMap<String, Value>,
    published: &BTreeMap<String, Vec<Value>>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (id, want) in expected {
        let copies = published.get(id).map(Vec::as_slice).unwrap_or_default();
        let mut problems = Vec::new();
        for copy in copies {
            compare(id, want, copy, &mut problems);
        }
        if !problems.is_empty() {
            let got: Vec<String> = copies.iter().map(|c| c["counts"].to_string()).collect();
            lines.push(format!(
                "{id}: {} fields differ; counts expected {} published {}",
                problems.len(),
                want["counts"],
                got.join(" / ")
            ));
        }
    }
    lines
}

/// Every copy of every published window equals the expected record, and nothing else was
/// published.
pub fn assert_every_copy_as_expected(
    expected: &BTreeMap<String, Value>,
    published: &BTreeMap<String, Vec<Value>>,
) {
    let check = check_published(expected, published);
    eprintln!(
        "{} windows, {} duplicate copies (same content), {} extra, {} differences",
        expected.len(),
        check.duplicates,
        check.extra.len(),
        check.problems.len()
    );
    assert!(
        check.extra.is_empty(),
        "windows replay does not have: {:?}",
        &check.extra[..check.extra.len().min(5)]
    );
    assert!(
        check.problems.is_empty(),
        "{} differences (a window published from part of the data?): {:?}",
        check.problems.len(),
        &check.problems[..check.problems.len().min(10)]
    );
}

/// `replay` over inputs in memory under `config`: its output lines.
pub fn replay_lines(
    config: feedback_loop_core::settings::Config,
    predictions: &[u8],
    outcomes: &[u8],
) -> Vec<String> {
    let mut out = Vec::new();
    feedback_loop::replay::replay(
        &config.into(),
        predictions,
        outcomes,
        &mut out,
        &mut Vec::new(),
    )
    .expect("replay");
    String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The example data (`examples/`): predictions and outcomes.
pub fn example_inputs() -> (Vec<u8>, Vec<u8>) {
    let root = env!("CARGO_MANIFEST_DIR");
    (
        std::fs::read(format!("{root}/examples/predictions.jsonl")).expect("predictions"),
        std::fs::read(format!("{root}/examples/outcomes.jsonl")).expect("outcomes"),
    )
}
