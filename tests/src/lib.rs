//! Starts the real Meshguard pieces for integration tests and for `scripts/up`.
//!
//! Every process runs in its own temp dir on free ports, writes its output to a
//! log file, and is killed when its handle drops. When a test panics, the logs
//! of every process it started are printed so the failure explains itself.

pub mod bench;
pub mod docker;
pub mod envoy;
pub mod gdpr;
pub mod http;
pub mod jwt_keys;
pub mod mesh;
pub mod paths;
pub mod ports;
pub mod process;
pub mod python;
pub mod redis;
pub mod state;
pub mod upstream;
pub mod wasm_imports;

pub use envoy::{Envoy, EnvoySpec, Plugin};
pub use http::{Request, Response};
pub use process::Process;
pub use redis::Redis;
