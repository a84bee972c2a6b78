//! Monitoring files re-read from the tree: prometheus.yml (rule_files, scrape targets),
//! alert rules and dashboard queries (PromQL parsed, every metric looked up in the catalog
//! of the targets actually scraped), annotation units, the dashboard provider and the
//! Grafana datasources.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;

use super::Files;
use super::parse::line_of;
use crate::catalog::{self, Metric};
use crate::check::Ctx;
use crate::finding::Severity;
use crate::model::{Deploy, Kind, Service, Stack, kinds};

const CONFIG: &str = "prometheus.yml";

/// A scrape job as rendered: name and the metrics its targets expose.
struct Job {
    metrics: Vec<&'static Metric>,
}

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>) {
    let stack = cx.stack();
    let Some((prometheus_name, _)) = stack
        .services
        .iter()
        .find(|(_, s)| s.kind == Kind::Prometheus)
    else {
        return;
    };
    let dir = prometheus_name.clone();
    let config_path = format!("{dir}/{CONFIG}");
    let Some(text) = files.text(&config_path) else {
        return;
    };
    let Some(config) = files.yaml_value(&config_path) else {
        return;
    };
    let path = format!("services.{dir}");
    let jobs = scrape_jobs(cx, config, &config_path, text, &path);
    rule_files(cx, files, config, &config_path, text, &dir, &path, &jobs);
    grafana(cx, files, &jobs);
}

/// The metrics port of a service, where its /metrics is served.
fn metrics_port(service: &Service) -> Option<u16> {
    kinds::metrics_endpoint(service).map(|(port, _)| port)
}

/// The model service a scrape target `host:port` names, seen from Prometheus.
fn target_service<'a>(stack: &'a Stack, host: &str) -> Option<(&'a String, &'a Service)> {
    if host == "host.docker.internal" {
        return None;
    }
    stack.services.iter().find(|(name, service)| {
        stack
            .instances(name, service)
            .iter()
            .any(|i| i.name == host)
    })
}

/// Incident 11: every target resolves to a model service and the port it serves metrics on.
fn scrape_jobs(
    cx: &mut Ctx<'_>,
    config: &Value,
    file: &str,
    text: &str,
    path: &str,
) -> BTreeMap<String, Job> {
    let stack = cx.stack();
    let mut jobs = BTreeMap::new();
    for job in config
        .get("scrape_configs")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let name = job
            .get("job_name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let mut metrics: Vec<&'static Metric> = catalog::SCRAPE.iter().collect();
        let targets = job
            .get("static_configs")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .flat_map(|c| {
                c.get("targets")
                    .and_then(|t| t.as_array())
                    .cloned()
                    .unwrap_or_default()
            });
        for target in targets {
            let target = target.as_str().unwrap_or("").to_string();
            let line = line_of(text, &format!("\"{target}\""));
            let Some((host, port)) = target.rsplit_once(':') else {
                cx.report_file(
                    "TG515",
                    Severity::Error,
                    path,
                    file,
                    line,
                    format!("{file}: target `{target}` of job `{name}` has no port"),
                    "targets are host:port".into(),
                );
                continue;
            };
            let port: u16 = port.parse().unwrap_or(0);
            let resolved = if host == "host.docker.internal" {
                stack
                    .services
                    .iter()
                    .find(|(_, s)| s.deploy == Deploy::Native && metrics_port(s) == Some(port))
            } else {
                target_service(stack, host)
            };
            match resolved {
                None => cx.report_file("TG515", Severity::Error, path, file, line, format!("{file}: job `{name}` scrapes `{target}`, which is no model service's metrics endpoint"), "scrape targets are rendered from the model: re-render".into()),
                Some((service_name, service)) => {
                    let expected = metrics_port(service);
                    if expected != Some(port) {
                        cx.report_file("TG515", Severity::Error, &format!("services.{service_name}"), file, line, format!("{file}: job `{name}` scrapes {target}, but `{service_name}` serves metrics on port {}", expected.map(|p| p.to_string()).unwrap_or_else(|| "(none)".into())), "scrape the internal metrics port".into());
                    }
                    metrics.extend(service.kind.metrics().iter());
                }
            }
        }
        jobs.insert(name, Job { metrics });
    }
    jobs
}

