//! Monitoring files re-read from the tree: prometheus.yml (rule_files, scrape targets),
//! alert rules and dashboard queries (PromQL parsed, every metric looked up in the catalog
//! of the targets actually scraped), annotation units, the dashboard provider and the
//! Grafana datasources.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;

use super::Files;
use super::parse::{QuotedLines, line_of};
use crate::catalog::{self, Metric, MetricType};
use crate::check::Ctx;
use crate::check::index::{Index, metrics_port};
use crate::finding::Severity;
use crate::model::{Kind, Service, kinds, paths};

/// A scrape job as rendered: name and the metrics its targets expose.
struct Job {
    metrics: Vec<&'static Metric>,
}

/// The scrape jobs, and every series name any of them exports (looked up once per
/// selector instead of walking every job's catalog).
struct Catalogs {
    jobs: BTreeMap<String, Job>,
    series: HashSet<String>,
    names: BTreeSet<&'static str>,
}

impl Catalogs {
    /// Every job's families (each job holds the scrape metrics and its targets' catalogs).
    fn new(jobs: BTreeMap<String, Job>) -> Self {
        let mut catalogs = Catalogs {
            jobs,
            series: HashSet::new(),
            names: BTreeSet::new(),
        };
        let metrics: Vec<&'static Metric> = catalogs
            .jobs
            .values()
            .flat_map(|job| job.metrics.iter().copied())
            .collect();
        for metric in metrics {
            catalogs.names.insert(metric.name);
            catalogs.series.extend(series_names(metric));
        }
        catalogs
    }
}

/// The series names `Metric::matches` accepts.
fn series_names(metric: &Metric) -> impl Iterator<Item = String> + '_ {
    let suffixes: &[&str] = match metric.kind {
        MetricType::Histogram => &["", "_bucket", "_sum", "_count"],
        MetricType::Summary => &["", "_sum", "_count"],
        _ => &[""],
    };
    suffixes.iter().map(|s| format!("{}{s}", metric.name))
}

/// prometheus.yml as rendered, and where its findings point.
struct Config<'a> {
    /// The Prometheus service, also its directory in the tree.
    dir: &'a str,
    file: String,
    text: &'a str,
    doc: &'a Value,
    /// Model path of the Prometheus service.
    path: String,
}

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>, index: &Index<'_>) {
    let stack = cx.stack();
    let Some((prometheus_name, _)) = stack
        .services
        .iter()
        .find(|(_, s)| s.kind == Kind::Prometheus)
    else {
        return;
    };
    let file = paths::prometheus_yml(prometheus_name);
    let (Some(text), Some(doc)) = (files.text(&file), files.yaml_value(&file)) else {
        return;
    };
    let config = Config {
        dir: prometheus_name,
        file,
        text,
        doc,
        path: format!("services.{prometheus_name}"),
    };
    let catalogs = scrape_jobs(cx, &config, index);
    rule_files(cx, files, &config, index, &catalogs);
    grafana(cx, files, index, &catalogs);
}

/// The model service a scrape target `host:port` names, seen from Prometheus.
fn target_service<'a>(index: &Index<'a>, host: &str) -> Option<(&'a String, &'a Service)> {
    if host == "host.docker.internal" {
        return None;
    }
    index.first_owner(host)
}

/// The `name:port` each `dns_sd_configs` entry of a scrape job resolves (a swarm host
/// agent's tasks), scraped like a static target; the audit reads them too.
pub fn dns_targets(job: &Value) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for config in job
        .get("dns_sd_configs")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        // Without a port, an A/AAAA lookup is refused by Prometheus; 0 matches no service.
        let port = config
            .get("port")
            .and_then(|p| p.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0);
        for name in config
            .get("names")
            .and_then(|n| n.as_array())
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
        {
            out.push((name.to_string(), port));
        }
    }
    out
}

