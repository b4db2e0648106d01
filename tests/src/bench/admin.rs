//! Operator calls to meshguard-state's admin API over the harness's raw client.

use crate::http::Request;
use crate::state::StateService;
use serde_json::Value;

/// Sends `method path` with the admin token and a JSON body; the status.
pub fn call(state: &StateService, method: &str, path: &str, body: &Value) -> u16 {
    let request = Request {
        method: method.into(),
        path: path.into(),
        body: body.to_string().into_bytes(),
        ..Request::default()
    }
    .header("authorization", &format!("Bearer {}", state.admin_token))
    .header("content-type", "application/json");
    request.send(state.port).map_or(0, |r| r.status)
}
