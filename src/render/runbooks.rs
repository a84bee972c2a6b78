//! Runbooks: one page per alert (`runbooks/<Alert>.md`) and an index. Each says what the
//! alert means with the model's thresholds, and how to check with this stack's own
//! commands: hosts, ports, users, databases and service names are the model's, as an
//! operator on the host reaches them (published ports, or `docker compose exec` for a
//! container that publishes nothing). Secrets are read from their environment variables.

use minijinja::context;
use serde::Serialize;

use super::Output;
use crate::model::alerting::BuiltAlert;
use crate::model::{Alert, AlertKind, Deploy, Kind, Model, Stack, paths};

/// One check of a runbook: what it shows, and the command.
#[derive(Debug, Clone, Serialize)]
struct Check {
    what: String,
    command: String,
}

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let mut out = Vec::new();
    let mut index = Vec::new();
    for (alert, built) in stack.alerts.iter().zip(model.built_alerts()) {
        let Ok(built) = built else { continue };
        let checks = checks(stack, alert);
        index.push(context! {
            name => &built.name,
            severity => built.severity.as_str(),
            summary => plain(built.annotations.get("summary")),
        });
        out.push(Output::new(
            paths::runbook(&built.name),
            "runbooks/runbook.md.j2",
            context! {
                alert => super::ser(built),
                summary => plain(built.annotations.get("summary")),
                description => plain(built.annotations.get("description")),
                kind => alert.kind.as_str(),
                service => &alert.service,
                checks => super::ser(&checks),
                query => prometheus_query(stack, built),
            },
        ));
    }
    let cutover = cutover(stack);
    if let Some(page) = &cutover {
        out.push(Output::new(
            paths::cutover_runbook(),
            "runbooks/cutover.md.j2",
            page.clone(),
        ));
    }
    if !index.is_empty() || cutover.is_some() {
        out.push(Output::new(
            paths::runbook_index(),
            "runbooks/index.md.j2",
            context! { stack => &stack.name, alerts => index, cutover => cutover.is_some() },
        ));
    }
    out
}

/// The cutover page: moving the legacy history in through the first gateway (by name), as
/// cutover.sh does, with the checks an operator runs on the way.
fn cutover(stack: &Stack) -> Option<minijinja::Value> {
    let (name, service) = stack
        .services
        .iter()
        .find(|(_, s)| s.kind == Kind::Gateway)?;
    let gateway = service.gateway.as_ref()?;
    let (_, pg) = stack.database_of(&gateway.database)?;
    let password_env = pg
        .roles
        .get(&gateway.db_role)
        .and_then(|r| stack.secret_env(&r.password.secret));
    let checkpoints = psql_data(
        stack,
        &gateway.database,
        &gateway.db_role,
        password_env,
        &format!(
            "SELECT channel_id, last_message_id, messages, duplicates_collapsed, updated_at FROM {}.legacy_import ORDER BY 1",
            pg.schema
        ),
    );
    Some(context! {
        gateway => name,
        native => service.deploy == Deploy::Native,
        scripts => format!("{}/scripts", stack.deploy.config_dir.trim_end_matches('/')),
        checkpoints,
    })
}

/// An annotation as prose: Prometheus's `{{ $labels.channel }}` becomes `<channel>`, and
/// `{{ $value ... }}` `<value>`.
fn plain(annotation: Option<&String>) -> String {
    let mut text = annotation.cloned().unwrap_or_default();
    while let Some(start) = text.find("{{") {
        let Some(length) = text[start..].find("}}") else {
            break;
        };
        let inner = text[start + 2..start + length].trim().to_string();
        let word = match inner.strip_prefix("$labels.") {
            Some(label) => format!("`<{label}>`"),
            None => "`<value>`".to_string(),
        };
        text.replace_range(start..start + length + 2, &word);
    }
    text
}

/// `docker compose -p <stack>`: the project every container command runs in.
fn compose(stack: &Stack) -> String {
    format!("docker compose -p {}", stack.name)
}

/// How to see a service's state and recent log, container or native.
fn status_checks(stack: &Stack, name: &str) -> Vec<Check> {
    let Some(service) = stack.service(name) else {
        return Vec::new();
    };
    let instances: Vec<String> = stack
        .instances(name, service)
        .into_iter()
        .map(|i| i.name)
        .collect();
    match service.deploy {
        Deploy::Native => vec![
            Check {
                what: format!("Whether `{name}` runs"),
                command: format!("systemctl status {name}"),
            },
            Check {
                what: "Its recent log".into(),
                command: format!("journalctl -u {name} -n 100 --no-pager"),
            },
        ],
        Deploy::Container => vec![
            Check {
                what: format!("Whether `{name}` runs"),
                command: format!("{} ps {}", compose(stack), instances.join(" ")),
            },
            Check {
                what: "Its recent log".into(),
                command: format!("{} logs --tail 100 {}", compose(stack), instances[0]),
            },
        ],
    }
}

