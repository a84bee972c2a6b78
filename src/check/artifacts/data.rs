//! Data-layer files re-read from the tree: pgbouncer.ini, postgresql.conf, pg_hba.conf,
//! redis.conf, sentinel.conf, rabbitmq.conf and the broker definitions. Each is checked
//! in its own dialect and against the model and the other files it must agree with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::Files;
use super::parse::{self, IniEntry, line_of};
use crate::check::Ctx;
use crate::check::dialect::{Dialect, Release};
use crate::finding::Severity;
use crate::model::{Deploy, Kind, PgbouncerSettings, PostgresSettings, Service, paths};

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>) {
    let stack = cx.stack();
    for (name, service) in &stack.services {
        match service.kind {
            Kind::Pgbouncer => pgbouncer(cx, files, name),
            Kind::Postgres => postgres(cx, files, name),
            Kind::Redis => redis(cx, files, name),
            Kind::Sentinel => sentinel(cx, files, name),
            Kind::Rabbitmq => rabbitmq(cx, files, name),
            _ => {}
        }
    }
}

fn syntax(cx: &mut Ctx<'_>, path: &str, file: &str, issues: Vec<parse::SyntaxIssue>) {
    for issue in issues {
        cx.report_file(
            "TG022",
            Severity::Error,
            path,
            file,
            Some(issue.line),
            format!("{file}: {}", issue.message),
            "fix the line, or re-render".into(),
        );
    }
}

/// The file checked alone in its dialect against the catalog of the release the service
/// deploys (its image's version, or the installed program): every issue is a TG022.
fn dialect(
    cx: &mut Ctx<'_>,
    base: &str,
    file: &str,
    text: &str,
    service: &Service,
    dialect: Dialect,
) {
    let release = Release::of(service);
    let name = file.rsplit('/').next().unwrap_or(file);
    for issue in dialect.check(name, text, release) {
        cx.report_file(
            "TG022",
            Severity::Error,
            base,
            file,
            Some(issue.line),
            format!("{file}: {}", issue.message),
            issue.hint,
        );
    }
}

/// Server-side settings of a postgres service as its rendered file says.
fn postgres_settings(files: &Files<'_>, name: &str) -> Option<BTreeMap<String, (String, usize)>> {
    let text = files.text(&paths::postgresql_conf(name))?;
    let (settings, _) = parse::settings(text);
    Some(
        settings
            .into_iter()
            .map(|s| (s.key, (s.value, s.line)))
            .collect(),
    )
}

/// Milliseconds of a time setting; `unitless` is the unit of a bare number
/// (PostgreSQL: ms, PgBouncer: s).
fn millis_of(value: &str, unitless: u64) -> Option<u64> {
    let value = value.trim();
    let digits: String = value.chars().take_while(|c| c.is_ascii_digit()).collect();
    let number: u64 = digits.parse().ok()?;
    let factor = match value[digits.len()..].trim() {
        "" => unitless,
        "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(number * factor)
}

/// A rendered pgbouncer.ini: its `[pgbouncer]` settings and the model service.
struct Bouncer<'a> {
    file: String,
    /// Model path of the service's pgbouncer table.
    base: String,
    service: &'a Service,
    b: &'a PgbouncerSettings,
    /// `[pgbouncer]` key -> value and line.
    settings: BTreeMap<String, (String, usize)>,
}

impl Bouncer<'_> {
    fn get(&self, key: &str) -> Option<(String, usize)> {
        self.settings.get(key).cloned()
    }
}

