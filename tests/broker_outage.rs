//! Broker-outage test: the broker (tansu with S3 storage on moto, so it keeps its data across
//! its own restart) is killed while the service runs, stays down for over 20 s, and is started
//! again on the same port with the same storage. During the outage the service must stay up
//! and report not ready on `/readyz`; afterwards it must become ready again, read the rest of
//! the stream (produced after the restart), and the metrics records it published, deduplicated
//! by record id, must equal what `replay` prints for the whole input.
//!
//! It needs an S3 endpoint, so it is ignored unless asked for (and then fails without one):
//!
//! ```sh
//! eval "$(scripts/moto.sh)"        # installs moto[server] if missing, starts it, prints env
//! OUTAGE_TEST_S3_ENDPOINT=$AWS_ENDPOINT cargo test --test broker_outage -- --ignored --nocapture
//! kill $MOTO_PID
//! ```
//!
//! The test creates its own bucket there and starts tansu itself (scripts/tansu.sh, which
//! fetches the binary). `OUTAGE_TEST_LOG` sets the service's `RUST_LOG`; its log is printed
//! when the test fails.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kafka::{produce, unique, Broker, Reader};
use common::service_toml::{ServiceToml, Topics};
use feedback_loop::traffic::DEMO_MODELS_TOML;
use serde_json::Value;

/// How long the broker stays down.
const OUTAGE: Duration = Duration::from_secs(22);

/// tansu on a fixed port with S3 storage in one bucket: killed and started again at will.
struct Tansu {
    port: u16,
    endpoint: String,
    bucket: String,
    pid: Option<u32>,
}

