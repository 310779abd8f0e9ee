//! `replay --report`: one self-contained HTML file (the page, its script and the data
//! inline) with every model of a backtest, which opens offline in a browser. It holds the
//! window records and the alert and retrain events, not the input events, so its size
//! follows the number of windows, not of records.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use feedback_loop_core::alerts::events::{AlertEvent, RuleEvent};
use feedback_loop_core::output::MetricsRecord;

use crate::history::History;
use crate::http::page;

#[derive(Serialize)]
struct ReportData<'a> {
    title: &'a str,
    generated_at: String,
    models: Vec<ModelSeries<'a>>,
    alerts: Alerts<'a>,
    /// No service status in a backtest: the page leaves out its health panel.
    status: Option<()>,
}

#[derive(Serialize)]
struct ModelSeries<'a> {
    model: &'a str,
    series: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct Alerts<'a> {
    firing: Vec<&'a AlertEvent>,
    events: Vec<&'a RuleEvent>,
}

/// Writes the report of `history` to `path`.
pub fn write(history: &History, title: &str, path: &Path) -> anyhow::Result<()> {
    let mut models: Vec<ModelSeries<'_>> = Vec::new();
    for (key, windows) in history.series() {
        if models.last().is_none_or(|m| m.model != key.model) {
            models.push(ModelSeries {
                model: &key.model,
                series: Vec::new(),
            });
        }
        let windows: Vec<&MetricsRecord> = windows.iter().collect();
        let series = json!({
            "version": key.version,
            "segment": key.segment.as_ref().map(|(d, v)| json!({ d: v })),
            "windows": windows,
        });
        if let Some(model) = models.last_mut() {
            model.series.push(series);
        }
    }
    let data = ReportData {
        title,
        generated_at: feedback_loop_core::output::rfc3339(crate::wall_clock::now_ms()),
        models,
        alerts: Alerts {
            firing: history.firing().collect(),
            events: history.events().collect(),
        },
        status: None,
    };
    let html = page::report(&data).context("encoding the report's data")?;
    std::fs::write(path, html).with_context(|| format!("writing the report {}", path.display()))
}
