//! Rules over `app` services: links that name one thing and resolve, dependencies that
//! exist, the native binary, variable names, no credential as a literal, no database
//! reached around its pooler (incident 20), and no literal address that only works from
//! somewhere else (incident 7: a published port used from inside the network).

use super::Ctx;
use crate::finding::Severity;
use crate::model::app::{self, LinkError};
use crate::model::{Deploy, Kind, Service, Stack, Unreachable};
use crate::suggest::did_you_mean;

type Report = (&'static str, Severity, String, String, String);

pub fn run(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports: Vec<Report> = Vec::new();
    for (name, service) in &stack.services {
        let Some(settings) = &service.app else {
            continue;
        };
        let base = format!("services.{name}.app");
        binary(name, service, &mut reports);
        for (index, dependency) in settings.depends_on.iter().enumerate() {
            if stack.service(dependency).is_none() {
                let names: Vec<&str> = stack.services.keys().map(String::as_str).collect();
                reports.push((
                    "TG003",
                    Severity::Error,
                    format!("{base}.depends_on.{index}"),
                    format!("unknown service `{dependency}`"),
                    did_you_mean(dependency, names),
                ));
            }
        }
        for (var, link) in &settings.links {
            link_rules(
                stack,
                service,
                &format!("{base}.links.{var}"),
                link,
                &mut reports,
            );
            if settings.env.contains_key(var) {
                reports.push((
                    "TG005",
                    Severity::Error,
                    format!("{base}.env.{var}"),
                    format!("`{var}` is both in env and in links"),
                    "keep one of them".into(),
                ));
            }
        }
        for (var, value) in &settings.env {
            env_rules(
                stack,
                service,
                &format!("{base}.env.{var}"),
                var,
                value,
                &mut reports,
            );
        }
        let names = settings.env.keys().map(|v| ("env", v));
        for (table, var) in names.chain(settings.links.keys().map(|v| ("links", v))) {
            if !is_env_var(var) {
                reports.push((
                    "TG006",
                    Severity::Error,
                    format!("{base}.{table}.{var}"),
                    format!("`{var}` is not an environment variable name"),
                    "use letters, digits and `_`, not starting with a digit".into(),
                ));
            }
        }
    }
    for (rule, severity, path, message, help) in reports {
        cx.report_key(rule, severity, &path, message, help);
    }
}

/// A POSIX variable name (lower case too: `http_proxy` is read only that way).
fn is_env_var(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A native app runs `native.binary`, which has no default for an app.
fn binary(name: &str, service: &Service, reports: &mut Vec<Report>) {
    let has_binary = service.native.as_ref().is_some_and(|n| n.binary.is_some());
    if service.deploy == Deploy::Native && !has_binary {
        reports.push((
            "TG005",
            Severity::Error,
            format!("services.{name}.native.binary"),
            format!("native app `{name}` names no program to run"),
            "set native.binary to the absolute path of its executable".into(),
        ));
    }
}

fn link_rules(
    stack: &Stack,
    service: &Service,
    path: &str,
    link: &app::Link,
    reports: &mut Vec<Report>,
) {
    let targets = link.targets();
    if targets.len() != 1 {
        reports.push((
            "TG005",
            Severity::Error,
            path.to_string(),
            format!(
                "a link sets {} of secret, host, port, address, url",
                targets.len()
            ),
            "set exactly one".into(),
        ));
        return;
    }
    if link.user.is_some() && link.url.is_none() {
        reports.push((
            "TG005",
            Severity::Error,
            format!("{path}.user"),
            "`user` belongs to a `url` link".into(),
            "drop it, or make the link a url".into(),
        ));
    }
    let Some(target) = link.service() else { return };
    // Unknown services and unreachable ones are reported with every other reference.
    if let Err(LinkError::UnknownUser) = app::resolve(stack, service, link) {
        let user = link.user.as_deref().unwrap_or("");
        let reason = match stack.service(target).map(|s| s.kind) {
            Some(Kind::Redis) => format!("a Redis URL carries no user, but `{user}` is given"),
            Some(Kind::Postgres | Kind::Pgbouncer) => {
                format!("`{user}` is no role of the database behind `{target}`")
            }
            Some(Kind::Rabbitmq) => format!("`{user}` is no user of broker `{target}`"),
            _ => format!("a URL of `{target}` carries no user"),
        };
        reports.push((
            "TG003",
            Severity::Error,
            format!("{path}.user"),
            reason,
            "name a role or user the model declares".into(),
        ));
    }
    if let Some(pooler) = pooler_in_front(stack, target) {
        let message = format!(
            "the app connects to PostgreSQL `{target}` directly, around its pooler `{pooler}`: \
             its connections count against max_connections beside the pools"
        );
        let hint = format!("link `{pooler}` instead");
        reports.push(("TG406", Severity::Error, path.to_string(), message, hint));
    }
}

/// The pgbouncer whose upstream is postgres service `target`, if any.
fn pooler_in_front<'a>(stack: &'a Stack, target: &str) -> Option<&'a str> {
    let service = stack.service(target)?;
    if service.kind != Kind::Postgres {
        return None;
    }
    stack
        .services
        .iter()
        .find(|(_, s)| s.pgbouncer.as_ref().is_some_and(|b| b.upstream == target))
        .map(|(name, _)| name.as_str())
}

