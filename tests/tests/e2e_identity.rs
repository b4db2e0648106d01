//! Identity across the shipped stack (`meshguard_harness::mesh`, what
//! `scripts/up` runs): groups from the token reach flag targeting, sessions
//! learned at the proxy (the per-user maximum without any admin call),
//! revocations that last as long as the plugin would accept the token, and
//! consent withdrawals that reach the upstream within two seconds.

use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::{Request, Response};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The headers the upstream says the chain sent it.
fn seen(response: &Response) -> Value {
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["meshguard_headers"].clone()
}

fn get(mesh: &Mesh, token: &str, extra: &[(&str, &str)]) -> Response {
    let mut request = Request::get("/api/nlp/").header("authorization", &format!("Bearer {token}"));
    for (name, value) in extra {
        request = request.header(name, value);
    }
    mesh.send(&request)
}

/// Polls `check` every 25 ms until it holds; the time it took.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
    start.elapsed()
}

fn cli_json(mesh: &Mesh, args: &[&str]) -> Value {
    let out = mesh.state_cli(args);
    assert!(
        out.status.success(),
        "meshguard-state {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Writes a flag to meshguard-state as an operator would.
fn set_flag(mesh: &Mesh, flag: Value) {
    let key = flag["key"].as_str().unwrap().to_string();
    let file = mesh.run_dir().join(format!("{key}.json"));
    std::fs::write(&file, flag.to_string()).unwrap();
    cli_json(mesh, &["flags", "set", &key, file.to_str().unwrap()]);
}

fn reason(response: &Response) -> String {
    response.json()["reason"].as_str().unwrap_or("").to_string()
}

#[test]
fn groups_from_the_token_target_flags_and_a_client_sent_groups_header_is_ignored() {
    let mesh = Mesh::start(MeshOptions::for_test());
    set_flag(
        &mesh,
        json!({"key": "FEATURE_BETA_GROUP", "variants": {"on": true, "off": false},
               "default_variant": "off", "percentage": 100,
               "weights": [{"variant": "on", "weight": 1}],
               "rules": [{"attribute": "group", "op": "not_in", "values": ["beta-testers"], "variant": "off"}]}),
    );
    let member = mesh.mint_token(
        "gina",
        "admin",
        json!({"groups": ["staff", "beta-testers"]}),
    );
    let outsider = mesh.mint_token("olaf", "admin", json!({}));
    // Each Envoy worker takes the flag from its own snapshot poll: eight
    // answers in a row, each on a new connection, before the outsider's.
    within(
        Duration::from_secs(5),
        "the flag reaches every worker",
        || (0..8).all(|_| seen(&get(&mesh, &member, &[]))["x-feature-beta-group"] == "on"),
    );
    let headers = seen(&get(&mesh, &member, &[]));
    assert_eq!(headers["x-auth-groups"], "staff,beta-testers", "{headers}");
    // A client claiming the group in a header gets nothing from it.
    let spoofed = seen(&get(&mesh, &outsider, &[("x-auth-groups", "beta-testers")]));
    assert_eq!(spoofed["x-feature-beta-group"], "off", "{spoofed}");
    assert!(spoofed.get("x-auth-groups").is_none(), "{spoofed}");
    // A single string claim is one group.
    let single = mesh.mint_token("hana", "admin", json!({"groups": "beta-testers"}));
    assert_eq!(
        seen(&get(&mesh, &single, &[]))["x-feature-beta-group"],
        "on"
    );
    // Groups that cannot travel in a header refuse the token.
    let bad = mesh.mint_token("ivo", "admin", json!({"groups": ["a,b"]}));
    let refused = get(&mesh, &bad, &[]);
    assert_eq!(refused.status, 401);
    assert_eq!(reason(&refused), "bad_identity");
}

#[test]
fn a_sixth_session_used_through_the_proxy_ends_the_oldest_within_two_seconds() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let user = "sasha";
    let tokens: Vec<String> = (1..=6)
        .map(|i| mesh.mint_token(user, "admin", json!({"sid": format!("s{i}")})))
        .collect();
    for (i, token) in tokens[..5].iter().enumerate() {
        let agent = format!("device-{}", i + 1);
        assert_eq!(get(&mesh, token, &[("user-agent", &agent)]).status, 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give the first five a report period to register (in their order).
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        get(&mesh, &tokens[5], &[("user-agent", "device-6")]).status,
        200
    );
    let took = within(Duration::from_secs(2), "the oldest session refused", || {
        let response = get(&mesh, &tokens[0], &[]);
        response.status == 401 && reason(&response) == "revoked_session"
    });
    eprintln!("sixth session → oldest refused in {took:?}");
    for token in &tokens[1..] {
        assert_eq!(get(&mesh, token, &[]).status, 200);
    }
    let list = cli_json(&mesh, &["sessions", "list", user]);
    let sessions = list["sessions"].as_array().expect("sessions");
    let ids: Vec<&str> = sessions
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s2", "s3", "s4", "s5", "s6"], "{list}");
    for (i, session) in sessions.iter().enumerate() {
        assert_eq!(session["user_agent"], format!("device-{}", i + 2), "{list}");
        assert_eq!(session["ip"], "127.0.0.1", "{list}");
        let first = session["created_ms"].as_u64().unwrap();
        let last = session["last_seen_ms"].as_u64().unwrap();
        assert!(first > 0 && last >= first, "{list}");
    }
}

#[test]
fn revocations_hold_past_exp_for_as_long_as_the_plugin_would_accept_the_token() {
    // A short skew keeps the test short; the denylist keeps entries for
    // the largest skew any plugin may have, so any shorter one is covered.
    let mut options = MeshOptions::for_test();
    options.config_patch = json!({"auth": {"clock_skew_s": 4}});
    let mesh = Mesh::start(options);
    let exp = now_s() + 3;
    let token = mesh.mint_token(
        "rita",
        "admin",
        json!({"jti": "e2e-token-1", "exp": exp, "sid": "r-1"}),
    );
    let bystander = mesh.mint_token("rita", "admin", json!({"sid": "r-2", "exp": exp}));
    assert_eq!(get(&mesh, &token, &[]).status, 200);
    cli_json(
        &mesh,
        &[
            "revoke",
            "--iss",
            "meshguard-dev",
            "--jti",
            "e2e-token-1",
            "--exp",
            &exp.to_string(),
        ],
    );
    within(Duration::from_secs(1), "the revoked token refused", || {
        reason(&get(&mesh, &token, &[])) == "revoked_token"
    });
    assert_eq!(get(&mesh, &bystander, &[]).status, 200);
    // Past exp, inside the skew the plugin allows: still revoked, not back.
    while now_s() <= exp + 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = get(&mesh, &token, &[]);
    assert_eq!(reason(&late), "revoked_token", "{}", late.text());
    // The bystander (same exp, not revoked) is still accepted there.
    assert_eq!(get(&mesh, &bystander, &[]).status, 200);
    // Past the skew the token has expired for the plugin as well.
    while now_s() <= exp + 4 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reason(&get(&mesh, &token, &[])), "expired");

    // A session, ended by the operator.
    let session = mesh.mint_token("sven", "admin", json!({"sid": "sv-1"}));
    assert_eq!(get(&mesh, &session, &[]).status, 200);
    cli_json(&mesh, &["sessions", "end", "sven", "sv-1"]);
    within(Duration::from_secs(1), "the ended session refused", || {
        reason(&get(&mesh, &session, &[])) == "revoked_session"
    });

    // A user, and a token issued in the cutoff's own second.
    let before = mesh.mint_token("ute", "admin", json!({}));
    assert_eq!(get(&mesh, &before, &[]).status, 200);
    let revoked_at = Instant::now();
    let answer = cli_json(&mesh, &["revoke-user", "ute"]);
    let not_before = answer["revocation"]["not_before"]
        .as_i64()
        .expect("not_before");
    within(Duration::from_secs(1), "the user's token refused", || {
        reason(&get(&mesh, &before, &[])) == "revoked_user"
    });
    // Each Envoy worker follows the feed on its own: the refusal above came
    // from one of them. Past the 1 s bound every worker holds the cutoff.
    std::thread::sleep(
        (revoked_at + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    );
    let same_second = mesh.mint_token("ute", "admin", json!({"iat": not_before}));
    assert_eq!(reason(&get(&mesh, &same_second, &[])), "revoked_user");
    let after = mesh.mint_token("ute", "admin", json!({"iat": not_before + 1}));
    assert_eq!(get(&mesh, &after, &[]).status, 200);
}

/// Records a consent choice through meshguard-gdpr's API.
fn consent(mesh: &Mesh, user: &str, purpose: &str, granted: bool) {
    let body = json!({"purpose": purpose, "granted": granted,
                      "notice_version": "v1", "method": "e2e"});
    let response = Request::post(&format!("/v1/consents/{user}"), body.to_string())
        .header("content-type", "application/json")
        .header(
            "authorization",
            &format!("Bearer {}", mesh.gdpr_admin_token()),
        )
        .send(mesh.gdpr_port())
        .expect("meshguard-gdpr answers");
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn a_withdrawn_consent_reaches_the_upstream_and_flag_targeting_within_two_seconds() {
    let mesh = Mesh::start(MeshOptions::for_test());
    set_flag(
        &mesh,
        json!({"key": "FEATURE_PERSONALISED", "variants": {"on": true, "off": false},
               "default_variant": "off", "percentage": 100,
               "weights": [{"variant": "on", "weight": 1}],
               "rules": [{"attribute": "consent", "op": "not_in", "values": ["personalization"], "variant": "off"}]}),
    );
    let user = "carla";
    consent(&mesh, user, "analytics", true);
    consent(&mesh, user, "personalization", true);
    let token = mesh.mint_token(user, "admin", json!({}));
    within(
        Duration::from_secs(5),
        "the consents reach the proxy",
        || {
            let headers = seen(&get(&mesh, &token, &[]));
            headers["x-auth-consents"] == "analytics,personalization"
                && headers["x-feature-personalised"] == "on"
        },
    );

    consent(&mesh, user, "personalization", false);
    let took = within(Duration::from_secs(2), "the withdrawal", || {
        let headers = seen(&get(&mesh, &token, &[]));
        headers["x-auth-consents"] == "analytics" && headers["x-feature-personalised"] == "off"
    });
    eprintln!("withdrawal → upstream in {took:?}");

    // Only the chain sets the header: a client's copy is gone.
    let other = mesh.mint_token("dora", "admin", json!({}));
    let headers = seen(&get(
        &mesh,
        &other,
        &[("x-auth-consents", "personalization")],
    ));
    assert!(headers.get("x-auth-consents").is_none(), "{headers}");
    assert_eq!(headers["x-feature-personalised"], "off", "{headers}");
}

#[test]
fn a_session_seen_while_meshguard_state_is_down_is_reported_when_it_returns() {
    use meshguard_harness::state::{StateOptions, StateService};
    let mut mesh = Mesh::start(MeshOptions::for_test());
    let token = mesh.mint_token("lena", "admin", json!({"sid": "l-offline"}));
    let (port, admin, plugin) = (
        mesh.state.port,
        mesh.state.admin_token.clone(),
        mesh.state.plugin_secret.clone(),
    );
    mesh.state.stop();
    // The request does not wait on the service (the feed is not stale yet).
    let started = Instant::now();
    assert_eq!(
        get(&mesh, &token, &[("user-agent", "offline-device")]).status,
        200
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // Several report periods fail while it is away.
    std::thread::sleep(Duration::from_millis(1_500));
    mesh.state = StateService::start_with(
        &mesh.redis.url(),
        StateOptions {
            port: Some(port),
            admin_token: Some(admin),
            plugin_secret: Some(plugin),
            dir: Some(mesh.run_dir().join("logs")),
            args: Vec::new(),
        },
    );
    let took = within(Duration::from_secs(10), "the report retried", || {
        let list = cli_json(&mesh, &["sessions", "list", "lena"]);
        list["sessions"][0]["session_id"] == "l-offline"
            && list["sessions"][0]["user_agent"] == "offline-device"
    });
    eprintln!("report delivered {took:?} after meshguard-state returned");
}

#[test]
fn the_four_filter_layout_carries_groups_and_consents_the_same_way() {
    let mut options = MeshOptions::for_test();
    options.layout = meshguard_harness::mesh::Layout::FourFilters;
    let mesh = Mesh::start(options);
    set_flag(
        &mesh,
        json!({"key": "FEATURE_STAFF_ANALYTICS", "variants": {"on": true, "off": false},
               "default_variant": "off", "percentage": 100,
               "weights": [{"variant": "on", "weight": 1}],
               "rules": [
                   {"attribute": "group", "op": "not_in", "values": ["staff"], "variant": "off"},
                   {"attribute": "consent", "op": "not_in", "values": ["analytics"], "variant": "off"}]}),
    );
    consent(&mesh, "fred", "analytics", true);
    let token = mesh.mint_token("fred", "admin", json!({"groups": ["staff"]}));
    within(Duration::from_secs(5), "groups and consents", || {
        let headers = seen(&get(&mesh, &token, &[]));
        headers["x-auth-groups"] == "staff"
            && headers["x-auth-consents"] == "analytics"
            && headers["x-feature-staff-analytics"] == "on"
    });
    consent(&mesh, "fred", "analytics", false);
    within(Duration::from_secs(2), "the withdrawal", || {
        let headers = seen(&get(&mesh, &token, &[]));
        headers.get("x-auth-consents").is_none() && headers["x-feature-staff-analytics"] == "off"
    });
}
