//! meshguard-gdpr's request lifecycle, deadlines, verification lockout, bad
//! input and the tamper-evident audit log, through the real binary (these
//! need neither Redis nor the state service).

use meshguard_harness::gdpr::Gdpr;

fn gdpr() -> Gdpr {
    // Nothing here reaches Redis or the state service.
    Gdpr::new(
        "redis://127.0.0.1:1/",
        "http://127.0.0.1:1",
        "unused-admin-token",
    )
}

fn create(g: &Gdpr, kind: &str, user: &str, received: Option<&str>) -> serde_json::Value {
    g.ok(&[
        "contact",
        "set",
        "--user",
        user,
        "--email",
        "s@example.org",
        "--source",
        "account record",
    ]);
    let mut args = vec!["request", "create", "--kind", kind, "--user", user];
    if let Some(r) = received {
        args.extend(["--received-at", r]);
    }
    g.ok(&args)
}

#[test]
fn deadlines_are_one_calendar_month_clamped_at_month_end() {
    let g = gdpr();
    for (received, due) in [
        ("2025-01-31", "2025-02-28"),
        ("2024-01-31", "2024-02-29"),
        ("2025-03-31T23:59:00Z", "2025-04-30"),
        ("2025-12-15", "2026-01-15"),
    ] {
        let user = format!("user-{received}");
        let r = create(&g, "access", &user, Some(received));
        assert_eq!(r["due_date"], due, "received {received}");
        assert_eq!(r["status"], "identity_unverified");
        assert_eq!(r["overdue"], true, "{received} is long past");
    }
    let fresh = create(&g, "access", "fresh-user", None);
    assert_eq!(fresh["overdue"], false);
    let overdue = g.ok(&["request", "list", "--overdue"]);
    let ids: Vec<&str> = overdue
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(!ids.contains(&fresh["id"].as_str().unwrap()));

    // Extension: up to two months in total, with a reason, within the first month.
    let id = fresh["id"].as_str().unwrap();
    let received = chrono_free_date(fresh["received_at"].as_str().unwrap());
    let once = g.ok(&[
        "request",
        "extend",
        id,
        "--months",
        "1",
        "--reason",
        "complex request: many systems",
    ]);
    assert_eq!(once["extended_months"], 1);
    let twice = g.ok(&[
        "request",
        "extend",
        id,
        "--months",
        "1",
        "--reason",
        "upstream archive restore",
    ]);
    assert_eq!(twice["extended_months"], 2);
    assert_ne!(twice["due_date"], fresh["due_date"]);
    assert!(twice["due_date"].as_str().unwrap() > received.as_str());
    assert!(g
        .fails(&["request", "extend", id, "--months", "1", "--reason", "more"])
        .contains("at most 2 months"));
    assert!(g
        .fails(&["request", "extend", id, "--months", "1", "--reason", " "])
        .contains("reason"));
    // Past the first month no extension is possible.
    let old = create(&g, "erasure", "late-user", Some("2024-01-31"));
    assert!(g
        .fails(&[
            "request",
            "extend",
            old["id"].as_str().unwrap(),
            "--months",
            "1",
            "--reason",
            "late"
        ])
        .contains("within the first month"));
}

fn chrono_free_date(rfc3339: &str) -> String {
    rfc3339[..10].to_string()
}

#[test]
fn wrong_codes_lock_out_after_the_limit_and_duplicates_are_refused() {
    let g = gdpr();
    let r = create(&g, "erasure", "mallory-target", None);
    let id = r["id"].as_str().unwrap();
    let code = g.code_for(id);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..5).rev() {
        let err = g.fails(&["request", "verify", id, "--code", wrong]);
        assert!(err.contains(&format!("{left} attempts left")), "{err}");
    }
    assert!(g
        .fails(&["request", "verify", id, "--code", wrong])
        .contains("locked after 5"));
    // Locked: even the right code is refused now.
    assert!(g
        .fails(&["request", "verify", id, "--code", &code])
        .contains("locked"));
    assert_eq!(
        g.ok(&["request", "status", id])["status"],
        "identity_unverified"
    );
    // A new code works (and the old one no longer does).
    g.ok(&["request", "send-code", id]);
    let fresh = g.code_for(id);
    if fresh != code {
        assert!(g
            .fails(&["request", "verify", id, "--code", &code])
            .contains("wrong code"));
    }
    assert_eq!(
        g.ok(&["request", "verify", id, "--code", &fresh])["status"],
        "verified"
    );
    // Codes are stored hashed: the database never holds the digits.
    let db = std::fs::read(g.db_path()).unwrap();
    assert!(
        !db.windows(6).any(|w| w == fresh.as_bytes())
            || !String::from_utf8_lossy(&db).contains(&format!("code\":\"{fresh}"))
    );

    // Same subject, same kind, still open: a duplicate.
    let dup = g.fails(&[
        "request",
        "create",
        "--kind",
        "erasure",
        "--user",
        "mallory-target",
    ]);
    assert!(dup.contains("duplicate") && dup.contains(id), "{dup}");
    // Another kind is a different request.
    create(&g, "access", "mallory-target", None);
}