fn pgbouncer(cx: &mut Ctx<'_>, files: &Files<'_>, name: &str) {
    let stack = cx.stack();
    let file = paths::pgbouncer_ini(name);
    let Some(text) = files.text(&file) else {
        return;
    };
    let Some(service) = stack.service(name) else {
        return;
    };
    let Some(b) = &service.pgbouncer else { return };
    let mut bouncer = Bouncer {
        base: format!("services.{name}.pgbouncer"),
        file,
        service,
        b,
        settings: BTreeMap::new(),
    };
    let databases = pgbouncer_sections(cx, &mut bouncer, text);
    let (file, base) = (bouncer.file.as_str(), bouncer.base.as_str());

    // Incident 6: it listens on the internal port of the model.
    if let Some((port, line)) = bouncer.get("listen_port")
        && port != service.port.to_string()
    {
        cx.report_file(
            "TG201",
            Severity::Error,
            &format!("services.{name}.port"),
            file,
            Some(line),
            format!(
                "{file} listens on {port}, the model says port {}",
                service.port
            ),
            "listen settings use the internal `port`; only compose `ports:` uses `publish`".into(),
        );
    }
    let upstream_pg = stack.database_of(&b.upstream);
    let server = postgres_settings(files, &b.upstream);
    pgbouncer_auth(cx, &bouncer, server.as_ref(), upstream_pg.map(|(_, pg)| pg));
    pgbouncer_databases(cx, &bouncer, &databases);
    if let (Some(server), Some((_, pg))) = (&server, upstream_pg) {
        pgbouncer_capacity(cx, &bouncer, server, pg);
    }
    // A pooler timeout of 0 is no bound at all (the order of the chain is checked with
    // the capacity, below).
    if let Some((value, line)) = bouncer.get("query_timeout")
        && millis_of(&value, 1000) == Some(0)
    {
        cx.report_file(
            "TG607",
            Severity::Error,
            &format!("{base}.query_timeout"),
            file,
            Some(line),
            format!("{file}: query_timeout is 0, which means no limit"),
            "the pooler's timeout bounds every query; re-render".into(),
        );
    }
    // Incident 18: behind transaction pooling, named prepared statements need tracking.
    if let Some((mode, line)) = bouncer.get("pool_mode")
        && mode == "transaction"
        && let Some((dropped, _)) = bouncer.get("ignore_startup_parameters")
        && dropped.split(',').any(|p| p.trim() == "search_path")
    {
        cx.report_file(
            "TG402",
            Severity::Error,
            &format!("{base}.pool_mode"),
            file,
            Some(line),
            format!("{file}: transaction pooling while silently dropping the client's search_path"),
            "schema-qualify names instead of relying on session state".into(),
        );
    }
}

/// Reads the sections of pgbouncer.ini, checked in its dialect: `[pgbouncer]` settings
/// into `bouncer`; returns the `[databases]` entries.
fn pgbouncer_sections(cx: &mut Ctx<'_>, bouncer: &mut Bouncer<'_>, text: &str) -> Vec<IniEntry> {
    let (file, base) = (bouncer.file.as_str(), bouncer.base.as_str());
    dialect(cx, base, file, text, bouncer.service, Dialect::Pgbouncer);
    let (entries, _) = parse::ini(text);
    let mut databases = Vec::new();
    for entry in entries {
        match entry.section.as_str() {
            "pgbouncer" => {
                bouncer
                    .settings
                    .insert(entry.key.clone(), (entry.value.clone(), entry.line));
            }
            "databases" => databases.push(entry),
            _ => {}
        }
    }
    databases
}

