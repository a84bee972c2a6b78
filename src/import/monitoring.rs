//! Prometheus, Grafana and the exporters, and the alert rules read back into typed alerts:
//! a rule is the typed alert whose rendered expression it is, tried against every kind,
//! service and threshold the expression allows; any other rule stays a custom alert.

use std::path::PathBuf;

use serde_json::Value;

use super::Import;
use super::data::{mounted, mounted_all, service_named};
use super::draft::{Table, secret_ref};
use super::read::{flag, port_of};
use super::secrets::interpolated;
use super::services::Found;
use crate::check::audit::FileKind;
use crate::model::alerting::build_alert;
use crate::model::units::Duration;
use crate::model::{Alert, Kind, Stack};

pub fn prometheus(import: &mut Import<'_>, found: &Found) {
    let config = mounted(import, found, FileKind::Prometheus).and_then(|f| match &f.yaml {
        Some(Ok(document)) => Some(document.clone()),
        _ => None,
    });
    let port = flag(&found.command, "--web.listen-address").and_then(port_of);
    let retention =
        flag(&found.command, "--storage.tsdb.retention.time").and_then(|r| Duration::parse(r).ok());
    if let Some(port) = port {
        import.service(&found.name).set("port", port);
    }
    let table = import.service(&found.name).table("prometheus");
    if let Some(config) = config {
        for key in ["scrape_interval", "evaluation_interval"] {
            if let Some(d) = config["global"][key]
                .as_str()
                .and_then(|d| Duration::parse(d).ok())
            {
                table.set(key, d.to_string());
            }
        }
    }
    if let Some(retention) = retention {
        table.set("retention", retention.to_string());
    }
}

pub fn grafana(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let datasources: Vec<Value> = mounted_all(import, found, FileKind::GrafanaDatasources)
        .into_iter()
        .filter_map(|f| match &f.yaml {
            Some(Ok(document)) => document["datasources"].as_array().cloned(),
            _ => None,
        })
        .flatten()
        .collect();
    if let Some(port) = found
        .env("GF_SERVER_HTTP_PORT")
        .and_then(|p| p.parse::<u16>().ok())
    {
        import.service(&found.name).set("port", port);
    }
    let password = found
        .env("GF_SECURITY_ADMIN_PASSWORD")
        .map(|v| match interpolated(v) {
            Some(var) => import.secrets.by_env(var),
            None => import.secrets.literal(
                "grafana_admin",
                &format!("the environment of `{}`", found.name),
            ),
        });
    let table = import.service(&found.name).table("grafana");
    table.set(
        "admin_user",
        found.env("GF_SECURITY_ADMIN_USER").unwrap_or("admin"),
    );
    match password {
        Some(id) => table.set("admin_password", secret_ref(&id)),
        None => table.guess(
            "admin_password",
            secret_ref("grafana_admin"),
            "no admin password set",
        ),
    };
    for source in datasources {
        let kind = source["type"].as_str().unwrap_or("");
        let url = source["url"].as_str().unwrap_or("");
        let Some(service) = service_named(all, &host_part(url)) else {
            continue;
        };
        match kind {
            "prometheus" => {
                table.set("prometheus", service);
                if let Some(d) = source["jsonData"]["queryTimeout"]
                    .as_str()
                    .and_then(|d| Duration::parse(d).ok())
                {
                    table.set("query_timeout", d.to_string());
                }
            }
            "postgres" | "grafana-postgresql-datasource" => {
                table.set("database", service);
                if let Some(user) = source["user"].as_str() {
                    table.set("db_role", user);
                }
            }
            "redis-datasource" => {
                table.set("redis", service);
            }
            _ => {}
        }
    }
}

/// An exporter's target and user, from its environment or flags, and the port it serves.
pub fn exporter(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let listen = flag(&found.command, "--web.listen-address")
        .or_else(|| found.env("REDIS_EXPORTER_WEB_LISTEN_ADDRESS"))
        .or_else(|| flag(&found.command, "--port"))
        .and_then(port_of);
    match (listen, image_port(found.kind)) {
        (Some(port), _) => {
            import.service(&found.name).set("port", port);
        }
        (None, Some(port)) if import.service(&found.name).get("port").is_none() => {
            import.service(&found.name).set("port", port);
        }
        _ => {}
    }
    let (target, user) = match found.kind {
        Kind::PostgresExporter => (
            found.env("DATA_SOURCE_URI").map(host_part),
            found.env("DATA_SOURCE_USER").map(String::from),
        ),
        Kind::RedisExporter => (found.env("REDIS_ADDR").map(host_part), None),
        Kind::PgbouncerExporter => {
            let url = found
                .env("PGBOUNCER_EXPORTER_CONNECTION_STRING")
                .or_else(|| flag(&found.command, "--pgBouncer.connectionString"))
                .unwrap_or("");
            let user = url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split_once('@'))
                .map(|(credentials, _)| credentials.split(':').next().unwrap_or("").to_owned());
            (Some(host_part(url)), user)
        }
        _ => return,
    };
    let table = import.service(&found.name).table("exporter");
    match target.as_deref().and_then(|t| service_named(all, t)) {
        Some(service) => table.set("target", service),
        None => table.guess(
            "target",
            target.unwrap_or_default(),
            "the exporter's target is no service",
        ),
    };
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        table.set("user", user);
    }
}