#[test]
fn bad_input_gives_clear_errors_and_changes_nothing() {
    let g = gdpr();
    let before = g.ok(&["audit", "verify"]);
    for (args, expect) in [
        (vec!["request", "status", "dsr-nothex"], "malformed"),
        (
            vec!["request", "status", "dsr-000000000000000000000000"],
            "no request",
        ),
        (
            vec!["request", "create", "--kind", "access", "--user", "a{b}"],
            "not a valid id",
        ),
        (
            vec!["request", "create", "--kind", "access", "--user", ""],
            "not a valid id",
        ),
        (
            vec![
                "contact",
                "set",
                "--user",
                "bob",
                "--email",
                "not-an-address",
                "--source",
                "account record",
            ],
            "email",
        ),
        (
            vec![
                "request",
                "create",
                "--kind",
                "access",
                "--user",
                "bob",
                "--received-at",
                "31/01/2025",
            ],
            "received_at",
        ),
        (
            vec!["request", "create", "--kind", "deletion", "--user", "bob"],
            "invalid value 'deletion'",
        ),
        (
            vec!["export", "dsr-000000000000000000000000", "--format", "pdf"],
            "invalid value 'pdf'",
        ),
        (vec!["export", "dsr-000000000000000000000000"], "no request"),
        (vec!["erase", "dsr-000000000000000000000000"], "no request"),
        (vec!["request", "list", "--status", "done"], "status"),
        (
            vec![
                "request",
                "create",
                "--kind",
                "access",
                "--user",
                "nobody-on-record",
            ],
            "no contact address on record",
        ),
        (
            vec![
                "request",
                "create",
                "--kind",
                "access",
                "--user",
                "bob",
                "--email",
                "attacker@example.org",
            ],
            "unexpected argument '--email'",
        ),
        (
            vec![
                "hold",
                "add",
                "--user",
                "bob",
                "--category",
                "everything",
                "--reason",
                "x",
            ],
            "category",
        ),
        (vec!["proof", "--user", "a\u{1}b"], "not a valid id"),
    ] {
        let err = g.fails(&args);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    assert_eq!(g.ok(&["request", "list"]), serde_json::json!([]));
    let after = g.ok(&["audit", "verify"]);
    assert_eq!(
        before["head_seq"], after["head_seq"],
        "nothing was recorded"
    );
}

#[test]
fn editing_one_byte_of_the_audit_database_is_detected_and_named() {
    let g = gdpr();
    for i in 0..5 {
        create(&g, "access", &format!("user-{i}"), None);
    }
    g.ok(&["audit", "checkpoint"]);
    let clean = g.ok(&["audit", "verify"]);
    assert_eq!(clean["ok"], true);
    let entries = g.ok(&["audit", "show"]);
    // Change one byte of entry 5's details on disk.
    let target = &entries[4];
    assert_eq!(target["seq"], 5);
    let needle = format!(
        "\"request\":\"{}\"",
        target["details"]["request"].as_str().unwrap()
    );
    let path = g.db_path();
    // Fold the WAL into the file first so the bytes are where we look.
    g.ok(&["audit", "checkpoint"]);
    let mut bytes = std::fs::read(&path).unwrap();
    let wal = path.with_extension("db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL still holds data"
    );
    let hits: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle.as_bytes())
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty(), "the entry's details are in the file");
    for at in hits {
        let last_hex = at + needle.len() - 2;
        bytes[last_hex] = if bytes[last_hex] == b'0' { b'1' } else { b'0' };
    }
    std::fs::write(&path, &bytes).unwrap();
    let broken = g.run(&["audit", "verify"]);
    assert_eq!(broken.status, 1);
    let named = format!(
        "entry 5 ({}) was edited",
        target["action"].as_str().unwrap()
    );
    assert!(broken.stderr.contains(&named), "{}", broken.stderr);
}
