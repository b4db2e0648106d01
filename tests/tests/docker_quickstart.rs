//! The README's compose quickstart, step by step, against the compose stack
//! (envoy/docker-compose.yaml with the local images of scripts/images): the
//! documented requests give the documented answers.
//!
//! Run by scripts/test's Docker step:
//!   cargo test -p meshguard-harness --test docker_quickstart -- --ignored

use meshguard_harness::docker::{docker_ok, Compose, ComposeOptions};
use meshguard_harness::Request;
use std::time::{Duration, Instant};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
#[ignore = "needs Docker and scripts/images; scripts/test runs it"]
fn the_readme_compose_quickstart_gives_the_documented_answers() {
    let stack = Compose::up("quickstart", ComposeOptions::default());

    // Every long-running service passes its own health check (the compose
    // file's probes work in these images).
    for service in [
        "envoy",
        "redis",
        "meshguard-state",
        "meshguard-gdpr",
        "ml-1",
        "blockchain-2",
    ] {
        let id = stack.container(service);
        let start = Instant::now();
        loop {
            let health = docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &id]);
            if health == "healthy" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{service} is {health} after 60 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    // curl -si localhost:10000/healthz
    let health = stack.send(&Request::get("/healthz")).expect("healthz");
    assert_eq!(health.status, 200, "{}", health.text());

    // curl -si localhost:10000/api/ml/  → 401 with a Bearer challenge
    let anonymous = stack.send(&Request::get("/api/ml/")).expect("anonymous");
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert!(anonymous
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));

    // TOKEN=$(docker-compose ... exec -T meshguard-state meshguard-state token mint ...)
    let token = stack.mint_token("alice", "premium");
    let spoofed = Request::get("/api/ml/")
        .header("authorization", &bearer(&token))
        .header("x-auth-sub", "admin");
    let answer = stack.send(&spoofed).expect("alice");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let seen = &answer.json()["meshguard_headers"];
    assert_eq!(seen["x-auth-sub"], "alice", "{seen}");
    assert_eq!(seen["x-auth-tier"], "premium", "{seen}");
    assert!(answer.header("ratelimit-policy").is_some());

    // Free tier: 10 tokens a minute, /api/ml/ costs 5 → 200 200 429.
    let bob = stack.mint_token("bob", "free");
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            stack
                .send(&Request::get("/api/ml/").header("authorization", &bearer(&bob)))
                .expect("bob")
                .status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429]);

    // revoke-user alice → 401 at the proxy within one feed poll or so.
    stack.state_cli(&["revoke-user", "alice", "--reason", "quickstart"]);
    let revoked_at = Instant::now();
    let request = Request::get("/api/ml/").header("authorization", &bearer(&token));
    loop {
        let answer = stack.send(&request).expect("revoked");
        if answer.status == 401 {
            assert!(answer.text().contains("revoked"), "{}", answer.text());
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "alice still {} 3 s after revoke-user",
            answer.status
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "FIGURE quickstart: revocation enforced {} ms after revoke-user returned",
        revoked_at.elapsed().as_millis()
    );

    // The secrets were made at first start and none is in the config Envoy dumps.
    let dump = stack.envoy_admin("/config_dump");
    for secret in ["plugin-secret", "dev-jwt-key", "dev-jwt-key.b64url"] {
        let value = stack.exec(
            "meshguard-state",
            &["cat", &format!("/run/meshguard/{secret}")],
        );
        assert!(value.len() >= 32, "{secret} was generated");
        assert!(!dump.contains(&value), "{secret} in /config_dump");
    }
}
