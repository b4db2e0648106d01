//! The auth plugin's configuration (the filter's `configuration` JSON).
//!
//! The serde structs are in `schema`, their defaults in `defaults`, the
//! checks run after reading in `validate` (the whole configuration) and
//! `sections` (its optional parts).

mod checks;
mod defaults;
mod schema;
mod sections;
mod validate;

pub use schema::{
    ActivityConfig, AuthConfig, JwksFetchConfig, RevocationConfig, StaleAction, TokenSource,
};

use meshguard_plugin_kit::state_client::StateClientConfig;
use meshguard_policy::auth::keys::Alg;

impl AuthConfig {
    /// The plugin-wide allowlist, parsed (validated before use).
    pub fn global_algorithms(&self) -> Vec<Alg> {
        self.algorithms
            .iter()
            .filter_map(|a| Alg::parse(a))
            .collect()
    }

    /// The client the session activity reports go through.
    pub fn activity_state(&self) -> Option<StateClientConfig> {
        let activity = self.session_activity.as_ref()?;
        activity
            .state
            .clone()
            .or_else(|| self.revocation.as_ref().map(|r| r.state.clone()))
    }
}

#[cfg(test)]
mod tests;
