//! The admin bearer token check in front of every admin route.

use super::app::Shared;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub(super) async fn auth(
    State(app): State<Shared>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = app.admin_token.as_bytes();
    let ok = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected)
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "unauthorized", "message": "a valid admin bearer token is required"}})),
        )
            .into_response();
    }
    next.run(req).await
}
