//! `serve`: the same operations over HTTP (admin bearer token), package
//! downloads by link (the unguessable token is the credential), and a
//! background tick that prunes packages, sweeps cutoffs, ingests the state
//! audit stream and seals checkpoints.

mod app;
mod auth;
mod errors;
mod public_routes;
mod record_routes;
mod request_routes;
mod tick;

use crate::config::{read_secret, Settings};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use app::{App, Shared};
use auth::auth;
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::Router;
use public_routes::{healthz, openapi, package, readyz, render_metrics};
use record_routes::{
    add_hold, list_holds, record_consent, release_hold, set_contact, show_consents, verify_audit,
};
use request_routes::{
    create, erase_request, export_request, extend, list, reject, send_code, status, steps, verify,
};
use std::sync::Arc;
use std::time::Duration;
use tick::tick;

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
