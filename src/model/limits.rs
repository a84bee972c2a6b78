//! The ranges and patterns of the model, checked when it is loaded. Each is written once on
//! its field in types.rs (`#[schemars(range(...))]`, `#[schemars(pattern(text::...))]`): it
//! becomes `minimum`/`maximum`/`pattern` in the JSON Schema an editor reads, and this module
//! walks the merged TOML along that same schema. A number outside its range (or a float
//! that is not finite), or a string its class does not admit (a newline, `#`, `;`, `=`,
//! `${` in a name, say), is TG002 at its line with its key path, before anything uses it:
//! no rule computes with port 0, and no value changes the structure of a rendered file.

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
            DeValue::String(text) => self.text(value, schema, text),
            _ => {}
        }
    }

    fn text(&mut self, value: &Spanned<DeValue<'_>>, schema: &Value, text: &str) {
        let Some(pattern) = schema.get("pattern").and_then(Value::as_str) else {
            return;
        };
        // Sizes and durations explain their own syntax when parsed; environment variable
        // names (TG006) and subnets (TG009) have rules with messages of their own, which
        // run before anything is rendered.
        if !super::text::CHECKED_AT_LOAD.contains(&pattern) || matches(pattern, text) {
            return;
        }
        let path = self.path.join(".");
        // Never repeat the value: it may be a secret written in the wrong place.
        self.findings.push(
            Finding::new(
                "TG002",
                Severity::Error,
                format!("`{path}` holds characters its kind of value does not allow"),
            )
            .with_path(path)
            .with_span(value.span())
            .with_help(describe(pattern)),
        );
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

/// Whether `text` matches `pattern` (compiled once per pattern).
fn matches(pattern: &str, text: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static COMPILED: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let regex = compiled
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    // A pattern that does not compile is a defect of types.rs, caught by its tests.
    regex.as_ref().is_none_or(|r| r.is_match(text))
}

/// What a class admits, in words, for the help line.
fn describe(pattern: &str) -> String {
    use super::text::*;
    let what = match pattern {
        p if p == NAME => "a name: letters, digits, `_`, `.`, `-`, starting with a letter or digit",
        p if p == SQL_IDENT => "an identifier: letters, digits and `_`, not starting with a digit",
        p if p == ID => "an id: letters, digits, `_`, `.`, `-`",
        p if p == ENV_VAR => "an environment variable name: upper-case letters, digits and `_`",
        p if p == PATH => "a path: letters, digits and `_ . / @ + -`, no spaces",
        p if p == IMAGE => "an image reference such as `redis:7.4.1-alpine`",
        p if p == ADDRESS => "an IP address such as `127.0.0.1`",
        p if p == SUBNET => "a network such as `172.28.0.0/24`",
        p if p == WORD => "one lower-case word (letters, digits, `_`, `-`)",
        p if p == AMQP_NAME => "an AMQP name: letters, digits and `_ . / : -`",
        p if p == AMQP_PATTERN => {
            "an AMQP binding key: letters, digits, `_ . / : -` and the wildcards `*` `#`"
        }
        p if p == TG_USERNAME => "a Telegram username: letters, digits and `_`",
        p if p == RULE_ID => "a rule id such as `TG203`",
        p if p == TEXT => "text on one line: no newline or other control character",
        _ => "a value matching the field's pattern in the schema",
    };
    format!("write {what}")
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
    fn strings_outside_their_class_are_reported_without_the_value() {
        let found = findings(
            "[services.pg.postgres]\ndatabase = \"app\\nEVIL\"\nschema = \"a;b\"\n\n[[channels]]\nid = 1\ntitle = \"two\\nlines\"\n",
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|m| !m.contains("EVIL")), "{found:?}");
        assert!(
            found.iter().any(|m| m.contains("`channels.0.title`")),
            "{found:?}"
        );
        assert!(
            findings("[[channels]]\nid = 1\ntitle = \"Crypto 🚀 signals; #1 = best $\"\n")
                .is_empty()
        );
    }

    /// Each string of the model says what it may contain: a pattern, an enum, or a type of
    /// its own (durations, sizes). Found from the schema, not listed by hand.
    #[test]
    fn every_string_of_the_schema_has_a_class() {
        fn is_string(schema: &Value) -> bool {
            match schema.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                _ => false,
            }
        }
        fn classed(schema: &Value) -> bool {
            ["pattern", "enum", "const", "oneOf"]
                .iter()
                .any(|k| schema.get(k).is_some())
        }
        let root = schema();
        let mut unclassed = Vec::new();
        let mut visit = |owner: &str, properties: &serde_json::Map<String, Value>| {
            for (name, field) in properties {
                for (what, inner) in [
                    ("", Some(field)),
                    ("[]", field.get("items")),
                    ("{}", field.get("additionalProperties")),
                ] {
                    if let Some(inner) = inner.filter(|i| is_string(i) && !classed(i)) {
                        let _ = inner;
                        unclassed.push(format!("{owner}.{name}{what}"));
                    }
                }
            }
        };
        visit("Stack", root["properties"].as_object().unwrap());
        for (name, definition) in root["$defs"].as_object().unwrap() {
            if let Some(properties) = definition.get("properties").and_then(Value::as_object) {
                visit(name, properties);
            }
        }
        assert!(
            unclassed.is_empty(),
            "strings without a pattern: {unclassed:?}"
        );
    }

    #[test]
    fn every_pattern_compiles() {
        use crate::model::text::*;
        for pattern in [
            NAME,
            SQL_IDENT,
            ID,
            ENV_VAR,
            PATH,
            IMAGE,
            ADDRESS,
            SUBNET,
            WORD,
            AMQP_NAME,
            AMQP_PATTERN,
            TG_USERNAME,
            RULE_ID,
            TEXT,
        ] {
            assert!(regex::Regex::new(pattern).is_ok(), "{pattern}");
        }
    }

    #[test]
    fn values_in_range_and_other_types_pass() {
        assert!(findings("[services.pg]\nport = 5432\ncpus = 0.5\npublish = 6434\n").is_empty());
        // A string where a number belongs is a type error for deserialization, not here.
        assert!(findings("[services.pg]\nport = \"5432\"\n").is_empty());
        assert!(findings("[[channels]]\nid = -1001234567890\n").is_empty());
    }
}
