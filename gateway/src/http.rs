//! The gateway's own HTTP listener: `/health` (each dependency) and `/metrics`.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::health::Health;

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: PrometheusHandle,
}

pub fn router(health: Health, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/health", get(health_route))
        .route("/metrics", get(metrics_route))
        .with_state(AppState { health, metrics })
}

async fn health_route(State(state): State<AppState>) -> Response {
    let report = state.health.report();
    // Down only when messages cannot be stored; a missing Redis or broker degrades.
    let status = if report.status == "down" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, axum::Json(report)).into_response()
}

async fn metrics_route(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&state.metrics),
    )
        .into_response()
}

/// Serves until `stop` turns true.
pub async fn serve(
    listen: SocketAddr,
    health: Health,
    metrics: PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let app = router(health, metrics);
    Ok(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("http listener failed: {error}");
        }
    }))
}
