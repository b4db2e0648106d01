//! A `fractional`: its `[variant, weight]` entries and the salt its
//! bucketing expression amounts to.

use super::shape::{single, var_name};
use super::{fail, FlagImport, Result};
use meshguard_api::flags::WeightedVariant;
use serde_json::Value;

impl FlagImport<'_> {
    fn is_targeting_key(&self, var: &str) -> bool {
        self.options.attributes.get(var).is_some_and(|a| a == "sub")
    }

    /// `fractional` arguments: an optional bucketing expression, then
    /// `[variant, weight]` entries (a missing weight is 1).
    pub(super) fn fractional(&mut self, args: &Value, at: &str) -> Result<Vec<WeightedVariant>> {
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