/// Incidents 1/3: the auth method agrees with the server and is never trust/plain; the
/// userlist lies in the secrets directory.
fn pgbouncer_auth(
    cx: &mut Ctx<'_>,
    bouncer: &Bouncer<'_>,
    server: Option<&BTreeMap<String, (String, usize)>>,
    upstream_pg: Option<&PostgresSettings>,
) {
    let stack = cx.stack();
    let (file, base, upstream) = (
        bouncer.file.as_str(),
        bouncer.base.as_str(),
        &bouncer.b.upstream,
    );
    if let Some((auth, line)) = bouncer.get("auth_type") {
        if matches!(auth.as_str(), "trust" | "any" | "plain") {
            cx.report_file(
                "TG103",
                Severity::Error,
                &format!("{base}.auth_type"),
                file,
                Some(line),
                format!("{file}: auth_type = {auth} lets clients in without a checked password"),
                "use the server's password_encryption (scram-sha-256)".into(),
            );
        } else {
            let server_method = server
                .and_then(|s| s.get("password_encryption").map(|v| v.0.clone()))
                .or_else(|| upstream_pg.map(|pg| pg.password_encryption.as_str().to_string()));
            if let Some(method) = server_method
                && method != auth
            {
                cx.report_file("TG101", Severity::Error, &format!("{base}.auth_type"), file, Some(line), format!("{file}: auth_type = {auth} but `{upstream}` hashes passwords with {method}: logins fail"), format!("set auth_type = {method} (tgstack renders it from the server's password_encryption)"));
            }
        }
    }
    if let Some((auth_file, line)) = bouncer.get("auth_file")
        && !auth_file.starts_with(&stack.deploy.secrets_dir)
    {
        cx.report_file(
            "TG104",
            Severity::Error,
            base,
            file,
            Some(line),
            format!("{file}: auth_file {auth_file} is outside deploy.secrets_dir"),
            "the userlist holds passwords: keep it in the deploy-time secrets directory".into(),
        );
    }
}

/// Incident 7: every database entry points at the upstream's internal address.
fn pgbouncer_databases(cx: &mut Ctx<'_>, bouncer: &Bouncer<'_>, databases: &[IniEntry]) {
    let stack = cx.stack();
    let (file, base, service) = (
        bouncer.file.as_str(),
        bouncer.base.as_str(),
        bouncer.service,
    );
    let upstream = &bouncer.b.upstream;
    let Ok(expected) = stack.reach(service, upstream) else {
        return;
    };
    for entry in databases {
        let fields: BTreeMap<&str, &str> = entry
            .value
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let host = fields.get("host").copied().unwrap_or("");
        let port = fields.get("port").copied().unwrap_or("5432");
        if host == expected.host && port == expected.port.to_string() {
            continue;
        }
        let publish_hint = stack
            .service(upstream)
            .and_then(|u| u.publish)
            .filter(|p| p.to_string() == port && service.deploy == Deploy::Container);
        let message = match publish_hint {
            Some(p) => format!(
                "{file}: database `{}` uses {host}:{port}, the host port {p} of `{upstream}`; containers use the internal port {}",
                entry.key, expected.port
            ),
            None => format!(
                "{file}: database `{}` points at {host}:{port}, but `{upstream}` is reached at {expected}",
                entry.key
            ),
        };
        cx.report_file(
            "TG202",
            Severity::Error,
            &format!("{base}.upstream"),
            file,
            Some(entry.line),
            message,
            format!("use host={} port={}", expected.host, expected.port),
        );
    }
}

/// Incident 20: server connections fit what the server accepts (as rendered); incident
/// 31: PgBouncer gives up later than the server.
fn pgbouncer_capacity(
    cx: &mut Ctx<'_>,
    bouncer: &Bouncer<'_>,
    server: &BTreeMap<String, (String, usize)>,
    pg: &PostgresSettings,
) {
    let (file, base, b) = (bouncer.file.as_str(), bouncer.base.as_str(), bouncer.b);
    let settings = &bouncer.settings;
    let number = |map: &BTreeMap<String, (String, usize)>, key: &str, default: u32| {
        map.get(key)
            .and_then(|v| v.0.parse::<u32>().ok())
            .unwrap_or(default)
    };
    let pool = number(settings, "default_pool_size", 20);
    let reserve = number(settings, "reserve_pool_size", 0);
    let max = number(server, "max_connections", 100);
    let reserved = number(server, "superuser_reserved_connections", 3);
    let users = b.users.as_ref().map(Vec::len).unwrap_or(pg.roles.len()) as u32;
    let needed = users * (pool + reserve);
    if needed > max.saturating_sub(reserved) {
        let line = settings.get("default_pool_size").map(|v| v.1);
        cx.report_file("TG404", Severity::Error, &format!("{base}.default_pool_size"), file, line, format!("{file}: {users} user(s) x (pool {pool} + reserve {reserve}) = {needed} server connections, `{}` accepts {}", b.upstream, max.saturating_sub(reserved)), "lower the pool sizes or raise max_connections".into());
    }
    if let (Some((q, line)), Some((st, _))) = (
        bouncer.get("query_timeout"),
        server.get("statement_timeout"),
    ) && let (Some(q), Some(st)) = (millis_of(&q, 1000), millis_of(st, 1))
        && q > 0
        && st > 0
        && q <= st
    {
        cx.report_file("TG607", Severity::Error, &format!("{base}.query_timeout"), file, Some(line), format!("{file}: query_timeout {q} ms is not longer than the server's statement_timeout {st} ms"), "the caller's timeout must exceed the callee's".into());
    }
}

