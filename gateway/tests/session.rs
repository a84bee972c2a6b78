//! The Telegram session file: the real grammers SQLite session is created 0600 in a 0700
//! directory, and a second process on the same session (`login` or `run`) refuses to start
//! while another holds it. Nothing here talks to Telegram: the client connects only on
//! its first request, and the refusals happen before any.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::BINARY;
use tg_gateway::config::Secret;
use tg_gateway::session::{self, SessionLock};
use tg_gateway::telegram::{Connection, TelegramSettings};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn settings(session_file: PathBuf) -> TelegramSettings {
    TelegramSettings {
        api_id: 1234567,
        api_hash: Secret::new("not-a-real-hash"),
        session_file,
        update_buffer: 100,
        reconcile_interval: Duration::from_secs(300),
        channels: Vec::new(),
    }
}

#[tokio::test]
async fn grammers_session_is_created_private_in_a_private_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state").join("tg-gateway");
    // A directory left too open (e.g. created by hand) is tightened.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("telegram.session");
    let settings = settings(file.clone());

    let lock = SessionLock::acquire(&file).unwrap();
    let connection = Connection::open(&settings, &lock).await.unwrap();
    assert_eq!(mode(&dir), 0o700, "session directory");
    assert_eq!(mode(&file), 0o600, "session file");
    connection.close().await.unwrap();

    let header = std::fs::read(&file).unwrap();
    assert!(
        header.starts_with(b"SQLite format 3\0"),
        "grammers wrote its SQLite session"
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    drop(lock);
}

#[test]
fn an_existing_loose_session_file_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("s").join("telegram.session");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    session::prepare_directory(&file).unwrap();
    session::secure_file(&file).unwrap();
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
}

/// `tg-gateway --model stack.toml,<overlay> ARGS` with the session at `session_file`.
fn gateway(tmp: &Path, session_file: &Path, args: &[&str]) -> (bool, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let overlay = tmp.join("overlay.toml");
    std::fs::write(
        &overlay,
        format!(
            "[services.tg-gateway.gateway]\nsession_file = \"{}\"\n",
            session_file.display()
        ),
    )
    .unwrap();
    let model = format!(
        "{},{}",
        root.join("stack.toml").display(),
        overlay.display()
    );
    let output = Command::new(BINARY)
        .arg("--model")
        .arg(&model)
        .args(args)
        .env("TG_TELEGRAM_API_HASH", "not-a-real-hash")
        .env("TG_GATEWAY_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run tg-gateway");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn a_second_process_on_the_session_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("state").join("telegram.session");
    let held = SessionLock::acquire(&file).unwrap();
    for command in ["login", "run"] {
        let (ok, out) = gateway(tmp.path(), &file, &[command]);
        assert!(
            !ok,
            "`{command}` started while the session was held:\n{out}"
        );
        assert!(
            out.contains("is in use by another process")
                && out.contains(&format!("pid {}", std::process::id())),
            "`{command}` output:\n{out}"
        );
        assert!(!out.contains("not-a-real-hash"), "secret echoed:\n{out}");
    }
    // The session file itself was never opened by the refused processes.
    assert!(!file.exists(), "a refused process created the session file");
    drop(held);
    // Released: the lock can be taken again (a crashed holder releases it the same way).
    SessionLock::acquire(&file).unwrap();
}