/// Collects every vector selector: metric name and `job` matcher.
#[derive(Default)]
struct Selectors {
    found: Vec<(String, Option<String>)>,
}

impl ExprVisitor for Selectors {
    type Error = ();
    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        let selector = match expr {
            Expr::VectorSelector(v) => Some(v),
            Expr::MatrixSelector(m) => Some(&m.vs),
            _ => None,
        };
        if let Some(v) = selector {
            let name = v.name.clone().or_else(|| {
                v.matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__")
                    .map(|m| m.value.clone())
            });
            let job = v
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "job")
                .map(|m| m.value.clone());
            if let Some(name) = name {
                self.found.push((name, job));
            }
        }
        Ok(true)
    }
}

/// Parses `expr` and checks every metric against the jobs' catalogs (incident 21).
#[allow(clippy::too_many_arguments)]
fn check_expr(
    cx: &mut Ctx<'_>,
    jobs: &BTreeMap<String, Job>,
    extra: &BTreeSet<String>,
    expr: &str,
    path: &str,
    file: &str,
    line: Option<usize>,
    what: &str,
) -> Vec<String> {
    let parsed = match promql_parser::parser::parse(expr) {
        Ok(parsed) => parsed,
        Err(error) => {
            cx.report_file(
                "TG513",
                Severity::Error,
                path,
                file,
                line,
                format!(
                    "{file}: {what} is not valid PromQL: {}",
                    error.lines().next().unwrap_or("")
                ),
                "fix the expression".into(),
            );
            return Vec::new();
        }
    };
    let mut selectors = Selectors::default();
    let _ = walk_expr(&mut selectors, &parsed);
    let mut names = Vec::new();
    for (name, job) in selectors.found {
        names.push(name.clone());
        if extra.contains(&name) {
            continue;
        }
        let known = match job.as_ref().and_then(|j| jobs.get(j)) {
            Some(job) => job.metrics.iter().any(|m| m.matches(&name)),
            None => jobs
                .values()
                .any(|j| j.metrics.iter().any(|m| m.matches(&name))),
        };
        if !known {
            let scope = match &job {
                Some(job) if jobs.contains_key(job) => format!("job `{job}`"),
                Some(job) => format!("job `{job}`, which is not scraped"),
                None => "any scraped target".into(),
            };
            let candidates: Vec<&str> = jobs
                .values()
                .flat_map(|j| j.metrics.iter().map(|m| m.name))
                .collect();
            let hint = crate::suggest::did_you_mean(&name, candidates.iter().copied());
            cx.report_file("TG510", Severity::Error, path, file, line, format!("{file}: {what} uses `{name}`, which {scope} does not export"), if hint.is_empty() { "query only metrics of the catalog of a scraped target (add the exporter to the model)".into() } else { hint });
        }
    }
    names
}