fn in_subnet(address: Ipv4Addr, network: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    (u32::from(address) & mask) == (u32::from(network) & mask)
}

fn cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    Some((addr.parse().ok()?, len.parse().ok()?))
}

fn postgres(cx: &mut Ctx<'_>, files: &Files<'_>, name: &str) {
    let stack = cx.stack();
    let Some(service) = stack.service(name) else {
        return;
    };
    let Some(pg) = &service.postgres else { return };
    let method = postgresql_conf(cx, files, name, service, pg);
    pg_hba(cx, files, name, service, &method);
}

/// postgresql.conf: known parameters, the model's port, listening on the container
/// network, password_encryption set. Returns the password method it sets.
fn postgresql_conf(
    cx: &mut Ctx<'_>,
    files: &Files<'_>,
    name: &str,
    service: &Service,
    pg: &PostgresSettings,
) -> String {
    let base = format!("services.{name}.postgres");
    let conf_file = paths::postgresql_conf(name);
    let mut method = pg.password_encryption.as_str().to_string();
    if let Some(text) = files.text(&conf_file) {
        dialect(cx, &base, &conf_file, text, service, Dialect::Postgresql);
        let (settings, _) = parse::settings(text);
        for s in &settings {
            match s.key.as_str() {
                "port" if s.value != service.port.to_string() => cx.report_file("TG201", Severity::Error, &format!("services.{name}.port"), &conf_file, Some(s.line), format!("{conf_file}: port {} but the model says {}", s.value, service.port), "listen settings use the internal `port`".into()),
                // Incident 10: in a container the server must listen on the container network.
                "listen_addresses" if service.deploy == Deploy::Container && !s.value.split(',').any(|a| matches!(a.trim(), "*" | "0.0.0.0" | "::")) => cx.report_file("TG210", Severity::Error, &format!("services.{name}"), &conf_file, Some(s.line), format!("{conf_file}: listen_addresses = '{}' inside a container: other containers cannot connect", s.value), "set listen_addresses = '*' (pg_hba.conf limits who gets in)".into()),
                "password_encryption" => method = s.value.clone(),
                "statement_timeout" if millis_of(s.value.trim_matches('\''), 1) == Some(0) => cx.report_file("TG607", Severity::Error, &format!("{base}.statement_timeout"), &conf_file, Some(s.line), format!("{conf_file}: statement_timeout is 0, which means no limit: a stuck query holds its connection forever"), "bound every statement; re-render".into()),
                _ => {}
            }
        }
        if service.deploy == Deploy::Container
            && !settings.iter().any(|s| s.key == "listen_addresses")
        {
            cx.report_file("TG210", Severity::Error, &format!("services.{name}"), &conf_file, None, format!("{conf_file} does not set listen_addresses: the server listens on localhost only"), "set listen_addresses = '*'".into());
        }
        if !settings.iter().any(|s| s.key == "password_encryption") {
            cx.report_file(
                "TG101",
                Severity::Error,
                &format!("{base}.password_encryption"),
                &conf_file,
                None,
                format!("{conf_file} does not set password_encryption"),
                "set it explicitly so PgBouncer and pg_hba agree with it".into(),
            );
        }
    }
    method
}

