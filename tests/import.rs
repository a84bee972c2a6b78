//! `tgstack import`: the reference tree read back gives the reference model (every rendered
//! file byte for byte, and the effective model but for what no deployed file holds); the
//! hand-written corpus imports into a model that loads and renders, with every difference
//! from the originals explained and no credential copied.

use std::collections::BTreeSet;
use std::path::Path;

use tgstack::import::{compare, import};
use tgstack::tree::read_tree;

use crate::support::{root, tgstack};

/// Loads and renders a model text as `tgstack render` would.
fn render(text: &str) -> tgstack::tree::Tree {
    let model = tgstack::model::load_texts(vec![(root().join("imported.toml"), text.to_owned())])
        .unwrap_or_else(|findings| {
            panic!("the imported model does not load: {findings:#?}\n{text}")
        });
    tgstack::render(&model, None)
        .unwrap_or_else(|findings| panic!("the imported model does not render: {findings:#?}"))
        .tree
}

/// Alert names the rules files of a tree hold.
fn rendered_alerts(tree: &tgstack::tree::Tree) -> BTreeSet<String> {
    tree.iter()
        .filter(|(path, _)| path.starts_with("prometheus/rules/"))
        .flat_map(|(_, bytes)| {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("- alert: "))
                .map(|n| n.trim_matches('"').to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_reference_tree_imports_back_into_the_reference_model() {
    let generated = root().join("generated");
    let imported = import(&generated).unwrap();
    let original = read_tree(&generated).unwrap();
    let rendered = render(&imported.toml);

    let differing: Vec<&String> = original
        .keys()
        .chain(rendered.keys())
        .filter(|path| path.as_str() != "model/stack.toml")
        .filter(|path| original.get(*path) != rendered.get(*path))
        .collect();
    assert!(
        differing.is_empty(),
        "files the imported model renders differently: {differing:?}\n{}",
        compare(&original, &rendered, &imported)
    );

    // The effective models agree, but for what no deployed file holds: the host ports the
    // model keeps free (a check, not a setting), and alerts that render nothing while
    // their service's feature is off.
    let effective = |tree: &tgstack::tree::Tree| -> toml::Table {
        let text = String::from_utf8_lossy(&tree["model/stack.toml"]).into_owned();
        let mut table: toml::Table = text.parse().unwrap();
        table["host"]
            .as_table_mut()
            .unwrap()
            .remove("reserved_ports");
        table
    };
    let mut expected = effective(&original);
    let kept = rendered_alerts(&original);
    let alerts = expected["alerts"].as_array_mut().unwrap();
    let before = alerts.len();
    alerts.retain(|a| kept.contains(a["name"].as_str().unwrap()));
    assert_eq!(
        before - alerts.len(),
        1,
        "the read-cache alert is the one not rendered"
    );
    let actual = effective(&rendered);
    assert_eq!(
        toml::to_string(&actual).unwrap(),
        toml::to_string(&expected).unwrap(),
        "the effective models differ"
    );
    assert!(
        imported.toml.contains("reserved_ports = []  # guessed:"),
        "the unrecoverable host ports are marked as guessed"
    );
}

#[test]
fn the_hand_written_corpus_imports_renders_and_every_difference_has_a_reason() {
    let corpus = root().join("tests/fixtures/audit/clean");
    let imported = import(&corpus).unwrap();
    insta::assert_snapshot!("imported_hand_written_corpus", imported.toml);
    let rendered = render(&imported.toml);
    let original = read_tree(&corpus).unwrap();
    let report = compare(&original, &rendered, &imported);
    insta::assert_snapshot!("compared_hand_written_corpus", reasons_per_file(&report));
    // No credential of the corpus reaches the model or the comparison.
    let secrets = corpus_secrets(&corpus);
    assert!(
        secrets.len() >= 3,
        "the corpus holds credentials to look for: {}",
        secrets.len()
    );
    for secret in secrets {
        assert!(
            !imported.toml.contains(&secret),
            "a credential was copied into the model"
        );
        assert!(
            !report.contains(&secret),
            "a credential is shown by the comparison"
        );
    }
}

/// Each compared file with how many of its lines differ for each reason (the report has
/// every line; this keeps the snapshot readable). A differing line without a reason fails.
fn reasons_per_file(report: &str) -> String {
    let mut out = String::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let flush = |out: &mut String, counts: &mut std::collections::BTreeMap<String, usize>| {
        for (reason, n) in std::mem::take(counts) {
            out.push_str(&format!("    {n:>3} {reason}\n"));
        }
    };
    let mut lines = report.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(diff_line) = line.strip_prefix("    ") {
            if diff_line.starts_with("    ") {
                continue;
            }
            let reason = lines.next().map(str::trim).unwrap_or("");
            assert!(
                !reason.is_empty(),
                "a differing line without a reason: {diff_line}"
            );
            *counts.entry(reason.to_owned()).or_default() += 1;
        } else {
            flush(&mut out, &mut counts);
            out.push_str(line);
            out.push('\n');
        }
    }
    flush(&mut out, &mut counts);
    out
}

/// The literal passwords the hand-written corpus holds (userlist, SQL, confs).
fn corpus_secrets(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (path, bytes) in read_tree(dir).unwrap() {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for line in text.lines() {
            let line = line.trim();
            let value = if path.ends_with("userlist.txt") {
                line.split('"').nth(3)
            } else if let Some(rest) = line.strip_prefix("requirepass ") {
                Some(rest.trim_matches('"'))
            } else {
                line.split("PASSWORD '")
                    .nth(1)
                    .and_then(|r| r.split('\'').next())
            };
            if let Some(value) = value.filter(|v| v.len() >= 6) {
                found.push(value.to_owned());
            }
        }
    }
    found
}

#[test]
fn the_command_prints_the_model_and_never_overwrites_a_file() {
    let corpus = root().join("tests/fixtures/audit/clean");
    let corpus = corpus.to_str().unwrap();
    let (code, text, stderr) = tgstack(&["import", corpus], &root());
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains("[services."), "{text}");
    assert!(stderr.contains("guessed values"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("stack.toml");
    std::fs::write(&existing, "mine\n").unwrap();
    let (code, _, stderr) = tgstack(
        &["import", corpus, "--out", existing.to_str().unwrap()],
        &root(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("exists"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "mine\n");

    let written = dir.path().join("new.toml");
    let args = [
        "import",
        corpus,
        "--out",
        written.to_str().unwrap(),
        "--compare",
    ];
    let (code, _, stderr) = tgstack(&args, &root());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), text);
    assert!(stderr.contains("compare: "), "{stderr}");

    let nothing = dir.path().join("nothing");
    let (code, _, stderr) = tgstack(&["import", nothing.to_str().unwrap()], &root());
    assert_eq!(code, 1);
    assert!(stderr.contains("not a directory"), "{stderr}");
}

#[test]
fn a_stack_full_of_defects_or_nothing_at_all_imports_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = dir.path().join("seeded");
    crate::audit::seeded(&seeded);
    let imported = import(&seeded).unwrap();
    assert!(imported.toml.contains("[services."), "{}", imported.toml);
    for secret in corpus_secrets(&seeded) {
        assert!(
            !imported.toml.contains(&secret),
            "a credential was copied into the model"
        );
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let imported = import(&empty).unwrap();
    assert!(
        imported.toml.contains("name = \"empty\""),
        "{}",
        imported.toml
    );
    assert_eq!(
        import(&empty).unwrap().toml,
        imported.toml,
        "same input, same bytes"
    );
}

#[test]
fn credentials_in_urls_settings_and_unit_environments_are_never_copied() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("pg")).unwrap();
    std::fs::write(
        root.join("compose.yml"),
        "services:\n  db:\n    image: postgres:16.4\n    environment:\n      POSTGRES_PASSWORD: ${PG_PASSWORD}\n    volumes:\n      - ./pg/postgresql.conf:/etc/postgresql/postgresql.conf:ro\n  worker:\n    image: example/worker:1.0\n    environment:\n      DATABASE_URL: postgres://app:hunter2secret@db:5432/app\n      CACHE_URL: redis://:cachepw99@cache:6379\n      RUST_LOG: ${RUST_LOG:-info}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("pg/postgresql.conf"),
        "max_connections = 50\nprimary_conninfo = 'host=p user=r password=replpw77'\nwal_buffers = -1\n",
    )
    .unwrap();
    std::fs::write(
        root.join("pusher.service"),
        "[Service]\nExecStart=/usr/bin/pusher\nEnvironment=\"TOKEN_URL=https://u:tokpw555@example.org/\" MODE=fast\n",
    )
    .unwrap();
    let imported = import(root).unwrap();
    for secret in ["hunter2secret", "cachepw99", "replpw77", "tokpw555"] {
        assert!(
            !imported.toml.contains(secret),
            "{secret} copied:\n{}",
            imported.toml
        );
    }
    let model: toml::Table = imported.toml.parse().expect("the import is TOML");
    let worker = &model["services"]["worker"]["app"];
    assert_eq!(
        worker["env"]["RUST_LOG"].as_str(),
        Some("info"),
        "{worker:?}"
    );
    assert!(
        worker["links"]["DATABASE_URL"]["secret"].is_str(),
        "{worker:?}"
    );
    assert!(
        worker["links"]["CACHE_URL"]["secret"].is_str(),
        "{worker:?}"
    );
    let pusher = &model["services"]["pusher"]["app"];
    assert_eq!(pusher["env"]["MODE"].as_str(), Some("fast"), "{pusher:?}");
    assert!(
        pusher["links"]["TOKEN_URL"]["secret"].is_str(),
        "{pusher:?}"
    );
    let postgres = &model["services"]["db"]["postgres"];
    assert_eq!(postgres["max_connections"].as_integer(), Some(50));
    assert!(
        postgres.get("wal_buffers").is_none(),
        "-1 is the server's choice, not 0 bytes"
    );
    assert!(
        imported
            .toml
            .contains("`primary_conninfo = host=p user=r password="),
        "the setting is listed, its password masked:\n{}",
        imported.toml
    );
}
