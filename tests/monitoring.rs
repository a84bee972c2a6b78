//! The monitoring layer proven with the real programs: promtool accepts the rendered
//! config and rules and runs the rendered unit tests (every alert fires in one), the
//! dashboards validate against Grafana's dashboard schema, provisioning YAML re-parses
//! strictly, every query reads catalog metrics of a scrape job, the postgres-exporter
//! custom queries run on PostgreSQL as the read-only role, and the model rules reject
//! alerts nothing could fire.

use crate::support::{load, own_roles, render_tree, root};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value as Json;
use testkit::{Scratch, psql_args, require_local_postgres, unique};
use tgstack::catalog;
use tgstack::model::kinds;
use tgstack::model::{Kind, Model, PostgresVariant};
use tgstack::render::{grafana, prometheus, sql};
use tgstack::tree::Tree;

/// Writes the tree into a fresh temp dir.
fn write_tree(tree: &Tree) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, bytes) in tree {
        let target = dir.path().join(path);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(target, bytes).expect("write rendered file");
    }
    dir
}

fn text<'a>(tree: &'a Tree, path: &str) -> &'a str {
    std::str::from_utf8(
        tree.get(path)
            .unwrap_or_else(|| panic!("{path} is not rendered")),
    )
    .expect("utf-8")
}

fn promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs (run: bash scripts/test-env.sh)")
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn yaml(text: &str) -> Json {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("YAML does not re-parse: {e}\n{text}"))
}

fn rule_paths(tree: &Tree) -> Vec<String> {
    tree.keys()
        .filter(|p| p.starts_with("prometheus/rules/"))
        .cloned()
        .collect()
}

#[test]
fn promtool_accepts_config_and_rules_and_every_alert_fires_in_its_test() {
    let fired = every_rendered_alert_fires(&load(""));
    // The read cache is off in the reference: its hit-rate alert is not rendered.
    assert_eq!(
        fired.len(),
        8,
        "the reference stack renders 8 alerts: {fired:?}"
    );
    assert!(!fired.contains("LowReadCacheHitRate"), "{fired:?}");
}

#[test]
fn the_read_cache_alert_and_panels_render_while_the_cache_is_on() {
    let on = load("[services.gateway-api.api.cache]\nenabled = true\n");
    let fired = every_rendered_alert_fires(&on);
    assert!(fired.contains("LowReadCacheHitRate"), "{fired:?}");
    let dashboard = |model| {
        let tree = render_tree(model);
        text(&tree, "grafana/dashboards/tg-gateway.json").to_string()
    };
    let panels = dashboard(&on);
    assert!(
        panels.contains("Read cache hit rate") && panels.contains("tg_api_cache_misses_total"),
        "{panels}"
    );
    assert!(!dashboard(&load("")).contains("Read cache"));
}

