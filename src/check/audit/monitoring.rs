//! Monitoring rules of an audit: Prometheus rule files that resolve through the mounts,
//! scrape targets that are services on ports they listen on, alert metrics that a deployed
//! exporter exports, Grafana datasources that reach Prometheus, and native units that
//! reach containers only through published ports.

use std::collections::BTreeSet;

use promql_parser::util::walk_expr;
use serde_json::Value;

use super::deployment::ComposeService;
use super::{Audit, Audited, FileKind};
use crate::catalog::{self, Metric};
use crate::check::artifacts::monitoring::{Selectors, dns_targets};
use crate::finding::mask_credentials;

/// Ports an image listens on without being told (its documented default).
const IMAGE_PORTS: &[(&str, &[&str])] = &[
    ("postgres-exporter", &["9187"]),
    ("redis-exporter", &["9121"]),
    ("pgbouncer-exporter", &["9127"]),
    ("node-exporter", &["9100"]),
    ("cadvisor", &["8080"]),
    ("rabbitmq", &["5672", "15672", "15692"]),
    ("prometheus", &["9090"]),
    ("grafana", &["3000"]),
    ("timescaledb", &["5432"]),
    ("postgres", &["5432"]),
    ("redis", &["6379", "26379"]),
    ("pgbouncer", &["5432", "6432"]),
];

/// The metric catalog of an exporter image, and the prefix its families share.
const EXPORTERS: &[(&str, &str, &[Metric])] = &[
    (
        "postgres-exporter",
        "pg_",
        catalog::postgres_exporter::BUILTIN,
    ),
    ("redis-exporter", "redis_", catalog::redis_exporter::METRICS),
    (
        "pgbouncer-exporter",
        "pgbouncer_",
        catalog::pgbouncer_exporter::METRICS,
    ),
    ("node-exporter", "node_", catalog::node_exporter::METRICS),
    ("cadvisor", "container_", catalog::cadvisor::METRICS),
    ("rabbitmq", "rabbitmq_", catalog::rabbitmq::METRICS),
];

pub fn run(audit: &mut Audit<'_>) {
    let scraped = scraped_services(audit);
    for file in audit.of_kind(FileKind::Prometheus) {
        rule_files(audit, file);
        scrape_targets(audit, file);
    }
    let recorded: BTreeSet<String> = audit
        .of_kind(FileKind::PromRules)
        .flat_map(|f| {
            rules_of(f)
                .into_iter()
                .filter_map(|r| r["record"].as_str().map(String::from))
        })
        .collect();
    for file in audit.of_kind(FileKind::PromRules) {
        alert_metrics(audit, file, &scraped, &recorded);
    }
    for file in audit.of_kind(FileKind::GrafanaDatasources) {
        datasources(audit, file);
    }
    for file in audit.of_kind(FileKind::Unit) {
        native_unit(audit, file);
    }
}

/// Ports a service listens on in its container: published and exposed targets, its
/// image's defaults, and the ports its mounted configs set.
/// Empty when neither the image nor a config says: published and exposed ports alone do
/// not tell which port a container listens on, so nothing is judged then.
fn container_ports(audit: &Audit<'_>, service: &ComposeService) -> BTreeSet<String> {
    let mut ports = BTreeSet::new();
    if let Some(image) = service.image.as_deref().map(repository) {
        for (_, defaults) in IMAGE_PORTS.iter().filter(|(name, _)| *name == image) {
            ports.extend(defaults.iter().map(|p| p.to_string()));
        }
    }
    for kind in [
        FileKind::Redis,
        FileKind::Pgbouncer,
        FileKind::Postgresql,
        FileKind::Rabbitmq,
    ] {
        for file in audit.deployment.files_in(service, kind) {
            for line in file.text.lines() {
                let words: Vec<&str> = line
                    .split(|c: char| c.is_whitespace() || c == '=')
                    .filter(|w| !w.is_empty())
                    .collect();
                if let [key, value, ..] = words.as_slice()
                    && matches!(
                        *key,
                        "port"
                            | "listen_port"
                            | "listeners.tcp.default"
                            | "management.tcp.port"
                            | "prometheus.tcp.port"
                    )
                {
                    ports.insert(value.rsplit(':').next().unwrap_or(value).to_string());
                }
            }
        }
    }
    if !ports.is_empty() {
        ports.extend(service.ports.iter().map(|p| p.target.clone()));
        ports.extend(service.expose.iter().cloned());
    }
    ports
}