/// Incident 24: a `{{ $value }}` followed by a unit word must match the metric's unit.
fn check_units(
    cx: &mut Ctx<'_>,
    metrics: &[String],
    text: &str,
    path: &str,
    file: &str,
    line: Option<usize>,
) {
    let seconds = metrics.iter().any(|m| m.contains("_seconds"));
    let bytes = metrics.iter().any(|m| m.contains("_bytes"));
    for (index, _) in text.match_indices("{{ $value }}") {
        let after: String = text[index + "{{ $value }}".len()..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_ascii_lowercase();
        let wrong = match after.as_str() {
            "minutes" | "minute" | "hours" | "hour" | "ms" | "milliseconds" | "days" => seconds,
            "seconds" | "second" | "s" => !seconds && !metrics.is_empty(),
            "mb" | "gb" | "kb" | "mib" | "gib" => bytes,
            _ => false,
        };
        if wrong {
            cx.report_file("TG514", Severity::Error, path, file, line, format!("{file}: annotation prints {{{{ $value }}}} as `{after}`, but the expression's unit is {}", if seconds { "seconds" } else if bytes { "bytes" } else { "not that" }), "print the value in the metric's unit, or convert with humanizeDuration / humanize1024".into());
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn rule_files(
    cx: &mut Ctx<'_>,
    files: &Files<'_>,
    config: &Value,
    config_path: &str,
    text: &str,
    dir: &str,
    path: &str,
    jobs: &BTreeMap<String, Job>,
) {
    let patterns: Vec<String> = config
        .get("rule_files")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let rendered_rules: Vec<&String> = files
        .paths()
        .filter(|p| p.starts_with(&format!("{dir}/rules/")))
        .collect();
    let mut loaded = BTreeSet::new();
    let mounts = prometheus_mounts(files, dir);
    for pattern in &patterns {
        let line = line_of(text, pattern);
        // Relative rule files resolve against the config file's directory.
        let in_tree = format!("{dir}/{pattern}");
        let matched: Vec<&String> = files.paths().filter(|p| glob_match(&in_tree, p)).collect();
        if matched.is_empty() {
            cx.report_file("TG511", Severity::Error, path, config_path, line, format!("{config_path}: rule_files `{pattern}` matches no rendered file: those alerts never load"), "list the rendered rule files (re-render)".into());
        }
        // Incident 22: the file must be mounted where Prometheus reads it.
        if !mounts.is_empty() {
            let container_path = if pattern.starts_with('/') {
                pattern.clone()
            } else {
                format!("/etc/prometheus/{pattern}")
            };
            let mounted = mounts.iter().any(|(source, target)| {
                container_path.starts_with(target.as_str())
                    && matched.iter().all(|m| m.starts_with(source.as_str()))
            });
            if !mounted {
                cx.report_file("TG511", Severity::Error, path, config_path, line, format!("{config_path}: rule file {container_path} is not mounted into the Prometheus container"), "mount the rules directory where rule_files point".into());
            }
        }
        loaded.extend(matched.into_iter().cloned());
    }
    for file in rendered_rules {
        if !loaded.contains(file) && !file.contains("/tests/") {
            cx.report_file(
                "TG511",
                Severity::Error,
                path,
                file,
                None,
                format!("{file} is rendered but no rule_files entry loads it"),
                "add it to rule_files (re-render)".into(),
            );
        }
    }
    // Alert expressions and annotations of every loaded rule file.
    for file in loaded.iter() {
        let Some(rules_text) = files.text(file) else {
            continue;
        };
        let Some(doc) = files.yaml_value(file) else {
            continue;
        };
        let recorded: BTreeSet<String> = doc
            .get("groups")
            .and_then(|g| g.as_array())
            .into_iter()
            .flatten()
            .flat_map(|g| {
                g.get("rules")
                    .and_then(|r| r.as_array())
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|r| r.get("record").and_then(|v| v.as_str()).map(String::from))
            .collect();
        for group in doc
            .get("groups")
            .and_then(|g| g.as_array())
            .into_iter()
            .flatten()
        {
            for rule in group
                .get("rules")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
            {
                let name = rule
                    .get("alert")
                    .or_else(|| rule.get("record"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                let line = line_of(rules_text, &format!("\"{name}\""));
                let rule_path = cx
                    .stack()
                    .alerts
                    .iter()
                    .position(|a| a.name == name)
                    .map(|i| format!("alerts.{i}"))
                    .unwrap_or_else(|| "alerts".into());
                let Some(expr) = rule.get("expr").and_then(|v| v.as_str()) else {
                    continue;
                };
                let metrics = check_expr(
                    cx,
                    jobs,
                    &recorded,
                    expr,
                    &rule_path,
                    file,
                    line,
                    &format!("alert `{name}`"),
                );
                for key in ["summary", "description"] {
                    if let Some(annotation) = rule
                        .pointer(&format!("/annotations/{key}"))
                        .and_then(|v| v.as_str())
                    {
                        check_units(cx, &metrics, annotation, &rule_path, file, line);
                    }
                }
            }
        }
    }
}

/// Compose bind mounts of the Prometheus container: (tree path prefix, container target).
fn prometheus_mounts(files: &Files<'_>, service: &str) -> Vec<(String, String)> {
    let Some(doc) = files.yaml_value(super::compose::FILE) else {
        return Vec::new();
    };
    doc.pointer(&format!("/services/{service}/volumes"))
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let source = m.get("source")?.as_str()?.strip_prefix("./")?.to_string();
            let target = m.get("target")?.as_str()?.to_string();
            Some((source, target))
        })
        .collect()
}

/// `*` matches within one path segment.
fn glob_match(pattern: &str, path: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && go(p, &s[1..])),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), path.as_bytes())
}

/// Grafana: dashboards reachable from a provider (23), dashboard PromQL (21), datasources (12).
fn grafana(cx: &mut Ctx<'_>, files: &Files<'_>, jobs: &BTreeMap<String, Job>) {
    let stack = cx.stack();
    let Some((name, service)) = stack.services.iter().find(|(_, s)| s.kind == Kind::Grafana) else {
        return;
    };
    let path = format!("services.{name}");
    let mounts = prometheus_mounts(files, name);
    // Dashboards: every JSON must lie in a directory mounted at a provider's path.
    let mut provider_paths = Vec::new();
    for file in files
        .paths()
        .filter(|p| p.starts_with(&format!("{name}/provisioning/dashboards/")))
    {
        if file.ends_with(".json") {
            cx.report_file(
                "TG512",
                Severity::Error,
                &path,
                file,
                None,
                format!("{file}: a dashboard in the provider folder is never loaded"),
                "dashboards go to the directory the provider's path points at".into(),
            );
            continue;
        }
        let Some(doc) = files.yaml_value(file) else {
            continue;
        };
        for provider in doc
            .get("providers")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(p) = provider.pointer("/options/path").and_then(|v| v.as_str()) {
                provider_paths.push(p.to_string());
            }
        }
    }
    for file in files
        .paths()
        .filter(|p| p.starts_with(&format!("{name}/")) && p.ends_with(".json"))
    {
        if file.contains("/provisioning/") {
            continue;
        }
        let reachable = mounts.iter().any(|(source, target)| {
            file.starts_with(&format!("{source}/"))
                && provider_paths
                    .iter()
                    .any(|p| p.trim_end_matches('/') == target.trim_end_matches('/'))
        });
        if !reachable {
            cx.report_file(
                "TG512",
                Severity::Error,
                &path,
                file,
                None,
                format!("{file} is not in a directory any dashboard provider reads"),
                "render dashboards into the provider's mounted directory".into(),
            );
        }
        let Some(text) = files.text(file) else {
            continue;
        };
        let Ok(dashboard) = serde_json::from_str::<Value>(text) else {
            cx.report_file(
                "TG022",
                Severity::Error,
                &path,
                file,
                None,
                format!("{file} is not valid JSON"),
                "re-render".into(),
            );
            continue;
        };
        for panel in dashboard
            .get("panels")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            let title = panel.get("title").and_then(|t| t.as_str()).unwrap_or("");
            for target in panel
                .get("targets")
                .and_then(|t| t.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(expr) = target.get("expr").and_then(|e| e.as_str()) {
                    let line = line_of(text, &format!("\"title\": \"{title}\""));
                    check_expr(
                        cx,
                        jobs,
                        &BTreeSet::new(),
                        expr,
                        &path,
                        file,
                        line,
                        &format!("panel `{title}`"),
                    );
                }
            }
        }
    }
    datasources(cx, files, name, service, &path);
}

