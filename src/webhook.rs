//! The optional retrain webhook: each retrain trigger is POSTed as JSON to
//! `[retrain.webhook] url`, in a task of its own so the pipeline never waits for it.
//! Failed attempts (transport error, timeout, non-2xx status) are retried with doubling
//! backoff up to `max_attempts`; every outcome is counted and logged.

use std::sync::Arc;
use std::time::Duration;

use feedback_loop_core::settings::WebhookConfig;

use crate::telemetry::events::WebhookAttempt;
use crate::telemetry::Telemetry;

/// First retry delay; it doubles with each attempt.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct RetrainWebhook {
    client: reqwest::Client,
    config: WebhookConfig,
    telemetry: Arc<Telemetry>,
}

impl RetrainWebhook {
    pub fn new(config: WebhookConfig, telemetry: Arc<Telemetry>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .build()?;
        Ok(RetrainWebhook {
            client,
            config,
            telemetry,
        })
    }

    /// Starts delivering one trigger; returns at once.
    pub fn send(&self, trigger_id: String, body: String) -> tokio::task::JoinHandle<bool> {
        let this = self.clone();
        tokio::spawn(async move { this.deliver(&trigger_id, body).await })
    }

    /// Delivers with retries; true when the endpoint accepted it.
    pub async fn deliver(&self, trigger_id: &str, body: String) -> bool {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=self.config.max_attempts {
            let mut request = self
                .client
                .post(&self.config.url)
                .header("content-type", "application/json")
                .header("idempotency-key", trigger_id)
                .body(body.clone());
            for (name, value) in &self.config.headers {
                request = request.header(name, value);
            }
            let failure = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    self.telemetry.emit(WebhookAttempt::Delivered {
                        trigger_id,
                        attempt,
                    });
                    return true;
                }
                Ok(response) => format!("status {}", response.status()),
                Err(error) => error.to_string(),
            };
            self.telemetry.emit(WebhookAttempt::Failed {
                trigger_id,
                attempt,
                error: &failure,
            });
            if attempt < self.config.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
        self.telemetry.emit(WebhookAttempt::GaveUp {
            trigger_id,
            attempts: self.config.max_attempts,
        });
        false
    }
}
