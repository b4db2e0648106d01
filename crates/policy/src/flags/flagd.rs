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

use meshguard_api::flags::{FlagDefinition, RuleOp, TargetingRule, WeightedVariant};
use serde_json::{Map, Value};
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

    /// Top-level targeting (or an `else` branch): rules are appended, a final
    /// variant or fractional becomes the flag's weights.
    fn targeting(
        &mut self,
        value: &Value,
        at: &str,
        def: &mut FlagDefinition,
        depth: usize,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return fail(&self.at(at), "targeting nested too deep");
        }
        let value = self.resolve(value, &self.at(at), depth)?.clone();
        match &value {
            Value::Null => Ok(()),
            Value::String(variant) => {
                if variant != &def.default_variant {
                    def.weights = vec![WeightedVariant {
                        variant: variant.clone(),
                        weight: 1,
                    }];
                }
                Ok(())
            }
            Value::Object(o) if o.len() == 1 => {
                if let Some(args) = o.get("fractional") {
                    def.weights = self.fractional(args, &format!("{at}.fractional"))?;
                    Ok(())
                } else if let Some(Value::Array(args)) = o.get("if") {
                    self.if_chain(args, &format!("{at}.if"), def, depth)
                } else {
                    let op = o.keys().next().map(String::as_str).unwrap_or_default();
                    fail(
                        &self.at(at),
                        format!("unsupported targeting operator {op:?}"),
                    )
                }
            }
            _ => fail(
                &self.at(at),
                "unsupported targeting: expected fractional, if, a variant name or null",
            ),
        }
    }

    fn if_chain(
        &mut self,
        args: &[Value],
        at: &str,
        def: &mut FlagDefinition,
        depth: usize,
    ) -> Result<()> {
        if args.len() < 2 {
            return fail(&self.at(at), "if needs a condition and a result");
        }
        for (n, pair) in args.chunks(2).enumerate() {
            let i = 2 * n;
            let (cond, then) = match pair {
                [cond, then] => (cond, then),
                [otherwise] => {
                    return self.targeting(otherwise, &format!("{at}[{i}]"), def, depth + 1)
                }
                _ => return Ok(()),
            };
            let mut rule = self.condition(cond, &format!("{at}[{i}]"), depth)?;
            let then_at = format!("{at}[{}]", i + 1);
            let then = self.resolve(then, &self.at(&then_at), depth)?.clone();
            match &then {
                Value::String(v) => rule.variant = Some(v.clone()),
                Value::Null => rule.variant = Some(def.default_variant.clone()),
                Value::Object(o) if o.len() == 1 && o.contains_key("fractional") => {
                    let args = o.get("fractional").unwrap_or(&Value::Null);
                    rule.weights = self.fractional(args, &format!("{then_at}.fractional"))?;
                }
                _ => {
                    return fail(
                        &self.at(&then_at),
                        "unsupported result: expected a variant name, null or fractional",
                    )
                }
            }
            def.rules.push(rule);
        }
        Ok(())
    }

    /// A comparison of one context variable with literals.
    fn condition(&self, value: &Value, at: &str, depth: usize) -> Result<TargetingRule> {
        let here = self.at(at);
        let value = self.resolve(value, &here, depth)?;
        let Some((op, args)) = value
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            return fail(&here, "unsupported condition: expected one operator");
        };
        let rule = |attribute: String, op: RuleOp, values: Vec<String>| TargetingRule {
            attribute,
            op,
            values,
            variant: None,
            weights: Vec::new(),
        };
        let at_op = format!("{here}.{op}");
        match op.as_str() {
            "==" | "===" | "!=" | "!==" => {
                let (attribute, literal) = self.var_and_literal(args, &at_op)?;
                let op = if op.starts_with('!') {
                    RuleOp::NotIn
                } else {
                    RuleOp::In
                };
                Ok(rule(attribute, op, vec![literal]))
            }
            "starts_with" => {
                let (attribute, literal) = self.var_and_literal(args, &at_op)?;
                Ok(rule(attribute, RuleOp::StartsWith, vec![literal]))
            }
            "in" => {
                let (attribute, values) = self.membership(args, &at_op)?;
                Ok(rule(attribute, RuleOp::In, values))
            }
            "!" => {
                let inner = match args {
                    Value::Array(a) if a.len() == 1 => a.first().unwrap_or(&Value::Null),
                    other => other,
                };
                let in_args = single(inner, "in").ok_or_else(|| ImportError {
                    at: at_op.clone(),
                    message: "only the negation of an \"in\" is supported".into(),
                })?;
                let (attribute, values) = self.membership(in_args, &format!("{at_op}.in"))?;
                Ok(rule(attribute, RuleOp::NotIn, values))
            }
            other => fail(&here, format!("unsupported condition operator {other:?}")),
        }
    }

    /// `[{"var": x}, "literal"]` (either order for equality).
    fn var_and_literal(&self, args: &Value, at: &str) -> Result<(String, String)> {
        let pair = args.as_array().filter(|a| a.len() == 2);
        if let Some([a, b]) = pair.map(Vec::as_slice) {
            for (var, literal) in [(a, b), (b, a)] {
                if let (Some(var), Some(literal)) = (var_name(var), literal.as_str()) {
                    return Ok((self.attribute(var, at)?, literal.to_string()));
                }
            }
        }
        fail(at, "expected a variable and a string literal")
    }

    /// `in`: a variable in a list of strings, or a string in a group list.
    fn membership(&self, args: &Value, at: &str) -> Result<(String, Vec<String>)> {
        let pair = args.as_array().filter(|a| a.len() == 2);
        let Some([a, b]) = pair.map(Vec::as_slice) else {
            return fail(at, "expected two arguments");
        };
        if let (Some(var), Some(list)) = (var_name(a), b.as_array()) {
            let values: Option<Vec<String>> =
                list.iter().map(|v| v.as_str().map(String::from)).collect();
            let Some(values) = values else {
                return fail(at, "only lists of strings are supported");
            };
            return Ok((self.attribute(var, at)?, values));
        }
        if let (Some(literal), Some(var)) = (a.as_str(), var_name(b)) {
            let attribute = self.attribute(var, at)?;
            if attribute == "group" {
                return Ok((attribute, vec![literal.to_string()]));
            }
            return fail(
                at,
                format!("substring \"in\" on {var:?} is unsupported (only group membership)"),
            );
        }
        fail(
            at,
            "expected [{\"var\": ...}, [strings]] or [string, {\"var\": groups}]",
        )
    }

    fn attribute(&self, var: &str, at: &str) -> Result<String> {
        match self.options.attributes.get(var) {
            Some(attribute) => Ok(attribute.clone()),
            None => fail(
                at,
                format!(
                    "context variable {var:?} has no Meshguard attribute (known: {})",
                    self.options
                        .attributes
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }

    fn is_targeting_key(&self, var: &str) -> bool {
        self.options.attributes.get(var).is_some_and(|a| a == "sub")
    }

    /// `fractional` arguments: an optional bucketing expression, then
    /// `[variant, weight]` entries (a missing weight is 1).
    fn fractional(&mut self, args: &Value, at: &str) -> Result<Vec<WeightedVariant>> {
        let here = self.at(at);
        let Some(args) = args.as_array() else {
            return fail(&here, "must be an array");
        };
        let (salt, entries) = match args.split_first() {
            Some((first, rest)) if !first.is_array() => {
                (self.bucket_key(first, &format!("{here}[0]"))?, rest)
            }
            _ => (None, args.as_slice()),
        };
        match &self.salt {
            Some(known) if known != &salt => {
                return fail(
                    &here,
                    "fractionals with different bucketing keys in one flag are unsupported",
                )
            }
            _ => self.salt = Some(salt),
        }
        let offset = args.len() - entries.len();
        let mut weights = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let entry_at = format!("{here}[{}]", i + offset);
            let items = entry.as_array().map(Vec::as_slice).unwrap_or_default();
            let (variant, weight) = match items {
                [v] => (v.as_str(), Some(1)),
                [v, w] => (v.as_str(), w.as_u64().and_then(|w| u32::try_from(w).ok())),
                _ => return fail(&entry_at, "expected [variant, weight] or [variant]"),
            };
            let Some(variant) = variant else {
                return fail(&entry_at, "the variant must be a string");
            };
            let Some(weight) = weight else {
                return fail(
                    &entry_at,
                    "the weight must be an integer from 0 to 4294967295",
                );
            };
            weights.push(WeightedVariant {
                variant: variant.to_string(),
                weight,
            });
        }
        if weights.is_empty() {
            return fail(&here, "needs at least one [variant, weight] entry");
        }
        Ok(weights)
    }

    /// The salt a bucketing expression amounts to: what precedes the
    /// targeting key (`None`: the flag key, flagd's default).
    fn bucket_key(&self, expr: &Value, at: &str) -> Result<Option<String>> {
        if let Some(var) = var_name(expr) {
            if self.is_targeting_key(var) {
                return Ok(Some(String::new()));
            }
            return fail(
                at,
                format!("bucketing on {var:?} is unsupported: only the targeting key"),
            );
        }
        let Some(Value::Array(parts)) = single(expr, "cat") else {
            return fail(
                at,
                "unsupported bucketing expression: expected {\"var\": targeting key} or cat",
            );
        };
        let Some((last, prefix)) = parts.split_last() else {
            return fail(at, "cat needs the targeting key last");
        };
        if !var_name(last).is_some_and(|v| self.is_targeting_key(v)) {
            return fail(at, "cat must end with the targeting key");
        }
        let mut salt = String::new();
        for part in prefix {
            match (part.as_str(), var_name(part)) {
                (Some(literal), _) => salt.push_str(literal),
                (None, Some("$flagd.flagKey")) => salt.push_str(self.key),
                _ => {
                    return fail(
                        at,
                        format!("unsupported cat part {part}: only string literals and $flagd.flagKey before the targeting key"),
                    )
                }
            }
        }
        Ok((salt != self.key).then_some(salt))
    }
}

/// The value of a one-key object `{name: value}`.
fn single<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    value.as_object().filter(|o| o.len() == 1)?.get(name)
}

/// `{"var": "name"}` or `{"var": ["name"]}`.
fn var_name(value: &Value) -> Option<&str> {
    match single(value, "var")? {
        Value::String(name) => Some(name),
        Value::Array(a) if a.len() == 1 => a.first()?.as_str(),
        _ => None,
    }
}