/// promtool accepts the rendered config and rules, and every rendered alert has a case
/// that fires it; returns the names of those alerts.
fn every_rendered_alert_fires(model: &tgstack::model::Model) -> BTreeSet<String> {
    let tree = render_tree(model);
    let dir = write_tree(&tree);
    let prom = dir.path().join("prometheus");

    // rule_files resolve relative to prometheus.yml: here and in the container, where
    // rules/ is mounted next to it.
    let config = promtool(&prom, &["check", "config", "prometheus.yml"]);
    assert_ok(&config, "promtool check config");
    let rules = rule_paths(&tree);
    assert!(!rules.is_empty(), "no rule file rendered");
    let relative: Vec<&str> = rules
        .iter()
        .map(|p| p.trim_start_matches("prometheus/"))
        .collect();
    let mut args = vec!["check", "rules"];
    args.extend(relative.iter().copied());
    assert_ok(&promtool(&prom, &args), "promtool check rules");

    let tests = promtool(&prom, &["test", "rules", "tests/alerts.test.yml"]);
    assert_ok(&tests, "promtool test rules");

    // Every alert of the model has a case that expects it to fire.
    let unit = yaml(text(&tree, "prometheus/tests/alerts.test.yml"));
    let mut fired = BTreeSet::new();
    for group in unit["tests"].as_array().expect("tests") {
        for check in group["alert_rule_test"]
            .as_array()
            .expect("alert_rule_test")
        {
            if check["exp_alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                fired.insert(check["alertname"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    let rendered: BTreeSet<String> = model
        .built_alerts()
        .iter()
        .flatten()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(fired, rendered, "alerts without a firing test case");
    fired
}

#[test]
fn the_rendered_tests_fail_when_a_rule_changes() {
    let tree = render_tree(&load(""));
    let dir = write_tree(&tree);
    let prom = dir.path().join("prometheus");
    // Make the ingestion lag alert ten times less sensitive: its firing case must fail.
    let path = prom.join("rules/critical.yml");
    let original = std::fs::read_to_string(&path).expect("read rules");
    assert!(
        original.contains("> 300"),
        "lag threshold not found:\n{original}"
    );
    std::fs::write(&path, original.replace("> 300", "> 3000")).expect("write rules");
    let output = promtool(&prom, &["test", "rules", "tests/alerts.test.yml"]);
    assert!(
        !output.status.success(),
        "promtool test rules passed on a changed rule"
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("HighIngestionLag"), "{report}");
}

#[test]
fn rule_files_and_scrape_targets_match_the_model() {
    let model = load("");
    let stack = &model.stack;
    let tree = render_tree(&model);
    let config = yaml(text(&tree, "prometheus/prometheus.yml"));
    assert_eq!(config["global"]["scrape_interval"], "15s");
    assert_eq!(config["global"]["evaluation_interval"], "15s");
    let listed: Vec<String> = config["rule_files"]
        .as_array()
        .expect("rule_files")
        .iter()
        .map(|f| format!("prometheus/{}", f.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        listed,
        rule_paths(&tree),
        "rule_files differ from the rendered rules"
    );

    let mut jobs = BTreeMap::new();
    for job in config["scrape_configs"].as_array().expect("scrape_configs") {
        let name = job["job_name"].as_str().expect("job_name").to_string();
        let target = job["static_configs"][0]["targets"][0]
            .as_str()
            .expect("target")
            .to_string();
        jobs.insert(
            name,
            (
                target,
                job["metrics_path"].as_str().unwrap_or_default().to_string(),
            ),
        );
    }
    let expected: BTreeSet<&str> = [
        "tg-gateway",
        "gateway-api",
        "rabbitmq",
        "postgres-exporter",
        "redis-exporter",
        "pgbouncer-exporter",
        "node-exporter",
        "cadvisor",
    ]
    .into();
    assert_eq!(
        jobs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );
    // Internal metrics ports (incident 6, 11); the native gateway through the host.
    assert_eq!(jobs["tg-gateway"].0, "host.docker.internal:4007");
    assert_eq!(jobs["gateway-api"].0, "gateway-api:4010");
    assert_eq!(
        jobs["rabbitmq"],
        ("rabbitmq:15692".into(), "/metrics/per-object".into())
    );
    assert_eq!(jobs["postgres-exporter"].0, "postgres-exporter:9187");
    for (name, (target, _)) in &jobs {
        let service = &stack.services[name];
        let (port, _) = kinds::scrape_endpoint(service).expect("scraped service exposes metrics");
        assert!(
            target.ends_with(&format!(":{port}")),
            "{name} scraped at {target}, metrics on {port}"
        );
    }
    // 30 d retention from the model, on the Prometheus command line.
    let compose = text(&tree, "docker-compose.yml");
    assert!(compose.contains("--storage.tsdb.retention.time=30d"));
}

#[test]
fn compose_mounts_what_the_monitoring_renderers_write() {
    let tree = render_tree(&load(""));
    let compose = yaml(text(&tree, "docker-compose.yml"));
    let services = compose["services"].as_object().expect("services");
    let mut checked = 0;
    for name in ["prometheus", "grafana", "postgres-exporter"] {
        for mount in services[name]["volumes"].as_array().expect("volumes") {
            let Some(source) = mount["source"].as_str().and_then(|s| s.strip_prefix("./")) else {
                continue;
            };
            let is_file = tree.contains_key(source);
            let is_dir = tree.keys().any(|p| p.starts_with(&format!("{source}/")));
            assert!(
                is_file || is_dir,
                "{name} mounts ./{source}, which is not rendered"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 5,
        "mounts: prometheus.yml, rules/, provisioning/, dashboards/, queries.yaml"
    );
    let exporter = &services["postgres-exporter"]["command"];
    assert!(
        exporter.as_array().is_some_and(|c| c
            .iter()
            .any(|a| a == "--extend.query-path=/etc/postgres-exporter/queries.yaml")),
        "custom queries not enabled: {exporter}"
    );
    let plugins = &services["grafana"]["environment"]["GF_INSTALL_PLUGINS"];
    assert_eq!(plugins, "redis-datasource 2.2.0");
    assert!(
        services["prometheus"]["extra_hosts"]
            .as_array()
            .is_some_and(|h| h.iter().any(|x| x == "host.docker.internal:host-gateway"))
    );
}

#[test]
fn dashboards_validate_against_the_grafana_schema() {
    let schema_path = root().join("../shared/oracles/schemas/grafana-dashboard-v1.jsonschema.json");
    let schema: Json = serde_json::from_str(
        &std::fs::read_to_string(&schema_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", schema_path.display())),
    )
    .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let tree = render_tree(&load(""));
    let dashboards: Vec<&String> = tree
        .keys()
        .filter(|p| p.starts_with("grafana/dashboards/"))
        .collect();
    let uids: BTreeSet<&str> = dashboards
        .iter()
        .map(|p| {
            p.trim_start_matches("grafana/dashboards/")
                .trim_end_matches(".json")
        })
        .collect();
    assert_eq!(
        uids,
        [
            "tg-database",
            "tg-gateway",
            "tg-overview",
            "tg-rabbitmq",
            "tg-redis",
            "tg-slo"
        ]
        .into()
    );
    for path in dashboards {
        let dashboard: Json = serde_json::from_str(text(&tree, path)).expect("dashboard is JSON");
        let errors: Vec<String> = validator
            .iter_errors(&dashboard)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{path}:\n{}", errors.join("\n"));
        for panel in dashboard["panels"].as_array().expect("panels") {
            let kind = panel["type"].as_str().unwrap_or_default();
            assert!(
                kind == "timeseries" || kind == "stat",
                "{path}: legacy panel type {kind}"
            );
            assert!(!panel["targets"].as_array().expect("targets").is_empty());
        }
    }
    // The schema rejects what Grafana would not load: a legacy graph panel fails.
    let legacy = serde_json::json!({
        "schemaVersion": 39, "templating": {"list": []}, "annotations": {"list": []},
        "panels": [{"type": "graph", "yaxes": []}]
    });
    assert!(!validator.is_valid(&legacy));
}

#[test]
fn provisioning_reparses_strictly_and_holds_no_secret() {
    let model = load("");
    let tree = render_tree(&model);
    let datasources = yaml(text(
        &tree,
        "grafana/provisioning/datasources/datasources.yml",
    ));
    let by_uid: BTreeMap<&str, &Json> = datasources["datasources"]
        .as_array()
        .expect("datasources")
        .iter()
        .map(|d| (d["uid"].as_str().unwrap_or_default(), d))
        .collect();
    assert_eq!(
        by_uid.keys().copied().collect::<Vec<_>>(),
        ["database", "prometheus", "redis"]
    );
    assert_eq!(by_uid["prometheus"]["url"], "http://prometheus:9090");
    // The database through PgBouncer's internal port, as the read-only role (incident 12).
    let db = by_uid["database"];
    assert_eq!(db["url"], "pgbouncer:6432");
    assert_eq!(db["user"], "grafana_ro");
    assert_eq!(db["jsonData"]["database"], "telegram");
    assert_eq!(
        db["secureJsonData"]["password"],
        "${TG_DB_READONLY_PASSWORD}"
    );
    assert_eq!(
        by_uid["redis"]["secureJsonData"]["password"],
        "${TG_REDIS_PASSWORD}"
    );
    // Grafana gets those variables from compose.
    let compose = yaml(text(&tree, "docker-compose.yml"));
    let env = &compose["services"]["grafana"]["environment"];
    assert!(env["TG_DB_READONLY_PASSWORD"].is_string() && env["TG_REDIS_PASSWORD"].is_string());

    let providers = yaml(text(
        &tree,
        "grafana/provisioning/dashboards/dashboards.yml",
    ));
    assert_eq!(
        providers["providers"][0]["options"]["path"],
        grafana::DASHBOARDS_DIR
    );
    // No dashboard JSON in the provisioning folder (incident 23).
    assert!(
        !tree
            .keys()
            .any(|p| p.starts_with("grafana/provisioning/") && p.ends_with(".json"))
    );
    for path in tree.keys().filter(|p| {
        (p.starts_with("prometheus/")
            || p.starts_with("grafana/provisioning/")
            || p.starts_with("postgres-exporter/"))
            && (p.ends_with(".yml") || p.ends_with(".yaml"))
    }) {
        let parsed = yaml(text(&tree, path));
        assert!(parsed.is_object(), "{path} is not a mapping");
    }
    // serde-saphyr is the strict oracle: a duplicate key is an error.
    assert!(serde_saphyr::from_str::<Json>("a: 1\na: 2\n").is_err());
}

/// Metric names and `job` values of the vector selectors of a query.
#[derive(Default)]
struct Selectors(Vec<(String, Vec<String>)>);

impl ExprVisitor for Selectors {
    type Error = String;
    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        let mut name = vs.name.clone();
        let mut jobs = Vec::new();
        for m in &vs.matchers.matchers {
            match (&m.op, m.name.as_str()) {
                (MatchOp::Equal, "__name__") => name = Some(m.value.clone()),
                (MatchOp::Equal, "job") => jobs.push(m.value.clone()),
                (MatchOp::Re(_), "job") => jobs.extend(m.value.split('|').map(str::to_string)),
                _ => {}
            }
        }
        self.0
            .push((name.ok_or("selector without a metric name")?, jobs));
        Ok(true)
    }
}

fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let parsed = parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL: {e}\n{expr}"));
    let mut visitor = Selectors::default();
    walk_expr(&mut visitor, &parsed).expect("walk");
    visitor.0
}

#[test]
fn every_alert_and_dashboard_query_reads_catalog_metrics_of_its_job() {
    let model = load("");
    let stack = &model.stack;
    let mut queries: Vec<(String, String)> = model
        .built_alerts()
        .iter()
        .flatten()
        .map(|a| (format!("alert {}", a.name), a.expr.clone()))
        .collect();
    queries.extend(
        grafana::dashboard_queries(stack)
            .into_iter()
            .map(|(uid, title, expr)| (format!("{uid} / {title}"), expr)),
    );
    assert!(queries.len() > 50, "only {} queries", queries.len());
    for (what, expr) in &queries {
        for (metric, jobs) in selectors(expr) {
            if catalog::find(catalog::SCRAPE, &metric).is_some() {
                continue;
            }
            assert!(
                !jobs.is_empty(),
                "{what}: {metric} is not limited to a scrape job"
            );
            for job in jobs {
                let kind = stack.services.get(&job).map(|s| s.kind);
                let kind = kind.unwrap_or_else(|| panic!("{what}: job {job} is no service"));
                assert!(
                    catalog::find(kind.metrics(), &metric).is_some(),
                    "{what}: {metric} is not in the catalog of {job} ({})",
                    kind.as_str()
                );
            }
        }
    }
    // The custom queries file defines exactly the custom catalog families.
    let families: BTreeSet<String> = prometheus::custom_queries("telegram", PostgresVariant::Plain)
        .iter()
        .flat_map(|q| {
            q.columns
                .iter()
                .filter(|c| c.usage != "LABEL")
                .map(move |c| format!("{}_{}", q.name, c.name))
        })
        .collect();
    let catalog_custom: BTreeSet<String> = catalog::postgres_exporter::CUSTOM
        .iter()
        .map(|m| m.name.to_string())
        .collect();
    assert_eq!(families, catalog_custom);
    assert!(Kind::Redis.metrics().is_empty());
}

#[test]
fn custom_queries_run_on_postgresql_as_the_readonly_role() {
    require_local_postgres();
    let mut model = load("");
    let suffix = unique("m");
    own_roles(&mut model, "timescaledb", &suffix);
    let readonly = format!("grafana_ro_{suffix}");
    let scratch = Scratch::create(
        unique("tgstack_mon"),
        vec![format!("tg_app_{suffix}"), readonly.clone()],
    );
    let db = scratch.database.as_str();
    let dir = tempfile::tempdir().expect("temp dir");
    let files =
        sql::migration(&model.stack, "timescaledb", PostgresVariant::Plain).expect("migration");
    for (name, text) in &files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write migration");
        psql_args(
            db,
            &["--single-transaction", "-f", path.to_str().expect("utf-8")],
        );
    }
    psql_args(
        db,
        &[
            "-c",
            "SELECT telegram.upsert_message(-1001234567890, 7, now() - interval '90 seconds', 'hi', '{}'::jsonb)",
        ],
    );
    for query in prometheus::custom_queries("telegram", PostgresVariant::Plain) {
        let statement = format!("SET ROLE \"{readonly}\"; {}", query.sql);
        let rows = psql_args(db, &["-F", "|", "-c", &statement]);
        assert!(!rows.is_empty(), "{} returned no row", query.name);
        if query.name == "tg_channel" {
            let row = rows
                .lines()
                .find(|l| l.starts_with("-1001234567890|"))
                .unwrap_or_else(|| panic!("no row for the seeded channel:\n{rows}"));
            let age: f64 = row
                .rsplit('|')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("age");
            assert!(
                (80.0..3600.0).contains(&age),
                "age {age} of a 90 s old message"
            );
        }
    }
}

fn codes(model: &Model) -> Vec<(String, String)> {
    tgstack::check::check_model(model)
        .into_iter()
        .map(|f| (f.rule.to_string(), f.path.clone()))
        .collect()
}

#[test]
fn the_reference_model_has_no_monitoring_findings() {
    let found = codes(&load(""));
    assert!(
        !found.iter().any(|(rule, _)| rule.starts_with("TG50")),
        "{found:?}"
    );
}

#[test]
fn an_alert_without_its_exporter_cannot_be_declared() {
    // Remove the node exporter the disk alert reads: TG501 at the alert.
    let mut model = load("");
    model.stack.services.remove("node-exporter");
    let found = codes(&model);
    assert!(
        found.contains(&("TG501".into(), "alerts.6.kind".into())),
        "{found:?}"
    );
    // Point the pool alert at a Redis: wrong kind.
    let mut model = load("");
    model.stack.alerts[3].service = Some("redis-master".into());
    assert!(codes(&model).contains(&("TG501".into(), "alerts.3.service".into())));
    // Remove the pgbouncer exporter: the pool alert has no source.
    let mut model = load("");
    model.stack.services.remove("pgbouncer-exporter");
    assert!(codes(&model).contains(&("TG501".into(), "alerts.3.service".into())));
}

#[test]
fn invalid_alerts_and_loopback_native_targets_are_reported() {
    let found = codes(&load(
        r#"
[services.tg-gateway]
listen = "127.0.0.1"

[[alerts]]
name = "LowDiskSpace"
kind = "disk-space"
severity = "warning"
threshold = 10

[[alerts]]
name = "LowDiskSpace"
kind = "disk-space"
severity = "warning"

[[alerts]]
name = "broken rule"
kind = "custom"
severity = "info"
expr = "sum(rate(up[5m])"
summary = "s"
description = "d"

[[alerts]]
name = "ApiErrors"
kind = "custom"
severity = "warning"
expr = "sum(rate(tg_api_http_requests_total{status=~\"5..\"}[5m])) > 1"
summary = "API errors"
description = "{{ $value }} errors per second"
"#,
    ));
    let has = |rule: &str, path: &str| found.contains(&(rule.to_string(), path.to_string()));
    assert!(has("TG503", "services.tg-gateway.listen"), "{found:?}");
    // An overlay's [[alerts]] replaces the model's list.
    assert!(has("TG502", "alerts.0.threshold"), "{found:?}");
    assert!(has("TG502", "alerts.1.name"), "duplicate name: {found:?}");
    assert!(has("TG502", "alerts.2.name"), "{found:?}");
    assert!(has("TG502", "alerts.2.expr"), "{found:?}");
    assert!(has("TG504", "alerts.3"), "{found:?}");
    assert!(!has("TG502", "alerts.3.expr"), "{found:?}");
}

/// A custom alert with its own test case renders into the rules and the unit tests, and
/// promtool agrees with the expected expansion. (An overlay's [[alerts]] replaces the
/// reference alerts.)
#[test]
fn custom_alerts_render_with_their_test() {
    let overlay = r#"
[[alerts]]
name = "ApiErrors"
kind = "custom"
severity = "warning"
for = "1m"
expr = "sum by (route) (rate(tg_api_http_requests_total{job=\"gateway-api\", status=~\"5..\"}[1m])) > 0.5"
summary = "API errors on {{ $labels.route }}"
description = "{{ $value }} errors per second on {{ $labels.route }}"

[alerts.test]
input = [{ series = "tg_api_http_requests_total{job=\"gateway-api\", route=\"/messages\", status=\"500\"}", values = "0+15x20" }]
eval_time = "3m"
labels = { route = "/messages" }
summary = "API errors on /messages"
description = "1 errors per second on /messages"
"#;
    let model = load(overlay);
    let found = codes(&model);
    assert!(
        !found.iter().any(|(r, _)| r.starts_with("TG50")),
        "{found:?}"
    );
    let tree = render_tree(&model);
    assert!(text(&tree, "prometheus/rules/warning.yml").contains("alert: \"ApiErrors\""));
    let dir = write_tree(&tree);
    let prom = dir.path().join("prometheus");
    assert_ok(
        &promtool(&prom, &["check", "rules", "rules/warning.yml"]),
        "promtool check rules",
    );
    assert_ok(
        &promtool(&prom, &["test", "rules", "tests/alerts.test.yml"]),
        "promtool test rules",
    );
}

/// 200 typed alerts (the size of the benchmark model) render, pass the model rules and
/// `promtool check rules`, and each gets a unit test. (promtool runs every rule at every
/// step of every test group, so running those 200 tests takes over a minute; the
/// reference alerts' tests run above.)
#[test]
fn two_hundred_alerts_render_and_pass_promtool_check() {
    let mut overlay = String::new();
    // Names and thresholds vary; the services watched are the model's.
    for i in 0..200 {
        let (kind, extra) = match i % 4 {
            0 => (
                "queue-backlog",
                format!("service = \"rabbitmq\"\nthreshold = {}", 100 + i),
            ),
            1 => (
                "ingestion-lag",
                format!("service = \"tg-gateway\"\nthreshold = {}", 60 + i),
            ),
            2 => ("memory-high", format!("threshold = 0.{:02}", 50 + i % 49)),
            _ => ("service-down", "service = \"redis-exporter\"".to_string()),
        };
        overlay.push_str(&format!(
            "\n[[alerts]]\nname = \"Generated{i}\"\nkind = \"{kind}\"\nseverity = \"info\"\nfor = \"{}m\"\n{extra}\n",
            1 + i % 5
        ));
    }
    let model = load(&overlay);
    let found = codes(&model);
    assert!(
        !found.iter().any(|(r, _)| r.starts_with("TG50")),
        "{found:?}"
    );
    let tree = render_tree(&model);
    let dir = write_tree(&tree);
    let prom = dir.path().join("prometheus");
    assert_ok(
        &promtool(&prom, &["check", "rules", "rules/info.yml"]),
        "promtool check rules (200 alerts)",
    );
    let unit = yaml(text(&tree, "prometheus/tests/alerts.test.yml"));
    assert_eq!(unit["tests"].as_array().map(Vec::len), Some(200));
}

/// Ports, hosts and users in the runbooks' commands: (ports, users).
fn runbook_references(text: &str) -> (BTreeSet<u16>, BTreeSet<String>) {
    let mut ports = BTreeSet::new();
    let mut users = BTreeSet::new();
    let words: Vec<&str> = text.split_whitespace().collect();
    for (index, word) in words.iter().enumerate() {
        let word = word.trim_matches(|c| c == '"' || c == '`');
        if word == "-p"
            && let Some(port) = words.get(index + 1).and_then(|p| p.parse().ok())
        {
            ports.insert(port);
        }
        if let Some(port) = word.strip_prefix("port=").and_then(|p| p.parse().ok()) {
            ports.insert(port);
        }
        if let Some(user) = word.strip_prefix("user=") {
            users.insert(user.to_string());
        }
        if let Some(rest) = word.strip_prefix("http://") {
            let authority = rest.split('/').next().unwrap_or_default();
            if let Some(port) = authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
                ports.insert(port);
            }
        }
    }
    (ports, users)
}

#[test]
fn every_alert_links_its_runbook_whose_commands_use_the_models_ports_and_users() {
    let model = load("");
    let tree = render_tree(&model);
    let stack = &model.stack;
    // Every port the host reaches a service on (its own, published, or an instance's),
    // and every user the model declares.
    let mut known_ports = BTreeSet::new();
    let mut known_users = BTreeSet::new();
    for (name, service) in &stack.services {
        for instance in stack.instances(name, service) {
            known_ports.insert(instance.port);
            known_ports.extend(instance.publish);
        }
        if let Some(pg) = &service.postgres {
            known_users.extend(pg.roles.keys().cloned());
            known_users.insert(pg.superuser.clone());
        }
        if let Some(b) = &service.pgbouncer {
            known_users.insert(b.admin.user.clone());
            known_users.extend(b.stats.iter().map(|u| u.user.clone()));
        }
    }
    let mut all_ports = BTreeSet::new();
    for built in model.built_alerts().iter().flatten() {
        let link = &built.annotations["runbook_url"];
        let page = format!("runbooks/{}.md", built.name);
        assert!(
            link.ends_with(&format!("/{page}")),
            "{}: {link}",
            built.name
        );
        let text = std::str::from_utf8(tree.get(&page).unwrap_or_else(|| panic!("{page} missing")))
            .unwrap();
        assert!(text.contains("## How to check"), "{page} has no checks");
        assert!(!text.contains("{{"), "{page} prints a template: {text}");
        let (ports, users) = runbook_references(text);
        assert!(
            ports.is_subset(&known_ports),
            "{page}: ports {ports:?} not in the model"
        );
        assert!(
            users.is_subset(&known_users),
            "{page}: users {users:?} not in the model"
        );
        all_ports.extend(ports);
    }
    // The commands do reach the stack: Prometheus, PgBouncer, Redis and a Sentinel.
    for port in [9090, 6434, 6379, 26379] {
        assert!(
            all_ports.contains(&port),
            "no runbook uses port {port}: {all_ports:?}"
        );
    }
    // The commands are sound shell (shellcheck, from Debian's package).
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("runbooks.sh");
    let mut commands = String::from("#!/bin/bash\n");
    for (path, bytes) in &tree {
        if !path.starts_with("runbooks/") {
            continue;
        }
        let mut in_sh = false;
        for line in std::str::from_utf8(bytes).unwrap().lines() {
            match line.trim() {
                "```sh" => in_sh = true,
                "```" => in_sh = false,
                command if in_sh => commands.push_str(&format!("{command}\n")),
                _ => {}
            }
        }
    }
    std::fs::write(&script, &commands).unwrap();
    let checked = std::process::Command::new("shellcheck")
        .arg(&script)
        .output()
        .expect("shellcheck is installed (bash scripts/test-env.sh)");
    assert!(
        checked.status.success(),
        "{}\n{commands}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let index = std::str::from_utf8(&tree["runbooks/README.md"]).unwrap();
    assert!(index.contains("[RedisDown](RedisDown.md)"), "{index}");
    // They follow the model: PgBouncer published elsewhere, the runbook says so.
    let moved = render_tree(&load("[services.pgbouncer]\npublish = 6999\n"));
    let page = std::str::from_utf8(&moved["runbooks/PgbouncerPoolExhausted.md"]).unwrap();
    assert!(
        page.contains("port=6999 dbname=pgbouncer user=pgbouncer_stats"),
        "{page}"
    );
}
