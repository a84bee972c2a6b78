//! Compose rules of an audit: pinned images, dependencies and the healthchecks they wait
//! for, host ports published twice, bind mounts of files that are not there.

use std::collections::BTreeMap;

use super::Audit;
use crate::check::dialect::compose_key_line;
use crate::finding::Severity;

/// A finding about one compose service, reported once the services are no longer borrowed.
struct Note {
    file: String,
    rule: &'static str,
    severity: Severity,
    line: usize,
    message: String,
    hint: String,
}

pub fn run(audit: &mut Audit<'_>) {
    let mut published: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut notes = Vec::new();
    for service in audit.deployment.services.values() {
        let file = audit
            .files
            .iter()
            .find(|f| f.rel == service.file)
            .expect("compose file audited");
        let line = |keys: &[&str]| {
            let mut path = vec!["services", service.name.as_str()];
            path.extend_from_slice(keys);
            compose_key_line(&file.text, &path)
        };
        let mut note = |rule, severity, line, message: String, hint: &str| {
            let (file, hint) = (service.file.clone(), hint.to_string());
            notes.push(Note {
                file,
                rule,
                severity,
                line,
                message,
                hint,
            });
        };
        let name = &service.name;
        if let Some(image) = &service.image {
            let last = image.rsplit('/').next().unwrap_or(image);
            // An image the file builds, or names through a variable, is pinned elsewhere.
            let elsewhere = image.contains('$') || service.builds;
            let unpinned = !last.contains(':') || last.ends_with(":latest");
            if !image.contains('@') && !elsewhere && unpinned {
                let message = format!(
                    "`{name}` runs `{image}`, which is not pinned to a version: a pull changes \
                     what runs"
                );
                let hint = "pin the image to a version tag (or a digest)";
                note("TG608", Severity::Warning, line(&["image"]), message, hint);
            }
        }
        for (dependency, condition) in &service.depends_on {
            let healthy = condition.as_deref() == Some("service_healthy");
            match audit.deployment.services.get(dependency) {
                None => {
                    let message = format!(
                        "`{name}` depends on `{dependency}`, which no compose file declares"
                    );
                    let at = dependency_line(&file.text, line(&["depends_on"]), dependency);
                    note(
                        "TG603",
                        Severity::Error,
                        at,
                        message,
                        "name an existing service",
                    );
                }
                Some(target) if healthy && !target.healthcheck => {
                    let message = format!(
                        "`{name}` waits for `{dependency}` to be healthy, but `{dependency}` has no \
                         healthcheck: it never becomes healthy"
                    );
                    let at = line(&["depends_on", dependency]);
                    note(
                        "TG603",
                        Severity::Error,
                        at,
                        message,
                        &format!("give `{dependency}` a healthcheck"),
                    );
                }
                _ => {}
            }
        }
        for port in service.ports.iter().filter(|p| !p.published.is_empty()) {
            let address = if port.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &port.host_ip
            };
            let key = format!("{}/{}", port.published, port.protocol);
            let users = published.entry(key).or_default();
            users.push((name.clone(), address.to_string()));
        }
        for (m, host) in &service.mounts {
            let Some(host) = host else { continue };
            // `~` and variables depend on who deploys; only paths of the directory are known.
            let portable = !m.source.contains('$') && !m.source.starts_with('~');
            if m.kind == "bind" && portable && !audit.dir.join(host).exists() {
                let message = format!(
                    "`{name}` bind-mounts {}, which does not exist: the engine creates an empty \
                     directory in its place",
                    m.source
                );
                let at = compose_source_line(&file.text, &m.source);
                note(
                    "TG601",
                    Severity::Error,
                    at,
                    message,
                    "fix the path or add the file",
                );
            }
        }
    }
    for n in notes {
        audit.report(n.rule, n.severity, &n.file, n.line, n.message, n.hint);
    }
    duplicate_ports(audit, published);
}

/// TG203: one host port published by two services on overlapping addresses.
fn duplicate_ports(audit: &mut Audit<'_>, published: BTreeMap<String, Vec<(String, String)>>) {
    for (key, users) in published {
        let port = key.split('/').next().unwrap_or(&key).to_string();
        let clash = users.iter().enumerate().find_map(|(i, (a, ip_a))| {
            users[i + 1..].iter().find_map(|(b, ip_b)| {
                let overlap = ip_a == ip_b || ip_a == "0.0.0.0" || ip_b == "0.0.0.0";
                (overlap && a != b).then(|| (a.clone(), b.clone()))
            })
        });
        let Some((first, second)) = clash else {
            continue;
        };
        // Reported where the later of the two publishes it: that container is the one that
        // fails to start.
        let declared = |name: &str| {
            let service = &audit.deployment.services[name];
            let text = audit
                .files
                .iter()
                .find(|f| f.rel == service.file)
                .map(|f| f.text.as_str());
            (
                service.file.clone(),
                compose_key_line(text.unwrap_or(""), &["services", name]),
            )
        };
        let (first, second) = if declared(&first) > declared(&second) {
            (second, first)
        } else {
            (first, second)
        };
        let service = &audit.deployment.services[&second];
        let file = audit
            .files
            .iter()
            .find(|f| f.rel == service.file)
            .expect("compose file audited");
        let line = port_line(&file.text, &second, &port);
        let rel = service.file.clone();
        audit.error(
            "TG203",
            &rel,
            line,
            format!(
                "host port {port} is published by `{first}` and again by `{second}`: the \
                second container cannot start",
            ),
            "give each service its own host port",
        );
    }
}

/// The line naming `dependency` below the `depends_on:` at `from` (list or map form).
fn dependency_line(text: &str, from: usize, dependency: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(from)
        .take(20)
        .find(|(_, l)| {
            let item = l
                .trim_start()
                .trim_start_matches("- ")
                .trim_matches(['"', '\'']);
            item == dependency || item.starts_with(&format!("{dependency}:"))
        })
        .map_or(from, |(i, _)| i + 1)
}

/// The line of a bind source in the compose text.
fn compose_source_line(text: &str, source: &str) -> usize {
    text.lines()
        .position(|l| l.contains(source))
        .map_or(1, |i| i + 1)
}

/// The line publishing `port` inside `service`'s block.
fn port_line(text: &str, service: &str, port: &str) -> usize {
    let start = compose_key_line(text, &["services", service]);
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| {
            l.contains(&format!("{port}:"))
                || l.contains(&format!("published: {port}"))
                || l.contains(&format!("published: \"{port}\""))
        })
        .map_or(start, |(i, _)| i + 1)
}
