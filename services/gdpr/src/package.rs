//! The export package's own types, shared by the writer (export), the
//! formats that serialise it and the settings that bound its lifetime: a
//! leaf, depending on nothing else in the crate.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Art. 15 packages are handed out for 7 days (the longest `--package-ttl-s`).
pub const PACKAGE_TTL_S: i64 = 7 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
    Xml,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "xml" => Ok(Format::Xml),
            _ => Err(Error::Invalid(format!(
                "format: {s:?} is not one of json, csv, xml"
            ))),
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Xml => "xml",
        }
    }
}

/// One datum: where it lives, what it is, its value as text (JSON text for
/// structured values), so the same rows fit JSON, CSV and XML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub source: String,
    pub category: String,
    pub location: String,
    pub field: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    pub format: String,
    pub request_id: String,
    pub request_kind: String,
    pub subject: String,
    pub generated_at: String,
    pub categories: Vec<CategoryInfo>,
    pub rights: Vec<String>,
    pub automated_decision_making: String,
    pub records: Vec<Record>,
}

pub const PACKAGE_FORMAT: &str = "meshguard-gdpr-export/1";

/// Art. 15 metadata of one data category (what it is, why, for how long, from where).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryInfo {
    pub category: String,
    pub description: String,
    pub purposes: Vec<String>,
    pub legal_basis: String,
    pub recipients: Vec<String>,
    pub retention: String,
    pub source: String,
}