/// A literal value: no credential, and no address of another service written by hand
/// (a published port from inside the network, a loopback address from a container).
fn env_rules(
    stack: &Stack,
    service: &Service,
    path: &str,
    var: &str,
    value: &str,
    reports: &mut Vec<Report>,
) {
    let named_secret = crate::finding::is_credential_name(var);
    if (named_secret && !value.is_empty()) || crate::finding::url_password(value).is_some() {
        reports.push((
            "TG104",
            Severity::Error,
            path.to_string(),
            format!("`{var}` holds a literal credential"),
            format!("declare a secret and link it: {var} = {{ secret = \"...\" }}"),
        ));
    }
    if let Some(problem) = hand_written_address(stack, service, value) {
        reports.push((
            "TG202",
            Severity::Error,
            path.to_string(),
            problem,
            format!(
                "link the service instead: {var} = {{ address = \"...\" }} (or host, port, url)"
            ),
        ));
    }
}

/// Why `value` names an address that does not answer from where the app runs.
fn hand_written_address(stack: &Stack, service: &Service, value: &str) -> Option<String> {
    for (host, port) in addresses(value) {
        let loopback = matches!(host, "localhost" | "127.0.0.1");
        if service.deploy == Deploy::Container && loopback {
            return Some(
                "a loopback address inside a container is the container itself, not the host \
                 or another service"
                    .into(),
            );
        }
        let Some(other) = stack.service(host) else {
            continue;
        };
        if service.deploy == Deploy::Native && other.deploy == Deploy::Container {
            let why = match stack.reach(service, host) {
                Err(Unreachable::NotPublished) => "and it publishes no port",
                _ => "reach it through its published port",
            };
            return Some(format!(
                "a native process cannot resolve container name `{host}` ({why})"
            ));
        }
        let published = other
            .publish
            .is_some_and(|p| p.to_string() == port && p != other.port);
        if service.deploy == Deploy::Container && published {
            return Some(format!(
                "`{host}:{port}` is `{host}`'s published port; inside the network `{host}` \
                 listens on {}",
                other.port
            ));
        }
    }
    None
}

/// The `host:port` pairs written in a value: a host is a whole token (after the start,
/// `//`, `@`, `,`, `=` or a space), so `redis://` or `mydb:54330` are no `redis`/`db:5433`.
fn addresses(value: &str) -> Vec<(&str, &str)> {
    static ADDRESS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?:^|[/@,=\s])([A-Za-z0-9][A-Za-z0-9._-]*):([0-9]{1,5})\b").unwrap()
    });
    ADDRESS
        .captures_iter(value)
        .filter_map(|c| Some((c.get(1)?.as_str(), c.get(2)?.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_whole_tokens() {
        assert_eq!(
            addresses("redis://127.0.0.1:6379/0"),
            vec![("127.0.0.1", "6379")]
        );
        assert_eq!(
            addresses("mydb:54330,db:5433"),
            vec![("mydb", "54330"), ("db", "5433")]
        );
        assert_eq!(
            addresses("postgres://u@pgbouncer:6432/x"),
            vec![("pgbouncer", "6432")]
        );
        assert!(addresses("redis://cache").is_empty());
    }
}
