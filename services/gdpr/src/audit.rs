//! The append-only, hash-chained audit log. Each entry's hash covers the
//! previous entry's hash and its own fields, so an edit, a deletion or a
//! reorder breaks the chain at that entry. Three records carry an HMAC under
//! the key kept apart from the database, so whoever can write the database
//! cannot rebuild them:
//! - each checkpoint, over (seq, hash, time, its ordinal `n`): deleting a
//!   checkpoint leaves a gap in the ordinals;
//! - the pruning anchor the chain starts from, over (seq, hash, `n`):
//!   cutting the head of the log needs a new anchor;
//! - the head seal, rewritten with every entry, over (last seq, last hash,
//!   checkpoint count): cutting the tail leaves the log short of it.
//!
//! Entries never hold personal data in clear: subjects are HMACs
//! (`Keys::subject`).

mod append;
mod ends;
mod macs;
mod prune;
mod read;
mod seal;
mod verify;

pub use append::append;
pub use prune::prune;
pub use read::entries;
pub use seal::{checkpoint, reseal};
pub use verify::verify;

/// A checkpoint is sealed automatically after this many entries.
pub const CHECKPOINT_EVERY: i64 = 32;
/// Art. 5(2) accountability records: 7 years.
pub const RETENTION_DAYS: i64 = 2_555;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keys;
    use rusqlite::Connection;

    fn setup() -> (tempfile::TempDir, Connection, Keys) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("g.db")).unwrap();
        (dir, conn, Keys::from_bytes(vec![9u8; 32]).unwrap())
    }

    fn fill(conn: &Connection, keys: &Keys, n: usize) {
        for i in 0..n {
            append(
                conn,
                keys,
                "t",
                &format!("a{i}"),
                None,
                &serde_json::json!({"i": i}),
            )
            .unwrap();
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 40);
        let v = verify(&conn, &keys).unwrap();
        assert!(v.ok, "{:?}", v.problems);
        assert_eq!((v.entries, v.checkpoints, v.head_seq), (40, 1, 40));
    }

    #[test]
    fn edits_deletions_and_reorders_are_named() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 10);
        conn.execute("UPDATE audit SET details = '{\"i\":99}' WHERE seq = 4", [])
            .unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(
            v.problems[0].starts_with("entry 4 (a3) was edited"),
            "{:?}",
            v.problems
        );

        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 10);
        conn.execute("DELETE FROM audit WHERE seq = 6", []).unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(
            v.problems[0].contains("entries 6..=5") || v.problems[0].contains("6..=6"),
            "{:?}",
            v.problems
        );

        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 10);
        // Swap the contents of entries 3 and 4 (hashes and all).
        conn.execute_batch(
            "UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4;
             UPDATE audit SET seq = 4 WHERE seq = -3;",
        )
        .unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(!v.ok);
        assert!(v.problems[0].contains("entry 3"), "{:?}", v.problems);
    }

    #[test]
    fn truncating_the_tail_past_a_checkpoint_is_detected() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 5);
        checkpoint(&conn, &keys).unwrap();
        conn.execute("DELETE FROM audit WHERE seq >= 4", [])
            .unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(
            v.problems[0].contains("entries 4..=5 were deleted"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn a_forged_checkpoint_fails() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 5);
        checkpoint(&conn, &keys).unwrap();
        let other = Keys::from_bytes(vec![1u8; 32]).unwrap();
        assert!(!verify(&conn, &other).unwrap().ok);
    }

    #[test]
    fn a_log_written_before_the_macs_is_resealed() {
        let (_d, conn, keys) = setup();
        fill(&conn, &keys, 40);
        // As schema version 1 left it: no ordinals, no head seal.
        conn.execute_batch("UPDATE checkpoints SET n = NULL; DELETE FROM head;")
            .unwrap();
        assert!(!verify(&conn, &keys).unwrap().ok);
        reseal(&conn, &keys).unwrap();
        let v = verify(&conn, &keys).unwrap();
        assert!(v.ok, "{:?}", v.problems);
        // And a cut tail is caught afterwards.
        conn.execute("DELETE FROM audit WHERE seq = 40", [])
            .unwrap();
        assert!(!verify(&conn, &keys).unwrap().ok);
    }

    #[test]
    fn pruning_keeps_a_checkpoint_as_the_anchor() {
        let (_d, mut conn, keys) = setup();
        fill(&conn, &keys, 40);
        let pruned = prune(&mut conn, &keys, -1).unwrap();
        assert_eq!(pruned.anchor_seq, Some(32));
        assert_eq!(pruned.removed_entries, 32);
        let v = verify(&conn, &keys).unwrap();
        assert!(v.ok, "{:?}", v.problems);
        assert_eq!((v.anchor_seq, v.entries, v.head_seq), (32, 9, 41));
        // An edit after pruning is still caught.
        conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 35", [])
            .unwrap();
        assert!(verify(&conn, &keys).unwrap().problems[0].starts_with("entry 35"));
    }
}
