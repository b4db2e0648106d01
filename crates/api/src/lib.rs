//! The wire contract between the Meshguard plugins and `meshguard-state`.
//!
//! Plain serde types so the plugins (wasm32) and the service (native) compile
//! against one definition. Request types reject unknown fields, so a typo in a
//! client is an error rather than a silently ignored setting; response types
//! accept unknown fields so the service can add fields without breaking
//! older plugins.

pub mod audit;
pub mod consent;
pub mod error;
pub mod flags;
pub mod keys;
pub mod lease;
pub mod limits;
pub mod ratelimit;
pub mod revocation;
pub mod session;
pub mod time;

pub use error::{ErrorBody, ErrorDetail};

/// The header plugins send their shared secret in (`Bearer <secret>` in
/// `authorization` is accepted too).
pub const PLUGIN_SECRET_HEADER: &str = "x-meshguard-secret";

/// The header carrying the revocation feed cursor and flag snapshot version
/// back to the plugin, beside the JSON body.
pub const VERSION_HEADER: &str = "x-meshguard-version";
