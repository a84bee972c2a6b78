//! A rendered tree on disk that differs from what the model renders: someone edited
//! `generated/` by hand, or forgot to re-render.

use std::path::Path;

use crate::finding::{Finding, Severity};
use crate::tree::{self, Drift, Tree};

/// Compares what the model renders with the tree found in `dir`.
pub fn check(expected: &Tree, actual: &Tree, dir: &Path) -> Vec<Finding> {
    if actual.is_empty() {
        return vec![
            Finding::new(
                "TG013",
                Severity::Error,
                format!("{} is missing or empty", dir.display()),
            )
            .with_help("run `tgstack render` and commit generated/"),
        ];
    }
    let shown = dir.display().to_string();
    let mut findings = Vec::new();
    for drift in tree::compare(expected, actual) {
        let (path, message, line) = match &drift {
            Drift::Missing(p) => (p, format!("{shown}/{p} is missing"), None),
            Drift::Extra(p) => (
                p,
                format!("{shown}/{p} is not rendered from the model"),
                None,
            ),
            Drift::Changed(p) => {
                let line = first_difference(&expected[p], &actual[p]);
                (
                    p,
                    format!(
                        "{shown}/{p} differs from what the model renders (edited by hand, or stale)"
                    ),
                    Some(line),
                )
            }
        };
        findings.push(
            Finding::new("TG013", Severity::Error, message)
                .with_artifact(path.clone(), line)
                .with_help("change stack.toml instead, then run `tgstack render`; `tgstack render --check` shows the diff"),
        );
    }
    findings
}

fn first_difference(expected: &[u8], actual: &[u8]) -> usize {
    let expected = String::from_utf8_lossy(expected);
    let actual = String::from_utf8_lossy(actual);
    let mut a = expected.lines();
    let mut b = actual.lines();
    let mut line = 1;
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            (None, None) => return line,
            _ => return line,
        }
    }
}
