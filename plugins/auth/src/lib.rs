//! `meshguard_auth.wasm`: JWT verification for Envoy with revocation at the
//! proxy. Verifies bearer tokens (HS*, RS*, PS*, ES256, EdDSA) against keys
//! from the configuration or a fetched JWKS, checks a local revocation set
//! kept in sync from meshguard-state's feed, and passes the identity on in
//! `x-auth-*` headers that only this filter may set.

mod activity;
mod budget;
mod cache;
mod config;
mod consent;
mod filter;
mod identity_headers;
mod keys;
mod reply;
mod root;
mod runtime;
mod stats;
mod sync;
mod verify;

pub use config::AuthConfig;
pub use filter::AuthFilter;
pub use root::AuthRoot;

// Off when the policy is linked into the single-module chain, which has its own.
#[cfg(feature = "entrypoint")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(meshguard_plugin_kit::policy::PolicyRoot::<root::AuthRoot>::default()) });
}}