/// The repository name of an image without registry, owner and tag, `_` read as `-`:
/// `quay.io/prometheuscommunity/postgres-exporter:v0.16.0` -> `postgres-exporter`,
/// `oliver006/redis_exporter:v1.66.0` -> `redis-exporter`.
pub(crate) fn repository(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split([':', '@'])
        .next()
        .unwrap_or(last)
        .replace('_', "-")
}

/// The prometheus.yml a compose service runs, and that service.
fn prometheus_service<'a>(audit: &'a Audit<'_>, file: &Audited) -> Option<&'a ComposeService> {
    audit
        .deployment
        .services_reading(&file.rel)
        .into_iter()
        .next()
}

/// TG511: each `rule_files` pattern names files Prometheus can see through its mounts.
fn rule_files(audit: &mut Audit<'_>, file: &Audited) {
    let Some(Ok(document)) = &file.yaml else {
        return;
    };
    let service = prometheus_service(audit, file);
    let dir = file.rel.rsplit_once('/').map_or("", |(d, _)| d);
    let mut missing = Vec::new();
    for pattern in document["rule_files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let host = match service {
            Some(service) if pattern.starts_with('/') => {
                audit.deployment.host_file(service, pattern)
            }
            // A path inside a container nothing here mounts: nothing to resolve it with.
            _ if pattern.starts_with('/') => continue,
            _ if dir.is_empty() => Some(pattern.to_string()),
            _ => Some(format!("{dir}/{pattern}")),
        };
        let matches = host.as_deref().is_some_and(|h| {
            audit
                .files
                .iter()
                .any(|f| f.kind == FileKind::PromRules && glob(h, &f.rel))
        });
        if !matches {
            let line = file
                .text
                .lines()
                .position(|l| l.contains(pattern))
                .map_or(1, |i| i + 1);
            missing.push((line, pattern.to_string()));
        }
    }
    for (line, pattern) in missing {
        audit.error(
            "TG511",
            &file.rel,
            line,
            format!(
                "rule_files `{pattern}` matches no rule file Prometheus can see: every alert \
                of it is silently missing",
            ),
            "mount the rules directory at that path, or fix the pattern",
        );
    }
}

/// `*` and `?` within one path segment.
fn glob(pattern: &str, path: &str) -> bool {
    fn matches(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                matches(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && matches(p, &s[1..]))
            }
            (Some(b'?'), Some(c)) if *c != b'/' => matches(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &s[1..]),
            _ => false,
        }
    }
    matches(pattern.as_bytes(), path.as_bytes())
}

/// The `host:port` targets of every static scrape config and the names of every DNS
/// service discovery (a swarm's per-node agents), with their lines.
fn targets(file: &Audited) -> Vec<(String, String, usize)> {
    let Some(Ok(document)) = &file.yaml else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let line_of = |needle: &str| {
        file.text
            .lines()
            .position(|l| l.contains(needle))
            .map_or(1, |i| i + 1)
    };
    for job in document["scrape_configs"].as_array().into_iter().flatten() {
        for (name, port) in dns_targets(job) {
            let line = line_of(&name);
            found.push((name, port.to_string(), line));
        }
        for config in job["static_configs"].as_array().into_iter().flatten() {
            for target in config["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let (host, port) = target.rsplit_once(':').unwrap_or((target, "80"));
                let line = line_of(target);
                found.push((host.to_string(), port.to_string(), line));
            }
        }
    }
    found
}

/// Services some prometheus.yml scrapes.
fn scraped_services(audit: &Audit<'_>) -> BTreeSet<String> {
    audit
        .of_kind(FileKind::Prometheus)
        .flat_map(targets)
        .map(|(host, _, _)| host)
        .filter(|host| audit.deployment.services.contains_key(host))
        .collect()
}

