//! `meshguard_chain.wasm`: the four Meshguard policies in one filter, run in
//! chain order trace → auth → ratelimit → flags within one HTTP context, so
//! a request pays the per-filter Wasm overhead once instead of four times.

mod config;
mod filter;
mod root;

pub use config::ChainConfig;
pub use filter::ChainFilter;
pub use root::ChainRoot;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(ChainRoot::default()) });
}}
