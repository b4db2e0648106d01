//! `meshguard_flags.wasm`: feature flags and A/B variants for Envoy. Every
//! request is evaluated locally against the flags the worker holds (from its
//! configuration, then from meshguard-state snapshots polled on a tick), and
//! the upstream gets the results as request headers.

mod active;
mod config;
mod filter;
mod metrics;
mod root;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::FlagsRoot::default()) });
}}
