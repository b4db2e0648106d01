//! The audit stream and per-user key index (operator).

use super::check_id;
use crate::app_state::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use axum::extract::{Path, State};
use axum::Json;
use meshguard_api::audit::{AuditPage, UserIndex};
use serde::Deserialize;

const MAX_PAGE: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

pub async fn read(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let since = q.since.unwrap_or_else(|| "0".to_string());
    if !super::is_stream_id(&since) {
        return Err(ApiError::bad_request(
            "since must be an audit event id or 0",
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let events = state.store.read_audit(&since, limit).await?;
    let cursor = events.last().map_or(since, |e| e.id.clone());
    Ok(Json(AuditPage { cursor, events }))
}

pub async fn user_index(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> ApiResult<Json<UserIndex>> {
    check_id("user", &user)?;
    let keys = state.store.user_index(&user).await?;
    Ok(Json(UserIndex { user, keys }))
}