/// TG515: every target is a compose service, on a port it listens on.
fn scrape_targets(audit: &mut Audit<'_>, file: &Audited) {
    if audit.deployment.services.is_empty() {
        return;
    }
    let own = prometheus_service(audit, file)
        .map(|s| container_ports(audit, s))
        .unwrap_or_default();
    for (host, port, line) in targets(file) {
        if matches!(host.as_str(), "localhost" | "127.0.0.1") {
            if !own.is_empty() && !own.contains(&port) {
                audit.error(
                    "TG515",
                    &file.rel,
                    line,
                    format!(
                        "target {host}:{port} is Prometheus itself, which listens on {}",
                        own.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    "scrape the port Prometheus listens on",
                );
            }
            continue;
        }
        // The host itself (a native service), reachable when compose maps the name.
        if host == "host.docker.internal" {
            let mapped = prometheus_service(audit, file)
                .is_some_and(|s| s.extra_hosts.iter().any(|h| h == &host));
            if !mapped {
                audit.error(
                    "TG515",
                    &file.rel,
                    line,
                    format!(
                        "target {host}:{port}: on Linux that name resolves only with \
                        `extra_hosts: [\"host.docker.internal:host-gateway\"]` on the \
                        Prometheus service",
                    ),
                    "add the extra_hosts entry",
                );
            }
            continue;
        }
        let Some(service) = audit.deployment.services.get(&host) else {
            if !super::single_label(&host) {
                continue; // an FQDN or address outside the compose file, on purpose
            }
            audit.error(
                "TG515",
                &file.rel,
                line,
                format!(
                    "target {host}:{port} is no service of the compose file: the job is always down"
                ),
                audit.deployment.nearest_service(&host),
            );
            continue;
        };
        let ports = container_ports(audit, service);
        if !ports.is_empty() && !ports.contains(&port) {
            audit.error(
                "TG515",
                &file.rel,
                line,
                format!(
                    "target {host}:{port}, but `{host}` listens on {}",
                    ports.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                "scrape the port the exporter listens on",
            );
        }
    }
}

fn rules_of(file: &Audited) -> Vec<&Value> {
    let Some(Ok(document)) = &file.yaml else {
        return Vec::new();
    };
    document["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect()
}

/// TG513/TG510: alert expressions parse, and the exporter families they read are exported
/// by an exporter Prometheus scrapes. Metrics of families tgstack has no catalog of are
/// not judged.
fn alert_metrics(
    audit: &mut Audit<'_>,
    file: &Audited,
    scraped: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) {
    let deployed: Vec<(&str, &[Metric])> = scraped
        .iter()
        .filter_map(|name| audit.deployment.services[name].image.as_deref())
        .flat_map(|image| {
            EXPORTERS
                .iter()
                .filter(move |(name, _, _)| *name == repository(image))
        })
        .map(|(_, prefix, metrics)| (*prefix, *metrics))
        .collect();
    let mut problems = Vec::new();
    for rule in rules_of(file) {
        let Some(expr) = rule["expr"].as_str() else {
            continue;
        };
        let name = rule["alert"]
            .as_str()
            .or(rule["record"].as_str())
            .unwrap_or("");
        let line = file
            .text
            .lines()
            .position(|l| {
                l.contains(&format!("alert: {name}")) || l.contains(&format!("record: {name}"))
            })
            .map_or(1, |i| i + 1);
        let expr_line = file
            .text
            .lines()
            .enumerate()
            .skip(line)
            .find(|(_, l)| l.trim_start().starts_with("expr:"))
            .map_or(line, |(i, _)| i + 1);
        let parsed = match promql_parser::parser::parse(expr) {
            Ok(parsed) => parsed,
            Err(error) => {
                problems.push((
                    "TG513",
                    expr_line,
                    format!(
                        "`{name}` is not valid PromQL: {}",
                        error.lines().next().unwrap_or("")
                    ),
                    "fix the expression".to_string(),
                ));
                continue;
            }
        };
        let mut selectors = Selectors::default();
        let _ = walk_expr(&mut selectors, &parsed);
        for (metric, _) in selectors.found {
            let known = recorded.contains(&metric)
                || catalog::find(catalog::SCRAPE, &metric).is_some()
                || deployed
                    .iter()
                    .any(|(_, metrics)| catalog::find(metrics, &metric).is_some());
            let family = EXPORTERS
                .iter()
                .find(|(_, prefix, _)| metric.starts_with(prefix));
            if known || family.is_none() {
                continue;
            }
            let (_, prefix, metrics) = family.expect("checked above");
            let hint = crate::suggest::did_you_mean(&metric, metrics.iter().map(|m| m.name));
            let exported = deployed.iter().any(|(p, _)| p == prefix);
            let why = if exported {
                "the exporter Prometheus scrapes does not export it"
            } else {
                "no service Prometheus scrapes exports that family"
            };
            problems.push((
                "TG510",
                expr_line,
                format!("`{name}` reads `{metric}`: {why}, so the alert can never fire"),
                if hint.is_empty() {
                    "use a metric the exporter exports".to_string()
                } else {
                    hint
                },
            ));
        }
    }
    for (rule, line, message, hint) in problems {
        audit.error(rule, &file.rel, line, message, hint);
    }
}

/// `scheme://host:port/...` -> (host, port).
/// A URL without a scheme (a PostgreSQL datasource's `host:port`) has no default port.
fn url_host_port(url: &str) -> Option<(String, String)> {
    let Some((_, rest)) = url.split_once("://") else {
        let (host, port) = url.split('/').next()?.rsplit_once(':')?;
        return Some((host.to_string(), port.to_string()));
    };
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default = if url.starts_with("https") {
        "443"
    } else {
        "80"
    };
    Some(match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.to_string()),
        None => (authority.to_string(), default.to_string()),
    })
}

/// TG516: Grafana datasources point at a service, on a port it listens on.
fn datasources(audit: &mut Audit<'_>, file: &Audited) {
    let Some(Ok(document)) = &file.yaml else {
        return;
    };
    if audit.deployment.services.is_empty() {
        return;
    }
    let mut problems = Vec::new();
    for source in document["datasources"].as_array().into_iter().flatten() {
        let Some(url) = source["url"].as_str() else {
            continue;
        };
        let Some((host, port)) = url_host_port(url) else {
            continue;
        };
        let line = file
            .text
            .lines()
            .position(|l| l.contains(url))
            .map_or(1, |i| i + 1);
        match audit.deployment.services.get(&host) {
            None if !super::single_label(&host) => {}
            None => problems.push((
                line,
                format!(
                    "datasource {}: `{host}` is no service of the compose file",
                    mask_credentials(url)
                ),
            )),
            Some(service) => {
                let ports = container_ports(audit, service);
                if !ports.is_empty() && !ports.contains(&port) {
                    problems.push((
                        line,
                        format!(
                            "datasource {}: `{host}` listens on {}",
                            mask_credentials(url),
                            ports.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
    }
    for (line, message) in problems {
        audit.error(
            "TG516",
            &file.rel,
            line,
            message,
            "point the datasource at the Prometheus service and port",
        );
    }
}

/// TG206: a native unit reaches containers only through ports published on the host.
fn native_unit(audit: &mut Audit<'_>, file: &Audited) {
    if audit.deployment.services.is_empty() {
        return;
    }
    let mut problems = Vec::new();
    for (index, line) in file.text.lines().enumerate() {
        let Some(assignments) = line.trim().strip_prefix("Environment=") else {
            continue;
        };
        for assignment in assignments.split_whitespace() {
            let Some((name, value)) = assignment.trim_matches('"').split_once('=') else {
                continue;
            };
            let port = if name.ends_with("_PORT") && value.bytes().all(|b| b.is_ascii_digit()) {
                Some(value.to_string())
            } else {
                url_host_port(value)
                    .filter(|(h, _)| matches!(h.as_str(), "127.0.0.1" | "localhost"))
                    .map(|(_, p)| p)
            };
            if let Some(port) = port
                && !audit.deployment.published(&port)
            {
                let message = format!(
                    "{name} points at port {port} on the host, but no compose service \
                     publishes it: the unit cannot connect"
                );
                problems.push((index + 1, message));
            }
        }
    }
    for (line, message) in problems {
        audit.error(
            "TG206",
            &file.rel,
            line,
            message,
            "publish the port on 127.0.0.1 in the compose file, or fix the port",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_urls() {
        assert!(glob("config/rules/*.yml", "config/rules/redis.yml"));
        assert!(!glob("config/rules/*.yml", "config/rules/sub/redis.yml"));
        assert!(!glob("config/rules/*.yaml", "config/rules/redis.yml"));
        assert_eq!(
            url_host_port("http://prometheus:9090"),
            Some(("prometheus".into(), "9090".into()))
        );
        assert_eq!(
            url_host_port("amqp://u@127.0.0.1:5672/%2f"),
            Some(("127.0.0.1".into(), "5672".into()))
        );
    }
}
