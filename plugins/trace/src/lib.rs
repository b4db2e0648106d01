//! `meshguard_trace.wasm`: W3C Trace Context for Envoy. Continues or starts
//! the trace of every request, samples consistently from the trace-id and
//! exports sampled requests as OTLP spans.

mod config;
mod filter;
mod ids;
mod root;
mod spans;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::TraceRoot::default()) });
}}
