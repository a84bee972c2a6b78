//! Rules over the model itself: references, names, ports, budget, HA and auth settings.

use std::collections::{BTreeMap, BTreeSet};

use super::Ctx;
use crate::finding::Severity;
use crate::model::kinds::SettingsTable;
use crate::model::{Deploy, Kind, PasswordEncryption, SecretRef, Service, Unreachable};
use crate::suggest::did_you_mean;

pub fn run(cx: &mut Ctx<'_>) {
    names(cx);
    kind_settings(cx);
    secret_refs(cx);
    service_refs(cx);
    networks(cx);
    images(cx);
    ports(cx);
    budget(cx);
    sentinel(cx);
    auth(cx);
    redis_memory(cx);
    read_cache(cx);
    data_lifecycle(cx);
    pool_capacity(cx);
    pool_mode(cx);
    timeouts(cx);
    deploy_paths(cx);
    super::app_rules::run(cx);
    super::native_rules::run(cx);
    super::swarm_rules::run(cx);
    super::monitoring_rules::run(cx);
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn names(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut bad = Vec::new();
    for name in stack.services.keys() {
        if !is_dns_label(name) {
            bad.push((
                format!("services.{name}"),
                format!("service name `{name}` is not a host name"),
                "use lowercase letters, digits and `-` (it becomes a container and host name)"
                    .to_string(),
            ));
        }
    }
    for name in stack.networks.keys() {
        if !is_dns_label(name) {
            bad.push((
                format!("networks.{name}"),
                format!("network name `{name}` is not valid"),
                "use lowercase letters, digits and `-`".to_string(),
            ));
        }
    }
    for (id, secret) in &stack.secrets {
        let env = &secret.env;
        let valid = env
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && env
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            bad.push((
                format!("secrets.{id}.env"),
                format!("`{env}` is not an environment variable name"),
                "use uppercase letters, digits and `_`, e.g. `TG_DB_PASSWORD`".to_string(),
            ));
        }
    }
    let mut envs: BTreeMap<&str, &str> = BTreeMap::new();
    for (id, secret) in &stack.secrets {
        if let Some(other) = envs.insert(&secret.env, id) {
            bad.push((
                format!("secrets.{id}.env"),
                format!(
                    "secrets `{other}` and `{id}` read the same variable {}",
                    secret.env
                ),
                "one variable per secret".to_string(),
            ));
        }
    }
    for (path, message, help) in bad {
        cx.report_key("TG006", Severity::Error, &path, message, help);
    }
}

fn settings_present(service: &Service) -> Vec<&'static str> {
    let mut present = Vec::new();
    let checks: [(&'static str, bool); 12] = [
        ("postgres", service.postgres.is_some()),
        ("pgbouncer", service.pgbouncer.is_some()),
        ("redis", service.redis.is_some()),
        ("sentinel", service.sentinel.is_some()),
        ("rabbitmq", service.rabbitmq.is_some()),
        ("gateway", service.gateway.is_some()),
        ("api", service.api.is_some()),
        ("prometheus", service.prometheus.is_some()),
        ("grafana", service.grafana.is_some()),
        ("exporter", service.exporter.is_some()),
        ("nginx", service.nginx.is_some()),
        ("app", service.app.is_some()),
    ];
    for (table, is_present) in checks {
        if is_present {
            present.push(table);
        }
    }
    present
}

fn kind_settings(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for (name, service) in &stack.services {
        let expected = service.kind.spec().settings;
        for table in settings_present(service) {
            if expected.map(|s| s.table) != Some(table) {
                reports.push((format!("services.{name}.{table}"), format!("service `{name}` is of kind `{}` but has `[services.{name}.{table}]` settings", service.kind.as_str()), "remove the table, or set `kind` to the kind it configures".to_string()));
            }
        }
        if let Some(SettingsTable {
            table,
            required: true,
        }) = expected
            && !settings_present(service).contains(&table)
        {
            reports.push((
                format!("services.{name}.kind"),
                format!(
                    "service `{name}` of kind `{}` needs a `[services.{name}.{table}]` table",
                    service.kind.as_str()
                ),
                format!("add `[services.{name}.{table}]` (see `tgstack schema`)"),
            ));
        }
        if !service.kind.spec().deploys.contains(&service.deploy) {
            reports.push((
                format!("services.{name}.deploy"),
                format!(
                    "kind `{}` can only be deployed as a container",
                    service.kind.as_str()
                ),
                "set `deploy = \"container\"`".to_string(),
            ));
        }
        if service.deploy == Deploy::Native && service.publish.is_some() {
            reports.push((format!("services.{name}.publish"), format!("native service `{name}` has `publish`: a native service listens on the host at `port`"), "remove `publish`".to_string()));
        }
    }
    for (path, message, help) in reports {
        cx.report_key("TG005", Severity::Error, &path, message, help);
    }
}

