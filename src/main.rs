//! The `feedback-loop` command line: `replay`, `check-config` (and the Kafka service commands).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use feedback_loop::config::LoadedConfig;
use feedback_loop::replay::Source;
use feedback_loop::shared_state::SharedState;
use feedback_loop::shutdown::Shutdown;
use feedback_loop::traffic::{Stream, TrafficConfig, TrafficGenerator};
use feedback_loop_core::settings::Duration;

#[derive(Parser)]
#[command(
    name = "feedback-loop",
    version,
    about = "Closes the loop on ML models in production: joins predictions with outcomes, publishes quality metrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the service: consumes the input topics, publishes metrics (the product).
    Run {
        #[arg(
            long,
            short,
            env = "FEEDBACK_LOOP_CONFIG",
            default_value = "/etc/feedback-loop/feedback-loop.toml"
        )]
        config: PathBuf,
    },
    /// The whole loop on an embedded Kafka broker, with a live summary: no setup needed.
    Demo {
        /// Address of the page (/) and the HTTP endpoints (/metrics, /api/v1/…).
        #[arg(long, default_value = "0.0.0.0:9898")]
        listen: String,
        /// Requests per second of generated traffic.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Drift starts this long after the start.
        #[arg(long, default_value = "2m", value_parser = parse_duration)]
        drift_after: Duration,
        /// Stop by itself after this long (default: run until Ctrl-C).
        #[arg(long, value_parser = parse_duration)]
        run_for: Option<Duration>,
        /// Run this configuration instead of config/demo.toml (its broker address and
        /// listen address are set by the demo).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the demo's configuration (config/demo.toml, or --config's file) and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Runs the core over JSONL files and prints one metrics record per line.
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// Predictions, one JSON object per line (`.gz` and `.zst` files are decompressed).
        #[arg(long)]
        predictions: PathBuf,
        /// Outcomes, one JSON object per line (`.gz` and `.zst` too).
        #[arg(long)]
        outcomes: PathBuf,
        /// Also write a self-contained HTML report of the backtest (every model's windows,
        /// alerts and retrain triggers; opens offline in a browser).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Run the partitioned engine in this process: N task shards (records by join id)
        /// and a finalizer merging their partial windows. The output is the same as with
        /// one (docs/semantics.md, "The partitioned engine").
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        tasks: u32,
    },
    /// Produces synthetic traffic (two models, delayed outcomes, drift part-way) into a Kafka
    /// cluster (`--bootstrap-servers`, in real time) or into files (`--output-dir`).
    Generate(GenerateArgs),
    /// Validates a configuration file and says what is wrong, by key.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Produce into this Kafka cluster, in real time.
    #[arg(
        long,
        required_unless_present = "output_dir",
        conflicts_with = "output_dir"
    )]
    bootstrap_servers: Option<String>,
    #[arg(long, default_value = "model-predictions")]
    predictions_topic: String,
    #[arg(long, default_value = "actual-outcomes")]
    outcomes_topic: String,
    /// Write `predictions.jsonl` and `outcomes.jsonl` into this directory instead.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Requests per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Largest delay of an outcome after its prediction.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    label_delay: Duration,
    /// Drift starts this long after the start; without it the traffic never drifts.
    #[arg(long, value_parser = parse_duration)]
    drift_after: Option<Duration>,
    /// How much event time to generate (files: default 10m; Kafka: default until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// First event time, RFC 3339 (files only; Kafka uses the wall clock).
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    start: String,
    /// Share of requests without an outcome.
    #[arg(long, default_value_t = 0.1)]
    missing_outcomes: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    Duration::parse(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay {
            config: config_path,
            predictions,
            outcomes,
            report,
            tasks,
        } => {
            let config = load_config(&config_path)?;
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let mut diagnostics = std::io::stderr();
            // The report keeps every window of the backtest.
            let mut history = report
                .as_ref()
                .map(|_| feedback_loop::history::History::new(usize::MAX));
            let summary = feedback_loop::replay::replay_into(
                &config,
                &Source::File(predictions),
                &Source::File(outcomes),
                &mut out,
                &mut diagnostics,
                history.as_mut(),
                tasks,
            )?;
            out.flush()?;
            eprintln!(
                "replay: {} predictions, {} outcomes, {} bad lines, {} records, {} estimation checks, {} alerts and triggers",
                summary.predictions, summary.outcomes, summary.invalid_lines, summary.records, summary.checks, summary.events
            );
            if let (Some(path), Some(history)) = (report, history) {
                let title = format!("replay of {}", config_path.display());
                feedback_loop::report::write(&history, &title, &path)?;
                eprintln!("replay: report written to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) => generate(args),
        Command::Run { config } => {
            feedback_loop::logging::init();
            let config = load_config(&config)?;
            runtime()?.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            listen,
            rate,
            drift_after,
            run_for,
            config,
            print_config,
        } => {
            let config = match config {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => feedback_loop::demo::DEMO_TOML.to_string(),
            };
            if print_config {
                print!("{config}");
                return Ok(ExitCode::SUCCESS);
            }
            feedback_loop::logging::init();
            runtime()?.block_on(feedback_loop::demo::run(feedback_loop::demo::DemoOptions {
                listen,
                rate,
                drift_after: drift_after.0,
                config,
                run_for: run_for.map(|d| d.0),
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => match feedback_loop::config::load(&file) {
            Ok(LoadedConfig { config, .. }) => {
                println!(
                    "{}: ok ({} model{})",
                    file.display(),
                    config.models.len(),
                    if config.models.len() == 1 { "" } else { "s" }
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                match error.problems().as_slice() {
                    [one] => eprintln!("{}: {one}", file.display()),
                    all => {
                        eprintln!("{}: {} problems", file.display(), all.len());
                        for problem in all {
                            eprintln!("  {problem}");
                        }
                    }
                }
                Ok(ExitCode::from(2))
            }
        },
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `run`: HTTP endpoints and the Kafka service until SIGINT/SIGTERM.
async fn serve(loaded: LoadedConfig) -> anyhow::Result<()> {
    let telemetry = std::sync::Arc::new(feedback_loop::telemetry::Telemetry::new()?);
    let state = SharedState::new(telemetry, loaded.config.http.history_windows);
    let listen = loaded.config.http.listen.clone();
    let listener = feedback_loop::serve::bind(&listen, "http.listen").await?;
    tracing::info!(%listen, "HTTP endpoints up");
    feedback_loop::serve::serve(loaded, state, listener, feedback_loop::shutdown::signal()).await
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let traffic = |start: i64| TrafficConfig {
        seed: args.seed,
        rate_per_s: args.rate,
        min_label_delay_ms: 0,
        max_label_delay_ms: args.label_delay.as_millis_i64(),
        missing_outcome_rate: args.missing_outcomes,
        drift_at_ms: args.drift_after.map(|d| start + d.as_millis_i64()),
        start_ms: start,
    };
    if let Some(bootstrap_servers) = &args.bootstrap_servers {
        feedback_loop::logging::init();
        let start = feedback_loop::wall_clock::now_ms();
        let target = feedback_loop::generate::TrafficTarget {
            bootstrap_servers: bootstrap_servers.clone(),
            predictions_topic: args.predictions_topic.clone(),
            outcomes_topic: args.outcomes_topic.clone(),
            client: Vec::new(),
        };
        let produced = runtime()?.block_on(async {
            let (notify, _) = tokio::sync::broadcast::channel(1);
            let run = feedback_loop::generate::produce(
                target,
                traffic(start),
                args.duration.map(|d| d.0),
                Shutdown::new(notify.subscribe()),
            );
            tokio::pin!(run);
            tokio::select! {
                result = &mut run => result,
                _ = feedback_loop::shutdown::signal() => {
                    let _ = notify.send(());
                    run.await
                }
            }
        })?;
        eprintln!("generate: {produced} messages produced to {bootstrap_servers}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(output_dir) = &args.output_dir else {
        anyhow::bail!("give --bootstrap-servers or --output-dir");
    };
    let start = chrono::DateTime::parse_from_rfc3339(&args.start)
        .with_context(|| format!("--start `{}` is not RFC 3339", args.start))?
        .timestamp_millis();
    let mut generator = TrafficGenerator::new(traffic(start));
    std::fs::create_dir_all(output_dir)
        .with_context(|| format!("creating {}", output_dir.display()))?;
    let open = |name: &str| -> anyhow::Result<BufWriter<std::fs::File>> {
        let path = output_dir.join(name);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(BufWriter::new(file))
    };
    let (mut predictions, mut outcomes) = (open("predictions.jsonl")?, open("outcomes.jsonl")?);
    let duration = args.duration.map_or(600_000, |d| d.as_millis_i64());
    let mut messages = generator.before(start + duration);
    messages.extend(generator.drain());
    for message in &messages {
        let file = match message.stream {
            Stream::Predictions => &mut predictions,
            Stream::Outcomes => &mut outcomes,
        };
        writeln!(file, "{}", message.payload)?;
    }
    predictions.flush()?;
    outcomes.flush()?;
    eprintln!(
        "generate: {} messages into {}",
        messages.len(),
        output_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn load_config(path: &std::path::Path) -> anyhow::Result<LoadedConfig> {
    feedback_loop::config::load(path)
        .with_context(|| format!("invalid configuration {}", path.display()))
}