/// Incident 11: every target resolves to a model service and the port it serves metrics on.
fn scrape_jobs(cx: &mut Ctx<'_>, config: &Config<'_>, index: &Index<'_>) -> Catalogs {
    let (file, path) = (config.file.as_str(), config.path.as_str());
    let quoted = QuotedLines::new(config.text);
    let mut jobs = BTreeMap::new();
    for job in config
        .doc
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
            })
            .map(|t| {
                let target = t.as_str().unwrap_or("").to_string();
                (quoted.line_of(&target), target)
            })
            .chain(
                dns_targets(job)
                    .into_iter()
                    .map(|(name, port)| (quoted.line_of(&name), format!("{name}:{port}"))),
            );
        for (line, target) in targets {
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
                index.native_metrics(port)
            } else {
                target_service(index, host)
            };
            match resolved {
                None => cx.report_file("TG515", Severity::Error, path, file, line, format!("{file}: job `{name}` scrapes `{target}`, which is no model service's metrics endpoint"), "scrape targets are rendered from the model: re-render".into()),
                Some((service_name, service)) => {
                    let expected = metrics_port(service);
                    if expected != Some(port) {
                        cx.report_file("TG515", Severity::Error, &format!("services.{service_name}"), file, line, format!("{file}: job `{name}` scrapes {target}, but `{service_name}` serves metrics on port {}", expected.map(|p| p.to_string()).unwrap_or_else(|| "(none)".into())), "scrape the internal metrics port".into());
                    }
                    metrics.extend(kinds::service_metrics(service).iter());
                }
            }
        }
        jobs.insert(name, Job { metrics });
    }
    Catalogs::new(jobs)
}

/// Collects every vector selector: metric name and `job` matcher.
#[derive(Default)]
pub(crate) struct Selectors {
    pub found: Vec<(String, Option<String>)>,
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
            // Only `job="..."` names one job; `!=` and regex matchers do not.
            let job = v
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "job" && matches!(m.op, promql_parser::label::MatchOp::Equal))
                .map(|m| m.value.clone());
            if let Some(name) = name {
                self.found.push((name, job));
            }
        }
        Ok(true)
    }
}

/// Where an expression sits: model path, file and line, and what to call it.
struct Place<'a> {
    path: &'a str,
    file: &'a str,
    line: Option<usize>,
    what: String,
}

