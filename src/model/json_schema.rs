//! The JSON Schema of `stack.toml`, derived from the types in types.rs. TOML has no null,
//! so the `null` schemars adds for every `Option` (`anyOf [T, null]`, `type [T, "null"]`,
//! `default: null`) is dropped: an optional table is then a plain optional property, and an
//! editor reports a mistyped key inside it at that key instead of "not valid under any of
//! the schemas" with the whole table.

use serde_json::Value;

/// The schema, as `tgstack schema` prints it and the loader walks it.
pub fn document() -> Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(super::Stack)).unwrap_or(Value::Null);
    drop_null(&mut schema);
    schema
}

fn is_null_type(schema: &Value) -> bool {
    schema.get("type") == Some(&Value::String("null".into()))
}

fn drop_null(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            let single = match map.get("anyOf") {
                Some(Value::Array(branches)) if branches.len() == 2 => {
                    let kept: Vec<&Value> = branches.iter().filter(|b| !is_null_type(b)).collect();
                    (kept.len() == 1).then(|| kept[0].clone())
                }
                _ => None,
            };
            if let Some(Value::Object(branch)) = single {
                map.remove("anyOf");
                for (key, value) in branch {
                    map.entry(key).or_insert(value);
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_null_is_left_and_optional_tables_are_plain_references() {
        let schema = document();
        let text = schema.to_string();
        assert!(!text.contains("\"null\""), "a null type is left");
        let cache = &schema["$defs"]["ApiSettings"]["properties"]["cache"];
        assert_eq!(cache["$ref"], "#/$defs/ReadCache", "{cache}");
        assert!(cache.get("anyOf").is_none());
    }
}
