//! Redis replies read into Meshguard's types. Every reader returns `None` on
//! a shape it does not expect, and the caller names what it was reading
//! (`failed`), so a changed script or a foreign key never panics a handler.

use crate::store::{LastLocation, StoreError};
use meshguard_api::audit::AuditEvent;
use meshguard_api::revocation::{FeedEntry, Revocation};
use meshguard_api::session::Geo;
use redis::Value;
use std::collections::HashMap;

pub(super) fn failed(what: &str) -> StoreError {
    StoreError::Failed(format!("unexpected reply: {what}"))
}
pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}
pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}
pub(super) fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) => Some(items),
        Value::Nil => Some(&[]),
        _ => None,
    }
}
pub(super) fn u64_of(v: &Value) -> Option<u64> {
    int(v).and_then(|i| u64::try_from(i).ok())
}

/// A flat `[k1, v1, k2, v2, ...]` reply as a map.
pub(super) fn pairs(v: &Value) -> Option<HashMap<String, String>> {
    let items = array(v)?;
    let mut map = HashMap::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        if let [k, v] = pair {
            map.insert(text(k)?, text(v)?);
        }
    }
    Some(map)
}
pub(super) fn location(v: &Value) -> Option<LastLocation> {
    let items = array(v)?;
    if let [lat, lon, at, sid] = items {
        Some(LastLocation {
            geo: Geo {
                lat: text(lat)?.parse().ok()?,
                lon: text(lon)?.parse().ok()?,
            },
            at_ms: text(at)?.parse().ok()?,
            session_id: text(sid)?,
        })
    } else {
        None
    }
}
pub(super) fn feed_entry(id: String, fields: &HashMap<String, String>) -> Option<FeedEntry> {
    let get = |k: &str| fields.get(k).cloned();
    let num = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
    let revocation = match fields.get("kind").map(String::as_str)? {
        "token" => Revocation::Token {
            iss: get("iss")?,
            jti: get("jti")?,
            exp: num("exp")?,
        },
        "user" => Revocation::User {
            sub: get("sub")?,
            not_before: num("not_before")?,
        },
        "session" => Revocation::Session {
            sub: get("sub")?,
            session_id: get("session_id")?,
            until: num("until")?,
        },
        _ => return None,
    };
    Some(FeedEntry {
        cursor: id,
        at_ms: num("at_ms")?,
        revocation,
    })
}

