//! `replay`: the core over two JSONL files, for backtests, threshold tuning and as the
//! reference the Kafka path is compared with.
//!
//! Both files are read whole, each line decoded (all of them before the engine sees any,
//! for the reason [`DECODE_BATCH`](feedback_loop_core::record::DECODE_BATCH) gives), and the records merged in
//! event-time order (ties: predictions first, then by file line). A line that does not
//! decode keeps its place in its file: it is ordered with the valid line before it. After each record the watermark
//! becomes `largest event time - allowed_lateness`; at the end every window closes.
//! Metrics records go to `out` as JSON lines, each window's alert events and retrain
//! triggers right after its records (every line carries its `schema`); bad lines are reported on `diagnostics` (the first
//! `REPORTED_ERRORS_PER_FILE` of each file, then a count).

use std::io::Write;

use anyhow::Context;

use feedback_loop_core::monitor::Emitted;
use feedback_loop_core::record::{DecodeError, Decoder, Envelope, Input, Record};

use crate::config::LoadedConfig;
use crate::history::History;

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
}

struct Event<'a> {
    /// Event time, or for an invalid line the event time of the valid line before it.
    ts: i64,
    /// 0 = predictions file, 1 = outcomes file.
    file: u8,
    line: usize,
    decoded: Result<Record<'a>, DecodeError>,
}

/// Runs the core over the two files' contents and writes the metrics records.
pub fn replay(
    loaded: &LoadedConfig,
    predictions: &[u8],
    outcomes: &[u8],
    out: &mut impl Write,
    diagnostics: &mut impl Write,
) -> anyhow::Result<ReplaySummary> {
    replay_into(loaded, predictions, outcomes, out, diagnostics, None)
}

/// [`replay`], also keeping every record and event in `history` (for `--report`).
pub fn replay_into(
    loaded: &LoadedConfig,
    predictions: &[u8],
    outcomes: &[u8],
    out: &mut impl Write,
    diagnostics: &mut impl Write,
    mut history: Option<&mut History>,
) -> anyhow::Result<ReplaySummary> {
    let config = &loaded.config;
    let decoder = Decoder::new(config);
    let mut events = Vec::new();
    let mut summary = ReplaySummary::default();
    for (file, input, name, bytes) in [
        (0u8, Input::Predictions, "predictions", predictions),
        (1u8, Input::Outcomes, "outcomes", outcomes),
    ] {
        let mut previous_ts = i64::MIN;
        let mut reported = 0;
        for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let decoded = decoder.decode(input, line, Envelope::default());
            let ts = match &decoded {
                Ok(record) => record.ts(),
                Err(error) => {
                    summary.invalid_lines += 1;
                    if reported < REPORTED_ERRORS_PER_FILE {
                        reported += 1;
                        writeln!(diagnostics, "{name} line {}: {error}", index + 1)?;
                    }
                    previous_ts
                }
            };
            previous_ts = ts;
            events.push(Event {
                ts,
                file,
                line: index,
                decoded,
            });
        }
        if reported == REPORTED_ERRORS_PER_FILE {
            writeln!(
                diagnostics,
                "{name}: further bad lines not shown ({} bad lines in all so far)",
                summary.invalid_lines
            )?;
        }
    }
    events.sort_by_key(|e| (e.ts, e.file, e.line));

    let lateness = config.window.allowed_lateness.as_millis_i64();
    let mut monitor = loaded.monitor()?;
    let mut max_ts = i64::MIN;
    // Metrics records, then the alerts and triggers they caused; each line has its schema.
    let mut write = |emitted: Emitted, summary: &mut ReplaySummary| -> anyhow::Result<()> {
        if let Some(history) = history.as_deref_mut() {
            emitted.metrics.iter().for_each(|r| history.record(r));
            emitted.events.iter().for_each(|e| history.event(e));
        }
        for record in &emitted.metrics {
            serde_json::to_writer(&mut *out, record).context("writing a metrics record")?;
            out.write_all(b"\n").context("writing a metrics record")?;
            summary.records += 1;
        }
        for event in &emitted.events {
            out.write_all(event.to_json()?.as_bytes())
                .context("writing a rule event")?;
            out.write_all(b"\n").context("writing a rule event")?;
            summary.events += 1;
        }
        Ok(())
    };
    for event in &events {
        let record = match &event.decoded {
            Ok(record) => record,
            Err(error) => {
                monitor.engine_mut().observe_invalid(error.model);
                continue;
            }
        };
        match record {
            Record::Prediction(_) => summary.predictions += 1,
            Record::Outcome(_) => summary.outcomes += 1,
        }
        if let Err(rejection) = monitor.engine_mut().observe(record) {
            writeln!(
                diagnostics,
                "predictions line {}: {rejection}",
                event.line + 1
            )?;
        }
        max_ts = max_ts.max(event.ts);
        write(
            monitor.advance_watermark(max_ts.saturating_sub(lateness)),
            &mut summary,
        )?;
    }
    write(monitor.finish(), &mut summary)?;
    out.flush()?;
    Ok(summary)
}
