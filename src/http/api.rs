//! The JSON API the page polls (shapes in docs/operations.md, "HTTP API"): the latest
//! record per model and version, one series' recent windows, the alerts, the status.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus::core::Collector;
use serde::Deserialize;
use serde_json::json;

use crate::history::SeriesKey;
use crate::shared_state::SharedState;

/// `GET /api/v1/models`: the latest unsegmented record per (model, version), and the
/// segment values seen per model and dimension.
pub(super) async fn models(State(state): State<Arc<SharedState>>) -> Response {
    let latest = match state.latest.lock() {
        Ok(latest) => latest.values().cloned().collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    let segments = match state.history.lock() {
        Ok(history) => serde_json::to_value(history.segments()).unwrap_or_default(),
        Err(_) => json!({}),
    };
    Json(json!({ "models": latest, "segments": segments })).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct WindowsQuery {
    /// Absent: the records without a model version.
    version: Option<String>,
    /// `dimension=value`; absent: the unsegmented series.
    segment: Option<String>,
    /// The newest this many windows (default: all kept).
    limit: Option<usize>,
}

/// `GET /api/v1/models/{model}/windows?version=&segment=dim%3Dvalue&limit=N`: the series'
/// records, oldest first (the newest `limit`).
pub(super) async fn windows(
    State(state): State<Arc<SharedState>>,
    Path(model): Path<String>,
    Query(query): Query<WindowsQuery>,
) -> Response {
    let segment = match query.segment.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match text.split_once('=') {
            Some((dimension, value)) => Some((dimension.to_string(), value.to_string())),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({
                        "error": format!("segment `{text}`: expected `dimension=value`")
                    })),
                )
                    .into_response()
            }
        },
    };
    let key = SeriesKey {
        model,
        version: query.version,
        segment,
    };
    let windows = match state.history.lock() {
        Ok(history) => {
            let records = history.windows(&key, query.limit.unwrap_or(usize::MAX));
            serde_json::to_value(records).unwrap_or_default()
        }
        Err(_) => json!([]),
    };
    let segment = key.segment.map(|(d, v)| json!({ d: v }));
    Json(json!({
        "model": key.model,
        "version": key.version,
        "segment": segment,
        "windows": windows,
    }))
    .into_response()
}

/// `GET /api/v1/alerts`: the alerts firing now and the recent alert and retrain events.
pub(super) async fn alerts(State(state): State<Arc<SharedState>>) -> Response {
    match state.history.lock() {
        Ok(history) => {
            let firing: Vec<_> = history.firing().collect();
            let events: Vec<_> = history.events().collect();
            Json(json!({ "firing": firing, "events": events })).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /api/v1/status`: readiness, whether this instance publishes the windows, dead
/// letters (total and recent), input records per topic.
pub(super) async fn status(State(state): State<Arc<SharedState>>) -> Response {
    let recent = match state.history.lock() {
        Ok(history) => {
            serde_json::to_value(history.dead_letters().collect::<Vec<_>>()).unwrap_or_default()
        }
        Err(_) => json!([]),
    };
    let mut input_records = BTreeMap::new();
    for family in state.telemetry.input_records.collect() {
        for metric in family.get_metric() {
            let topic = metric
                .get_label()
                .iter()
                .find(|l| l.name() == "topic")
                .map(|l| l.value().to_string());
            if let Some(topic) = topic {
                input_records.insert(topic, metric.get_counter().get_value() as u64);
            }
        }
    }
    Json(json!({
        "ready": state.is_ready(),
        // Another instance of the group may publish them (its page shows them): in
        // "single" mode the one holding every input partition, in "partitioned" the one
        // running the finalizer.
        "publishes": state.in_charge.load(Ordering::Relaxed),
        "dead_letters": { "total": state.telemetry.dead_letter_count(), "recent": recent },
        "input_records": input_records,
    }))
    .into_response()
}