/// Every `{ secret = ... }` of the model with its path.
fn all_secret_refs(cx: &Ctx<'_>) -> Vec<(String, SecretRef)> {
    let stack = cx.stack();
    let mut refs = Vec::new();
    for (name, s) in &stack.services {
        let base = format!("services.{name}");
        if let Some(pg) = &s.postgres {
            refs.push((
                format!("{base}.postgres.superuser_password"),
                pg.superuser_password.clone(),
            ));
            for (role, spec) in &pg.roles {
                refs.push((
                    format!("{base}.postgres.roles.{role}.password"),
                    spec.password.clone(),
                ));
            }
            if let Some(standby) = &pg.standby {
                refs.push((
                    format!("{base}.postgres.standby.password"),
                    standby.password.clone(),
                ));
            }
        }
        if let Some(b) = &s.pgbouncer {
            refs.push((
                format!("{base}.pgbouncer.admin.password"),
                b.admin.password.clone(),
            ));
            if let Some(stats) = &b.stats {
                refs.push((
                    format!("{base}.pgbouncer.stats.password"),
                    stats.password.clone(),
                ));
            }
        }
        if let Some(r) = &s.redis {
            refs.push((format!("{base}.redis.password"), r.password.clone()));
        }
        if let Some(r) = &s.rabbitmq {
            for (user, spec) in &r.users {
                refs.push((
                    format!("{base}.rabbitmq.users.{user}.password"),
                    spec.password.clone(),
                ));
            }
            if let Some(cookie) = &r.cookie {
                refs.push((format!("{base}.rabbitmq.cookie"), cookie.clone()));
            }
        }
        if let Some(g) = &s.gateway {
            refs.push((format!("{base}.gateway.api_hash"), g.api_hash.clone()));
        }
        if let Some(a) = &s.api {
            refs.push((format!("{base}.api.api_key"), a.api_key.clone()));
        }
        if let Some(g) = &s.grafana {
            refs.push((
                format!("{base}.grafana.admin_password"),
                g.admin_password.clone(),
            ));
        }
        for (var, id) in crate::model::app::secret_links(s) {
            refs.push((format!("{base}.app.links.{var}"), SecretRef { secret: id }));
        }
    }
    refs
}

/// The identity a secret authenticates; the redis master, its replicas and sentinels
/// share one credential by design.
fn identity(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        [_, _, "redis", "password"] => "redis".into(),
        [_, service, "postgres", "roles", role, _] => format!("{service}/role/{role}"),
        [_, service, "rabbitmq", "users", user, _] => format!("{service}/user/{user}"),
        // An app's link uses a credential declared elsewhere: a consumer, not an identity.
        [_, _, "app", "links", _] => String::new(),
        _ => path.to_string(),
    }
}

fn secret_refs(cx: &mut Ctx<'_>) {
    let refs = all_secret_refs(cx);
    let stack = cx.stack();
    let ids: Vec<&str> = stack.secrets.keys().map(String::as_str).collect();
    let mut reports = Vec::new();
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, reference) in &refs {
        if !stack.secrets.contains_key(&reference.secret) {
            reports.push((
                "TG003",
                Severity::Error,
                format!("{path}.secret"),
                format!("unknown secret `{}`", reference.secret),
                format!(
                    "declare it under [secrets] {}",
                    did_you_mean(&reference.secret, ids.iter().copied())
                )
                .trim()
                .to_string(),
            ));
        }
        users
            .entry(reference.secret.clone())
            .or_default()
            .insert(identity(path));
    }
    for (id, identities) in &users {
        let list: Vec<_> = identities
            .iter()
            .filter(|i| !i.is_empty())
            .cloned()
            .collect();
        if list.len() > 1 {
            reports.push((
                "TG102",
                Severity::Warning,
                format!("secrets.{id}"),
                format!(
                    "secret `{id}` is the password of {} different credentials ({})",
                    list.len(),
                    list.join(", ")
                ),
                "declare one secret per credential so each can be rotated alone".to_string(),
            ));
        }
    }
    for id in stack.secrets.keys() {
        if !users.contains_key(id) {
            reports.push((
                "TG106",
                Severity::Warning,
                format!("secrets.{id}"),
                format!("secret `{id}` is declared but nothing uses it"),
                "remove it, or reference it as `{ secret = \"...\" }`".to_string(),
            ));
        }
    }
    for (rule, severity, path, message, help) in reports {
        cx.report_key(rule, severity, &path, message, help);
    }
}

/// A reference from `path` to a service that must exist and be one of `kinds`.
struct Reference {
    path: String,
    target: String,
    kinds: &'static [Kind],
}

