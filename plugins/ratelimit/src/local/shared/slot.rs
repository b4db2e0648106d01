//! What shared data holds: a slot's value (`"<tat> <tat> <key>"`), the
//! global bucket's TAT, and the slot hash's key.

use super::super::store::Store;

/// The slot hash's key: 16 random bytes, drawn by the first VM of an Envoy.
const SLOT_KEY: &str = "meshguard.ratelimit.slot-key";

pub(super) type Tats = [Option<u64>; 2];

pub(super) fn encode(key: &str, tats: &Tats) -> Vec<u8> {
    let mut out = Vec::with_capacity(42 + key.len());
    let mut digits = itoa::Buffer::new();
    for tat in tats {
        out.extend_from_slice(digits.format(tat.unwrap_or(0)).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(key.as_bytes());
    out
}

pub(super) fn decode(raw: &[u8]) -> Option<(&str, Tats)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.splitn(3, ' ');
    let minute: u64 = parts.next()?.parse().ok()?;
    let hour: u64 = parts.next()?.parse().ok()?;
    let key = parts.next()?;
    let tat = |t: u64| (t > 0).then_some(t);
    Some((key, [tat(minute), tat(hour)]))
}

/// The slot hash's key every worker of this Envoy uses: the one in shared
/// data, or else the `fresh` bytes written there. Written without
/// compare-and-swap (a new entry has no version), so whatever is stored after
/// the write is read back and used.
pub(super) fn slot_key(store: &impl Store, fresh: [u8; 16]) -> (u64, u64) {
    let parse = |raw: Option<Vec<u8>>| -> Option<(u64, u64)> {
        let raw: [u8; 16] = raw?.try_into().ok()?;
        let (k0, k1) = raw.split_at(8);
        Some((
            u64::from_le_bytes(k0.try_into().ok()?),
            u64::from_le_bytes(k1.try_into().ok()?),
        ))
    };
    if let Some(key) = parse(store.get(SLOT_KEY).0) {
        return key;
    }
    store.set(SLOT_KEY, &fresh, None);
    parse(store.get(SLOT_KEY).0)
        .or_else(|| parse(Some(fresh.to_vec())))
        .unwrap_or((0, 0))
}

/// What the slot says about `key`: its TATs, whether another key with
/// buckets still owing tokens held the slot, and whether it is `key`'s.
pub(super) fn stored(raw: Option<&[u8]>, key: &str, now: u64) -> (Tats, bool, bool) {
    match raw.and_then(decode) {
        Some((k, tats)) if k == key => (tats, false, true),
        Some((_, tats)) => ([None, None], tats.iter().flatten().any(|t| *t > now), false),
        None => ([None, None], false, false),
    }
}

pub(super) fn parse_tat(raw: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(raw?).ok()?.parse().ok()
}