/// pg_hba.conf: no trust, the server's password method, nothing wider than the
/// networks the service joins (incident 3).
fn pg_hba(cx: &mut Ctx<'_>, files: &Files<'_>, name: &str, service: &Service, method: &str) {
    let stack = cx.stack();
    let base = format!("services.{name}.postgres");
    let hba_file = paths::pg_hba_conf(name);
    let Some(text) = files.text(&hba_file) else {
        return;
    };
    let (records, issues) = parse::hba(text);
    syntax(cx, &base, &hba_file, issues);
    let subnets: Vec<(Ipv4Addr, u8)> = service
        .networks
        .iter()
        .filter_map(|n| stack.networks.get(n))
        .filter_map(|n| cidr(&n.subnet))
        .collect();
    for record in records {
        // Incident 3: no trust, nothing wider than the declared networks.
        if record.method == "trust" {
            cx.report_file(
                "TG103",
                Severity::Error,
                &format!("services.{name}.networks"),
                &hba_file,
                Some(record.line),
                format!(
                    "{hba_file}: `trust` lets {} in without a password",
                    record.address.as_deref().unwrap_or("local connections")
                ),
                "use the password method; tgstack renders one line per declared network".into(),
            );
            continue;
        }
        if matches!(record.method.as_str(), "md5" | "scram-sha-256" | "password")
            && record.method != method
        {
            cx.report_file(
                "TG101",
                Severity::Error,
                &format!("{base}.password_encryption"),
                &hba_file,
                Some(record.line),
                format!(
                    "{hba_file}: method {} but passwords are hashed with {method}",
                    record.method
                ),
                format!("use {method} on every line"),
            );
        }
        if let Some(address) = &record.address {
            let covered = match cidr(address) {
                Some((ip, len)) => {
                    ip.is_loopback()
                        || subnets
                            .iter()
                            .any(|(net, net_len)| *net_len <= len && in_subnet(ip, *net, *net_len))
                }
                None => address == "::1/128" || address == "localhost" || address == "samehost",
            };
            if !covered {
                cx.report_file(
                    "TG103",
                    Severity::Error,
                    &format!("services.{name}.networks"),
                    &hba_file,
                    Some(record.line),
                    format!("{hba_file}: {address} is wider than the networks `{name}` joins"),
                    "admit only the declared networks' subnets".into(),
                );
            }
        }
    }
}

fn literal_secret(cx: &mut Ctx<'_>, path: &str, file: &str, line: usize, what: &str) {
    cx.report_file(
        "TG104",
        Severity::Error,
        path,
        file,
        Some(line),
        format!("{file}: {what} holds a literal secret"),
        "secrets belong in the deploy-time secrets directory, included at run time".into(),
    );
}

