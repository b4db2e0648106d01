//! `meshguard_ratelimit.wasm`: tiered, cost-aware GCRA rate limiting for
//! Envoy. Keys are the authenticated subject (from the auth plugin) or the
//! client address; decisions are local, exact (meshguard-state per request)
//! or hybrid (quota leased from meshguard-state, spent locally).

mod config;
mod filter;
mod identity;
mod leases;
mod reply;
mod root;
mod shared;
mod stats;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::RateLimitRoot::default()) });
}}
