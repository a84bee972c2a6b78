//! The data services' settings, from the files they read: postgresql.conf and the SQL,
//! pgbouncer.ini, redis.conf and sentinel.conf, rabbitmq.conf and its definitions.

use regex::Regex;
use serde_json::Value;

use super::Import;
use super::draft::{Table, secret_ref};
use super::read::{
    assignments, directive, directives, interval, postgres_bytes, postgres_millis, quoted_after,
    redis_bytes, value,
};
use super::secrets::interpolated;
use super::services::{Found, own_table};
use crate::check::audit::{Audited, FileKind};
use crate::model::units::Duration;

/// The audited file of `kind` the service reads through its mounts (its first instance's).
pub fn mounted<'a>(import: &Import<'a>, found: &Found, kind: FileKind) -> Option<&'a Audited> {
    let deployment = import.source.deployment;
    let service = deployment.services.get(found.instances.first()?)?;
    deployment.files_in(service, kind).into_iter().next()
}

/// Every audited file of `kind` the service reads through its mounts.
pub fn mounted_all<'a>(import: &Import<'a>, found: &Found, kind: FileKind) -> Vec<&'a Audited> {
    let deployment = import.source.deployment;
    let Some(service) = found
        .instances
        .first()
        .and_then(|i| deployment.services.get(i))
    else {
        return Vec::new();
    };
    deployment.files_in(service, kind)
}

/// Settings a config file sets that the model has no field for, unless the value is the
/// one tgstack writes itself: each becomes a line of the "not represented" list.
fn leftovers(
    import: &mut Import<'_>,
    file: &Audited,
    pairs: &[(String, String)],
    mapped: &[&str],
    written: &[(&str, &str)],
) {
    for (key, val) in pairs {
        if mapped.contains(&key.as_str()) {
            continue;
        }
        if written.iter().any(|(k, v)| k == key && v == val) {
            continue;
        }
        // The value as a reviewer needs it, but never a credential, and on one line.
        let shown = if crate::finding::is_credential_name(key) {
            "…".to_owned()
        } else {
            crate::finding::mask_credentials(val)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        };
        import.unrepresented(format!(
            "{}: `{key} = {shown}` (the model has no such setting)",
            file.rel
        ));
    }
}

/// A secret for a password the files give as `value`: its variable when interpolated, a
/// new secret otherwise.
fn password_secret(import: &mut Import<'_>, value: &str, id: &str, where_: &str) -> toml::Value {
    let id = match interpolated(value) {
        Some(var) => import.secrets.by_env(var),
        None => import.secrets.literal(id, where_),
    };
    secret_ref(&id)
}

/// The secret behind a compose secret file (`/run/secrets/NAME`): its `environment:`
/// variable, or a new secret when it is a file.
fn compose_secret(import: &mut Import<'_>, path: &str) -> Option<String> {
    let name = path.strip_prefix("/run/secrets/")?;
    let declared = import.source.files.iter().find_map(|f| match &f.yaml {
        Some(Ok(document)) if f.kind == FileKind::Compose => document["secrets"].get(name).cloned(),
        _ => None,
    })?;
    Some(match declared["environment"].as_str() {
        Some(var) => import.secrets.by_env(var),
        None => import.secrets.literal(name, "a compose secret file"),
    })
}

/// What postgresql.conf settings the model has: (key, field, the parameter's unit).
const POSTGRES_FIELDS: &[(&str, &str, &str)] = &[
    ("max_connections", "max_connections", ""),
    (
        "superuser_reserved_connections",
        "superuser_reserved_connections",
        "",
    ),
    ("password_encryption", "password_encryption", ""),
    ("shared_buffers", "shared_buffers", "8kB"),
    ("effective_cache_size", "effective_cache_size", "8kB"),
    ("maintenance_work_mem", "maintenance_work_mem", "kB"),
    ("work_mem", "work_mem", "kB"),
    ("wal_buffers", "wal_buffers", "8kB"),
    ("min_wal_size", "min_wal_size", "MB"),
    ("max_wal_size", "max_wal_size", "MB"),
    (
        "checkpoint_completion_target",
        "checkpoint_completion_target",
        "",
    ),
    ("random_page_cost", "random_page_cost", ""),
    ("effective_io_concurrency", "effective_io_concurrency", ""),
    ("statement_timeout", "statement_timeout", "ms"),
];

