//! The companion's own records in SQLite: requests, verification codes,
//! erasure steps, legal holds, consents, packages and the audit chain.

use crate::error::Result;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// Version 1: the schema as first released (its `IF NOT EXISTS` lets it
/// run over a database made before versions were recorded).
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'portability', 'erasure')),
    -- The identifier and contact in clear while the request is open; both are
    -- cleared when an erasure completes (subject_mac stays as the proof's key).
    subject TEXT,
    email TEXT,
    subject_mac TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at TEXT NOT NULL,
    due_date TEXT NOT NULL,
    extended_months INTEGER NOT NULL DEFAULT 0,
    extension_reason TEXT,
    rejection_reason TEXT,
    failure TEXT,
    completed_at TEXT,
    proof TEXT
);
CREATE INDEX IF NOT EXISTS requests_subject ON requests (subject_mac, kind);
CREATE TABLE IF NOT EXISTS codes (
    request_id TEXT PRIMARY KEY REFERENCES requests (id),
    code_mac TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS code_counts (
    request_id TEXT PRIMARY KEY REFERENCES requests (id),
    issued INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS erasure_steps (
    request_id TEXT NOT NULL REFERENCES requests (id),
    seq INTEGER NOT NULL,
    step TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'held', 'retained')),
    detail TEXT,
    done_at TEXT,
    PRIMARY KEY (request_id, seq)
);
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY,
    subject_mac TEXT NOT NULL,
    category TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    released_at TEXT
);
CREATE TABLE IF NOT EXISTS consents (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    granted INTEGER NOT NULL,
    at TEXT NOT NULL,
    notice_version TEXT NOT NULL,
    method TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS consents_subject ON consents (subject, purpose, id);
CREATE TABLE IF NOT EXISTS packages (
    token_hash TEXT PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests (id),
    format TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject_mac TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    mac TEXT NOT NULL
);
-- After pruning: the checkpoint the remaining chain starts from.
CREATE TABLE IF NOT EXISTS anchor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
);
"#;

/// Version 2: checkpoints and the anchor carry their ordinal and MAC, the
/// head seal holds the end of the log (audit.rs); an existing log is
/// resealed on first open (`needs_reseal`).
const V2: &str = r#"
ALTER TABLE checkpoints ADD COLUMN n INTEGER;
ALTER TABLE anchor ADD COLUMN n INTEGER;
ALTER TABLE anchor ADD COLUMN mac TEXT;
CREATE TABLE head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    checkpoints INTEGER NOT NULL,
    mac TEXT NOT NULL
);
INSERT INTO kv (k, v) SELECT 'audit_reseal', '1'
    WHERE EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM anchor);
"#;

/// Version 3: contact addresses taken from the subject's own records or a
/// verified claim (requests are sent their codes there, never to an
/// address the requester typed).
const V3: &str = r#"
CREATE TABLE contacts (
    subject_mac TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"#;

/// The migrations in order; `PRAGMA user_version` counts those applied.
/// Append only: a released migration is never edited.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

fn migrate(conn: &mut Connection) -> Result<()> {
    // Every request opens the database: an up-to-date one is only read, so
    // concurrent requests don't queue on the write lock just to learn that.
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Read again under the lock: another process may have migrated meanwhile.
    let current: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(crate::error::Error::Config(format!(
            "the database has schema version {current}; this build knows up to {SCHEMA_VERSION} (upgrade meshguard-gdpr)"
        )));
    }
    for sql in MIGRATIONS.iter().skip(current) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

pub fn open(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            crate::files::private_dir(dir)?;
        }
    }
    // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm
    // files the database file's mode.
    if !path.exists() {
        crate::files::private_file(path, b"")?;
    } else {
        crate::files::restrict(path)?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Every transaction takes the write lock when it begins: a deferred one
    // that reads first and then writes is refused at once ("database is
    // locked") when another connection wrote meanwhile, without waiting.
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Erased rows (identifiers, consent history) are overwritten, not left
    // in free pages of the file.
    conn.pragma_update(None, "secure_delete", "ON")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// True when a log from before schema version 2 awaits its MACs.
pub fn needs_reseal(conn: &Connection) -> Result<bool> {
    Ok(kv_get(conn, "audit_reseal")?.is_some())
}

pub fn kv_get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT v FROM kv WHERE k = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub fn kv_set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        [key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_up_to_date_database_opens_while_another_connection_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gdpr.db");
        let mut writer = open(&path).unwrap();
        writer.busy_timeout(Duration::ZERO).unwrap();
        let tx = writer
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        // A request opening the database needs no write lock: taking one
        // here would wait out the busy timeout and fail, "database is locked".
        let reader = open(&path).unwrap();
        let version: usize = reader
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        tx.commit().unwrap();
    }

    #[test]
    fn a_database_from_before_versions_is_migrated_and_resealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // What the first release wrote: the version 1 tables, no version.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.execute(
                "INSERT INTO audit (seq, at, actor, action, details, prev_hash, hash)
                 VALUES (1, 'x', 'a', 'b', '{}', 'p', 'h')",
                [],
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(needs_reseal(&conn).unwrap());
        conn.execute("SELECT n FROM checkpoints", []).ok();
        let contacts: i64 = conn
            .query_row("SELECT COUNT(*) FROM contacts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(contacts, 0);
        drop(conn);
        // Opening again applies nothing twice.
        let conn = open(&path).unwrap();
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_database_newer_than_the_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let Err(err) = open(&path) else {
            panic!("a newer schema must be refused")
        };
        assert!(err.to_string().contains("schema version"), "{err}");
    }
}
