//! What every handler shares: the store, the limits, the settings, the
//! secrets and the metrics. Its own module so the routes and the router
//! both use it without importing each other.

use crate::auth::Secrets;
use crate::config::Settings;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub limits: Arc<Limits>,
    pub settings: Arc<Settings>,
    pub secrets: Arc<Secrets>,
    pub metrics: Metrics,
}
