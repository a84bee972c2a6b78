//! Grafana provisioning: datasources (Prometheus; the database through its pooler with the
//! read-only role; Redis), one dashboard provider, and the dashboards, all from the model.
//! Every PromQL query reads catalog metrics of a scrape job of the model; SQL panels read
//! the tables of the SQL contract.

use minijinja::context;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::Output;
use super::monitoring::{promql_str, scrape_jobs};
use crate::model::{Kind, Model, Service, Stack, paths};

/// The redis datasource plugin, pinned; installed through `GF_INSTALL_PLUGINS`.
pub const REDIS_PLUGIN: &str = "redis-datasource";
pub const REDIS_PLUGIN_VERSION: &str = "2.2.0";
/// Where the provider reads dashboards inside the container (the compose mount target).
pub const DASHBOARDS_DIR: &str = "/var/lib/grafana/dashboards";

const PROMETHEUS_UID: &str = "prometheus";
const SQL_UID: &str = "database";
const REDIS_UID: &str = "redis";

/// A datasource of the provisioning file.
#[derive(Debug, Serialize)]
pub struct Datasource {
    pub name: String,
    pub uid: &'static str,
    pub kind: &'static str,
    pub url: String,
    pub user: Option<String>,
    pub is_default: bool,
    /// `jsonData`, as `(key, YAML scalar already quoted or numeric)` pairs.
    pub json_data: Vec<(&'static str, Json)>,
    /// `secureJsonData.password` as a Grafana environment reference, never a value.
    pub password_env: Option<String>,
}

/// `GF_INSTALL_PLUGINS` of a Grafana service: the plugins its datasources need.
pub fn install_plugins(service: &Service) -> Option<String> {
    service
        .grafana
        .as_ref()
        .and_then(|g| g.redis.as_ref())
        .map(|_| format!("{REDIS_PLUGIN} {REDIS_PLUGIN_VERSION}"))
}

pub fn datasources(stack: &Stack, grafana: &Service) -> Vec<Datasource> {
    let Some(g) = &grafana.grafana else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(endpoint) = stack.reach(grafana, &g.prometheus) {
        let interval = stack
            .service(&g.prometheus)
            .and_then(|p| p.prometheus.as_ref())
            .map(|p| p.scrape_interval.prometheus())
            .unwrap_or_else(|| "15s".into());
        out.push(Datasource {
            name: "Prometheus".into(),
            uid: PROMETHEUS_UID,
            kind: "prometheus",
            url: format!("http://{endpoint}"),
            user: None,
            is_default: true,
            json_data: vec![
                ("httpMethod", json!("POST")),
                ("timeInterval", json!(interval)),
                ("queryTimeout", json!(g.query_timeout.prometheus())),
            ],
            password_env: None,
        });
    }
    if let (Ok(endpoint), Some((_, pg))) = (
        stack.reach(grafana, &g.database),
        stack.database_of(&g.database),
    ) {
        let password_env = pg
            .roles
            .get(&g.db_role)
            .and_then(|r| stack.secrets.get(&r.password.secret))
            .map(|s| format!("${{{}}}", s.env));
        let major = stack
            .service(&g.database)
            .and_then(|s| s.image.as_deref())
            .and_then(pg_major)
            .unwrap_or(16);
        out.push(Datasource {
            name: "TimescaleDB".into(),
            uid: SQL_UID,
            kind: "grafana-postgresql-datasource",
            url: endpoint.to_string(),
            user: Some(g.db_role.clone()),
            is_default: false,
            json_data: vec![
                ("database", json!(pg.database)),
                ("sslmode", json!("disable")),
                ("postgresVersion", json!(major * 100)),
                (
                    "timescaledb",
                    json!(pg.variant == crate::model::PostgresVariant::Timescaledb),
                ),
                ("maxOpenConns", json!(5)),
                ("maxIdleConns", json!(2)),
            ],
            password_env,
        });
    }
    if let Some(redis) = &g.redis
        && let Ok(endpoint) = stack.reach(grafana, redis)
    {
        let password_env = stack
            .service(redis)
            .and_then(|r| r.redis.as_ref())
            .and_then(|r| stack.secrets.get(&r.password.secret))
            .map(|s| format!("${{{}}}", s.env));
        out.push(Datasource {
            name: "Redis".into(),
            uid: REDIS_UID,
            kind: REDIS_PLUGIN,
            url: format!("redis://{endpoint}"),
            user: None,
            is_default: false,
            json_data: vec![
                ("client", json!("standalone")),
                ("poolSize", json!(5)),
                ("timeout", json!(10)),
            ],
            password_env,
        });
    }
    out
}

/// PostgreSQL major version from an image tag such as `timescaledb:2.17.2-pg16` or
/// `postgres:16.4`.
fn pg_major(image: &str) -> Option<u32> {
    let tag = image.rsplit_once(':')?.1;
    if let Some(pos) = tag.find("pg") {
        let digits: String = tag[pos + 2..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return digits.parse().ok();
    }
    let digits: String = tag.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let mut out = Vec::new();
    for (name, service) in &stack.services {
        if service.kind != Kind::Grafana || service.grafana.is_none() {
            continue;
        }
        let sources = datasources(stack, service);
        out.push(Output::new(
            paths::grafana_datasources(name),
            "grafana/datasources.yml.j2",
            context! {
                stack => &stack.name,
                datasources => super::ser(&sources),
            },
        ));
        out.push(Output::new(
            paths::grafana_dashboard_provider(name),
            "grafana/dashboards.yml.j2",
            context! { stack => &stack.name, path => DASHBOARDS_DIR },
        ));
        let has_sql = sources.iter().any(|d| d.uid == SQL_UID);
        for dashboard in dashboards(stack, has_sql) {
            let uid = dashboard["uid"].as_str().unwrap_or_default().to_string();
            out.push(Output::new(
                paths::grafana_dashboard(name, &uid),
                "grafana/dashboard.json.j2",
                context! { json => serde_json::to_string_pretty(&dashboard).unwrap_or_default() },
            ));
        }
    }
    out
}

/// A query of a panel.
enum Query {
    /// PromQL and legend.
    Prom(String, &'static str),
    /// SQL (time series format) on the database datasource.
    Sql(String),
}

struct Panel {
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    queries: Vec<Query>,
}

fn ts(title: &'static str, unit: &'static str, queries: Vec<Query>) -> Panel {
    Panel {
        title,
        kind: "timeseries",
        unit,
        queries,
    }
}

fn stat(title: &'static str, unit: &'static str, queries: Vec<Query>) -> Panel {
    Panel {
        title,
        kind: "stat",
        unit,
        queries,
    }
}

fn prom(expr: String, legend: &'static str) -> Query {
    Query::Prom(expr, legend)
}

/// `job="a"` (or `job=~"a|b"`) for the scrape jobs of `kind`; `None` when nothing of
/// that kind is scraped.
fn job_of(stack: &Stack, kind: Kind) -> Option<String> {
    let (_, prometheus) = super::monitoring::prometheus_service(stack)?;
    let jobs: Vec<String> = scrape_jobs(stack, prometheus)
        .into_iter()
        .filter(|j| j.kind == kind)
        .map(|j| j.job)
        .collect();
    match jobs.as_slice() {
        [] => None,
        [one] => Some(format!("job={}", promql_str(one))),
        many => Some(format!("job=~{}", promql_str(&many.join("|")))),
    }
}

/// Every dashboard of the stack; a dashboard whose sources are all missing is left out.
pub fn dashboards(stack: &Stack, has_sql: bool) -> Vec<Json> {
    let gw = job_of(stack, Kind::Gateway);
    let api = job_of(stack, Kind::Api);
    let pg = job_of(stack, Kind::PostgresExporter);
    let bouncer = job_of(stack, Kind::PgbouncerExporter);
    let redis = job_of(stack, Kind::RedisExporter);
    let rabbit = job_of(stack, Kind::Rabbitmq);
    let node = job_of(stack, Kind::NodeExporter);
    let cadvisor = job_of(stack, Kind::Cadvisor);
    let schema = stack
        .database_of(
            stack
                .services
                .iter()
                .find(|(_, s)| s.kind == Kind::Postgres)
                .map(|(n, _)| n.as_str())
                .unwrap_or_default(),
        )
        .map(|(_, pg)| pg.schema.replace('"', "\"\""));

    let mut all = Vec::new();

    // Overview: is everything up, is data flowing, is anything saturated.
    let mut panels = vec![ts(
        "Scrape targets up",
        "none",
        vec![prom("up".into(), "{{job}}")],
    )];
    if let Some(gw) = &gw {
        panels.push(stat(
            "Messages stored / s",
            "ops",
            vec![prom(
                format!("sum(rate(tg_gateway_messages_stored_total{{{gw}}}[5m]))"),
                "stored",
            )],
        ));
        panels.push(stat(
            "Worst ingestion lag",
            "s",
            vec![prom(
                format!("max(tg_gateway_ingestion_lag_seconds{{{gw}}})"),
                "lag",
            )],
        ));
    }
    if let Some(rabbit) = &rabbit {
        panels.push(stat(
            "Messages ready in queues",
            "none",
            vec![prom(
                format!("sum(rabbitmq_queue_messages_ready{{{rabbit}}})"),
                "ready",
            )],
        ));
    }
    if let Some(cadvisor) = &cadvisor {
        panels.push(ts(
            "Container memory of limit",
            "percentunit",
            vec![prom(
                format!(
                    "max by (name) (container_memory_working_set_bytes{{{cadvisor}, name!=\"\"}} / (container_spec_memory_limit_bytes{{{cadvisor}, name!=\"\"}} > 0))"
                ),
                "{{name}}",
            )],
        ));
    }
    if let Some(node) = &node {
        panels.push(ts(
            "Free disk space",
            "percentunit",
            vec![prom(
                format!(
                    "node_filesystem_avail_bytes{{{node}, fstype!~\"tmpfs|overlay\"}} / node_filesystem_size_bytes{{{node}, fstype!~\"tmpfs|overlay\"}}"
                ),
                "{{mountpoint}}",
            )],
        ));
        panels.push(ts(
            "Host CPU busy",
            "percentunit",
            vec![prom(
                format!("1 - avg(rate(node_cpu_seconds_total{{{node}, mode=\"idle\"}}[5m]))"),
                "busy",
            )],
        ));
    }
    all.push(dashboard("tg-overview", "Overview", panels));

    // Database: TimescaleDB through postgres-exporter, PgBouncer pools, and SQL panels.
    let mut panels = Vec::new();
    if let Some(pg) = &pg {
        panels.extend([
            stat("PostgreSQL up", "none", vec![prom(format!("pg_up{{{pg}}}"), "up")]),
            ts(
                "Transactions / s",
                "ops",
                vec![
                    prom(
                        format!("sum by (datname) (rate(pg_stat_database_xact_commit{{{pg}}}[5m]))"),
                        "{{datname}} commit",
                    ),
                    prom(
                        format!("sum by (datname) (rate(pg_stat_database_xact_rollback{{{pg}}}[5m]))"),
                        "{{datname}} rollback",
                    ),
                ],
            ),
            ts(
                "Buffer cache hit ratio",
                "percentunit",
                vec![prom(
                    format!(
                        "sum by (datname) (rate(pg_stat_database_blks_hit{{{pg}}}[5m])) / (sum by (datname) (rate(pg_stat_database_blks_hit{{{pg}}}[5m])) + sum by (datname) (rate(pg_stat_database_blks_read{{{pg}}}[5m])))"
                    ),
                    "{{datname}}",
                )],
            ),
            ts(
                "Backends",
                "none",
                vec![prom(
                    format!("sum by (datname) (pg_stat_database_numbackends{{{pg}}})"),
                    "{{datname}}",
                )],
            ),
            ts(
                "Database size",
                "bytes",
                vec![prom(format!("pg_database_size_bytes{{{pg}}}"), "{{datname}}")],
            ),
            ts(
                "Messages table size",
                "bytes",
                vec![prom(format!("tg_storage_messages_bytes{{{pg}}}"), "messages")],
            ),
            ts(
                "Outbox backlog",
                "none",
                vec![prom(format!("tg_outbox_pending{{{pg}}}"), "pending")],
            ),
            ts(
                "Age of newest message per channel",
                "s",
                vec![prom(
                    format!("tg_channel_last_message_age_seconds{{{pg}}}"),
                    "{{username}}",
                )],
            ),
            ts(
                "Deadlocks / s",
                "ops",
                vec![prom(
                    format!("sum by (datname) (rate(pg_stat_database_deadlocks{{{pg}}}[5m]))"),
                    "{{datname}}",
                )],
            ),
        ]);
    }
    if let Some(b) = &bouncer {
        panels.extend([
            ts(
                "PgBouncer clients waiting",
                "none",
                vec![prom(
                    format!("pgbouncer_pools_client_waiting_connections{{{b}}}"),
                    "{{database}}/{{user}}",
                )],
            ),
            ts(
                "PgBouncer server connections",
                "none",
                vec![
                    prom(
                        format!("pgbouncer_pools_server_active_connections{{{b}}}"),
                        "{{database}}/{{user}} active",
                    ),
                    prom(
                        format!("pgbouncer_pools_server_idle_connections{{{b}}}"),
                        "{{database}}/{{user}} idle",
                    ),
                ],
            ),
        ]);
    }
    if has_sql && let Some(schema) = &schema {
        panels.push(ts(
            "Messages per hour (continuous aggregate)",
            "none",
            vec![Query::Sql(format!(
                "SELECT bucket AS \"time\", sum(messages) AS messages FROM \"{schema}\".messages_hourly WHERE $__timeFilter(bucket) GROUP BY 1 ORDER BY 1"
            ))],
        ));
    }
    if !panels.is_empty() {
        all.push(dashboard("tg-database", "Database (TimescaleDB)", panels));
    }

    // Redis.
    if let Some(r) = &redis {
        all.push(dashboard(
            "tg-redis",
            "Redis",
            vec![
                stat(
                    "Redis up",
                    "none",
                    vec![prom(format!("redis_up{{{r}}}"), "up")],
                ),
                ts(
                    "Memory used of maxmemory",
                    "bytes",
                    vec![
                        prom(format!("redis_memory_used_bytes{{{r}}}"), "used"),
                        prom(format!("redis_memory_max_bytes{{{r}}}"), "maxmemory"),
                    ],
                ),
                ts(
                    "Commands / s",
                    "ops",
                    vec![prom(
                        format!("sum by (cmd) (rate(redis_commands_total{{{r}}}[5m]))"),
                        "{{cmd}}",
                    )],
                ),
                ts(
                    "Dedup keys",
                    "none",
                    vec![prom(format!("redis_db_keys{{{r}}}"), "{{db}}")],
                ),
                ts(
                    "Expired and evicted keys / s",
                    "ops",
                    vec![
                        prom(
                            format!("rate(redis_expired_keys_total{{{r}}}[5m])"),
                            "expired",
                        ),
                        prom(
                            format!("rate(redis_evicted_keys_total{{{r}}}[5m])"),
                            "evicted",
                        ),
                    ],
                ),
                ts(
                    "Connected clients and replicas",
                    "none",
                    vec![
                        prom(format!("redis_connected_clients{{{r}}}"), "clients"),
                        prom(format!("redis_connected_slaves{{{r}}}"), "replicas"),
                    ],
                ),
            ],
        ));
    }

    // RabbitMQ.
    if let Some(q) = &rabbit {
        all.push(dashboard(
            "tg-rabbitmq",
            "RabbitMQ queues",
            vec![
                ts(
                    "Messages ready per queue",
                    "none",
                    vec![prom(
                        format!("rabbitmq_queue_messages_ready{{{q}}}"),
                        "{{vhost}}/{{queue}}",
                    )],
                ),
                ts(
                    "Messages unacknowledged per queue",
                    "none",
                    vec![prom(
                        format!("rabbitmq_queue_messages_unacked{{{q}}}"),
                        "{{vhost}}/{{queue}}",
                    )],
                ),
                ts(
                    "Publish and confirm rate",
                    "ops",
                    vec![
                        prom(
                            format!("sum(rate(rabbitmq_global_messages_received_total{{{q}}}[5m]))"),
                            "received",
                        ),
                        prom(
                            format!("sum(rate(rabbitmq_global_messages_confirmed_total{{{q}}}[5m]))"),
                            "confirmed",
                        ),
                    ],
                ),
                ts(
                    "Consumers per queue",
                    "none",
                    vec![prom(
                        format!("rabbitmq_queue_consumers{{{q}}}"),
                        "{{vhost}}/{{queue}}",
                    )],
                ),
                ts(
                    "Memory of high watermark",
                    "percentunit",
                    vec![prom(
                        format!(
                            "rabbitmq_process_resident_memory_bytes{{{q}}} / rabbitmq_resident_memory_limit_bytes{{{q}}}"
                        ),
                        "memory",
                    )],
                ),
                ts(
                    "Disk free above limit",
                    "bytes",
                    vec![prom(
                        format!(
                            "rabbitmq_disk_space_available_bytes{{{q}}} - rabbitmq_disk_space_available_limit_bytes{{{q}}}"
                        ),
                        "headroom",
                    )],
                ),
            ],
        ));
    }

    // The MTProto gateway.
    if let Some(g) = &gw {
        let quantile = |q: &str, metric: &str| {
            format!("histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{g}}}[5m])))")
        };
        all.push(dashboard(
            "tg-gateway",
            "MTProto gateway",
            vec![
                ts(
                    "Pipeline rate",
                    "ops",
                    vec![
                        prom(
                            format!("sum(rate(tg_gateway_messages_received_total{{{g}}}[5m]))"),
                            "received",
                        ),
                        prom(
                            format!("sum(rate(tg_gateway_messages_deduplicated_total{{{g}}}[5m]))"),
                            "duplicates",
                        ),
                        prom(
                            format!("sum(rate(tg_gateway_messages_stored_total{{{g}}}[5m]))"),
                            "stored",
                        ),
                        prom(
                            format!("sum(rate(tg_gateway_messages_published_total{{{g}}}[5m]))"),
                            "published",
                        ),
                    ],
                ),
                ts(
                    "Failures by stage",
                    "ops",
                    vec![prom(
                        format!(
                            "sum by (stage) (rate(tg_gateway_messages_failed_total{{{g}}}[5m]))"
                        ),
                        "{{stage}}",
                    )],
                ),
                ts(
                    "Ingestion lag per channel",
                    "s",
                    vec![prom(
                        format!("tg_gateway_ingestion_lag_seconds{{{g}}}"),
                        "{{channel}}",
                    )],
                ),
                ts(
                    "Outbox depth",
                    "none",
                    vec![prom(format!("tg_gateway_outbox_depth{{{g}}}"), "outbox")],
                ),
                ts(
                    "Stage latency p95",
                    "s",
                    vec![
                        prom(
                            quantile("0.95", "tg_gateway_dedup_duration_seconds"),
                            "dedup",
                        ),
                        prom(
                            quantile("0.95", "tg_gateway_store_duration_seconds"),
                            "store",
                        ),
                        prom(
                            quantile("0.95", "tg_gateway_publish_duration_seconds"),
                            "publish",
                        ),
                    ],
                ),
                ts(
                    "Dependencies connected",
                    "none",
                    vec![prom(
                        format!("tg_gateway_dependency_up{{{g}}}"),
                        "{{dependency}}",
                    )],
                ),
                ts(
                    "Flood wait",
                    "s",
                    vec![prom(
                        format!("rate(tg_gateway_flood_wait_seconds_total{{{g}}}[5m])"),
                        "seconds waited / s",
                    )],
                ),
            ],
        ));
    }

    // SLO: availability and latency percentiles of what users see.
    let mut panels = Vec::new();
    if let Some(g) = &gw {
        panels.extend([
            stat(
                "Gateway availability (30d)",
                "percentunit",
                vec![prom(format!("avg_over_time(up{{{g}}}[30d])"), "availability")],
            ),
            ts(
                "End-to-end latency p95 / p99",
                "s",
                vec![
                    prom(
                        format!("histogram_quantile(0.95, sum by (le) (rate(tg_gateway_end_to_end_duration_seconds_bucket{{{g}}}[5m])))"),
                        "p95",
                    ),
                    prom(
                        format!("histogram_quantile(0.99, sum by (le) (rate(tg_gateway_end_to_end_duration_seconds_bucket{{{g}}}[5m])))"),
                        "p99",
                    ),
                ],
            ),
        ]);
    }
    if let Some(a) = &api {
        panels.extend([
            stat(
                "API availability (30d, non-5xx)",
                "percentunit",
                vec![prom(
                    format!(
                        "1 - sum(rate(tg_api_http_requests_total{{{a}, status=~\"5..\"}}[30d])) / sum(rate(tg_api_http_requests_total{{{a}}}[30d]))"
                    ),
                    "availability",
                )],
            ),
            ts(
                "API latency p95 / p99",
                "s",
                vec![
                    prom(
                        format!("histogram_quantile(0.95, sum by (le) (rate(tg_api_http_request_duration_seconds_bucket{{{a}}}[5m])))"),
                        "p95",
                    ),
                    prom(
                        format!("histogram_quantile(0.99, sum by (le) (rate(tg_api_http_request_duration_seconds_bucket{{{a}}}[5m])))"),
                        "p99",
                    ),
                ],
            ),
            ts(
                "API error ratio",
                "percentunit",
                vec![prom(
                    format!(
                        "sum(rate(tg_api_http_requests_total{{{a}, status=~\"5..\"}}[5m])) / sum(rate(tg_api_http_requests_total{{{a}}}[5m]))"
                    ),
                    "5xx",
                )],
            ),
        ]);
    }
    if !panels.is_empty() {
        all.push(dashboard("tg-slo", "SLO", panels));
    }
    all
}

/// A dashboard in the classic JSON model: stats 6 wide, time series 12 wide, flowing
/// left to right.
fn dashboard(uid: &str, title: &str, panels: Vec<Panel>) -> Json {
    let (mut x, mut y, mut row_height) = (0_i64, 0_i64, 0_i64);
    let mut out = Vec::new();
    for (index, panel) in panels.into_iter().enumerate() {
        let (w, h) = if panel.kind == "stat" {
            (6, 4)
        } else {
            (12, 8)
        };
        if x + w > 24 {
            x = 0;
            y += row_height;
            row_height = 0;
        }
        let sql = panel.queries.iter().any(|q| matches!(q, Query::Sql(_)));
        let datasource = if sql {
            json!({"type": "grafana-postgresql-datasource", "uid": SQL_UID})
        } else {
            json!({"type": "prometheus", "uid": PROMETHEUS_UID})
        };
        let targets: Vec<Json> = panel
            .queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let ref_id = char::from(b'A' + u8::try_from(i % 26).unwrap_or(0)).to_string();
                match q {
                    Query::Prom(expr, legend) => json!({
                        "refId": ref_id,
                        "datasource": datasource,
                        "expr": expr,
                        "legendFormat": legend,
                        "range": true,
                    }),
                    Query::Sql(sql) => json!({
                        "refId": ref_id,
                        "datasource": datasource,
                        "editorMode": "code",
                        "format": "time_series",
                        "rawQuery": true,
                        "rawSql": sql,
                    }),
                }
            })
            .collect();
        let options = if panel.kind == "stat" {
            json!({"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
                   "colorMode": "value", "graphMode": "area", "textMode": "auto"})
        } else {
            json!({"legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                   "tooltip": {"mode": "multi", "sort": "desc"}})
        };
        out.push(json!({
            "type": panel.kind,
            "id": index + 1,
            "title": panel.title,
            "datasource": datasource,
            "gridPos": {"h": h, "w": w, "x": x, "y": y},
            "targets": targets,
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "options": options,
        }));
        x += w;
        row_height = row_height.max(h);
    }
    json!({
        "uid": uid,
        "title": title,
        "tags": ["tgstack"],
        "timezone": "browser",
        "editable": false,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": out,
    })
}

/// Every PromQL query of the dashboards, with the dashboard uid and panel title: what
/// the validator checks against the catalog.
pub fn dashboard_queries(stack: &Stack) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for dashboard in dashboards(stack, true) {
        let uid = dashboard["uid"].as_str().unwrap_or_default().to_string();
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((uid.clone(), title.clone(), expr.to_string()));
                }
            }
        }
    }
    out
}
