//! docker-compose.yml re-read with typed structs (unknown keys are findings) and checked
//! against the model and the rest of the tree: ports, mounts, healthchecks, dependencies,
//! interpolation, literal secrets, images.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;

use super::Files;
use super::parse::line_of;
use crate::check::Ctx;
use crate::check::dialect;
use crate::check::index::Index;
use crate::finding::Severity;
use crate::model::{Kind, Persistence, paths, secret_files};

pub const FILE: &str = paths::COMPOSE;

// The parts the rules read. Keys are checked against the whole Compose Specification
// (check::dialect), so a valid key these structs do not name is no error here.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct ComposeFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    services: BTreeMap<String, Service>,
    #[serde(default)]
    volumes: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    networks: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    secrets: Option<Value>,
    #[serde(default)]
    configs: Option<Value>,
}

/// The compose service keys the rules read.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct Service {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    command: Option<Value>,
    #[serde(default)]
    entrypoint: Option<Value>,
    #[serde(default)]
    environment: Option<Value>,
    #[serde(default)]
    env_file: Option<Value>,
    #[serde(default)]
    ports: Vec<Value>,
    #[serde(default)]
    expose: Option<Value>,
    #[serde(default)]
    volumes: Vec<Value>,
    #[serde(default)]
    networks: Option<Value>,
    #[serde(default)]
    healthcheck: Option<Value>,
    #[serde(default)]
    depends_on: Option<Value>,
    #[serde(default)]
    extra_hosts: Option<Value>,
    #[serde(default)]
    restart: Option<String>,
    #[serde(default)]
    deploy: Option<Value>,
    #[serde(default)]
    user: Option<Value>,
    #[serde(default)]
    container_name: Option<String>,
    #[serde(default)]
    labels: Option<Value>,
    #[serde(default)]
    logging: Option<Value>,
    #[serde(default)]
    ulimits: Option<Value>,
    #[serde(default)]
    cap_add: Option<Value>,
    #[serde(default)]
    cap_drop: Option<Value>,
    #[serde(default)]
    security_opt: Option<Value>,
    #[serde(default)]
    read_only: Option<bool>,
    #[serde(default)]
    tmpfs: Option<Value>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    stop_grace_period: Option<String>,
    #[serde(default)]
    stop_signal: Option<String>,
    #[serde(default)]
    init: Option<bool>,
    #[serde(default)]
    shm_size: Option<Value>,
    #[serde(default)]
    profiles: Option<Value>,
    #[serde(default)]
    mem_limit: Option<Value>,
    #[serde(default)]
    cpus: Option<Value>,
}

/// The compose file's lines and where each service's block starts, so a finding's line is
/// looked up within its service's block instead of from the top of the file.
struct Blocks<'a> {
    lines: Vec<&'a str>,
    /// Service name -> index of its first `  <name>:` line.
    starts: HashMap<&'a str, usize>,
}

