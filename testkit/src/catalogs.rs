//! Generators of the dialect catalogs in `catalogs/`: each reads a real program (or its
//! source at the pinned tag, or the specification it implements) and writes the TSV that
//! tgstack's dialect checks load. The test `catalogs` regenerates every catalog of a
//! program installed here and fails on a difference; `cargo run -p testkit --bin catalogs`
//! rewrites them (catalogs/SOURCES.md says which command made which file).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use regex::Regex;
use serde_json::Value;

/// A catalog file: its `#` header, then one line per row (rows come sorted by key).
fn catalog_text(header: String, rows: impl IntoIterator<Item = String>) -> String {
    let mut text = header;
    for row in rows {
        text.push_str(&row);
        text.push('\n');
    }
    text
}

/// Data lines of a catalog: everything but the `#` provenance comments, which name exact
/// program versions that a distribution update may bump without changing the data.
pub fn data_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// PostgreSQL: `pg_settings` of a fresh cluster of the `postgres` in `bindir`, started on
/// a Unix socket only. pg_settings is the server's own catalog with type, unit, range and
/// enum values; `postgres --describe-config` lacks units and enum values.
pub fn postgres(bindir: &Path) -> String {
    let dir = crate::daemon_temp_dir("tgstack-catalog-pg");
    let data = dir.path().join("data");
    let bin = |name: &str| bindir.join(name).to_string_lossy().into_owned();
    let as_postgres = |args: Vec<String>| {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(&args)
            .output()
            .expect("runuser");
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    std::fs::create_dir(&data).unwrap();
    run(
        "chown",
        &["-R", "postgres:postgres", &dir.path().to_string_lossy()],
    );
    let socket = dir.path().to_string_lossy().into_owned();
    let data_arg = data.to_string_lossy().into_owned();
    as_postgres(vec![
        bin("initdb"),
        "-D".into(),
        data_arg.clone(),
        "-A".into(),
        "trust".into(),
    ]);
    let port = crate::free_port().to_string();
    let options = format!("-c listen_addresses='' -k {socket} -p {port}");
    as_postgres(vec![
        bin("pg_ctl"),
        "-D".into(),
        data_arg.clone(),
        "-o".into(),
        options,
        "-w".into(),
        "-l".into(),
        format!("{socket}/log"),
        "start".into(),
    ]);
    // Stops the server also when the query below fails.
    struct Stop(Vec<String>);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(&self.0)
                .output();
        }
    }
    let _stop = Stop(vec![
        bin("pg_ctl"),
        "-D".into(),
        data_arg,
        "-m".into(),
        "immediate".into(),
        "stop".into(),
    ]);
    let query = "SELECT name, vartype, coalesce(unit, ''), coalesce(min_val, ''), \
                 coalesce(max_val, ''), coalesce(array_to_string(enumvals, ','), ''), context \
                 FROM pg_settings ORDER BY name";
    let rows = Command::new("runuser")
        .args(["-u", "postgres", "--", &bin("psql"), "-X", "-A", "-t", "-F"])
        .arg("\t")
        .args(["-h", &socket, "-p", &port, "-d", "postgres", "-c", query])
        .output();
    let version = run(&bin("postgres"), &["--version"]);
    let rows = rows.expect("psql");
    assert!(
        rows.status.success(),
        "{}",
        String::from_utf8_lossy(&rows.stderr)
    );
    let mut text = format!(
        "# {}# pg_settings of a fresh cluster (initdb defaults)\n# name\ttype\tunit\tmin\tmax\tenumvals\tcontext\n",
        version.trim_end().to_owned() + "\n"
    );
    text.push_str(&String::from_utf8_lossy(&rows.stdout));
    text
}

/// systemd: every unit-file directive per section, as `systemd --dump-configuration-items`
/// of the installed systemd prints them, with the value type it names.
pub fn systemd(binary: &Path) -> String {
    let dump = run(&binary.to_string_lossy(), &["--dump-configuration-items"]);
    let version = run("systemctl", &["--version"]);
    let mut text = format!(
        "# {}\n# systemd --dump-configuration-items\n# section.directive\tvalue\n",
        version.lines().next().unwrap_or("")
    );
    let mut section = String::new();
    for line in dump.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            let _ = writeln!(text, "{section}.{key}\t{value}");
        }
    }
    text
}