/// Parses `expr` and checks every metric against the jobs' catalogs (incident 21).
fn check_expr(
    cx: &mut Ctx<'_>,
    catalogs: &Catalogs,
    extra: &BTreeSet<String>,
    expr: &str,
    place: &Place<'_>,
) -> Vec<String> {
    let Place {
        path,
        file,
        line,
        what,
    } = place;
    let parsed = match promql_parser::parser::parse(expr) {
        Ok(parsed) => parsed,
        Err(error) => {
            cx.report_file(
                "TG513",
                Severity::Error,
                path,
                file,
                *line,
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
    let jobs = &catalogs.jobs;
    let mut names = Vec::new();
    for (name, job) in selectors.found {
        names.push(name.clone());
        if extra.contains(&name) {
            continue;
        }
        // A job no scrape job has matches nothing, whatever the metric.
        let known = match &job {
            Some(job) => jobs
                .get(job)
                .is_some_and(|job| job.metrics.iter().any(|m| m.matches(&name))),
            None => catalogs.series.contains(&name),
        };
        if let Some(job) = job.as_ref().filter(|j| !jobs.contains_key(*j)) {
            let scraped: Vec<String> = jobs.keys().map(|j| format!("`{j}`")).collect();
            cx.report_file("TG510", Severity::Error, path, file, *line, format!("{file}: {what} selects `{name}` of job `{job}`, which no scrape job is: it matches nothing"), format!("use one of the scraped jobs: {}", scraped.join(", ")));
            continue;
        }
        if !known {
            let scope = match &job {
                Some(job) => format!("job `{job}`"),
                None => "any scraped target".into(),
            };
            let hint = crate::suggest::did_you_mean(&name, catalogs.names.iter().copied());
            cx.report_file("TG510", Severity::Error, path, file, *line, format!("{file}: {what} uses `{name}`, which {scope} does not export"), if hint.is_empty() { "query only metrics of the catalog of a scraped target (add the exporter to the model)".into() } else { hint });
        }
    }
    names
}

/// Incident 24: a `{{ $value }}` followed by a unit word must match the metric's unit.
fn check_units(cx: &mut Ctx<'_>, metrics: &[String], text: &str, place: &Place<'_>) {
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
            let file = place.file;
            cx.report_file("TG514", Severity::Error, place.path, file, place.line, format!("{file}: annotation prints {{{{ $value }}}} as `{after}`, but the expression's unit is {}", if seconds { "seconds" } else if bytes { "bytes" } else { "not that" }), "print the value in the metric's unit, or convert with humanizeDuration / humanize1024".into());
        }
    }
}

/// TG511: every rule_files entry loads rendered files mounted into the container, and
/// every rendered rule file is loaded; then the alerts of every loaded file.
fn rule_files(
    cx: &mut Ctx<'_>,
    files: &Files<'_>,
    config: &Config<'_>,
    index: &Index<'_>,
    catalogs: &Catalogs,
) {
    let loaded = loaded_rule_files(cx, files, config);
    let rules_dir = format!("{}/rules/", config.dir);
    for file in files.paths().filter(|p| p.starts_with(&rules_dir)) {
        if !loaded.contains(file) && !file.contains("/tests/") {
            cx.report_file(
                "TG511",
                Severity::Error,
                &config.path,
                file,
                None,
                format!("{file} is rendered but no rule_files entry loads it"),
                "add it to rule_files (re-render)".into(),
            );
        }
    }
    for file in &loaded {
        alert_rules(cx, files, file, index, catalogs);
    }
}

/// The rendered files the rule_files patterns match; reports patterns that match
/// nothing or point where the container has no mount (incident 22).
fn loaded_rule_files<'a>(
    cx: &mut Ctx<'_>,
    files: &Files<'a>,
    config: &Config<'_>,
) -> BTreeSet<&'a String> {
    let (config_path, path) = (config.file.as_str(), config.path.as_str());
    let patterns = config
        .doc
        .get("rule_files")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str());
    let mut loaded = BTreeSet::new();
    let mounts = rendered_mounts(files, cx.stack().is_swarm(), config.dir);
    for pattern in patterns {
        let line = line_of(config.text, pattern);
        // Relative rule files resolve against the config file's directory.
        let in_tree = format!("{}/{pattern}", config.dir);
        let matched: Vec<&String> = files.paths().filter(|p| glob_match(&in_tree, p)).collect();
        if matched.is_empty() {
            cx.report_file("TG511", Severity::Error, path, config_path, line, format!("{config_path}: rule_files `{pattern}` matches no rendered file: those alerts never load"), "list the rendered rule files (re-render)".into());
        }
        if !mounts.is_empty() {
            let container_pattern = if pattern.starts_with('/') {
                pattern.to_string()
            } else {
                format!("/etc/prometheus/{pattern}")
            };
            // Every matched rule file is in the container where the pattern looks.
            let mounted = !matched.is_empty()
                && matched.iter().all(|m| {
                    container_path(&mounts, m).is_some_and(|c| glob_match(&container_pattern, &c))
                });
            if !mounted {
                cx.report_file("TG511", Severity::Error, path, config_path, line, format!("{config_path}: rule file {container_pattern} is not mounted into the Prometheus container"), "mount the rules directory where rule_files point".into());
            }
        }
        loaded.extend(matched);
    }
    loaded
}