/// The port an exporter's image listens on when nothing says otherwise.
fn image_port(kind: Kind) -> Option<u16> {
    match kind {
        Kind::PostgresExporter => Some(9187),
        Kind::RedisExporter => Some(9121),
        Kind::PgbouncerExporter => Some(9127),
        Kind::NodeExporter => Some(9100),
        Kind::Cadvisor => Some(8080),
        _ => None,
    }
}

/// The host of `scheme://user:pw@host:port/path`, `host:port/db` or `host`.
fn host_part(url: &str) -> String {
    let rest = url.split("://").last().unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    host.rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host)
        .to_owned()
}

/// The kinds a rule is tried against, in the model's spelling.
const TYPED_KINDS: &[&str] = &[
    "service-down",
    "ingestion-lag",
    "redis-down",
    "pool-exhausted",
    "queue-backlog",
    "cache-hit-rate",
    "disk-space",
    "memory-high",
];

/// One alerting rule of a rules file.
struct Rule {
    name: String,
    expr: String,
    for_: Option<String>,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
}

fn rules(import: &Import<'_>) -> Vec<Rule> {
    let mut out = Vec::new();
    for file in import.source.of_kind(FileKind::PromRules) {
        let Some(Ok(document)) = &file.yaml else {
            continue;
        };
        for group in document["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                let (Some(name), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str())
                else {
                    continue;
                };
                let pairs = |value: &Value| -> Vec<(String, String)> {
                    value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                };
                out.push(Rule {
                    name: name.to_owned(),
                    expr: expr.to_owned(),
                    for_: rule["for"].as_str().map(String::from),
                    labels: pairs(&rule["labels"]),
                    annotations: pairs(&rule["annotations"]),
                });
            }
        }
    }
    out
}

/// `[[alerts]]` from the rules files, and `[monitoring] runbook_url` from their links.
pub fn alerts(import: &mut Import<'_>, _found: &[Found]) {
    let rules = rules(import);
    let runbooks = rules.iter().find_map(|r| {
        let url = annotation(r, "runbook_url")?;
        url.strip_suffix(&format!("/runbooks/{}.md", r.name))
            .map(String::from)
    });
    if let Some(url) = &runbooks {
        import
            .root
            .table("monitoring")
            .set("runbook_url", url.as_str());
    }
    let stack = trial_stack(import);
    if stack.is_none() && !rules.is_empty() {
        import.unrepresented(
            "alert kinds: the imported model does not load yet, so every rule stays custom",
        );
    }
    for rule in &rules {
        let alert = stack
            .as_ref()
            .and_then(|stack| typed(stack, rule))
            .unwrap_or_else(|| custom(rule));
        import.root.push("alerts", alert);
    }
}

fn annotation<'a>(rule: &'a Rule, key: &str) -> Option<&'a str> {
    rule.annotations
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The draft so far (with its secrets) loaded as a model, to build candidate alerts in.
fn trial_stack(import: &Import<'_>) -> Option<Stack> {
    let mut draft = import.root.clone();
    import.secrets.write(draft.table("secrets"));
    let texts = vec![(PathBuf::from("stack.toml"), draft.to_toml())];
    crate::model::load_texts(texts)
        .ok()
        .map(|model| model.stack)
}