/// Incident 12: datasource URLs reach a model service on its internal port, with a role
/// and credentials the Grafana container really has.
fn datasources(cx: &mut Ctx<'_>, files: &Files<'_>, name: &str, grafana: &Service, path: &str) {
    let stack = cx.stack();
    let compose_env: BTreeSet<String> = files
        .yaml_value(super::compose::FILE)
        .and_then(|doc| {
            doc.pointer(&format!("/services/{name}/environment"))
                .and_then(|e| e.as_object())
                .map(|m| m.keys().cloned().collect())
        })
        .unwrap_or_default();
    for file in files
        .paths()
        .filter(|p| p.starts_with(&format!("{name}/provisioning/datasources/")))
    {
        let Some(text) = files.text(file) else {
            continue;
        };
        let Some(doc) = files.yaml_value(file) else {
            continue;
        };
        for source in doc
            .get("datasources")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
        {
            let ds_name = source.get("name").and_then(|v| v.as_str()).unwrap_or("");
            let url = source.get("url").and_then(|v| v.as_str()).unwrap_or("");
            let line = line_of(text, &format!("\"{url}\""));
            let address = url
                .split("://")
                .last()
                .unwrap_or(url)
                .split('/')
                .next()
                .unwrap_or("");
            let Some((host, port)) = address.rsplit_once(':') else {
                cx.report_file(
                    "TG516",
                    Severity::Error,
                    path,
                    file,
                    line,
                    format!("{file}: datasource `{ds_name}` URL {url} has no port"),
                    "datasource URLs name host and internal port".into(),
                );
                continue;
            };
            match target_service(stack, host) {
                None => cx.report_file(
                    "TG516",
                    Severity::Error,
                    path,
                    file,
                    line,
                    format!("{file}: datasource `{ds_name}` points at `{host}`, no model service"),
                    "re-render".into(),
                ),
                Some((target_name, target)) => {
                    let ok = match stack.reach(grafana, target_name) {
                        Ok(endpoint) => endpoint.port.to_string() == port,
                        Err(_) => false,
                    };
                    if !ok {
                        cx.report_file("TG516", Severity::Error, &format!("services.{target_name}"), file, line, format!("{file}: datasource `{ds_name}` uses {host}:{port}, but `{target_name}` listens on {}", target.port), "datasource URLs use the internal port".into());
                    }
                }
            }
            if let Some(user) = source.get("user").and_then(|v| v.as_str())
                && let Some(database) = grafana.grafana.as_ref().map(|g| g.database.clone())
                && let Some((db, pg)) = stack.database_of(&database)
                && !pg.roles.contains_key(user)
            {
                cx.report_file(
                    "TG516",
                    Severity::Error,
                    path,
                    file,
                    line_of(text, user),
                    format!(
                        "{file}: datasource `{ds_name}` logs in as `{user}`, not a role of `{db}`"
                    ),
                    "use the model's read-only role".into(),
                );
            }
            for (key, value) in source
                .get("secureJsonData")
                .and_then(|v| v.as_object())
                .into_iter()
                .flatten()
            {
                let value = value.as_str().unwrap_or("");
                let var = value.strip_prefix("${").and_then(|v| v.strip_suffix('}'));
                match var {
                    None => cx.report_file("TG104", Severity::Error, path, file, line_of(text, value), format!("{file}: datasource `{ds_name}` {key} is a literal value"), "reference the secret's variable as ${VAR}".into()),
                    Some(var) if !compose_env.contains(var) => cx.report_file("TG516", Severity::Error, path, file, line_of(text, value), format!("{file}: datasource `{ds_name}` reads ${{{var}}}, which the Grafana container does not get"), "pass the variable in the container's environment (re-render)".into()),
                    Some(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_in_one_segment() {
        assert!(glob_match(
            "prometheus/rules/*.yml",
            "prometheus/rules/critical.yml"
        ));
        assert!(!glob_match(
            "prometheus/rules/*.yml",
            "prometheus/rules/sub/critical.yml"
        ));
        assert!(!glob_match(
            "prometheus/rules/*.yml",
            "prometheus/rules/critical.yaml"
        ));
    }
}