fn redis(cx: &mut Ctx<'_>, files: &Files<'_>, name: &str) {
    let stack = cx.stack();
    let file = paths::redis_conf(name);
    let Some(text) = files.text(&file) else {
        return;
    };
    let Some(service) = stack.service(name) else {
        return;
    };
    let Some(r) = &service.redis else { return };
    let base = format!("services.{name}.redis");
    dialect(cx, &base, &file, text, service, Dialect::Redis);
    let (directives, _) = parse::redis_conf(text);
    for d in &directives {
        let directive = d.name();
        match directive.as_str() {
            "requirepass" | "masterauth" => {
                literal_secret(cx, &format!("{base}.password"), &file, d.line, &directive)
            }
            "port" if d.arg(0) != Some(&service.port.to_string()) => cx.report_file(
                "TG201",
                Severity::Error,
                &format!("services.{name}.port"),
                &file,
                Some(d.line),
                format!(
                    "{file}: port {} but the model says {}",
                    d.arg(0).unwrap_or(""),
                    service.port
                ),
                "listen settings use the internal `port`".into(),
            ),
            "maxmemory" => {
                // Incident 15, as rendered: compare with the container limit.
                if let Some(bytes) = d.arg(0).and_then(redis_bytes)
                    && bytes * 4 > service.memory.0 * 3
                {
                    cx.report_file("TG303", Severity::Error, &format!("{base}.maxmemory"), &file, Some(d.line), format!("{file}: maxmemory {} leaves less than 25 % headroom below the {} limit", d.arg(0).unwrap_or(""), service.memory), "keep maxmemory at most 75 % of the memory limit".into());
                }
            }
            "replicaof" => {
                if let Some(master) = &r.replica_of
                    && let Ok(expected) = stack.reach(service, master)
                    && (d.arg(0) != Some(expected.host.as_str())
                        || d.arg(1) != Some(&expected.port.to_string()))
                {
                    cx.report_file(
                        "TG202",
                        Severity::Error,
                        &format!("{base}.replica_of"),
                        &file,
                        Some(d.line),
                        format!(
                            "{file}: replicaof {} {} but `{master}` is reached at {expected}",
                            d.arg(0).unwrap_or(""),
                            d.arg(1).unwrap_or("")
                        ),
                        format!("replicaof {} {}", expected.host, expected.port),
                    );
                }
            }
            _ => {}
        }
    }
    if !directives.iter().any(|d| d.name() == "include") {
        cx.report_file(
            "TG104",
            Severity::Error,
            &format!("{base}.password"),
            &file,
            None,
            format!("{file} includes no deploy-time auth file: Redis would run without a password"),
            "re-render: tgstack adds `include <secrets_dir>/<service>-auth.conf`".into(),
        );
    }
    if r.replica_of.is_some() && !directives.iter().any(|d| d.name() == "replicaof") {
        cx.report_file(
            "TG202",
            Severity::Error,
            &format!("{base}.replica_of"),
            &file,
            None,
            format!("{file} has no replicaof although the model makes `{name}` a replica"),
            "re-render".into(),
        );
    }
}

/// Redis memory units: b, k/kb, m/mb, g/gb (k = 1000, kb = 1024).
fn redis_bytes(value: &str) -> Option<u64> {
    let lower = value.to_ascii_lowercase();
    let digits: String = lower.chars().take_while(|c| c.is_ascii_digit()).collect();
    let number: u64 = digits.parse().ok()?;
    let factor = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    Some(number * factor)
}

fn sentinel(cx: &mut Ctx<'_>, files: &Files<'_>, name: &str) {
    let stack = cx.stack();
    let Some(service) = stack.service(name) else {
        return;
    };
    if service.sentinel.is_none() {
        return;
    }
    let base = format!("services.{name}.sentinel");
    let instances = stack.instances(name, service);
    for instance in &instances {
        let file = paths::sentinel_conf(name, &instance.name);
        let Some(text) = files.text(&file) else {
            continue;
        };
        dialect(cx, &base, &file, text, service, Dialect::Sentinel);
        let (directives, _) = parse::redis_conf(text);
        let mut resolve_hostnames = false;
        for d in &directives {
            let directive = d.name();
            if directive == "port" && d.arg(0) != Some(instance.port.to_string().as_str()) {
                cx.report_file(
                    "TG201",
                    Severity::Error,
                    &format!("services.{name}.port"),
                    &file,
                    Some(d.line),
                    format!(
                        "{file}: port {} but the model has `{}` listen on {}",
                        d.arg(0).unwrap_or(""),
                        instance.name,
                        instance.port
                    ),
                    "listen settings use the model's port; re-render".into(),
                );
            }
            if directive != "sentinel" {
                continue;
            }
            let sub = d.arg(0).unwrap_or("").to_ascii_lowercase();
            match sub.as_str() {
                "resolve-hostnames" => resolve_hostnames = d.arg(1) == Some("yes"),
                "auth-pass" => literal_secret(
                    cx,
                    &format!("{base}.monitors"),
                    &file,
                    d.line,
                    "sentinel auth-pass",
                ),
                "monitor" => sentinel_monitor(cx, &base, &file, d, service, instances.len()),
                _ => {}
            }
        }
        let monitor_host = directives
            .iter()
            .find(|d| d.name() == "sentinel" && d.arg(0) == Some("monitor"))
            .and_then(|d| d.arg(2))
            .unwrap_or("");
        if monitor_host.parse::<std::net::IpAddr>().is_err()
            && !monitor_host.is_empty()
            && !resolve_hostnames
        {
            let line = line_of(text, "sentinel monitor");
            cx.report_file("TG302", Severity::Error, &format!("{base}.monitors"), &file, line, format!("{file}: monitors host name {monitor_host} without `sentinel resolve-hostnames yes`"), "add `sentinel resolve-hostnames yes` before the monitor line".into());
        }
    }
}