/// Alert expressions and annotations of one loaded rule file.
fn alert_rules(
    cx: &mut Ctx<'_>,
    files: &Files<'_>,
    file: &str,
    index: &Index<'_>,
    catalogs: &Catalogs,
) {
    let (Some(text), Some(doc)) = (files.text(file), files.yaml_value(file)) else {
        return;
    };
    let rules: Vec<&Value> = doc
        .get("groups")
        .and_then(|g| g.as_array())
        .into_iter()
        .flatten()
        .flat_map(|g| {
            g.get("rules")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
        })
        .collect();
    let recorded: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r.get("record").and_then(|v| v.as_str()).map(String::from))
        .collect();
    let quoted = QuotedLines::new(text);
    for rule in rules {
        let name = rule
            .get("alert")
            .or_else(|| rule.get("record"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let rule_path = index
            .alert(name)
            .map(|i| format!("alerts.{i}"))
            .unwrap_or_else(|| "alerts".into());
        let Some(expr) = rule.get("expr").and_then(|v| v.as_str()) else {
            continue;
        };
        let place = Place {
            path: &rule_path,
            file,
            line: quoted.line_of(name),
            what: format!("alert `{name}`"),
        };
        let metrics = check_expr(cx, catalogs, &recorded, expr, &place);
        for key in ["summary", "description"] {
            if let Some(annotation) = rule
                .pointer(&format!("/annotations/{key}"))
                .and_then(|v| v.as_str())
            {
                check_units(cx, &metrics, annotation, &place);
            }
        }
    }
}

/// The rendered files mounted into a container, from the file the target deploys:
/// (tree path, container path) of compose bind mounts (`./dir` -> `/target`) or of the
/// swarm stack's configs (one file each).
fn rendered_mounts(files: &Files<'_>, swarm: bool, service: &str) -> Vec<(String, String)> {
    if swarm {
        return swarm_config_mounts(files, service);
    }
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

/// A service's configs in swarm/stack.yml: the file each top-level config names
/// (relative to `swarm/`) and where the service mounts it.
fn swarm_config_mounts(files: &Files<'_>, service: &str) -> Vec<(String, String)> {
    let Some(doc) = files.yaml_value(crate::model::paths::SWARM_STACK) else {
        return Vec::new();
    };
    doc.pointer(&format!("/services/{service}/configs"))
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let key = m.get("source")?.as_str()?;
            let target = m.get("target")?.as_str()?.to_string();
            let file = doc.pointer(&format!("/configs/{key}/file"))?.as_str()?;
            Some((file.strip_prefix("../")?.to_string(), target))
        })
        .collect()
}

