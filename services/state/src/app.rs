//! The router: plugin endpoints behind the plugin secret, operator endpoints
//! behind the admin token, health and metrics open.

use crate::app_state::AppState;
use crate::auth;
use crate::error::ApiError;
use crate::routes;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{middleware, Router};
use meshguard_api::error::codes;
use meshguard_api::ratelimit;

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let plugin = Router::new()
        .route(ratelimit::CHECK_PATH, post(routes::ratelimit::check))
        .route(ratelimit::LEASE_PATH, post(routes::ratelimit::lease))
        .route(ratelimit::USAGE_PATH, post(routes::ratelimit::usage))
        .route(ratelimit::REFUND_PATH, post(routes::ratelimit::refund))
        .route("/v1/revocations/feed", get(routes::revocations::feed))
        .route("/v1/flags/snapshot", get(routes::flags::snapshot))
        .route("/v1/sessions/activity", post(routes::sessions::activity))
        .route("/v1/sessions/reports", post(routes::sessions::reports))
        .route("/v1/consents/lookup", post(routes::consents::lookup))
        .route_layer(middleware::from_fn_with_state(
            state.secrets.clone(),
            auth::plugin,
        ));
    let admin = Router::new()
        .route(
            "/v1/revocations/token",
            post(routes::revocations::revoke_token),
        )
        .route(
            "/v1/revocations/user",
            post(routes::revocations::revoke_user),
        )
        .route("/v1/sessions", post(routes::sessions::register))
        .route("/v1/sessions/{user}", get(routes::sessions::list))
        .route(
            "/v1/sessions/{user}/{session_id}",
            axum::routing::delete(routes::sessions::end),
        )
        .route("/v1/flags", get(routes::flags::list))
        .route("/v1/flags/import", post(routes::flags::import))
        .route(
            "/v1/flags/{key}",
            put(routes::flags::put_flag)
                .get(routes::flags::get_flag)
                .delete(routes::flags::delete_flag),
        )
        .route("/v1/audit", get(routes::audit::read))
        .route("/v1/users/{user}/index", get(routes::audit::user_index))
        .route_layer(middleware::from_fn_with_state(
            state.secrets.clone(),
            auth::admin,
        ));
    let open = Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route("/v1/openapi.json", get(routes::health::openapi));
    Router::new()
        .merge(plugin)
        .merge(admin)
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.metrics.http.clone(),
            meshguard_service_kit::http_metrics::track,
        ))
        .layer(middleware::from_fn(
            meshguard_service_kit::request_id::middleware,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}
