//! The services of an imported stack: compose services and systemd units, each given a
//! kind by its image or program, and the fields every kind has (image, ports, limits,
//! networks) read from the compose file or the unit.

use std::collections::BTreeMap;

use serde_json::Value;

use super::draft::{Table, secret_ref};
use super::secrets::interpolated;
use super::{Import, Source};
use crate::check::audit::FileKind;
use crate::check::audit::deployment::{compose_bytes, environment, string_items};
use crate::check::dialect::PortSpec;
use crate::model::Kind;
use crate::model::units::ByteSize;

/// One service of the imported stack.
pub struct Found {
    /// Its name in the model.
    pub name: String,
    pub kind: Kind,
    /// The compose services it was read from (a Sentinel per instance); empty for a unit.
    pub instances: Vec<String>,
    /// The first instance's compose entry (`Null` for a unit).
    pub compose: Value,
    /// Its `ports:`, as the audit's deployment read them (none for a unit).
    ports: Vec<PortSpec>,
    /// The unit file it was read from, for a native service.
    pub unit: Option<String>,
    /// The `[Service]` settings of that unit.
    pub unit_settings: Vec<(String, String)>,
    pub image: Option<String>,
    /// The container's command, or the unit's ExecStart words.
    pub command: Vec<String>,
    /// Environment: compose `environment:` or the unit's `Environment=`.
    pub env: Vec<(String, String)>,
    /// The tree's copy of the config file a tgstack program reads (`TGSTACK_MODEL`).
    pub own_config: Option<String>,
}

impl Found {
    pub fn native(&self) -> bool {
        self.unit.is_some()
    }

    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn ports(&self) -> Vec<PortSpec> {
        self.ports.clone()
    }
}

/// The stack's name: compose's `name:`, else the directory's.
pub fn stack_name(source: &Source<'_>) -> String {
    compose_documents(source)
        .find_map(|(_, d)| d["name"].as_str().map(String::from))
        .unwrap_or_else(|| {
            let dir = std::path::absolute(source.dir).unwrap_or_else(|_| source.dir.into());
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "stack".into())
        })
}

fn compose_documents<'a>(source: &'a Source<'a>) -> impl Iterator<Item = (&'a str, &'a Value)> {
    source
        .of_kind(FileKind::Compose)
        .filter_map(|f| match &f.yaml {
            Some(Ok(document)) => Some((f.rel.as_str(), document)),
            _ => None,
        })
}

/// Every service: compose services (Sentinel instances `NAME-1..n` folded into one), then
/// native units.
pub fn find(source: &Source<'_>, unrepresented: &mut Vec<String>) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for (rel, document) in compose_documents(source) {
        for (name, entry) in document["services"].as_object().into_iter().flatten() {
            if found.iter().any(|f| f.instances.contains(name)) {
                continue;
            }
            let service = compose_service(source, name, entry);
            let model_name = match service.kind {
                Kind::Sentinel => instance_group(name),
                _ => name.clone(),
            };
            match found.iter_mut().find(|f| f.name == model_name) {
                Some(group) if group.kind == Kind::Sentinel => group.instances.push(name.clone()),
                Some(_) => unrepresented.push(format!(
                    "service `{name}` of {rel}: a second service named `{model_name}`"
                )),
                None => found.push(Found {
                    name: model_name,
                    ..service
                }),
            }
        }
    }
    for unit in source.of_kind(FileKind::Unit) {
        if let Some(service) = unit_service(source, unit) {
            if found.iter().any(|f| f.name == service.name) {
                unrepresented.push(format!(
                    "{}: a second service named `{}` (the first is kept)",
                    unit.rel, service.name
                ));
                continue;
            }
            found.push(service);
        } else if unit.rel.ends_with(".service") {
            unrepresented.push(format!("{}: a unit without ExecStart", unit.rel));
        }
    }
    found
}

/// `sentinel-2` -> `sentinel`: the model names the group, the renderer numbers instances.
fn instance_group(name: &str) -> String {
    match name.rsplit_once('-') {
        Some((group, n)) if !group.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            group.to_owned()
        }
        _ => name.to_owned(),
    }
}

