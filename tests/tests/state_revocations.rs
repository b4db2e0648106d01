//! The revocation feed: in order from any cursor, paged, and a snapshot when
//! the cursor is older than the stream keeps (or unknown to it).

mod state_support;

use serde_json::{json, Value};
use state_support::{now_s, Stack};

fn feed(stack: &Stack, query: &str) -> Value {
    stack
        .api
        .get(&format!("/v1/revocations/feed?{query}"), stack.plugin())
        .ok()
}

fn revoke_token(stack: &Stack, jti: &str, exp: u64) -> Value {
    stack
        .api
        .post(
            "/v1/revocations/token",
            stack.admin(),
            &json!({"iss": "https://issuer.test", "jti": jti, "exp": exp, "reason": "test"}),
        )
        .ok()
}

#[test]
fn the_feed_delivers_every_change_in_order_from_any_cursor() {
    let stack = Stack::start();
    let start = feed(&stack, "since=0");
    assert_eq!(start["type"], "snapshot");
    assert_eq!(start["tokens"], json!([]));
    let start_cursor = start["cursor"].as_str().unwrap().to_string();

    let exp = now_s() + 3_600;
    let mut cursors = vec![start_cursor.clone()];
    let mut expected = Vec::new();
    for i in 0..9 {
        let r = if i % 3 == 2 {
            stack
                .api
                .post(
                    "/v1/revocations/user",
                    stack.admin(),
                    &json!({"sub": format!("user-{i}")}),
                )
                .ok()
        } else {
            revoke_token(&stack, &format!("jti-{i}"), exp)
        };
        cursors.push(r["cursor"].as_str().unwrap().to_string());
        expected.push(r["revocation"].clone());
    }
    // From every cursor, exactly the changes after it, oldest first.
    for (n, cursor) in cursors.iter().enumerate() {
        let page = feed(&stack, &format!("since={cursor}"));
        assert_eq!(page["type"], "changes", "{page}");
        let entries = page["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 9 - n, "after cursor {n}");
        for (entry, (want, want_cursor)) in entries
            .iter()
            .zip(expected[n..].iter().zip(&cursors[n + 1..]))
        {
            assert_eq!(&entry["cursor"], want_cursor);
            assert_eq!(entry["kind"], want["kind"]);
            for field in ["iss", "jti", "exp", "sub", "not_before"] {
                assert_eq!(entry[field], want[field], "{field}");
            }
        }
        assert_eq!(page["cursor"].as_str().unwrap(), cursors[9]);
    }
    // Paging: limit and `more`.
    let mut cursor = start_cursor;
    let mut seen = 0;
    loop {
        let page = feed(&stack, &format!("since={cursor}&limit=4"));
        let n = page["entries"].as_array().unwrap().len();
        seen += n;
        cursor = page["entries"]
            .as_array()
            .unwrap()
            .last()
            .map_or(cursor.clone(), |e| {
                e["cursor"].as_str().unwrap().to_string()
            });
        if page["more"] == false {
            break;
        }
        assert_eq!(n, 4);
    }
    assert_eq!(seen, 9);
    // The snapshot holds the same state.
    let snap = feed(&stack, "since=0");
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["cursor"].as_str().unwrap(), cursors[9]);
    assert_eq!(snap["tokens"].as_array().unwrap().len(), 6);
    assert_eq!(snap["users"].as_array().unwrap().len(), 3);
    let nb = snap["users"][0]["not_before"].as_u64().unwrap();
    assert!(nb.abs_diff(now_s()) <= 5, "not_before {nb}");
}

#[test]
fn a_too_old_or_unknown_cursor_gets_a_snapshot() {
    let stack = Stack::start_with(None, &["--feed-max-len", "5"]);
    let exp = now_s() + 3_600;
    let cursors: Vec<String> = (0..12)
        .map(|i| {
            revoke_token(&stack, &format!("old-{i}"), exp)["cursor"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let first_cursor = &cursors[0];
    // A token past its exp stays while a plugin may still accept it (exp
    // plus the largest clock skew, 3600 s); past that it is in no snapshot.
    revoke_token(&stack, "in-skew", now_s() - 3_590);
    let expired = revoke_token(&stack, "expired", now_s() - 3_610);
    let last = expired["cursor"].as_str().unwrap().to_string();

    let page = feed(&stack, &format!("since={first_cursor}"));
    assert_eq!(page["type"], "snapshot", "{page}");
    assert_eq!(page["cursor"].as_str().unwrap(), last);
    let mut jtis: Vec<&str> = page["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["jti"].as_str().unwrap())
        .collect();
    jtis.sort();
    let mut want: Vec<String> = (0..12).map(|i| format!("old-{i}")).collect();
    want.push("in-skew".into());
    want.sort();
    assert_eq!(jtis, want);
    // From the snapshot's cursor on, changes again.
    let next = feed(&stack, &format!("since={last}"));
    assert_eq!(next["type"], "changes");
    assert_eq!(next["entries"], json!([]));
    // The stream keeps the newest 5 (old-9 .. old-11, in-skew, expired): a
    // plugin that has seen old-8 missed nothing and gets changes; one at
    // old-7 missed old-8.
    let page = feed(&stack, &format!("since={}", cursors[8]));
    assert_eq!(page["type"], "changes", "{page}");
    assert_eq!(page["entries"].as_array().unwrap().len(), 5);
    assert_eq!(page["entries"][0]["jti"], "old-9");
    let page = feed(&stack, &format!("since={}", cursors[7]));
    assert_eq!(page["type"], "snapshot");
    let page = feed(&stack, "since=0");
    assert_eq!(page["type"], "snapshot");
    // A cursor from the future (e.g. Redis lost its data) gets a snapshot.
    let page = feed(&stack, "since=99999999999999-0");
    assert_eq!(page["type"], "snapshot");
    // Nonsense is a 400.
    let r = stack
        .api
        .get("/v1/revocations/feed?since=abc", stack.plugin());
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_request");
}

#[test]
fn revocations_are_audited_and_indexed() {
    let stack = Stack::start();
    revoke_token(&stack, "audited", now_s() + 60);
    stack
        .api
        .post(
            "/v1/revocations/user",
            stack.admin(),
            &json!({"sub": "mallory", "reason": "stolen laptop"}),
        )
        .ok();
    let audit = stack.api.get("/v1/audit?since=0", stack.admin()).ok();
    let events = audit["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["revocation.token", "revocation.user"]);
    assert_eq!(events[1]["subject"], "mallory");
    assert_eq!(events[1]["actor"], "admin");
    assert_eq!(events[1]["details"]["reason"], "stolen laptop");
    assert!(events[1]["at_ms"].as_u64().unwrap() > 0);
    // Reading on from the cursor returns nothing new.
    let cursor = audit["cursor"].as_str().unwrap();
    let more = stack
        .api
        .get(&format!("/v1/audit?since={cursor}"), stack.admin())
        .ok();
    assert_eq!(more["events"], json!([]));
    let index = stack.api.get("/v1/users/mallory/index", stack.admin()).ok();
    assert_eq!(index["keys"], json!(["mg:{rev}:users#mallory"]));
}
