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
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&old_name, &new_name)
                .to_string(),
        );
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