fn compose_service(source: &Source<'_>, name: &str, entry: &Value) -> Found {
    let image = entry["image"].as_str().map(String::from);
    let command = words(&entry["command"]);
    let env = environment(&entry["environment"]);
    let own_config = env
        .iter()
        .find(|(k, _)| k == "TGSTACK_MODEL")
        .and_then(|(_, path)| {
            let service = source.deployment.services.get(name)?;
            source.deployment.host_file(service, path)
        });
    let kind = if own_config.is_some() {
        own_kind(source, own_config.as_deref(), &env).unwrap_or(Kind::App)
    } else {
        image_kind(image.as_deref().unwrap_or(""), &command)
    };
    Found {
        name: name.to_owned(),
        kind,
        instances: vec![name.to_owned()],
        compose: entry.clone(),
        ports: source
            .deployment
            .services
            .get(name)
            .map(|s| s.ports.clone())
            .unwrap_or_default(),
        unit: None,
        unit_settings: Vec::new(),
        image,
        command,
        env,
        own_config,
    }
}

/// The kind a tgstack program's own config gives its service.
fn own_kind(source: &Source<'_>, config: Option<&str>, env: &[(String, String)]) -> Option<Kind> {
    let table = own_table(source, config?, env)?;
    let kind = table.get("kind")?.clone();
    toml::Value::try_into::<Kind>(kind).ok()
}

/// The service's table in a tgstack program's config file (`TGSTACK_SERVICE` names it).
pub fn own_table(
    source: &Source<'_>,
    config: &str,
    env: &[(String, String)],
) -> Option<toml::Table> {
    let service = env.iter().find(|(k, _)| k == "TGSTACK_SERVICE")?.1.clone();
    let document: toml::Table = source.other(config)?.parse().ok()?;
    document.get("services")?.get(&service)?.as_table().cloned()
}

/// A kind by image name (and command, for Sentinels run from the Redis image).
fn image_kind(image: &str, command: &[String]) -> Kind {
    let repo = image
        .split(':')
        .next()
        .unwrap_or(image)
        .to_ascii_lowercase();
    let last = repo.rsplit('/').next().unwrap_or(&repo);
    let runs = |program: &str| command.iter().any(|w| w.contains(program));
    match last {
        _ if last.contains("pgbouncer") && last.contains("exporter") => Kind::PgbouncerExporter,
        "grafana" | "grafana-oss" | "grafana-enterprise" => Kind::Grafana,
        _ if last.contains("postgres") && last.contains("exporter") => Kind::PostgresExporter,
        _ if last.contains("redis") && last.contains("exporter") => Kind::RedisExporter,
        "node-exporter" => Kind::NodeExporter,
        "cadvisor" => Kind::Cadvisor,
        "pgbouncer" => Kind::Pgbouncer,
        "postgres" | "timescaledb" | "timescaledb-ha" | "postgresql" => Kind::Postgres,
        "redis" | "valkey" if runs("redis-sentinel") || runs("--sentinel") => Kind::Sentinel,
        "redis" | "valkey" => Kind::Redis,
        "rabbitmq" => Kind::Rabbitmq,
        "prometheus" => Kind::Prometheus,
        _ => Kind::App,
    }
}

/// A systemd unit running a program: a tgstack program (its `TGSTACK_MODEL`) or an app.
fn unit_service(source: &Source<'_>, unit: &crate::check::audit::Audited) -> Option<Found> {
    let pairs = super::read::assignments(&unit.text, Some("Service"));
    let exec = super::read::value(&pairs, "ExecStart")?;
    let command: Vec<String> = exec
        .trim_start_matches(['-', '@', '+', '!', ':'])
        .split_whitespace()
        .map(String::from)
        .collect();
    let env: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "Environment")
        .flat_map(|(_, v)| unit_words(v))
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let stem = unit.rel.rsplit('/').next()?.strip_suffix(".service")?;
    let own_config = env
        .iter()
        .find(|(k, _)| k == "TGSTACK_MODEL")
        .and_then(|(_, path)| tree_file(source, path).map(|(rel, _)| rel));
    let kind = own_kind(source, own_config.as_deref(), &env).unwrap_or(Kind::App);
    let name = env
        .iter()
        .find(|(k, _)| k == "TGSTACK_SERVICE")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| stem.to_owned());
    Some(Found {
        name,
        kind,
        instances: Vec::new(),
        compose: Value::Null,
        ports: Vec::new(),
        unit: Some(unit.rel.clone()),
        image: None,
        command,
        env,
        own_config,
        unit_settings: pairs.clone(),
    })
}

