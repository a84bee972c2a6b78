//! Facts of the native layer (services run by systemd on the host): the program a unit
//! starts, its user, its state directory and the gateway's session file. The renderer of
//! the units, the rules and the gateway itself read them here.

use super::units::Duration;
use super::{Deploy, Kind, Service, Stack, paths};

/// The program a native gateway or api unit starts when the model names none.
pub const DEFAULT_BINARY: &str = "/usr/local/bin/tg-gateway";
/// systemd puts every `StateDirectory=` below this directory.
pub const SYSTEMD_STATE_ROOT: &str = "/var/lib";
/// How long systemd waits for a graceful stop when the model says nothing.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration(30_000);
/// What `tg-gateway` needs after SIGTERM to stop cleanly (its graces add up to less; the
/// gateway checks that at compile time). A shorter `stop_timeout` is a SIGKILL mid-drain.
pub const MIN_GATEWAY_STOP_TIMEOUT: Duration = Duration(5_000);

/// The kinds tgstack can write a unit for, with the `tg-gateway` subcommand they run.
pub fn subcommand(kind: Kind) -> Option<&'static str> {
    kind.spec().gateway_subcommand
}

/// The session file of a gateway service: the model's `session_file`, or by default
/// `<deploy.state_dir>/<service>/telegram.session` for a native gateway and
/// `/var/lib/tg-gateway/telegram.session` in a container (the directory the image owns,
/// where its session volume is mounted).
pub fn session_file(stack: &Stack, service: &str) -> Option<String> {
    let found = stack.service(service)?;
    let gateway = found.gateway.as_ref()?;
    Some(gateway.session_file.clone().unwrap_or_else(|| {
        if found.deploy == Deploy::Container {
            format!("{}/telegram.session", paths::GATEWAY_IMAGE_STATE_DIR)
        } else {
            format!(
                "{}/{service}/telegram.session",
                stack.deploy.state_dir.trim_end_matches('/')
            )
        }
    }))
}

/// The system user a native service runs as.
pub fn user(service_name: &str, service: &Service) -> String {
    service
        .native
        .as_ref()
        .and_then(|n| n.user.clone())
        .unwrap_or_else(|| service_name.to_string())
}

/// The `EnvironmentFile` of a native service's unit, in `deploy.secrets_dir`.
pub fn env_file(stack: &Stack, service: &str) -> String {
    format!(
        "{}/{}",
        stack.deploy.secrets_dir.trim_end_matches('/'),
        super::secret_files::native_env_name(service)
    )
}

/// Where a native service reads the model (`TGSTACK_MODEL` of its unit).
pub fn model_path(stack: &Stack) -> String {
    format!(
        "{}/model/stack.toml",
        stack.deploy.config_dir.trim_end_matches('/')
    )
}

/// Whether a container gateway's session file lies directly in the directory its image
/// owns: its volume is mounted at the file's directory, and any other directory (a
/// subdirectory too, which the image does not have) would be created for root.
pub fn in_image_state_dir(session: &str) -> bool {
    session
        .strip_prefix(&format!("{}/", paths::GATEWAY_IMAGE_STATE_DIR))
        .is_some_and(|file| !file.is_empty() && !file.contains('/') && file != "..")
}

/// The program a native service's unit starts.
pub fn binary(service: &Service) -> String {
    service
        .native
        .as_ref()
        .and_then(|n| n.binary.clone())
        .unwrap_or_else(|| DEFAULT_BINARY.to_string())
}

/// The directory below /var/lib the unit owns: where the session file lives for a
/// gateway, `<service>` otherwise. Err when the session file lies outside /var/lib.
pub fn state_directory(stack: &Stack, name: &str) -> Result<String, String> {
    let Some(session) = session_file(stack, name) else {
        return Ok(name.to_string());
    };
    let dir = session
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default();
    match dir.strip_prefix(&format!("{SYSTEMD_STATE_ROOT}/")) {
        Some(relative)
            if !relative.is_empty() && !relative.split('/').any(|p| p == ".." || p.is_empty()) =>
        {
            Ok(relative.to_string())
        }
        _ => Err(format!(
            "the session file `{session}` must lie in a directory below {SYSTEMD_STATE_ROOT}/ so the unit's StateDirectory (mode 0700) owns it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::in_image_state_dir;

    #[test]
    fn a_container_session_lies_directly_in_the_image_state_dir() {
        assert!(in_image_state_dir("/var/lib/tg-gateway/telegram.session"));
        for outside in [
            "/var/lib/tg-gateway/x/telegram.session",
            "/var/lib/tg-gateway/",
            "/var/lib/tg-gateway/..",
            "/var/lib/tg-gateway-2/telegram.session",
            "/srv/telegram.session",
        ] {
            assert!(!in_image_state_dir(outside), "{outside}");
        }
    }
}
