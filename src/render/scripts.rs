//! Operations scripts (`scripts/*.sh`, bash): start, stop, health, backup, migrate and
//! rollback, computed from the model. No secret is written into them: each reads the
//! variables it needs from the compose env file in `deploy.secrets_dir` (without executing
//! it) at run time.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Value, context};

use super::compose::{ComposeService, compose_services};
use super::{Output, sql};
use crate::model::{Deploy, Kind, Model, Stack};
use crate::model::{native, paths, secret_files};

/// The scripts, by file name: (file, template).
pub const SCRIPTS: &[(&str, &str)] = &[
    ("scripts/start.sh", "scripts/start.sh.j2"),
    ("scripts/stop.sh", "scripts/stop.sh.j2"),
    ("scripts/health.sh", "scripts/health.sh.j2"),
    ("scripts/backup.sh", "scripts/backup.sh.j2"),
    ("scripts/migrate.sh", "scripts/migrate.sh.j2"),
    ("scripts/rollback.sh", "scripts/rollback.sh.j2"),
    ("scripts/cutover.sh", "scripts/cutover.sh.j2"),
    (
        "scripts/cutover-rollback.sh",
        "scripts/cutover-rollback.sh.j2",
    ),
];

/// Compose services in start order: every service after what it depends on (ties by
/// name, so the order is stable). Stop order is the reverse.
pub fn start_order(services: &[ComposeService]) -> Vec<String> {
    let mut pending: BTreeMap<&str, BTreeSet<&str>> = services
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on.keys().map(String::as_str).collect(),
            )
        })
        .collect();
    let mut order = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<&str> = pending
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !pending.contains_key(d)))
            .map(|(name, _)| *name)
            .collect();
        // A cycle (reported by the validator) must not hang rendering: take the rest by name.
        let batch = if ready.is_empty() {
            pending.keys().copied().collect()
        } else {
            ready
        };
        for name in batch {
            pending.remove(name);
            order.push(name.to_string());
        }
    }
    order
}

/// Seconds a container gets to stop gracefully: databases flush, the rest drain.
fn stop_timeout(stack: &Stack, instance: &str) -> u64 {
    let kind = stack
        .services
        .iter()
        .find(|(name, s)| stack.instances(name, s).iter().any(|i| i.name == instance))
        .map(|(_, s)| s.kind);
    match kind {
        Some(Kind::Postgres | Kind::Rabbitmq) => 60,
        Some(Kind::Redis) => 30,
        _ => 20,
    }
}

fn context(stack: &Stack) -> Result<Value, String> {
    let services = compose_services(stack);
    let order = start_order(&services);
    let by_name: BTreeMap<&str, &ComposeService> =
        services.iter().map(|s| (s.name.as_str(), s)).collect();
    let containers: Vec<Value> = order
        .iter()
        .map(|name| context! { name, stop_timeout => stop_timeout(stack, name) })
        .collect();
    let health = container_health(&order, &by_name);
    let natives: Vec<Value> = stack
        .services
        .iter()
        .filter(|(_, s)| s.deploy == Deploy::Native)
        .map(|(name, s)| {
            context! {
                name,
                unit => format!("{name}.service"),
                health_url => health_url(&stack.listen_address(s), s.port),
                session_file => native::session_file(stack, name),
                user => native::user(name, s),
            }
        })
        .collect();
    let postgres = postgres_target(stack)?;
    // What the migrations need running first: the PostgreSQL service when it is a
    // container (compose brings up what it depends on with it).
    let migrate_first: Vec<String> = stack
        .services
        .iter()
        .find(|(_, s)| s.postgres.is_some())
        .filter(|(_, s)| s.deploy == Deploy::Container)
        .map(|(name, _)| name.clone())
        .into_iter()
        .collect();
    let redis = redis_masters(stack);
    let rabbitmq: Vec<String> = stack
        .services
        .iter()
        .filter(|(_, s)| s.kind == Kind::Rabbitmq)
        .map(|(name, _)| name.clone())
        .collect();
    Ok(context! {
        gateway => cutover_gateway(stack),
        project => &stack.name,
        config_dir => stack.deploy.config_dir.trim_end_matches('/'),
        secrets_dir => stack.deploy.secrets_dir.trim_end_matches('/'),
        env_file => secret_files::ENV_FILE,
        containers,
        health,
        natives,
        postgres,
        migrate_first,
        redis,
        rabbitmq,
    })
}

/// The gateway service cutover.sh and cutover-rollback.sh run `tg-gateway` as (the first
/// by name), and how: as its unit runs it, or in its compose service.
fn cutover_gateway(stack: &Stack) -> Option<Value> {
    let (name, service) = stack
        .services
        .iter()
        .find(|(_, s)| s.kind == Kind::Gateway)?;
    Some(context! {
        name,
        native => service.deploy == Deploy::Native,
        unit => format!("{name}.service"),
        user => native::user(name, service),
        binary => native::binary(service),
        env_file => native::env_file(stack, name),
        model_path => native::model_path(stack),
    })
}

