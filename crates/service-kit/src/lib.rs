//! The pieces meshguard-state and meshguard-gdpr share as HTTP services:
//! how they log ([`logging`]) and how a request is named in their logs
//! ([`request_id`]).

pub mod logging;
pub mod request_id;
