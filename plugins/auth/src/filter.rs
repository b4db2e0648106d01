//! The per-request context: strips incoming `x-auth-*`, lets public routes
//! through, and otherwise verifies the bearer token (cache, signature,
//! claims, revocation, scopes) before setting the identity headers.

use crate::activity::{self, Seen};
use crate::config::StaleAction;
use crate::identity_headers::IDENTITY_PREFIX;
use crate::reply::{self, Refusal};
use crate::runtime::Runtime;
use crate::verify::{self, Reject, Verified};
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::request_headers::RequestHeaders;
use meshguard_policy::auth::claims::{check_issued_at, has_scopes};
use meshguard_policy::auth::revocation::TokenRef;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::net::IpAddr;
use std::rc::Rc;

pub struct AuthFilter {
    runtime: Option<Rc<Runtime>>,
}

impl AuthFilter {
    pub fn new(runtime: Option<Rc<Runtime>>) -> AuthFilter {
        AuthFilter { runtime }
    }
}

/// Where the token was looked for and what was found.
#[derive(Debug, PartialEq, Eq)]
enum Found<'a> {
    None,
    Token(&'a str),
    /// Several or unreadable credentials: never guess which one counts.
    Ambiguous,
}

/// The bearer token from `header` (`Bearer <token>`), else from `cookie`.
fn find_token<'a>(headers: &'a RequestHeaders, header: &str, cookie: Option<&str>) -> Found<'a> {
    let mut found = Found::None;
    for value in headers.values(header) {
        if found != Found::None {
            return Found::Ambiguous;
        }
        let Ok(text) = std::str::from_utf8(value) else {
            return Found::Ambiguous;
        };
        let text = text.trim();
        found = match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Found::Token(token.trim_start_matches(' '))
            }
            // Another scheme (Basic, ...) is no bearer token.
            _ => Found::None,
        };
    }
    if found != Found::None {
        return found;
    }
    let Some(cookie) = cookie else {
        return Found::None;
    };
    for value in headers.values("cookie") {
        let Ok(text) = std::str::from_utf8(value) else {
            continue;
        };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                if name == cookie {
                    if found != Found::None {
                        return Found::Ambiguous;
                    }
                    found = Found::Token(value.trim_matches('"'));
                }
            }
        }
    }
    found
}

fn is_public(routes: &[String], path: &str) -> bool {
    routes.iter().any(|r| match r.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == r,
    })
}

/// The scopes the longest matching `required_scopes` prefix asks for.
fn required_scopes<'a>(runtime: &'a Runtime, path: &str) -> &'a [String] {
    runtime
        .config
        .required_scopes
        .iter()
        .filter(|r| path.starts_with(&r.prefix))
        .max_by_key(|r| r.prefix.len())
        .map_or(&[], |r| r.scopes.as_slice())
}

/// The peer's address as Envoy reports it, without the port.
fn peer() -> Option<IpAddr> {
    let raw = host::property(b"source\0address")?;
    activity::client_ip(std::str::from_utf8(&raw).ok()?)
        .parse()
        .ok()
}

/// The client's address: the peer, or what the configured trusted hops say.
fn client_of(runtime: &Runtime, headers: &RequestHeaders, peer: IpAddr) -> IpAddr {
    let forwarded = runtime
        .config
        .session_activity
        .as_ref()
        .and_then(|ac| ac.client_ip_header.as_deref())
        .and_then(|name| headers.text(name));
    runtime.trusted_hops.client(peer, forwarded)
}

impl AuthFilter {
    fn refuse(&self, runtime: &Runtime, refusal: Refusal<'_>, reason: &str) -> Action {
        runtime.stats.reject(reason);
        reply::send(&runtime.config.realm, refusal);
        Action::Pause
    }