/// A `sentinel monitor` line: a majority quorum (incident 13), a host name rather than a
/// container address (incident 14), the master's reachable address.
fn sentinel_monitor(
    cx: &mut Ctx<'_>,
    base: &str,
    file: &str,
    d: &parse::Directive,
    service: &Service,
    sentinels: usize,
) {
    let stack = cx.stack();
    let Some(s) = &service.sentinel else { return };
    let host = d.arg(2).unwrap_or("");
    let quorum: u32 = d.arg(4).and_then(|q| q.parse().ok()).unwrap_or(0);
    // Incident 13, as rendered.
    if quorum == 0 || quorum as usize > sentinels || quorum as usize * 2 <= sentinels {
        cx.report_file(
            "TG301",
            Severity::Error,
            &format!("{base}.quorum"),
            file,
            Some(d.line),
            format!(
                "{file}: quorum {quorum} with {} sentinels cannot fail over safely",
                sentinels
            ),
            "quorum must be a majority of the sentinels".into(),
        );
    }
    // Incident 14: containers monitor by name, never a pasted IP.
    if service.deploy == Deploy::Container && host.parse::<std::net::IpAddr>().is_ok() {
        cx.report_file("TG302", Severity::Error, &format!("{base}.monitors"), file, Some(d.line), format!("{file}: monitors the literal address {host}; container addresses change on every recreate"), format!("monitor by service name (`{}`) with `sentinel resolve-hostnames yes`", s.monitors));
    }
    if let Ok(expected) = stack.reach(service, &s.monitors)
        && (host != expected.host || d.arg(3) != Some(&expected.port.to_string()))
    {
        cx.report_file(
            "TG202",
            Severity::Error,
            &format!("{base}.monitors"),
            file,
            Some(d.line),
            format!(
                "{file}: monitors {host}:{} but `{}` is reached at {expected}",
                d.arg(3).unwrap_or(""),
                s.monitors
            ),
            format!(
                "sentinel monitor {} {} {} {}",
                s.master_name, expected.host, expected.port, s.quorum
            ),
        );
    }
}

fn rabbitmq(cx: &mut Ctx<'_>, files: &Files<'_>, name: &str) {
    let stack = cx.stack();
    let Some(service) = stack.service(name) else {
        return;
    };
    let base = format!("services.{name}.rabbitmq");
    let conf = paths::rabbitmq_conf(name);
    if let Some(text) = files.text(&conf) {
        dialect(cx, &base, &conf, text, service, Dialect::Rabbitmq);
        let (settings, _) = parse::settings(text);
        for s in &settings {
            match s.key.as_str() {
                "default_pass" => literal_secret(cx, &base, &conf, s.line, "default_pass"),
                "listeners.tcp.default"
                    if s.value != service.port.to_string()
                        && !s.value.ends_with(&format!(":{}", service.port)) =>
                {
                    cx.report_file(
                        "TG201",
                        Severity::Error,
                        &format!("services.{name}.port"),
                        &conf,
                        Some(s.line),
                        format!(
                            "{conf}: AMQP listener {} but the model says port {}",
                            s.value, service.port
                        ),
                        "listen settings use the internal `port`".into(),
                    )
                }
                _ => {}
            }
        }
    }
    definitions(cx, files, name, &base);
}

