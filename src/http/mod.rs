//! The HTTP side (axum): the page at `/`, `/metrics` for Prometheus, `/healthz` (the
//! process is alive), `/readyz` (partitions assigned, the consumer running, the cluster
//! reachable), and the JSON API (`api`): latest records, history, alerts, status.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::shared_state::SharedState;
use crate::shutdown::Shutdown;

mod api;
pub mod page;

pub(crate) fn router(state: Arc<SharedState>) -> Router {
    Router::new()
        .route("/", get(live_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/v1/models", get(api::models))
        .route("/api/v1/models/{model}/windows", get(api::windows))
        .route("/api/v1/alerts", get(api::alerts))
        .route("/api/v1/status", get(api::status))
        .with_state(state)
}

async fn live_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page::live(),
    )
        .into_response()
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
