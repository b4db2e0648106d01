//! The state every handler shares, and the helpers every handler uses:
//! blocking work off the async workers, JSON bodies read as 400s.

use crate::config::Settings;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use axum::extract::rejection::JsonRejection;
use axum::Json;
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub(super) struct App {
    pub(super) settings: Settings,
    pub(super) admin_token: String,
    pub(super) metrics: Metrics,
}

pub(super) type Shared = Arc<App>;

/// Runs blocking work (SQLite, Redis, connectors) off the async workers.
pub(super) async fn blocking<T, F>(app: &Shared, f: F) -> Result<Json<T>>
where
    T: Send + 'static,
    F: FnOnce(&mut Core) -> Result<T> + Send + 'static,
{
    crate::http_shared::with_core(&app.settings, f)
        .await
        .map(Json)
}

pub(super) fn body<T: DeserializeOwned>(
    b: std::result::Result<Json<T>, JsonRejection>,
) -> Result<T> {
    b.map(|Json(v)| v)
        .map_err(|e| Error::Invalid(e.body_text()))
}
