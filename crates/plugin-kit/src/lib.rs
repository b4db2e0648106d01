//! Glue shared by the Meshguard plugins: configuration loading with errors
//! that name the bad field, Envoy stats, the proxy clock and WASI randomness.

pub mod config;
pub mod host;
pub mod policy;
pub mod request_headers;
pub mod state_client;
pub mod stats;
pub mod tick_gate;
