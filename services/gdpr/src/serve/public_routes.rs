//! The routes open without the admin token: health, readiness, metrics,
//! this API's OpenAPI document, and package downloads by link.

use super::app::Shared;
use crate::core::Core;
use crate::error::{Error, Result};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

pub(super) async fn package(
    State(app): State<Shared>,
    Path(token): Path<String>,
) -> Result<Response> {
    crate::http_shared::package_download(&app.settings, token).await
}

#[derive(Serialize)]
pub(super) struct Health {
    status: &'static str,
}

/// This API's OpenAPI document (the schema the API fuzz run is driven by).
pub(super) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready when the database and the signing key open and Redis answers: what
/// every request, export and erasure needs.
pub(super) async fn readyz(State(app): State<Shared>) -> Response {
    let settings = app.settings.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let core = Core::open(&settings)?;
        let mut redis = core.redis()?;
        redis::cmd("PING")
            .query::<String>(&mut redis)
            .map_err(|e| Error::Unavailable(format!("redis: {e}")))
    })
    .await;
    match checked {
        Ok(Ok(_)) => {
            Json(json!({"status": "ready", "database": "ok", "redis": "ok"})).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!("not ready: {e}");
            (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "error": {"code": e.code(), "message": e.to_string()}})),
        )
            .into_response()
        }
        Err(e) => Error::Internal(format!("readiness check: {e}")).into_response(),
    }
}

pub(super) async fn render_metrics(State(app): State<Shared>) -> Response {
    let app = app.clone();
    match tokio::task::spawn_blocking(move || app.metrics.render(&app.settings)).await {
        Ok(response) => response,
        Err(e) => Error::Internal(format!("metrics: {e}")).into_response(),
    }
}
