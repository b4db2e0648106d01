//! Handler tests against a scripted store: authentication, error mapping,
//! what the handlers ask of the store and how they shape its answers.

use crate::app::router;
use crate::app_state::AppState;
use crate::auth::{Secret, Secrets};
use crate::config::Settings;
use crate::limits::LimitsFile;
use crate::metrics::Metrics;
use crate::store::*;
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use meshguard_api::audit::AuditEvent;
use meshguard_api::flags::{FlagDefinition, FlagSnapshot};
use meshguard_api::revocation::{Revocation, RevocationFeed};
use meshguard_api::session::{Geo, SessionInfo};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const ADMIN: &str = "admin-token-for-tests";
const PLUGIN: &str = "plugin-secret-for-tests";

/// Answers from a script; `down` makes every call fail as Redis being away.
#[derive(Default)]
struct Fake {
    down: bool,
    decision: Option<Decision>,
    evicted: Vec<SessionInfo>,
    calls: Mutex<Vec<String>>,
    takes: Mutex<Vec<(Buckets, Take)>>,
    revoked: Mutex<Vec<Revocation>>,
}

impl Fake {
    fn call(&self, what: &str) -> Result<(), StoreError> {
        self.calls.lock().unwrap().push(what.to_string());
        if self.down {
            Err(StoreError::Unavailable("down".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for Fake {
    async fn ping(&self) -> Result<(), StoreError> {
        self.call("ping")
    }
}

#[async_trait]
impl RateLimitStore for Fake {
    async fn take(&self, buckets: &Buckets, take: &Take) -> Result<Decision, StoreError> {
        self.call("take")?;
        self.takes
            .lock()
            .unwrap()
            .push((buckets.clone(), take.clone()));
        self.decision
            .clone()
            .ok_or_else(|| StoreError::Failed("no decision scripted".into()))
    }
    async fn settle(&self, _: &Buckets, _: &str, _: u64) -> Result<(u64, bool), StoreError> {
        self.call("settle")?;
        Ok((0, false))
    }
    async fn give_back(&self, _: &Buckets, _: u64) -> Result<(), StoreError> {
        self.call("give_back")
    }
}

#[async_trait]
impl RevocationStore for Fake {
    async fn revoke(&self, revocation: &Revocation) -> Result<Recorded, StoreError> {
        self.call("revoke")?;
        self.revoked.lock().unwrap().push(revocation.clone());
        Ok(Recorded {
            cursor: "1-0".into(),
            revocation: revocation.clone(),
        })
    }
    async fn revocation_feed(&self, _: &str, _: usize) -> Result<RevocationFeed, StoreError> {
        self.call("feed")?;
        Ok(RevocationFeed::Changes {
            cursor: "1-0".into(),
            entries: vec![],
            more: false,
        })
    }
}

#[async_trait]
impl SessionStore for Fake {
    async fn register_session(&self, _: &SessionInfo, _: u32) -> Result<Registered, StoreError> {
        self.call("register")?;
        Ok(Registered {
            evicted: self.evicted.clone(),
            previous: None,
        })
    }
    async fn touch_session(
        &self,
        _: &str,
        _: &str,
        _: u64,
        _: Option<&str>,
        _: Option<Geo>,
    ) -> Result<Touched, StoreError> {
        self.call("touch")?;
        Ok(Touched::NotLive)
    }
    async fn learn_session(&self, seen: &SeenSession<'_>, _: u32) -> Result<Learned, StoreError> {
        self.call(&format!(
            "learn {} {} {:?} {:?} {:?}",
            seen.user, seen.session_id, seen.ip, seen.geo, seen.user_agent
        ))?;
        Ok(Learned::Live {
            new: true,
            evicted: self.evicted.iter().map(|s| s.session_id.clone()).collect(),
            previous: None,
        })
    }
    async fn mark_sessions_ended(&self, _: &str, sids: &[&str], _: u64) -> Result<(), StoreError> {
        self.call(&format!("ended {}", sids.join(",")))
    }
    async fn list_sessions(&self, _: &str) -> Result<Vec<SessionInfo>, StoreError> {
        self.call("list")?;
        Ok(vec![])
    }
    async fn end_session(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        self.call("end")?;
        Ok(true)
    }
}

#[async_trait]
impl FlagStore for Fake {
    async fn change_flags(
        &self,
        _: &[FlagDefinition],
        _: &[String],
        _: bool,
    ) -> Result<(u64, bool), StoreError> {
        self.call("change_flags")?;
        Ok((1, true))
    }
    async fn flag_version(&self) -> Result<u64, StoreError> {
        self.call("flag_version")?;
        Ok(7)
    }
    async fn flag_snapshot(&self) -> Result<FlagSnapshot, StoreError> {
        self.call("flag_snapshot")?;
        Ok(FlagSnapshot {
            version: 7,
            flags: vec![],
        })
    }
}

#[async_trait]
impl AuditStore for Fake {
    async fn audit(&self, _: &NewAuditEvent) -> Result<String, StoreError> {
        self.call("audit")?;
        Ok("1-0".into())
    }
    async fn read_audit(&self, _: &str, _: usize) -> Result<Vec<AuditEvent>, StoreError> {
        self.call("read_audit")?;
        Ok(vec![])
    }
    async fn index_user(&self, _: &str, _: &[String]) -> Result<(), StoreError> {
        self.call("index_user")
    }
    async fn user_index(&self, _: &str) -> Result<Vec<String>, StoreError> {
        self.call("user_index")?;
        Ok(vec![])
    }
}

#[async_trait]
impl ConsentStore for Fake {
    async fn consents(
        &self,
        users: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
        self.call("consents")?;
        Ok(users
            .iter()
            .map(|u| (u.clone(), vec!["analytics".to_string()]))
            .collect())
    }
}

fn state(fake: Arc<Fake>) -> AppState {
    AppState {
        store: fake,
        limits: Arc::new(LimitsFile::seed().compile().unwrap()),
        settings: Arc::new(Settings {
            max_sessions: 5,
            travel_max_kmh: 900.0,
            travel_end_session: false,
            session_revocation_ttl_s: 600,
            lease_ttl_ms: 1_000,
            feed_page_max: 1_000,
        }),
        secrets: Arc::new(Secrets {
            plugin: Secret::new(PLUGIN).unwrap(),
            admin: Secret::new(ADMIN).unwrap(),
        }),
        metrics: Metrics::new().unwrap(),
    }
}

async fn send(
    fake: &Arc<Fake>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = router(state(Arc::clone(fake)), 1024)
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

#[tokio::test]
async fn operator_endpoints_refuse_the_plugin_secret_before_touching_the_store() {
    let fake = Arc::new(Fake::default());
    let (status, body) = send(
        &fake,
        "POST",
        "/v1/revocations/user",
        Some(PLUGIN),
        Some(json!({"sub": "a"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let (status, _) = send(&fake, "GET", "/v1/audit", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(fake.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unavailable_store_is_a_503_with_a_stable_code() {
    let fake = Arc::new(Fake {
        down: true,
        ..Fake::default()
    });
    for (method, path, token, body) in [
        (
            "POST",
            "/v1/ratelimit/check",
            PLUGIN,
            Some(json!({"key": "k"})),
        ),
        ("GET", "/v1/revocations/feed", PLUGIN, None),
        ("GET", "/v1/flags", ADMIN, None),
        ("GET", "/readyz", ADMIN, None),
    ] {
        let (status, body) = send(&fake, method, path, Some(token), body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{path}: {body}");
    }
}

#[tokio::test]
async fn a_check_asks_for_the_tier_buckets_and_the_global_one() {
    let fake = Arc::new(Fake {
        decision: Some(Decision {
            admitted: false,
            granted: 0,
            buckets: vec![
                BucketOutcome {
                    allowed: false,
                    remaining: 0,
                    reset_us: 59_999_001,
                    retry_us: Some(1_200_001),
                },
                BucketOutcome {
                    allowed: true,
                    remaining: 900,
                    reset_us: 360_000_000,
                    retry_us: Some(0),
                },
                BucketOutcome {
                    allowed: true,
                    remaining: 10_000,
                    reset_us: 0,
                    retry_us: Some(0),
                },
            ],
        }),
        ..Fake::default()
    });
    let (status, body) = send(
        &fake,
        "POST",
        "/v1/ratelimit/check",
        Some(PLUGIN),
        Some(json!({"key": "bob", "tier": "premium", "cost": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], false);
    assert_eq!(body["limited"], true);
    assert_eq!(body["retry_after_ms"], 1_201, "rounded up, never early");
    assert_eq!(body["buckets"][0]["reset_ms"], 60_000);
    assert_eq!(body["buckets"][0]["limit"], 50);
    assert_eq!(body["buckets"][2]["name"], "global");
    let takes = fake.takes.lock().unwrap();
    let (buckets, take) = &takes[0];
    assert_eq!(
        take,
        &Take::Check {
            cost: 2,
            shadow: false
        }
    );
    assert_eq!(buckets.user_specs, 2);
    assert_eq!(buckets.index_key, "mg:{u:bob}:index");
    let keys: Vec<&str> = buckets.specs.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "mg:{u:bob}:rl:minute",
            "mg:{u:bob}:rl:hour",
            "mg:{rl:global}:tat"
        ]
    );
    // premium: 50/min -> 1.2 s apart, burst 50 -> tau 60 s.
    assert_eq!(buckets.specs[0].emission_us, 1_200_000);
    assert_eq!(buckets.specs[0].tolerance_us, 60_000_000);
    assert_eq!(buckets.specs[2].emission_us, 100);
}

#[tokio::test]
async fn an_evicted_session_is_revoked_through_the_feed() {
    let old = SessionInfo {
        user: "u".into(),
        session_id: "old".into(),
        device_id: None,
        user_agent: None,
        ip: None,
        geo: None,
        created_ms: 1,
        last_seen_ms: 1,
    };
    let fake = Arc::new(Fake {
        evicted: vec![old],
        ..Fake::default()
    });
    let (status, body) = send(
        &fake,
        "POST",
        "/v1/sessions",
        Some(ADMIN),
        Some(json!({"user": "u", "session_id": "new"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["evicted"], json!(["old"]));
    let revoked = fake.revoked.lock().unwrap();
    assert!(matches!(
        &revoked[..],
        [Revocation::Session { sub, session_id, .. }] if sub == "u" && session_id == "old"
    ));
}

#[tokio::test]
async fn invalid_flags_and_oversized_bodies_never_reach_the_store() {
    let fake = Arc::new(Fake::default());
    let (status, body) = send(
        &fake,
        "PUT",
        "/v1/flags/f",
        Some(ADMIN),
        Some(json!({"variants": {"a": 1}, "default_variant": "b"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_flag");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("default_variant"));
    let (status, body) = send(
        &fake,
        "POST",
        "/v1/ratelimit/check",
        Some(PLUGIN),
        Some(json!({"key": "x".repeat(2_000)})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "body_too_large");
    assert!(fake.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_flag_snapshot_is_304_for_the_current_version() {
    let fake = Arc::new(Fake::default());
    let (status, _) = send(
        &fake,
        "GET",
        "/v1/flags/snapshot?version=7",
        Some(PLUGIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, body) = send(
        &fake,
        "GET",
        "/v1/flags/snapshot?version=6",
        Some(PLUGIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 7);
}

#[test]
fn the_openapi_document_covers_every_route() {
    let doc: Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
    let app = include_str!("app.rs");
    let mut routed = 0;
    for line in app.lines() {
        let line = line.trim();
        // Paths the plugins share are meshguard-api constants.
        let shared = [
            (
                "ratelimit::CHECK_PATH",
                meshguard_api::ratelimit::CHECK_PATH,
            ),
            (
                "ratelimit::LEASE_PATH",
                meshguard_api::ratelimit::LEASE_PATH,
            ),
            (
                "ratelimit::USAGE_PATH",
                meshguard_api::ratelimit::USAGE_PATH,
            ),
            (
                "ratelimit::REFUND_PATH",
                meshguard_api::ratelimit::REFUND_PATH,
            ),
        ];
        let constant = line.strip_prefix(".route(").and_then(|rest| {
            shared
                .iter()
                .find(|(name, _)| rest.starts_with(&format!("{name},")))
                .map(|(_, path)| *path)
        });
        if let Some(path) = constant {
            assert!(
                doc["paths"][path].is_object(),
                "{path} is routed but not in openapi.json"
            );
            routed += 1;
        } else if let Some(rest) = line.strip_prefix(".route(\"") {
            let path = rest.split('"').next().unwrap();
            assert!(
                doc["paths"][path].is_object(),
                "{path} is routed but not in openapi.json"
            );
            routed += 1;
        } else if line.starts_with("\"/") && line.ends_with("\",") {
            let path = line.trim_matches(|c| c == '"' || c == ',');
            assert!(doc["paths"][path].is_object(), "{path} missing");
            routed += 1;
        }
    }
    assert_eq!(routed, doc["paths"].as_object().unwrap().len());
}

#[tokio::test]
async fn a_malformed_session_report_costs_its_field_or_itself_never_the_batch() {
    let fake = Arc::new(Fake::default());
    let now = crate::routes::now_ms();
    let (status, body) = send(
        &fake,
        "POST",
        "/v1/sessions/reports",
        Some(PLUGIN),
        Some(json!({"reports": [
            {"user": "u", "session_id": "s1", "ip": "203.0.113.9", "user_agent": "curl/8",
             "geo": {"lat": 48.85, "lon": 2.35}, "first_seen_ms": now, "last_seen_ms": now},
            {"user": "u", "session_id": "s2", "ip": "not an address", "geo": {"lat": "x", "lon": 1e300},
             "first_seen_ms": now - 10, "last_seen_ms": now},
            {"user": "u", "first_seen_ms": now, "last_seen_ms": now},
            "garbage",
        ]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], 2, "{body}");
    let problems = body["problems"].as_array().unwrap();
    let at = |i: u64, outcome: &str| {
        problems
            .iter()
            .filter(|p| p["index"] == i && p["outcome"] == outcome)
            .count()
    };
    assert_eq!(at(1, "field_dropped"), 2, "{body}");
    assert_eq!(at(2, "skipped"), 1, "{body}");
    assert_eq!(at(3, "skipped"), 1, "{body}");
    let calls = fake.calls.lock().unwrap().clone();
    let learned: Vec<&String> = calls.iter().filter(|c| c.starts_with("learn")).collect();
    // Oldest first seen first; s2 kept without its address and location.
    assert_eq!(learned[0], "learn u s2 None None None", "{calls:?}");
    assert!(
        learned[1].starts_with("learn u s1 Some(\"203.0.113.9\") Some(Geo"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn consents_are_looked_up_with_a_secret_only() {
    let fake = Arc::new(Fake::default());
    let lookup = json!({"users": ["alice", "bob"]});
    let (status, _) = send(
        &fake,
        "POST",
        "/v1/consents/lookup",
        None,
        Some(lookup.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = send(
        &fake,
        "POST",
        "/v1/consents/lookup",
        Some(PLUGIN),
        Some(lookup),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["consents"]["alice"], json!(["analytics"]));
    let (status, _) = send(
        &fake,
        "POST",
        "/v1/consents/lookup",
        Some(PLUGIN),
        Some(json!({"users": ["a{b"]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