/// The typed alert that renders exactly this rule, if one does.
fn typed(stack: &Stack, rule: &Rule) -> Option<Table> {
    let severity = label(rule, "severity")?;
    let numbers = numbers_in(&rule.expr);
    let quoted = quoted_in(&rule.expr);
    // Only services the rule names (its job in the expression, or its annotations) can be
    // the alert's: that keeps the candidates few.
    let named = |name: &str| {
        rule.expr.contains(name) || rule.annotations.iter().any(|(_, v)| v.contains(name))
    };
    let services: Vec<Option<&String>> = std::iter::once(None)
        .chain(stack.services.keys().filter(|n| named(n)).map(Some))
        .collect();
    let windows: Vec<Option<&str>> = std::iter::once(None)
        .chain(windows_in(&rule.expr).into_iter().map(Some))
        .collect();
    for kind in TYPED_KINDS {
        for service in &services {
            // A number of the expression before none: a threshold equal to the kind's
            // default was written in the model all the same.
            for threshold in numbers.iter().map(Some).chain(std::iter::once(None)) {
                for window in &windows {
                    for extra in std::iter::once(None).chain(quoted.iter().map(Some)) {
                        let mut candidate = Table::default();
                        candidate.set("name", rule.name.as_str()).set("kind", *kind);
                        candidate.set("severity", severity);
                        if let Some(for_) = &rule.for_ {
                            candidate.set("for", for_.as_str());
                        }
                        if let Some(service) = service {
                            candidate.set("service", service.as_str());
                        }
                        if let Some(threshold) = threshold {
                            candidate.set("threshold", *threshold);
                        }
                        if let Some(window) = window {
                            candidate.set("window", *window);
                        }
                        if let Some(extra) = extra {
                            let key = if *kind == "disk-space" {
                                "mountpoint"
                            } else {
                                "queue"
                            };
                            candidate.set(key, extra.as_str());
                        }
                        if let Some(found) = matches(stack, rule, candidate) {
                            return Some(found);
                        }
                    }
                }
            }
        }
    }
    None
}

/// The candidate, completed with the rule's own labels and annotations, when its rendered
/// expression is the rule's.
fn matches(stack: &Stack, rule: &Rule, mut candidate: Table) -> Option<Table> {
    let alert: Alert = toml::from_str(&candidate.to_toml()).ok()?;
    let built = build_alert(stack, &alert).ok()?;
    if built.expr != rule.expr {
        return None;
    }
    for key in ["summary", "description"] {
        let own = annotation(rule, key).unwrap_or("");
        if built.annotations.get(key).map(String::as_str) != Some(own) {
            candidate.set(key, own);
        }
    }
    if let Some(url) = annotation(rule, "runbook_url")
        && built.annotations.get("runbook_url").map(String::as_str) != Some(url)
    {
        candidate.set("runbook", url);
    }
    let labels = extra_labels(rule);
    if !labels.is_empty() {
        *candidate.table("labels") = labels;
    }
    Some(candidate)
}

fn custom(rule: &Rule) -> Table {
    let mut alert = Table::default();
    alert.set("name", rule.name.as_str()).set("kind", "custom");
    match label(rule, "severity") {
        Some(severity) => alert.set("severity", severity),
        None => alert.guess("severity", "warning", "the rule has no severity label"),
    };
    if let Some(for_) = &rule.for_ {
        alert.set("for", for_.as_str());
    }
    alert.set("expr", rule.expr.as_str());
    alert.set(
        "summary",
        annotation(rule, "summary").unwrap_or(rule.name.as_str()),
    );
    alert.set(
        "description",
        annotation(rule, "description").unwrap_or(rule.name.as_str()),
    );
    if let Some(url) = annotation(rule, "runbook_url") {
        alert.set("runbook", url);
    }
    let labels = extra_labels(rule);
    if !labels.is_empty() {
        *alert.table("labels") = labels;
    }
    alert
}

fn label<'a>(rule: &'a Rule, key: &str) -> Option<&'a str> {
    rule.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn extra_labels(rule: &Rule) -> Table {
    let mut labels = Table::default();
    for (key, value) in rule.labels.iter().filter(|(k, _)| k != "severity") {
        labels.set(key, value.as_str());
    }
    labels
}

/// Numbers an expression compares with (`> 300`, `< 0.1`).
fn numbers_in(expr: &str) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for word in expr.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e')) {
        if let Ok(n) = word.parse::<f64>()
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}

/// Range windows (`[5m]`).
fn windows_in(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in expr.split('[').skip(1) {
        if let Some(window) = part.split(']').next()
            && !out.contains(&window)
        {
            out.push(window);
        }
    }
    out
}

/// Quoted label values (`queue="telegram.signals"`).
fn quoted_in(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (at, part) in expr.split('"').enumerate() {
        if at % 2 == 1 && !out.iter().any(|o| o == part) {
            out.push(part.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_tried_is_a_typed_kind_of_the_model() {
        for kind in TYPED_KINDS {
            let parsed: crate::model::AlertKind =
                toml::Value::try_into(toml::Value::String((*kind).to_owned())).unwrap();
            assert_ne!(parsed, crate::model::AlertKind::Custom);
        }
        assert_eq!(
            numbers_in("max(x{job=\"a\"}) > 300"),
            vec![300.0],
            "label values are not thresholds"
        );
        assert_eq!(windows_in("rate(x[5m]) / rate(y[5m])"), vec!["5m"]);
    }
}