fn service_references(cx: &Ctx<'_>) -> Vec<Reference> {
    let mut refs = Vec::new();
    let mut add = |path: String, target: &str, kinds: &'static [Kind]| {
        refs.push(Reference {
            path,
            target: target.to_string(),
            kinds,
        });
    };
    const DB: &[Kind] = &[Kind::Pgbouncer, Kind::Postgres];
    for (name, s) in &cx.stack().services {
        let base = format!("services.{name}");
        if let Some(b) = &s.pgbouncer {
            add(
                format!("{base}.pgbouncer.upstream"),
                &b.upstream,
                &[Kind::Postgres],
            );
        }
        if let Some(r) = &s.redis
            && let Some(master) = &r.replica_of
        {
            add(format!("{base}.redis.replica_of"), master, &[Kind::Redis]);
        }
        if let Some(sen) = &s.sentinel {
            add(
                format!("{base}.sentinel.monitors"),
                &sen.monitors,
                &[Kind::Redis],
            );
        }
        if let Some(g) = &s.gateway {
            add(format!("{base}.gateway.database"), &g.database, DB);
            add(
                format!("{base}.gateway.redis"),
                &g.redis,
                &[Kind::Redis, Kind::Sentinel],
            );
            add(
                format!("{base}.gateway.broker"),
                &g.broker,
                &[Kind::Rabbitmq],
            );
        }
        if let Some(a) = &s.api {
            add(format!("{base}.api.database"), &a.database, DB);
            if let Some(cache) = &a.cache {
                add(
                    format!("{base}.api.cache.redis"),
                    &cache.redis,
                    &[Kind::Redis],
                );
            }
        }
        if let Some(n) = &s.nginx {
            add(format!("{base}.nginx.upstream"), &n.upstream, &[Kind::Api]);
        }
        if let Some(g) = &s.grafana {
            add(
                format!("{base}.grafana.prometheus"),
                &g.prometheus,
                &[Kind::Prometheus],
            );
            add(format!("{base}.grafana.database"), &g.database, DB);
            if let Some(redis) = &g.redis {
                add(format!("{base}.grafana.redis"), redis, &[Kind::Redis]);
            }
        }
        if let Some(app) = &s.app {
            for (var, link) in &app.links {
                if let Some(target) = link.service() {
                    add(format!("{base}.app.links.{var}"), target, &[]);
                }
            }
        }
        if let Some(e) = &s.exporter {
            let kinds: &'static [Kind] = match s.kind {
                Kind::PostgresExporter => &[Kind::Postgres],
                Kind::RedisExporter => &[Kind::Redis],
                Kind::PgbouncerExporter => &[Kind::Pgbouncer],
                _ => &[],
            };
            add(format!("{base}.exporter.target"), &e.target, kinds);
        }
    }
    refs
}

fn service_refs(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let names: Vec<&str> = stack.services.keys().map(String::as_str).collect();
    let mut reports = Vec::new();
    for reference in service_references(cx) {
        match stack.service(&reference.target) {
            None => reports.push((
                "TG003",
                reference.path.clone(),
                format!("unknown service `{}`", reference.target),
                format!(
                    "name a service of kind {} {}",
                    kinds_text(reference.kinds),
                    did_you_mean(&reference.target, names.iter().copied())
                ),
            )),
            Some(target)
                if !reference.kinds.is_empty() && !reference.kinds.contains(&target.kind) =>
            {
                reports.push((
                    "TG003",
                    reference.path.clone(),
                    format!(
                        "`{}` is a `{}` service, expected {}",
                        reference.target,
                        target.kind.as_str(),
                        kinds_text(reference.kinds)
                    ),
                    "name a service of the right kind".to_string(),
                ))
            }
            Some(_) => {}
        }
    }
    reports.extend(role_refs(stack));
    for (rule, path, message, help) in reports {
        cx.report_key(
            rule,
            Severity::Error,
            &path,
            message,
            help.trim().to_string(),
        );
    }
    reachability(cx);
}