    /// A token that does not verify: charged to the client's budget, and a
    /// 429 once the budget is spent. (No token at all, or a genuine but
    /// revoked one, costs no verification and reveals nothing: not charged.)
    fn refuse_charged(
        &self,
        runtime: &Runtime,
        headers: &RequestHeaders,
        refusal: Refusal<'_>,
        reason: &str,
    ) -> Action {
        let now_ms = headers.arrival_nanos() / 1_000_000;
        if let (Some(budget), Some(peer)) = (&runtime.budget, peer()) {
            let client = client_of(runtime, headers, peer).to_string();
            if let Ok(mut budget) = budget.try_borrow_mut() {
                let (allowed, retry_after_s) = budget.charge(&client, now_ms);
                if !allowed {
                    return self.refuse(
                        runtime,
                        Refusal::OverBudget { retry_after_s },
                        "over_reject_budget",
                    );
                }
            }
        }
        self.refuse(runtime, refusal, reason)
    }

    /// While some client is out of budget: a client out of budget gets 429
    /// before any verification, unless its token is a verified one cached.
    fn over_budget(&self, runtime: &Runtime, headers: &RequestHeaders, token: &str) -> Option<u64> {
        let budget = runtime.budget.as_ref()?.try_borrow().ok()?;
        let now_ms = headers.arrival_nanos() / 1_000_000;
        if !budget.is_hot(now_ms) {
            return None;
        }
        let client = client_of(runtime, headers, peer()?).to_string();
        if budget.allows(&client, now_ms) {
            return None;
        }
        let cached = runtime
            .cache
            .try_borrow()
            .is_ok_and(|c| c.get(token).is_some());
        (!cached).then(|| budget.retry_after_s(&client, now_ms))
    }

    /// A cached verification if still in its validity window, else a fresh
    /// one; `true` with a fresh one (this worker has not seen the token).
    fn verified(
        &self,
        runtime: &Runtime,
        token: &str,
        now_s: i64,
    ) -> Result<(Rc<Verified>, bool), Reject> {
        if let Ok(cache) = runtime.cache.try_borrow() {
            if let Some(hit) = cache.get(token) {
                runtime.stats.cache_hits.inc();
                hit.window.check(now_s).map_err(Reject::Claim)?;
                let policy = &runtime.policy;
                check_issued_at(hit.iat, now_s, policy.skew_s, policy.max_age_s)
                    .map_err(Reject::Claim)?;
                return Ok((Rc::clone(hit), false));
            }
        }
        runtime.stats.cache_misses.inc();
        let result = match runtime.keys.try_borrow() {
            Ok(keys) => verify::verify(token, &keys, &runtime.policy, now_s).map(Rc::new),
            Err(_) => Err(Reject::UnknownKid),
        };
        match &result {
            Ok(v) => {
                if let Ok(mut cache) = runtime.cache.try_borrow_mut() {
                    cache.insert(token, Rc::clone(v));
                }
            }
            Err(Reject::UnknownKid) => runtime.jwks_wanted.set(true),
            Err(_) => {}
        }
        result.map(|v| (v, true))
    }

