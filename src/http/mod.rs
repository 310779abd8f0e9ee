//! The HTTP side (axum): `/metrics` for Prometheus, `/healthz` (the process is alive),
//! `/readyz` (partitions assigned, the consumer running, the cluster reachable),
//! `/api/v1/models` (the latest record per model and version, as JSON).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::shared_state::SharedState;
use crate::shutdown::Shutdown;

pub(crate) fn router(state: Arc<SharedState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/v1/models", get(models))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<SharedState>>) -> Response {
    // The gauge says what /readyz says (the rebalance callbacks alone miss an unreachable
    // cluster and a stuck loop).
    state.telemetry.ready.set(state.is_ready() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.telemetry.render(),
    )
        .into_response()
}

async fn ready(State(state): State<Arc<SharedState>>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no partitions assigned, consumer stopped or cluster unreachable\n",
        )
            .into_response()
    }
}

async fn models(State(state): State<Arc<SharedState>>) -> Response {
    let latest = match state.latest.lock() {
        Ok(latest) => latest.values().cloned().collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    Json(serde_json::json!({ "models": latest })).into_response()
}

/// Serves until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<SharedState>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.recv().await })
        .await
}