/// The native service's /health where it listens (the model's `listen`, default
/// 127.0.0.1): a wildcard bind is reached on loopback, an IPv6 address in brackets.
fn health_url(listen: &str, port: u16) -> String {
    let host = match listen {
        "0.0.0.0" => "127.0.0.1",
        "::" | "[::]" => "::1",
        other => other.trim_start_matches('[').trim_end_matches(']'),
    };
    if host.contains(':') {
        format!("http://[{host}]:{port}/health")
    } else {
        format!("http://{host}:{port}/health")
    }
}

/// Each container's own healthcheck, run inside it: the check Docker itself uses.
fn container_health(order: &[String], by_name: &BTreeMap<&str, &ComposeService>) -> Vec<Value> {
    order
        .iter()
        .filter_map(|name| by_name.get(name.as_str()))
        .map(|s| match &s.healthcheck {
            Some(h) if h.test.first().map(String::as_str) == Some("CMD-SHELL") => context! {
                name => &s.name,
                kind => "shell",
                // Compose escapes `$` as `$$`; the shell inside the container gets `$`.
                command => h.test.get(1).map(|c| c.replace("$$", "$")).unwrap_or_default(),
            },
            Some(h) if h.test.first().map(String::as_str) == Some("CMD") => context! {
                name => &s.name,
                kind => "exec",
                argv => h.test[1..].to_vec(),
            },
            _ => context! { name => &s.name, kind => "running" },
        })
        .collect()
}

/// The PostgreSQL service migrate and backup connect to, from the host.
fn postgres_target(stack: &Stack) -> Result<Value, String> {
    let (pg_name, pg_service, pg) = stack
        .services
        .iter()
        .find_map(|(n, s)| s.postgres.as_ref().map(|p| (n, s, p)))
        .ok_or("the scripts need a postgres service in the model")?;
    // Migrations go straight to PostgreSQL, never through PgBouncer.
    let pg_port = match pg_service.deploy {
        Deploy::Native => pg_service.port,
        Deploy::Container => pg_service.publish.ok_or_else(|| {
            format!("services.{pg_name}: migrate and backup reach PostgreSQL from the host, so it needs `publish`")
        })?,
    };
    let roles: Vec<Value> = pg
        .roles
        .iter()
        .map(|(role, spec)| {
            context! {
                var => format!("{}_password", role.to_lowercase()),
                env => stack.secret_env(&spec.password.secret).unwrap_or_default(),
            }
        })
        .collect();
    Ok(context! {
        service => pg_name,
        host => "127.0.0.1",
        port => pg_port,
        superuser => &pg.superuser,
        database => &pg.database,
        schema => &pg.schema,
        password_env => stack.secret_env(&pg.superuser_password.secret).unwrap_or_default(),
        variant => paths::variant_dir(pg.variant),
        files => sql::FILES.iter().map(|(stem, _)| format!("{stem}.sql")).collect::<Vec<_>>(),
        roles,
    })
}

/// Redis servers that are not replicas, with the host port to reach them on.
fn redis_masters(stack: &Stack) -> Vec<Value> {
    stack
        .services
        .iter()
        .filter_map(|(name, s)| {
            let r = s.redis.as_ref()?;
            if r.replica_of.is_some() {
                return None;
            }
            let port = match s.deploy {
                Deploy::Native => Some(s.port),
                Deploy::Container => s.publish,
            };
            Some(context! { name, port, password_env => stack.secret_env(&r.password.secret).unwrap_or_default() })
        })
        .collect()
}

pub fn outputs(model: &Model) -> Vec<Output> {
    // The operations scripts drive `docker compose` on one host; a swarm is driven by
    // `swarm/deploy.sh` instead.
    if model.stack.is_swarm() {
        return Vec::new();
    }
    let ctx = context(&model.stack).unwrap_or_else(|problem| context! { refused => problem });
    SCRIPTS
        .iter()
        .map(|(path, template)| Output::new(*path, template, ctx.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::health_url;

    #[test]
    fn health_url_follows_the_listen_address() {
        assert_eq!(
            health_url("127.0.0.1", 4007),
            "http://127.0.0.1:4007/health"
        );
        assert_eq!(
            health_url("172.17.0.1", 4007),
            "http://172.17.0.1:4007/health"
        );
        assert_eq!(health_url("0.0.0.0", 4007), "http://127.0.0.1:4007/health");
        assert_eq!(health_url("::", 4007), "http://[::1]:4007/health");
        assert_eq!(health_url("fd00::1", 4007), "http://[fd00::1]:4007/health");
    }
}
