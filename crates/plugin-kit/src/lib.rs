//! Glue shared by the Meshguard plugins: the `Policy` trait and the root
//! context that runs one policy as a plugin, configuration loading with
//! errors that name the bad field, the request-header view, Envoy stats, the
//! proxy clock and WASI randomness.

pub mod config;
pub mod host;
pub mod memcmp;
pub mod name_filter;
pub mod policy;
pub mod request_headers;
pub mod secret;
pub mod state_client;
pub mod stats;
pub mod tick_gate;
