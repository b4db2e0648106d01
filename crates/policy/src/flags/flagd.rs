//! Import of flagd flag-definition JSON, for the subset Meshguard evaluates.
//!
//! Supported: `state`, `variants`, `defaultVariant`, `metadata` (ignored);
//! targeting that is empty, a `fractional`, or an `if` chain whose
//! conditions compare one context variable with literals (`==`, `===`, `!=`,
//! `!==`, `in` with a list, `in` of a literal in a group list, `!` of an `in`,
//! `starts_with`) and whose branches are variant names, `null` or a
//! `fractional`; `$ref` to `$evaluators`. A `fractional` may take a bucketing
//! expression: `{"var": <targeting key>}`, or `cat` of string literals and
//! `$flagd.flagKey` ending with the targeting key. Anything else is refused
//! with a message naming it and where it is.
//!
//! Here: the document and each flag's fields; `targeting` reads the
//! targeting tree (`if` chains), `condition` the comparisons, `fractional`
//! the weights and bucketing expressions, `shape` recognises JSON-logic
//! shapes.

mod condition;
mod fractional;
mod shape;
mod targeting;

use meshguard_api::flags::FlagDefinition;
use serde_json::{Map, Value};
use shape::single;
use std::collections::BTreeMap;

/// How flagd's evaluation-context variables map to Meshguard attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Context variable → attribute (`sub`, `tier`, `group`, `path`,
    /// `header:<name>`). A variable mapped to `sub` is the targeting key.
    pub attributes: BTreeMap<String, String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        let pairs = [
            ("targetingKey", "sub"),
            ("tier", "tier"),
            ("groups", "group"),
            ("path", "path"),
        ];
        ImportOptions {
            attributes: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// Where, as a JSON path: `flags.checkout.targeting.if[0]`.
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

type Result<T> = std::result::Result<T, ImportError>;

fn fail<T>(at: &str, message: impl Into<String>) -> Result<T> {
    Err(ImportError {
        at: at.to_string(),
        message: message.into(),
    })
}

/// Depth of nested `$ref`s and `if` chains followed before giving up.
const MAX_DEPTH: usize = 16;

/// Converts a flagd document (`{"flags": {...}, "$evaluators": {...}}`) into
/// validated Meshguard definitions, sorted by key.
pub fn import(document: &Value, options: &ImportOptions) -> Result<Vec<FlagDefinition>> {
    let Some(top) = document.as_object() else {
        return fail("(root)", "must be an object with \"flags\"");
    };
    for key in top.keys() {
        if !matches!(
            key.as_str(),
            "flags" | "$evaluators" | "$schema" | "metadata"
        ) {
            return fail(key, "unsupported top-level field");
        }
    }
    let empty = Map::new();
    let evaluators = match top.get("$evaluators") {
        None => &empty,
        Some(Value::Object(e)) => e,
        Some(_) => return fail("$evaluators", "must be an object"),
    };
    let Some(Value::Object(flags)) = top.get("flags") else {
        return fail("flags", "must be an object of flag definitions");
    };
    flags
        .iter()
        .map(|(key, flag)| {
            FlagImport {
                key,
                options,
                evaluators,
                salt: None,
            }
            .definition(flag)
        })
        .collect()
}

struct FlagImport<'a> {
    key: &'a str,
    options: &'a ImportOptions,
    evaluators: &'a Map<String, Value>,
    /// The bucketing salt the flag's `fractional`s use; all must agree.
    salt: Option<Option<String>>,
}

impl FlagImport<'_> {
    fn at(&self, rest: &str) -> String {
        if rest.is_empty() {
            format!("flags.{}", self.key)
        } else {
            format!("flags.{}.{rest}", self.key)
        }
    }

    fn definition(mut self, flag: &Value) -> Result<FlagDefinition> {
        let Some(flag) = flag.as_object() else {
            return fail(&self.at(""), "must be an object");
        };
        for field in flag.keys() {
            if !matches!(
                field.as_str(),
                "state" | "variants" | "defaultVariant" | "targeting" | "metadata"
            ) {
                return fail(&self.at(field), "unsupported field");
            }
        }
        let enabled = match flag.get("state").and_then(Value::as_str) {
            Some("ENABLED") => true,
            Some("DISABLED") => false,
            _ => return fail(&self.at("state"), "must be \"ENABLED\" or \"DISABLED\""),
        };
        let Some(Value::Object(variants)) = flag.get("variants") else {
            return fail(&self.at("variants"), "must be an object");
        };
        let Some(default_variant) = flag.get("defaultVariant").and_then(Value::as_str) else {
            return fail(
                &self.at("defaultVariant"),
                "must name a variant (a null default is unsupported)",
            );
        };
        let mut definition = FlagDefinition {
            key: self.key.to_string(),
            description: None,
            enabled,
            variants: variants
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            default_variant: default_variant.to_string(),
            percentage: None,
            weights: Vec::new(),
            rules: Vec::new(),
            salt: None,
        };
        match flag.get("targeting") {
            None | Some(Value::Null) => {}
            Some(Value::Object(t)) if t.is_empty() => {}
            Some(targeting) => self.targeting(targeting, "targeting", &mut definition, 0)?,
        }
        definition.salt = self.salt.take().flatten();
        definition.validate().map_err(|e| ImportError {
            at: self.at(""),
            message: format!("after import, {e}"),
        })?;
        Ok(definition)
    }

    /// Follows `{"$ref": name}` into `$evaluators`.
    fn resolve<'v>(&'v self, value: &'v Value, at: &str, depth: usize) -> Result<&'v Value> {
        let mut value = value;
        for _ in depth..MAX_DEPTH {
            let Some(name) = single(value, "$ref") else {
                return Ok(value);
            };
            let Some(name) = name.as_str() else {
                return fail(at, "$ref must be a string");
            };
            match self.evaluators.get(name) {
                Some(target) => value = target,
                None => return fail(at, format!("$ref to unknown evaluator {name:?}")),
            }
        }
        fail(at, "$ref nesting too deep")
    }
}