/// The words of an `Environment=` line as systemd splits them: on spaces, a double- or
/// single-quoted word kept whole (`"B=2 3"`).
fn unit_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in value.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (_, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The tree's copy of a file a host path names (`/etc/tgstack/model/stack.toml` ->
/// `model/stack.toml`), and the host directory the tree stands for (`/etc/tgstack`).
pub fn tree_file(source: &Source<'_>, host_path: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = host_path.trim_start_matches('/').split('/').collect();
    (0..parts.len()).find_map(|skip| {
        let rel = parts[skip..].join("/");
        source
            .other(&rel)
            .map(|_| (rel, format!("/{}", parts[..skip].join("/"))))
    })
}

/// Words of a compose `command:` (list, or a string split on whitespace).
pub fn words(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => text.split_whitespace().map(String::from).collect(),
        _ => string_items(value),
    }
}

/// `[host]`: the address ports are published on, and the budget.
pub fn host(import: &mut Import<'_>, found: &[Found]) {
    let mut addresses: BTreeMap<String, usize> = BTreeMap::new();
    for spec in found.iter().flat_map(Found::ports) {
        let address = if spec.host_ip.is_empty() {
            "0.0.0.0".to_owned()
        } else {
            spec.host_ip
        };
        *addresses.entry(address).or_default() += 1;
    }
    let bind = addresses
        .iter()
        .max_by_key(|(address, n)| (**n, std::cmp::Reverse((*address).clone())))
        .map(|(a, _)| a.clone())
        .unwrap_or_else(|| "127.0.0.1".into());
    let budget = budget(import.source);
    let host = import.root.table("host");
    match budget {
        Some((cpus, mebibytes)) => {
            host.set("cpus", cpus);
            host.set("memory", ByteSize(mebibytes << 20).to_string());
        }
        None => {
            // Each instance (a Sentinel per container) counts against the host.
            let times = |f: &Found| f.instances.len().max(1);
            let cpus: f64 = found
                .iter()
                .map(|f| limits(f).0.unwrap_or(0.5) * times(f) as f64)
                .sum();
            let bytes: u64 = found.iter().fold(0u64, |sum, f| {
                let each = limits(f).1.unwrap_or(256 << 20);
                sum.saturating_add(each.saturating_mul(times(f) as u64))
            });
            host.guess(
                "cpus",
                cpus.ceil().max(1.0_f64),
                "the sum of the services' CPU limits",
            );
            host.guess(
                "memory",
                ByteSize(
                    bytes
                        .max(1 << 30)
                        .checked_next_power_of_two()
                        .unwrap_or(bytes),
                )
                .to_string(),
                "the services' memory limits, rounded up",
            );
        }
    }
    host.set("bind", bind);
    host.guess(
        "reserved_ports",
        toml::Value::Array(Vec::new()),
        "ports the host keeps for itself are in no deployed file",
    );
}

/// The host budget a rendered `diagrams/budget.md` states: (CPUs, MiB).
fn budget(source: &Source<'_>) -> Option<(f64, u64)> {
    let text = source.other("diagrams/budget.md")?;
    let row = text.lines().find(|l| l.starts_with("| host budget |"))?;
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    Some((cells.get(2)?.parse().ok()?, cells.get(3)?.parse().ok()?))
}

/// (CPUs, bytes) a service is limited to: compose `deploy.resources.limits`, or the unit's
/// `CPUQuota=` and `MemoryMax=`.
pub fn limits(service: &Found) -> (Option<f64>, Option<u64>) {
    if service.native() {
        let pairs = &service.unit_settings;
        let cpus = super::read::value(pairs, "CPUQuota")
            .and_then(|q| q.strip_suffix('%'))
            .and_then(|q| q.parse::<f64>().ok())
            .map(|percent| percent / 100.0);
        let memory = super::read::value(pairs, "MemoryMax").and_then(compose_bytes);
        return (cpus, memory);
    }
    let limits = &service.compose["deploy"]["resources"]["limits"];
    let cpus = match &limits["cpus"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => service.compose["cpus"].as_f64(),
    };
    let memory = limits["memory"]
        .as_str()
        .or_else(|| service.compose["mem_limit"].as_str())
        .and_then(compose_bytes);
    (cpus, memory)
}

