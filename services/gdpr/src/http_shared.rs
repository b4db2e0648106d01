//! What the two HTTP front ends (`serve`, the operator API, and
//! `selfservice`, the subjects' API) answer alike: work on the database off
//! the async workers, and a package download.

use crate::config::Settings;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::export;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Runs blocking work (SQLite, Redis, connectors) on its own `Core`, off the
/// async workers.
pub async fn with_core<T, F>(settings: &Settings, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Core) -> Result<T> + Send + 'static,
{
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || {
        let mut core = Core::open(&settings)?;
        f(&mut core)
    })
    .await
    .map_err(|e| Error::Internal(format!("worker: {e}")))?
}

/// The package behind a download link: its media type (`nosniff`), an
/// attachment name, and `no-store` (personal data is never kept by a cache
/// on the way).
pub async fn package_download(settings: &Settings, token: String) -> Result<Response> {
    let (format, bytes) =
        with_core(settings, move |core| export::open_package(core, &token)).await?;
    let content_type = match format.as_str() {
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        _ => "application/json",
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"personal-data.{format}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
            // A browser takes the package for what it says it is, never
            // sniffs it into something it would run.
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        bytes,
    )
        .into_response())
}