impl<'a> Blocks<'a> {
    fn new(text: &'a str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let mut starts = HashMap::new();
        for (index, line) in lines.iter().enumerate() {
            if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
                starts.entry(name).or_insert(index);
            }
        }
        Blocks { lines, starts }
    }

    /// The 1-based line of `needle` inside the block of compose service `service`, else
    /// the service's own line.
    fn line_in_service(&self, service: &str, needle: &str) -> Option<usize> {
        let start = *self.starts.get(service)?;
        self.lines
            .iter()
            .enumerate()
            .skip(start + 1)
            .take_while(|(_, l)| l.is_empty() || l.starts_with("   "))
            .find(|(_, l)| l.contains(needle))
            .map(|(i, _)| i + 1)
            .or(Some(start + 1))
    }
}

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>, index: &Index<'_>) {
    let Some(text) = files.text(FILE) else { return };
    let Some(compose) = parse(cx, files, text) else {
        return;
    };
    let declared_env = declared_env(files);
    interpolation(cx, text, &declared_env);
    let blocks = Blocks::new(text);
    let mut host_ports: BTreeMap<String, String> = BTreeMap::new();
    let healthy: BTreeSet<&String> = compose
        .services
        .iter()
        .filter(|(_, s)| s.healthcheck.is_some())
        .map(|(n, _)| n)
        .collect();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Names of the deploy-time files `render --with-secrets` writes (contents unused).
    let secret_files: BTreeSet<String> = secret_files::secret_files(cx.stack())
        .into_iter()
        .map(|file| file.name)
        .collect();
    let sources = Sources {
        files,
        secret_files: &secret_files,
    };
    for (instance, service) in &compose.services {
        let model_name = index.last_owner(instance).map(String::as_str);
        let path = model_name
            .map(|n| format!("services.{n}"))
            .unwrap_or_else(|| "services".into());
        let line = |needle: &str| blocks.line_in_service(instance, needle);
        if model_name.is_none() {
            cx.report_file(
                "TG013",
                Severity::Error,
                "services",
                FILE,
                line(""),
                format!("{FILE}: service `{instance}` is not in the model"),
                "declare it in stack.toml under [services] and re-render".into(),
            );
        }
        image(cx, &path, instance, service, &line);
        ports(cx, &path, instance, service, &mut host_ports, &line);
        mounts(cx, &sources, &path, instance, service, model_name, &line);
        environment(cx, &path, instance, service, &line);
        api_key(cx, &path, instance, service, model_name, &line);
        healthcheck(cx, &path, instance, service, model_name, &line);
        let deps = depends_on(cx, &path, instance, service, &compose, &healthy, &line);
        graph.insert(instance.clone(), deps);
    }
    if let Some(cycle) = find_cycle(&graph) {
        cx.report_file(
            "TG603",
            Severity::Error,
            "services",
            FILE,
            line_of(text, "depends_on:"),
            format!("{FILE}: depends_on cycle {}", cycle.join(" -> ")),
            "break the cycle: compose can never start these".into(),
        );
    }
}

/// The compose file in typed form, or a TG023 finding when it does not fit. Every key is
/// checked against the Compose Specification first (TG023 at the key's line). The YAML
/// already parsed for the other rules is read first; the text is parsed again only for
/// the parser's message and line when it does not fit.
fn parse(cx: &mut Ctx<'_>, files: &Files<'_>, text: &str) -> Option<ComposeFile> {
    let spec_issues = files
        .yaml_value(FILE)
        .map(|value| dialect::compose_file(text, value))
        .unwrap_or_default();
    let found = !spec_issues.is_empty();
    for issue in spec_issues {
        cx.report_file(
            "TG023",
            Severity::Error,
            "services",
            FILE,
            Some(issue.line),
            format!("{FILE}: {}", issue.message),
            issue.hint,
        );
    }
    if let Some(compose) = files
        .yaml_value(FILE)
        .and_then(|value| ComposeFile::deserialize(value).ok())
    {
        return Some(compose);
    }
    match serde_saphyr::from_str(text) {
        Ok(compose) => Some(compose),
        // A type the specification already reported is not reported twice.
        Err(_) if found => None,
        Err(error) => {
            let message = error.to_string();
            let line = super::parse::error_line(&message);
            cx.report_file(
                "TG023",
                Severity::Error,
                "services",
                FILE,
                line,
                format!(
                    "{FILE} does not match the Compose file format: {}",
                    first_line(&message)
                ),
                "fix the key (compose rejects unknown keys too), or re-render".into(),
            );
            None
        }
    }
}

/// Incident 32: every container has an image pinned to a version.
fn image(
    cx: &mut Ctx<'_>,
    path: &str,
    instance: &str,
    service: &Service,
    line: &dyn Fn(&str) -> Option<usize>,
) {
    match &service.image {
        Some(image)
            if image.ends_with(":latest")
                || !image.rsplit('/').next().unwrap_or(image).contains(':') =>
        {
            cx.report_file(
                "TG608",
                Severity::Warning,
                &format!("{path}.image"),
                FILE,
                line("image:"),
                format!("{FILE}: `{instance}` uses the unpinned image {image}"),
                "pin a version".into(),
            )
        }
        None => cx.report_file(
            "TG007",
            Severity::Error,
            path,
            FILE,
            line(""),
            format!("{FILE}: `{instance}` has no image"),
            "set the image in the model".into(),
        ),
        _ => {}
    }
}

