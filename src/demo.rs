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
use crate::traffic::TrafficConfig;
use crate::wall_clock::now_ms;
use feedback_loop_core::output::drift::{CategoricalDrift, DriftValue, NumericDrift};

/// Partitions of the demo's input topics.
pub(crate) const DEMO_PARTITIONS: i32 = 4;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: String,
    pub rate: f64,
    pub drift_after: Duration,
    /// The configuration's text (config/demo.toml by default).
    pub config: String,
    /// Stop by itself after this long (for tests); `None`: until Ctrl-C.
    pub run_for: Option<Duration>,
}

/// The demo's configuration file (config/demo.toml), built into the binary.
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");

/// The demo's configuration: `text` (config/demo.toml unless `--config` names another) with
/// the embedded broker's address and the listen address set.
pub(crate) fn demo_config(
    text: &str,
    bootstrap_servers: &str,
    listen: &str,
) -> anyhow::Result<Config> {
    let mut config = crate::config::from_toml_str(text)?;
    config.kafka.bootstrap_servers = bootstrap_servers.to_string();
    config.http.listen = listen.to_string();
    Ok(config)
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("starting the embedded Kafka broker")?;
    let bootstrap = cluster.bootstrap_servers();
    let config = demo_config(&options.config, &bootstrap, &options.listen)?;
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
    // The address really bound (`--listen 127.0.0.1:0` picks a port).
    let address = display_address(&listener.local_addr()?.to_string());
    println!("feedback-loop demo: embedded Kafka broker at {bootstrap}");
    println!("  page:     http://{address}/   (open it in a browser)");
    println!("  metrics:  http://{address}/metrics");
    println!("  models:   http://{address}/api/v1/models");
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

/// Prints, once per closed window, a line per model version: the window (`start–end`,
/// UTC, as in records and alerts), joined pairs, label coverage, quality, the difference to
/// the model's first version (the champion; versions in name order), the drifted features,
/// and the alerts firing for the model.
async fn print_summaries(state: Arc<SharedState>, mut shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut printed_end = i64::MIN;
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = ticker.tick() => {}
        }
        let latest = match state.latest.lock() {
            Ok(latest) => latest.clone(),
            Err(_) => continue,
        };
        // A window is printed once, when every model version has closed it.
        let Some(end) = latest.values().map(|r| r.window.end).min() else {
            continue;
        };
        if end <= printed_end {
            continue;
        }
        printed_end = end;
        let firing: Vec<(String, String)> = match state.history.lock() {
            Ok(history) => history
                .firing()
                .map(|a| (a.model.clone(), a.rule.clone()))
                .collect(),
            Err(_) => Vec::new(),
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
        let mut champion: Option<(&str, Option<f64>)> = None;
        for record in latest.values() {
            let c = &record.counts;
            let (start, end) = (record.window.start_text(), record.window.end_text());
            let accuracy = record.classification.as_ref().and_then(|q| q.accuracy);
            let quality = match &record.classification {
                Some(q) => format!("acc {}  f1 {}", fmt(q.accuracy), fmt(q.f1)),
                None => String::new(),
            };
            let versus = match champion {
                Some((model, Some(first))) if model == record.model => match accuracy {
                    Some(acc) => format!("  acc vs champion {:+.3}", acc - first),
                    None => String::new(),
                },
                _ => {
                    champion = Some((&record.model, accuracy));
                    String::new()
                }
            };
            let drifted: Vec<&str> = record
                .drift
                .as_ref()
                .and_then(|d| d.features.as_ref())
                .map(|features| {
                    features
                        .iter()
                        .filter(|(_, v)| {
                            matches!(
                                v,
                                Some(DriftValue::Numeric(NumericDrift {
                                    drifted: Some(true),
                                    ..
                                })) | Some(DriftValue::Categorical(CategoricalDrift {
                                    drifted: Some(true),
                                    ..
                                }))
                            )
                        })
                        .map(|(name, _)| name.as_str())
                        .collect()
                })
                .unwrap_or_default();
            let drift = if drifted.is_empty() {
                String::new()
            } else {
                format!("  drifted: {}", drifted.join(", "))
            };
            println!(
                "  {:<8} {:<12} window {}–{}  joined {:>5}  coverage {}  {}{}{}",
                record.model,
                record.model_version.as_deref().unwrap_or("-"),
                start.get(11..19).unwrap_or(&start),
                end.get(11..19).unwrap_or(&end),
                c.joined,
                fmt(c.label_coverage),
                quality,
                versus,
                drift,
            );
        }
        let mut alerts: Vec<String> = firing
            .iter()
            .map(|(model, rule)| format!("{rule} ({model})"))
            .collect();
        alerts.dedup();
        if !alerts.is_empty() {
            println!("  firing: {}", alerts.join(", "));
        }
    }
}

fn fmt(value: Option<f64>) -> String {
    value.map_or("  -  ".to_string(), |v| format!("{v:.3}"))
}
