//! The loader and validator never panic, whatever the input: every truncation of the
//! reference model, and seeded random mutations of it, give findings or a model.

use std::path::PathBuf;

use crate::support::root;

/// Loads and, if that works, checks and renders: the whole path `validate` takes.
fn exercise(text: &str) {
    let loaded = tgstack::model::load_texts(vec![(PathBuf::from("fuzz.toml"), text.to_string())]);
    if let Ok(model) = loaded {
        let _ = tgstack::validate(&model, None, tgstack::Against::Rendered);
    }
}

#[test]
fn every_truncation_of_the_model_is_handled() {
    let text = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    let boundaries: Vec<usize> = (0..=text.len())
        .filter(|i| text.is_char_boundary(*i))
        .collect();
    // Every 7th cut keeps the test quick while hitting every kind of construct.
    for cut in boundaries.iter().step_by(7) {
        exercise(&text[..*cut]);
    }
}

/// xorshift: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_of_the_model_are_handled() {
    let text = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let fragments = [
        "=",
        "[",
        "]",
        "\"",
        "{",
        "}",
        "0",
        "-1",
        "99999999999999999999",
        "1e400",
        "\"\\u0000\"",
        "[[services]]",
        "port = \"x\"",
        "memory = \"-1GiB\"",
        "cpus = -5.0",
        "count = 0",
        "quorum = 4294967295",
        "\n",
        "é",
        "ßüñ",
        "#",
        "''",
        "inf",
        "nan",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..300 {
        let mut mutated: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for _ in 0..(1 + rng.below(4)) {
            let at = rng.below(mutated.len());
            match rng.below(4) {
                0 => {
                    mutated.remove(at);
                }
                1 => mutated.insert(at, fragments[rng.below(fragments.len())].to_string()),
                2 => {
                    let line = &mutated[at];
                    let cut = (0..=line.len())
                        .filter(|i| line.is_char_boundary(*i))
                        .nth(rng.below(line.chars().count() + 1))
                        .unwrap_or(0);
                    let fragment = fragments[rng.below(fragments.len())];
                    mutated[at] = format!("{}{}{}", &line[..cut], fragment, &line[cut..]);
                }
                _ => {
                    let other = rng.below(mutated.len());
                    mutated.swap(at, other);
                }
            }
        }
        exercise(&mutated.join("\n"));
    }
}

#[test]
fn hostile_values_are_rejected_at_load_with_their_location() {
    // A newline inside a value would inject a directive into pgbouncer.ini: the database
    // name is an identifier, refused where it is written, the value never repeated.
    let base = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    let overlay =
        "[services.timescaledb.postgres]\ndatabase = \"telegram\\nadmin_users = mallory\"\n";
    let findings = tgstack::model::load_texts(vec![
        (root().join("stack.toml"), base),
        (PathBuf::from("evil.toml"), overlay.into()),
    ])
    .expect_err("must refuse to load");
    let finding = findings
        .iter()
        .find(|f| f.path == "services.timescaledb.postgres.database")
        .unwrap_or_else(|| panic!("no finding at the key: {findings:?}"));
    assert_eq!(finding.rule, "TG002");
    let location = finding.location.as_ref().expect("a location");
    assert_eq!((location.file.as_str(), location.line), ("evil.toml", 2));
    assert!(!finding.message.contains("mallory"), "{}", finding.message);
}