/// Roles and users named by consumers must exist where they point.
fn role_refs(stack: &crate::model::Stack) -> Vec<(&'static str, String, String, String)> {
    let mut reports = Vec::new();
    for (name, s) in &stack.services {
        let base = format!("services.{name}");
        let mut role_refs: Vec<(String, &str, &str)> = Vec::new();
        if let Some(g) = &s.gateway {
            role_refs.push((format!("{base}.gateway.db_role"), &g.database, &g.db_role));
        }
        if let Some(a) = &s.api {
            role_refs.push((format!("{base}.api.db_role"), &a.database, &a.db_role));
        }
        if let Some(g) = &s.grafana {
            role_refs.push((format!("{base}.grafana.db_role"), &g.database, &g.db_role));
        }
        if let (Some(e), Kind::PostgresExporter) = (&s.exporter, s.kind)
            && let Some(user) = &e.user
        {
            role_refs.push((format!("{base}.exporter.user"), &e.target, user));
        }
        for (path, database, role) in role_refs {
            if let Some((db_name, pg)) = stack.database_of(database)
                && !pg.roles.contains_key(role)
            {
                let roles: Vec<&str> = pg.roles.keys().map(String::as_str).collect();
                reports.push((
                    "TG003",
                    path,
                    format!("unknown role `{role}` of database service `{db_name}`"),
                    format!(
                        "declare it under [services.{db_name}.postgres.roles] {}",
                        did_you_mean(role, roles.iter().copied())
                    ),
                ));
            }
        }
        if let Some(b) = &s.pgbouncer
            && let (Some(users), Some((db_name, pg))) = (&b.users, stack.database_of(&b.upstream))
        {
            for user in users {
                if !pg.roles.contains_key(user) {
                    reports.push((
                        "TG003",
                        format!("{base}.pgbouncer.users"),
                        format!("unknown role `{user}` of `{db_name}`"),
                        "list roles declared on the upstream".to_string(),
                    ));
                }
            }
        }
        if let Some(g) = &s.gateway
            && let Some(r) = stack.service(&g.broker).and_then(|b| b.rabbitmq.as_ref())
            && !r.users.contains_key(&g.broker_user)
        {
            let users: Vec<&str> = r.users.keys().map(String::as_str).collect();
            reports.push((
                "TG003",
                format!("{base}.gateway.broker_user"),
                format!("unknown broker user `{}`", g.broker_user),
                format!(
                    "declare it under [services.{}.rabbitmq.users] {}",
                    g.broker,
                    did_you_mean(&g.broker_user, users.iter().copied())
                ),
            ));
        }
    }
    reports
}

