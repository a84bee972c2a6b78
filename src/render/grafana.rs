//! Grafana provisioning: datasources (Prometheus; the database through its pooler with the
//! read-only role; Redis), one dashboard provider, and the dashboards, all from the model.
//! Every PromQL query reads catalog metrics of a scrape job of the model; SQL panels read
//! the tables of the SQL contract.

use minijinja::context;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::Output;
use crate::model::alerting::{ScrapeJob, promql_str, scrape_jobs};
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
            .and_then(|r| password_reference(stack, &r.password.secret));
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
            .and_then(|r| password_reference(stack, &r.password.secret));
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

/// How a datasource names its password: the environment variable Grafana expands
/// (compose passes it in), or in a swarm the secret file Grafana reads (`$__file{}`).
fn password_reference(stack: &crate::model::Stack, id: &str) -> Option<String> {
    let secret = stack.secrets.get(id)?;
    Some(if stack.is_swarm() {
        format!("$__file{{{}}}", crate::model::paths::swarm_secret(id))
    } else {
        format!("${{{}}}", secret.env)
    })
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

/// A query of a panel description. `$job` in PromQL stands for the job selector of the
/// panel's section, `$schema` in SQL for the schema of the SQL contract.
enum Query {
    /// PromQL and legend.
    Prom(&'static str, &'static str),
    /// SQL (time series format) on the database datasource.
    Sql(&'static str),
}

/// A panel description of a dashboard table.
struct Panel {
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    queries: &'static [Query],
}

const fn ts(title: &'static str, unit: &'static str, queries: &'static [Query]) -> Panel {
    Panel {
        title,
        kind: "timeseries",
        unit,
        queries,
    }
}

const fn stat(title: &'static str, unit: &'static str, queries: &'static [Query]) -> Panel {
    Panel {
        title,
        kind: "stat",
        unit,
        queries,
    }
}

const fn prom(expr: &'static str, legend: &'static str) -> Query {
    Query::Prom(expr, legend)
}

/// What the panels of a section read. A section whose source the stack lacks is left
/// out, and so is a dashboard left without panels.
#[derive(Clone, Copy)]
enum Source {
    /// Every scrape job (no `$job`).
    AllJobs,
    /// The scrape jobs of services of this kind.
    Jobs(Kind),
    /// The SQL contract's tables, through the database datasource.
    Sql,
    /// The scrape jobs of APIs whose read cache is on.
    ReadCache,
}

struct Section {
    source: Source,
    panels: &'static [Panel],
}

struct Dashboard {
    uid: &'static str,
    title: &'static str,
    sections: &'static [Section],
}

/// Every dashboard, in output order.
const DASHBOARDS: &[Dashboard] = &[OVERVIEW, DATABASE, REDIS, RABBITMQ, GATEWAY, SLO];

/// Is everything up, is data flowing, is anything saturated.
const OVERVIEW: Dashboard = Dashboard {
    uid: "tg-overview",
    title: "Overview",
    sections: &[
        Section {
            source: Source::AllJobs,
            panels: &[ts("Scrape targets up", "none", &[prom("up", "{{job}}")])],
        },
        Section {
            source: Source::Jobs(Kind::Gateway),
            panels: &[
                stat(
                    "Messages stored / s",
                    "ops",
                    &[prom(
                        "sum(rate(tg_gateway_messages_stored_total{$job}[5m]))",
                        "stored",
                    )],
                ),
                stat(
                    "Worst ingestion lag",
                    "s",
                    &[prom("max(tg_gateway_ingestion_lag_seconds{$job})", "lag")],
                ),
            ],
        },
        Section {
            source: Source::Jobs(Kind::Rabbitmq),
            panels: &[stat(
                "Messages ready in queues",
                "none",
                &[prom("sum(rabbitmq_queue_messages_ready{$job})", "ready")],
            )],
        },
        Section {
            source: Source::Jobs(Kind::Cadvisor),
            panels: &[ts(
                "Container memory of limit",
                "percentunit",
                &[prom(
                    r#"max by (name) (container_memory_working_set_bytes{$job, name!=""} / (container_spec_memory_limit_bytes{$job, name!=""} > 0))"#,
                    "{{name}}",
                )],
            )],
        },
        Section {
            source: Source::Jobs(Kind::NodeExporter),
            panels: &[
                ts(
                    "Free disk space",
                    "percentunit",
                    &[prom(
                        r#"node_filesystem_avail_bytes{$job, fstype!~"tmpfs|overlay"} / node_filesystem_size_bytes{$job, fstype!~"tmpfs|overlay"}"#,
                        // One series per node in a swarm (node-exporter runs on each).
                        "{{instance}} {{mountpoint}}",
                    )],
                ),
                ts(
                    "Host CPU busy",
                    "percentunit",
                    &[prom(
                        r#"1 - avg by (instance) (rate(node_cpu_seconds_total{$job, mode="idle"}[5m]))"#,
                        "{{instance}}",
                    )],
                ),
            ],
        },
    ],
};

/// TimescaleDB through postgres-exporter, PgBouncer pools, and SQL panels.
const DATABASE: Dashboard = Dashboard {
    uid: "tg-database",
    title: "Database (TimescaleDB)",
    sections: &[
        Section {
            source: Source::Jobs(Kind::PostgresExporter),
            panels: &[
                stat("PostgreSQL up", "none", &[prom("pg_up{$job}", "up")]),
                ts(
                    "Transactions / s",
                    "ops",
                    &[
                        prom(
                            "sum by (datname) (rate(pg_stat_database_xact_commit{$job}[5m]))",
                            "{{datname}} commit",
                        ),
                        prom(
                            "sum by (datname) (rate(pg_stat_database_xact_rollback{$job}[5m]))",
                            "{{datname}} rollback",
                        ),
                    ],
                ),
                ts(
                    "Buffer cache hit ratio",
                    "percentunit",
                    &[prom(
                        "sum by (datname) (rate(pg_stat_database_blks_hit{$job}[5m])) / (sum by (datname) (rate(pg_stat_database_blks_hit{$job}[5m])) + sum by (datname) (rate(pg_stat_database_blks_read{$job}[5m])))",
                        "{{datname}}",
                    )],
                ),
                ts(
                    "Backends",
                    "none",
                    &[prom(
                        "sum by (datname) (pg_stat_database_numbackends{$job})",
                        "{{datname}}",
                    )],
                ),
                ts(
                    "Database size",
                    "bytes",
                    &[prom("pg_database_size_bytes{$job}", "{{datname}}")],
                ),
                ts(
                    "Messages table size",
                    "bytes",
                    &[prom("tg_storage_messages_bytes{$job}", "messages")],
                ),
                ts(
                    "Outbox backlog",
                    "none",
                    &[prom("tg_outbox_pending{$job}", "pending")],
                ),
                ts(
                    "Age of newest message per channel",
                    "s",
                    &[prom(
                        "tg_channel_last_message_age_seconds{$job}",
                        "{{username}}",
                    )],
                ),
                ts(
                    "Deadlocks / s",
                    "ops",
                    &[prom(
                        "sum by (datname) (rate(pg_stat_database_deadlocks{$job}[5m]))",
                        "{{datname}}",
                    )],
                ),
            ],
        },
        Section {
            source: Source::Jobs(Kind::PgbouncerExporter),
            panels: &[
                ts(
                    "PgBouncer clients waiting",
                    "none",
                    &[prom(
                        "pgbouncer_pools_client_waiting_connections{$job}",
                        "{{database}}/{{user}}",
                    )],
                ),
                ts(
                    "PgBouncer server connections",
                    "none",
                    &[
                        prom(
                            "pgbouncer_pools_server_active_connections{$job}",
                            "{{database}}/{{user}} active",
                        ),
                        prom(
                            "pgbouncer_pools_server_idle_connections{$job}",
                            "{{database}}/{{user}} idle",
                        ),
                    ],
                ),
            ],
        },
        Section {
            source: Source::Sql,
            panels: &[ts(
                "Messages per hour (continuous aggregate)",
                "none",
                &[Query::Sql(
                    r#"SELECT bucket AS "time", sum(messages) AS messages FROM "$schema".messages_hourly WHERE $__timeFilter(bucket) GROUP BY 1 ORDER BY 1"#,
                )],
            )],
        },
    ],
};

const REDIS: Dashboard = Dashboard {
    uid: "tg-redis",
    title: "Redis",
    sections: &[Section {
        source: Source::Jobs(Kind::RedisExporter),
        panels: &[
            stat("Redis up", "none", &[prom("redis_up{$job}", "up")]),
            ts(
                "Memory used of maxmemory",
                "bytes",
                &[
                    prom("redis_memory_used_bytes{$job}", "used"),
                    prom("redis_memory_max_bytes{$job}", "maxmemory"),
                ],
            ),
            ts(
                "Commands / s",
                "ops",
                &[prom(
                    "sum by (cmd) (rate(redis_commands_total{$job}[5m]))",
                    "{{cmd}}",
                )],
            ),
            ts(
                "Dedup keys",
                "none",
                &[prom("redis_db_keys{$job}", "{{db}}")],
            ),
            ts(
                "Expired and evicted keys / s",
                "ops",
                &[
                    prom("rate(redis_expired_keys_total{$job}[5m])", "expired"),
                    prom("rate(redis_evicted_keys_total{$job}[5m])", "evicted"),
                ],
            ),
            ts(
                "Connected clients and replicas",
                "none",
                &[
                    prom("redis_connected_clients{$job}", "clients"),
                    prom("redis_connected_slaves{$job}", "replicas"),
                ],
            ),
        ],
    }],
};

const RABBITMQ: Dashboard = Dashboard {
    uid: "tg-rabbitmq",
    title: "RabbitMQ queues",
    sections: &[Section {
        source: Source::Jobs(Kind::Rabbitmq),
        panels: &[
            ts(
                "Messages ready per queue",
                "none",
                &[prom(
                    "rabbitmq_queue_messages_ready{$job}",
                    "{{vhost}}/{{queue}}",
                )],
            ),
            ts(
                "Messages unacknowledged per queue",
                "none",
                &[prom(
                    "rabbitmq_queue_messages_unacked{$job}",
                    "{{vhost}}/{{queue}}",
                )],
            ),
            ts(
                "Publish and confirm rate",
                "ops",
                &[
                    prom(
                        "sum(rate(rabbitmq_global_messages_received_total{$job}[5m]))",
                        "received",
                    ),
                    prom(
                        "sum(rate(rabbitmq_global_messages_confirmed_total{$job}[5m]))",
                        "confirmed",
                    ),
                ],
            ),
            ts(
                "Consumers per queue",
                "none",
                &[prom(
                    "rabbitmq_queue_consumers{$job}",
                    "{{vhost}}/{{queue}}",
                )],
            ),
            ts(
                "Memory of high watermark",
                "percentunit",
                &[prom(
                    "rabbitmq_process_resident_memory_bytes{$job} / rabbitmq_resident_memory_limit_bytes{$job}",
                    "memory",
                )],
            ),
            ts(
                "Disk free above limit",
                "bytes",
                &[prom(
                    "rabbitmq_disk_space_available_bytes{$job} - rabbitmq_disk_space_available_limit_bytes{$job}",
                    "headroom",
                )],
            ),
        ],
    }],
};

/// The MTProto gateway.
const GATEWAY: Dashboard = Dashboard {
    uid: "tg-gateway",
    title: "MTProto gateway",
    sections: &[
        Section {
            source: Source::Jobs(Kind::Gateway),
            panels: &[
                ts(
                    "Pipeline rate",
                    "ops",
                    &[
                        prom(
                            "sum(rate(tg_gateway_messages_received_total{$job}[5m]))",
                            "received",
                        ),
                        prom(
                            "sum(rate(tg_gateway_messages_deduplicated_total{$job}[5m]))",
                            "duplicates",
                        ),
                        prom(
                            "sum(rate(tg_gateway_messages_stored_total{$job}[5m]))",
                            "stored",
                        ),
                        prom(
                            "sum(rate(tg_gateway_messages_published_total{$job}[5m]))",
                            "published",
                        ),
                    ],
                ),
                ts(
                    "Failures by stage",
                    "ops",
                    &[prom(
                        "sum by (stage) (rate(tg_gateway_messages_failed_total{$job}[5m]))",
                        "{{stage}}",
                    )],
                ),
                ts(
                    "Ingestion lag per channel",
                    "s",
                    &[prom(
                        "tg_gateway_ingestion_lag_seconds{$job}",
                        "{{channel}}",
                    )],
                ),
                ts(
                    "Outbox depth",
                    "none",
                    &[prom("tg_gateway_outbox_depth{$job}", "outbox")],
                ),
                ts(
                    "Stage latency p95",
                    "s",
                    &[
                        prom(
                            "histogram_quantile(0.95, sum by (le) (rate(tg_gateway_dedup_duration_seconds_bucket{$job}[5m])))",
                            "dedup",
                        ),
                        prom(
                            "histogram_quantile(0.95, sum by (le) (rate(tg_gateway_store_duration_seconds_bucket{$job}[5m])))",
                            "store",
                        ),
                        prom(
                            "histogram_quantile(0.95, sum by (le) (rate(tg_gateway_publish_duration_seconds_bucket{$job}[5m])))",
                            "publish",
                        ),
                    ],
                ),
                ts(
                    "Dependencies connected",
                    "none",
                    &[prom("tg_gateway_dependency_up{$job}", "{{dependency}}")],
                ),
                ts(
                    "Flood wait",
                    "s",
                    &[prom(
                        "rate(tg_gateway_flood_wait_seconds_total{$job}[5m])",
                        "seconds waited / s",
                    )],
                ),
            ],
        },
        Section {
            source: Source::ReadCache,
            panels: &[
                ts(
                    "Read cache hit rate",
                    "percentunit",
                    &[prom(
                        "sum by (job) (rate(tg_api_cache_hits_total{$job}[5m])) / (sum by (job) (rate(tg_api_cache_hits_total{$job}[5m])) + sum by (job) (rate(tg_api_cache_misses_total{$job}[5m])))",
                        "{{job}}",
                    )],
                ),
                ts(
                    "Read cache misses by reason",
                    "reqps",
                    &[prom(
                        "sum by (reason) (rate(tg_api_cache_misses_total{$job}[5m]))",
                        "{{reason}}",
                    )],
                ),
            ],
        },
    ],
};

/// Availability and latency percentiles of what users see.
const SLO: Dashboard = Dashboard {
    uid: "tg-slo",
    title: "SLO",
    sections: &[
        Section {
            source: Source::Jobs(Kind::Gateway),
            panels: &[
                stat(
                    "Gateway availability (30d)",
                    "percentunit",
                    &[prom("avg_over_time(up{$job}[30d])", "availability")],
                ),
                ts(
                    "End-to-end latency p95 / p99",
                    "s",
                    &[
                        prom(
                            "histogram_quantile(0.95, sum by (le) (rate(tg_gateway_end_to_end_duration_seconds_bucket{$job}[5m])))",
                            "p95",
                        ),
                        prom(
                            "histogram_quantile(0.99, sum by (le) (rate(tg_gateway_end_to_end_duration_seconds_bucket{$job}[5m])))",
                            "p99",
                        ),
                    ],
                ),
            ],
        },
        Section {
            source: Source::Jobs(Kind::Api),
            panels: &[
                stat(
                    "API availability (30d, non-5xx)",
                    "percentunit",
                    &[prom(
                        r#"1 - sum(rate(tg_api_http_requests_total{$job, status=~"5.."}[30d])) / sum(rate(tg_api_http_requests_total{$job}[30d]))"#,
                        "availability",
                    )],
                ),
                ts(
                    "API latency p95 / p99",
                    "s",
                    &[
                        prom(
                            "histogram_quantile(0.95, sum by (le) (rate(tg_api_http_request_duration_seconds_bucket{$job}[5m])))",
                            "p95",
                        ),
                        prom(
                            "histogram_quantile(0.99, sum by (le) (rate(tg_api_http_request_duration_seconds_bucket{$job}[5m])))",
                            "p99",
                        ),
                    ],
                ),
                ts(
                    "API error ratio",
                    "percentunit",
                    &[prom(
                        r#"sum(rate(tg_api_http_requests_total{$job, status=~"5.."}[5m])) / sum(rate(tg_api_http_requests_total{$job}[5m]))"#,
                        "5xx",
                    )],
                ),
            ],
        },
    ],
};

/// What the dashboard sources of one stack resolve to: the text each section's `$job`
/// or `$schema` is replaced with.
struct Sources {
    jobs: Vec<ScrapeJob>,
    schema: Option<String>,
    /// API services whose read cache is on.
    read_caches: Vec<String>,
}

impl Sources {
    fn of(stack: &Stack, has_sql: bool) -> Self {
        let jobs = crate::model::alerting::prometheus_service(stack)
            .map(|(_, prometheus)| scrape_jobs(stack, prometheus))
            .unwrap_or_default();
        let schema = if has_sql { sql_schema(stack) } else { None };
        let read_caches = stack
            .services
            .iter()
            .filter(|(_, s)| {
                s.api
                    .as_ref()
                    .and_then(|a| a.cache.as_ref())
                    .is_some_and(|c| c.enabled)
            })
            .map(|(name, _)| name.clone())
            .collect();
        Sources {
            jobs,
            schema,
            read_caches,
        }
    }

    /// The text `source` stands for in queries; `None` when the stack lacks it.
    fn resolve(&self, source: Source) -> Option<String> {
        match source {
            Source::AllJobs => Some(String::new()),
            Source::Jobs(kind) => job_selector(&self.jobs, kind),
            Source::Sql => self.schema.clone(),
            Source::ReadCache => {
                let cached: Vec<ScrapeJob> = self
                    .jobs
                    .iter()
                    .filter(|j| j.kind == Kind::Api && self.read_caches.contains(&j.job))
                    .cloned()
                    .collect();
                job_selector(&cached, Kind::Api)
            }
        }
    }
}

/// `job="a"` (or `job=~"a|b"`) for the scrape jobs of `kind`; `None` when nothing of
/// that kind is scraped.
fn job_selector(jobs: &[ScrapeJob], kind: Kind) -> Option<String> {
    let jobs: Vec<&str> = jobs
        .iter()
        .filter(|j| j.kind == kind)
        .map(|j| j.job.as_str())
        .collect();
    match jobs.as_slice() {
        [] => None,
        [one] => Some(format!("job={}", promql_str(one))),
        many => Some(format!("job=~{}", promql_str(&many.join("|")))),
    }
}

/// The schema of the first Postgres service's database, quoted for an SQL identifier.
fn sql_schema(stack: &Stack) -> Option<String> {
    stack
        .database_of(
            stack
                .services
                .iter()
                .find(|(_, s)| s.kind == Kind::Postgres)
                .map(|(n, _)| n.as_str())
                .unwrap_or_default(),
        )
        .map(|(_, pg)| pg.schema.replace('"', "\"\""))
}

/// Every dashboard of the stack; a dashboard whose sources are all missing is left out.
pub fn dashboards(stack: &Stack, has_sql: bool) -> Vec<Json> {
    let sources = Sources::of(stack, has_sql);
    DASHBOARDS
        .iter()
        .filter_map(|dashboard| {
            let panels: Vec<(&Panel, String)> = dashboard
                .sections
                .iter()
                .filter_map(|section| Some((section, sources.resolve(section.source)?)))
                .flat_map(|(section, text)| section.panels.iter().map(move |p| (p, text.clone())))
                .collect();
            (!panels.is_empty()).then(|| dashboard_json(dashboard, &panels))
        })
        .collect()
}

/// A dashboard in the classic JSON model: stats 6 wide, time series 12 wide, flowing
/// left to right on Grafana's 24-column grid. Each panel comes with the text its
/// queries' `$job`/`$schema` stand for.
fn dashboard_json(dashboard: &Dashboard, panels: &[(&Panel, String)]) -> Json {
    let (mut x, mut y, mut row_height) = (0_i64, 0_i64, 0_i64);
    let mut out = Vec::new();
    for (index, (panel, source)) in panels.iter().enumerate() {
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
        let grid = json!({"h": h, "w": w, "x": x, "y": y});
        out.push(panel_json(panel, source, index + 1, grid));
        x += w;
        row_height = row_height.max(h);
    }
    json!({
        "uid": dashboard.uid,
        "title": dashboard.title,
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

/// One panel at `grid_pos`, its queries reading `source` (see [`Sources::resolve`]).
fn panel_json(panel: &Panel, source: &str, id: usize, grid_pos: Json) -> Json {
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
                    "expr": expr.replace("$job", source),
                    "legendFormat": legend,
                    "range": true,
                }),
                Query::Sql(sql) => json!({
                    "refId": ref_id,
                    "datasource": datasource,
                    "editorMode": "code",
                    "format": "time_series",
                    "rawQuery": true,
                    "rawSql": sql.replace("$schema", source),
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
    json!({
        "type": panel.kind,
        "id": id,
        "title": panel.title,
        "datasource": datasource,
        "gridPos": grid_pos,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": options,
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
