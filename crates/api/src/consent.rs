//! Consent at the proxy: the auth plugin asks meshguard-state for the
//! current consents of the users it serves (meshguard-gdpr records them and
//! mirrors the current choice per purpose into Redis), off the request path.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Users asked about in one call.
pub const MAX_LOOKUP_USERS: usize = 100;

/// `POST /v1/consents/lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentLookup {
    pub users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConsentAnswer {
    /// Every user asked about → the purposes currently granted, sorted
    /// (empty: none granted, or never asked).
    pub consents: HashMap<String, Vec<String>>,
}
