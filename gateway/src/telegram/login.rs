//! `tg-gateway login`: interactive sign-in (phone, code, 2FA password) into the session
//! file at the model's path. Takes the session lock first, so it refuses to run while
//! `tg-gateway run` (or another login) uses the same session.

use std::io::{BufRead as _, Write as _};

use anyhow::{Result, anyhow, bail};
use grammers_client::SignInError;
use rustix::termios::{LocalModes, OptionalActions, isatty, tcgetattr, tcsetattr};

use super::{Connection, TelegramSettings};
use crate::session::SessionLock;

/// Wrong codes or passwords accepted before giving up (Telegram limits attempts too).
const ATTEMPTS: usize = 3;

/// Reads one line from the terminal; with `hidden`, the terminal does not echo it.
fn prompt(message: &str, hidden: bool) -> Result<String> {
    let mut stderr = std::io::stderr();
    write!(stderr, "{message}")?;
    stderr.flush()?;
    let stdin = std::io::stdin();
    let restore = if hidden && isatty(&stdin) {
        let saved = tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = restore {
        tcsetattr(&stdin, OptionalActions::Now, &saved)?;
        writeln!(stderr)?;
    }
    if read? == 0 {
        bail!("no input (standard input closed)");
    }
    Ok(line.trim().to_string())
}

async fn ask(message: &'static str, hidden: bool) -> Result<String> {
    tokio::task::spawn_blocking(move || prompt(message, hidden)).await?
}

/// Signs in interactively unless the session already is.
pub async fn login(settings: &TelegramSettings) -> Result<()> {
    let lock = SessionLock::acquire(&settings.session_file)?;
    let connection = Connection::open(settings, &lock).await?;
    let outcome = sign_in(&connection, settings).await;
    connection.close().await?;
    outcome?;
    eprintln!(
        "signed in; session stored at {} (mode 0600)",
        settings.session_file.display()
    );
    Ok(())
}

async fn sign_in(connection: &Connection, settings: &TelegramSettings) -> Result<()> {
    let client = &connection.client;
    if client.is_authorized().await? {
        eprintln!("already signed in");
        return Ok(());
    }
    let phone = ask(
        "phone number (international format, e.g. +4915112345678): ",
        false,
    )
    .await?;
    let token = client
        .request_login_code(&phone, settings.api_hash.expose())
        .await?;
    let mut password_token = None;
    for attempt in 1..=ATTEMPTS {
        let code = ask("login code sent by Telegram: ", false).await?;
        match client.sign_in(&token, &code).await {
            Ok(_) => return Ok(()),
            Err(SignInError::PasswordRequired(token)) => {
                password_token = Some(token);
                break;
            }
            Err(SignInError::InvalidCode) if attempt < ATTEMPTS => {
                eprintln!("invalid code, try again");
            }
            Err(error) => bail!("sign-in failed: {error}"),
        }
    }
    let mut token = password_token.ok_or_else(|| anyhow!("sign-in failed: invalid code"))?;
    for attempt in 1..=ATTEMPTS {
        if let Some(hint) = token.hint() {
            eprintln!("2FA password hint: {hint}");
        }
        let password = ask("2FA password: ", true).await?;
        match client.check_password(token, password.as_bytes()).await {
            Ok(_) => return Ok(()),
            Err(SignInError::InvalidPassword(again)) if attempt < ATTEMPTS => {
                eprintln!("wrong password, try again");
                token = again;
            }
            Err(error) => bail!("sign-in failed: {error}"),
        }
    }
    bail!("sign-in failed: wrong password")
}