/// Incident 27: service_healthy needs a healthcheck; no unknown targets. Returns the
/// services `instance` depends on.
fn depends_on(
    cx: &mut Ctx<'_>,
    path: &str,
    instance: &str,
    service: &Service,
    compose: &ComposeFile,
    healthy: &BTreeSet<&String>,
    line: &dyn Fn(&str) -> Option<usize>,
) -> Vec<String> {
    let deps: Vec<(String, String)> = match &service.depends_on {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.get("condition")
                        .and_then(|c| c.as_str())
                        .unwrap_or("service_started")
                        .to_string(),
                )
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(|s| (s.to_string(), "service_started".to_string()))
            .collect(),
        _ => Vec::new(),
    };
    for (dep, condition) in &deps {
        if !compose.services.contains_key(dep) {
            cx.report_file(
                "TG603",
                Severity::Error,
                path,
                FILE,
                line(dep),
                format!("{FILE}: `{instance}` depends on unknown service `{dep}`"),
                "depend on a service of this file".into(),
            );
        } else if condition == "service_healthy" && !healthy.contains(dep) {
            cx.report_file("TG603", Severity::Error, path, FILE, line(dep), format!("{FILE}: `{instance}` waits for `{dep}` to be healthy, but `{dep}` has no healthcheck: it never starts"), format!("give `{dep}` a healthcheck or use condition: service_started"));
        }
    }
    deps.into_iter().map(|(d, _)| d).collect()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

fn declared_env(files: &Files<'_>) -> BTreeSet<String> {
    files
        .text(paths::ENV_EXAMPLE)
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Incident 28: every `${VAR}` compose interpolates must be declared in .env.example.
fn interpolation(cx: &mut Ctx<'_>, text: &str, declared: &BTreeSet<String>) {
    for (index, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find('$') {
            let after = &rest[start + 1..];
            if let Some(escaped) = after.strip_prefix('$') {
                rest = escaped;
                continue;
            }
            let var: String = match after.strip_prefix('{') {
                Some(inner) => inner
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect(),
                None => after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect(),
            };
            if !var.is_empty() && !declared.contains(&var) {
                cx.report_file("TG604", Severity::Error, "secrets", FILE, Some(index + 1), format!("{FILE} interpolates ${{{var}}}, which .env.example does not declare"), "reference a model secret (its env var is listed in .env.example) or escape a literal `$` as `$$`".into());
            }
            rest = &after[var.len().min(after.len())..];
        }
    }
}

fn ports(
    cx: &mut Ctx<'_>,
    path: &str,
    instance: &str,
    service: &Service,
    seen: &mut BTreeMap<String, String>,
    line: &dyn Fn(&str) -> Option<usize>,
) {
    // What the model publishes for this instance: container port -> host port.
    let modelled: BTreeMap<String, String> = cx
        .stack()
        .published_ports()
        .into_iter()
        .filter(|p| p.instance == instance)
        .map(|p| (p.container_port.to_string(), p.host_port.to_string()))
        .collect();
    for port in &service.ports {
        let dialect::PortSpec {
            host_ip: address,
            published: host,
            target: container,
            ..
        } = dialect::port_spec(port);
        if host.is_empty() {
            continue;
        }
        // The file as found against the model: a hand edit of a mapping breaks whoever
        // reaches this container by the model's ports (native services, scripts).
        match modelled.get(&container) {
            Some(expected) if *expected != host => cx.report_file(
                "TG206",
                Severity::Error,
                &format!("{path}.publish"),
                FILE,
                line(&format!(":{host}:")),
                format!("{FILE}: `{instance}` publishes port {container} on {host}, the model on {expected}: native services and scripts that use {expected} find nothing"),
                "re-render, or change `publish` in the model".into(),
            ),
            None if !modelled.is_empty() && !container.is_empty() => cx.report_file(
                "TG201",
                Severity::Error,
                &format!("{path}.port"),
                FILE,
                line(&format!(":{container}")),
                format!("{FILE}: `{instance}` publishes container port {container}, on which the model has it listen nowhere"),
                "publish the service's `port`; re-render".into(),
            ),
            _ => {}
        }
        if let Some(other) = seen.insert(host.clone(), instance.to_string()) {
            cx.report_file(
                "TG203",
                Severity::Error,
                &format!("{path}.publish"),
                FILE,
                line(&format!(":{host}:")),
                format!("{FILE}: host port {host} is published by both `{other}` and `{instance}`"),
                "publish each host port once".into(),
            );
        }
        if address.is_empty() || address == "0.0.0.0" || address == "::" {
            cx.report_file(
                "TG205",
                Severity::Warning,
                &format!("{path}.publish"),
                FILE,
                line(&format!("{host}:")),
                format!("{FILE}: `{instance}` publishes {host} on all interfaces"),
                "bind published ports to 127.0.0.1".into(),
            );
        }
    }
}

/// Host paths some exporters read by design.
const HOST_PATHS: &[&str] = &[
    "/",
    "/sys",
    "/proc",
    "/var/run",
    "/var/lib/docker",
    "/dev/disk",
];

/// What a bind-mount source may be: a rendered file, or a deploy-time secret file.
struct Sources<'a> {
    files: &'a Files<'a>,
    secret_files: &'a BTreeSet<String>,
}

