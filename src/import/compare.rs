//! The imported model's render set against the original files: every file that differs,
//! and for each differing line why (tgstack's layout, a model default, a value the model
//! spells its own way, a credential kept out of the files, or what was not imported).

use std::collections::BTreeSet;

use similar::{ChangeTag, TextDiff};

use std::path::Path;

use super::Imported;
use crate::check::audit::deployment::Deployment;
use crate::check::audit::discover::classify;
use crate::check::audit::{Audited, FileKind};
use crate::finding::{is_credential_name, mask_credentials};
use crate::tree::Tree;

/// Why one line differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Comments, blank lines, quoting and spacing: tgstack writes its own layout.
    Layout,
    /// A setting the original does not have: a model default or a line tgstack writes for
    /// every service of the kind.
    Default,
    /// The same setting with the model's value (its units, or a value that was guessed).
    Value,
    /// A credential: the rendered files reference a secret, never a value (TG104).
    Secret,
    /// A setting the model cannot say (listed at the end of the imported model).
    NotRepresented,
    /// A line of the original the rendered file does not have.
    Dropped,
}

impl Reason {
    fn text(self) -> &'static str {
        match self {
            Reason::Layout => "layout: tgstack writes its own comments, quoting and order",
            Reason::Default => "a model default: tgstack writes this setting for the kind",
            Reason::Value => {
                "the model's value, in tgstack's units (see `# guessed:` in the model)"
            }
            Reason::Secret => {
                "a credential: rendered files name the secret, never its value (TG104)"
            }
            Reason::NotRepresented => "not represented in the model (listed at its end)",
            Reason::Dropped => "not in the rendered file: the model has no such setting",
        }
    }
}

/// The comparison, as text. Files are paired by what reads them (the same service and
/// kind of file), since a hand-written layout names its files its own way; the rest by
/// path.
pub fn compare(original: &Tree, rendered: &Tree, imported: &Imported) -> String {
    let pairs = pair(original, rendered);
    let mut same = 0;
    let mut body = String::new();
    let paired_rendered: BTreeSet<&str> = pairs.iter().map(|(_, r)| r.as_str()).collect();
    for (from, to) in &pairs {
        let (a, b) = (&original[from], &rendered[to]);
        if a == b {
            same += 1;
            continue;
        }
        let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
        let title = if from == to {
            from.clone()
        } else {
            format!("{from} -> {to}")
        };
        body.push_str(&format!("~ {title}\n"));
        for (line, reason) in explain(from, &a, &b, &imported.unrepresented) {
            body.push_str(&format!("    {line}\n        {}\n", reason.text()));
        }
    }
    for path in original
        .keys()
        .filter(|p| !pairs.iter().any(|(o, _)| o == *p))
    {
        body.push_str(&format!(
            "- {path}: only in the original: no rendered file is read by the same service \
             (what the model knows of it was imported)\n"
        ));
    }
    for path in rendered
        .keys()
        .filter(|p| !paired_rendered.contains(p.as_str()))
    {
        body.push_str(&format!(
            "+ {path}: only rendered: tgstack writes it for every stack of this shape\n"
        ));
    }
    format!(
        "compare: {} files paired ({same} identical), {} only in the original, {} only rendered\n{body}",
        pairs.len(),
        original.len() - pairs.len(),
        rendered.len() - paired_rendered.len()
    )
}

/// (original, rendered) paths: the same path, else the file of the same kind read by the
/// same service (a compose file with a compose file, a unit with the unit of its service).
fn pair(original: &Tree, rendered: &Tree) -> Vec<(String, String)> {
    let readers = |tree: &Tree| -> Vec<(String, Option<(FileKind, String)>)> {
        let files: Vec<Audited> = tree
            .iter()
            .filter_map(|(rel, bytes)| {
                classify(rel.clone(), String::from_utf8_lossy(bytes).into_owned())
            })
            .collect();
        let deployment = Deployment::new(Path::new("/nonexistent/tree"), &files);

        files
            .iter()
            .map(|f| {
                let reader = match f.kind {
                    FileKind::Compose => Some("compose".to_owned()),
                    FileKind::Unit => f.rel.rsplit('/').next().map(String::from),
                    _ => deployment
                        .services_reading(&f.rel)
                        .first()
                        .map(|s| s.name.clone()),
                };
                (f.rel.clone(), reader.map(|r| (f.kind, r)))
            })
            .collect()
    };
    let ours = readers(original);
    let theirs = readers(rendered);
    let mut pairs = Vec::new();
    for path in original.keys() {
        if rendered.contains_key(path) {
            pairs.push((path.clone(), path.clone()));
            continue;
        }
        let key = ours
            .iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, k)| k.clone());
        let Some(key) = key else {
            continue;
        };
        let matching: Vec<&String> = theirs
            .iter()
            .filter(|(_, k)| k.as_ref() == Some(&key))
            .map(|(p, _)| p)
            .collect();
        if let [only] = matching.as_slice() {
            pairs.push((path.clone(), (*only).clone()));
        }
    }
    pairs
}

