//! The admin routes on the records kept beside requests: contact
//! addresses, legal holds, consents, and the audit log's verification.

use super::app::{blocking, body, Shared};
use crate::consent::{self, Purpose};
use crate::error::Result;
use crate::{audit, holds};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ContactBody {
    email: String,
    source: String,
}

pub(super) async fn set_contact(
    State(app): State<Shared>,
    Path(user): Path<String>,
    b: std::result::Result<Json<ContactBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    blocking(&app, move |core| {
        crate::contacts::set(core, &user, &b.email, &b.source)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HoldBody {
    user: String,
    category: String,
    reason: String,
}

pub(super) async fn add_hold(
    State(app): State<Shared>,
    b: std::result::Result<Json<HoldBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    blocking(&app, move |core| {
        holds::add(core, &b.user, &b.category, &b.reason)
    })
    .await
}

pub(super) async fn release_hold(
    State(app): State<Shared>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| holds::release(core, id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserQuery {
    #[serde(default)]
    user: Option<String>,
}

pub(super) async fn list_holds(
    State(app): State<Shared>,
    Query(q): Query<UserQuery>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| holds::list(core, q.user.as_deref())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentBody {
    purpose: String,
    granted: bool,
    notice_version: String,
    method: String,
}

pub(super) async fn record_consent(
    State(app): State<Shared>,
    Path(user): Path<String>,
    b: std::result::Result<Json<ConsentBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    let purpose = Purpose::parse(&b.purpose)?;
    blocking(&app, move |core| {
        consent::record(
            core,
            &user,
            purpose,
            b.granted,
            &b.notice_version,
            &b.method,
        )
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    #[serde(default)]
    history: bool,
}

pub(super) async fn show_consents(
    State(app): State<Shared>,
    Path(user): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| {
        if q.history {
            consent::history(core, &user)
        } else {
            consent::current(core, &user)
        }
    })
    .await
}

pub(super) async fn verify_audit(State(app): State<Shared>) -> Result<impl IntoResponse> {
    blocking(&app, |core| audit::verify(&core.conn, &core.keys)).await
}
