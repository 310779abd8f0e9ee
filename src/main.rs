//! The `feedback-loop` command line: `replay`, `check-config` (and the Kafka service commands).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use feedback_loop::config::Config;

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
    /// Validates a configuration file and says what is wrong, by key.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
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
