//! systemd units of the native services (the MTProto gateway first of all): a dedicated
//! user, secrets only through `EnvironmentFile`, the session file in a private
//! `StateDirectory` (0700, UMask 0077; incident 30), hardening, and the model's budget as
//! `MemoryMax` / `CPUQuota`. Plus a sysusers.d file that creates the users.

use minijinja::{Value, context};

use super::Output;
use crate::model::native::{
    DEFAULT_STOP_TIMEOUT, SYSTEMD_STATE_ROOT, binary, session_file, state_directory, subcommand,
    user,
};
use crate::model::units::ByteSize;
use crate::model::{Deploy, Kind, Model, Service, Stack, app, native, paths};

/// systemd size with binary units (`300M`, `2G`).
pub fn systemd_size(bytes: u64) -> String {
    ByteSize(bytes).with_units(&[
        ("T", 1 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ])
}

/// Words systemd reads literally: no spaces, quotes, specifiers (`%`) or `$`.
fn plain_word(what: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{value}` cannot be written to a systemd unit: use letters, digits and / . _ - + @ :"
        ))
    }
}

/// What every unit takes from the model's budget: `MemoryMax`, `CPUQuota`, and how long
/// systemd waits for a graceful stop.
struct Budget {
    memory_max: String,
    cpu_quota: String,
    stop_timeout_sec: u64,
}

impl Budget {
    fn of(service: &Service) -> Budget {
        let stop_timeout = service
            .native
            .as_ref()
            .and_then(|n| n.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        let cpu_percent = (service.cpus * 100.0).round().max(1.0) as u64;
        Budget {
            memory_max: systemd_size(service.memory.0),
            cpu_quota: format!("{cpu_percent}%"),
            stop_timeout_sec: stop_timeout.millis().div_ceil(1000).max(1),
        }
    }
}

/// One word of `ExecStart=`, quoted the way systemd reads it back literally: `%` and `$`
/// doubled (no specifiers, no variable expansion), quotes and backslashes escaped inside
/// double quotes.
fn systemd_quoted(word: &str) -> String {
    quoted(&word.replace('$', "$$"))
}

/// One `Environment=` assignment: systemd expands specifiers there but not `$`, so only
/// `%` is doubled.
fn systemd_assignment(assignment: &str) -> String {
    quoted(assignment)
}

fn quoted(word: &str) -> String {
    let escaped = word.replace('%', "%%");
    if plain_word("", word).is_ok() {
        return escaped;
    }
    format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The unit of an app: its binary and arguments, its environment with the links resolved
/// from the host, secrets only through the EnvironmentFile.
fn app_context(stack: &Stack, name: &str, service: &Service) -> Result<Value, String> {
    let settings = service.app.clone().unwrap_or_default();
    let binary = service
        .native
        .as_ref()
        .and_then(|n| n.binary.clone())
        .ok_or_else(|| format!("services.{name}: a native app needs `native.binary`"))?;
    let user = user(name, service);
    for (what, value) in [("user", user.as_str()), ("binary", binary.as_str())] {
        plain_word(what, value).map_err(|e| format!("services.{name}: {e}"))?;
    }
    let mut exec_start = vec![binary.clone()];
    exec_start.extend(settings.command.iter().map(|a| systemd_quoted(a)));
    let mut environment = Vec::new();
    let mut secrets = false;
    for (var, value) in app::environment(stack, service) {
        match value {
            app::LinkValue::Text(text) => {
                environment.push(systemd_assignment(&format!("{var}={text}")))
            }
            app::LinkValue::Secret(_) => secrets = true,
        }
    }
    // Native services it needs start first (containers come up with docker.service).
    let after: String = app::dependencies(service)
        .into_iter()
        .filter(|d| stack.service(d).is_some_and(|s| s.deploy == Deploy::Native))
        .map(|d| format!(" {d}.service"))
        .collect();
    let budget = Budget::of(service);
    Ok(context! {
        app => true,
        name,
        kind => service.kind.as_str(),
        port => service.port,
        user,
        binary,
        exec_start => exec_start.join(" "),
        environment,
        after,
        env_file => secrets.then(|| native::env_file(stack, name)),
        session_file => Option::<String>::None,
        state_directory => name,
        memory_max => budget.memory_max,
        cpu_quota => budget.cpu_quota,
        stop_timeout_sec => budget.stop_timeout_sec,
    })
}

fn unit_context(stack: &Stack, name: &str, service: &Service) -> Result<Value, String> {
    if service.kind == Kind::App {
        return app_context(stack, name, service);
    }
    let sub = subcommand(service.kind).ok_or_else(|| {
        format!(
            "services.{name}: tgstack writes systemd units for gateway and api services only, not `{}`",
            service.kind.as_str()
        )
    })?;
    let user = user(name, service);
    let binary = binary(service);
    if !binary.starts_with('/') {
        return Err(format!(
            "services.{name}.native.binary `{binary}` must be an absolute path"
        ));
    }
    let state_directory =
        state_directory(stack, name).map_err(|e| format!("services.{name}: {e}"))?;
    let env_file = native::env_file(stack, name);
    let model_path = native::model_path(stack);
    for (what, value) in [
        ("user", user.as_str()),
        ("binary", binary.as_str()),
        ("state directory", state_directory.as_str()),
        ("secrets_dir", env_file.as_str()),
        ("config_dir", model_path.as_str()),
    ] {
        plain_word(what, value).map_err(|e| format!("services.{name}: {e}"))?;
    }
    let budget = Budget::of(service);
    Ok(context! {
        app => false,
        after => "",
        name,
        kind => service.kind.as_str(),
        port => service.port,
        user,
        binary,
        subcommand => sub,
        model_path,
        env_file,
        state_directory,
        session_file => session_file(stack, name),
        memory_max => budget.memory_max,
        cpu_quota => budget.cpu_quota,
        stop_timeout_sec => budget.stop_timeout_sec,
    })
}

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let mut out = Vec::new();
    let mut users = Vec::new();
    for (name, service) in &stack.services {
        // Native data services run under the distribution's own units with the rendered
        // configs; tgstack writes units for the processes it ships (gateway, api).
        let ours = subcommand(service.kind).is_some() || service.kind == Kind::App;
        if service.deploy != Deploy::Native || !ours {
            continue;
        }
        let ctx = unit_context(stack, name, service)
            .unwrap_or_else(|problem| context! { refused => problem });
        out.push(Output::new(paths::unit(name), "systemd/service.j2", ctx));
        if let Ok(dir) = state_directory(stack, name) {
            users.push(context! {
                name => user(name, service),
                service => name,
                home => format!("{SYSTEMD_STATE_ROOT}/{dir}"),
            });
        }
    }
    if !users.is_empty() {
        out.push(Output::new(
            paths::SYSUSERS,
            "systemd/sysusers.conf.j2",
            context! { users },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(systemd_size(300 << 20), "300M");
        assert_eq!(systemd_size(2 << 30), "2G");
        assert_eq!(systemd_size(1000), "1000");
    }

    #[test]
    fn quoted_words_read_back_literally() {
        assert_eq!(systemd_quoted("--queue"), "--queue");
        assert_eq!(systemd_quoted("a b"), "\"a b\"");
        assert_eq!(systemd_quoted("50%"), "\"50%%\"");
        assert_eq!(systemd_quoted("say \"$HOME\""), "\"say \\\"$$HOME\\\"\"");
        assert_eq!(systemd_assignment("PRICE=$5 (50%)"), "\"PRICE=$5 (50%%)\"");
    }

    #[test]
    fn plain_words_refuse_specifiers_and_spaces() {
        assert!(plain_word("x", "/usr/local/bin/tg-gateway").is_ok());
        assert!(plain_word("x", "/opt/my gateway").is_err());
        assert!(plain_word("x", "/opt/%n").is_err());
        assert!(plain_word("x", "").is_err());
    }
}
