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