/// Each differing line (`- ` original, `+ ` rendered, credentials masked) with its reason.
pub fn explain(
    path: &str,
    original: &str,
    rendered: &str,
    unrepresented: &[String],
) -> Vec<(String, Reason)> {
    let diff = TextDiff::from_lines(original, rendered);
    let removed: Vec<&str> = diff
        .iter_all_changes()
        .filter(|c| c.tag() == ChangeTag::Delete)
        .map(|c| c.value().trim_end_matches('\n'))
        .collect();
    let added: Vec<&str> = diff
        .iter_all_changes()
        .filter(|c| c.tag() == ChangeTag::Insert)
        .map(|c| c.value().trim_end_matches('\n'))
        .collect();
    let original_keys: BTreeSet<String> = original.lines().filter_map(key_of).collect();
    let rendered_keys: BTreeSet<String> = rendered.lines().filter_map(key_of).collect();
    let normalized_added: BTreeSet<String> = added.iter().map(|l| normalize(l)).collect();
    let normalized_removed: BTreeSet<String> = removed.iter().map(|l| normalize(l)).collect();
    let mut out = Vec::new();
    for line in removed {
        let reason = if layout_only(line) || normalized_added.contains(&normalize(line)) {
            Reason::Layout
        } else if holds_credential(line) {
            Reason::Secret
        } else {
            match key_of(line) {
                Some(key) if listed(unrepresented, path, &key) => Reason::NotRepresented,
                Some(key) if rendered_keys.contains(&key) => Reason::Value,
                _ => Reason::Dropped,
            }
        };
        out.push((format!("- {}", shown(line)), reason));
    }
    for line in added {
        let reason = if layout_only(line) || normalized_removed.contains(&normalize(line)) {
            Reason::Layout
        } else {
            match key_of(line) {
                Some(key) if original_keys.contains(&key) && holds_credential_key(&key) => {
                    Reason::Secret
                }
                Some(key) if original_keys.contains(&key) => Reason::Value,
                _ => Reason::Default,
            }
        };
        out.push((format!("+ {}", shown(line)), reason));
    }
    out
}

/// A line as printed: a credential setting's value never, other secrets masked.
fn shown(line: &str) -> String {
    match key_of(line) {
        Some(key) if holds_credential_key(&key) => {
            let indent = &line[..line.len() - line.trim_start().len()];
            format!("{indent}{key} …")
        }
        _ => mask_credentials(line),
    }
}

/// A blank or comment line.
fn layout_only(line: &str) -> bool {
    let line = line.trim();
    line.is_empty()
        || line.starts_with(['#', ';'])
        || line.starts_with("--")
        || line.starts_with("%%")
}

/// The line without spacing, quotes and case: what remains when only layout differs.
fn normalize(line: &str) -> String {
    line.chars()
        .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The setting a line sets: `key = v`, `key: v`, `key v` (the first word), `KEY=v`.
fn key_of(line: &str) -> Option<String> {
    let line = line.trim().trim_start_matches("- ");
    if layout_only(line) {
        return None;
    }
    let end = line
        .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
        .unwrap_or(line.len());
    let key = line[..end].trim();
    (!key.is_empty()).then(|| key.to_owned())
}

fn holds_credential(line: &str) -> bool {
    key_of(line).is_some_and(|k| holds_credential_key(&k)) || mask_credentials(line) != line
}

fn holds_credential_key(key: &str) -> bool {
    is_credential_name(key) || key.eq_ignore_ascii_case("requirepass")
}

/// Whether the "not represented" list names `key` of the file at `path`.
fn listed(unrepresented: &[String], path: &str, key: &str) -> bool {
    let prefix = format!("{path}: `{key}");
    unrepresented.iter().any(|u| u.starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_differing_line_has_a_reason() {
        let original = "# mine\nmaxmemory 1gb\nrequirepass hunter2\nlatency-tracking no\n";
        let rendered = "# generated\nmaxmemory 768mb\nappendonly yes\n";
        let unrepresented =
            vec!["redis.conf: `latency-tracking` (the model has no such setting)".into()];
        let lines = explain("redis.conf", original, rendered, &unrepresented);
        let reasons: Vec<(&str, Reason)> = lines.iter().map(|(l, r)| (l.as_str(), *r)).collect();
        assert!(reasons.contains(&("- # mine", Reason::Layout)));
        assert!(reasons.contains(&("- maxmemory 1gb", Reason::Value)));
        assert!(reasons.contains(&("- latency-tracking no", Reason::NotRepresented)));
        assert!(reasons.contains(&("+ appendonly yes", Reason::Default)));
        let secret = lines
            .iter()
            .find(|(l, _)| l.starts_with("- requirepass"))
            .unwrap();
        assert_eq!(secret.1, Reason::Secret);
        assert!(
            !lines.iter().any(|(l, _)| l.contains("hunter2")),
            "{lines:?}"
        );
    }
}
