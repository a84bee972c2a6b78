//! A tree of files (relative path -> bytes), as rendered or as found on disk, and how two
//! trees differ. Shared by render (which writes one) and check (which reads one).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

/// A rendered tree: relative path -> bytes. Sorted, so output order is deterministic.
pub type Tree = BTreeMap<String, Vec<u8>>;

/// Reads every file below `dir` (relative paths), skipping nothing.
pub fn read_tree(dir: &Path) -> io::Result<Tree> {
    let mut tree = Tree::new();
    if !dir.exists() {
        return Ok(tree);
    }
    fn walk(root: &Path, dir: &Path, tree: &mut Tree) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, tree)?;
            } else if let Ok(rel) = path.strip_prefix(root) {
                tree.insert(
                    rel.to_string_lossy().replace('\\', "/"),
                    std::fs::read(&path)?,
                );
            }
        }
        Ok(())
    }
    walk(dir, dir, &mut tree)?;
    Ok(tree)
}

/// One difference between the rendered tree and the tree on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    Missing(String),
    Extra(String),
    Changed(String),
}

/// Compares the expected (rendered) tree with the actual one.
pub fn compare(expected: &Tree, actual: &Tree) -> Vec<Drift> {
    let paths: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| match (expected.get(path), actual.get(path)) {
            (Some(_), None) => Some(Drift::Missing(path.clone())),
            (None, Some(_)) => Some(Drift::Extra(path.clone())),
            (Some(a), Some(b)) if a != b => Some(Drift::Changed(path.clone())),
            _ => None,
        })
        .collect()
}

/// A unified diff per drifted file, from what is on disk to what the model renders.
pub fn unified_diff(dir: &str, expected: &Tree, actual: &Tree, drift: &[Drift]) -> String {
    let mut out = String::new();
    for item in drift {
        let (path, old, new) = match item {
            Drift::Missing(p) => (p, None, expected.get(p)),
            Drift::Extra(p) => (p, actual.get(p), None),
            Drift::Changed(p) => (p, actual.get(p), expected.get(p)),
        };
        let old_text = old
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let new_text = new
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let old_name = if old.is_some() {
            format!("a/{dir}/{path}")
        } else {
            "/dev/null".into()
        };
        let new_name = if new.is_some() {
            format!("b/{dir}/{path}")
        } else {
            "/dev/null".into()
        };
        let diff = similar::TextDiff::from_lines(&old_text, &new_text);
        let text = diff
            .unified_diff()
            .context_radius(3)
            .header(&old_name, &new_name)
            .to_string();
        // A hand edit may have put a secret on disk: a diff never shows one.
        for line in text.split_inclusive('\n') {
            out.push_str(&redact_diff_line(line));
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Words that make a setting's value a secret, in any config dialect.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api_hash",
    "requirepass",
    "masterauth",
    "auth-pass",
    "credential",
];

/// A diff line with the value of a secret-looking setting, and the password of a URL,
/// replaced by `<redacted>`.
fn redact_diff_line(line: &str) -> std::borrow::Cow<'_, str> {
    let is_content = matches!(line.as_bytes().first(), Some(b'+' | b'-' | b' '))
        && !line.starts_with("+++")
        && !line.starts_with("---");
    if !is_content {
        return line.into();
    }
    let lower = line.to_ascii_lowercase();
    let mut out = line.to_string();
    // `key = value`, `key: value`, `directive value`: mask after the secret word's separator.
    if let Some(at) = SECRET_WORDS
        .iter()
        .filter_map(|w| lower.find(w).map(|i| i + w.len()))
        .min()
    {
        let rest = &line[at..];
        let value_start = rest
            .find(['=', ':', ' '])
            .map(|i| at + i + 1)
            .filter(|&i| !line[i..].trim().is_empty());
        if let Some(start) = value_start {
            let newline = if line.ends_with('\n') { "\n" } else { "" };
            out = format!("{} <redacted>{newline}", line[..start].trim_end());
        }
    }
    // scheme://user:password@host
    if let Some(password) = crate::finding::url_password(&out) {
        out.replace_range(password, "<redacted>");
    }
    out.into()
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_diff_line;

    #[test]
    fn secret_values_and_url_passwords_are_masked_in_diff_lines() {
        assert_eq!(
            redact_diff_line("+      DATA_SOURCE_PASS: \"${X:-hunter2}\"\n"),
            "+      DATA_SOURCE_PASS: <redacted>\n"
        );
        assert_eq!(
            redact_diff_line("-requirepass s3cret\n"),
            "-requirepass <redacted>\n"
        );
        assert_eq!(
            redact_diff_line("+url = postgres://app:hunter2@db:5432/x\n"),
            "+url = postgres://app:<redacted>@db:5432/x\n"
        );
        assert_eq!(
            redact_diff_line("+pool_mode = transaction\n"),
            "+pool_mode = transaction\n"
        );
        assert_eq!(
            redact_diff_line("--- a/generated/x\n"),
            "--- a/generated/x\n"
        );
    }
}
