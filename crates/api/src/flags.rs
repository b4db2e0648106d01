//! Flag definitions, their validation, and the versioned snapshot plugins poll.
//!
//! A flag has named variants and a default. Evaluation (in the flags plugin):
//! the first matching rule decides; otherwise a subject inside `percentage`
//! (bucketed on flag key + subject) gets a variant split by `weights`, or the
//! default variant when there are no weights; everyone else gets the default.
//! A disabled flag always yields its default variant.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_KEY_LEN: usize = 128;
pub const MAX_VARIANTS: usize = 64;
pub const MAX_RULES: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDefinition {
    /// May be omitted in a `PUT /v1/flags/{key}` body; must match the path when given.
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Variant name to value (any JSON).
    pub variants: BTreeMap<String, serde_json::Value>,
    pub default_variant: String,
    /// Share of subjects (0..=100, fractions allowed) the flag is rolled out to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
    /// How the rolled-out subjects split over variants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<WeightedVariant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<TargetingRule>,
    /// What precedes the subject in the bucketing input (default: the flag
    /// key, as flagd's `fractional` does). Changing it reshuffles everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

pub const MAX_SALT_LEN: usize = 256;

fn enabled_default() -> bool {
    true
}

/// The request attributes a targeting rule can test.
pub fn is_rule_attribute(name: &str) -> bool {
    match name {
        "sub" | "tier" | "group" | "consent" | "path" => true,
        _ => name.strip_prefix("header:").is_some_and(|header| {
            !header.is_empty()
                && header
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedVariant {
    pub variant: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetingRule {
    /// A request attribute: `sub`, `tier`, `group`, `consent` (a purpose the
    /// user consents to), `path`, or a header name prefixed `header:`.
    pub attribute: String,
    pub op: RuleOp,
    pub values: Vec<String>,
    /// Exactly one of `variant` and `weights`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<WeightedVariant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOp {
    In,
    NotIn,
    StartsWith,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError {
    /// The offending field, as a JSON path (`weights[1].variant`).
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> Result<(), FlagError> {
    Err(FlagError {
        field: field.into(),
        message: message.into(),
    })
}

/// Flag keys: 1..=128 chars of `[A-Za-z0-9._-]`, so they are safe in paths,
/// Redis keys and headers.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FlagDefinition {
    pub fn validate(&self) -> Result<(), FlagError> {
        if !valid_key(&self.key) {
            return err("key", "must be 1-128 characters of A-Z a-z 0-9 . _ -");
        }
        if self.variants.is_empty() {
            return err("variants", "at least one variant is required");
        }
        if self.variants.len() > MAX_VARIANTS {
            return err("variants", format!("at most {MAX_VARIANTS} variants"));
        }
        if let Some(name) = self.variants.keys().find(|name| !valid_key(name)) {
            return err(
                format!("variants.{name}"),
                "variant names must be 1-128 characters of A-Z a-z 0-9 . _ -",
            );
        }
        if !self.variants.contains_key(&self.default_variant) {
            return err("default_variant", "must name one of the variants");
        }
        if let Some(p) = self.percentage {
            if !p.is_finite() || !(0.0..=100.0).contains(&p) {
                return err("percentage", "must be between 0 and 100");
            }
        }
        if self.salt.as_ref().is_some_and(|s| s.len() > MAX_SALT_LEN) {
            return err("salt", format!("at most {MAX_SALT_LEN} bytes"));
        }
        self.validate_weights("weights", &self.weights)?;
        if self.rules.len() > MAX_RULES {
            return err("rules", format!("at most {MAX_RULES} rules"));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            if !is_rule_attribute(&rule.attribute) {
                return err(
                    format!("{at}.attribute"),
                    "must be sub, tier, group, consent, path or header:<lowercase header name>",
                );
            }
            if rule.values.is_empty() {
                return err(format!("{at}.values"), "at least one value is required");
            }
            match (&rule.variant, rule.weights.is_empty()) {
                (Some(_), false) | (None, true) => {
                    return err(at, "exactly one of variant and weights is required");
                }
                (Some(v), true) if !self.variants.contains_key(v) => {
                    return err(format!("{at}.variant"), "must name one of the variants");
                }
                _ => {}
            }
            self.validate_weights(&format!("{at}.weights"), &rule.weights)?;
        }
        Ok(())
    }

    fn validate_weights(&self, at: &str, weights: &[WeightedVariant]) -> Result<(), FlagError> {
        if weights.is_empty() {
            return Ok(());
        }
        let mut total: u64 = 0;
        for (i, w) in weights.iter().enumerate() {
            if !self.variants.contains_key(&w.variant) {
                return err(
                    format!("{at}[{i}].variant"),
                    "must name one of the variants",
                );
            }
            if weights.iter().take(i).any(|o| o.variant == w.variant) {
                return err(format!("{at}[{i}].variant"), "listed twice");
            }
            total += u64::from(w.weight);
        }
        if total == 0 {
            return err(at, "weights must not all be 0");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagSnapshot {
    /// Bumped by every change; the ETag is `"<version>"`.
    pub version: u64,
    /// Sorted by key.
    pub flags: Vec<FlagDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagChanged {
    pub key: String,
    pub version: u64,
    /// False for a delete of a key that did not exist.
    pub changed: bool,
}

/// `flags import`: several definitions replaced in one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagImport {
    pub flags: Vec<FlagDefinition>,
    /// Delete the flags not in `flags`.
    #[serde(default)]
    pub replace: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(v: serde_json::Value) -> Result<FlagDefinition, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    fn good() -> serde_json::Value {
        json!({
            "key": "new-ui",
            "variants": {"on": true, "off": false},
            "default_variant": "off",
            "percentage": 12.5,
            "weights": [{"variant": "on", "weight": 3}, {"variant": "off", "weight": 1}],
            "rules": [{"attribute": "tier", "op": "in", "values": ["premium"], "variant": "on"}]
        })
    }

    #[test]
    fn accepts_a_full_definition() {
        let f = flag(good()).unwrap();
        assert!(f.enabled);
        assert_eq!(f.validate(), Ok(()));
    }

    #[test]
    fn rejects_unknown_fields() {
        let mut v = good();
        v["wieghts"] = json!([]);
        assert!(flag(v).is_err());
    }

    #[test]
    fn rejects_bad_definitions_naming_the_field() {
        let cases = [
            ("default_variant", json!("maybe")),
            ("percentage", json!(100.5)),
            ("percentage", json!(-1)),
            ("weights", json!([{"variant": "nope", "weight": 1}])),
            ("weights", json!([{"variant": "on", "weight": 0}])),
            (
                "weights",
                json!([{"variant": "on", "weight": 1}, {"variant": "on", "weight": 1}]),
            ),
            ("variants", json!({})),
            ("key", json!("has space")),
            ("salt", json!("s".repeat(MAX_SALT_LEN + 1))),
            (
                "rules",
                json!([{"attribute": "tier", "op": "in", "values": ["a"]}]),
            ),
            (
                "rules",
                json!([{"attribute": "tier", "op": "in", "values": [], "variant": "on"}]),
            ),
            (
                "rules",
                json!([{"attribute": "tier", "op": "in", "values": ["a"], "variant": "x"}]),
            ),
            (
                "rules",
                json!([{"attribute": "country", "op": "in", "values": ["de"], "variant": "on"}]),
            ),
        ];
        for (field, value) in cases {
            let mut v = good();
            v[field] = value.clone();
            let f = flag(v).unwrap();
            let e = f.validate().expect_err(&format!("{field} = {value}"));
            assert!(e.field.starts_with(field), "{e} for {field} = {value}");
        }
    }
}
