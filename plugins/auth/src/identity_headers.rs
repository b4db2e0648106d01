//! The request headers only auth may set. Every incoming header with this
//! prefix is removed before auth sets its own, so an upstream (and the
//! policies after auth) can trust them.

pub const IDENTITY_PREFIX: &str = "x-auth-";