#[test]
fn values_that_would_change_a_rendered_file_are_refused_at_their_key() {
    let base = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    // (overlay, key path): a newline, a comment or separator character, `${...}`.
    let cases = [
        (
            "[services.rabbitmq.rabbitmq]\nvhost = \"telegram\\n[x]\"\n",
            "services.rabbitmq.rabbitmq.vhost",
        ),
        (
            "[services.redis-master]\nimage = \"redis:7 ${HOME}\"\n",
            "services.redis-master.image",
        ),
        (
            "[deploy]\nsecrets_dir = \"/etc/tg secrets;rm\"\n",
            "deploy.secrets_dir",
        ),
        (
            "[services.pgbouncer.pgbouncer]\nupstream = \"timescaledb=evil\"\n",
            "services.pgbouncer.pgbouncer.upstream",
        ),
        (
            "[services.sentinel.sentinel]\nmaster_name = \"mymaster#x\"\n",
            "services.sentinel.sentinel.master_name",
        ),
        (
            "[services.tg-gateway]\nlisten = \"0.0.0.0 # all\"\n",
            "services.tg-gateway.listen",
        ),
        (
            "[services.redis-master.redis]\nmaxmemory_policy = \"noeviction\\nrename-command CONFIG x\"\n",
            "services.redis-master.redis.maxmemory_policy",
        ),
    ];
    for (overlay, key) in cases {
        let findings = tgstack::model::load_texts(vec![
            (root().join("stack.toml"), base.clone()),
            (PathBuf::from("evil.toml"), overlay.into()),
        ])
        .expect_err(overlay);
        let finding = findings
            .iter()
            .find(|f| f.path == key)
            .unwrap_or_else(|| panic!("{key}: no finding at the key: {findings:?}"));
        assert_eq!(finding.rule, "TG002", "{key}");
        let location = finding.location.as_ref().expect("a location");
        assert_eq!(location.file, "evil.toml", "{key}");
        assert!(finding.help.is_some(), "{key}: no hint");
    }
}

/// A random string from characters that break formats: quotes, backslashes, `$`, braces,
/// `%`, `#`, `;`, `=`, non-ASCII.
fn awkward_text(rng: &mut Rng, len: usize) -> String {
    const PIECES: [&str; 22] = [
        "a", "Z", "7", " ", "'", "\"", "\\", "$", "${X}", "{{", "}}", "{%", "%", "#", ";", "=",
        ":", "--", "/*", "🚀", "é", "&",
    ];
    (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect()
}

/// TOML basic string for `text`.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// render and validate agree: any model that loads renders, and what it renders
/// validates without an error. Generated models vary the free-text and named values that
/// reach rendered files (channel titles and usernames, alert texts, identifiers, names).
#[test]
fn every_model_that_loads_renders_and_validates_clean() {
    let base = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    let mut checked = 0;
    for round in 0..40 {
        let (title_len, description_len) = (1 + rng.below(24), rng.below(30));
        let title = awkward_text(&mut rng, title_len);
        let description = awkward_text(&mut rng, description_len);
        let identifier = format!(
            "s{}_{}",
            rng.below(1000),
            ["x", "Tg", "data_2"][rng.below(3)]
        );
        let summary_len = 1 + rng.below(20);
        let summary = awkward_text(&mut rng, summary_len);
        let overlay = format!(
            "append = [\"channels\", \"alerts\"]\n\n\
             [[alerts]]\nname = \"Round{round}\"\nkind = \"service-down\"\nservice = \"gateway-api\"\nseverity = \"warning\"\nfor = \"1m\"\nsummary = {summary}\n\n\
             [secrets.api_key]\ndescription = {description}\n\n\
             [services.timescaledb.postgres]\nschema = \"{identifier}\"\n\n\
             [[channels]]\nid = -100{id}\ntitle = {title}\nusername = \"u{round}_x\"\n",
            description = toml_string(&description),
            title = toml_string(&title),
            summary = toml_string(&summary),
            id = 5_000_000_000u64 + round,
        );
        let loaded = tgstack::model::load_texts(vec![
            (root().join("stack.toml"), base.clone()),
            (PathBuf::from(format!("round{round}.toml")), overlay.clone()),
        ]);
        let Ok(model) = loaded else {
            continue;
        };
        if let Err(findings) = tgstack::render(&model, None) {
            panic!(
                "round {round}: loads but does not render:\n{overlay}\n{}",
                tgstack::report::human(&findings)
            );
        }
        let report = tgstack::validate(&model, None, tgstack::Against::Rendered);
        let errors: Vec<_> = report.findings.iter().filter(|f| f.is_error()).collect();
        assert!(
            errors.is_empty(),
            "round {round}: renders but does not validate:\n{overlay}\n{errors:#?}"
        );
        checked += 1;
    }
    // Every piece is allowed free text: the rounds are checks, not skipped loads.
    assert_eq!(checked, 40, "only {checked} of 40 generated models loaded");
}

/// The reference model and its scalar fields (see [`scalar_fields`]).
fn reference_fields() -> (toml::Value, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    let reference: toml::Value = toml::from_str(&text).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&tgstack::schema_json()).unwrap();
    let mut fields = Vec::new();
    let mut seen = Default::default();
    scalar_fields(
        &reference,
        &schema,
        &schema,
        "Stack",
        &mut Vec::new(),
        &mut seen,
        &mut fields,
    );
    (reference, fields)
}

