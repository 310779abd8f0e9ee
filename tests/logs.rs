//! What `run` prints, read as a user reading it in a pipe would: no librdkafka `CONFWARN`
//! lines for consumer properties in `[kafka.consumer]`, no flood of identical broker errors
//! when the broker goes away, and no ANSI colour codes when stderr is not a terminal.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kafka::Broker;
use common::service_toml::{ServiceToml, Topics};

/// The `run` binary on `toml` with stderr (and stdout) to a pipe, read by a thread.
struct Piped {
    child: std::process::Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Piped {
    fn start(toml: &ServiceToml, dir: &std::path::Path, env: &[(&str, &str)]) -> Piped {
        let config = toml.write(dir);
        let mut command = common::service_command(&config);
        command.env("RUST_LOG", "info");
        command.env_remove("NO_COLOR");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the service");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut stream in streams {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut out) = output.lock() {
                        out.push_str(&String::from_utf8_lossy(&buffer[..n]));
                    }
                }
            }));
        }
        Piped {
            child,
            output,
            readers,
        }
    }

    fn text(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Waits until the output contains `needle`.
    fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in {timeout:?}; output:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the service and returns everything it printed.
    fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.text()
    }
}

fn service_toml(broker: &Broker, topics: &Topics) -> ServiceToml {
    ServiceToml::new(&broker.bootstrap(), topics)
        .value(
            "http",
            "listen",
            format!("\"127.0.0.1:{}\"", common::free_port()),
        )
        .append(feedback_loop::traffic::DEMO_MODELS_TOML)
}

fn test_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("feedback-loop-logs-{name}-{}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_no_confwarn_no_colour_and_no_error_flood() {
    let broker = Broker::start();
    if broker.is_real() {
        // The test stops the broker; a real one is not the test's to stop.
        eprintln!("skipped against a real broker");
        return;
    }
    let topics = Topics::unique();
    topics.create(&broker, 2).await;

    // Consumer-only properties in [kafka.client] reach the producers too: librdkafka warns.
    // (The control that shows the check below can see a CONFWARN.)
    let control = Piped::start(
        &service_toml(&broker, &topics)
            .value("kafka.client", "session.timeout.ms", 6000)
            .value("kafka.client", "heartbeat.interval.ms", 1000)
            .text("kafka", "group_id", &common::kafka::unique("control")),
        &test_dir("control"),
        &[],
    );
    control.wait_for("partitions assigned", Duration::from_secs(60));
    let control = control.finish();
    let _ = std::fs::remove_dir_all(test_dir("control"));
    assert!(control.contains("CONFWARN"), "{control}");

    // The same in [kafka.consumer] (as ServiceToml writes them): no CONFWARN.
    let service = Piped::start(&service_toml(&broker, &topics), &test_dir("quiet"), &[]);
    service.wait_for("partitions assigned", Duration::from_secs(60));
    // The broker goes away: every client reports it, for every retry.
    drop(broker);
    std::thread::sleep(Duration::from_secs(6));
    let output = service.finish();
    let _ = std::fs::remove_dir_all(test_dir("quiet"));
    assert!(!output.contains("CONFWARN"), "{output}");
    assert!(!output.contains("\x1b["), "ANSI codes in a pipe:\n{output}");
    let down = output
        .lines()
        .filter(|l| l.contains("AllBrokersDown") || l.contains("all broker"))
        .count();
    let global = output.lines().filter(|l| l.contains("librdkafka")).count();
    assert!(
        down <= 2 && global <= 12,
        "{down} AllBrokersDown lines, {global} librdkafka lines in 6 s:\n{output}"
    );
}

#[test]
fn no_colour_through_a_pipe_even_without_a_broker() {
    // A closed port: the service logs, fails to reach the broker and exits.
    let port = common::free_port();
    let topics = Topics::unique();
    let toml = ServiceToml::new(&format!("127.0.0.1:{port}"), &topics)
        .value(
            "http",
            "listen",
            format!("\"127.0.0.1:{}\"", common::free_port()),
        )
        .append(feedback_loop::traffic::DEMO_MODELS_TOML);
    let service = Piped::start(&toml, &test_dir("nobroker"), &[]);
    service.wait_for("HTTP endpoints up", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let output = service.finish();
    let _ = std::fs::remove_dir_all(test_dir("nobroker"));
    assert!(output.contains(" INFO "), "{output}");
    assert!(!output.contains("\x1b["), "ANSI codes in a pipe:\n{output}");
}
