//! Writing a rendered tree atomically, and comparing it with what is on disk.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use super::Tree;

/// Writes `tree` to `out` as a whole: first into a temporary sibling directory, then
/// swapped in. On any error `out` is left exactly as it was.
pub fn write_tree(tree: &Tree, out: &Path) -> io::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "generated".into());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(&parent)?;
    for (path, bytes) in tree {
        let target = staging.path().join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&target, bytes)?;
        if path.ends_with(".sh") {
            set_mode(&target, 0o755)?;
        }
    }
    let staged = staging.keep();
    if out.exists() {
        let backup = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(&parent)?
            .keep();
        // rename() needs the destination free: move the old tree aside, then the new in.
        std::fs::remove_dir(&backup)?;
        std::fs::rename(out, &backup)?;
        if let Err(error) = std::fs::rename(&staged, out) {
            let _ = std::fs::rename(&backup, out);
            let _ = std::fs::remove_dir_all(&staged);
            return Err(error);
        }
        std::fs::remove_dir_all(&backup)?;
    } else {
        std::fs::rename(&staged, out)?;
    }
    Ok(())
}

#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
pub fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

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