/// definitions.json: valid JSON without password hashes, and every name it refers to
/// declared in it.
fn definitions(cx: &mut Ctx<'_>, files: &Files<'_>, name: &str, base: &str) {
    let definitions = paths::rabbitmq_definitions(name);
    let Some(text) = files.text(&definitions) else {
        return;
    };
    let doc: serde_json::Value = match serde_json::from_str(text) {
        Ok(doc) => doc,
        Err(error) => {
            cx.report_file(
                "TG022",
                Severity::Error,
                base,
                &definitions,
                Some(error.line()),
                format!("{definitions} is not valid JSON: {error}"),
                "re-render".into(),
            );
            return;
        }
    };
    if let Some(users) = doc.get("users").and_then(|u| u.as_array())
        && !users.is_empty()
    {
        literal_secret(
            cx,
            &format!("{base}.users"),
            &definitions,
            line_of(text, "\"users\"").unwrap_or(1),
            "the users section (password hashes)",
        );
    }
    undeclared(cx, base, &definitions, text, &doc);
}

/// Bindings, dead-letter exchanges and vhosts the definitions use but do not declare.
fn undeclared(
    cx: &mut Ctx<'_>,
    base: &str,
    definitions: &str,
    text: &str,
    doc: &serde_json::Value,
) {
    // Sets, so each reference is one lookup rather than a scan of the declarations.
    let names = |key: &str| -> BTreeSet<&str> {
        doc.get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|i| i.get("name").and_then(|n| n.as_str()))
            .collect()
    };
    let exchanges = names("exchanges");
    let queues = names("queues");
    let vhosts = names("vhosts");
    let mut report = |line: Option<usize>, message: String| {
        cx.report_file(
            "TG024",
            Severity::Error,
            base,
            definitions,
            line,
            message,
            "every binding, dead-letter exchange and vhost must be declared in the definitions"
                .into(),
        );
    };
    for binding in doc
        .get("bindings")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
    {
        let source = binding.get("source").and_then(|s| s.as_str()).unwrap_or("");
        let destination = binding
            .get("destination")
            .and_then(|s| s.as_str())
            .unwrap_or("");
        if !exchanges.contains(source) {
            report(
                line_of(text, &format!("\"source\": \"{source}\"")),
                format!("{definitions}: binding from undeclared exchange `{source}`"),
            );
        }
        if !queues.contains(destination) && !exchanges.contains(destination) {
            report(
                line_of(text, &format!("\"destination\": \"{destination}\"")),
                format!("{definitions}: binding to undeclared queue `{destination}`"),
            );
        }
    }
    for queue in doc
        .get("queues")
        .and_then(|q| q.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(dlx) = queue
            .pointer("/arguments/x-dead-letter-exchange")
            .and_then(|v| v.as_str())
            && !exchanges.contains(dlx)
        {
            report(
                line_of(text, "x-dead-letter-exchange"),
                format!("{definitions}: dead-letter exchange `{dlx}` is not declared"),
            );
        }
    }
    for key in ["exchanges", "queues", "bindings"] {
        for item in doc
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let vhost = item.get("vhost").and_then(|v| v.as_str()).unwrap_or("");
            if !vhosts.contains(vhost) {
                report(
                    line_of(text, &format!("\"vhost\": \"{vhost}\"")),
                    format!("{definitions}: {key} entry in undeclared vhost `{vhost}`"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_subnets() {
        assert_eq!(redis_bytes("768mb"), Some(768 << 20));
        assert_eq!(redis_bytes("1gb"), Some(1 << 30));
        assert_eq!(millis_of("25", 1000), Some(25_000));
        assert_eq!(millis_of("20000", 1), Some(20_000));
        assert_eq!(millis_of("20s", 1), Some(20_000));
        assert!(in_subnet(
            "172.28.10.7".parse().unwrap(),
            "172.28.10.0".parse().unwrap(),
            24
        ));
        assert!(!in_subnet(
            "172.28.11.7".parse().unwrap(),
            "172.28.10.0".parse().unwrap(),
            24
        ));
    }
}