/// postgresql.conf lines tgstack writes for every server (logging, extensions).
const POSTGRES_WRITTEN: &[(&str, &str)] = &[
    ("listen_addresses", "*"),
    ("shared_preload_libraries", "timescaledb,pg_stat_statements"),
    ("shared_preload_libraries", "pg_stat_statements"),
    ("pg_stat_statements.track", "all"),
    ("timescaledb.telemetry_level", "off"),
    ("log_destination", "stderr"),
    ("log_min_duration_statement", "1000"),
    ("log_connections", "on"),
    ("log_disconnections", "on"),
];

pub fn postgres(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let conf = mounted(import, found, FileKind::Postgresql);
    let pairs = conf.map(|f| assignments(&f.text, None)).unwrap_or_default();
    let timescale = found
        .image
        .as_deref()
        .is_some_and(|i| i.contains("timescale"))
        || value(&pairs, "shared_preload_libraries").is_some_and(|l| l.contains("timescaledb"));
    let superuser_password = match found.env("POSTGRES_PASSWORD") {
        Some(v) => Some(password_secret(
            import,
            v,
            "postgres_superuser",
            &format!("the environment of `{}`", found.name),
        )),
        None => found
            .env("POSTGRES_PASSWORD_FILE")
            .and_then(|path| compose_secret(import, path))
            .map(|id| secret_ref(&id)),
    };
    let sql = sql_facts(import);
    let roles = roles(import, &sql, &credentials(import, all));
    if let Some(port) = value(&pairs, "port").and_then(|p| p.parse::<u16>().ok()) {
        import.service(&found.name).set("port", port);
    } else {
        import.service(&found.name).set("port", 5432u16);
    }
    let table = import.service(&found.name).table("postgres");
    table.set("variant", if timescale { "timescaledb" } else { "plain" });
    match found.env("POSTGRES_DB") {
        Some(db) => table.set("database", db),
        None => table.guess(
            "database",
            "postgres",
            "no POSTGRES_DB: the image's default",
        ),
    };
    if let Some(schema) = &sql.schema {
        table.set("schema", schema.as_str());
    }
    table.set(
        "superuser",
        found.env("POSTGRES_USER").unwrap_or("postgres"),
    );
    match superuser_password {
        Some(secret) => table.set("superuser_password", secret),
        None => table.guess(
            "superuser_password",
            secret_ref("postgres_superuser"),
            "no POSTGRES_PASSWORD in the environment",
        ),
    };
    for (key, field, unit) in POSTGRES_FIELDS {
        let Some(text) = value(&pairs, key) else {
            continue;
        };
        let parsed: Option<toml::Value> = match *unit {
            "" => text
                .parse::<i64>()
                .map(toml::Value::from)
                .or_else(|_| text.parse::<f64>().map(toml::Value::from))
                .ok()
                .or_else(|| Some(toml::Value::from(text))),
            "ms" => postgres_millis(text).map(|d| d.to_string().into()),
            unit => postgres_bytes(text, unit).map(|b| b.to_string().into()),
        };
        if let Some(parsed) = parsed {
            table.set(field, parsed);
        }
    }
    for (key, interval) in [
        ("chunk_interval", sql.chunk_interval),
        ("compress_after", sql.compress_after),
        ("retention", sql.retention),
    ] {
        if let Some(d) = interval {
            table.set(key, d.to_string());
        }
    }
    for (name, role) in roles {
        *table.table("roles").table(&name) = role;
    }
    let aggregates = sql.aggregates;
    if aggregates.iter().any(Option::is_some) {
        let table = table.table("aggregates");
        let keys = [
            "hourly_bucket",
            "daily_bucket",
            "refresh_interval",
            "refresh_window",
        ];
        for (key, d) in keys.into_iter().zip(aggregates) {
            if let Some(d) = d {
                table.set(key, d.to_string());
            }
        }
    }
    if let Some(conf) = conf {
        let mut mapped: Vec<&str> = POSTGRES_FIELDS.iter().map(|(k, _, _)| *k).collect();
        mapped.push("port");
        leftovers(import, conf, &pairs, &mapped, POSTGRES_WRITTEN);
    }
}

