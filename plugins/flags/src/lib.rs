//! `meshguard_flags.wasm`: feature flags and A/B variants for Envoy. Every
//! request is evaluated locally against the flags the worker holds (from its
//! configuration, then from meshguard-state snapshots polled on a tick), and
//! the upstream gets the results as request headers.

mod active;
mod config;
mod filter;
mod metrics;
mod prefixes;
mod root;
mod runtime;

pub use config::FlagsConfig;
pub use filter::FlagsFilter;
pub use root::FlagsRoot;

// Off when the policy is linked into the single-module chain, which has its own.
#[cfg(feature = "entrypoint")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(meshguard_plugin_kit::policy::PolicyRoot::<root::FlagsRoot>::default()) });
}}
