//! The admin routes on data-subject requests: filing, identity
//! verification, deadlines, rejection, export and erasure.

use super::app::{blocking, body, Shared};
use crate::erase;
use crate::error::Result;
use crate::export::{self, Format};
use crate::notify::Notifier;
use crate::requests::{self, Kind};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    kind: String,
    user: String,
    #[serde(default)]
    received_at: Option<String>,
}

pub(super) async fn create(
    State(app): State<Shared>,
    b: std::result::Result<Json<CreateBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    let kind = Kind::parse(&b.kind)?;
    let settings = app.settings.clone();
    let out = blocking(&app, move |core| {
        let notifier = Notifier::from_settings(&settings)?;
        requests::create(core, &notifier, kind, &b.user, b.received_at.as_deref())
    })
    .await?;
    Ok((StatusCode::CREATED, out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    #[serde(default)]
    overdue: bool,
    #[serde(default)]
    status: Option<String>,
}

pub(super) async fn list(
    State(app): State<Shared>,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| {
        requests::list(core, q.overdue, q.status.as_deref())
    })
    .await
}

pub(super) async fn status(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| requests::get(core, &id)).await
}

pub(super) async fn send_code(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let settings = app.settings.clone();
    blocking(&app, move |core| {
        let notifier = Notifier::from_settings(&settings)?;
        requests::send_code(core, &notifier, &id)?;
        requests::get(core, &id)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyBody {
    code: String,
}

pub(super) async fn verify(
    State(app): State<Shared>,
    Path(id): Path<String>,
    b: std::result::Result<Json<VerifyBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    blocking(&app, move |core| requests::verify(core, &id, &b.code)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtendBody {
    months: i64,
    reason: String,
}

pub(super) async fn extend(
    State(app): State<Shared>,
    Path(id): Path<String>,
    b: std::result::Result<Json<ExtendBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    blocking(&app, move |core| {
        requests::extend(core, &id, b.months, &b.reason)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasonBody {
    reason: String,
}

pub(super) async fn reject(
    State(app): State<Shared>,
    Path(id): Path<String>,
    b: std::result::Result<Json<ReasonBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    blocking(&app, move |core| requests::reject(core, &id, &b.reason)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportBody {
    format: String,
}

pub(super) async fn export_request(
    State(app): State<Shared>,
    Path(id): Path<String>,
    b: std::result::Result<Json<ExportBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let format = Format::parse(&body(b)?.format)?;
    blocking(&app, move |core| export::run(core, &id, format)).await
}

pub(super) async fn erase_request(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| erase::run(core, &id)).await
}

pub(super) async fn steps(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| {
        requests::get(core, &id)?;
        erase::steps(core, &id)
    })
    .await
}
