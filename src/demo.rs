//! `demo`: the whole loop on one machine with nothing installed. An embedded Kafka-protocol
//! broker (librdkafka's mock cluster, real TCP), the traffic generator producing two models'
//! predictions and delayed outcomes with drift part-way, the service consuming them, the
//! HTTP endpoints on `--listen`, and a live summary on the terminal until Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::mocking::MockCluster;
use tokio::sync::broadcast;

use feedback_loop_core::output::rfc3339;
use feedback_loop_core::settings::Config;

use crate::generate::{self, TrafficTarget};
use crate::shared_state::SharedState;
use crate::shutdown::{self, Shutdown};
use crate::telemetry::Telemetry;
use crate::traffic::{TrafficConfig, DEMO_MODELS_TOML, DEMO_RULES_TOML};
use crate::wall_clock::now_ms;

/// Partitions of the demo's input topics.
pub(crate) const DEMO_PARTITIONS: i32 = 4;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: String,
    pub rate: f64,
    pub drift_after: Duration,
    /// Stop by itself after this long (for tests); `None`: until Ctrl-C.
    pub run_for: Option<Duration>,
}

/// The demo's configuration: short windows so that something happens every few seconds.
pub(crate) fn demo_config(bootstrap_servers: &str, listen: &str) -> anyhow::Result<Config> {
    let text = format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap_servers}"
group_id = "feedback-loop-demo"
[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000
[http]
listen = "{listen}"
[join]
max_label_delay = "1m"
max_outcome_lead = "10s"
[window]
size = "10s"
allowed_lateness = "2s"
idle_timeout = "10s"
{DEMO_MODELS_TOML}
{DEMO_RULES_TOML}
"#
    );
    Ok(crate::config::from_toml_str(&text)?)
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("starting the embedded Kafka broker")?;
    let bootstrap = cluster.bootstrap_servers();
    let config = demo_config(&bootstrap, &options.listen)?;
    let k = &config.kafka;
    for topic in [&k.predictions_topic, &k.outcomes_topic] {
        cluster.create_topic(topic, DEMO_PARTITIONS, 1)?;
    }
    // The mock broker has no CreateTopics handler: the state topic is made here too.
    for topic in [
        &k.metrics_topic,
        &k.alerts_topic,
        &k.retrain_topic,
        &k.dead_letter_topic,
        &config.checkpoint.topic,
    ] {
        cluster.create_topic(topic, 1, 1)?;
    }
    let listener = crate::serve::bind(&options.listen, "--listen").await?;
    println!("feedback-loop demo: embedded Kafka broker at {bootstrap}");
    println!(
        "  page:     http://{}/   (open it in a browser)",
        display_address(&options.listen)
    );
    println!(
        "  metrics:  http://{}/metrics",
        display_address(&options.listen)
    );
    println!(
        "  models:   http://{}/api/v1/models",
        display_address(&options.listen)
    );
    println!(
        "  traffic:  {} requests/s, outcomes 0-20 s late, 10% never labeled, drift after {} s",
        options.rate,
        options.drift_after.as_secs()
    );
    println!("  Ctrl-C to stop.\n");

    let (notify, _) = broadcast::channel(1);
    let telemetry = Arc::new(Telemetry::new()?);
    let state = SharedState::new(telemetry, config.http.history_windows);
    let start = now_ms();
    let traffic = TrafficConfig {
        seed: 7,
        rate_per_s: options.rate,
        min_label_delay_ms: 0,
        max_label_delay_ms: 20_000,
        missing_outcome_rate: 0.1,
        drift_at_ms: Some(start + options.drift_after.as_millis() as i64),
        start_ms: start,
    };
    let target = TrafficTarget {
        bootstrap_servers: bootstrap.clone(),
        predictions_topic: k.predictions_topic.clone(),
        outcomes_topic: k.outcomes_topic.clone(),
        client: Vec::new(),
    };
    let generator = tokio::spawn(generate::produce(
        target,
        traffic,
        None,
        Shutdown::new(notify.subscribe()),
    ));
    let summary = tokio::spawn(print_summaries(
        state.clone(),
        Shutdown::new(notify.subscribe()),
    ));
    let run_for = options.run_for;
    let stop = async move {
        match run_for {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown::signal() => {}
                }
            }
            None => shutdown::signal().await,
        }
    };
    let served = crate::serve::serve(config.into(), state, listener, stop).await;
    let _ = notify.send(());
    let produced = generator.await??;
    let _ = summary.await;
    served?;
    println!("demo stopped ({produced} messages produced)");
    drop(cluster);
    Ok(())
}

fn display_address(listen: &str) -> String {
    listen.replace("0.0.0.0", "127.0.0.1")
}

async fn print_summaries(state: Arc<SharedState>, mut shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = ticker.tick() => {}
        }
        let latest = match state.latest.lock() {
            Ok(latest) => latest.clone(),
            Err(_) => continue,
        };
        let t = &state.telemetry;
        println!(
            "{}  pending {:>6}  windows {:>4}  dead letters {}  ready {}",
            rfc3339(now_ms()).get(11..19).unwrap_or(""),
            t.pending_predictions.get(),
            t.windows_emitted.get(),
            t.dead_letter_count(),
            if state.is_ready() { "yes" } else { "no" },
        );
        for record in latest.values() {
            let c = &record.counts;
            let end = record.window.end_text();
            let quality = match &record.classification {
                Some(q) => format!("acc {}  f1 {}", fmt(q.accuracy), fmt(q.f1)),
                None => String::new(),
            };
            println!(
                "  {:<8} {:<12} window {}  joined {:>5}  coverage {}  {}",
                record.model,
                record.model_version.as_deref().unwrap_or("-"),
                end.get(11..19).unwrap_or(&end),
                c.joined,
                fmt(c.label_coverage),
                quality
            );
        }
    }
}

fn fmt(value: Option<f64>) -> String {
    value.map_or("  -  ".to_string(), |v| format!("{v:.3}"))
}
