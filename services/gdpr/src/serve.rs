//! `serve`: the same operations over HTTP (admin bearer token), package
//! downloads by link (the unguessable token is the credential), and a
//! background tick that prunes packages, sweeps cutoffs, ingests the state
//! audit stream and seals checkpoints.

use crate::config::{read_secret, Settings};
use crate::consent::{self, Purpose};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::export::{self, Format};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::requests::{self, Kind};
use crate::{audit, erase, holds, ingest};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[arg(long, env = "MESHGUARD_GDPR_LISTEN", default_value = "127.0.0.1:7071")]
    pub listen: String,
    /// File holding the API's admin token (or set MESHGUARD_GDPR_ADMIN_TOKEN).
    #[arg(long, env = "MESHGUARD_GDPR_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Log lines as text or as one JSON object each (level: MESHGUARD_LOG).
    #[arg(long, env = "MESHGUARD_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: meshguard_service_kit::logging::LogFormat,
    /// Seconds between background runs (package pruning, sweep, audit ingest, checkpoint).
    #[arg(long, env = "MESHGUARD_GDPR_TICK_S", default_value_t = 60)]
    pub tick_s: u64,
    /// Also serve the data subjects' self-service API here (`x-auth-sub` set
    /// by the proxy's auth plugin is the identity): only the proxy may reach it.
    #[arg(long, env = "MESHGUARD_GDPR_SELF_LISTEN")]
    pub self_listen: Option<String>,
    /// The self-service API as subjects reach it through the proxy (base of
    /// their download links): the proxy routes `/privacy/` to `--self-listen`.
    #[arg(
        long,
        env = "MESHGUARD_GDPR_SELF_PUBLIC_URL",
        default_value = "/privacy"
    )]
    pub self_public_url: String,
}

struct App {
    settings: Settings,
    admin_token: String,
    metrics: Metrics,
}

