//! `meshguard_trace.wasm`: W3C Trace Context for Envoy. Continues or starts
//! the trace of every request, samples consistently from the trace-id and
//! exports sampled requests as OTLP spans.

mod config;
mod filter;
mod ids;
mod root;
mod runtime;
mod spans;

pub use config::TraceConfig;
pub use filter::TraceFilter;
pub use root::TraceRoot;

// Off when the policy is linked into the single-module chain, which has its own.
#[cfg(feature = "entrypoint")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(meshguard_plugin_kit::policy::PolicyRoot::<root::TraceRoot>::default()) });
}}
