//! TG701: the native layer. A service runs either as a container or as a systemd unit,
//! never both; a unit can be written for it, with time to stop cleanly; its session file
//! is private to exactly one gateway (incident 30) and lies in the unit's StateDirectory,
//! or in a container, in the directory the image owns (where its volume is mounted).

use std::collections::BTreeMap;

use super::Ctx;
use crate::finding::Severity;
use crate::model::native;
use crate::model::{Deploy, Kind, paths};

pub const RULE: &str = "TG701";

pub fn run(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports: Vec<(String, String, String)> = Vec::new();
    // Keys of the other deploy mode do nothing: a warning, since an environment overlay
    // that switches the mode would otherwise have to unset them.
    let mut inert: Vec<(String, String, String)> = Vec::new();
    let mut sessions: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, service) in &stack.services {
        // A container gateway's session is on its own volume: only files on the host
        // can be shared.
        if service.kind == Kind::Gateway
            && service.deploy == Deploy::Native
            && let Some(path) = native::session_file(stack, name)
        {
            sessions.entry(path).or_default().push(name);
        }
        match service.deploy {
            Deploy::Container => {
                if service.listen.is_some() {
                    inert.push((
                        format!("services.{name}.listen"),
                        format!(
                            "container service `{name}` has `listen`, which does nothing: a container listens on all its interfaces and is reached by name or published port"
                        ),
                        "remove `listen`, or set `deploy = \"native\"`".to_string(),
                    ));
                }
                if service.kind == Kind::Gateway
                    && let Some(session) = native::session_file(stack, name)
                    && !native::in_image_state_dir(&session)
                {
                    reports.push((
                        format!("services.{name}.gateway.session_file"),
                        format!(
                            "container gateway `{name}` keeps its session in {session}: its volume is mounted there, and the tg-gateway image (uid 10001) owns only {}",
                            paths::GATEWAY_IMAGE_STATE_DIR
                        ),
                        format!(
                            "leave `session_file` unset, or put the file directly in {}/",
                            paths::GATEWAY_IMAGE_STATE_DIR
                        ),
                    ));
                }
                if service.native.is_some() {
                    reports.push((
                        format!("services.{name}.native"),
                        format!(
                            "container service `{name}` has a `native` table: it would be configured for two places"
                        ),
                        format!(
                            "remove `[services.{name}.native]`, or set `deploy = \"native\"`"
                        ),
                    ));
                }
            }
            Deploy::Native => {
                // Keys only a container has: they would silently do nothing.
                let container_keys = [
                    ("image", service.image.is_some()),
                    ("networks", !service.networks.is_empty()),
                ];
                for (key, present) in container_keys {
                    if present {
                        inert.push((
                            format!("services.{name}.{key}"),
                            format!(
                                "native service `{name}` has `{key}`, which only a container uses: it does nothing"
                            ),
                            format!("remove `{key}`, or set `deploy = \"container\"`"),
                        ));
                    }
                }
                // Other native kinds (PostgreSQL, PgBouncer, Redis, ...) run under the
                // distribution's own units with the rendered configs; TG005 rejects the
                // kinds that only run as containers.
                if native::subcommand(service.kind).is_none() {
                    continue;
                }
                let binary = native::binary(service);
                if !binary.starts_with('/') {
                    reports.push((
                        format!("services.{name}.native.binary"),
                        format!(
                            "`{binary}` is not an absolute path; systemd needs one in ExecStart"
                        ),
                        format!("write the full path, e.g. `{}`", native::DEFAULT_BINARY),
                    ));
                }
                let user = native::user(name, service);
                if user == "root" || user.is_empty() || user.len() > 31 {
                    reports.push((
                        format!("services.{name}.native.user"),
                        format!(
                            "native service `{name}` must run as its own system user, not `{user}`"
                        ),
                        "leave `user` unset (the service name) or name a dedicated user"
                            .to_string(),
                    ));
                }
                let stop_timeout = service.native.as_ref().and_then(|n| n.stop_timeout);
                if let Some(stop_timeout) = stop_timeout
                    && stop_timeout < native::MIN_GATEWAY_STOP_TIMEOUT
                {
                    reports.push((
                        format!("services.{name}.native.stop_timeout"),
                        format!(
                            "stop_timeout {stop_timeout} is shorter than the {} `{name}` needs to stop after SIGTERM: systemd would kill it mid-drain",
                            native::MIN_GATEWAY_STOP_TIMEOUT
                        ),
                        format!(
                            "set `stop_timeout` to at least `{}`, or leave it unset (`{}`)",
                            native::MIN_GATEWAY_STOP_TIMEOUT,
                            native::DEFAULT_STOP_TIMEOUT
                        ),
                    ));
                }
                if service.kind == Kind::Gateway
                    && let Err(problem) = native::state_directory(stack, name)
                {
                    reports.push((
                        format!("services.{name}.gateway.session_file"),
                        problem,
                        format!(
                            "leave `session_file` unset, or put it in a directory below {}/",
                            native::SYSTEMD_STATE_ROOT
                        ),
                    ));
                }
            }
        }
    }
    // Two processes on one session file log each other out and corrupt it.
    for (path, owners) in sessions {
        if owners.len() > 1 {
            for owner in &owners[1..] {
                reports.push((
                    format!("services.{owner}.gateway"),
                    format!(
                        "gateways {} share the session file `{path}`: only one process may use a Telegram session",
                        owners.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(" and ")
                    ),
                    "run the gateway in exactly one place (native or container), or give each its own `session_file` and login".to_string(),
                ));
            }
        }
    }
    for (path, message, help) in reports {
        cx.report_key(RULE, Severity::Error, &path, message, help);
    }
    for (path, message, help) in inert {
        cx.report_key(RULE, Severity::Warning, &path, message, help);
    }
}
