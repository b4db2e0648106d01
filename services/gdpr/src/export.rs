//! Art. 15 access and Art. 20 portability: collect the user's data from
//! meshguard-state's Redis and every connector, write one package, and
//! hand it out through an unguessable link for 7 days (or a shorter
//! `--package-ttl-s`).

use crate::config::Connector;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::metadata;
pub use crate::package::{Format, Package, Record, PACKAGE_FORMAT};
use crate::requests::{self, Kind, Request};
use crate::{connectors, formats, keys, time, userdata};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Flattens JSON to (JSON pointer, scalar) leaves.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                flatten(&format!("{prefix}/{k}"), x, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}/{i}"), x, out);
            }
        }
        other => out.push((prefix.to_string(), scalar(other))),
    }
}

fn redis_records(entry: &str, value: &Value, out: &mut Vec<Record>) {
    let category = userdata::category(entry).to_string();
    let location = crate::userdata::Entry::parse(entry).key;
    let mut push = |field: String, value: String| {
        out.push(Record {
            source: "meshguard-state".into(),
            category: category.clone(),
            location: location.clone(),
            field,
            value,
        })
    };
    match value {
        // A hash, a zset or a member: one record per field, structured
        // values (session records, consents) as JSON text.
        Value::Object(m) => {
            for (k, v) in m {
                push(k.clone(), scalar(v));
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                push(i.to_string(), scalar(v));
            }
        }
        other => push(String::new(), scalar(other)),
    }
}

/// Everything held about `user`, from Redis and every connector.
pub fn collect(
    core: &Core,
    user: &str,
    connectors: &[Connector],
) -> Result<(Vec<Record>, BTreeSet<String>)> {
    let mut con = core.redis()?;
    let entries = userdata::find(&mut con, user)?;
    let bar = crate::progress::bar("collecting", (entries.len() + connectors.len()) as u64);
    let mut records = Vec::new();
    let mut categories = BTreeSet::new();
    for entry in &entries {
        bar.set_message(userdata::category(entry));
        if let Some(value) = userdata::read(&mut con, entry)? {
            categories.insert(userdata::category(entry).to_string());
            redis_records(entry, &value, &mut records);
        }
        bar.inc(1);
    }
    for c in connectors {
        bar.set_message(c.name.clone());
        if let Some(body) = connectors::fetch(c, user)? {
            let mut leaves = Vec::new();
            flatten("", &body, &mut leaves);
            if !leaves.is_empty() {
                categories.insert(c.category());
            }
            for (field, value) in leaves {
                records.push(Record {
                    source: format!("upstream:{}", c.name),
                    category: c.category(),
                    location: c.url.clone(),
                    field,
                    value,
                });
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((records, categories))
}

#[derive(Debug, Serialize)]
pub struct Exported {
    pub request_id: String,
    pub format: Format,
    pub link: String,
    pub path: PathBuf,
    pub expires_at: String,
    pub records: usize,
    pub categories: Vec<String>,
}

/// Builds the package for a verified access or portability request.
pub fn run(core: &mut Core, id: &str, format: Format) -> Result<Exported> {
    let request: Request = requests::get(core, id)?;
    let user = request.user()?.to_string();
    if request.status == requests::COMPLETED {
        // Another format of an answered request: allowed, it adds nothing new.
    } else {
        requests::start(core, &request, &[Kind::Access, Kind::Portability])?;
    }
    let connectors = core.settings.connectors()?;
    let (records, categories) = match collect(core, &user, &connectors) {
        Ok(x) => x,
        Err(e) => {
            if request.status != requests::COMPLETED {
                requests::fail(core, id, &request.subject_mac, &e.to_string())?;
            }
            return Err(e);
        }
    };
    let package = Package {
        format: PACKAGE_FORMAT.into(),
        request_id: id.to_string(),
        request_kind: request.kind.clone(),
        subject: user,
        generated_at: time::now_rfc3339(),
        categories: categories
            .iter()
            .map(|c| metadata::for_category(c, &connectors))
            .collect(),
        rights: metadata::RIGHTS.iter().map(|s| s.to_string()).collect(),
        automated_decision_making: metadata::AUTOMATED_DECISIONS.into(),
        records,
    };
    let bytes = formats::write(&package, format)?;
    let token = keys::random_token()?;
    let token_hash = keys::sha256_hex(token.as_bytes());
    crate::files::private_dir(&core.settings.packages_dir)?;
    let path = core
        .settings
        .packages_dir
        .join(format!("{token_hash}.{}", format.ext()));
    crate::files::private_file(&path, &bytes)?;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(core.settings.package_ttl_s);
    let tx = core.conn.transaction()?;
    tx.execute(
        "INSERT INTO packages (token_hash, request_id, format, path, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            token_hash,
            id,
            format.ext(),
            path.to_string_lossy(),
            time::now_rfc3339(),
            expires.timestamp()
        ],
    )?;
    tx.execute(
        "UPDATE requests SET status = ?2, failure = NULL, completed_at = COALESCE(completed_at, ?3) WHERE id = ?1",
        params![id, requests::COMPLETED, time::now_rfc3339()],
    )?;
    crate::audit::append(
        &tx,
        &core.keys,
        &core.settings.actor,
        "export.completed",
        Some(&request.subject_mac),
        &json!({"request": id, "format": format.ext(), "records": package.records.len(),
                "categories": categories, "package_sha256": keys::sha256_hex(&bytes)}),
    )?;
    tx.commit()?;
    Ok(Exported {
        request_id: id.to_string(),
        format,
        link: format!(
            "{}/v1/packages/{token}",
            core.settings.public_url.trim_end_matches('/')
        ),
        path,
        expires_at: time::rfc3339(expires),
        records: package.records.len(),
        categories: categories.into_iter().collect(),
    })
}

/// The package behind a link, if it exists and has not expired.
pub fn open_package(core: &Core, token: &str) -> Result<(String, Vec<u8>)> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::NotFound("no such package".into()));
    }
    let token_hash = keys::sha256_hex(token.as_bytes());
    let row: Option<(String, String, i64)> = core
        .conn
        .query_row(
            "SELECT format, path, expires_at FROM packages WHERE token_hash = ?1",
            [&token_hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match row {
        Some((format, path, expires)) if expires > time::now_s() => {
            let bytes =
                std::fs::read(&path).map_err(|_| Error::NotFound("no such package".into()))?;
            Ok((format, bytes))
        }
        _ => Err(Error::NotFound(
            "no such package (or it has expired)".into(),
        )),
    }
}

/// Deletes expired packages (files and rows).
pub fn prune_packages(core: &Core) -> Result<u64> {
    let mut stmt = core
        .conn
        .prepare("SELECT token_hash, path FROM packages WHERE expires_at <= ?1")?;
    let expired: Vec<(String, String)> = stmt
        .query_map([time::now_s()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (hash, path) in &expired {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        core.conn
            .execute("DELETE FROM packages WHERE token_hash = ?1", [hash])?;
    }
    if !expired.is_empty() {
        core.audit("packages.pruned", None, json!({"count": expired.len()}))?;
    }
    Ok(expired.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_flattens_to_pointer_leaves() {
        let mut out = Vec::new();
        flatten(
            "",
            &json!({"a": [1, {"b/c": "x"}], "e": {}, "n": null}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                ("/a/0".to_string(), "1".to_string()),
                ("/a/1/b~1c".to_string(), "x".to_string()),
                ("/e".to_string(), "{}".to_string()),
                ("/n".to_string(), "null".to_string()),
            ]
        );
    }
}
