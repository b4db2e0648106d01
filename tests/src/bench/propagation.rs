//! How long a change made through meshguard-state's admin API takes to
//! reach requests through Envoy: a revoked token answered 401, a changed
//! flag seen by the upstream. The plugins run with their default sync
//! intervals (revocation feed 250 ms, flag snapshot 1000 ms).

use crate::bench::admin;
use crate::bench::token::{claims, DevKey, ISSUER};
use crate::envoy::{Envoy, EnvoySpec, Plugin};
use crate::http::{Request, Response};
use crate::redis::Redis;
use crate::state::StateService;
use crate::upstream::RecordingServer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Gives up on one change after this long (counted as a miss).
const GIVE_UP: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(2);

pub struct Propagation {
    /// Seconds from the admin call to the first request that saw the change.
    pub revocation: Vec<f64>,
    pub flag: Vec<f64>,
    /// Changes not seen within `GIVE_UP`, or admin calls refused.
    pub misses: usize,
}

struct Stack {
    envoy: Envoy,
    state: StateService,
    key: DevKey,
    _echo: RecordingServer,
    _redis: Redis,
}

const FLAG: &str = "bench-propagation";
const FLAG_HEADER: &str = "x-flag-bench-propagation";

fn start() -> Stack {
    let redis = Redis::start();
    let state = StateService::start(&redis);
    let key = DevKey::generate();
    let echo = RecordingServer::echo();
    let client = json!({"secret": state.plugin_secret, "timeout_ms": 1000});
    let auth = json!({
        "issuers": [ISSUER],
        "jwks": key.jwks(),
        "revocation": {"state": client},
    });
    let flags = json!({"sync": {"state": client}});
    let spec = EnvoySpec::new()
        .plugin(Plugin::new("auth", Some(auth)))
        .plugin(Plugin::new("flags", Some(flags)))
        .cluster("echo", echo.port)
        .cluster("meshguard_state", state.port)
        .route("/api/", "echo");
    Stack {
        envoy: Envoy::start(spec),
        state,
        key,
        _echo: echo,
        _redis: redis,
    }
}

fn get(envoy: &Envoy, token: &str) -> Option<Response> {
    Request::get("/api/bench")
        .header("authorization", &format!("Bearer {token}"))
        .send(envoy.port)
        .ok()
}

/// Polls until `seen` holds for a response; the time since `since`.
fn until(since: Instant, mut probe: impl FnMut() -> bool) -> Option<f64> {
    while since.elapsed() < GIVE_UP {
        if probe() {
            return Some(since.elapsed().as_secs_f64());
        }
        std::thread::sleep(POLL);
    }
    None
}

fn flag_header(response: &Response) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    body["headers"]
        .as_array()?
        .iter()
        .find_map(|h| (h[0] == FLAG_HEADER).then(|| h[1].as_str().unwrap_or_default().to_string()))
}

fn flag(variant: &str) -> Value {
    json!({"variants": {"on": true, "off": false}, "default_variant": variant})
}

/// `samples` revocations and `samples` flag changes, one at a time, each
/// started at a different phase of the plugins' sync ticks.
pub fn measure(samples: usize) -> Propagation {
    let stack = start();
    let mut out = Propagation {
        revocation: vec![],
        flag: vec![],
        misses: 0,
    };
    let warm = stack.key.mint("bench-warm", "enterprise", "bench-warm");
    // The auth plugin answers only once it has a revocation snapshot.
    let ready = until(Instant::now(), || {
        get(&stack.envoy, &warm).is_some_and(|r| r.status == 200)
    });
    if ready.is_none() {
        eprintln!(
            "bench propagation: Envoy never answered 200:\n{}",
            stack.envoy.log()
        );
        out.misses = 2 * samples;
        return out;
    }
    for i in 0..samples {
        eprintln!("bench propagation: {}/{samples}", i + 1);
        // Spread the starts over the sync periods.
        std::thread::sleep(Duration::from_millis((i as u64 * 137) % 1000));
        let jti = format!("bench-{}-{i}", std::process::id());
        let token = stack.key.mint("bench-revoked", "enterprise", &jti);
        let exp = claims(&token)["exp"].clone();
        let revoke = json!({"iss": ISSUER, "jti": jti, "exp": exp, "reason": "bench"});
        let started = Instant::now();
        let status = admin::call(&stack.state, "POST", "/v1/revocations/token", &revoke);
        let took = (200..300).contains(&status).then(|| {
            until(started, || {
                get(&stack.envoy, &token).is_some_and(|r| r.status == 401)
            })
        });
        match took.flatten() {
            Some(t) => out.revocation.push(t),
            None => out.misses += 1,
        }

        std::thread::sleep(Duration::from_millis((i as u64 * 211) % 1000));
        let variant = if i % 2 == 0 { "on" } else { "off" };
        let started = Instant::now();
        let status = admin::call(
            &stack.state,
            "PUT",
            &format!("/v1/flags/{FLAG}"),
            &flag(variant),
        );
        let took = (200..300).contains(&status).then(|| {
            until(started, || {
                get(&stack.envoy, &warm)
                    .and_then(|r| flag_header(&r))
                    .is_some_and(|v| v == variant)
            })
        });
        match took.flatten() {
            Some(t) => out.flag.push(t),
            None => out.misses += 1,
        }
    }
    out
}
