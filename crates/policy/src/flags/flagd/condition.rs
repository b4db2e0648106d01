//! An `if` condition: one context variable compared with literals
//! (`==`, `!=`, `in`, `!` of an `in`, `starts_with`).

use super::shape::{single, var_name};
use super::{fail, FlagImport, ImportError, Result};
use meshguard_api::flags::{RuleOp, TargetingRule};
use serde_json::Value;

impl FlagImport<'_> {
    /// A comparison of one context variable with literals.
    pub(super) fn condition(&self, value: &Value, at: &str, depth: usize) -> Result<TargetingRule> {
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
}
