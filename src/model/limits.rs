//! The numeric ranges of the model, checked when it is loaded. Each range is written once,
//! as `#[schemars(range(...))]` on its field in types.rs: it becomes `minimum`/`maximum` in
//! the JSON Schema an editor reads, and this module walks the merged TOML along that same
//! schema. A number outside its range (or a float that is not finite) is TG002 at its
//! line, with its key path, before anything uses it: no rule computes with port 0, a NaN
//! CPU limit or a batch size that would allocate gigabytes.

use std::sync::OnceLock;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::finding::{Finding, Severity};

/// The model's JSON Schema, generated once.
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::to_value(schemars::schema_for!(super::Stack)).unwrap_or(Value::Null)
    })
}

/// Every number of `table` outside the range its field declares.
pub fn check(table: &Spanned<DeTable<'_>>) -> Vec<Finding> {
    let root = schema();
    let mut walk = Walk {
        root,
        path: Vec::new(),
        findings: Vec::new(),
    };
    walk.table(table.get_ref(), root);
    walk.findings
}

struct Walk<'s> {
    root: &'s Value,
    path: Vec<String>,
    findings: Vec<Finding>,
}

impl<'s> Walk<'s> {
    fn table(&mut self, table: &DeTable<'_>, schema: &'s Value) {
        for (key, value) in table {
            let name: &str = key.get_ref().as_ref();
            let field = schema
                .get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
            if let Some(field) = field {
                self.path.push(name.to_string());
                self.value(value, field);
                self.path.pop();
            }
        }
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>, schema: &'s Value) {
        let Some(schema) = resolve(schema, self.root, value.get_ref()) else {
            // No branch fits: a type error, which deserialization reports.
            return;
        };
        match value.get_ref() {
            DeValue::Table(table) => self.table(table, schema),
            DeValue::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.path.push(index.to_string());
                        self.value(item, item_schema);
                        self.path.pop();
                    }
                }
            }
            DeValue::Integer(integer) => {
                let number =
                    i128::from_str_radix(&integer.as_str().replace('_', ""), integer.radix())
                        .ok()
                        .map(|n| n as f64);
                self.number(value, schema, number);
            }
            DeValue::Float(float) => {
                let number = float.as_str().replace('_', "").parse::<f64>().ok();
                self.number(value, schema, number);
            }
            _ => {}
        }
    }

    fn number(&mut self, value: &Spanned<DeValue<'_>>, schema: &Value, number: Option<f64>) {
        let minimum = schema.get("minimum").and_then(Value::as_f64);
        let maximum = schema.get("maximum").and_then(Value::as_f64);
        let within = number.is_some_and(|n| {
            n.is_finite()
                && minimum.is_none_or(|min| n >= min)
                && maximum.is_none_or(|max| n <= max)
        });
        if within {
            return;
        }
        let range = match (minimum, maximum) {
            (Some(min), Some(max)) => format!("from {} to {}", show(min), show(max)),
            (Some(min), None) => format!("at least {}", show(min)),
            (None, Some(max)) => format!("at most {}", show(max)),
            (None, None) => "a finite number".to_string(),
        };
        let path = self.path.join(".");
        self.findings.push(
            Finding::new(
                "TG002",
                Severity::Error,
                format!("`{path}` is out of range: it must be {range}"),
            )
            .with_path(path)
            .with_span(value.span())
            .with_help(format!("write a value {range}")),
        );
    }
}

/// 1.0 as `1`, 0.01 as `0.01`.
fn show(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

/// Follows `$ref`s and, among `anyOf`/`oneOf` branches (an `Option` is `anyOf [T, null]`),
/// takes the one for this kind of value. Bounded: schemas of the model are shallow.
fn resolve<'s>(mut schema: &'s Value, root: &'s Value, value: &DeValue<'_>) -> Option<&'s Value> {
    for _ in 0..32 {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.strip_prefix("#/$defs/")?;
            schema = root.get("$defs")?.get(name)?;
            continue;
        }
        let branches = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(branches) = branches {
            schema = branches
                .iter()
                .find(|branch| resolve(branch, root, value).is_some_and(|b| fits(b, value)))?;
            continue;
        }
        return Some(schema);
    }
    None
}

/// Whether a (resolved) schema describes this kind of value.
fn fits(schema: &Value, value: &DeValue<'_>) -> bool {
    let kind = match value {
        DeValue::Table(_) => "object",
        DeValue::Array(_) => "array",
        DeValue::Integer(_) => "integer",
        DeValue::Float(_) => "number",
        DeValue::Boolean(_) => "boolean",
        DeValue::String(_) | DeValue::Datetime(_) => "string",
    };
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        // Untyped: an enum of strings, or an object described by its properties.
        _ => {
            return match kind {
                "object" => schema.get("properties").is_some(),
                "string" => schema.get("enum").is_some() || schema.get("const").is_some(),
                _ => false,
            };
        }
    };
    types
        .iter()
        .any(|t| *t == kind || (*t == "number" && kind == "integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(toml: &str) -> Vec<String> {
        let table = DeTable::parse(toml).expect("valid TOML");
        check(&table).into_iter().map(|f| f.message).collect()
    }

    #[test]
    fn numbers_outside_their_field_range_are_reported_with_the_path() {
        let found = findings(
            "[services.pg]\nport = 0\ncpus = nan\npublish = 70000\n\n[services.s.sentinel]\ncount = 4000000000\n",
        );
        assert!(
            found
                .iter()
                .any(|m| m
                    .contains("`services.pg.port` is out of range: it must be from 1 to 65535")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|m| m.contains("`services.pg.cpus`")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|m| m.contains("`services.pg.publish`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|m| m.contains("`services.s.sentinel.count`")),
            "{found:?}"
        );
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn values_in_range_and_other_types_pass() {
        assert!(findings("[services.pg]\nport = 5432\ncpus = 0.5\npublish = 6434\n").is_empty());
        // A string where a number belongs is a type error for deserialization, not here.
        assert!(findings("[services.pg]\nport = \"5432\"\n").is_empty());
        assert!(findings("[[channels]]\nid = -1001234567890\n").is_empty());
    }
}
