//! Data-layer rules across the audited files: where PgBouncer and Sentinel point, auth
//! methods that must agree, pg_hba width, pool sizes against max_connections, Sentinel
//! quorum against the Sentinels deployed, Redis maxmemory against the container limit.

use super::deployment::ComposeService;
use super::{Audit, Audited, FileKind};
use crate::check::artifacts::parse;
use crate::check::dialect::values::redis_number;

/// Default ports of the programs, for files that do not set one.
const POSTGRES_PORT: &str = "5432";
const REDIS_PORT: &str = "6379";

pub fn run(audit: &mut Audit<'_>) {
    for file in audit.of_kind(FileKind::Pgbouncer) {
        pgbouncer(audit, file);
    }
    for file in audit.of_kind(FileKind::PgHba) {
        pg_hba(audit, file);
    }
    for file in audit.of_kind(FileKind::Sentinel) {
        sentinel(audit, file);
    }
    for file in audit.of_kind(FileKind::Redis) {
        redis_memory(audit, file);
    }
}

/// `key = value` settings of a postgresql.conf / rabbitmq.conf.
fn setting(file: &Audited, key: &str) -> Option<(String, usize)> {
    let (settings, _) = parse::settings(&file.text);
    settings
        .into_iter()
        .rev()
        .find(|s| s.key == key)
        .map(|s| (s.value, s.line))
}

/// The postgresql.conf of a compose service (mounted into it), or the only one audited.
fn postgres_conf<'a>(audit: &Audit<'a>, service: Option<&ComposeService>) -> Option<&'a Audited> {
    if let Some(service) = service
        && let Some(file) = audit
            .deployment
            .files_in(service, FileKind::Postgresql)
            .first()
    {
        return Some(file);
    }
    let mut all = audit.of_kind(FileKind::Postgresql);
    let only = all.next();
    all.next().is_none().then_some(only).flatten()
}

/// Whether `host` names something other than a compose service.
/// Only single-label names are judged: an FQDN (a managed database), an address, a Unix
/// socket directory or a host list names something outside the compose file on purpose.
fn unknown_host(audit: &Audit<'_>, host: &str) -> bool {
    super::single_label(host)
        && !audit.deployment.services.is_empty()
        && !audit.deployment.services.contains_key(host)
        && host != "localhost"
}

