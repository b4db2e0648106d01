//! The Art. 15(1) information that goes with every export: per category of
//! data its purposes, legal basis, recipients, retention and source, plus
//! the data subject's rights.

use crate::config::Connector;

pub use crate::package::CategoryInfo;

fn info(
    category: &str,
    description: &str,
    purposes: &[&str],
    legal_basis: &str,
    retention: &str,
    source: &str,
) -> CategoryInfo {
    CategoryInfo {
        category: category.into(),
        description: description.into(),
        purposes: purposes.iter().map(|s| s.to_string()).collect(),
        legal_basis: legal_basis.into(),
        recipients: vec!["the operator of this service (no third parties)".into()],
        retention: retention.into(),
        source: source.into(),
    }
}

pub fn for_category(category: &str, connectors: &[Connector]) -> CategoryInfo {
    let observed =
        "observed: recorded by the API gateway (meshguard-state) while you used the service";
    match category {
        "sessions" => info(
            category,
            "login sessions: session id, device, user agent, IP address, location, times",
            &[
                "keep you signed in",
                "detect account takeover (impossible travel)",
            ],
            "Art. 6(1)(b) contract; Art. 6(1)(f) legitimate interest in security",
            "until the session ends or is evicted (at most 5 live sessions)",
            observed,
        ),
        "location" => info(
            category,
            "last known location (latitude, longitude, time) derived from your IP address",
            &["detect account takeover (impossible travel)"],
            "Art. 6(1)(f) legitimate interest in security",
            "replaced at every login or activity report",
            observed,
        ),
        "rate_limits" => info(
            category,
            "request counters and quota leases per time window",
            &["fair use and protection against abuse"],
            "Art. 6(1)(f) legitimate interest in service stability",
            "until the window is full again (at most one hour)",
            observed,
        ),
        "revocations" => info(
            category,
            "revoked sessions and the cutoff before which your tokens are invalid",
            &["security: make stolen or logged-out tokens unusable"],
            "Art. 6(1)(f) legitimate interest in security",
            "until the longest token lifetime has passed",
            observed,
        ),
        "consents" => info(
            category,
            "your consent choices: purpose, granted or withdrawn, time, notice version, method",
            &["honour and prove your consent choices (Art. 7(1))"],
            "Art. 6(1)(c) legal obligation to demonstrate consent",
            "while the account exists; the history is kept to prove past consent",
            "provided: given by you",
        ),
        other => match connectors.iter().find(|c| c.category() == other) {
            Some(c) => CategoryInfo {
                category: other.into(),
                description: format!("records held by the {} service", c.name),
                purposes: if c.purposes.is_empty() {
                    vec![format!("provide the {} service you requested", c.name)]
                } else {
                    c.purposes.clone()
                },
                legal_basis: "Art. 6(1)(b) contract".into(),
                recipients: if c.recipients.is_empty() {
                    vec!["the operator of this service (no third parties)".into()]
                } else {
                    c.recipients.clone()
                },
                retention: c
                    .retention
                    .clone()
                    .unwrap_or_else(|| "while the account exists".into()),
                source: format!("provided and observed: the {} service", c.name),
            },
            None => info(
                other,
                "other data linked to your identifier",
                &["operation of the service"],
                "Art. 6(1)(b) contract",
                "while the account exists",
                observed,
            ),
        },
    }
}

pub const RIGHTS: &[&str] = &[
    "Art. 15: access to your data and to this information",
    "Art. 16: rectification of inaccurate data",
    "Art. 17: erasure",
    "Art. 18: restriction of processing",
    "Art. 20: portability in a structured, machine-readable format",
    "Art. 21: objection to processing based on legitimate interests",
    "Art. 7(3): withdrawal of consent at any time, as easily as it was given",
    "Art. 77: complaint to a supervisory authority",
];

pub const AUTOMATED_DECISIONS: &str =
    "none with legal or similarly significant effects (Art. 22); rate limits and security checks are automated but only restrict use of the service";
