//! The per-worker root context: configuration, and on a tick the revocation
//! feed, the JWKS refresh, the session reports and the consent sync.

use crate::activity::ActivityBuffer;
use crate::budget::RejectBudget;
use crate::cache::TokenCache;
use crate::config::AuthConfig;
use crate::consent::ConsentCache;
use crate::filter::AuthFilter;
use crate::keys::KeySet;
use crate::runtime::{now_ms, Runtime};
use crate::stats::Stats;
use crate::sync::FeedState;
use crate::verify::VerifyPolicy;
use meshguard_api::consent::ConsentAnswer;
use meshguard_api::revocation::RevocationFeed;
use meshguard_api::session::{SessionReport, SessionReports};
use meshguard_plugin_kit::config::ConfigError;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::policy::Policy;
use meshguard_plugin_kit::state_client::StateClient;
use meshguard_policy::auth::hops::TrustedHops;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::Context;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// Largest session report batch sent (meshguard-state takes 64 KiB bodies
/// by default).
const MAX_REPORT_BATCH_BYTES: usize = 48 * 1024;

/// Largest JWKS body read from the cluster.
const MAX_JWKS_BYTES: usize = 1 << 20;

#[derive(Default)]
pub struct AuthRoot {
    runtime: Option<Rc<Runtime>>,
    feed_client: Option<StateClient>,
    feed_call: Option<u32>,
    next_feed_ms: u64,
    jwks_call: Option<u32>,
    next_jwks_ms: u64,
    last_jwks_attempt_ms: u64,
    activity_client: Option<StateClient>,
    /// Batches on their way, kept to be put back if they do not arrive.
    activity_calls: HashMap<u32, Vec<SessionReport>>,
    next_activity_ms: u64,
    consent_client: Option<StateClient>,
    /// Lookups on their way: the users asked about.
    consent_calls: HashMap<u32, Vec<String>>,
    next_consent_ms: u64,
    /// SHA-256 of the JWKS document in use, to skip unchanged refreshes.
    jwks_digest: Option<[u8; 32]>,
    /// The regular tick period, set after the first (short) tick.
    tick_period: Option<Duration>,
}

impl AuthRoot {
    fn poll_feed(&mut self, runtime: &Runtime, now: u64) {
        let (Some(client), Some(feed), Some(rc)) = (
            self.feed_client.as_mut(),
            runtime.feed.as_ref(),
            runtime.config.revocation.as_ref(),
        ) else {
            return;
        };
        let path = match feed.try_borrow() {
            Ok(feed) => feed.path(rc.page_limit),
            Err(_) => return,
        };
        self.next_feed_ms = now.saturating_add(rc.poll_interval_ms);
        match client.dispatch("GET", &path, None, &[]) {
            Ok(token) => self.feed_call = Some(token),
            Err(err) => {
                runtime.stats.feed_errors.inc();
                log::debug!("auth: revocation feed call not made: {err:?}");
            }
        }
    }

    fn on_feed_response(&mut self, runtime: &Runtime, body_size: usize) {
        let Some(client) = self.feed_client.as_mut() else {
            return;
        };
        let outcome = client.outcome(body_size);
        let parsed = match outcome.status {
            Some(200) => serde_json::from_slice::<RevocationFeed>(&outcome.body)
                .map_err(|e| format!("unreadable feed page: {e}")),
            status => Err(format!("status {status:?}")),
        };
        let page = match parsed {
            Ok(page) => page,
            Err(err) => {
                runtime.stats.feed_errors.inc();
                log::warn!("auth: revocation feed failed: {err}");
                return;
            }
        };
        let now = now_ms();
        let Some(Ok(mut feed)) = runtime.feed.as_ref().map(RefCell::try_borrow_mut) else {
            return;
        };
        let applied = feed.apply(page, now);
        runtime.stats.feed_syncs.inc();
        if applied.snapshot {
            runtime.stats.feed_snapshots.inc();
        }
        runtime.stats.feed_lag_ms.set(feed.lag_ms(now));
        runtime.stats.revocations.set(feed.set.len() as u64);
        if let Some(at_ms) = applied.newest_at_ms {
            runtime.stats.propagation_ms.set(now.saturating_sub(at_ms));
        }
        drop(feed);
        if applied.more {
            self.poll_feed(runtime, now);
        }
    }

