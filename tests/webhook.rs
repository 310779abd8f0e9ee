//! The retrain webhook against a real local HTTP server (axum): the trigger arrives with the
//! documented body and headers; a server that fails twice then succeeds gets it exactly once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use feedback_loop::telemetry::Telemetry;
use feedback_loop::webhook::RetrainWebhook;
use feedback_loop_core::settings::{Duration, WebhookConfig};

#[derive(Default)]
struct Endpoint {
    calls: AtomicUsize,
    accepted: Mutex<Vec<(String, String)>>,
}

async fn receive(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let call = endpoint.calls.fetch_add(1, Ordering::SeqCst);
    if call < 2 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let token = headers
        .get("x-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    endpoint.accepted.lock().unwrap().push((token, body));
    StatusCode::ACCEPTED
}

#[tokio::test]
async fn fails_twice_then_delivers_once() {
    let endpoint = Arc::new(Endpoint::default());
    let app = Router::new()
        .route("/retrain", post(receive))
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let telemetry = Arc::new(Telemetry::new().unwrap());
    let webhook = RetrainWebhook::new(
        WebhookConfig {
            url: format!("http://{address}/retrain"),
            headers: [("x-token".to_string(), "secret".to_string())].into(),
            timeout: Duration::from_millis(2_000),
            max_attempts: 5,
        },
        telemetry.clone(),
    )
    .unwrap();
    let body =
        r#"{"schema":"feedback-loop.retrain.v1","trigger_id":"fraud/1.0/2026-01-01T00:12:00Z"}"#;
    let delivered = webhook
        .send("fraud/1.0/2026-01-01T00:12:00Z".into(), body.into())
        .await
        .unwrap();
    assert!(delivered);
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 3);
    let accepted = endpoint.accepted.lock().unwrap().clone();
    assert_eq!(accepted, vec![("secret".to_string(), body.to_string())]);
    let text = telemetry.render();
    assert!(
        text.contains(r#"feedback_loop_webhook_deliveries_total{result="delivered"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"feedback_loop_webhook_deliveries_total{result="retried"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts_without_blocking() {
    let telemetry = Arc::new(Telemetry::new().unwrap());
    let webhook = RetrainWebhook::new(
        WebhookConfig {
            // Nothing listens on port 9 (discard) here: connection refused.
            url: "http://127.0.0.1:9/retrain".into(),
            headers: Default::default(),
            timeout: Duration::from_millis(500),
            max_attempts: 2,
        },
        telemetry.clone(),
    )
    .unwrap();
    assert!(!webhook.deliver("t", "{}".into()).await);
    assert!(telemetry
        .render()
        .contains(r#"feedback_loop_webhook_deliveries_total{result="failed"} 1"#));
}
