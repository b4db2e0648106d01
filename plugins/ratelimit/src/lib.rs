//! `meshguard_ratelimit.wasm`: tiered, cost-aware GCRA rate limiting for
//! Envoy. Keys are the authenticated subject (from the auth plugin) or the
//! client address; decisions are local, exact (meshguard-state per request)
//! or hybrid (quota leased from meshguard-state, spent locally).

// Request path: root → runtime ← filter; the filter hands each request to
// its mode (local, exact or hybrid).
mod config;
mod exact;
mod filter;
mod hybrid;
mod identity;
mod leases;
mod local;
mod reply;
mod root;
mod runtime;
mod stats;

pub use config::RateLimitConfig;
pub use filter::RateLimitFilter;
pub use root::RateLimitRoot;

// Off when the policy is linked into the single-module chain, which has its own.
#[cfg(feature = "entrypoint")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(meshguard_plugin_kit::policy::PolicyRoot::<root::RateLimitRoot>::default()) });
}}