/// Every scalar value of the reference model, one per field of the schema (the first
/// place it occurs), as a path of keys and array indices; numbers and booleans end in a
/// `#` element, strings do not. Found by walking the model along its JSON Schema, not
/// listed by hand.
fn scalar_fields(
    value: &toml::Value,
    schema: &serde_json::Value,
    root: &serde_json::Value,
    owner: &str,
    path: &mut Vec<String>,
    seen: &mut std::collections::BTreeSet<String>,
    out: &mut Vec<Vec<String>>,
) {
    use serde_json::Value as J;
    // Follow $ref (remembering whose field it is) and take an Option's non-null branch.
    let mut schema = schema;
    let mut owner = owner.to_string();
    for _ in 0..16 {
        if let Some(reference) = schema.get("$ref").and_then(J::as_str) {
            owner = reference.trim_start_matches("#/$defs/").to_string();
            schema = &root["$defs"][owner.as_str()];
        } else if let Some(branches) = schema.get("anyOf").and_then(J::as_array) {
            schema = branches
                .iter()
                .find(|b| b.get("type") != Some(&J::String("null".into())))
                .unwrap_or(schema);
            if schema.get("anyOf").is_some() {
                break;
            }
        } else {
            break;
        }
    }
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table {
                let field = schema
                    .get("properties")
                    .and_then(|p| p.get(key))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(field) = field {
                    path.push(key.clone());
                    // A map's entries are all the same field of the same owner.
                    let id = if schema.get("properties").and_then(|p| p.get(key)).is_some() {
                        format!("{owner}.{key}")
                    } else {
                        format!("{owner}.*")
                    };
                    scalar_fields(child, field, root, &id, path, seen, out);
                    path.pop();
                }
            }
        }
        toml::Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (index, child) in items.iter().enumerate() {
                    path.push(index.to_string());
                    scalar_fields(child, item, root, &format!("{owner}[]"), path, seen, out);
                    path.pop();
                }
            }
        }
        toml::Value::String(_) if seen.insert(owner.clone()) => out.push(path.clone()),
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)
            if seen.insert(format!("{owner}#scalar")) =>
        {
            // Recorded apart from strings, marked by a trailing "#".
            let mut marked = path.clone();
            marked.push("#".into());
            out.push(marked);
        }
        _ => {}
    }
}

/// Sets the string at `path` of `model` to `value`.
fn set_string(model: &mut toml::Value, path: &[String], value: String) {
    set_value(model, path, toml::Value::String(value));
}

/// Sets the value at `path` of `model`.
fn set_value(model: &mut toml::Value, path: &[String], value: toml::Value) {
    let mut at = model;
    for key in path {
        at = match at {
            toml::Value::Table(table) => table.get_mut(key).expect("path from the model"),
            toml::Value::Array(items) => &mut items[key.parse::<usize>().expect("an index")],
            _ => panic!("path {path:?} goes through a value"),
        };
    }
    *at = value;
}