fn mounts(
    cx: &mut Ctx<'_>,
    sources: &Sources<'_>,
    path: &str,
    instance: &str,
    service: &Service,
    model_name: Option<&str>,
    line: &dyn Fn(&str) -> Option<usize>,
) {
    let stack = cx.stack();
    let model = model_name.and_then(|n| stack.service(n));
    for mount in &service.volumes {
        if !(mount.is_object() || mount.is_string()) {
            continue;
        }
        let dialect::Mount {
            mut kind,
            source,
            target,
            read_only,
        } = dialect::mount(mount);
        if kind.is_empty() {
            kind = "volume".into();
        }
        // Incident 14: Sentinel rewrites the config it runs from, copied into /data.
        if model.is_some_and(|m| m.kind == Kind::Sentinel) && read_only && target == "/data" {
            let at = line(&format!("\"{target}\"")).or_else(|| line(&target));
            cx.report_file("TG302", Severity::Error, path, FILE, at, format!("{FILE}: `{instance}` mounts its data volume read-only; Sentinel rewrites the config it runs from there and fails"), "mount /data read-write (tgstack renders it so)".into());
        }
        if kind != "bind" {
            // Incident 16: a volume for data nothing writes.
            if let Some(r) = model.and_then(|m| m.redis.as_ref())
                && r.persistence == Persistence::None
                && target == "/data"
            {
                cx.report_file("TG304", Severity::Warning, &format!("{path}.redis.persistence"), FILE, line(&source), format!("{FILE}: `{instance}` mounts a data volume but persistence is off: nothing writes it"), "drop the volume or turn persistence on".into());
            }
            continue;
        }
        // Incident 19: init scripts run only on an empty volume.
        if target.starts_with("/docker-entrypoint-initdb.d") {
            cx.report_file("TG403", Severity::Error, path, FILE, line(&target), format!("{FILE}: `{instance}` mounts {target}: init scripts run only on an empty volume and are skipped after a rebuild"), "apply SQL with the explicit migrate step (scripts/migrate.sh or `tg-gateway migrate`)".into());
        }
        bind_source(cx, sources, path, instance, &source, &target, line);
        // Incident 14: sentinel must not run from its read-only mount.
        if model.is_some_and(|m| m.kind == Kind::Sentinel) && read_only && target.ends_with(".conf")
        {
            let command = service
                .command
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            if !command.contains("cp ") {
                cx.report_file("TG302", Severity::Error, path, FILE, line(&target), format!("{FILE}: `{instance}` runs Sentinel from the read-only {target}; Sentinel rewrites its config and fails"), "copy the config to a writable volume at start (tgstack's rendered command does)".into());
            }
        }
    }
}

/// Incident 25: every bind-mount source is a rendered file or directory of the right
/// type, or a deploy-time secret file.
fn bind_source(
    cx: &mut Ctx<'_>,
    sources: &Sources<'_>,
    path: &str,
    instance: &str,
    source: &str,
    target: &str,
    line: &dyn Fn(&str) -> Option<usize>,
) {
    let stack = cx.stack();
    if let Some(relative) = source.strip_prefix("./") {
        let is_file = sources.files.exists(relative);
        let is_dir = sources.files.is_dir(relative);
        if !is_file && !is_dir {
            cx.report_file("TG601", Severity::Error, path, FILE, line(source), format!("{FILE}: bind-mount source {source} of `{instance}` is not in the rendered tree; Docker would create an empty directory there"), "mount only rendered files (see MANIFEST)".into());
        } else if is_dir && looks_like_file(target) {
            cx.report_file(
                "TG601",
                Severity::Error,
                path,
                FILE,
                line(source),
                format!("{FILE}: {source} is a directory but is mounted at the file path {target}"),
                "mount the file, not its directory".into(),
            );
        }
    } else if let Some(name) = source.strip_prefix(&format!("{}/", stack.deploy.secrets_dir)) {
        if !sources.secret_files.contains(name) {
            cx.report_file(
                "TG601",
                Severity::Error,
                path,
                FILE,
                line(source),
                format!("{FILE}: {source} is not a file `render --with-secrets` writes"),
                "mount only the deploy-time files tgstack writes".into(),
            );
        }
    } else if !HOST_PATHS.contains(&source) {
        cx.report_file("TG601", Severity::Error, path, FILE, line(source), format!("{FILE}: bind-mount source {source} of `{instance}` is neither rendered nor a deploy-time secret"), "mount rendered files (relative) or deploy-time secrets".into());
    }
}