/// `[deploy]`: where secrets, configs and state live on the host, as the files say.
pub fn deploy_dirs(import: &mut Import<'_>, found: &[Found]) {
    let secrets_dir = found
        .iter()
        .flat_map(|f| f.compose["volumes"].as_array().into_iter().flatten())
        .map(crate::check::dialect::mount)
        .filter(|m| m.kind == "bind" && m.source.starts_with('/'))
        .find_map(|m| {
            let (dir, _) = m.source.rsplit_once('/')?;
            dir.ends_with("secrets").then(|| dir.to_owned())
        });
    let config_dir = found
        .iter()
        .filter(|f| f.native())
        .find_map(|f| tree_file(import.source, f.env("TGSTACK_MODEL")?))
        .map(|(_, dir)| dir);
    let state_dir = found.iter().find_map(|f| {
        let state = super::read::value(&f.unit_settings, "StateDirectory")?;
        let work = super::read::value(&f.unit_settings, "WorkingDirectory")?;
        work.strip_suffix(&format!("/{state}")).map(String::from)
    });
    let deploy = import.root.table("deploy");
    for (key, value) in [
        ("secrets_dir", secrets_dir),
        ("config_dir", config_dir),
        ("state_dir", state_dir),
    ] {
        if let Some(value) = value {
            deploy.set(key, value);
        }
    }
}

/// `[networks]` from the compose files' top-level networks.
pub fn networks(import: &mut Import<'_>) {
    let mut networks: Vec<(String, Value)> = Vec::new();
    for (_, document) in compose_documents(import.source) {
        for (name, network) in document["networks"].as_object().into_iter().flatten() {
            networks.push((name.clone(), network.clone()));
        }
    }
    for (name, network) in networks {
        let subnet = network["ipam"]["config"][0]["subnet"]
            .as_str()
            .map(String::from);
        let external = network["external"].as_bool() == Some(true);
        let table = import.root.table("networks").table(&name);
        match subnet {
            Some(subnet) => table.set("subnet", subnet),
            None => table.guess("subnet", "", "the engine picks the subnet; set one"),
        };
        if network["internal"].as_bool() == Some(true) {
            table.set("internal", true);
        }
        if external {
            import.unrepresented.push(format!(
                "network `{name}` is external (created outside the stack)"
            ));
        }
    }
}

/// The fields every service has.
pub fn common(import: &mut Import<'_>, found: &Found) {
    let (cpus, memory) = limits(found);
    let ports = found.ports();
    let networks = names_of(&found.compose["networks"]);
    let restart = found.compose["restart"].as_str().map(String::from);
    let table = import.service(&found.name);
    table.set("kind", found.kind.as_str());
    if found.native() {
        table.set("deploy", "native");
    }
    if let Some(image) = &found.image {
        table.set("image", image.as_str());
    }
    if let Some(first) = ports.first()
        && let Ok(port) = first.target.parse::<u16>()
    {
        table.guess("port", port, "the first published port's container port");
    }
    match cpus {
        Some(cpus) => table.set("cpus", cpus),
        None => table.guess("cpus", 0.5, "no CPU limit in the files"),
    };
    match memory {
        Some(bytes) => table.set("memory", ByteSize(bytes).to_string()),
        None => table.guess("memory", "256MiB", "no memory limit in the files"),
    };
    if !found.native() {
        let names: Vec<toml::Value> = networks.into_iter().map(toml::Value::String).collect();
        table.set("networks", toml::Value::Array(names));
    }
    if let Some(restart) = restart {
        table.set("restart", restart);
    }
    if found.kind == Kind::Sentinel {
        import
            .service(&found.name)
            .table("sentinel")
            .set("count", found.instances.len() as i64);
    }
}

