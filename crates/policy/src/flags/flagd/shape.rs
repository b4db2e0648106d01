//! Recognising JSON-logic shapes: one-key objects and `var` references.

use serde_json::Value;

/// The value of a one-key object `{name: value}`.
pub(super) fn single<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    value.as_object().filter(|o| o.len() == 1)?.get(name)
}

/// `{"var": "name"}` or `{"var": ["name"]}`.
pub(super) fn var_name(value: &Value) -> Option<&str> {
    match single(value, "var")? {
        Value::String(name) => Some(name),
        Value::Array(a) if a.len() == 1 => a.first()?.as_str(),
        _ => None,
    }
}
