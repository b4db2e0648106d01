//! The pieces meshguard-state and meshguard-gdpr share as HTTP services:
//! how they log ([`logging`]), how a request is named in their logs
//! ([`request_id`]), the HTTP metrics they export ([`http_metrics`]) and
//! what their `--help` must say ([`cli_help`]).

pub mod cli_help;
pub mod http_metrics;
pub mod logging;
pub mod request_id;