fn looks_like_file(target: &str) -> bool {
    let last = target.rsplit('/').next().unwrap_or("");
    last.contains('.') || last == "enabled_plugins"
}

/// Incident 4: secret-looking environment values must be interpolated, never literal.
fn environment(
    cx: &mut Ctx<'_>,
    path: &str,
    instance: &str,
    service: &Service,
    line: &dyn Fn(&str) -> Option<usize>,
) {
    let pairs: Vec<(String, String)> = match &service.environment {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .filter_map(|i| i.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    for (key, value) in pairs {
        let upper = key.to_ascii_uppercase();
        let secretish = [
            "PASSWORD",
            "PASS",
            "SECRET",
            "TOKEN",
            "API_KEY",
            "API_HASH",
            "CONNECTION_STRING",
            "AUTH",
        ]
        .iter()
        .any(|w| upper.contains(w));
        let literal_credential = if upper.contains("CONNECTION_STRING") || value.contains("://") {
            // A URL may carry a password only as an interpolated variable.
            crate::finding::url_password(&value).is_some_and(|pw| !value[pw].starts_with("${"))
        } else {
            secretish && !value.is_empty() && !value.starts_with("${")
        };
        // `${VAR:-literal}` / `${VAR-literal}`: the literal is used whenever the variable is
        // unset, so it is a secret written into the file all the same.
        let literal_fallback =
            secretish && interpolation_default(&value).is_some_and(|d| !d.is_empty());
        if literal_credential || literal_fallback {
            cx.report_file(
                "TG104",
                Severity::Error,
                path,
                FILE,
                line(&format!("{key}:")),
                format!("{FILE}: `{instance}` sets {key} to a literal value"),
                "reference the secret's variable: `${VAR:?...}` from .env".into(),
            );
        }
        // Inside a container, localhost is the container itself.
        if let Some(host) = loopback_host(&value) {
            cx.report_file(
                "TG202",
                Severity::Error,
                path,
                FILE,
                line(&format!("{key}:")),
                format!("{FILE}: `{instance}` reaches {host} through {key}: in a container that is the container itself"),
                "use the service name (and its internal port), as the model renders it".into(),
            );
        }
    }
}

/// The default of a `${VAR:-default}` / `${VAR-default}` value, if it has one.
fn interpolation_default(value: &str) -> Option<&str> {
    let inner = value.strip_prefix("${")?.strip_suffix('}')?;
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let rest = &inner[name_end..];
    rest.strip_prefix(":-").or_else(|| rest.strip_prefix('-'))
}

/// `localhost`, `127.0.0.1` or `::1` as the host of an address or URL.
fn loopback_host(value: &str) -> Option<&'static str> {
    let after_scheme = value.split_once("://").map_or(value, |(_, rest)| rest);
    let authority = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, host)| host);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.split([':', '/', '?']).next().unwrap_or("")
    };
    ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .find(|loopback| host.eq_ignore_ascii_case(loopback))
}

