//! Meshguard's policy decisions as pure functions: no I/O and no proxy-wasm,
//! so they are unit-tested natively and on wasm32 alike.

pub mod auth;
pub mod flags;
pub mod gcra;
pub mod mul;
pub mod propagation;
pub mod ratelimit;
pub mod sampling;
pub mod trace_context;
