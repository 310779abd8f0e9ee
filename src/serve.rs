//! Serving: the HTTP endpoints and the Kafka service loop together, until told to stop,
//! then a graceful stop bounded by `shutdown.timeout`. Shared by `run` and `demo`.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use feedback_loop_core::settings::ScaleMode;

use crate::config::LoadedConfig;
use crate::shared_state::SharedState;
use crate::shutdown::Shutdown;

/// Serves on `listener` and runs the service until `stop` resolves (or the service stops by
/// itself, an error at start say). The stop is graceful: stop consuming, checkpoint, flush,
/// commit. Past `shutdown.timeout` the process exits with code 1 without the final
/// checkpoint; offsets are only committed after a stored checkpoint, so nothing is lost:
/// the next start resumes from the previous one.
pub async fn serve(
    loaded: LoadedConfig,
    state: Arc<SharedState>,
    listener: TcpListener,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (notify, _) = broadcast::channel(1);
    let http = tokio::spawn(crate::http::serve(
        listener,
        state.clone(),
        Shutdown::new(notify.subscribe()),
    ));
    let deadline = loaded.config.shutdown.timeout.0;
    let service_shutdown = Shutdown::new(notify.subscribe());
    let mut service = match loaded.config.scale.mode {
        ScaleMode::Single => tokio::spawn(crate::pipeline::run(loaded, state, service_shutdown)),
        ScaleMode::Partitioned => tokio::spawn(crate::scale::run(loaded, state, service_shutdown)),
    };
    let result = tokio::select! {
        _ = stop => {
            let _ = notify.send(());
            match tokio::time::timeout(deadline, &mut service).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!(
                        timeout = ?deadline,
                        "graceful stop exceeded shutdown.timeout; exiting without the final \
                         checkpoint (the previous one stands)"
                    );
                    std::process::exit(1);
                }
            }
        }
        result = &mut service => result,
    };
    let _ = notify.send(());
    let _ = http.await;
    result.context("service task")?
}

/// Binds the HTTP address `http.listen` names (the error says which key to change).
pub async fn bind(listen: &str, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} ({key})"))
}
