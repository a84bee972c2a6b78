//! The shape of the model, checked when it is loaded: known keys, required keys, the type
//! of every value, and the ranges and patterns of the fields. Each is written once on
//! its field in types.rs (`#[schemars(range(...))]`, `#[schemars(pattern(text::...))]`): it
//! becomes `minimum`/`maximum`/`pattern` in the JSON Schema an editor reads, and this module
//! walks the merged TOML along that same schema. A number outside its range (or a float
//! that is not finite), or a string its class does not admit (a newline, `#`, `;`, `=`,
//! `${` in a name, say), is TG002 at its line with its key path, before anything uses it:
//! no rule computes with port 0, and no value changes the structure of a rendered file.

use std::ops::Range;
use std::sync::OnceLock;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::finding::{Finding, Severity};

/// The model's JSON Schema, generated once.
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(super::json_schema::document)
}

/// Every number of `table` outside the range its field declares.
pub fn check(table: &Spanned<DeTable<'_>>) -> Vec<Finding> {
    let root = schema();
    let mut walk = Walk {
        root,
        path: Vec::new(),
        findings: Vec::new(),
    };
    walk.table(table.get_ref(), table.span(), root);
    walk.findings
}

struct Walk<'s> {
    root: &'s Value,
    path: Vec<String>,
    findings: Vec<Finding>,
}