    fn fetch_jwks(&mut self, runtime: &Runtime, now: u64) {
        let Some(fetch) = &runtime.config.jwks_fetch else {
            return;
        };
        let due = now >= self.next_jwks_ms;
        let wanted = runtime.jwks_wanted.get()
            && now.saturating_sub(self.last_jwks_attempt_ms) >= fetch.unknown_kid_min_interval_ms;
        if self.jwks_call.is_some() || !(due || wanted) {
            return;
        }
        runtime.jwks_wanted.set(false);
        self.last_jwks_attempt_ms = now;
        self.next_jwks_ms = now.saturating_add(fetch.refresh_interval_ms);
        let headers = vec![
            (":method", "GET"),
            (":path", fetch.path.as_str()),
            (":authority", fetch.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(fetch.timeout_ms);
        match hostcalls::dispatch_http_call(&fetch.cluster, headers, None, vec![], timeout) {
            Ok(token) => self.jwks_call = Some(token),
            Err(status) => {
                runtime.stats.jwks_errors.inc();
                log::warn!(
                    "auth: cannot call JWKS cluster {:?} ({status:?})",
                    fetch.cluster
                );
            }
        }
    }

    fn on_jwks_response(&mut self, runtime: &Runtime, body_size: usize) {
        let status = host::call_response_status();
        let body = host::call_response_body(body_size, MAX_JWKS_BYTES);
        let digest: [u8; 32] = Sha256::digest(&body).into();
        if status == Some(200) && self.jwks_digest == Some(digest) {
            // Unchanged: keep the keys and the verified-token cache.
            runtime.stats.jwks_fetches.inc();
            return;
        }
        let parsed = match status {
            Some(200) => KeySet::parse_fetched(
                &body,
                &runtime.config.key_algorithms,
                &runtime.policy.global_algs,
            ),
            status => Err(format!("status {status:?}")),
        };
        match parsed {
            Ok((fetched, skipped)) => {
                if skipped > 0 {
                    log::info!("auth: JWKS fetched; {skipped} keys not usable and left out");
                }
                let merged = KeySet::merged(&runtime.configured_keys, fetched);
                runtime.stats.keys.set(merged.len() as u64);
                if let (Ok(mut keys), Ok(mut cache)) = (
                    runtime.keys.try_borrow_mut(),
                    runtime.cache.try_borrow_mut(),
                ) {
                    *keys = merged;
                    cache.clear();
                    self.jwks_digest = Some(digest);
                }
                runtime.stats.jwks_fetches.inc();
            }
            Err(err) => {
                runtime.stats.jwks_errors.inc();
                log::warn!("auth: JWKS fetch failed: {err}; keeping the previous keys");
            }
        }
    }

    fn report_activity(&mut self, runtime: &Runtime, now: u64) {
        let (Some(client), Some(ac)) = (
            self.activity_client.as_mut(),
            runtime.config.session_activity.as_ref(),
        ) else {
            return;
        };
        if now < self.next_activity_ms {
            return;
        }
        self.next_activity_ms = now.saturating_add(ac.interval_ms);
        // One batch at a time: a slow service gets no pile of calls.
        if !self.activity_calls.is_empty() {
            return;
        }
        let Ok(mut buffer) = runtime.activity.try_borrow_mut() else {
            return;
        };
        let mut batch = buffer.take(ac.max_per_interval);
        if batch.is_empty() {
            return;
        }
        // Within meshguard-state's body limit: what does not fit waits.
        let mut reports = Vec::with_capacity(batch.len());
        let (mut size, mut taken) = (0, 0);
        for report in &batch {
            let value = serde_json::to_value(report).unwrap_or_default();
            size += value.to_string().len() + 1;
            if size > MAX_REPORT_BATCH_BYTES && taken > 0 {
                break;
            }
            taken += 1;
            reports.push(value);
        }
        let rest = batch.split_off(taken);
        runtime
            .stats
            .activity_dropped
            .add(buffer.put_back(rest) as u64);
        let body = serde_json::to_vec(&SessionReports { reports });
        let sent = body.ok().and_then(|body| {
            client
                .dispatch("POST", "/v1/sessions/reports", Some(&body), &[])
                .ok()
        });
        match sent {
            Some(token) => {
                self.activity_calls.insert(token, batch);
            }
            // Not sent (the client backs off while the service is away):
            // kept for the next period.
            None => {
                let dropped = buffer.put_back(batch);
                runtime.stats.activity_dropped.add(dropped as u64);
            }
        }
    }

    fn on_activity_response(&mut self, runtime: &Runtime, token: u32, body_size: usize) {
        let Some(batch) = self.activity_calls.remove(&token) else {
            return;
        };
        let Some(client) = self.activity_client.as_mut() else {
            return;
        };
        let outcome = client.outcome(body_size);
        // A 4xx will not get better by repeating it; anything else is retried.
        let status = outcome.status.unwrap_or(0);
        if outcome.is_success() {
            runtime.stats.activity_reported.add(batch.len() as u64);
            return;
        }
        if (400..500).contains(&status) {
            log::warn!("auth: session reports refused with status {status}");
            runtime.stats.activity_dropped.add(batch.len() as u64);
            return;
        }
        if let Ok(mut buffer) = runtime.activity.try_borrow_mut() {
            let dropped = buffer.put_back(batch);
            runtime.stats.activity_dropped.add(dropped as u64);
        }
    }

    fn sync_consents(&mut self, runtime: &Runtime, now: u64) {
        let (Some(client), Some(cc), Some(cache)) = (
            self.consent_client.as_mut(),
            runtime.config.consents.as_ref(),
            runtime.consents.as_ref(),
        ) else {
            return;
        };
        if now < self.next_consent_ms || !self.consent_calls.is_empty() {
            return;
        }
        self.next_consent_ms = now.saturating_add(cc.poll_interval_ms);
        let pages = match cache.try_borrow_mut() {
            Ok(mut cache) => cache.pages(now, cc.forget_after_ms),
            Err(_) => return,
        };
        for page in pages {
            let Ok(body) = serde_json::to_vec(&page) else {
                continue;
            };
            match client.dispatch("POST", "/v1/consents/lookup", Some(&body), &[]) {
                Ok(token) => {
                    self.consent_calls.insert(token, page.users);
                }
                Err(_) => runtime.stats.consent_errors.inc(),
            }
        }
    }

    fn on_consent_response(&mut self, runtime: &Runtime, token: u32, body_size: usize) {
        let Some(asked) = self.consent_calls.remove(&token) else {
            return;
        };
        let Some(client) = self.consent_client.as_mut() else {
            return;
        };
        let outcome = client.outcome(body_size);
        let answer = match outcome.status {
            Some(200) => serde_json::from_slice::<ConsentAnswer>(&outcome.body).ok(),
            _ => None,
        };
        // On failure the last known consents stay until the next sync.
        let (Some(answer), Some(Ok(mut cache))) = (
            answer,
            runtime.consents.as_ref().map(RefCell::try_borrow_mut),
        ) else {
            runtime.stats.consent_errors.inc();
            return;
        };
        cache.apply(&asked, &answer.consents);
        runtime.stats.consent_syncs.inc();
    }
}

impl Context for AuthRoot {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        if self.feed_call == Some(token) {
            self.feed_call = None;
            self.on_feed_response(&runtime, body_size);
        } else if self.jwks_call == Some(token) {
            self.jwks_call = None;
            self.on_jwks_response(&runtime, body_size);
        } else if self.activity_calls.contains_key(&token) {
            self.on_activity_response(&runtime, token, body_size);
        } else if self.consent_calls.contains_key(&token) {
            self.on_consent_response(&runtime, token, body_size);
        }
    }
}

impl Policy for AuthRoot {
    type Config = AuthConfig;
    type Filter = AuthFilter;