type Shared = Arc<App>;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Writers queued past the busy timeout: overload, not a fault;
            // the same request succeeds when retried.
            Error::Db(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Config(_) | Error::Db(_) | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response = (
            status,
            Json(json!({"error": {"code": self.code(), "message": self.to_string()}})),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Runs blocking work (SQLite, Redis, connectors) off the async workers.
async fn blocking<T, F>(app: &Shared, f: F) -> Result<Json<T>>
where
    T: Send + 'static,
    F: FnOnce(&mut Core) -> Result<T> + Send + 'static,
{
    let settings = app.settings.clone();
    tokio::task::spawn_blocking(move || {
        let mut core = Core::open(&settings)?;
        f(&mut core)
    })
    .await
    .map_err(|e| Error::Internal(format!("worker: {e}")))?
    .map(Json)
}

fn body<T: DeserializeOwned>(b: std::result::Result<Json<T>, JsonRejection>) -> Result<T> {
    b.map(|Json(v)| v)
        .map_err(|e| Error::Invalid(e.body_text()))
}

async fn auth(State(app): State<Shared>, headers: HeaderMap, req: Request, next: Next) -> Response {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    kind: String,
    user: String,
    #[serde(default)]
    received_at: Option<String>,
}

async fn create(
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
struct ContactBody {
    email: String,
    source: String,
}

async fn set_contact(
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
struct ListQuery {
    #[serde(default)]
    overdue: bool,
    #[serde(default)]
    status: Option<String>,
}

async fn list(State(app): State<Shared>, Query(q): Query<ListQuery>) -> Result<impl IntoResponse> {
    blocking(&app, move |core| {
        requests::list(core, q.overdue, q.status.as_deref())
    })
    .await
}

async fn status(State(app): State<Shared>, Path(id): Path<String>) -> Result<impl IntoResponse> {
    blocking(&app, move |core| requests::get(core, &id)).await
}

async fn send_code(State(app): State<Shared>, Path(id): Path<String>) -> Result<impl IntoResponse> {
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
struct VerifyBody {
    code: String,
}

async fn verify(
    State(app): State<Shared>,
    Path(id): Path<String>,
    b: std::result::Result<Json<VerifyBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    blocking(&app, move |core| requests::verify(core, &id, &b.code)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    months: i64,
    reason: String,
}

async fn extend(
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
struct ReasonBody {
    reason: String,
}

async fn reject(
    State(app): State<Shared>,
    Path(id): Path<String>,
    b: std::result::Result<Json<ReasonBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    blocking(&app, move |core| requests::reject(core, &id, &b.reason)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    format: String,
}

async fn export_request(
    State(app): State<Shared>,
    Path(id): Path<String>,
    b: std::result::Result<Json<ExportBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let format = Format::parse(&body(b)?.format)?;
    blocking(&app, move |core| export::run(core, &id, format)).await
}

async fn erase_request(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| erase::run(core, &id)).await
}

async fn steps(State(app): State<Shared>, Path(id): Path<String>) -> Result<impl IntoResponse> {
    blocking(&app, move |core| {
        requests::get(core, &id)?;
        erase::steps(core, &id)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    user: String,
    category: String,
    reason: String,
}

async fn add_hold(
    State(app): State<Shared>,
    b: std::result::Result<Json<HoldBody>, JsonRejection>,
) -> Result<impl IntoResponse> {
    let b = body(b)?;
    blocking(&app, move |core| {
        holds::add(core, &b.user, &b.category, &b.reason)
    })
    .await
}

async fn release_hold(State(app): State<Shared>, Path(id): Path<i64>) -> Result<impl IntoResponse> {
    blocking(&app, move |core| holds::release(core, id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserQuery {
    #[serde(default)]
    user: Option<String>,
}

async fn list_holds(
    State(app): State<Shared>,
    Query(q): Query<UserQuery>,
) -> Result<impl IntoResponse> {
    blocking(&app, move |core| holds::list(core, q.user.as_deref())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    purpose: String,
    granted: bool,
    notice_version: String,
    method: String,
}

async fn record_consent(
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
struct HistoryQuery {
    #[serde(default)]
    history: bool,
}

async fn show_consents(
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

async fn verify_audit(State(app): State<Shared>) -> Result<impl IntoResponse> {
    blocking(&app, |core| audit::verify(&core.conn, &core.keys)).await
}

async fn package(State(app): State<Shared>, Path(token): Path<String>) -> Result<Response> {
    let settings = app.settings.clone();
    let (format, bytes) = tokio::task::spawn_blocking(move || {
        let core = Core::open(&settings)?;
        export::open_package(&core, &token)
    })
    .await
    .map_err(|e| Error::Internal(format!("worker: {e}")))??;
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
        ],
        bytes,
    )
        .into_response())
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// This API's OpenAPI document (the schema the API fuzz run is driven by).
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

pub fn router(settings: Settings, admin_token: String, metrics: Metrics) -> Router {
    let app: Shared = Arc::new(App {
        settings,
        admin_token,
        metrics: metrics.clone(),
    });
    let admin = Router::new()
        .route("/v1/requests", post(create).get(list))
        .route("/v1/requests/{id}", get(status))
        .route("/v1/requests/{id}/send-code", post(send_code))
        .route("/v1/requests/{id}/verify", post(verify))
        .route("/v1/requests/{id}/extend", post(extend))
        .route("/v1/requests/{id}/reject", post(reject))
        .route("/v1/requests/{id}/export", post(export_request))
        .route("/v1/requests/{id}/erase", post(erase_request))
        .route("/v1/requests/{id}/steps", get(steps))
        .route("/v1/holds", post(add_hold).get(list_holds))
        .route("/v1/holds/{id}", delete(release_hold))
        .route(
            "/v1/consents/{user}",
            post(record_consent).get(show_consents),
        )
        .route("/v1/contacts/{user}", post(set_contact))
        .route("/v1/audit/verify", get(verify_audit))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/v1/packages/{token}", get(package))
        .route("/v1/openapi.json", get(openapi))
        .merge(admin)
        .route_layer(middleware::from_fn_with_state(
            metrics.http.clone(),
            meshguard_service_kit::http_metrics::track,
        ))
        .layer(middleware::from_fn(
            meshguard_service_kit::request_id::middleware,
        ))
        .with_state(app)
}

/// Ready when the database and the signing key open and Redis answers: what
/// every request, export and erasure needs.
async fn readyz(State(app): State<Shared>) -> Response {
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

async fn render_metrics(State(app): State<Shared>) -> Response {
    let app = app.clone();
    match tokio::task::spawn_blocking(move || app.metrics.render(&app.settings)).await {
        Ok(response) => response,
        Err(e) => Error::Internal(format!("metrics: {e}")).into_response(),
    }
}

fn admin_token(args: &ServeArgs) -> Result<String> {
    let token = match &args.admin_token_file {
        Some(path) => read_secret(path)?,
        None => std::env::var("MESHGUARD_GDPR_ADMIN_TOKEN").map_err(|_| {
            Error::Config("set MESHGUARD_GDPR_ADMIN_TOKEN or --admin-token-file".into())
        })?,
    };
    if token.len() < 16 {
        return Err(Error::Config(
            "the admin token must hold at least 16 characters".into(),
        ));
    }
    Ok(token)
}

/// One background pass; failures are reported and retried next tick.
fn tick(settings: &Settings) {
    let mut core = match Core::open(settings) {
        Ok(c) => c,
        Err(e) => return tracing::error!("tick: {e}"),
    };
    if let Err(e) = export::prune_packages(&core) {
        tracing::warn!("tick: package pruning: {e}");
    }
    if let Err(e) = erase::sweep(&mut core) {
        tracing::warn!("tick: sweep: {e}");
    }
    if settings.state_token().is_ok() {
        if let Err(e) = ingest::run(&mut core) {
            tracing::warn!("tick: state audit ingest: {e}");
        }
    }
    if let Err(e) = audit::checkpoint(&core.conn, &core.keys) {
        tracing::warn!("tick: checkpoint: {e}");
    }
}

pub fn main(settings: Settings, args: ServeArgs) -> Result<()> {
    meshguard_service_kit::logging::init(args.log_format, "MESHGUARD_LOG");
    let token = admin_token(&args)?;
    // Fail at start, not at the first request, on a bad key or database.
    Core::open(&settings)?;
    settings.connectors()?;
    let metrics = Metrics::new().map_err(|e| Error::Internal(format!("metrics: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| Error::Config(format!("listen {}: {e}", args.listen)))?;
        tracing::info!("meshguard-gdpr listening on {}", args.listen);
        if let Some(addr) = &args.self_listen {
            let own = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Config(format!("self-listen {addr}: {e}")))?;
            tracing::info!("meshguard-gdpr self-service listening on {addr}");
            let app = crate::selfservice::router(settings.clone(), args.self_public_url.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(own, app).await {
                    tracing::error!("self-service server: {e}");
                }
            });
        }
        let tick_settings = settings.clone();
        let period = Duration::from_secs(args.tick_s.max(1));
        tokio::spawn(async move {
            loop {
                let s = tick_settings.clone();
                let _ = tokio::task::spawn_blocking(move || tick(&s)).await;
                tokio::time::sleep(period).await;
            }
        });
        axum::serve(listener, router(settings, token, metrics))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::Internal(format!("server: {e}")))
    })
}