    /// Notes the request's session for meshguard-state: always when this
    /// worker sees the token for the first time (`fresh`: a new session is
    /// registered, no per-request call), else on a sample. The address and
    /// location are believed only from a trusted hop.
    fn record_activity(
        &self,
        runtime: &Runtime,
        headers: &RequestHeaders,
        v: &Verified,
        fresh: bool,
    ) {
        let (Some(ac), Some(sid)) = (&runtime.config.session_activity, &v.sid) else {
            return;
        };
        if fresh {
            runtime.stats.sessions_seen.inc();
        } else {
            let sampled = ac.sample_ratio > 0.0
                && host::random_bytes::<8>()
                    .map(|b| (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64)
                    .is_some_and(|r| r < ac.sample_ratio);
            if !sampled {
                return;
            }
            runtime.stats.activity_sampled.inc();
        }
        let peer = peer();
        let trusted_peer = peer.is_some_and(|p| runtime.trusted_hops.trusts(p));
        let header = |name: &Option<String>| headers.text(name.as_deref()?);
        let geo = if trusted_peer {
            activity::geo(header(&ac.geo_lat_header), header(&ac.geo_lon_header))
        } else {
            None
        };
        let seen = Seen {
            user_agent: headers.text("user-agent").and_then(activity::user_agent),
            ip: peer.map(|p| client_of(runtime, headers, p).to_string()),
            geo,
        };
        let now_ms = headers.arrival_nanos() / 1_000_000;
        let kept = runtime
            .activity
            .try_borrow_mut()
            .is_ok_and(|mut buffer| buffer.record(&v.sub, sid, now_ms, seen));
        if !kept {
            runtime.stats.activity_dropped.inc();
        }
    }
}

impl Context for AuthFilter {}

/// Removes every incoming `x-auth-*` header but those in `keep` (about to
/// be set, which replaces them anyway).
fn strip_identity(headers: &mut RequestHeaders, keep: &[&str]) {
    let incoming: Vec<String> = headers
        .iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with(IDENTITY_PREFIX) && !keep.contains(name))
        .map(str::to_owned)
        .collect();
    for name in incoming {
        headers.set(&name, None);
    }
}

impl AuthFilter {
    /// Verifies the request's token and sets the identity headers in
    /// `headers` (shared with the other policies in the single-module build).
    /// A refused request is answered here and never reaches the upstream,
    /// so client-sent identity headers are stripped only on the way through.
    pub fn on_request_headers(&mut self, headers: &mut RequestHeaders) -> Action {
        let Some(runtime) = self.runtime.clone() else {
            strip_identity(headers, &[]);
            return Action::Continue;
        };
        let config = &runtime.config;
        let path = headers.text(":path").unwrap_or("");
        let path = path.split(['?', '#']).next().unwrap_or("");
        if is_public(&config.public_routes, path) {
            runtime.stats.public.inc();
            strip_identity(headers, &[]);
            return Action::Continue;
        }

        let token = match find_token(
            headers,
            &config.token.header,
            config.token.cookie.as_deref(),
        ) {
            // Nothing to verify, nothing to guess: not charged.
            Found::None => return self.refuse(&runtime, Refusal::MissingToken, "missing_token"),
            Found::Ambiguous => {
                return self.refuse_charged(
                    &runtime,
                    headers,
                    Refusal::InvalidToken("malformed"),
                    "malformed",
                )
            }
            Found::Token(token) => token,
        };
        if let Some(retry_after_s) = self.over_budget(&runtime, headers, token) {
            return self.refuse(
                &runtime,
                Refusal::OverBudget { retry_after_s },
                "over_reject_budget",
            );
        }
        if token.len() > config.max_token_bytes {
            return self.refuse_charged(
                &runtime,
                headers,
                Refusal::InvalidToken("too_large"),
                "too_large",
            );
        }

        let now = headers.arrival_nanos() / 1_000_000;
        let now_s = i64::try_from(now / 1000).unwrap_or(i64::MAX);
        if let (Some(rc), Some(feed)) = (&config.revocation, &runtime.feed) {
            let stale = feed
                .try_borrow()
                .map_or(true, |f| f.is_stale(now, rc.max_staleness_ms));
            let status = match rc.on_stale {
                StaleAction::Allow => None,
                StaleAction::Reject401 => Some(401),
                StaleAction::Reject503 => Some(503),
            };
            if let (true, Some(status)) = (stale, status) {
                return self.refuse(&runtime, Refusal::Stale { status }, "stale_revocations");
            }
        }

        let (verified, fresh) = match self.verified(&runtime, token, now_s) {
            Ok(v) => v,
            Err(reject) => {
                let reason = reject.reason();
                return self.refuse_charged(
                    &runtime,
                    headers,
                    Refusal::InvalidToken(reason),
                    reason,
                );
            }
        };

        if let Some(feed) = &runtime.feed {
            let token_ref = TokenRef {
                iss: verified.iss.as_deref(),
                jti: verified.jti.as_deref(),
                sub: Some(&verified.sub),
                iat: verified.iat,
                sid: verified.sid.as_deref(),
            };
            let revoked = feed
                .try_borrow()
                .ok()
                .and_then(|f| f.set.check(&token_ref, now_s));
            if let Some(revoked) = revoked {
                runtime.stats.revoked_hits.inc();
                let reason = revoked.reason();
                // A genuine token, revoked: nothing guessed, not charged.
                return self.refuse(&runtime, Refusal::InvalidToken(reason), reason);
            }
        }

        let required = required_scopes(&runtime, path);
        if !has_scopes(&verified.scopes, required) {
            return self.refuse(
                &runtime,
                Refusal::InsufficientScope(required),
                "insufficient_scope",
            );
        }

        let scopes = (!verified.scopes.is_empty()).then(|| verified.scopes.join(" "));
        let consents = runtime.consents.as_ref().and_then(|cache| {
            let mut cache = cache.try_borrow_mut().ok()?;
            cache.header(&verified.sub, now).map(str::to_string)
        });
        let consents_header = config
            .consents
            .as_ref()
            .map_or("x-auth-consents", |c| c.header.as_str());
        let identity = [
            ("x-auth-sub", Some(verified.sub.as_str())),
            ("x-auth-tier", verified.tier.as_deref()),
            ("x-auth-session", verified.sid.as_deref()),
            ("x-auth-scopes", scopes.as_deref()),
            ("x-auth-groups", verified.groups.as_deref()),
            (consents_header, consents.as_deref()),
        ];
        let set: Vec<&str> = identity
            .iter()
            .filter(|(_, value)| value.is_some())
            .map(|(name, _)| *name)
            .collect();
        strip_identity(headers, &set);
        for (name, value) in identity {
            if value.is_some() {
                headers.set(name, value);
            }
        }
        runtime.stats.verified.inc();
        self.record_activity(&runtime, headers, &verified, fresh);
        Action::Continue
    }
}

