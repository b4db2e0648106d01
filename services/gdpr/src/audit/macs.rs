//! What each record covers: the hash of an entry, and the MACs of a
//! checkpoint, of the pruning anchor and of the head seal.

use crate::keys::{sha256_hex, Keys};

pub(super) fn entry_hash(
    prev: &str,
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    details: &str,
) -> String {
    // A JSON array is an unambiguous encoding of the fields.
    let fields = serde_json::json!([seq, at, actor, action, subject, details]);
    sha256_hex(format!("{prev}{fields}").as_bytes())
}

pub(super) fn checkpoint_mac(keys: &Keys, seq: i64, hash: &str, at: &str, n: i64) -> String {
    keys.mac(
        "audit-checkpoint",
        &[
            seq.to_string().as_bytes(),
            hash.as_bytes(),
            at.as_bytes(),
            n.to_string().as_bytes(),
        ],
    )
}

pub(super) fn anchor_mac(keys: &Keys, seq: i64, hash: &str, n: i64) -> String {
    keys.mac(
        "audit-anchor",
        &[
            seq.to_string().as_bytes(),
            hash.as_bytes(),
            n.to_string().as_bytes(),
        ],
    )
}

pub(super) fn head_mac(keys: &Keys, seq: i64, hash: &str, checkpoints: i64) -> String {
    keys.mac(
        "audit-head",
        &[
            seq.to_string().as_bytes(),
            hash.as_bytes(),
            checkpoints.to_string().as_bytes(),
        ],
    )
}