/// For every string field of the schema that the reference model uses: a newline in it
/// is refused with the key's path (at load, or by its rule before anything renders), and a
/// value carrying comment, separator and interpolation characters (`# ; = ${X}`) is either
/// refused the same way or renders into files that validate clean (re-parsed in their own
/// dialects, compared across files).
#[test]
fn every_string_field_refuses_or_survives_injection() {
    let (reference, mut fields) = reference_fields();
    // Strings only here; numbers and booleans are the corpus test's.
    fields.retain(|p| p.last().map(String::as_str) != Some("#"));
    assert!(
        fields.len() >= 40,
        "only {} string fields found",
        fields.len()
    );
    let refused_at = |findings: &[tgstack::finding::Finding], key: &str| {
        findings.iter().any(|f| f.is_error() && f.path == key)
    };
    for path in &fields {
        let key = path.join(".");
        let original = {
            let mut at = &reference;
            for part in path {
                at = match at {
                    toml::Value::Table(t) => &t[part.as_str()],
                    toml::Value::Array(items) => &items[part.parse::<usize>().unwrap()],
                    _ => unreachable!(),
                };
            }
            at.as_str().unwrap().to_string()
        };
        for (hostile, may_render) in [
            (format!("{original}\nnew_directive = 1"), false),
            (format!("{original} # ; = ${{X}}"), true),
        ] {
            let mut model = reference.clone();
            set_string(&mut model, path, hostile.clone());
            let text = toml::to_string(&model).unwrap();
            let loaded = tgstack::model::load_texts(vec![(PathBuf::from("hostile.toml"), text)]);
            let model = match loaded {
                Err(findings) => {
                    assert!(
                        refused_at(&findings, &key),
                        "{key} = {hostile:?}: refused, but not at the key:\n{}",
                        tgstack::report::human(&findings)
                    );
                    continue;
                }
                Ok(model) => model,
            };
            let report = tgstack::validate(&model, None, tgstack::Against::Rendered);
            if refused_at(&report.findings, &key) {
                continue;
            }
            assert!(
                may_render,
                "{key} = {hostile:?}: a newline was accepted:\n{}",
                tgstack::report::human(&report.findings)
            );
            let errors: Vec<_> = report.findings.iter().filter(|f| f.is_error()).collect();
            assert!(
                errors.is_empty(),
                "{key} = {hostile:?}: accepted, and what it renders does not validate:\n{errors:#?}"
            );
        }
    }
}

/// A hostile corpus, generated: every scalar field of the schema the reference model uses
/// (one place each), given each of a dozen values of the wrong size, sign, type or shape.
/// Whatever the loader answers, it never panics, and every finding it gives has a
/// `file:line:col` and a key path.
#[test]
fn hostile_corpus_gets_located_findings_and_no_panic() {
    let (reference, fields) = reference_fields();
    let hostile = [
        toml::Value::Integer(i64::MAX),
        toml::Value::Integer(i64::MIN),
        toml::Value::Integer(0),
        toml::Value::Integer(-1),
        toml::Value::Float(f64::NAN),
        toml::Value::Float(f64::INFINITY),
        toml::Value::Float(-0.5),
        toml::Value::String(String::new()),
        toml::Value::String("x".repeat(70_000)),
        toml::Value::String("\u{0}\u{1b}[31m".into()),
        toml::Value::Boolean(true),
        toml::Value::Array(vec![toml::Value::Integer(1)]),
        toml::Value::Table(toml::Table::new()),
    ];
    let mut cases = 0;
    for field in &fields {
        let path: Vec<String> = field.iter().filter(|p| *p != "#").cloned().collect();
        for value in &hostile {
            let mut model = reference.clone();
            set_value(&mut model, &path, value.clone());
            let Ok(text) = toml::to_string(&model) else {
                continue;
            };
            cases += 1;
            let outcome = std::panic::catch_unwind(|| {
                tgstack::model::load_texts(vec![(PathBuf::from("corpus.toml"), text.clone())])
            });
            let key = path.join(".");
            let Ok(loaded) = outcome else {
                panic!("{key} = {value:?}: the loader panicked");
            };
            let findings = match loaded {
                Ok(model) => {
                    let report = tgstack::validate(&model, None, tgstack::Against::Rendered);
                    report.findings
                }
                Err(findings) => findings,
            };
            for finding in &findings {
                assert!(
                    finding.location.is_some() && !finding.path.is_empty(),
                    "{key} = {value:?}: a finding without file:line:col or key path:\n{finding:#?}"
                );
            }
        }
    }
    eprintln!("{cases} hostile cases over {} fields", fields.len());
    assert!(cases >= 150, "only {cases} hostile cases");
}
