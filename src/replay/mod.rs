//! `replay`: the core over two JSONL inputs, for backtests, threshold tuning and as the
//! reference the Kafka path is compared with.
//!
//! The records of both inputs are merged in event-time order (ties: predictions first,
//! then by line), streaming: a first pass over each input decodes every line, reports the
//! bad ones and checks whether the input is in time order; the second pass reads inputs in
//! order as they go and sorts the others externally (`ordered`), so memory follows the
//! pending state (join store, open windows), not the input's size. Inputs may be
//! `.jsonl.gz` or `.jsonl.zst` ([`input`]). A line that does not decode keeps its place in
//! its file: it is ordered with the valid line before it. After each record the watermark
//! becomes `largest event time - allowed_lateness`; at the end every window closes.
//! Metrics records go to `out` as JSON lines, with the estimation checks (schema
//! `feedback-loop.estimation-check.v1`) in the order they are due (docs/semantics.md,
//! "Output order"), each step's alert events and retrain triggers right after its records
//! (every line carries its `schema`); bad lines are
//! reported on `diagnostics` (the first `REPORTED_ERRORS_PER_FILE` of each file, then a
//! count).

use std::io::Write;

use anyhow::Context;

use feedback_loop_core::monitor::{Emitted, Output};
use feedback_loop_core::record::{Decoder, Envelope, Input, Record};

use crate::config::LoadedConfig;
use crate::history::History;

mod driver;
pub mod input;
mod ordered;

pub use input::Source;
use ordered::{Keyed, Ordered, Timed};

/// Bad lines reported one by one per file; the rest are only counted.
pub(crate) const REPORTED_ERRORS_PER_FILE: usize = 20;

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub predictions: usize,
    pub outcomes: usize,
    pub invalid_lines: usize,
    pub records: usize,
    /// Alerts and retrain triggers.
    pub events: usize,
    /// Estimation checks.
    pub checks: usize,
}

/// Says on `diagnostics` which performance-estimation fits failed (that version gets no
/// estimates).
fn report_fit_failures(emitted: &Emitted, diagnostics: &mut impl Write) -> anyhow::Result<()> {
    for f in &emitted.fit_failures {
        writeln!(
            diagnostics,
            "estimation: model {} version {}: the fit failed, no estimates: {}",
            f.model,
            f.model_version.as_deref().unwrap_or("-"),
            f.error
        )?;
    }
    Ok(())
}

/// Runs the core over the two inputs in memory and writes the metrics records.
pub fn replay(
    loaded: &LoadedConfig,
    predictions: &[u8],
    outcomes: &[u8],
    out: &mut impl Write,
    diagnostics: &mut impl Write,
) -> anyhow::Result<ReplaySummary> {
    replay_into(
        loaded,
        &Source::Bytes(predictions),
        &Source::Bytes(outcomes),
        out,
        diagnostics,
        None,
        1,
    )
}

/// [`replay`] over any sources (files, compressed or not), also keeping every record and
/// event in `history` (for `--report`) when given. `tasks` > 1 runs the partitioned
/// engine in this process (`driver`): the same output.
pub fn replay_into(
    loaded: &LoadedConfig,
    predictions: &Source<'_>,
    outcomes: &Source<'_>,
    out: &mut impl Write,
    diagnostics: &mut impl Write,
    mut history: Option<&mut History>,
    tasks: u32,
) -> anyhow::Result<ReplaySummary> {
    let config = &loaded.config;
    let decoder = Decoder::new(config);
    let mut summary = ReplaySummary::default();
    let inputs = [
        (Input::Predictions, "predictions", predictions),
        (Input::Outcomes, "outcomes", outcomes),
    ];

    // First pass: report bad lines, and see which inputs are already in time order.
    let mut in_order = [true; 2];
    for (file, (input, name, source)) in inputs.iter().enumerate() {
        let mut timed = Timed::new(source, &decoder, *input)?;
        let mut reported = 0;
        let mut previous_ts = i64::MIN;
        while let Some(line) = timed.next()? {
            if let Err(error) = decoder.decode(*input, &line.bytes, Envelope::default()) {
                summary.invalid_lines += 1;
                if reported < REPORTED_ERRORS_PER_FILE {
                    reported += 1;
                    writeln!(diagnostics, "{name} line {}: {error}", line.index + 1)?;
                }
            }
            in_order[file] &= line.ts >= previous_ts;
            previous_ts = line.ts;
        }
        if reported == REPORTED_ERRORS_PER_FILE {
            writeln!(
                diagnostics,
                "{name}: further bad lines not shown (the total is in the summary)"
            )?;
        }
    }

    let lateness = config.window.allowed_lateness.as_millis_i64();
    let mut driver = driver::Driver::new(loaded, tasks)?;
    // Metrics records, then the alerts and triggers they caused; each line has its schema.
    let mut write = |emitted: Emitted, summary: &mut ReplaySummary| -> anyhow::Result<()> {
        if let Some(history) = history.as_deref_mut() {
            emitted.metrics.iter().for_each(|r| history.record(r));
            emitted.events.iter().for_each(|e| history.event(e));
        }
        for line in emitted.records_in_order() {
            match line {
                Output::Metrics(record) => {
                    serde_json::to_writer(&mut *out, record).context("writing a metrics record")?;
                    summary.records += 1;
                }
                Output::Check(check) => {
                    serde_json::to_writer(&mut *out, check)
                        .context("writing an estimation check")?;
                    summary.checks += 1;
                }
            }
            out.write_all(b"\n").context("writing a metrics record")?;
        }
        for event in &emitted.events {
            out.write_all(event.to_json()?.as_bytes())
                .context("writing a rule event")?;
            out.write_all(b"\n").context("writing a rule event")?;
            summary.events += 1;
        }
        Ok(())
    };

    // Second pass: both inputs in order, merged by (time, input, line).
    let mut streams = Vec::with_capacity(2);
    for (file, (input, _, source)) in inputs.iter().enumerate() {
        streams.push(Ordered::new(source, &decoder, *input, in_order[file])?);
    }
    let mut heads: [Option<Keyed>; 2] = [streams[0].next()?, streams[1].next()?];
    loop {
        let file = match (&heads[0], &heads[1]) {
            (None, None) => break,
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (Some(p), Some(o)) => usize::from(o.ts < p.ts),
        };
        let Some(line) = heads[file].take() else {
            break;
        };
        heads[file] = streams[file].next()?;
        let input = inputs[file].0;
        let record = match decoder.decode(input, &line.bytes, Envelope::default()) {
            Ok(record) => record,
            Err(error) => {
                driver.observe_invalid(error.model);
                continue;
            }
        };
        match record {
            Record::Prediction(_) => summary.predictions += 1,
            Record::Outcome(_) => summary.outcomes += 1,
        }
        let (observed, emitted) = driver.observe(&record, line.ts, lateness)?;
        if let Err(rejection) = observed {
            writeln!(
                diagnostics,
                "predictions line {}: {rejection}",
                line.index + 1
            )?;
        }
        report_fit_failures(&emitted, diagnostics)?;
        write(emitted, &mut summary)?;
    }
    let emitted = driver.finish()?;
    report_fit_failures(&emitted, diagnostics)?;
    write(emitted, &mut summary)?;
    out.flush()?;
    Ok(summary)
}
