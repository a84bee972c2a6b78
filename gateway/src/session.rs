//! The Telegram session file: private on disk (file 0600, directory 0700) and held by one
//! process at a time. Two processes on one session corrupt each other's MTProto state and
//! get the login revoked, so `run` and `login` both take [`SessionLock`] first.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// Mode of the session file and of every file SQLite creates beside it.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directory holding the session.
pub const DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "session {session} is in use by another process{holder}; stop it before starting this one"
    )]
    Locked { session: PathBuf, holder: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SessionError {
    let path = path.to_path_buf();
    move |source| SessionError::Io {
        action,
        path,
        source,
    }
}

/// The lock file beside a session file: `<session>.lock`.
pub fn lock_path(session: &Path) -> PathBuf {
    let mut name = session
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "telegram.session".into());
    name.push(".lock");
    session.with_file_name(name)
}

/// Creates the session directory (0700) and tightens it if it already exists.
pub fn prepare_directory(session: &Path) -> Result<(), SessionError> {
    let Some(dir) = session.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(io_error("cannot create session directory", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
        .map_err(io_error("cannot set mode 0700 on session directory", dir))
}

/// Makes sure the session file exists with mode 0600 before SQLite opens it (so it is
/// never readable by others, not even for a moment), and tightens SQLite's side files.
pub fn secure_file(session: &Path) -> Result<(), SessionError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(session)
        .map_err(io_error("cannot create session file", session))?;
    for path in std::iter::once(session.to_path_buf()).chain(side_files(session)) {
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(FILE_MODE))
                .map_err(io_error("cannot set mode 0600 on", &path))?;
        }
    }
    Ok(())
}

/// Journal files SQLite may keep beside the database; they hold the same secrets.
fn side_files(session: &Path) -> Vec<PathBuf> {
    ["-journal", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = session.as_os_str().to_os_string();
            name.push(suffix);
            PathBuf::from(name)
        })
        .collect()
}

/// An exclusive advisory lock (`flock`) on `<session>.lock`, held until dropped. The kernel
/// releases it when the process dies, so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub struct SessionLock {
    file: File,
    path: PathBuf,
}

impl SessionLock {
    /// Prepares the directory and takes the lock, or fails at once if another process
    /// (or another open handle) holds it.
    pub fn acquire(session: &Path) -> Result<Self, SessionError> {
        prepare_directory(session)?;
        let path = lock_path(session);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io_error("cannot open session lock", &path))?;
        if let Err(error) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if error == rustix::io::Errno::WOULDBLOCK {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!(" (pid {pid})"),
                    Err(_) => String::new(),
                };
                return Err(SessionError::Locked {
                    session: session.to_path_buf(),
                    holder,
                });
            }
            return Err(SessionError::Io {
                action: "cannot lock",
                path,
                source: error.into(),
            });
        }
        // The pid is only a hint for the error message of the next process.
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        };
        write_pid(&mut file).map_err(io_error("cannot write session lock", &path))?;
        Ok(SessionLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        // Closing the file releases the lock; unlocking first makes that explicit.
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_path_is_beside_the_session() {
        assert_eq!(
            lock_path(Path::new("/var/lib/tg-gateway/telegram.session")),
            PathBuf::from("/var/lib/tg-gateway/telegram.session.lock")
        );
    }

    #[test]
    fn second_holder_in_the_same_process_is_refused_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("state").join("telegram.session");
        let first = SessionLock::acquire(&session).unwrap();
        let error = SessionLock::acquire(&session).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("in use by another process"), "{message}");
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        SessionLock::acquire(&session).unwrap();
    }

    #[test]
    fn secure_file_tightens_an_existing_loose_file() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("telegram.session");
        std::fs::write(&session, b"").unwrap();
        std::fs::set_permissions(&session, std::fs::Permissions::from_mode(0o644)).unwrap();
        let wal = dir.path().join("telegram.session-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        secure_file(&session).unwrap();
        for path in [&session, &wal] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
}
