//! Writing a rendered tree atomically.

use std::io;
use std::path::{Path, PathBuf};

use crate::tree::Tree;

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
