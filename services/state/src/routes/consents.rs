//! Consents at the proxy (plugin): the purposes each asked-about user
//! currently consents to. meshguard-gdpr records every choice and mirrors
//! the current one per purpose into the user's Redis data; the auth plugin
//! asks here for the users it serves, off the request path, and passes the
//! answer on in `x-auth-consents`.

use super::check_id;
use crate::app_state::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use axum::extract::State;
use axum::Json;
use meshguard_api::consent::{ConsentAnswer, ConsentLookup, MAX_LOOKUP_USERS};

pub async fn lookup(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ConsentLookup>,
) -> ApiResult<Json<ConsentAnswer>> {
    if req.users.len() > MAX_LOOKUP_USERS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_LOOKUP_USERS} users per lookup"
        )));
    }
    for user in &req.users {
        check_id("users[]", user)?;
    }
    let consents = state.store.consents(&req.users).await?;
    Ok(Json(ConsentAnswer { consents }))
}