impl<'s> Walk<'s> {
    fn table(&mut self, table: &DeTable<'_>, span: Range<usize>, schema: &'s Value) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let open = schema.get("additionalProperties").filter(|a| a.is_object());
        for (key, value) in table {
            let name: &str = key.get_ref().as_ref();
            let field = properties.and_then(|p| p.get(name)).or(open);
            match field {
                Some(field) => {
                    self.path.push(name.to_string());
                    self.value(value, field);
                    self.path.pop();
                }
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    let known =
                        properties.map(|p| p.keys().map(String::as_str).collect::<Vec<_>>());
                    self.unknown_key(name, key.span(), &known.unwrap_or_default());
                }
                None => {}
            }
        }
        let required = schema.get("required").and_then(Value::as_array);
        for missing in required.into_iter().flatten().filter_map(Value::as_str) {
            if !table.contains_key(missing) {
                let at = self.path.join(".");
                let owner = if at.is_empty() {
                    "the model".to_string()
                } else {
                    format!("`{at}`")
                };
                self.push(
                    Finding::new(
                        "TG002",
                        Severity::Error,
                        format!("{owner} needs the key `{missing}`"),
                    )
                    .with_path(at)
                    .with_span(span.clone())
                    .with_help(
                        "add the missing key (see `tgstack schema` for every key and its default)",
                    ),
                );
            }
        }
    }

    fn unknown_key(&mut self, name: &str, span: Range<usize>, known: &[&str]) {
        let help = match crate::suggest::closest(name, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!(
                "expected one of: {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.path.push(name.to_string());
        let at = self.path.join(".");
        self.path.pop();
        self.push(
            Finding::new("TG002", Severity::Error, format!("unknown key `{name}`"))
                .with_path(at)
                .with_span(span)
                .with_help(help),
        );
    }

    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>, schema: &'s Value) {
        let resolved =
            resolve(schema, self.root, value.get_ref()).filter(|r| fits(r, value.get_ref()));
        let Some(resolved) = resolved else {
            self.wrong_type(value, schema);
            return;
        };
        let schema = resolved;
        match value.get_ref() {
            DeValue::Table(table) => self.table(table, value.span(), schema),
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

    /// A value of the wrong kind (or not among the allowed values): said in the model's
    /// words, never serde's, and never repeating the value.
    fn wrong_type(&mut self, value: &Spanned<DeValue<'_>>, schema: &Value) {
        // At a key that holds a secret, the loader's secret check has said it already,
        // without the value (TG104 for a string, TG002 for any other shape).
        let secret_key = self
            .path
            .last()
            .is_some_and(|key| super::load::looks_like_secret_key(key));
        if secret_key && self.path.first().is_some_and(|p| p != "secrets") {
            return;
        }
        let expected = expected(schema, self.root);
        let path = self.path.join(".");
        let subject = if path.is_empty() {
            "the model".to_string()
        } else {
            format!("`{path}`")
        };
        self.push(
            Finding::new(
                "TG002",
                Severity::Error,
                format!("{subject} must be {expected}"),
            )
            .with_path(path)
            .with_span(value.span())
            .with_help(format!("write {expected} (see `tgstack schema`)")),
        );
    }

    fn text(&mut self, value: &Spanned<DeValue<'_>>, schema: &Value, text: &str) {
        let Some(pattern) = schema.get("pattern").and_then(Value::as_str) else {
            return;
        };
        // Sizes and durations: their own parsers decide, with messages of their own.
        let unit = match pattern {
            p if p == super::units::BYTE_SIZE_PATTERN => super::units::ByteSize::parse(text).err(),
            p if p == super::units::DURATION_PATTERN => super::units::Duration::parse(text).err(),
            _ => None,
        };
        if let Some(message) = unit {
            let path = self.path.join(".");
            self.push(
                Finding::new("TG002", Severity::Error, message)
                    .with_path(path)
                    .with_span(value.span())
                    .with_help("see `tgstack schema` for the expected type of this key"),
            );
            return;
        }
        // Sizes and durations explain their own syntax when parsed; environment variable
        // names (TG006) and subnets (TG009) have rules with messages of their own, which
        // run before anything is rendered.
        if !super::text::CHECKED_AT_LOAD.contains(&pattern) || matches(pattern, text) {
            return;
        }
        let path = self.path.join(".");
        // Never repeat the value: it may be a secret written in the wrong place.
        self.push(
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

/// What a schema admits, in words: "a whole number from 1 to 65535", "one of `a`, `b`",
/// "a size such as `512MiB`", "a table".
fn expected(schema: &Value, root: &Value) -> String {
    let mut schema = schema;
    for _ in 0..32 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let name = reference.trim_start_matches("#/$defs/");
        match name {
            "ByteSize" => return "a size with a unit, such as `512MiB`".into(),
            "Duration" => return "a duration with a unit, such as `30s`".into(),
            "SecretRef" => return "a reference `{ secret = \"<id>\" }`".into(),
            _ => {}
        }
        match root.get("$defs").and_then(|d| d.get(name)) {
            Some(next) => schema = next,
            None => break,
        }
    }
    let mut values: Vec<String> = Vec::new();
    if let Some(list) = schema.get("enum").and_then(Value::as_array) {
        values.extend(
            list.iter()
                .filter_map(Value::as_str)
                .map(|v| format!("`{v}`")),
        );
    }
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let words: Vec<String> = branches
            .iter()
            .filter(|b| b.get("type") != Some(&Value::String("null".into())))
            .map(|b| match b.get("const").and_then(Value::as_str) {
                Some(value) => format!("`{value}`"),
                None => expected(b, root),
            })
            .collect();
        if words.iter().all(|w| w.starts_with('`')) {
            values.extend(words);
        } else {
            return words.join(" or ");
        }
    }
    if !values.is_empty() {
        return format!("one of {}", values.join(", "));
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or(""),
        _ => "",
    };
    let bounds = |what: &str| match (
        schema.get("minimum").and_then(Value::as_f64),
        schema.get("maximum").and_then(Value::as_f64),
    ) {
        (Some(min), Some(max)) => format!("{what} from {} to {}", show(min), show(max)),
        (Some(min), None) => format!("{what} of at least {}", show(min)),
        _ => what.to_string(),
    };
    match kind {
        "integer" => bounds("a whole number"),
        "number" => bounds("a number"),
        "string" => "a string".into(),
        "boolean" => "`true` or `false`".into(),
        "array" => "a list `[...]`".into(),
        "object" => "a table".into(),
        _ => "a value of another type".into(),
    }
}

/// Whether `text` matches `pattern`, one of the classes of text.rs (compiled once).
fn matches(pattern: &str, text: &str) -> bool {
    use std::collections::HashMap;
    static COMPILED: OnceLock<HashMap<&'static str, regex::Regex>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        super::text::CHECKED_AT_LOAD
            .iter()
            .filter_map(|p| Some((*p, regex::Regex::new(p).ok()?)))
            .collect()
    });
    // A class that does not compile is a defect of text.rs, caught by its tests.
    compiled.get(pattern).is_none_or(|r| r.is_match(text))
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
    if let DeValue::String(text) = value {
        let text: &str = text.as_ref();
        if let Some(constant) = schema.get("const") {
            return constant.as_str() == Some(text);
        }
        if let Some(list) = schema.get("enum").and_then(Value::as_array) {
            return list.iter().any(|v| v.as_str() == Some(text));
        }
    }
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
        // Untyped: an object described by its properties, or anything at all.
        _ => {
            return schema.get("properties").is_none() || kind == "object";
        }
    };
    types
        .iter()
        .any(|t| *t == kind || (*t == "number" && kind == "integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The findings of a partial model, leaving out the keys it does not write.
    fn findings(toml: &str) -> Vec<String> {
        let table = DeTable::parse(toml).expect("valid TOML");
        check(&table)
            .into_iter()
            .map(|f| f.message)
            .filter(|m| !m.contains("needs the key"))
            .collect()
    }

    #[test]
    fn missing_required_keys_are_named_with_their_table() {
        let table = DeTable::parse(
            "name = \"x\"\n[host]\ncpus = 2.0\nmemory = \"4GiB\"\n[services.pg]\nport = 5432\n",
        )
        .unwrap();
        let found: Vec<String> = check(&table).into_iter().map(|f| f.message).collect();
        assert!(
            found.contains(&"`services.pg` needs the key `kind`".to_string()),
            "{found:?}"
        );
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
        use crate::model::text::{ENV_VAR, SUBNET};
        for pattern in super::super::text::CHECKED_AT_LOAD
            .iter()
            .chain(&[ENV_VAR, SUBNET])
        {
            assert!(regex::Regex::new(pattern).is_ok(), "{pattern}");
        }
    }

    #[test]
    fn values_in_range_and_other_types_pass() {
        assert!(findings("[services.pg]\nport = 5432\ncpus = 0.5\npublish = 6434\n").is_empty());
        // A string where a number belongs is a type error, said in words.
        assert_eq!(
            findings("[services.pg]\nport = \"5432\"\n"),
            ["`services.pg.port` must be a whole number from 1 to 65535"]
        );
        assert!(findings("[[channels]]\nid = -1001234567890\n").is_empty());
    }
}