/// `psql` as `role` into `database` of service `via` (PostgreSQL, or PgBouncer with its
/// console database `pgbouncer`), as the host reaches it; the password from its variable.
fn psql(
    stack: &Stack,
    via: &str,
    database: &str,
    role: &str,
    password_env: Option<&str>,
    sql: &str,
) -> Option<String> {
    let service = stack.service(via)?;
    let endpoint = stack.from_host(via, service.port, service.publish)?;
    let password = password_env
        .map(|env| format!("PGPASSWORD=\"${env}\" "))
        .unwrap_or_default();
    Some(format!(
        "{password}psql \"host={} port={} dbname={database} user={role}\" -c \"{sql}\"",
        endpoint.host, endpoint.port
    ))
}

/// The same into the stack's database behind `via`.
fn psql_data(
    stack: &Stack,
    via: &str,
    role: &str,
    password_env: Option<&str>,
    sql: &str,
) -> Option<String> {
    let (_, pg) = stack.database_of(via)?;
    psql(stack, via, &pg.database, role, password_env, sql)
}

/// `redis-cli` against a Redis or Sentinel port of `name`, authenticated when the model
/// gives it a password.
fn redis_cli(stack: &Stack, name: &str, port: u16, publish: Option<u16>, args: &str) -> String {
    let service = stack.service(name);
    let auth = service
        .and_then(|s| s.redis.as_ref().map(|r| &r.password))
        .and_then(|p| stack.secret_env(&p.secret))
        .map(|env| format!("REDISCLI_AUTH=\"${env}\" "))
        .unwrap_or_default();
    match stack.from_host(name, port, publish) {
        Some(endpoint) => format!(
            "{auth}redis-cli -h {} -p {} {args}",
            endpoint.host, endpoint.port
        ),
        None => format!("{} exec {name} redis-cli -p {port} {args}", compose(stack)),
    }
}