/// What the SQL files of the tree say about the schema tgstack manages.
#[derive(Default)]
struct SqlFacts {
    schema: Option<String>,
    chunk_interval: Option<Duration>,
    compress_after: Option<Duration>,
    retention: Option<Duration>,
    /// hourly bucket, daily bucket, refresh interval, refresh window.
    aggregates: [Option<Duration>; 4],
    /// (role, connection limit) created by the roles script.
    roles: Vec<(String, Option<i64>)>,
    /// (role, access) from the grants.
    grants: Vec<(String, &'static str)>,
    /// (role, variable) its password is read from by the migration script.
    role_passwords: Vec<(String, String)>,
}

fn sql_facts(import: &Import<'_>) -> SqlFacts {
    let mut facts = SqlFacts::default();
    let schema = Regex::new(r#"CREATE SCHEMA IF NOT EXISTS "?([A-Za-z_][A-Za-z0-9_]*)"?"#).ok();
    let role = Regex::new(
        r"(?i)ALTER ROLE %I WITH LOGIN PASSWORD %L CONNECTION LIMIT %s', '([^']+)', :'[^']+', (-?\d+)\)",
    )
    .ok();
    let plain_role = Regex::new(r"(?i)CREATE (?:ROLE|USER) ([A-Za-z_][A-Za-z0-9_]*)").ok();
    let grant = Regex::new(r"(?is)GRANT ([A-Z, ]+?) ON ([^;]*?) TO ([^;]+);").ok();
    for file in import.source.of_kind(FileKind::Sql) {
        let text = &file.text;
        if facts.schema.is_none() {
            facts.schema = schema
                .as_ref()
                .and_then(|r| r.captures(text))
                .map(|c| c[1].to_owned());
        }
        let interval_after = |marker: &str| quoted_after(text, marker).and_then(interval);
        facts.chunk_interval = facts
            .chunk_interval
            .or_else(|| interval_after("chunk_time_interval => INTERVAL"));
        facts.compress_after = facts
            .compress_after
            .or_else(|| interval_after("compress_after => INTERVAL"));
        facts.retention = facts
            .retention
            .or_else(|| interval_after("drop_after => INTERVAL"));
        if text.contains("CREATE MATERIALIZED VIEW") && facts.aggregates[0].is_none() {
            let buckets: Vec<Duration> = text
                .match_indices("time_bucket(INTERVAL")
                .filter_map(|(at, _)| quoted_after(&text[at..], "time_bucket(INTERVAL"))
                .filter_map(interval)
                .collect();
            let mut distinct = buckets.clone();
            distinct.dedup();
            facts.aggregates = [
                distinct.first().copied(),
                distinct.get(1).copied(),
                interval_after("schedule_interval => INTERVAL"),
                interval_after("start_offset => INTERVAL"),
            ];
        }
        for c in role.iter().flat_map(|r| r.captures_iter(text)) {
            if !facts.roles.iter().any(|(r, _)| r == &c[1]) {
                facts.roles.push((c[1].to_owned(), c[2].parse().ok()));
            }
        }
        if !text.contains("%I") {
            for c in plain_role.iter().flat_map(|r| r.captures_iter(text)) {
                if !facts.roles.iter().any(|(r, _)| r == &c[1]) {
                    facts.roles.push((c[1].to_owned(), None));
                }
            }
        }
        for c in grant.iter().flat_map(|r| r.captures_iter(text)) {
            // Privileges on tables (not schemas, sequences or functions) say the access.
            if c[2].to_ascii_uppercase().contains("SCHEMA")
                && !c[2].to_ascii_uppercase().contains("TABLES")
            {
                continue;
            }
            let privileges = c[1].to_ascii_uppercase();
            if !privileges.contains("SELECT") && !privileges.contains("INSERT") {
                continue;
            }
            let writes = ["INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|w| privileges.contains(w));
            for role in c[3].split(',').map(|r| r.trim().trim_matches('"')) {
                let access = if writes { "readwrite" } else { "readonly" };
                match facts.grants.iter_mut().find(|(r, _)| r == role) {
                    Some((_, known)) if writes => *known = access,
                    Some(_) => {}
                    None => facts.grants.push((role.to_owned(), access)),
                }
            }
        }
    }
    for script in import.source.of_kind(FileKind::Shell) {
        for line in script.text.lines() {
            let Some(rest) = line.split("\\\\getenv %s %s").nth(1) else {
                continue;
            };
            // `\\getenv %s %s\n' 'role_password' 'VARIABLE'`: the words after the format.
            let args: Vec<&str> = rest
                .split('\'')
                .skip(1)
                .filter(|w| !w.trim().is_empty())
                .collect();
            if let [var, env, ..] = args.as_slice()
                && let Some(role) = var.strip_suffix("_password")
            {
                facts
                    .role_passwords
                    .push((role.to_owned(), (*env).to_owned()));
            }
        }
    }
    facts
}

/// `[roles.NAME]` tables: password secret, access, connection limit.
fn roles(
    import: &mut Import<'_>,
    facts: &SqlFacts,
    consumers: &[(String, String)],
) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    for (name, limit) in &facts.roles {
        let mut role = Table::default();
        let env = facts
            .role_passwords
            .iter()
            .chain(consumers)
            .find(|(r, _)| r == name)
            .map(|(_, env)| env.clone());
        match env {
            Some(env) => {
                let id = import.secrets.by_env(&env);
                role.set("password", secret_ref(&id));
            }
            None => {
                let id = import
                    .secrets
                    .literal(&format!("db_{name}"), "the SQL that creates the role");
                role.guess(
                    "password",
                    secret_ref(&id),
                    "no file says where the role's password comes from",
                );
            }
        }
        match facts.grants.iter().find(|(r, _)| r == name) {
            Some((_, access)) => role.set("access", *access),
            None => role.guess(
                "access",
                "readonly",
                "no grant on the schema's tables found",
            ),
        };
        if let Some(limit) = limit {
            role.set("connection_limit", *limit);
        }
        out.push((name.clone(), role));
    }
    out
}

const PGBOUNCER_FIELDS: &[&str] = &[
    "pool_mode",
    "default_pool_size",
    "min_pool_size",
    "reserve_pool_size",
    "max_client_conn",
    "max_prepared_statements",
];

/// pgbouncer.ini lines tgstack writes for every pooler.
const PGBOUNCER_WRITTEN: &[(&str, &str)] = &[
    ("listen_addr", "0.0.0.0"),
    ("unix_socket_dir", ""),
    ("server_reset_query", ""),
    ("ignore_startup_parameters", "extra_float_digits"),
    ("log_connections", "1"),
    ("log_disconnections", "1"),
    ("log_pooler_errors", "1"),
    ("stats_period", "60"),
];

pub fn pgbouncer(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let Some(ini) = mounted(import, found, FileKind::Pgbouncer) else {
        import.unrepresented(format!(
            "service `{}`: no pgbouncer.ini mounted",
            found.name
        ));
        return;
    };
    let settings = assignments(&ini.text, Some("pgbouncer"));
    let databases = assignments(&ini.text, Some("databases"));
    let upstream = databases.first().and_then(|(_, spec)| {
        let host = spec
            .split_whitespace()
            .find_map(|w| w.strip_prefix("host="))?;
        service_named(all, host)
    });
    let upstream_encryption = upstream.as_ref().and_then(|name| {
        import
            .service(name)
            .table("postgres")
            .get("password_encryption")
            .and_then(|v| v.as_str().map(String::from))
    });
    let consumers = credentials(import, all);
    if let Some(port) = value(&settings, "listen_port").and_then(|p| p.parse::<u16>().ok()) {
        import.service(&found.name).set("port", port);
    }
    let admin = value(&settings, "admin_users").map(first_word);
    let stats = value(&settings, "stats_users").map(first_word);
    let admin = admin.map(|user| console_user(import, &user, &consumers));
    let stats = stats.map(|user| console_user(import, &user, &consumers));
    let table = import.service(&found.name).table("pgbouncer");
    match upstream {
        Some(upstream) => table.set("upstream", upstream),
        None => table.guess(
            "upstream",
            "postgres",
            "[databases] names no service of the stack",
        ),
    };
    for key in PGBOUNCER_FIELDS {
        if let Some(text) = value(&settings, key) {
            match text.parse::<i64>() {
                Ok(n) => table.set(key, n),
                Err(_) => table.set(key, text),
            };
        }
    }
    if let Some(auth) = value(&settings, "auth_type")
        && upstream_encryption.as_deref() != Some(auth)
    {
        table.set("auth_type", auth);
    }
    for key in ["query_timeout", "server_idle_timeout"] {
        if let Some(seconds) = value(&settings, key).and_then(|s| s.parse::<f64>().ok()) {
            table.set(key, Duration((seconds * 1000.0) as u64).to_string());
        }
    }
    for (key, user) in [("admin", admin), ("stats", stats)] {
        if let Some(user) = user {
            *table.table(key) = user;
        }
    }
    if table.get("admin").is_none() && !table.has_table("admin") {
        let id = import.secrets.new_secret(
            "pgbouncer_admin",
            "the pooler has no admin user in the files; tgstack always sets one",
        );
        let admin = import
            .service(&found.name)
            .table("pgbouncer")
            .table("admin");
        admin.guess(
            "user",
            "pgbouncer_admin",
            "the pooler has no admin_users; tgstack needs one",
        );
        admin.set("password", secret_ref(&id));
    }
    let mut mapped = PGBOUNCER_FIELDS.to_vec();
    mapped.extend([
        "listen_port",
        "auth_type",
        "auth_file",
        "admin_users",
        "stats_users",
        "query_timeout",
        "server_idle_timeout",
    ]);
    leftovers(import, ini, &settings, &mapped, PGBOUNCER_WRITTEN);
    for (name, _) in databases.iter().skip(1) {
        import.unrepresented(format!(
            "{}: `{name} = …` (a second pooled database; the model pools one)",
            ini.rel
        ));
    }
}

fn first_word(list: &str) -> String {
    list.split([',', ' '])
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_owned()
}

/// The model name of the service a host name reaches (a compose service or instance).
pub fn service_named(all: &[Found], host: &str) -> Option<String> {
    all.iter()
        .find(|f| f.name == host || f.instances.iter().any(|i| i == host))
        .map(|f| f.name.clone())
}

/// (user, variable) pairs: who connects as whom with the password of which variable, from
/// connection strings, `*_USER`/`*_PASS*` pairs of one environment, and Grafana's
/// datasources.
pub fn credentials(import: &Import<'_>, all: &[Found]) -> Vec<(String, String)> {
    let url = Regex::new(r"://([A-Za-z_][A-Za-z0-9_]*):\$\{?([A-Z_][A-Z0-9_]*)").ok();
    let mut pairs = Vec::new();
    for found in all {
        for (_, value) in &found.env {
            for c in url.iter().flat_map(|r| r.captures_iter(value)) {
                pairs.push((c[1].to_owned(), c[2].to_owned()));
            }
        }
        for (key, user) in &found.env {
            let Some(prefix) = key.strip_suffix("USER") else {
                continue;
            };
            let password = found.env.iter().find(|(k, _)| {
                k.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with("PASS"))
            });
            if let Some(var) = password.and_then(|(_, v)| interpolated(v)) {
                pairs.push((user.clone(), var.to_owned()));
            }
        }
    }
    for file in import.source.of_kind(FileKind::GrafanaDatasources) {
        let Some(Ok(document)) = &file.yaml else {
            continue;
        };
        for source in document["datasources"].as_array().into_iter().flatten() {
            let user = source["user"].as_str();
            let password = source["secureJsonData"]["password"]
                .as_str()
                .and_then(interpolated);
            if let (Some(user), Some(var)) = (user, password) {
                pairs.push((user.to_owned(), var.to_owned()));
            }
        }
    }
    pairs
}

/// `{ user, password }` of a console user: the variable a consumer connects with, or one
/// whose name holds the user's.
fn console_user(import: &mut Import<'_>, user: &str, consumers: &[(String, String)]) -> Table {
    let mut table = Table::default();
    table.set("user", user);
    let known = consumers
        .iter()
        .find(|(u, _)| u == user)
        .map(|(_, e)| e.clone());
    match known {
        Some(env) => {
            let id = import.secrets.by_env(&env);
            table.set("password", secret_ref(&id));
        }
        None => {
            let wanted = user.to_ascii_uppercase();
            let env = import.secrets.env_containing(&wanted);
            let id = match env {
                Some(env) => import.secrets.by_env(&env),
                None => import.secrets.literal(user, "the pooler's auth file"),
            };
            table.guess(
                "password",
                secret_ref(&id),
                "the secret whose variable names the user",
            );
        }
    }
    table
}

pub fn redis(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let Some(conf) = mounted(import, found, FileKind::Redis) else {
        import.unrepresented(format!("service `{}`: no redis.conf mounted", found.name));
        return;
    };
    let lines = directives(&conf.text);
    let one = |name: &str| directive(&lines, &[name]).and_then(|w| w.first().cloned());
    let password = match (
        one("requirepass"),
        found.env("REDISCLI_AUTH").and_then(interpolated),
    ) {
        (Some(_), _) => secret_ref(&import.secrets.literal("redis", &conf.rel)),
        (None, Some(var)) => secret_ref(&import.secrets.by_env(var)),
        (None, None) => secret_ref(&import.secrets.new_secret(
            "redis",
            "Redis has no password in the files; tgstack always sets one",
        )),
    };
    let replica_of = directive(&lines, &["replicaof"])
        .or_else(|| directive(&lines, &["slaveof"]))
        .and_then(|w| w.first())
        .and_then(|host| service_named(all, host));
    let appendonly = one("appendonly").is_some_and(|v| v == "yes");
    let snapshots = directive(&lines, &["save"]).is_some_and(|w| w.iter().any(|s| !s.is_empty()));
    if let Some(port) = one("port").and_then(|p| p.parse::<u16>().ok()) {
        import.service(&found.name).set("port", port);
    }
    let table = import.service(&found.name).table("redis");
    if let Some(master) = replica_of {
        table.set("replica_of", master);
    }
    table.set("password", password);
    if let Some(bytes) = one("maxmemory").and_then(|m| redis_bytes(&m)) {
        table.set("maxmemory", bytes.to_string());
    }
    if let Some(policy) = one("maxmemory-policy") {
        table.set("maxmemory_policy", policy);
    }
    let persistence = match (appendonly, snapshots) {
        (true, _) => "aof",
        (false, true) => "rdb",
        (false, false) => "none",
    };
    table.set("persistence", persistence);
    let written = [
        "bind",
        "port",
        "protected-mode",
        "dir",
        "maxmemory",
        "maxmemory-policy",
        "appendonly",
        "appendfsync",
        "save",
        "replicaof",
        "slaveof",
        "replica-read-only",
        "replica-announce-ip",
        "include",
        "requirepass",
        "masterauth",
        "masteruser",
    ];
    for words in &lines {
        let name = words[0].to_ascii_lowercase();
        if !written.contains(&name.as_str()) {
            import.unrepresented(format!(
                "{}: `{}` (the model has no such setting)",
                conf.rel, words[0]
            ));
        }
    }
}

pub fn sentinel(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let Some(conf) = mounted(import, found, FileKind::Sentinel) else {
        import.unrepresented(format!(
            "service `{}`: no sentinel.conf mounted",
            found.name
        ));
        return;
    };
    let lines = directives(&conf.text);
    if let Some(port) = directive(&lines, &["port"]).and_then(|w| w.first()?.parse::<u16>().ok()) {
        import.service(&found.name).set("port", port);
    }
    let monitor = directive(&lines, &["sentinel", "monitor"]).map(<[String]>::to_vec);
    let millis = |name: &str| {
        directive(&lines, &["sentinel", name])
            .and_then(|w| w.get(1)?.parse::<u64>().ok())
            .map(|ms| Duration(ms).to_string())
    };
    let down_after = millis("down-after-milliseconds");
    let failover = millis("failover-timeout");
    let syncs = directive(&lines, &["sentinel", "parallel-syncs"])
        .and_then(|w| w.get(1)?.parse::<i64>().ok());
    let table = import.service(&found.name).table("sentinel");
    if let Some([name, host, _port, quorum, ..]) = monitor.as_deref() {
        match service_named(all, host) {
            Some(master) => table.set("monitors", master),
            None => table.guess(
                "monitors",
                host.as_str(),
                "the monitored host is no service",
            ),
        };
        table.set("master_name", name.as_str());
        if let Ok(quorum) = quorum.parse::<i64>() {
            table.set("quorum", quorum);
        }
    }
    if let Some(d) = down_after {
        table.set("down_after", d);
    }
    if let Some(d) = failover {
        table.set("failover_timeout", d);
    }
    if let Some(n) = syncs {
        table.set("parallel_syncs", n);
    }
}

/// rabbitmq.conf lines tgstack writes for every broker.
const RABBITMQ_WRITTEN: &[(&str, &str)] = &[
    ("definitions.import_backend", "local_filesystem"),
    ("definitions.local.path", "/etc/rabbitmq/definitions"),
    ("definitions.skip_if_unchanged", "true"),
    ("loopback_users.guest", "true"),
];

pub fn rabbitmq(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let Some(conf) = mounted(import, found, FileKind::Rabbitmq) else {
        import.unrepresented(format!(
            "service `{}`: no rabbitmq.conf mounted",
            found.name
        ));
        return;
    };
    let pairs = assignments(&conf.text, None);
    let port = |key: &str| value(&pairs, key).and_then(|p| p.parse::<u16>().ok());
    if let Some(amqp) = port("listeners.tcp.default") {
        import.service(&found.name).set("port", amqp);
    }
    let management = port("management.tcp.port");
    let management_publish = management.and_then(|m| {
        found
            .ports()
            .into_iter()
            .find(|p| p.target == m.to_string())
            .and_then(|p| p.published.parse::<u16>().ok())
    });
    let definitions = definitions(import, found, &pairs);
    let users = broker_users(import, found, all);
    let disk_free =
        value(&pairs, "disk_free_limit.absolute").map(|l| (l, super::read::rabbitmq_bytes(l)));
    let mut unreadable = None;
    let table = import.service(&found.name).table("rabbitmq");
    if let Some(definitions) = &definitions {
        topology(table, definitions);
    }
    if let Some(m) = management {
        table.set("management_port", m);
    }
    if let Some(p) = management_publish {
        table.set("management_publish", p);
    }
    if let Some(m) = port("prometheus.tcp.port") {
        table.set("metrics_port", m);
    }
    if let Some(w) =
        value(&pairs, "vm_memory_high_watermark.relative").and_then(|w| w.parse::<f64>().ok())
    {
        table.set("memory_high_watermark", w);
    }
    match disk_free {
        Some((_, Some(bytes))) => {
            table.set("disk_free_limit", bytes.to_string());
        }
        Some((limit, None)) => unreadable = Some(limit),
        None => {}
    }
    let default_user = found.env("RABBITMQ_DEFAULT_USER").map(String::from);
    let default_vhost = found.env("RABBITMQ_DEFAULT_VHOST").map(String::from);
    let default_password = found.env("RABBITMQ_DEFAULT_PASS").map(String::from);
    match (users, default_user) {
        (Some(users), _) => *table.table("users") = users,
        (None, Some(user)) => {
            let where_ = format!("the environment of `{}`", found.name);
            let password = match default_password {
                Some(v) => password_secret(import, &v, "rabbitmq", &where_),
                None => secret_ref(&import.secrets.new_secret(
                    "rabbitmq",
                    "the broker's default user has no password in the files",
                )),
            };
            let table = import.service(&found.name).table("rabbitmq");
            if let Some(vhost) = default_vhost
                && table.get("vhost").is_none()
            {
                table.set("vhost", vhost);
            }
            let user = table.table("users").table(&user);
            user.set("password", password);
            user.set(
                "tags",
                super::services::strings(&["administrator".to_owned()]),
            );
            user.set("configure", ".*");
        }
        (None, None) => import.unrepresented(format!(
            "service `{}`: the broker's users (a secret file, outside the tree)",
            found.name
        )),
    }
    if let Some(limit) = unreadable {
        import.unrepresented(format!(
            "{}: `disk_free_limit.absolute = {limit}` (a size tgstack cannot read)",
            conf.rel
        ));
    }
    let mapped = [
        "listeners.tcp.default",
        "management.tcp.port",
        "prometheus.tcp.port",
        "vm_memory_high_watermark.relative",
        "disk_free_limit.absolute",
    ];
    leftovers(import, conf, &pairs, &mapped, RABBITMQ_WRITTEN);
}

/// The definitions file the broker loads (`definitions.local.path` or
/// `load_definitions`), through the service's mounts.
fn definitions(import: &Import<'_>, found: &Found, pairs: &[(String, String)]) -> Option<Value> {
    let deployment = import.source.deployment;
    let service = deployment.services.get(found.instances.first()?)?;
    let path =
        value(pairs, "definitions.local.path").or_else(|| value(pairs, "load_definitions"))?;
    let candidates = [format!("{path}/definitions.json"), path.to_owned()];
    candidates.iter().find_map(|p| {
        let rel = deployment.host_file(service, p)?;
        serde_json::from_str(&import.source.other(&rel)?).ok()
    })
}

/// vhost, exchanges, dead-lettering and queues from the definitions.
fn topology(table: &mut Table, definitions: &Value) {
    let list = |key: &str| definitions[key].as_array().cloned().unwrap_or_default();
    let queues = list("queues");
    let bindings = list("bindings");
    if let Some(vhost) = list("vhosts").first().and_then(|v| v["name"].as_str()) {
        table.set("vhost", vhost);
    }
    let dlx = queues.iter().find_map(|q| {
        q["arguments"]["x-dead-letter-exchange"]
            .as_str()
            .map(String::from)
    });
    let exchange = list("exchanges")
        .iter()
        .filter_map(|e| e["name"].as_str().map(String::from))
        .find(|name| Some(name) != dlx.as_ref());
    if let Some(exchange) = &exchange {
        table.set("exchange", exchange.as_str());
    }
    let dead_letter_queue = bindings
        .iter()
        .find(|b| b["source"].as_str() == dlx.as_deref() && dlx.is_some())
        .and_then(|b| b["destination"].as_str().map(String::from));
    let mut prefix: Option<String> = None;
    let mut items = Vec::new();
    for queue in &queues {
        let Some(name) = queue["name"].as_str() else {
            continue;
        };
        if Some(name) == dead_letter_queue.as_deref() {
            continue;
        }
        let binding = bindings
            .iter()
            .find(|b| {
                b["destination"].as_str() == Some(name)
                    && b["source"].as_str().map(String::from) == exchange
            })
            .and_then(|b| b["routing_key"].as_str())
            .unwrap_or("#");
        if let Some(p) = binding.strip_suffix(".#") {
            prefix.get_or_insert_with(|| p.to_owned());
        }
        let arguments = &queue["arguments"];
        let mut item = Table::default();
        item.set("name", name).set("binding", binding);
        item.set(
            "dead_letter",
            arguments["x-dead-letter-exchange"].is_string(),
        );
        if let Some(ttl) = arguments["x-message-ttl"].as_u64() {
            item.set("message_ttl", Duration(ttl).to_string());
        }
        item.set(
            "queue_type",
            arguments["x-queue-type"].as_str().unwrap_or("classic"),
        );
        items.push(item);
    }
    if let Some(prefix) = prefix {
        table.guess(
            "routing_key_prefix",
            prefix,
            "the queues' bindings share it",
        );
    }
    if let Some(dlx) = dlx {
        table.set("dead_letter_exchange", dlx);
    }
    if let Some(queue) = dead_letter_queue {
        table.set("dead_letter_queue", queue);
    }
    for item in items {
        table.push("queues", item);
    }
}

/// The broker's users: RabbitMQ keeps them (hashed) in a secret file outside the tree;
/// the gateway's own config names them with their secrets, so they are read from there.
fn broker_users(import: &Import<'_>, found: &Found, all: &[Found]) -> Option<Table> {
    all.iter().find_map(|f| {
        let config = f.own_config.as_deref()?;
        let document: toml::Table = import.source.other(config)?.parse().ok()?;
        let _ = own_table(import.source, config, &f.env)?;
        let users = document
            .get("services")?
            .get(&found.name)?
            .get("rabbitmq")?
            .get("users")?
            .as_table()?;
        Some(Table::from_toml(users))
    })
}

/// `[[channels]]` from the SQL that seeds the channels table.
pub fn channels(import: &mut Import<'_>, _found: &[Found]) {
    let Ok(row) = Regex::new(r"\((-?\d+), (NULL|'(?:[^']|'')*'), '((?:[^']|'')*)', (true|false)\)")
    else {
        return;
    };
    let seeding = import.source.of_kind(FileKind::Sql).find(|f| {
        f.text
            .contains(".channels AS c (channel_id, username, title, enabled)")
    });
    let Some(file) = seeding else {
        return;
    };
    for c in row.captures_iter(&file.text) {
        let mut channel = Table::default();
        channel.set("id", c[1].parse::<i64>().unwrap_or(0));
        if &c[2] != "NULL" {
            channel.set("username", c[2].trim_matches('\'').replace("''", "'"));
        }
        channel.set("title", c[3].replace("''", "'"));
        channel.set("enabled", &c[4] == "true");
        import.root.push("channels", channel);
    }
}