/// The arguments of a C macro call `name(a, b(c, d), "e,f")`, split at top-level commas.
fn c_args(call: &str) -> Vec<String> {
    let mut args = Vec::new();
    let (mut depth, mut quoted, mut current) = (0usize, false, String::new());
    for ch in call.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                current.push(ch);
            }
            '(' if !quoted => {
                depth += 1;
                if depth > 1 {
                    current.push(ch);
                }
            }
            ')' if !quoted => {
                if depth == 1 {
                    args.push(current.trim().to_owned());
                    return args;
                }
                depth = depth.saturating_sub(1);
                current.push(ch);
            }
            ',' if !quoted && depth == 1 => {
                args.push(std::mem::take(&mut current).trim().to_owned())
            }
            _ if depth >= 1 => current.push(ch),
            _ => {}
        }
    }
    args
}

fn unquote(arg: &str) -> String {
    arg.trim_matches('"').to_owned()
}

/// Enum value tables of a C file: `configEnum name[] = { {"a", X}, ... };` (Redis) or
/// `struct CfLookup name[] = { { "a", X }, ... };` (PgBouncer).
fn c_enum_tables(source: &str, type_name: &str) -> BTreeMap<String, Vec<String>> {
    let table = Regex::new(&format!(r"(?s){type_name}\s+(\w+)\[\]\s*=\s*\{{(.*?)\}};")).unwrap();
    let value = Regex::new(r#"\{\s*"([^"]+)""#).unwrap();
    table
        .captures_iter(source)
        .map(|c| {
            let values = value
                .captures_iter(&c[2])
                .map(|v| v[1].to_owned())
                .collect();
            (c[1].to_owned(), values)
        })
        .collect()
}

/// Redis: the `standardConfig` table of `src/config.c` (name, alias, type, flags, range,
/// enum values) and the directives its config loader handles outside the table.
pub fn redis_source(version: &str, config_c: &str) -> String {
    let enums = c_enum_tables(config_c, "configEnum");
    let call = Regex::new(r"create(\w+)Config\(").unwrap();
    let mut rows = BTreeMap::new();
    for found in call.captures_iter(config_c) {
        let kind = found[1].to_owned();
        let start = found.get(0).unwrap().end() - 1;
        let args = c_args(&config_c[start..]);
        if args.first().is_none_or(|a| !a.starts_with('"')) {
            continue; // the macro definitions themselves
        }
        let name = unquote(&args[0]);
        let alias = if args[1] == "NULL" {
            String::new()
        } else {
            unquote(&args[1])
        };
        let flags = args[2].as_str();
        let mut marks: Vec<&str> = Vec::new();
        if flags.contains("MULTI_ARG_CONFIG") {
            marks.push("multi");
        }
        if flags.contains("HIDDEN_CONFIG") {
            marks.push("hidden");
        }
        let (mut min, mut max, mut values) = (String::new(), String::new(), String::new());
        let kind = match kind.as_str() {
            "Bool" => "bool".to_owned(),
            "String" | "SDS" => "string".to_owned(),
            "Special" => "special".to_owned(),
            "Enum" => {
                values = enums.get(&args[3]).map(|v| v.join(",")).unwrap_or_default();
                "enum".to_owned()
            }
            _ => {
                let literal = |a: &str| {
                    if a.parse::<i128>().is_ok() {
                        a.to_owned()
                    } else {
                        String::new()
                    }
                };
                min = literal(&args[3]);
                max = literal(&args[4]);
                let numeric = args.get(7).map(String::as_str).unwrap_or("");
                for (flag, mark) in [
                    ("MEMORY_CONFIG", "memory"),
                    ("PERCENT_CONFIG", "percent"),
                    ("OCTAL_CONFIG", "octal"),
                ] {
                    if numeric.contains(flag) {
                        marks.push(mark);
                    }
                }
                "integer".to_owned()
            }
        };
        rows.insert(
            name.clone(),
            format!(
                "{name}\t{alias}\t{kind}\t{}\t{min}\t{max}\t{values}",
                marks.join(",")
            ),
        );
    }
    // Settings Redis still accepts and ignores (`deprecated_configs` of the loader).
    let deprecated = Regex::new(r#"\{"([a-z-]+)",\s*(\d+),\s*(\d+)\}"#).unwrap();
    if let Some(table) = config_c.split("deprecated_configs[] = {").nth(1) {
        let table = table.split("};").next().unwrap_or("");
        for found in deprecated.captures_iter(table) {
            let name = found[1].to_owned();
            rows.entry(name.clone()).or_insert_with(|| {
                format!("{name}\t\tdeprecated\t\t{}\t{}\t", &found[2], &found[3])
            });
        }
    }
    let loader =
        Regex::new(r#"strcasecmp\(argv\[0\],\s*"([a-z-]+)"\)\s*&&\s*argc\s*(==|>=)\s*(\d+)"#)
            .unwrap();
    for found in loader.captures_iter(config_c) {
        let name = found[1].to_owned();
        let arity = format!("{}{}", if &found[2] == ">=" { ">=" } else { "" }, &found[3]);
        rows.entry(name.clone())
            .or_insert_with(|| format!("{name}\t\tdirective\t\t{arity}\t\t"));
    }
    let header = format!(
        "# Redis {version}: standardConfig of src/config.c at tag {version}, and the directives its loader handles (min = argc)\n# name\talias\ttype\tflags\tmin\tmax\tenumvals\n"
    );
    catalog_text(header, rows.into_values())
}

/// Sentinel: the `sentinel <subcommand>` lines `sentinelHandleConfiguration` of
/// `src/sentinel.c` accepts, with the argument count it requires (counting the
/// subcommand).
pub fn sentinel_source(version: &str, sentinel_c: &str) -> String {
    let handler = sentinel_c
        .split("sentinelHandleConfiguration(char **argv, int argc)")
        .nth(1)
        .unwrap_or("");
    let handler = handler.split("\n}\n").next().unwrap_or("");
    let name = Regex::new(r#"strcasecmp\(argv\[0\],\s*"([a-z-]+)"\)"#).unwrap();
    let count = Regex::new(r"argc\s*(==|>=)\s*(\d+)").unwrap();
    let mut rows = BTreeMap::new();
    // One `if (...) {` per subcommand; a condition may name aliases and several counts.
    for branch in handler.split("if (").skip(1) {
        let condition = branch.split('{').next().unwrap_or("");
        let arity: Vec<String> = count
            .captures_iter(condition)
            .map(|c| format!("{}{}", if &c[1] == ">=" { ">=" } else { "" }, &c[2]))
            .collect();
        for found in name.captures_iter(condition) {
            rows.insert(found[1].to_owned(), arity.join("|"));
        }
    }
    let header = format!(
        "# Redis Sentinel {version}: sentinelHandleConfiguration of src/sentinel.c at tag {version}\n# subcommand\targc\n"
    );
    catalog_text(
        header,
        rows.into_iter()
            .map(|(name, arity)| format!("{name}\t{arity}")),
    )
}

/// PgBouncer: the `[pgbouncer]` settings table of `src/main.c` (name, type, enum values).
pub fn pgbouncer_source(version: &str, main_c: &str) -> String {
    let lookups = c_enum_tables(main_c, "struct CfLookup");
    let call = Regex::new(r#"CF_ABS\("#).unwrap();
    let lookup = Regex::new(r"CF_LOOKUP\((\w+)\)").unwrap();
    let mut rows = BTreeMap::new();
    // Variable -> the first setting naming it: a later one is an alias (service_name).
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    for found in call.find_iter(main_c) {
        let args = c_args(&main_c[found.end() - 1..]);
        if args.len() < 3 || !args[0].starts_with('"') {
            continue;
        }
        let (kind, values) = match lookup.captures(&args[1]) {
            Some(c) => (
                "enum".to_owned(),
                lookups.get(&c[1]).map(|v| v.join(",")).unwrap_or_default(),
            ),
            None => (
                args[1].trim_start_matches("CF_").to_lowercase(),
                String::new(),
            ),
        };
        let name = unquote(&args[0]);
        let first = variables
            .entry(args[2].clone())
            .or_insert_with(|| name.clone());
        let alias_of = if *first == name { "" } else { first.as_str() };
        rows.insert(
            name.clone(),
            format!("{name}\t{kind}\t{values}\t{alias_of}"),
        );
    }
    let header = format!(
        "# PgBouncer {version}: the CF_ABS settings table of src/main.c at tag pgbouncer_{}\n# name\ttype\tenumvals\talias_of\n",
        version.replace('.', "_")
    );
    catalog_text(header, rows.into_values())
}

/// RabbitMQ: every `{mapping, "key", ...}` of the cuttlefish schema files (the broker's
/// and every plugin's) with its datatype. Keys with `$name` segments match any segment.
/// `files` are (plugin, schema text).
pub fn rabbitmq_schemas(version: &str, files: &[(String, String)]) -> String {
    let mapping = Regex::new(r#"\{\s*mapping\s*,\s*"([^"]+)"\s*,"#).unwrap();
    let mut rows = BTreeMap::new();
    for (plugin, text) in files {
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('%'))
            .collect::<Vec<_>>()
            .join("\n");
        for found in mapping.captures_iter(&code) {
            let rest = &code[found.get(0).unwrap().end()..];
            let body = rest.split("]}.").next().unwrap_or("");
            let datatype = datatype_of(body);
            rows.insert(
                found[1].to_owned(),
                format!("{}\t{datatype}\t{plugin}", &found[1]),
            );
        }
    }
    let header = format!(
        "# RabbitMQ {version}: the mappings of priv/schema/*.schema of the broker and its plugins\n# key\tdatatype\tplugin\n"
    );
    catalog_text(header, rows.into_values())
}

/// The `{datatype, ...}` term of one cuttlefish mapping with whitespace removed, or
/// `string` (cuttlefish's default).
fn datatype_of(body: &str) -> String {
    let Some(start) = body.find("{datatype") else {
        return "string".into();
    };
    let mut depth = 0;
    let mut term = String::new();
    for ch in body[start..].chars() {
        match ch {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        term.push(ch);
        if depth == 0 {
            break;
        }
    }
    let term: String = term.chars().filter(|c| !c.is_whitespace()).collect();
    term.trim_start_matches("{datatype,")
        .strip_suffix('}')
        .unwrap_or(&term)
        .to_owned()
}

/// Compose: every key path of the Compose Specification's JSON schema with its type;
/// `*` stands for a name chosen by the author (a service, a network), `x-*` for extension
/// fields.
pub fn compose_spec(schema: &Value) -> String {
    let mut rows = BTreeMap::new();
    walk_schema(schema, schema, "", &mut rows, 0);
    let header = String::from(
        "# Compose Specification: key paths of compose-spec.json (the schema of the compose-spec repository)\n# path\ttype\n",
    );
    catalog_text(
        header,
        rows.into_iter()
            .map(|(path, kind)| format!("{path}\t{kind}")),
    )
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            root.pointer(pointer)
                .map(|n| resolve(root, n))
                .unwrap_or(node)
        }
        None => node,
    }
}

fn type_of(node: &Value) -> String {
    match node.get("type") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        _ if node.get("oneOf").is_some() || node.get("anyOf").is_some() => "any".into(),
        _ => String::new(),
    }
}

fn walk_schema(
    root: &Value,
    node: &Value,
    path: &str,
    rows: &mut BTreeMap<String, String>,
    depth: usize,
) {
    if depth > 12 {
        return;
    }
    let node = resolve(root, node);
    for alternatives in ["oneOf", "anyOf", "allOf"] {
        for alternative in node
            .get(alternatives)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk_schema(root, alternative, path, rows, depth + 1);
        }
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            let child_path = join(key);
            let kind = type_of(resolve(root, child));
            let entry = rows.entry(child_path.clone()).or_default();
            if entry.is_empty() {
                *entry = kind;
            }
            walk_schema(root, child, &child_path, rows, depth + 1);
        }
    }
    if let Some(patterns) = node.get("patternProperties").and_then(Value::as_object) {
        for (pattern, child) in patterns {
            let key = if pattern.starts_with("^x-") {
                "x-*"
            } else {
                "*"
            };
            let child_path = join(key);
            rows.entry(child_path.clone())
                .or_insert_with(|| type_of(resolve(root, child)));
            if key == "*" {
                walk_schema(root, child, &child_path, rows, depth + 1);
            }
        }
    }
    if let Some(child) = node.get("additionalProperties").filter(|c| c.is_object()) {
        let child_path = join("*");
        rows.entry(child_path.clone())
            .or_insert_with(|| type_of(resolve(root, child)));
        walk_schema(root, child, &child_path, rows, depth + 1);
    }
    if let Some(items) = node.get("items").filter(|c| c.is_object()) {
        walk_schema(root, items, path, rows, depth + 1);
    }
}

/// The schema files of an installed RabbitMQ: `PLUGINS/<plugin>-<version>/priv/schema/*`
/// as (plugin, text), the plugin named without its version like in the source tree.
pub fn installed_rabbitmq_schemas(plugins: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in crate::sorted_entries(plugins) {
        let plugin = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit_once('-'))
            .map(|(name, _)| name.to_owned())
            .unwrap_or_default();
        let schema_dir = dir.join("priv/schema");
        if !schema_dir.is_dir() {
            continue;
        }
        for schema in crate::sorted_entries(&schema_dir) {
            files.push((plugin.clone(), std::fs::read_to_string(&schema).unwrap()));
        }
    }
    files
}
