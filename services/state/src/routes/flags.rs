//! Flag definitions (operator) and the versioned snapshot (plugins).

use super::actor;
use crate::app_state::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::store::NewAuditEvent;
use axum::extract::{Path, State};
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meshguard_api::error::codes;
use meshguard_api::flags::{valid_key, FlagChanged, FlagDefinition, FlagImport, FlagSnapshot};
use serde::Deserialize;
use serde_json::json;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_FLAG, message)
}

fn check_key(key: &str) -> ApiResult<()> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(invalid(
            "flag keys are 1-128 characters of A-Z a-z 0-9 . _ -",
        ))
    }
}

async fn audit(state: &AppState, actor: &str, action: &str, subject: &str, version: u64) {
    let event = NewAuditEvent {
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        details: json!({ "version": version }),
    };
    if let Err(e) = state.store.audit(&event).await {
        tracing::error!("audit of {action} not written: {e}");
    }
}

pub async fn put_flag(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    ApiJson(mut flag): ApiJson<FlagDefinition>,
) -> ApiResult<Json<FlagChanged>> {
    check_key(&key)?;
    if flag.key.is_empty() {
        flag.key.clone_from(&key);
    } else if flag.key != key {
        return Err(invalid("key in the body differs from the key in the path"));
    }
    flag.validate().map_err(|e| invalid(e.to_string()))?;
    let (version, _) = state.store.change_flags(&[flag], &[], false).await?;
    audit(
        &state,
        &actor(&headers, "admin"),
        "flag.updated",
        &key,
        version,
    )
    .await;
    Ok(Json(FlagChanged {
        key,
        version,
        changed: true,
    }))
}

pub async fn get_flag(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<FlagDefinition>> {
    check_key(&key)?;
    let snapshot = state.store.flag_snapshot().await?;
    snapshot
        .flags
        .into_iter()
        .find(|f| f.key == key)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no flag {key:?}")))
}

pub async fn delete_flag(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<Json<FlagChanged>> {
    check_key(&key)?;
    let snapshot = state.store.flag_snapshot().await?;
    if !snapshot.flags.iter().any(|f| f.key == key) {
        return Err(ApiError::not_found(format!("no flag {key:?}")));
    }
    let (version, changed) = state
        .store
        .change_flags(&[], std::slice::from_ref(&key), false)
        .await?;
    audit(
        &state,
        &actor(&headers, "admin"),
        "flag.deleted",
        &key,
        version,
    )
    .await;
    Ok(Json(FlagChanged {
        key,
        version,
        changed,
    }))
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<FlagSnapshot>> {
    Ok(Json(state.store.flag_snapshot().await?))
}

pub async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(import): ApiJson<FlagImport>,
) -> ApiResult<Json<FlagSnapshot>> {
    for (i, flag) in import.flags.iter().enumerate() {
        flag.validate()
            .map_err(|e| invalid(format!("flags[{i}].{e}")))?;
        if import.flags.iter().take(i).any(|f| f.key == flag.key) {
            return Err(invalid(format!(
                "flags[{i}].key: {:?} listed twice",
                flag.key
            )));
        }
    }
    let (version, _) = state
        .store
        .change_flags(&import.flags, &[], import.replace)
        .await?;
    audit(
        &state,
        &actor(&headers, "admin"),
        "flag.imported",
        &format!("{} flags", import.flags.len()),
        version,
    )
    .await;
    Ok(Json(state.store.flag_snapshot().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    #[serde(default)]
    version: Option<u64>,
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version a plugin says it has, from `?version=` or `If-None-Match`.
fn known_version(headers: &HeaderMap, q: &SnapshotQuery) -> Option<u64> {
    q.version.or_else(|| {
        let v = headers.get(IF_NONE_MATCH)?.to_str().ok()?;
        v.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse()
            .ok()
    })
}

pub async fn snapshot(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> ApiResult<Response> {
    if let Some(known) = known_version(&headers, &q) {
        let current = state.store.flag_version().await?;
        if known == current {
            return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag(current))]).into_response());
        }
    }
    let snapshot = state.store.flag_snapshot().await?;
    let tag = etag(snapshot.version);
    let version = HeaderValue::from(snapshot.version);
    let mut response = Json(snapshot).into_response();
    response.headers_mut().insert(ETAG, tag);
    response
        .headers_mut()
        .insert(meshguard_api::VERSION_HEADER, version);
    Ok(response)
}
