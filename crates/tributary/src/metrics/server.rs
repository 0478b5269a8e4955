//! The HTTP endpoints of `tributary run`: `/metrics` (Prometheus text),
//! `/healthz` (200 while the pipeline can make progress, 503 with the reason
//! when it cannot: the source reader ended, commits have not succeeded for
//! longer than `metrics.health_commit_stall_secs`, shutting down) and
//! `/readyz` (200 once streaming, naming stopped tables; 503 before), and
//! `POST /resnapshot` (body: `database.table`), which asks the running
//! pipeline to copy that table again while the others stream
//! (`tributary resnapshot`, [`crate::pipeline::recopy`]).

use super::{Metrics, PipelineState};
use crate::pipeline::recopy::RecopyRequest;
use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `listen` now (so a taken port fails start-up with one line naming
/// the address and the config key) and serves in the background.
/// `recopy` takes `POST /resnapshot` requests to the runner.
pub async fn serve(
    listen: &str,
    metrics: Metrics,
    recopy: Option<mpsc::Sender<RecopyRequest>>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("metrics.listen: cannot serve metrics on {listen}: {e}; set `listen` in the [metrics] section to a free address")
    })?;
    let address = listener.local_addr().context("metrics.listen: local address")?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .with_state(metrics)
        .route("/resnapshot", post(resnapshot).with_state(recopy));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });
    tracing::info!(%address, "serving /metrics, /healthz, /readyz and POST /resnapshot");
    Ok(address)
}

async fn metrics_text(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode())
}

async fn healthz(State(metrics): State<Metrics>) -> impl IntoResponse {
    match metrics.health().check() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {reason}\n")),
    }
}

/// Hands the table named in the body to the runner and answers with its
/// one-line reply: 202 when the copy started, 409 when it did not.
async fn resnapshot(State(recopy): State<Option<mpsc::Sender<RecopyRequest>>>, body: String) -> impl IntoResponse {
    let Some(recopy) = recopy else {
        return (StatusCode::NOT_FOUND, "this process copies no tables\n".to_string());
    };
    let (reply, answer) = oneshot::channel();
    let request = RecopyRequest { table: body.trim().to_string(), reply };
    if recopy.send(request).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the pipeline is stopping\n".to_string());
    }
    match answer.await {
        Ok(Ok(line)) => (StatusCode::ACCEPTED, format!("{line}\n")),
        Ok(Err(line)) => (StatusCode::CONFLICT, format!("{line}\n")),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the pipeline stopped before answering\n".to_string()),
    }
}

/// 200 while streaming; tables stopped by a schema change are named in the
/// body (`stopped: <table>: <reason>` lines) while the others stream.
async fn ready(State(metrics): State<Metrics>) -> impl IntoResponse {
    match metrics.state() {
        PipelineState::Streaming => {
            let stopped = metrics.health().stopped_tables();
            let mut body = if stopped.is_empty() {
                "ready: streaming\n".to_string()
            } else {
                format!("ready: streaming; {} table(s) stopped\n", stopped.len())
            };
            for (table, reason) in stopped {
                body.push_str(&format!("stopped: {table}: {reason}\n"));
            }
            (StatusCode::OK, body)
        }
        state => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", state.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Status line and body of `GET path` over a plain HTTP/1.0 request.
    async fn get(address: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let status = text.split(' ').nth(1).unwrap().parse().unwrap();
        (status, text.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
    }

    #[tokio::test]
    async fn readyz_is_503_until_streaming_and_again_while_stopping() {
        let metrics = Metrics::new();
        let address = serve("127.0.0.1:0", metrics.clone(), None).await.unwrap();
        assert_eq!(get(address, "/readyz").await, (503, "not ready: starting\n".to_string()));
        metrics.set_state(PipelineState::Snapshot);
        assert_eq!(get(address, "/readyz").await, (503, "not ready: snapshot\n".to_string()));
        metrics.set_state(PipelineState::Streaming);
        assert_eq!(get(address, "/readyz").await, (200, "ready: streaming\n".to_string()));
        assert_eq!(get(address, "/healthz").await, (200, "ok\n".to_string()));
        metrics.table_stopped(&tributary_core::TableId::new("shop", "orders"), "column code: int -> varchar");
        assert_eq!(
            get(address, "/readyz").await,
            (200, "ready: streaming; 1 table(s) stopped\nstopped: shop.orders: column code: int -> varchar\n".into())
        );
        metrics.set_state(PipelineState::Stopping);
        assert_eq!(get(address, "/readyz").await.0, 503);
        assert_eq!(get(address, "/healthz").await, (503, "unhealthy: shutting down\n".to_string()));
    }

    #[tokio::test]
    async fn healthz_fails_naming_the_reason_when_the_source_reader_ended() {
        let metrics = Metrics::new();
        let address = serve("127.0.0.1:0", metrics.clone(), None).await.unwrap();
        metrics.set_state(PipelineState::Streaming);
        metrics.health().set_fatal("the source stream ended unexpectedly");
        assert_eq!(get(address, "/healthz").await, (503, "unhealthy: the source stream ended unexpectedly\n".into()));
    }
}
