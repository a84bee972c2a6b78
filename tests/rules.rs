//! The rule corpus: every fixture (a broken overlay of the reference model, or a hand edit
//! of its rendered tree) reports the rules it names, at the places pinned by its snapshot;
//! the reference model passes clean; every rule of the catalog has a fixture.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tgstack::Against;
use tgstack::check::Files;
use tgstack::finding::Finding;
use tgstack::model;

fn expected_rules(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect:"))
        .flat_map(|rest| rest.split(',').map(|r| r.trim().to_string()))
        .collect()
}

/// One line per finding: what a reviewer needs to see in the snapshot.
fn describe(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            let location = f
                .location
                .as_ref()
                .map(|l| {
                    format!(
                        "{}:{}:{}",
                        Path::new(&l.file).file_name().unwrap().to_string_lossy(),
                        l.line,
                        l.column
                    )
                })
                .unwrap_or_else(|| "-".into());
            let artifact = f
                .artifact
                .as_ref()
                .map(|a| {
                    format!(
                        " | {}{}",
                        a.file,
                        a.line.map(|l| format!(":{l}")).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            format!(
                "{} {} {} [{}]{}\n    {}",
                f.rule,
                f.severity.as_str(),
                location,
                f.path,
                artifact,
                f.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn base() -> (PathBuf, String) {
    let path = crate::support::root().join("stack.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// Model fixture: the overlay merged over the reference model (and over the overlay its
/// `# over: FILE` line names, e.g. the swarm example), then validate as the CLI does.
fn validate_overlay(name: &str, overlay: &str) -> Vec<Finding> {
    let (path, text) = base();
    let mut texts = vec![(path, text)];
    for over in overlay.lines().filter_map(|l| l.strip_prefix("# over:")) {
        let over = crate::support::root().join(over.trim());
        let text = std::fs::read_to_string(&over).unwrap();
        texts.push((over, text));
    }
    texts.push((PathBuf::from(name), overlay.to_string()));
    let model = match model::load_texts(texts) {
        Ok(model) => model,
        Err(findings) => return findings,
    };
    tgstack::validate(&model, None, Against::Rendered).findings
}

#[test]
fn model_fixtures_report_their_rules() {
    insta::glob!("fixtures/invalid/*.toml", |path| {
        let overlay = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let findings = validate_overlay(&name, &overlay);
        let reported: BTreeSet<String> = findings.iter().map(|f| f.rule.clone()).collect();
        for rule in expected_rules(&overlay) {
            assert!(
                reported.contains(&rule),
                "{name}: expected {rule}, got:\n{}",
                describe(&findings)
            );
        }
        insta::assert_snapshot!(describe(&findings));
    });
}

#[derive(serde::Deserialize)]
struct EditFixture {
    /// An overlay file of the repository applied before `overlay`, e.g. the swarm example.
    #[serde(default)]
    over: Option<String>,
    #[serde(default)]
    overlay: String,
    edit: Vec<Edit>,
}

#[derive(serde::Deserialize)]
struct Edit {
    file: String,
    find: String,
    replace: String,
}

#[test]
fn edit_fixtures_report_their_rules_at_the_rendered_line() {
    insta::glob!("fixtures/edits/*.toml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let fixture: EditFixture = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (base_path, base_text) = base();
        let mut texts = vec![(base_path, base_text)];
        if let Some(over) = &fixture.over {
            let over = crate::support::root().join(over);
            texts.push((over.clone(), std::fs::read_to_string(&over).unwrap()));
        }
        texts.push((PathBuf::from("overlay.toml"), fixture.overlay.clone()));
        let model = model::load_texts(texts).expect("fixture overlay loads");
        let mut on_disk = tgstack::render(&model, None).expect("renders").tree;
        for edit in &fixture.edit {
            let bytes = on_disk
                .get_mut(&edit.file)
                .unwrap_or_else(|| panic!("{name}: no rendered file {}", edit.file));
            let current = String::from_utf8(bytes.clone()).unwrap();
            assert!(
                current.contains(&edit.find),
                "{name}: `{}` not found in {}",
                edit.find,
                edit.file
            );
            *bytes = current.replacen(&edit.find, &edit.replace, 1).into_bytes();
        }
        let files = Files::new(&on_disk);
        let against = Against::Disk {
            dir: Path::new("generated"),
            files: &files,
        };
        let findings = tgstack::validate(&model, None, against).findings;
        let reported: BTreeSet<String> = findings.iter().map(|f| f.rule.clone()).collect();
        for rule in expected_rules(&text) {
            assert!(
                reported.contains(&rule),
                "{name}: expected {rule}, got:\n{}",
                describe(&findings)
            );
        }
        // The edited file is named with a line for every finding about it.
        for finding in findings.iter().filter(|f| f.rule != "TG013") {
            assert!(
                finding.artifact.is_some() || finding.location.is_some(),
                "{name}: finding without any location: {}",
                finding.message
            );
        }
        insta::assert_snapshot!(describe(&findings));
    });
}

#[test]
fn reference_model_and_its_rendered_tree_are_clean() {
    let (path, text) = base();
    let model = model::load_texts(vec![(path, text)]).expect("reference loads");
    let tree = tgstack::render(&model, None).expect("renders").tree;
    let files = Files::new(&tree);
    let against = Against::Disk {
        dir: Path::new("generated"),
        files: &files,
    };
    let findings = tgstack::validate(&model, None, against).findings;
    assert!(
        findings.is_empty(),
        "the reference stack must pass clean:\n{}",
        describe(&findings)
    );
}

#[test]
fn swarm_example_is_clean() {
    let findings = validate_overlay("clean.toml", "# over: examples/swarm.toml\n");
    assert!(
        findings.is_empty(),
        "the reference stack on three nodes must pass clean:\n{}",
        describe(&findings)
    );
}

#[test]
fn every_rule_has_a_fixture_that_triggers_it() {
    let mut covered = BTreeSet::new();
    for dir in ["tests/fixtures/invalid", "tests/fixtures/edits"] {
        for entry in std::fs::read_dir(crate::support::root().join(dir)).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            covered.extend(expected_rules(&text));
        }
    }
    // Rules about I/O and the deploy-time environment are proven by tests/cli.rs instead.
    let elsewhere = ["TG000", "TG010", "TG011"];
    let missing: Vec<&str> = tgstack::check::catalog::RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| !covered.contains(*id) && !elsewhere.contains(id))
        .collect();
    assert!(missing.is_empty(), "rules without a fixture: {missing:?}");
}

#[test]
fn secrets_never_appear_in_findings() {
    let overlay = "[services.timescaledb.postgres.roles.tg_app]\npassword = \"hunter2-literal\"\n[services.grafana]\nadmin_password = \"other-literal\"\napi_token = \"third-literal\"\n";
    let findings = validate_overlay("secret.toml", overlay);
    let everything = format!(
        "{}\n{}\n{}",
        tgstack::report::human(&findings),
        tgstack::report::json(&findings),
        tgstack::report::sarif(
            &findings,
            &tgstack::report::SarifBase::find(&crate::support::root(), Path::new("generated"))
        )
    );
    assert!(
        findings.iter().filter(|f| f.rule == "TG104").count() >= 3,
        "{everything}"
    );
    for literal in ["hunter2-literal", "other-literal", "third-literal"] {
        assert!(
            !everything.contains(literal),
            "{literal} leaked:\n{everything}"
        );
    }
}