/// The published port of a service's `port`, set once its kind decided the port. A
/// database the files do not publish gets a host port all the same: tgstack's migrate and
/// backup scripts reach it from the host.
pub fn publish(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let bind = import
        .root
        .table("host")
        .get("bind")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let table = import.service(&found.name);
    let Some(port) = table.get("port").and_then(toml::Value::as_integer) else {
        return;
    };
    let spec = found
        .ports()
        .into_iter()
        .find(|p| p.target == port.to_string());
    if let Some(spec) = spec {
        if let Ok(published) = spec.published.parse::<u16>() {
            table.set("publish", published);
        }
        let address = if spec.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            spec.host_ip.as_str()
        };
        if address != bind {
            table.set("publish_address", address);
        }
    } else if found.kind == Kind::Postgres && !found.native() {
        let taken: Vec<String> = all
            .iter()
            .flat_map(Found::ports)
            .map(|p| p.published)
            .collect();
        let free = (port..=i64::from(u16::MAX))
            .find(|p| !taken.contains(&p.to_string()))
            .unwrap_or(port);
        table.guess(
            "publish",
            free,
            "not published in the files; tgstack's migrate and backup scripts reach the database from the host",
        );
    }
}

/// The names of a compose list-or-map (`networks:`, `depends_on:`).
fn names_of(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A tgstack program (gateway, API): its settings are its own config file's, the tree's
/// copy of the model it reads; the port it listens on is stated there too.
pub fn own_config(import: &mut Import<'_>, found: &Found) {
    let Some(config) = found.own_config.as_deref() else {
        return;
    };
    let Some(own) = own_table(import.source, config, &found.env) else {
        import.unrepresented(format!(
            "service `{}`: its config {config} does not name it",
            found.name
        ));
        return;
    };
    let table = import.service(&found.name);
    for key in ["port", "listen"] {
        if let Some(value) = own.get(key) {
            table.set(key, value.clone());
        }
    }
    for key in ["gateway", "api", "native"] {
        if let Some(toml::Value::Table(settings)) = own.get(key) {
            *table.table(key) = Table::from_toml(settings);
        }
    }
}

/// A service of no known kind: an app with its command, environment and healthcheck.
/// Environment values that name another service (its host, port, address or URL, as the
/// app reaches it) become links, so they follow the model; credentials become secrets.
pub fn app(import: &mut Import<'_>, found: &Found, all: &[Found]) {
    let reach = Reach::of(all, found.native(), &import.root);
    let mut env = Table::default();
    let mut links = Table::default();
    for (key, value) in &found.env {
        let credential = crate::finding::is_credential_name(key)
            || crate::finding::mask_credentials(value) != *value;
        let whole_interpolation = value.trim_start().starts_with('$');
        if let Some(var) = interpolated(value).filter(|_| whole_interpolation && credential) {
            let id = import.secrets.by_env(var);
            links.set(key, secret_ref(&id));
        } else if whole_interpolation && interpolated(value).is_some() {
            // `${RUST_LOG:-info}`: a setting, not a secret; the model writes its default.
            let default = crate::check::dialect::with_defaults(value);
            if default.contains('$') {
                import.unrepresented(format!(
                    "service `{}`: `{key}` is set from the deploy environment ({value})",
                    found.name
                ));
            } else {
                env.guess(key, default, format!("the default of {value}"));
            }
        } else if credential && !value.is_empty() {
            let id = format!(
                "{}_{}",
                found.name.replace('-', "_"),
                key.to_ascii_lowercase()
            );
            let where_ = format!("the environment of `{}`", found.name);
            let id = import.secrets.literal(&id, &where_);
            links.set(key, secret_ref(&id));
        } else if let Some(link) = reach.link(key, value, &found.env) {
            links.set(key, toml::Value::Table(link));
        } else {
            env.set(key, value.as_str());
        }
    }
    let healthcheck = words(&found.compose["healthcheck"]["test"]);
    let depends = names_of(&found.compose["depends_on"]);
    let mut command = found.command.clone();
    if found.native() && !command.is_empty() {
        let binary = command.remove(0);
        import
            .service(&found.name)
            .table("native")
            .set("binary", binary);
    }
    if import.service(&found.name).get("port").is_none() {
        import.service(&found.name).guess(
            "port",
            8080u16,
            "no file names a port the app listens on; the model needs one",
        );
    }
    let table = import.service(&found.name).table("app");
    if !command.is_empty() {
        table.set("command", strings(&command));
    }
    if !env.is_empty() {
        *table.table("env") = env;
    }
    if !links.is_empty() {
        *table.table("links") = links;
    }
    let depends: Vec<String> = depends
        .into_iter()
        .filter_map(|d| super::data::service_named(all, &d))
        .collect();
    if !depends.is_empty() {
        table.set("depends_on", strings(&depends));
    }
    match healthcheck.first().map(String::as_str) {
        Some("CMD") => {
            table.set("healthcheck", strings(&healthcheck[1..]));
        }
        Some("CMD-SHELL") => {
            let shell = ["sh".to_owned(), "-c".to_owned(), healthcheck[1..].join(" ")];
            table.guess(
                "healthcheck",
                strings(&shell),
                "a CMD-SHELL test, run through sh -c",
            );
        }
        _ => {}
    }
}

/// How an app reaches the other services: published host ports from the host, names
/// and container ports from the container network.
struct Reach {
    native: bool,
    bind: String,
    /// (port as the app reaches it, service, kind).
    ports: Vec<(String, String, Kind)>,
}

impl Reach {
    fn of(all: &[Found], native: bool, root: &Table) -> Reach {
        let mut ports = Vec::new();
        for other in all {
            for spec in other.ports() {
                let port = if native { spec.published } else { spec.target };
                ports.push((port, other.name.clone(), other.kind));
            }
        }
        let bind = root
            .get_path(&["host", "bind"])
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "127.0.0.1".into());
        Reach {
            native,
            bind,
            ports,
        }
    }

    fn by_port(&self, port: &str) -> Option<&(String, String, Kind)> {
        self.ports.iter().find(|(p, _, _)| p == port)
    }

    fn is_host(&self, host: &str, service: &str) -> bool {
        if self.native {
            host == self.bind || host == "localhost"
        } else {
            host == service
        }
    }

    /// The link for `key = value`, when the value is where another service is reached.
    fn link(&self, key: &str, value: &str, env: &[(String, String)]) -> Option<toml::Table> {
        let one = |field: &str, service: &str| {
            let mut link = toml::Table::new();
            link.insert(field.into(), toml::Value::String(service.to_owned()));
            Some(link)
        };
        if let Some((scheme, rest)) = value.split_once("://") {
            let (user, rest) = match rest.split_once('@') {
                Some((user, rest)) if !user.contains(':') => (Some(user), rest),
                Some(_) => return None,
                None => (None, rest),
            };
            let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (host, port) = address.rsplit_once(':')?;
            let (_, service, kind) = self.by_port(port)?;
            let plain = match kind {
                Kind::Redis => scheme == "redis" && matches!(path, "" | "0"),
                Kind::Postgres | Kind::Pgbouncer | Kind::Rabbitmq => false,
                _ => scheme == "http" && path.is_empty(),
            };
            if !plain || !self.is_host(host, service) {
                return None;
            }
            let mut link = one("url", service)?;
            if let Some(user) = user {
                link.insert("user".into(), toml::Value::String(user.to_owned()));
            }
            return Some(link);
        }
        if let Some((host, port)) = value.rsplit_once(':') {
            let (_, service, _) = self.by_port(port)?;
            return self
                .is_host(host, service)
                .then(|| one("address", service))
                .flatten();
        }
        // HOST and PORT pairs: `DATABASE_HOST=127.0.0.1` with `DATABASE_PORT=6432`.
        let sibling = |from: &str, to: &str| -> Option<String> {
            let prefix = key.strip_suffix(from)?;
            env.iter()
                .find(|(k, _)| k.strip_prefix(prefix) == Some(to))
                .map(|(_, v)| v.clone())
        };
        if let Some(host_value) = sibling("PORT", "HOST") {
            let (_, service, _) = self.by_port(value)?;
            return self
                .is_host(&host_value, service)
                .then(|| one("port", service))
                .flatten();
        }
        if let Some(port) = sibling("HOST", "PORT") {
            let (_, service, _) = self.by_port(&port)?;
            return self
                .is_host(value, service)
                .then(|| one("host", service))
                .flatten();
        }
        None
    }
}

pub fn strings(items: &[String]) -> toml::Value {
    toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect())
}