fn pgbouncer(audit: &mut Audit<'_>, file: &Audited) {
    let (entries, _) = parse::ini(&file.text);
    let get = |key: &str| {
        entries
            .iter()
            .rev()
            .find(|e| e.section == "pgbouncer" && e.key == key)
    };
    let databases: Vec<_> = entries
        .iter()
        .filter(|e| e.section == "databases" && e.key != "*")
        .collect();
    let mut pools: u64 = 0;
    let mut upstream: Option<String> = None;
    for entry in &databases {
        let pairs: Vec<(&str, &str)> = entry
            .value
            .split_whitespace()
            .filter_map(|p| p.split_once('='))
            .collect();
        let field = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let host = field("host").unwrap_or("localhost");
        let service = audit.deployment.services.get(host);
        if unknown_host(audit, host) {
            audit.error(
                "TG202",
                &file.rel,
                entry.line,
                format!(
                    "[databases] `{}` connects to host `{host}`, which is no service of the \
                    compose file",
                    entry.key,
                ),
                audit.deployment.nearest_service(host),
            );
            continue;
        }
        let upstream = upstream.get_or_insert_with(|| host.to_owned()).clone();
        let conf = postgres_conf(audit, service);
        let listens = conf
            .and_then(|c| setting(c, "port"))
            .map_or(POSTGRES_PORT.to_string(), |(p, _)| p);
        let port = field("port").unwrap_or(POSTGRES_PORT);
        if service.is_some() && port != listens {
            audit.error(
                "TG202",
                &file.rel,
                entry.line,
                format!(
                    "[databases] `{}` connects to {host}:{port}, but PostgreSQL there \
                    listens on {listens}",
                    entry.key,
                ),
                format!("use port={listens}"),
            );
        }
        // Only the server the first entry names is compared with its max_connections;
        // a database's pool never exceeds its max_db_connections.
        if host != upstream {
            continue;
        }
        let number = |value: Option<&str>| value.and_then(|v| v.parse::<u64>().ok());
        let default = number(get("default_pool_size").map(|e| e.value.as_str())).unwrap_or(20);
        let mut size = number(field("pool_size")).unwrap_or(default);
        let cap = number(field("max_db_connections"))
            .or(number(get("max_db_connections").map(|e| e.value.as_str())))
            .filter(|c| *c > 0);
        if let Some(cap) = cap {
            size = size.min(cap);
        }
        pools = pools.saturating_add(size);
    }
    let service = upstream
        .as_deref()
        .and_then(|h| audit.deployment.services.get(h));
    let Some(conf) = postgres_conf(audit, service) else {
        return;
    };
    auth_method(
        audit,
        file,
        get("auth_type").map(|e| (e.value.clone(), e.line)),
        conf,
    );
    let reserve = get("reserve_pool_size")
        .and_then(|e| e.value.parse::<u64>().ok())
        .unwrap_or(0);
    let number = |key: &str, default: u64| {
        setting(conf, key)
            .and_then(|(v, _)| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let (max, reserved) = (
        number("max_connections", 100),
        number("superuser_reserved_connections", 3),
    );
    let line = get("default_pool_size").map_or(1, |e| e.line);
    if pools.saturating_add(reserve) > max.saturating_sub(reserved) {
        audit.error(
            "TG404",
            &file.rel,
            line,
            format!(
                "the pools need up to {} server connections ({pools} pooled + {reserve} \
                reserve), but {} allows {} (max_connections {max} - {reserved} reserved)",
                pools.saturating_add(reserve),
                conf.rel,
                max.saturating_sub(reserved),
            ),
            "shrink the pools or raise max_connections",
        );
    }
}

/// TG101: PgBouncer's auth_type against the server's password_encryption.
fn auth_method(
    audit: &mut Audit<'_>,
    file: &Audited,
    auth_type: Option<(String, usize)>,
    conf: &Audited,
) {
    let Some((auth, line)) = auth_type else {
        return;
    };
    let encryption =
        setting(conf, "password_encryption").map_or("scram-sha-256".to_string(), |(v, _)| v);
    let agrees = match auth.as_str() {
        "scram-sha-256" => encryption == "scram-sha-256",
        "md5" => true, // md5 in PgBouncer also accepts SCRAM secrets
        "hba" | "cert" | "pam" => true,
        _ => false,
    };
    if !agrees {
        audit.error(
            "TG101",
            &file.rel,
            line,
            format!(
                "auth_type = {auth}, but {} stores passwords as {encryption}: clients cannot \
                log in the same way through the pooler",
                conf.rel,
            ),
            format!("use auth_type = {encryption}"),
        );
    } else if auth == "md5" && encryption == "scram-sha-256" {
        audit.error(
            "TG101",
            &file.rel,
            line,
            format!(
                "auth_type = md5 while {} uses scram-sha-256: clients send weaker MD5 to the \
                pooler",
                conf.rel,
            ),
            "use auth_type = scram-sha-256",
        );
    }
}

fn pg_hba(audit: &mut Audit<'_>, file: &Audited) {
    let (records, _) = parse::hba(&file.text);
    let service = audit
        .deployment
        .services_reading(&file.rel)
        .into_iter()
        .next();
    let encryption = postgres_conf(audit, service)
        .and_then(|c| setting(c, "password_encryption"))
        .map(|(v, _)| v);
    for record in records {
        if record.kind == "local" {
            continue;
        }
        let address = record.address.as_deref().unwrap_or("");
        if record.method == "trust" {
            audit.error(
                "TG103",
                &file.rel,
                record.line,
                format!(
                    "pg_hba.conf trusts {} connections from {address}: no password at all",
                    record.kind
                ),
                "use scram-sha-256",
            );
        } else if matches!(address, "0.0.0.0/0" | "::/0" | "all") {
            audit.error(
                "TG103",
                &file.rel,
                record.line,
                format!(
                    "pg_hba.conf admits {address}: any address that reaches the port may try \
                    to log in",
                ),
                "limit it to the networks the clients run on",
            );
        } else if let Some(encryption) = &encryption
            && matches!(record.method.as_str(), "md5" | "password" | "scram-sha-256")
            && record.method != *encryption
        {
            audit.error(
                "TG101",
                &file.rel,
                record.line,
                format!(
                    "pg_hba.conf asks for {} but the server stores {encryption} passwords",
                    record.method
                ),
                format!("use {encryption}"),
            );
        }
    }
}

fn sentinel(audit: &mut Audit<'_>, file: &Audited) {
    let (directives, _) = parse::redis_conf(&file.text);
    let sentinels = audit
        .deployment
        .services
        .values()
        .filter(|s| !audit.deployment.files_in(s, FileKind::Sentinel).is_empty())
        .count();
    let sentinels = if sentinels == 0 {
        audit.of_kind(FileKind::Sentinel).count()
    } else {
        sentinels
    };
    for d in directives.iter().filter(|d| {
        d.name() == "sentinel" && d.arg(0).is_some_and(|s| s.eq_ignore_ascii_case("monitor"))
    }) {
        let (Some(host), Some(port), Some(quorum)) = (d.arg(2), d.arg(3), d.arg(4)) else {
            continue;
        };
        if unknown_host(audit, host) {
            audit.error(
                "TG202",
                &file.rel,
                d.line,
                format!("Sentinel monitors `{host}`, which is no service of the compose file"),
                "name the master's compose service (with resolve-hostnames yes)",
            );
        } else if let Some(service) = audit.deployment.services.get(host) {
            let listens = audit
                .deployment
                .files_in(service, FileKind::Redis)
                .first()
                .and_then(|f| {
                    parse::redis_conf(&f.text)
                        .0
                        .into_iter()
                        .rev()
                        .find(|d| d.name() == "port")
                })
                .and_then(|d| d.arg(0).map(String::from))
                .unwrap_or_else(|| REDIS_PORT.to_string());
            if port != listens {
                audit.error(
                    "TG202",
                    &file.rel,
                    d.line,
                    format!(
                        "Sentinel monitors {host}:{port}, but Redis there listens on {listens}"
                    ),
                    format!("use port {listens}"),
                );
            }
        }
        if let Ok(quorum) = quorum.parse::<usize>()
            && quorum > sentinels
        {
            audit.error(
                "TG301",
                &file.rel,
                d.line,
                format!(
                    "quorum {quorum} but only {sentinels} Sentinels are deployed: a failover \
                    can never be agreed",
                ),
                format!("a quorum of {} of {sentinels}", sentinels / 2 + 1),
            );
        }
    }
}

/// TG303: Redis's maxmemory leaves a quarter of the container limit for fork and buffers.
fn redis_memory(audit: &mut Audit<'_>, file: &Audited) {
    let (directives, _) = parse::redis_conf(&file.text);
    let Some(d) = directives.iter().rev().find(|d| d.name() == "maxmemory") else {
        return;
    };
    // In f64: sizes a file may write (`99999999999gb`) overflow u64 arithmetic.
    let Some(bytes) = d.arg(0).and_then(|v| redis_number(v, true, false)) else {
        return;
    };
    let limits: Vec<(String, u64)> = audit
        .deployment
        .services_reading(&file.rel)
        .into_iter()
        .filter_map(|s| Some((s.name.clone(), s.memory_limit?)))
        .collect();
    for (name, limit) in limits {
        if bytes * 4.0 > limit as f64 * 3.0 {
            audit.error(
                "TG303",
                &file.rel,
                d.line,
                format!(
                    "maxmemory {} is more than 75% of `{name}`'s memory limit of {} MiB: a \
                    background save's fork or client buffers push it over and the kernel \
                    kills it",
                    d.arg(0).unwrap_or(""),
                    limit >> 20,
                ),
                format!("at most {}mb", (limit / 4 * 3) >> 20),
            );
        }
    }
}