impl Tansu {
    fn start(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tansu.sh");
        let output = std::process::Command::new("bash")
            .arg(script)
            .arg(self.port.to_string())
            .arg("")
            .arg(format!("s3://{}/", self.bucket))
            .env("AWS_ENDPOINT", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "eu-west-2")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run scripts/tansu.sh");
        assert!(output.status.success(), "scripts/tansu.sh failed");
        let pid = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap();
        self.pid = Some(pid);
    }

    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            // Not our child (the script's): wait until it is gone.
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_running(&proc) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A process exists and is not a zombie.
fn is_running(proc: &Path) -> bool {
    std::fs::read_to_string(proc.join("stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The service's health as it reports it: `/readyz` and the non-model lines of `/metrics`.
async fn health(client: &reqwest::Client, address: &str) -> String {
    let ready = match client.get(format!("http://{address}/readyz")).send().await {
        Ok(response) => format!(
            "/readyz {} {}",
            response.status().as_u16(),
            response.text().await.unwrap_or_default().trim()
        ),
        Err(error) => format!("/readyz unreachable: {error}"),
    };
    let metrics = common::scrape(client, address)
        .await
        .unwrap_or_else(|| "/metrics unreachable".into());
    let lines = common::health_lines(&metrics);
    format!("{ready}; {}", lines.join("; "))
}

async fn ready_status(client: &reqwest::Client, address: &str) -> Option<u16> {
    let response = client
        .get(format!("http://{address}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 endpoint for tansu: eval \"$(scripts/moto.sh)\"; OUTAGE_TEST_S3_ENDPOINT=$AWS_ENDPOINT cargo test --test broker_outage -- --ignored (.ci/run does)"]
async fn service_survives_a_broker_outage_and_publishes_what_replay_prints() {
    let Ok(endpoint) =
        std::env::var("OUTAGE_TEST_S3_ENDPOINT").map(|e| e.trim_end_matches('/').to_string())
    else {
        panic!(
            "the broker-outage test needs an S3 endpoint: set OUTAGE_TEST_S3_ENDPOINT \
             (eval \"$(scripts/moto.sh)\" prints one)"
        );
    };
    let client = reqwest::Client::new();
    let test_started = Instant::now();

    // A bucket of our own: tansu's storage for this run only.
    let bucket = unique("outage").to_lowercase();
    let created = client
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("S3 endpoint reachable");
    assert!(
        created.status().is_success(),
        "creating bucket {bucket}: {}",
        created.status()
    );
    let mut tansu = Tansu {
        port: common::free_port(),
        endpoint,
        bucket,
        pid: None,
    };
    tansu.start();
    let bootstrap = format!("127.0.0.1:{}", tansu.port);
    let broker = Broker::Real(bootstrap.clone());

    let t = Topics::unique();
    t.create(&broker, 4).await;
    let address = format!("127.0.0.1:{}", common::free_port());
    let toml = ServiceToml::new(&bootstrap, &t)
        .text("http", "listen", &address)
        .text("join", "max_label_delay", "5s")
        .text("join", "max_outcome_lead", "2s")
        .text("window", "size", "10s")
        .text("window", "allowed_lateness", "1s")
        .text("window", "idle_timeout", "3s")
        .text("checkpoint", "interval", "500ms")
        .append(DEMO_MODELS_TOML);
    let config = toml.load();
    let config_path = toml.write(&std::env::temp_dir().join(unique("outage")));
    let dir = config_path.parent().expect("a directory").to_path_buf();
    let (predictions, outcomes, metrics) = (t.predictions, t.outcomes, t.metrics);

    // The stream: 200 requests/s of event time for 2 minutes (12 windows), outcomes up to 4 s
    // late, drift half-way.
    let messages = common::traffic(11, 200.0, 4_000, 120_000);
    let (expected, _) = common::replay(&config, &messages);
    let pairs = common::joined_pairs(&expected);
    assert!(
        pairs >= 20_000,
        "the stream should have 20k pairs, has {pairs}"
    );

    let kafka = common::to_kafka(&messages, &predictions, &outcomes);
    // Before the outage, the first 40 %; after it, the rest.
    let split = kafka.len() * 2 / 5;
    eprintln!(
        "{} messages ({split} before the outage), {pairs} pairs, {} records expected",
        kafka.len(),
        expected.len()
    );
    produce(&bootstrap, &kafka[..split]).await;

    let mut command = common::service_command(&config_path);
    command.env(
        "RUST_LOG",
        std::env::var("OUTAGE_TEST_LOG")
            .unwrap_or_else(|_| "warn,feedback_loop::pipeline=info".into()),
    );
    let mut service = common::Service::spawn(command, &dir.join("service.log"));

    // The service reads what was produced before the outage.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let consumed =
            common::metric(&client, &address, "feedback_loop_input_records_total{").await;
        if consumed.is_some_and(|n| n as usize >= split) {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "before the outage, the service consumed {consumed:?} of {split} messages in \
                 90 s; it says: {}\nlog:\n{}",
                health(&client, &address).await,
                service.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The kill must not catch a produce request half-done: tansu's S3 storage is not
    // crash-consistent (killed while storing a batch, it kept the producer's sequence number
    // but not the partition's end offset; after the restart it acknowledged the resent batch
    // as a duplicate and wrote the next batch over it: one acknowledged record gone). So kill
    // just after a checkpoint completed (it flushes every output first, and the next one
    // starts no sooner than `checkpoint.interval` later): nothing of the service's is in
    // flight then. Within the idle timeout of the last message, so that event time does not
    // move on with the wall clock before the outage.
    let checkpoints = "feedback_loop_checkpoints_total ";
    let before = common::metric(&client, &address, checkpoints)
        .await
        .unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::metric(&client, &address, checkpoints)
        .await
        .unwrap_or(0.0)
        < before + 2.0
    {
        assert!(
            Instant::now() < deadline,
            "no checkpoint in 5 s; the service says: {}",
            health(&client, &address).await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The outage.
    tansu.kill();
    let down_at = Instant::now();
    eprintln!(
        "broker killed ({:.1} s): {}",
        test_started.elapsed().as_secs_f64(),
        health(&client, &address).await
    );
    let mut statuses = Vec::new();
    while down_at.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(status) = service.child.try_wait().unwrap() {
            panic!(
                "the service exited during the outage ({status}); log:\n{}",
                service.log_tail(40)
            );
        }
        let status = ready_status(&client, &address).await;
        statuses.push((down_at.elapsed().as_secs(), status));
    }
    let during = health(&client, &address).await;
    let gauge = common::metric(&client, &address, "feedback_loop_ready ").await;
    eprintln!("during the outage: /readyz by second {statuses:?}; {during}");
    // librdkafka notices a dead broker at once (connection refused): from the second probe
    // on the service must say it is not ready, and keep saying so until the broker is back.
    let late: Vec<&(u64, Option<u16>)> = statuses.iter().filter(|(s, _)| *s >= 2).collect();
    assert_eq!(
        gauge,
        Some(0.0),
        "feedback_loop_ready during the outage; the service says: {during}"
    );
    assert!(
        late.iter().all(|(_, status)| *status == Some(503)),
        "/readyz during the outage, by second: {statuses:?} (want 503 from second 2 on); \
         the service says: {during}\nlog:\n{}",
        service.log_tail(40)
    );

    // The broker comes back with its data; the rest of the stream follows.
    tansu.start();
    let up_at = Instant::now();
    produce(&bootstrap, &kafka[split..]).await;
    eprintln!(
        "broker restarted after {:.1} s down; the rest produced in {:.1} s",
        (up_at - down_at).as_secs_f64(),
        up_at.elapsed().as_secs_f64()
    );

    let reader = Reader::new(&bootstrap, &metrics, 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut published: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut ready_again = None;
    loop {
        common::collect(
            &mut published,
            reader.read_for(Duration::from_secs(2)).await,
        );
        if ready_again.is_none() && ready_status(&client, &address).await == Some(200) {
            ready_again = Some(up_at.elapsed());
        }
        if expected.keys().all(|k| published.contains_key(k)) && ready_again.is_some() {
            common::collect(
                &mut published,
                reader.read_for(Duration::from_secs(2)).await,
            );
            break;
        }
        if Instant::now() >= deadline {
            let missing: Vec<&String> = expected
                .keys()
                .filter(|k| !published.contains_key(*k))
                .collect();
            panic!(
                "120 s after the broker came back, {} of {} windows published (missing: \
                 {:?}), ready again: {ready_again:?}; the service says: {}\nlog:\n{}",
                expected.len() - missing.len(),
                expected.len(),
                &missing[..missing.len().min(5)],
                health(&client, &address).await,
                service.log_tail(40)
            );
        }
    }
    let after = health(&client, &address).await;
    eprintln!(
        "ready again {:.1} s after the restart; all windows after {:.1} s; {after}",
        ready_again.unwrap_or_default().as_secs_f64(),
        up_at.elapsed().as_secs_f64()
    );
    std::process::Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    let _ = service.child.wait();

    let check = common::check_published(&expected, &published);
    eprintln!(
        "{} windows, {} duplicate copies; test took {:.1} s",
        expected.len(),
        check.duplicates,
        test_started.elapsed().as_secs_f64()
    );
    assert!(
        check.extra.is_empty(),
        "windows replay does not have: {:?}; log:\n{}",
        &check.extra[..check.extra.len().min(5)],
        service.log_tail(40)
    );
    assert!(
        check.problems.is_empty(),
        "{} differences: {:?}; the service says: {after}\nlog:\n{}",
        check.problems.len(),
        &check.problems[..check.problems.len().min(10)],
        service.log_tail(40)
    );
    drop(tansu);
    let _ = std::fs::remove_dir_all(dir);
}
