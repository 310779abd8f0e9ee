//! The `feedback-loop` command line: `replay`, `check-config` (and the Kafka service commands).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use feedback_loop::config::{Config, Duration};
use feedback_loop::traffic::{Stream, TrafficConfig, TrafficGenerator};

#[derive(Parser)]
#[command(name = "feedback-loop", version, about = "Closes the loop on ML models in production: joins predictions with outcomes, publishes quality metrics")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the core over JSONL files and prints one metrics record per line.
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// Predictions, one JSON object per line.
        #[arg(long)]
        predictions: PathBuf,
        /// Outcomes, one JSON object per line.
        #[arg(long)]
        outcomes: PathBuf,
    },
    /// Produces synthetic traffic (two models, delayed outcomes, drift part-way) into files.
    Generate(GenerateArgs),
    /// Validates a configuration file and says what is wrong, by key.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Write `predictions.jsonl` and `outcomes.jsonl` into this directory.
    #[arg(long)]
    output_dir: PathBuf,
    /// Requests per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Largest delay of an outcome after its prediction.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    label_delay: Duration,
    /// Drift starts this long after the start.
    #[arg(long, value_parser = parse_duration)]
    drift_after: Option<Duration>,
    /// How much event time to generate.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// First event time, RFC 3339.
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
            config,
            predictions,
            outcomes,
        } => {
            let config = load_config(&config)?;
            let predictions = std::fs::read(&predictions)
                .with_context(|| format!("reading predictions from {}", predictions.display()))?;
            let outcomes = std::fs::read(&outcomes)
                .with_context(|| format!("reading outcomes from {}", outcomes.display()))?;
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let mut diagnostics = std::io::stderr();
            let summary = feedback_loop::replay::replay(&config, &predictions, &outcomes, &mut out, &mut diagnostics)?;
            out.flush()?;
            eprintln!(
                "replay: {} predictions, {} outcomes, {} bad lines, {} records",
                summary.predictions, summary.outcomes, summary.invalid_lines, summary.records
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) => {
            let start = chrono::DateTime::parse_from_rfc3339(&args.start)
                .with_context(|| format!("--start `{}` is not RFC 3339", args.start))?
                .timestamp_millis();
            let mut generator = TrafficGenerator::new(TrafficConfig {
                seed: args.seed,
                rate_per_s: args.rate,
                min_label_delay_ms: 0,
                max_label_delay_ms: args.label_delay.as_millis_i64(),
                missing_outcome_rate: args.missing_outcomes,
                drift_at_ms: args.drift_after.map(|d| start + d.as_millis_i64()),
                start_ms: start,
            });
            std::fs::create_dir_all(&args.output_dir)
                .with_context(|| format!("creating {}", args.output_dir.display()))?;
            let open = |name: &str| -> anyhow::Result<BufWriter<std::fs::File>> {
                let path = args.output_dir.join(name);
                let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                Ok(BufWriter::new(file))
            };
            let (mut predictions, mut outcomes) = (open("predictions.jsonl")?, open("outcomes.jsonl")?);
            let mut messages = generator.until(start + args.duration.as_millis_i64());
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
            eprintln!("generate: {} messages into {}", messages.len(), args.output_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => {
                println!(
                    "{}: ok ({} model{})",
                    file.display(),
                    config.models.len(),
                    if config.models.len() == 1 { "" } else { "s" }
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                eprintln!("{}: {error}", file.display());
                Ok(ExitCode::from(2))
            }
        },
    }
}

fn load_config(path: &PathBuf) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("invalid configuration {}", path.display()))
}
