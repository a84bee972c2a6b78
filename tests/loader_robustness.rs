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
fn hostile_values_are_rejected_not_rendered() {
    // A newline inside a value would inject a directive into pgbouncer.ini.
    let base = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    let overlay =
        "[services.timescaledb.postgres]\ndatabase = \"telegram\\nadmin_users = mallory\"\n";
    let model = tgstack::model::load_texts(vec![
        (root().join("stack.toml"), base),
        (PathBuf::from("evil.toml"), overlay.into()),
    ])
    .expect("loads");
    let errors = tgstack::render::render(&model, None).expect_err("must refuse to render");
    assert!(errors.iter().all(|f| f.rule == "TG010"), "{errors:?}");
    assert!(
        errors.iter().any(|f| f.message.contains("pgbouncer")),
        "{errors:?}"
    );
}
