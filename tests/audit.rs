//! `tgstack audit`: a hand-written stack with no model. The clean corpus
//! (tests/fixtures/audit/clean) gives no finding; the same stack with every seeded defect of
//! tests/fixtures/audit/defects.toml gives each defect's rule at its file and line, and the
//! whole report is pinned by snapshot. The reference tree audits clean too.

use std::path::Path;

use serde::Deserialize;
use tgstack::check::audit::audit;

use crate::support::{root, tgstack};

#[derive(Deserialize)]
struct Defects {
    defect: Vec<Defect>,
}

#[derive(Deserialize)]
pub struct Defect {
    rule: String,
    file: String,
    find: String,
    replace: String,
    why: String,
}

fn corpus() -> std::path::PathBuf {
    root().join("tests/fixtures/audit")
}

fn defects() -> Vec<Defect> {
    let text = std::fs::read_to_string(corpus().join("defects.toml")).unwrap();
    toml::from_str::<Defects>(&text)
        .expect("defects.toml")
        .defect
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the clean stack with every defect applied in order; each defect with the
/// line its replacement starts on.
pub fn seeded(dir: &Path) -> Vec<(Defect, usize)> {
    copy_dir(&corpus().join("clean"), dir);
    let mut placed = Vec::new();
    for defect in defects() {
        let path = dir.join(&defect.file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", defect.file));
        let hits = text.matches(&defect.find).count();
        assert_eq!(
            hits, 1,
            "{}: `{}` occurs {hits} times",
            defect.file, defect.find
        );
        let at = text.find(&defect.find).unwrap();
        let line = text[..at].matches('\n').count() + 1;
        std::fs::write(&path, text.replacen(&defect.find, &defect.replace, 1)).unwrap();
        placed.push((defect, line));
    }
    placed
}

fn report(findings: &[tgstack::finding::Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            let at = f
                .location
                .as_ref()
                .map(|l| format!("{}:{}", l.file, l.line))
                .unwrap_or_default();
            format!(
                "{} {} {at}\n    {}\n",
                f.rule,
                f.severity.as_str(),
                f.message
            )
        })
        .collect()
}

#[test]
fn the_clean_hand_written_stack_gives_no_finding() {
    let findings = audit(&corpus().join("clean")).unwrap();
    assert!(
        findings.is_empty(),
        "false findings:\n{}",
        report(&findings)
    );
}

#[test]
fn the_reference_tree_audits_clean() {
    let findings = audit(&root().join("generated")).unwrap();
    assert!(
        findings.is_empty(),
        "false findings:\n{}",
        report(&findings)
    );
}

#[test]
fn every_seeded_defect_is_reported_at_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let placed = seeded(dir.path());
    assert!(placed.len() >= 40, "only {} seeded defects", placed.len());
    // Paths as the user sees them when auditing the current directory.
    let findings = audit(dir.path()).unwrap();
    let mut missed = Vec::new();
    for (defect, line) in &placed {
        let hit = findings.iter().any(|f| {
            f.rule == defect.rule
                && f.location.as_ref().is_some_and(|l| {
                    l.line == *line && l.file.ends_with(&format!("/{}", defect.file))
                })
        });
        if !hit {
            missed.push(format!(
                "{} {}:{line} ({})",
                defect.rule, defect.file, defect.why
            ));
        }
    }
    let shown = report(&findings).replace(&format!("{}/", dir.path().display()), "");
    assert!(
        missed.is_empty(),
        "not reported:\n{}\n\nreport:\n{shown}",
        missed.join("\n")
    );
    insta::assert_snapshot!("seeded_defects", shown);
}

#[test]
fn the_cli_reports_in_every_format_with_exit_codes_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let (code, human, err) = tgstack(&["audit", "."], dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        human.contains("--> config/") || human.contains("--> "),
        "{human}"
    );
    for (format, check) in [
        ("json", "\"rule\": \"TG022\""),
        ("sarif", "\"ruleId\": \"TG104\""),
    ] {
        let (code, out, err) = tgstack(&["audit", ".", "--format", format], dir.path());
        assert_eq!(code, 1, "{err}");
        assert!(out.contains(check), "{format}: {out}");
        let _: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    }
    // Every TG104 defect of defects.toml writes the credential `s3cret`.
    let secret = "s3cret";
    for format in ["human", "json", "sarif", "github"] {
        let (_, out, err) = tgstack(&["audit", ".", "--format", format], dir.path());
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "the {format} report printed a secret"
        );
    }
    let clean = corpus().join("clean");
    let (code, _, err) = tgstack(&["audit", clean.to_str().unwrap()], &root());
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tgstack(&["audit", "no-such-dir"], dir.path());
    assert_eq!(code, 2);
    assert!(
        format!("{out}{err}").contains("cannot read no-such-dir"),
        "{out}{err}"
    );
}