impl HttpContext for AuthFilter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.on_request_headers(&mut RequestHeaders::fetch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &[u8])]) -> RequestHeaders {
        RequestHeaders::from_list(pairs)
    }

    #[test]
    fn bearer_from_header_or_cookie() {
        let auth = "authorization";
        assert_eq!(
            find_token(&h(&[(auth, b"Bearer abc")]), auth, None),
            Found::Token("abc")
        );
        assert_eq!(
            find_token(&h(&[(auth, b"bearer  abc ")]), auth, None),
            Found::Token("abc")
        );
        assert_eq!(
            find_token(&h(&[(auth, b"Basic abc")]), auth, None),
            Found::None
        );
        assert_eq!(
            find_token(&h(&[(auth, b"Bearer a"), (auth, b"Bearer b")]), auth, None),
            Found::Ambiguous
        );
        assert_eq!(
            find_token(&h(&[(auth, b"Bearer \xff")]), auth, None),
            Found::Ambiguous
        );
        let cookies: &[(&str, &[u8])] = &[("cookie", b"x=1; session=tok; y=2")];
        assert_eq!(
            find_token(&h(cookies), auth, Some("session")),
            Found::Token("tok")
        );
        assert_eq!(find_token(&h(cookies), auth, None), Found::None);
        let twice: &[(&str, &[u8])] = &[("cookie", b"session=a; session=b")];
        assert_eq!(
            find_token(&h(twice), auth, Some("session")),
            Found::Ambiguous
        );
    }

    #[test]
    fn public_routes_exact_or_prefix() {
        let routes = vec!["/healthz".to_string(), "/public/*".to_string()];
        assert!(is_public(&routes, "/healthz"));
        assert!(!is_public(&routes, "/healthz/x"));
        assert!(is_public(&routes, "/public/a"));
        assert!(!is_public(&routes, "/publicx"));
    }
}