/// `[member1, score1, ...]` with members `a\nb`.
pub(super) fn scored_pairs(v: &Value) -> Option<Vec<(String, String, u64)>> {
    let items = array(v)?;
    let mut out = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        if let [member, score] = pair {
            let member = text(member)?;
            let (a, b) = member.split_once('\n')?;
            let score = text(score)?.parse::<f64>().ok()?;
            out.push((a.to_string(), b.to_string(), score as u64));
        }
    }
    Some(out)
}
pub(super) fn stream_id_of(v: &Value) -> Option<String> {
    text(v)
}
pub(super) fn parse_audit(items: &[Value]) -> Option<Vec<AuditEvent>> {
    let mut events = Vec::with_capacity(items.len());
    for entry in items {
        let [id, fields] = array(entry)? else {
            return None;
        };
        let id = text(id)?;
        let fields = pairs(fields)?;
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        events.push(AuditEvent {
            at_ms: get("at_ms").parse().unwrap_or(0),
            actor: get("actor"),
            action: get("action"),
            subject: get("subject"),
            details: serde_json::from_str(&get("details")).unwrap_or(serde_json::Value::Null),
            id,
        });
    }
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn arr(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    #[test]
    fn numbers_come_as_integers_or_text() {
        assert_eq!(int(&Value::Int(-3)), Some(-3));
        assert_eq!(int(&bulk("42")), Some(42));
        assert_eq!(int(&Value::SimpleString("7".into())), Some(7));
        assert_eq!(int(&bulk("x")), None);
        assert_eq!(int(&Value::Nil), None);
        assert_eq!(u64_of(&Value::Int(5)), Some(5));
        assert_eq!(
            u64_of(&Value::Int(-1)),
            None,
            "a negative count is no count"
        );
    }

    #[test]
    fn text_takes_every_string_form() {
        assert_eq!(text(&bulk("a")).as_deref(), Some("a"));
        assert_eq!(text(&Value::SimpleString("b".into())).as_deref(), Some("b"));
        assert_eq!(text(&Value::Int(9)).as_deref(), Some("9"));
        assert_eq!(
            text(&Value::BulkString(vec![0xff, 0xfe])),
            None,
            "not UTF-8"
        );
        assert_eq!(text(&Value::Nil), None);
        assert_eq!(stream_id_of(&bulk("1-0")).as_deref(), Some("1-0"));
    }

    #[test]
    fn arrays_and_nil_and_pairs() {
        assert_eq!(array(&Value::Nil).map(<[Value]>::len), Some(0));
        assert!(array(&bulk("x")).is_none());
        let map = pairs(&arr(vec![
            bulk("k1"),
            bulk("v1"),
            bulk("k2"),
            Value::Int(2),
        ]))
        .unwrap();
        assert_eq!(map["k1"], "v1");
        assert_eq!(map["k2"], "2");
        assert!(pairs(&arr(vec![bulk("k"), Value::Nil])).is_none());
    }

    #[test]
    fn a_location_is_four_fields() {
        let found = location(&arr(vec![
            bulk("48.85"),
            bulk("2.35"),
            bulk("1000"),
            bulk("s1"),
        ]))
        .unwrap();
        assert_eq!(found.geo.lat, 48.85);
        assert_eq!(found.at_ms, 1000);
        assert_eq!(found.session_id, "s1");
        assert!(location(&Value::Nil).is_none(), "no location yet");
        assert!(location(&arr(vec![bulk("x"), bulk("2"), bulk("1"), bulk("s")])).is_none());
    }

    #[test]
    fn feed_entries_of_each_kind_and_unknown_ones_skipped() {
        let fields = |kv: &[(&str, &str)]| -> HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let token = feed_entry(
            "1-0".into(),
            &fields(&[
                ("kind", "token"),
                ("iss", "i"),
                ("jti", "j"),
                ("exp", "9"),
                ("at_ms", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(token.cursor, "1-0");
        assert_eq!(token.at_ms, 5);
        assert!(matches!(token.revocation, Revocation::Token { exp: 9, .. }));
        let user = feed_entry(
            "2-0".into(),
            &fields(&[
                ("kind", "user"),
                ("sub", "u"),
                ("not_before", "3"),
                ("at_ms", "5"),
            ]),
        )
        .unwrap();
        assert!(matches!(
            user.revocation,
            Revocation::User { not_before: 3, .. }
        ));
        let session = feed_entry(
            "3-0".into(),
            &fields(&[
                ("kind", "session"),
                ("sub", "u"),
                ("session_id", "s"),
                ("until", "7"),
                ("at_ms", "5"),
            ]),
        )
        .unwrap();
        assert!(matches!(
            session.revocation,
            Revocation::Session { until: 7, .. }
        ));
        assert!(feed_entry("4-0".into(), &fields(&[("kind", "future"), ("at_ms", "1")])).is_none());
        assert!(feed_entry("5-0".into(), &fields(&[("kind", "token"), ("iss", "i")])).is_none());
    }

    #[test]
    fn scored_members_split_on_newline() {
        let parsed = scored_pairs(&arr(vec![
            bulk("iss\njti"),
            bulk("12"),
            bulk("a\nb"),
            bulk("3.0"),
        ]))
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                ("iss".into(), "jti".into(), 12),
                ("a".into(), "b".into(), 3)
            ]
        );
        assert!(scored_pairs(&arr(vec![bulk("no-newline"), bulk("1")])).is_none());
    }

    #[test]
    fn audit_entries_with_missing_fields_get_defaults() {
        let entry = arr(vec![
            bulk("9-0"),
            arr(vec![
                bulk("at_ms"),
                bulk("77"),
                bulk("action"),
                bulk("revoke"),
                bulk("details"),
                bulk("{\"n\":1}"),
            ]),
        ]);
        let events = parse_audit(&[entry]).unwrap();
        assert_eq!(events[0].id, "9-0");
        assert_eq!(events[0].at_ms, 77);
        assert_eq!(events[0].action, "revoke");
        assert_eq!(events[0].actor, "");
        assert_eq!(events[0].details["n"], 1);
        assert!(parse_audit(&[bulk("flat")]).is_none());
    }

    #[test]
    fn failures_name_what_was_read() {
        assert!(failed("feed cursor").to_string().contains("feed cursor"));
    }
}
