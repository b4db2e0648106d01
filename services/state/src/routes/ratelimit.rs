//! Rate-limit decisions and quota leases.

use super::check_id;
use crate::app_state::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::limits::NamedQuota;
use crate::store::{keys, BucketOutcome, BucketSpec, Buckets, Take};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use meshguard_api::error::codes;
use meshguard_api::lease::{
    LeaseRequest, LeaseResponse, RefundRequest, RefundResponse, UsageReport, UsageResponse,
};
use meshguard_api::limits::MAX_COST;
use meshguard_api::ratelimit::{BucketResult, RateLimitRequest, RateLimitResponse};

fn resolve(
    state: &AppState,
    key: &str,
    tier: Option<&str>,
) -> ApiResult<(String, Vec<NamedQuota>, Buckets)> {
    check_id("key", key)?;
    let tier = tier.unwrap_or(&state.limits.default_tier).to_string();
    let quotas = state.limits.tier(&tier).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::UNKNOWN_TIER,
            format!("unknown tier {tier:?}"),
        )
    })?;
    let mut named: Vec<NamedQuota> = quotas.to_vec();
    let mut specs: Vec<BucketSpec> = quotas
        .iter()
        .map(|q| BucketSpec {
            key: keys::bucket(key, q.name),
            emission_us: q.quota.emission_interval(),
            tolerance_us: q.quota.delay_tolerance(),
        })
        .collect();
    let user_specs = specs.len();
    if let Some(global) = state.limits.global {
        specs.push(BucketSpec {
            key: keys::GLOBAL_BUCKET.to_string(),
            emission_us: global.quota.emission_interval(),
            tolerance_us: global.quota.delay_tolerance(),
        });
        named.push(global);
    }
    Ok((
        tier,
        named,
        Buckets {
            specs,
            user_specs,
            index_key: keys::limit_index(key),
        },
    ))
}

fn ms_ceil(us: u64) -> u64 {
    us.div_ceil(1_000)
}

fn results(named: &[NamedQuota], outcomes: &[BucketOutcome]) -> Vec<BucketResult> {
    named
        .iter()
        .zip(outcomes)
        .map(|(q, o)| BucketResult {
            name: q.name.to_string(),
            limit: q.quota.limit(),
            window_ms: q.window_us / 1_000,
            remaining: o.remaining,
            reset_ms: ms_ceil(o.reset_us),
            retry_after_ms: o.retry_us.map_or(u64::MAX, ms_ceil),
            allowed: o.allowed,
        })
        .collect()
}

pub async fn check(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RateLimitRequest>,
) -> ApiResult<Json<RateLimitResponse>> {
    let (tier, named, buckets) = resolve(&state, &req.key, req.tier.as_deref())?;
    let cost = req
        .cost
        .unwrap_or_else(|| req.path.as_deref().map_or(1, |p| state.limits.cost_of(p)));
    if cost == 0 || cost > MAX_COST {
        return Err(ApiError::bad_request(format!(
            "cost must be 1..={MAX_COST}"
        )));
    }
    let decision = state
        .store
        .take(
            &buckets,
            &Take::Check {
                cost,
                shadow: req.shadow,
            },
        )
        .await?;
    let limited = decision.buckets.iter().any(|b| !b.allowed);
    let label = match (limited, req.shadow) {
        (false, _) => "allowed",
        (true, false) => "limited",
        (true, true) => "shadow_limited",
    };
    state.metrics.decisions.with_label_values(&[label]).inc();
    let buckets = results(&named, &decision.buckets);
    let retry_after_ms = buckets
        .iter()
        .filter(|b| !b.allowed)
        .map(|b| b.retry_after_ms)
        .max()
        .unwrap_or(0);
    Ok(Json(RateLimitResponse {
        allowed: decision.admitted,
        limited,
        shadow: req.shadow,
        tier,
        cost,
        retry_after_ms,
        buckets,
    }))
}

fn lease_id() -> ApiResult<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!("no randomness: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error",
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn check_tokens(tokens: u64) -> ApiResult<()> {
    if tokens == 0 || tokens > MAX_COST {
        return Err(ApiError::bad_request(format!(
            "tokens must be 1..={MAX_COST}"
        )));
    }
    Ok(())
}

pub async fn lease(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LeaseRequest>,
) -> ApiResult<Json<LeaseResponse>> {
    let (tier, named, buckets) = resolve(&state, &req.key, req.tier.as_deref())?;
    check_tokens(req.tokens)?;
    let lease_id = lease_id()?;
    let decision = state
        .store
        .take(
            &buckets,
            &Take::Lease {
                tokens: req.tokens,
                lease_key: keys::lease(&req.key, &lease_id),
                ttl_ms: state.settings.lease_ttl_ms,
            },
        )
        .await?;
    Ok(Json(LeaseResponse {
        lease_id,
        key: req.key,
        tier,
        granted: decision.granted,
        expires_in_ms: state.settings.lease_ttl_ms,
        buckets: results(&named, &decision.buckets),
    }))
}

pub async fn usage(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<UsageReport>,
) -> ApiResult<Json<UsageResponse>> {
    let (_, _, buckets) = resolve(&state, &req.key, req.tier.as_deref())?;
    check_id("lease_id", &req.lease_id)?;
    let (refunded, settled) = state
        .store
        .settle(&buckets, &keys::lease(&req.key, &req.lease_id), req.used)
        .await?;
    Ok(Json(UsageResponse { refunded, settled }))
}

pub async fn refund(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefundRequest>,
) -> ApiResult<Json<RefundResponse>> {
    let (_, _, buckets) = resolve(&state, &req.key, req.tier.as_deref())?;
    check_tokens(req.tokens)?;
    state.store.give_back(&buckets, req.tokens).await?;
    Ok(Json(RefundResponse {
        refunded: req.tokens,
    }))
}
