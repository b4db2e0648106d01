//! What the plugin sends back: the IETF rate-limit headers and the
//! `application/problem+json` (RFC 9457) refusals.

use meshguard_policy::ratelimit::headers::{ratelimit_header, retry_after_seconds, PolicyHeader};
use meshguard_policy::ratelimit::BucketState;
use serde_json::json;
use std::borrow::Cow;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// `RateLimit-Policy` (from the tier's rendered `policy` when the buckets
/// are its configured ones) and `RateLimit` for these buckets.
pub fn ratelimit_headers<'a>(
    policy: &'a PolicyHeader,
    buckets: &[BucketState],
) -> [(&'static str, Cow<'a, str>); 2] {
    [
        ("ratelimit-policy", policy.render(buckets)),
        ("ratelimit", Cow::Owned(ratelimit_header(buckets))),
    ]
}

pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// 429 for a refused request, with `Retry-After` unless it can never pass,
/// and the rate-limit headers when given the tier's `policy`.
pub fn too_many_requests(
    buckets: &[BucketState],
    tier: &str,
    cost: u64,
    policy: Option<&PolicyHeader>,
) -> LocalReply {
    let retry_after = retry_after_seconds(buckets);
    let limited_by: Vec<&str> = buckets
        .iter()
        .filter(|b| !b.allowed)
        .map(|b| b.name.as_ref())
        .collect();
    let detail = match retry_after {
        Some(s) => format!(
            "rate limit of the {tier} tier exceeded ({}); retry in {s} s",
            limited_by.join(", ")
        ),
        None => format!(
            "this request costs {cost} tokens, more than the {tier} tier's {} bucket holds at once",
            limited_by.join(", ")
        ),
    };
    let body = json!({
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": detail,
        "tier": tier,
        "cost": cost,
        "limited_by": limited_by,
        "retry_after": retry_after,
    });
    let mut headers = vec![("content-type", PROBLEM_JSON.to_string())];
    if let Some(s) = retry_after {
        headers.push(("retry-after", s.to_string()));
    }
    if let Some(policy) = policy {
        let rendered = ratelimit_headers(policy, buckets);
        headers.extend(rendered.map(|(name, value)| (name, value.into_owned())));
    }
    LocalReply {
        status: 429,
        headers,
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// 503 when meshguard-state cannot decide and `fail_closed` is set.
pub fn unavailable(retry_after_s: u64) -> LocalReply {
    let body = json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the rate limiter cannot reach its state service",
    });
    LocalReply {
        status: 503,
        headers: vec![
            ("content-type", PROBLEM_JSON.to_string()),
            ("retry-after", retry_after_s.max(1).to_string()),
        ],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(remaining: u64, retry: u64) -> BucketState {
        BucketState {
            name: "minute".into(),
            limit: 10,
            window_ms: 60_000,
            remaining,
            reset_ms: 60_000,
            retry_after_ms: retry,
            allowed: retry == 0,
        }
    }

    fn header<'a>(reply: &'a LocalReply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn refusal_is_problem_json_with_retry_after() {
        let reply = too_many_requests(
            &[minute(0, 5_500)],
            "free",
            1,
            Some(&PolicyHeader::default()),
        );
        assert_eq!(reply.status, 429);
        assert_eq!(header(&reply, "content-type"), Some(PROBLEM_JSON));
        assert_eq!(header(&reply, "retry-after"), Some("6"));
        assert_eq!(header(&reply, "ratelimit"), Some(r#""minute";r=0;t=6"#));
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(body["limited_by"][0], "minute");
        assert_eq!(body["retry_after"], 6);
    }

    #[test]
    fn never_admissible_has_no_retry_after() {
        let reply = too_many_requests(&[minute(10, u64::MAX)], "free", 50, None);
        assert_eq!(header(&reply, "retry-after"), None);
        assert_eq!(header(&reply, "ratelimit"), None);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(body["detail"].as_str().unwrap().contains("costs 50 tokens"));
    }

    #[test]
    fn unavailable_is_503() {
        let reply = unavailable(0);
        assert_eq!(reply.status, 503);
        assert_eq!(header(&reply, "retry-after"), Some("1"));
    }
}
