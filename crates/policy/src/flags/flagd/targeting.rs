//! The targeting tree: a final variant, a `fractional`, or an `if` chain
//! whose conditions become rules.

use super::{fail, FlagImport, Result, MAX_DEPTH};
use meshguard_api::flags::{FlagDefinition, WeightedVariant};
use serde_json::Value;

impl FlagImport<'_> {
    /// Top-level targeting (or an `else` branch): rules are appended, a final
    /// variant or fractional becomes the flag's weights.
    pub(super) fn targeting(
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
}
