//! Pure decisions of the auth plugin: which key may verify a token and with
//! which algorithm, claim checks against the proxy clock, and the local set
//! of revocations kept in sync from meshguard-state's feed.

pub mod claims;
pub mod hops;
pub mod keys;
pub mod revocation;