    /// Applies an already validated configuration; refuses one whose keys do not parse.
    fn configure(&mut self, config: AuthConfig) -> Result<(), ConfigError> {
        let global_algs = config.global_algorithms();
        let configured_keys = match &config.jwks {
            Some(doc) => match KeySet::parse(doc, &config.key_algorithms, &global_algs) {
                Ok(keys) => keys,
                Err(err) => {
                    return Err(ConfigError::new(format!("jwks.{}", err.field), err.message))
                }
            },
            None => KeySet::default(),
        };
        let now = now_ms();
        let mut ticks: Vec<u64> = Vec::new();
        if let Some(rc) = &config.revocation {
            self.feed_client = Some(StateClient::new(rc.state.clone()));
            ticks.push(rc.poll_interval_ms);
        }
        if let Some(state) = config.activity_state() {
            self.activity_client = Some(StateClient::new(state));
        }
        if let Some(ac) = &config.session_activity {
            ticks.push(ac.interval_ms);
        }
        if let Some(cc) = &config.consents {
            let state = cc
                .state
                .clone()
                .or_else(|| config.revocation.as_ref().map(|r| r.state.clone()));
            self.consent_client = state.map(StateClient::new);
            ticks.push(cc.poll_interval_ms);
        }
        let trusted_hops = config
            .session_activity
            .as_ref()
            .and_then(|ac| TrustedHops::parse(&ac.trusted_hops).ok())
            .unwrap_or_default();
        if let Some(fetch) = &config.jwks_fetch {
            ticks.push(fetch.unknown_kid_min_interval_ms.min(1_000));
        }
        self.tick_period = ticks
            .into_iter()
            .min()
            .map(|p| Duration::from_millis(p.max(50)));
        let stats = Stats::define();
        stats.keys.set(configured_keys.len() as u64);
        let policy = VerifyPolicy {
            global_algs,
            issuers: config.issuers.clone(),
            audiences: config.audiences.clone(),
            skew_s: config.clock_skew_s.into(),
            require_exp: config.require_exp,
            max_age_s: config.max_token_age_s.map(i64::from),
            tier_claim: config.tier_claim.clone(),
            default_tier: config.default_tier.clone(),
            max_lifetime_s: config.max_token_lifetime_s.into(),
            groups_claim: config.groups_claim.clone(),
            max_groups: config.max_groups,
        };
        self.runtime = Some(Rc::new(Runtime {
            keys: RefCell::new(KeySet::merged(&configured_keys, KeySet::default())),
            configured_keys,
            cache: RefCell::new(TokenCache::new(config.cache_max_entries)),
            feed: config
                .revocation
                .as_ref()
                .map(|_| RefCell::new(FeedState::new(now))),
            activity: RefCell::new(ActivityBuffer::default()),
            trusted_hops,
            budget: config
                .reject_budget
                .as_ref()
                .and_then(RejectBudget::new)
                .map(RefCell::new),
            consents: config
                .consents
                .as_ref()
                .map(|c| RefCell::new(ConsentCache::new(c.max_users))),
            stats,
            jwks_wanted: Cell::new(false),
            policy,
            config,
        }));
        Ok(())
    }

    /// How often `tick` has work to do; `None`: never. The first tick
    /// should come sooner (`plugin_kit::policy::FIRST_TICK`): until a worker's first feed sync
    /// it refuses tokens, and the first JWKS fetch is due.
    fn tick_period(&self) -> Option<Duration> {
        self.tick_period
    }

    /// Syncs, fetches and reports what is due; may be called more often.
    fn tick(&mut self) {
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let now = now_ms();
        if let Some(Ok(feed)) = runtime.feed.as_ref().map(RefCell::try_borrow) {
            runtime.stats.feed_lag_ms.set(feed.lag_ms(now));
        }
        if self.feed_call.is_none() && now >= self.next_feed_ms {
            self.poll_feed(&runtime, now);
        }
        self.fetch_jwks(&runtime, now);
        self.report_activity(&runtime, now);
        self.sync_consents(&runtime, now);
    }

    /// A per-request context of this worker.
    fn filter(&self) -> AuthFilter {
        AuthFilter::new(self.runtime.clone())
    }
}