/// Where `file` of the tree appears in the container, through a mount of the file
/// itself or of a directory above it.
fn container_path(mounts: &[(String, String)], file: &str) -> Option<String> {
    mounts.iter().find_map(|(source, target)| {
        if file == source {
            return Some(target.clone());
        }
        let rest = file.strip_prefix(source.as_str())?.strip_prefix('/')?;
        Some(format!("{}/{rest}", target.trim_end_matches('/')))
    })
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
fn grafana(cx: &mut Ctx<'_>, files: &Files<'_>, index: &Index<'_>, catalogs: &Catalogs) {
    let stack = cx.stack();
    let Some((name, service)) = stack.services.iter().find(|(_, s)| s.kind == Kind::Grafana) else {
        return;
    };
    let path = format!("services.{name}");
    let mounts = rendered_mounts(files, stack.is_swarm(), name);
    let provider_paths = dashboard_providers(cx, files, name, &path);
    for file in files
        .paths()
        .filter(|p| p.starts_with(&format!("{name}/")) && p.ends_with(".json"))
    {
        if file.contains("/provisioning/") {
            continue;
        }
        let reachable = container_path(&mounts, file).is_some_and(|c| {
            provider_paths
                .iter()
                .any(|p| c.starts_with(&format!("{}/", p.trim_end_matches('/'))))
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
        dashboard_queries(cx, files, file, &path, catalogs);
    }
    datasources(cx, files, index, name, service, &path);
}

/// The paths the dashboard providers load; a dashboard among the provider files
/// themselves is never loaded.
fn dashboard_providers(
    cx: &mut Ctx<'_>,
    files: &Files<'_>,
    grafana: &str,
    path: &str,
) -> Vec<String> {
    let mut provider_paths = Vec::new();
    for file in files.paths().filter(|p| {
        p.starts_with(&format!(
            "{}/",
            paths::grafana_dashboard_provisioning_dir(grafana)
        ))
    }) {
        if file.ends_with(".json") {
            cx.report_file(
                "TG512",
                Severity::Error,
                path,
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
    provider_paths
}

/// The PromQL of every panel of one dashboard.
fn dashboard_queries(
    cx: &mut Ctx<'_>,
    files: &Files<'_>,
    file: &str,
    path: &str,
    catalogs: &Catalogs,
) {
    let Some(text) = files.text(file) else {
        return;
    };
    let Ok(dashboard) = serde_json::from_str::<Value>(text) else {
        cx.report_file(
            "TG022",
            Severity::Error,
            path,
            file,
            None,
            format!("{file} is not valid JSON"),
            "re-render".into(),
        );
        return;
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
                let place = Place {
                    path,
                    file,
                    line: line_of(text, &format!("\"title\": \"{title}\"")),
                    what: format!("panel `{title}`"),
                };
                check_expr(cx, catalogs, &BTreeSet::new(), expr, &place);
            }
        }
    }
}

/// Incident 12: datasource URLs reach a model service on its internal port, with a role
/// and credentials the Grafana container really has.
fn datasources(
    cx: &mut Ctx<'_>,
    files: &Files<'_>,
    index: &Index<'_>,
    name: &str,
    grafana: &Service,
    path: &str,
) {
    let stack = cx.stack();
    // What the container gets: its environment's names, and in a swarm the paths of
    // the secrets mounted into it.
    let deployed = if stack.is_swarm() {
        crate::model::paths::SWARM_STACK
    } else {
        super::compose::FILE
    };
    let listed = |key: &str| -> BTreeSet<String> {
        let Some(doc) = files.yaml_value(deployed) else {
            return BTreeSet::new();
        };
        match doc.pointer(&format!("/services/{name}/{key}")) {
            Some(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|m| m.get("target")?.as_str().map(str::to_string))
                .collect(),
            _ => BTreeSet::new(),
        }
    };
    let compose_env = listed("environment");
    let secret_paths = listed("secrets");
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
            match target_service(index, host) {
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
            let secrets = source.get("secureJsonData").and_then(|v| v.as_object());
            for (key, value) in secrets.into_iter().flatten() {
                let value = value.as_str().unwrap_or("");
                let given = Given {
                    env: &compose_env,
                    secret_paths: &secret_paths,
                };
                secure_value(cx, path, file, text, ds_name, key, value, &given);
            }
        }
    }
}

/// What the Grafana container is given: environment variables and secret files.
struct Given<'a> {
    env: &'a BTreeSet<String>,
    secret_paths: &'a BTreeSet<String>,
}

/// A secureJsonData value is a variable or a secret file the Grafana container gets,
/// never a literal.
#[allow(clippy::too_many_arguments)]
fn secure_value(
    cx: &mut Ctx<'_>,
    path: &str,
    file: &str,
    text: &str,
    ds_name: &str,
    key: &str,
    value: &str,
    given: &Given<'_>,
) {
    // `$__file{PATH}`: Grafana reads the secret file a swarm mounts.
    if let Some(secret) = value
        .strip_prefix("$__file{")
        .and_then(|v| v.strip_suffix('}'))
    {
        if !given.secret_paths.contains(secret) {
            cx.report_file("TG516", Severity::Error, path, file, line_of(text, value), format!("{file}: datasource `{ds_name}` reads {secret}, which is no secret of the Grafana container"), "mount the secret into the service (re-render)".into());
        }
        return;
    }
    let compose_env = given.env;
    let var = value.strip_prefix("${").and_then(|v| v.strip_suffix('}'));
    match var {
        None => cx.report_file("TG104", Severity::Error, path, file, line_of(text, value), format!("{file}: datasource `{ds_name}` {key} is a literal value"), "reference the secret's variable as ${VAR}".into()),
        Some(var) if !compose_env.contains(var) => cx.report_file("TG516", Severity::Error, path, file, line_of(text, value), format!("{file}: datasource `{ds_name}` reads ${{{var}}}, which the Grafana container does not get"), "pass the variable in the container's environment (re-render)".into()),
        Some(_) => {}
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