/// Incident 5: an API container gets its key from the secret; without it there is no auth.
fn api_key(
    cx: &mut Ctx<'_>,
    path: &str,
    instance: &str,
    service: &Service,
    model_name: Option<&str>,
    line: &dyn Fn(&str) -> Option<usize>,
) {
    let stack = cx.stack();
    let Some(api) = model_name
        .and_then(|n| stack.service(n))
        .and_then(|m| m.api.as_ref())
    else {
        return;
    };
    let Some(secret) = stack.secrets.get(&api.api_key.secret) else {
        return;
    };
    let value = match &service.environment {
        Some(Value::Object(map)) => map
            .get(&secret.env)
            .and_then(|v| v.as_str())
            .map(String::from),
        Some(Value::Array(items)) => items.iter().filter_map(|i| i.as_str()).find_map(|i| {
            i.strip_prefix(&format!("{}=", secret.env))
                .map(String::from)
        }),
        _ => None,
    };
    let interpolated = value
        .as_deref()
        .is_some_and(|v| v.starts_with(&format!("${{{}", secret.env)));
    if !interpolated {
        cx.report_file("TG105", Severity::Error, &format!("{path}.api.api_key"), FILE, line("environment:"), format!("{FILE}: API `{instance}` does not get {} from the `{}` secret: it would serve without an API key", secret.env, api.api_key.secret), format!("set {}: \"${{{}:?...}}\" (re-render)", secret.env, secret.env));
    }
}

/// Incident 26: healthchecks built from the model's user, database and port.
fn healthcheck(
    cx: &mut Ctx<'_>,
    path: &str,
    instance: &str,
    service: &Service,
    model_name: Option<&str>,
    line: &dyn Fn(&str) -> Option<usize>,
) {
    let stack = cx.stack();
    let Some(model) = model_name.and_then(|n| stack.service(n)) else {
        return;
    };
    let Some(check) = &service.healthcheck else {
        return;
    };
    let words: Vec<String> = match check.get("test") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(String::from)
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    };
    let joined = words.join(" ");
    let flag = |name: &str| {
        words
            .iter()
            .position(|w| w == name)
            .and_then(|i| words.get(i + 1))
            .cloned()
    };
    if let Some(pg) = &model.postgres {
        let expected = [
            ("-U", pg.superuser.clone()),
            ("-d", pg.database.clone()),
            ("-p", model.port.to_string()),
            ("-h", "127.0.0.1".to_string()),
        ];
        for (name, want) in expected {
            if flag(name).as_deref() != Some(want.as_str()) {
                cx.report_file("TG602", Severity::Error, path, FILE, line("pg_isready"), format!("{FILE}: `{instance}` healthcheck uses {name} {} but the model says {want}", flag(name).unwrap_or_else(|| "(nothing)".into())), "healthchecks come from the model's user, database and port over TCP (the init-time server listens on the socket only)".into());
            }
        }
    } else if !joined.is_empty()
        && !joined.contains(&model.port.to_string())
        // An app's healthcheck is its own command, written as the model gives it.
        && !matches!(model.kind, Kind::Rabbitmq | Kind::App)
    {
        cx.report_file(
            "TG602",
            Severity::Error,
            path,
            FILE,
            line("healthcheck"),
            format!(
                "{FILE}: `{instance}` healthcheck does not probe its port {}",
                model.port
            ),
            "probe the service's internal port".into(),
        );
    }
}

fn find_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, Vec<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(position) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[position..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// `.env.example`: declares every secret variable and holds no values (incidents 4, 28).
pub fn env_example(cx: &mut Ctx<'_>, files: &Files<'_>) {
    let file = paths::ENV_EXAMPLE;
    let Some(text) = files.text(file) else { return };
    let declared = declared_env(files);
    for (index, line) in text.lines().enumerate() {
        if let Some((key, value)) = line.split_once('=')
            && !line.trim_start().starts_with('#')
            && !value.trim().is_empty()
        {
            cx.report_file(
                "TG104",
                Severity::Error,
                "secrets",
                file,
                Some(index + 1),
                format!("{file}: {} has a value", key.trim()),
                "the example lists variables only; values go into the deploy-time .env".into(),
            );
        }
    }
    let stack = cx.stack();
    for (id, secret) in &stack.secrets {
        if !declared.contains(&secret.env) {
            cx.report_file(
                "TG604",
                Severity::Error,
                &format!("secrets.{id}.env"),
                file,
                None,
                format!("{file} does not declare {} (secret `{id}`)", secret.env),
                "re-render".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found() {
        let mut graph = BTreeMap::new();
        graph.insert("a".to_string(), vec!["b".to_string()]);
        graph.insert("b".to_string(), vec!["a".to_string()]);
        graph.insert("c".to_string(), vec![]);
        assert_eq!(
            find_cycle(&graph),
            Some(vec!["a".into(), "b".into(), "a".into()])
        );
        graph.insert("b".to_string(), vec![]);
        assert_eq!(find_cycle(&graph), None);
    }
}