fn kinds_text(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| format!("`{}`", k.as_str()))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Every reference must be reachable from where the caller runs (incidents 7, 9).
fn reachability(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for reference in service_references(cx) {
        let Some((caller, service)) = reference
            .path
            .strip_prefix("services.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|name| stack.services.get_key_value(name))
        else {
            continue;
        };
        match stack.reach(service, &reference.target) {
            Err(Unreachable::NotPublished) => reports.push((
                "TG206",
                reference.path.clone(),
                format!("native service `{caller}` reaches container `{}`, which publishes no host port", reference.target),
                format!("set `publish` on services.{}, or run `{caller}` as a container", reference.target),
            )),
            Err(Unreachable::NoSharedNetwork) => reports.push((
                "TG207",
                reference.path.clone(),
                format!("`{caller}` and `{}` share no network", reference.target),
                "add a common network to both `networks` lists".to_string(),
            )),
            _ => {}
        }
    }
    for (rule, path, message, help) in reports {
        cx.report_key(rule, Severity::Error, &path, message, help);
    }
}

fn parse_cidr(text: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((addr, len))
}

fn networks(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let declared: Vec<&str> = stack.networks.keys().map(String::as_str).collect();
    let mut reports = Vec::new();
    for (name, s) in &stack.services {
        for (index, network) in s.networks.iter().enumerate() {
            if !stack.networks.contains_key(network) {
                reports.push((
                    "TG003",
                    Severity::Error,
                    format!("services.{name}.networks.{index}"),
                    format!("unknown network `{network}`"),
                    format!(
                        "declare [networks.{network}] {}",
                        did_you_mean(network, declared.iter().copied())
                    )
                    .trim()
                    .to_string(),
                ));
            }
        }
        if s.deploy == Deploy::Container && s.networks.is_empty() {
            reports.push((
                "TG207",
                Severity::Warning,
                format!("services.{name}"),
                format!("container `{name}` joins no network"),
                "list its networks in `networks`".to_string(),
            ));
        }
    }
    for (name, network) in &stack.networks {
        match parse_cidr(&network.subnet) {
            None => reports.push((
                "TG009",
                Severity::Error,
                format!("networks.{name}.subnet"),
                format!("`{}` is not an IPv4 subnet in CIDR form", network.subnet),
                "write it like `172.28.10.0/24`".to_string(),
            )),
            // pg_hba admits whole subnets: a wide one admits far more than the stack (incident 3).
            Some((_, len)) if len < 16 => reports.push((
                "TG103",
                Severity::Error,
                format!("networks.{name}.subnet"),
                format!(
                    "subnet `{}` is wider than /16; pg_hba.conf would admit all of it",
                    network.subnet
                ),
                "declare the narrowest subnet the containers need, e.g. a /24".to_string(),
            )),
            Some(_) => {}
        }
    }
    for (rule, severity, path, message, help) in reports {
        cx.report_key(rule, severity, &path, message, help);
    }
}

fn images(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for (name, s) in &stack.services {
        if s.deploy != Deploy::Container {
            continue;
        }
        match &s.image {
            None => reports.push((
                "TG007",
                Severity::Error,
                format!("services.{name}"),
                format!("container `{name}` has no image"),
                "set `image = \"repo:version\"`".to_string(),
            )),
            Some(image) => {
                let last = image.rsplit('/').next().unwrap_or(image);
                let tag = last.split_once(':').map(|(_, tag)| tag);
                let pinned = image.contains("@sha256:")
                    || matches!(tag, Some(t) if t != "latest" && !t.is_empty());
                if !pinned {
                    reports.push((
                        "TG608",
                        Severity::Warning,
                        format!("services.{name}.image"),
                        format!("image `{image}` is not pinned to a version"),
                        "pin a version tag or digest, e.g. `redis:7.4.1-alpine`".to_string(),
                    ));
                }
            }
        }
    }
    for (rule, severity, path, message, help) in reports {
        cx.report_key(rule, severity, &path, message, help);
    }
}

fn ports(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    let mut seen: BTreeMap<u16, (String, String)> = BTreeMap::new();
    // The later of two places in the model files (an overlay's, usually) is the one that
    // made the conflict: the finding points there.
    let written_at = |path: &str| {
        cx.model
            .spans
            .span_for(&super::split_path(path))
            .map_or(0, |span| span.start)
    };
    for port in stack.published_ports() {
        if let Some((other, other_path)) = seen.get(&port.host_port) {
            let (at, first) = if written_at(other_path) > written_at(&port.path) {
                (other_path.clone(), port.path.clone())
            } else {
                (port.path.clone(), other_path.clone())
            };
            reports.push((
                "TG203",
                Severity::Error,
                at,
                format!(
                    "host port {} is published by both `{other}` and `{}`",
                    port.host_port, port.instance
                ),
                format!("pick another host port; {first} already has it"),
            ));
        } else {
            seen.insert(port.host_port, (port.instance.clone(), port.path.clone()));
        }
        if stack.host.reserved_ports.contains(&port.host_port) {
            reports.push((
                "TG204",
                Severity::Error,
                port.path.clone(),
                format!(
                    "host port {} is reserved (host.reserved_ports)",
                    port.host_port
                ),
                "pick a port outside host.reserved_ports".to_string(),
            ));
        }
        if port.address == "0.0.0.0" || port.address == "::" {
            reports.push((
                "TG205",
                Severity::Warning,
                port.path.clone(),
                format!(
                    "`{}` publishes port {} on all interfaces",
                    port.instance, port.host_port
                ),
                "bind to 127.0.0.1 (host.bind or publish_address), or allow TG205 with a reason"
                    .to_string(),
            ));
        }
    }
    // One service, two listeners on one port: the second cannot bind.
    for (name, service) in &stack.services {
        let mut listeners = vec![("port", service.port)];
        if let Some(r) = &service.rabbitmq {
            listeners.push(("rabbitmq.management_port", r.management_port));
            listeners.push(("rabbitmq.metrics_port", r.metrics_port));
        }
        for (index, (key, port)) in listeners.iter().enumerate() {
            if let Some((first, _)) = listeners[..index].iter().find(|(_, p)| p == port) {
                reports.push((
                    "TG203",
                    Severity::Error,
                    format!("services.{name}.{key}"),
                    format!("`{name}` would listen on port {port} twice ({first} and {key})"),
                    format!("give {key} a port of its own"),
                ));
            }
        }
    }
    for (rule, severity, path, message, help) in reports {
        cx.report_key(rule, severity, &path, message, help);
    }
}

fn budget(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    // A swarm's budgets are its nodes' (TG802).
    if stack.is_swarm() {
        return;
    }
    let (mut cpus, mut memory) = (0.0_f64, 0_u64);
    for (name, s) in &stack.services {
        let (c, m) = stack.cost(name, s);
        cpus += c;
        memory += m;
    }
    let mut reports = Vec::new();
    if cpus > stack.host.cpus + 1e-9 {
        reports.push((
            "host.cpus",
            format!(
                "services need {cpus:.2} CPUs, the host budget is {}",
                stack.host.cpus
            ),
        ));
    }
    if memory > stack.host.memory.0 {
        reports.push((
            "host.memory",
            format!(
                "services need {} MiB of memory, the host budget is {}",
                memory >> 20,
                stack.host.memory
            ),
        ));
    }
    for (path, message) in reports {
        cx.report_key(
            "TG004",
            Severity::Error,
            path,
            message,
            "lower service limits or raise the host budget (see `tgstack budget`)".to_string(),
        );
    }
}

fn sentinel(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for (name, s) in &stack.services {
        let Some(sen) = &s.sentinel else { continue };
        let base = format!("services.{name}.sentinel");
        if sen.quorum == 0 || sen.quorum > sen.count {
            reports.push((
                Severity::Error,
                format!("{base}.quorum"),
                format!(
                    "quorum {} with {} sentinel(s): failover can never happen",
                    sen.quorum, sen.count
                ),
                "quorum must be between 1 and `count`".to_string(),
            ));
        } else if sen.quorum * 2 <= sen.count {
            reports.push((
                Severity::Error,
                format!("{base}.quorum"),
                format!(
                    "quorum {} is not a majority of {} sentinels",
                    sen.quorum, sen.count
                ),
                format!("set quorum to {}", sen.count / 2 + 1),
            ));
        }
        if let Some(master) = stack
            .service(&sen.monitors)
            .and_then(|m| m.redis.as_ref())
            .and_then(|r| r.replica_of.as_deref())
        {
            reports.push((
                Severity::Error,
                format!("{base}.monitors"),
                format!(
                    "`{}` is a replica of `{master}`: Sentinel must watch the master, or it never sees a failover to act on",
                    sen.monitors
                ),
                format!("set `monitors = \"{master}\"`"),
            ));
        }
        if sen.count < 3 {
            reports.push((
                Severity::Warning,
                format!("{base}.count"),
                format!("{} sentinel(s) give no high availability", sen.count),
                "run at least 3 sentinels".to_string(),
            ));
        }
    }
    for (severity, path, message, help) in reports {
        cx.report_key("TG301", severity, &path, message, help);
    }
}

fn auth(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for (name, s) in &stack.services {
        if let Some(b) = &s.pgbouncer
            && let (Some(auth), Some((db, pg))) = (b.auth_type, stack.database_of(&b.upstream))
            && auth != pg.password_encryption
        {
            reports.push(("TG101", Severity::Error, format!("services.{name}.pgbouncer.auth_type"), format!("PgBouncer auth_type `{}` differs from `{db}` password_encryption `{}`: logins fail", auth.as_str(), pg.password_encryption.as_str()), "drop auth_type (it follows the server) or make both the same".to_string()));
        }
        if let Some(pg) = &s.postgres
            && pg.password_encryption == PasswordEncryption::Md5
        {
            reports.push((
                "TG101",
                Severity::Warning,
                format!("services.{name}.postgres.password_encryption"),
                "md5 password hashing is deprecated".to_string(),
                "use scram-sha-256".to_string(),
            ));
        }
        if let Some(r) = &s.redis
            && let Some(master) = r
                .replica_of
                .as_ref()
                .and_then(|m| stack.service(m))
                .and_then(|m| m.redis.as_ref())
            && master.password != r.password
        {
            reports.push(("TG102", Severity::Error, format!("services.{name}.redis.password"), format!("replica `{name}` uses another password than its master: replication and failover fail"), "reference the master's secret".to_string()));
        }
    }
    for (rule, severity, path, message, help) in reports {
        cx.report_key(rule, severity, &path, message, help);
    }
}

fn redis_memory(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for (name, s) in &stack.services {
        let Some(r) = &s.redis else { continue };
        // Leave a quarter for fork-on-save, buffers and fragmentation (incident 15).
        if r.maxmemory.0 * 4 > s.memory.0 * 3 {
            reports.push((
                format!("services.{name}.redis.maxmemory"),
                format!(
                    "maxmemory {} leaves less than 25 % headroom below the {} memory limit",
                    r.maxmemory, s.memory
                ),
                format!(
                    "set maxmemory to at most {}",
                    crate::model::units::ByteSize(s.memory.0 / 4 * 3)
                ),
            ));
        }
    }
    for (path, message, help) in reports {
        cx.report_key("TG303", Severity::Error, &path, message, help);
    }
}

/// Smallest useful share of the cache budget per entry: below it most messages would not
/// fit and the cache would send nearly every page to the database.
const MIN_CACHE_ENTRY: u64 = 1024;

/// A read cache must fit its Redis beside the dedup keys, be writable, and have a writer.
fn read_cache(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let channels = stack.channels.len().max(1) as u64;
    let mut reports = Vec::new();
    let mut budgets: BTreeMap<&str, (u64, Vec<String>)> = BTreeMap::new();
    for (name, s) in &stack.services {
        let Some(cache) = s.api.as_ref().and_then(|a| a.cache.as_ref()) else {
            continue;
        };
        let path = format!("services.{name}.api.cache");
        let Some(redis) = stack.service(&cache.redis).and_then(|r| r.redis.as_ref()) else {
            continue; // TG003 names the reference
        };
        if redis.replica_of.is_some() {
            reports.push((
                format!("{path}.redis"),
                format!("the read cache of `{name}` is in `{}`, a read-only replica: the gateway cannot write it", cache.redis),
                format!("name the master, `{}`", redis.replica_of.as_deref().unwrap_or_default()),
            ));
        }
        let entries = channels * u64::from(cache.recent);
        let share = cache.entry_cap(stack.channels.len());
        if share < MIN_CACHE_ENTRY {
            reports.push((
                format!("{path}.memory"),
                format!(
                    "memory {} leaves each of the {entries} cached messages ({channels} channels x recent {}) {share} bytes of JSON: most would not fit and be read from the database",
                    cache.memory, cache.recent
                ),
                format!(
                    "raise memory to at least {}, or lower recent",
                    crate::model::units::ByteSize(entries * (MIN_CACHE_ENTRY + crate::model::ReadCache::ENTRY_OVERHEAD))
                ),
            ));
        }
        let api = s
            .api
            .as_ref()
            .map(|a| a.database.as_str())
            .unwrap_or_default();
        let writers = stack.gateways_storing_into(api);
        if cache.enabled && writers.is_empty() {
            reports.push((
                format!("{path}.enabled"),
                format!("no gateway stores into the database `{name}` reads, so nothing writes its read cache and every page would come from the database"),
                "point a gateway's `database` at the same PostgreSQL, or turn the cache off".to_string(),
            ));
        }
        for writer in writers {
            let Some(gateway) = stack.service(writer) else {
                continue;
            };
            if stack.reach(gateway, &cache.redis).is_err() {
                reports.push((
                    format!("{path}.redis"),
                    format!("gateway `{writer}` writes the read cache of `{name}` but cannot reach `{}`", cache.redis),
                    format!("publish a port of `{}` or give both a common network", cache.redis),
                ));
            }
        }
        let entry = budgets.entry(cache.redis.as_str()).or_default();
        entry.0 += cache.memory.0;
        entry.1.push(path);
    }
    for (redis_name, (total, paths)) in budgets {
        let Some(redis) = stack.service(redis_name).and_then(|r| r.redis.as_ref()) else {
            continue;
        };
        // Half stays for the dedup keys, which must never be evicted for the cache's sake.
        if total * 2 > redis.maxmemory.0 {
            reports.push((
                format!("{}.memory", paths[0]),
                format!(
                    "read caches in `{redis_name}` may take {}, more than half of its maxmemory {}: the dedup keys need the rest",
                    crate::model::units::ByteSize(total),
                    redis.maxmemory
                ),
                format!(
                    "lower memory to at most {} in total, or raise services.{redis_name}.redis.maxmemory",
                    crate::model::units::ByteSize(redis.maxmemory.0 / 2)
                ),
            ));
        }
    }
    for (path, message, help) in reports {
        cx.report_key("TG305", Severity::Error, &path, message, help);
    }
}

/// Retention, compression and aggregate windows that the migrations cannot honour: one
/// finding at the key, before anything renders.
fn data_lifecycle(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for (name, service) in &stack.services {
        let Some(pg) = &service.postgres else {
            continue;
        };
        for (key, message) in pg.lifecycle_problems() {
            reports.push((format!("services.{name}.postgres.{key}"), message));
        }
    }
    for (path, message) in reports {
        cx.report_key(
            "TG405",
            Severity::Error,
            &path,
            message,
            "keep chunk_interval <= compress_after < retention, and the aggregates' refresh window (at least three buckets) below retention".to_string(),
        );
    }
}

fn pool_capacity(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for (name, s) in &stack.services {
        let Some(b) = &s.pgbouncer else { continue };
        let Some((db, pg)) = stack.database_of(&b.upstream) else {
            continue;
        };
        let users = b.users.as_ref().map(Vec::len).unwrap_or(pg.roles.len()) as u32;
        // One database per pool; each user gets its own pool plus the reserve.
        let server_side = users * (b.default_pool_size + b.reserve_pool_size);
        let available = pg
            .max_connections
            .saturating_sub(pg.superuser_reserved_connections);
        if server_side > available {
            reports.push((format!("services.{name}.pgbouncer.default_pool_size"), format!("PgBouncer may open {server_side} server connections ({users} user(s) x (pool {} + reserve {})) but `{db}` accepts {available}", b.default_pool_size, b.reserve_pool_size), format!("lower default_pool_size/reserve_pool_size or raise services.{db}.postgres.max_connections")));
        }
    }
    for (path, message, help) in reports {
        cx.report_key("TG404", Severity::Error, &path, message, help);
    }
}

/// Callers must wait longer than what they call (incident 31).
/// Statement pooling hands each statement to any server connection: the gateway's batch
/// (COPY, INSERT, outbox, in one transaction) and the migrations cannot run through it.
fn pool_mode(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    for (name, service) in &stack.services {
        let Some(bouncer) = &service.pgbouncer else {
            continue;
        };
        if bouncer.pool_mode != crate::model::PoolMode::Statement {
            continue;
        }
        let users: Vec<&str> = stack
            .services
            .iter()
            .filter(|(_, s)| {
                s.gateway.as_ref().is_some_and(|g| g.database == *name)
                    || s.api.as_ref().is_some_and(|a| a.database == *name)
            })
            .map(|(n, _)| n.as_str())
            .collect();
        if let Some(user) = users.first() {
            reports.push((
                format!("services.{name}.pgbouncer.pool_mode"),
                format!(
                    "`{user}` runs multi-statement transactions through `{name}`, which statement pooling refuses"
                ),
                "use `pool_mode = \"transaction\"` (the default)".to_string(),
            ));
        }
    }
    for (path, message, help) in reports {
        cx.report_key("TG402", Severity::Error, &path, message, help);
    }
}

/// Deploy paths end up in bind-mount sources and EnvironmentFile lines, which resolve
/// against whatever directory a command runs in: they must be absolute.
fn deploy_paths(cx: &mut Ctx<'_>) {
    let deploy = &cx.stack().deploy;
    let relative: Vec<(&str, String)> = [
        ("secrets_dir", &deploy.secrets_dir),
        ("config_dir", &deploy.config_dir),
        ("state_dir", &deploy.state_dir),
    ]
    .into_iter()
    .filter(|(_, dir)| !dir.starts_with('/'))
    .map(|(key, dir)| (key, dir.clone()))
    .collect();
    for (key, dir) in relative {
        cx.report_key(
            "TG601",
            Severity::Error,
            &format!("deploy.{key}"),
            format!("deploy.{key} `{dir}` is relative: compose and systemd would resolve it against whatever directory they run in"),
            format!("write an absolute path, e.g. `/etc/tgstack/{}`", key.trim_end_matches("_dir")),
        );
    }
}

fn timeouts(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    // 0 means "no limit" to PostgreSQL, PgBouncer and the API: a chain with no bound.
    for (name, s) in &stack.services {
        let zero = [
            s.postgres
                .as_ref()
                .map(|p| ("postgres.statement_timeout", p.statement_timeout)),
            s.pgbouncer
                .as_ref()
                .map(|b| ("pgbouncer.query_timeout", b.query_timeout)),
            s.api
                .as_ref()
                .map(|a| ("api.request_timeout", a.request_timeout)),
            s.grafana
                .as_ref()
                .map(|g| ("grafana.query_timeout", g.query_timeout)),
        ];
        for (key, timeout) in zero.into_iter().flatten() {
            if timeout.millis() == 0 {
                reports.push((
                    format!("services.{name}.{key}"),
                    format!("`{name}` {key} is 0, which means no limit: a stuck query holds its connection forever"),
                    "set a bound (the reference model uses 20s for statements)".to_string(),
                ));
            }
        }
    }
    for (name, s) in &stack.services {
        let Some(b) = &s.pgbouncer else { continue };
        if let Some((db, pg)) = stack.database_of(&b.upstream)
            && b.query_timeout <= pg.statement_timeout
        {
            reports.push((
                format!("services.{name}.pgbouncer.query_timeout"),
                format!(
                    "PgBouncer query_timeout {} is not longer than `{db}` statement_timeout {}",
                    b.query_timeout, pg.statement_timeout
                ),
                "the caller's timeout must exceed the callee's".to_string(),
            ));
        }
    }
    for (name, s) in &stack.services {
        let (database, timeout, what) = match (&s.api, &s.grafana) {
            (Some(a), _) => (&a.database, a.request_timeout, "request_timeout"),
            (_, Some(g)) => (&g.database, g.query_timeout, "query_timeout"),
            _ => continue,
        };
        let callee = stack.service(database).and_then(|d| {
            d.pgbouncer
                .as_ref()
                .map(|b| (b.query_timeout, "query_timeout"))
                .or_else(|| {
                    d.postgres
                        .as_ref()
                        .map(|p| (p.statement_timeout, "statement_timeout"))
                })
        });
        if let Some((callee_timeout, callee_key)) = callee
            && timeout <= callee_timeout
        {
            let table = if s.api.is_some() { "api" } else { "grafana" };
            reports.push((format!("services.{name}.{table}.{what}"), format!("`{name}` {what} {timeout} is not longer than `{database}` {callee_key} {callee_timeout}"), "the caller's timeout must exceed the callee's".to_string()));
        }
    }
    // A proxy that gives up first answers 504 while the API still works on the request.
    for (name, s) in &stack.services {
        let Some(n) = &s.nginx else { continue };
        if let Some(api) = stack.service(&n.upstream).and_then(|u| u.api.as_ref())
            && n.read_timeout <= api.request_timeout
        {
            reports.push((
                format!("services.{name}.nginx.read_timeout"),
                format!(
                    "`{name}` read_timeout {} is not longer than `{}` request_timeout {}",
                    n.read_timeout, n.upstream, api.request_timeout
                ),
                "the caller's timeout must exceed the callee's".to_string(),
            ));
        }
    }
    for (path, message, help) in reports {
        cx.report_key("TG607", Severity::Error, &path, message, help);
    }
}