/// The checks of an alert, by kind.
fn checks(stack: &Stack, alert: &Alert) -> Vec<Check> {
    let service_name = alert.service.as_deref().unwrap_or_default();
    let service = stack.service(service_name);
    let mut checks = Vec::new();
    match alert.kind {
        AlertKind::ServiceDown => {
            checks.extend(status_checks(stack, service_name));
            if let Some(s) = service
                && let Some(endpoint) = stack.from_host(service_name, s.port, s.publish)
            {
                checks.push(Check {
                    what: "Whether it answers on its port".into(),
                    command: format!("curl -fsS http://{endpoint}/metrics | head"),
                });
            }
        }
        AlertKind::IngestionLag => {
            if let Some(s) = service {
                if let Some(endpoint) = stack.from_host(service_name, s.port, s.publish) {
                    checks.push(Check {
                        what: "The gateway's own view of its dependencies".into(),
                        command: format!("curl -fsS http://{endpoint}/health"),
                    });
                }
                if let Some(g) = &s.gateway {
                    let password = stack
                        .database_of(&g.database)
                        .and_then(|(_, pg)| pg.roles.get(&g.db_role))
                        .and_then(|r| stack.secret_env(&r.password.secret));
                    let schema = stack
                        .database_of(&g.database)
                        .map(|(_, pg)| pg.schema.clone())
                        .unwrap_or_default();
                    let sql = format!(
                        "SELECT channel_id, max(posted_at) AS newest, now() - max(posted_at) AS lag FROM {schema}.messages GROUP BY 1 ORDER BY 3 DESC"
                    );
                    if let Some(command) = psql_data(stack, &g.database, &g.db_role, password, &sql)
                    {
                        checks.push(Check {
                            what: "The newest stored message per channel".into(),
                            command,
                        });
                    }
                }
            }
            checks.extend(status_checks(stack, service_name));
        }
        AlertKind::RedisDown => {
            if let Some(s) = service {
                checks.push(Check {
                    what: format!("Whether `{service_name}` answers"),
                    command: redis_cli(stack, service_name, s.port, s.publish, "PING"),
                });
                checks.push(Check {
                    what: "Its role and replication".into(),
                    command: redis_cli(stack, service_name, s.port, s.publish, "INFO replication"),
                });
            }
            for (name, sentinel) in stack.services.iter().filter(|(_, s)| {
                s.sentinel
                    .as_ref()
                    .is_some_and(|x| x.monitors == service_name)
            }) {
                let master = sentinel
                    .sentinel
                    .as_ref()
                    .map(|x| x.master_name.clone())
                    .unwrap_or_default();
                if let Some(instance) = stack.instances(name, sentinel).first() {
                    checks.push(Check {
                        what: "Where the Sentinels say the master is (after a failover, the promoted replica)".into(),
                        command: redis_cli(
                            stack,
                            name,
                            instance.port,
                            instance.publish,
                            &format!("SENTINEL get-master-addr-by-name {master}"),
                        ),
                    });
                }
            }
            checks.extend(status_checks(stack, service_name));
        }
        AlertKind::PoolExhausted => {
            if let Some(stats) = service
                .and_then(|s| s.pgbouncer.as_ref())
                .and_then(|b| b.stats.as_ref())
            {
                let password = stack.secret_env(&stats.password.secret);
                let sql = "SHOW POOLS";
                if let Some(command) =
                    psql(stack, service_name, "pgbouncer", &stats.user, password, sql)
                {
                    checks.push(Check {
                        what: "Clients waiting (cl_waiting) and server connections per pool".into(),
                        command,
                    });
                }
            }
            checks.extend(status_checks(stack, service_name));
        }
        AlertKind::QueueBacklog => {
            if let Some(r) = service.and_then(|s| s.rabbitmq.as_ref()) {
                checks.push(Check {
                    what: "Ready and unacknowledged messages and consumers per queue".into(),
                    command: format!(
                        "{} exec {service_name} rabbitmqctl -p {} list_queues name messages_ready messages_unacknowledged consumers",
                        compose(stack),
                        r.vhost
                    ),
                });
                checks.push(Check {
                    what: "Who consumes from each queue".into(),
                    command: format!(
                        "{} exec {service_name} rabbitmqctl -p {} list_consumers",
                        compose(stack),
                        r.vhost
                    ),
                });
            }
        }
        AlertKind::CacheHitRate => match service.map(|s| s.kind) {
            Some(Kind::Postgres) => {
                let (_, pg) = stack.database_of(service_name).unzip();
                let readonly = pg.and_then(|pg| {
                    pg.roles
                        .iter()
                        .find(|(_, r)| r.access == crate::model::Access::Readonly)
                        .map(|(name, r)| {
                            (name.clone(), r.password.secret.clone(), pg.database.clone())
                        })
                });
                let via = stack
                    .services
                    .iter()
                    .find(|(_, s)| {
                        s.pgbouncer
                            .as_ref()
                            .is_some_and(|b| b.upstream == service_name)
                    })
                    .map(|(n, _)| n.as_str())
                    .unwrap_or(service_name);
                if let Some((role, secret, database)) = readonly {
                    let sql = format!(
                        "SELECT blks_hit, blks_read, round(blks_hit::numeric / nullif(blks_hit + blks_read, 0), 3) AS hit_rate FROM pg_stat_database WHERE datname = '{database}'"
                    );
                    if let Some(command) =
                        psql_data(stack, via, &role, stack.secret_env(&secret), &sql)
                    {
                        checks.push(Check {
                            what: "The buffer cache hit rate since the statistics were reset"
                                .into(),
                            command,
                        });
                    }
                }
            }
            Some(Kind::Redis) => {
                if let Some(s) = service {
                    checks.push(Check {
                        what: "Keyspace hits and misses".into(),
                        command: format!(
                            "{} | grep keyspace_",
                            redis_cli(stack, service_name, s.port, s.publish, "INFO stats")
                        ),
                    });
                }
            }
            Some(Kind::Api) => {
                if let Some(s) = service
                    && let Some(endpoint) = stack.from_host(service_name, s.port, s.publish)
                {
                    checks.push(Check {
                        what: "The read cache's hits and misses by reason".into(),
                        command: format!(
                            "curl -fsS http://{endpoint}/metrics | grep tg_api_cache_"
                        ),
                    });
                }
            }
            _ => {}
        },
        AlertKind::DiskSpace => checks.push(Check {
            what: "Free space on the host's file systems".into(),
            command: format!("df -h {}", alert.mountpoint.as_deref().unwrap_or("/")),
        }),
        AlertKind::MemoryHigh => checks.push(Check {
            what: "Memory of each container against its limit".into(),
            command: format!("{} ps -q | xargs docker stats --no-stream", compose(stack)),
        }),
        AlertKind::Custom => {}
    }
    checks
}

/// The alert's expression through Prometheus's HTTP API, as the host reaches Prometheus.
fn prometheus_query(stack: &Stack, alert: &BuiltAlert) -> Option<String> {
    let (name, service) = crate::model::alerting::prometheus_service(stack)?;
    let endpoint = stack.from_host(name, service.port, service.publish)?;
    Some(format!(
        "curl -fsS http://{endpoint}/api/v1/query --data-urlencode 'query={}'",
        alert.expr.replace('\'', "'\\''")
    ))
}
