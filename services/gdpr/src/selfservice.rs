//! The data subject's own way in: requests filed through the proxy with the
//! subject's token. The auth plugin verifies the token and sets
//! `x-auth-sub` (dropping any copy a client sent); that verified subject
//! is the identity, so the request starts verified and needs no code.
//!
//! Served on its own listener (`--self-listen`) under `/privacy/`, the
//! path the proxy routes there unchanged; only the proxy may reach it: whoever can reach it directly could name any subject, exactly as
//! with the upstreams that trust the same header. The operator API and its
//! token never face clients.

use crate::config::Settings;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::export::{self, Format};
use crate::requests::{self, Kind};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use serde::Deserialize;

/// The header the auth plugin sets to the token's verified `sub`.
pub const SUBJECT_HEADER: &str = "x-auth-sub";

fn subject(headers: &HeaderMap) -> Result<String> {
    headers
        .get(SUBJECT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::Unauthorized(
                "no verified subject: send the request through the proxy with your token".into(),
            )
        })
}

async fn blocking<T, F>(settings: &Settings, f: F) -> Result<Json<T>>
where
    T: Send + 'static,
    F: FnOnce(&mut Core) -> Result<T> + Send + 'static,
{
    crate::http_shared::with_core(settings, f).await.map(Json)
}

fn body<T>(b: std::result::Result<Json<T>, JsonRejection>) -> Result<T> {
    b.map(|Json(v)| v)
        .map_err(|e| Error::Invalid(e.body_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    kind: String,
}

async fn file(
    State(settings): State<Settings>,
    headers: HeaderMap,
    b: std::result::Result<Json<FileBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let user = subject(&headers)?;
    let kind = Kind::parse(&body(b)?.kind)?;
    let out = blocking(&settings, move |core| {
        requests::create_by_subject(core, kind, &user)
    })
    .await?;
    Ok((StatusCode::CREATED, out))
}

async fn list(State(settings): State<Settings>, headers: HeaderMap) -> Result<impl IntoResponse> {
    let user = subject(&headers)?;
    blocking(&settings, move |core| {
        requests::list_for_subject(core, &user)
    })
    .await
}

async fn status(
    State(settings): State<Settings>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let user = subject(&headers)?;
    blocking(&settings, move |core| {
        requests::get_for_subject(core, &id, &user)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    email: String,
}

/// The subject records their own address (a claim made with their verified
/// identity): where codes for operator-filed requests about them go.
async fn contact(
    State(settings): State<Settings>,
    headers: HeaderMap,
    b: std::result::Result<Json<ContactBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let user = subject(&headers)?;
    let email = body(b)?.email;
    blocking(&settings, move |core| {
        crate::contacts::set(
            core,
            &user,
            &email,
            "the subject, through the proxy with their own token",
        )
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    format: String,
}

async fn export_own(
    State(settings): State<Settings>,
    Extension(links): Extension<Links>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: std::result::Result<Json<ExportBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let user = subject(&headers)?;
    let format = Format::parse(&body(b)?.format)?;
    let base = links.0.clone();
    blocking(&settings, move |core| {
        requests::get_for_subject(core, &id, &user)?;
        let done = export::run(core, &id, format)?;
        // The download goes through the proxy like the request did.
        let token = done.link.rsplit('/').next().unwrap_or_default();
        Ok(serde_json::json!({
            "request_id": done.request_id, "format": done.format,
            "link": format!("{}/packages/{token}", base.trim_end_matches('/')),
            "expires_at": done.expires_at, "records": done.records, "categories": done.categories,
        }))
    })
    .await
}

async fn package(
    State(settings): State<Settings>,
    Path(token): Path<String>,
) -> Result<axum::response::Response> {
    crate::http_shared::package_download(&settings, token).await
}

/// Where the subject downloads packages: the self-service API's address
/// as the subject sees it through the proxy.
#[derive(Clone)]
struct Links(String);

pub fn router(settings: Settings, public_url: String) -> Router {
    Router::new()
        .route("/privacy/requests", post(file).get(list))
        .route("/privacy/requests/{id}", get(status))
        .route("/privacy/requests/{id}/export", post(export_own))
        .route("/privacy/packages/{token}", get(package))
        .route("/privacy/contact", axum::routing::put(contact))
        .layer(Extension(Links(public_url)))
        // Personal answers: no shared cache (the proxy's included) keeps one.
        .layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                response.headers_mut().insert(
                    axum::http::header::CACHE_CONTROL,
                    axum::http::HeaderValue::from_static("no-store"),
                );
                response
            },
        ))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .with_state(settings)
}
