//! docker-compose.yml: one compose service per container instance, with published
//! ports bound to the host address, healthchecks built from the model, dependencies
//! derived from references, and resource limits from the budget.

use std::collections::BTreeMap;

use minijinja::context;
use serde::Serialize;

use super::{Output, rabbitmq};
use crate::model::secret_files::{self, gateway_secrets, grafana_secrets};
use crate::model::{Deploy, Kind, Model, Persistence, Service, Stack, app, nginx, paths};

#[derive(Debug, Serialize)]
pub struct ComposeService {
    pub name: String,
    pub image: String,
    pub hostname: Option<String>,
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub ports: Vec<String>,
    pub volumes: Vec<Mount>,
    pub networks: Vec<String>,
    pub healthcheck: Option<Healthcheck>,
    pub depends_on: BTreeMap<String, String>,
    pub extra_hosts: Vec<String>,
    pub restart: String,
    pub cpus: String,
    pub memory: String,
}

/// A volume or bind mount; `source` of a bind is relative to the compose file.
#[derive(Debug, Serialize, Clone)]
pub struct Mount {
    pub kind: &'static str,
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Serialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: String,
    pub timeout: String,
    pub retries: u32,
    pub start_period: String,
}

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    // A swarm deploys swarm/stack.yml (render/swarm.rs), built from the same services.
    if stack.is_swarm() {
        return Vec::new();
    }
    let services = compose_services(stack);
    let volumes = named_volumes(services.iter().flat_map(|s| s.volumes.iter()));
    let networks = networks(stack);
    vec![Output::new(
        paths::COMPOSE,
        "docker-compose.yml.j2",
        context! { project => &stack.name, services => super::ser(&services), volumes, networks },
    )]
}

/// The named volumes the services mount, once each, sorted: the top-level `volumes:`.
pub fn named_volumes<'a>(mounts: impl Iterator<Item = &'a Mount>) -> Vec<String> {
    mounts
        .filter(|m| m.kind == "volume")
        .map(|m| m.source.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The model's networks as the top-level `networks:` of a compose or stack file prints them.
pub fn networks(stack: &Stack) -> Vec<minijinja::Value> {
    stack
        .networks
        .iter()
        .map(|(name, net)| context! { name, subnet => &net.subnet, internal => net.internal })
        .collect()
}

/// `${VAR:?message}`: compose refuses to start when a secret variable is unset.
pub fn required_env(var: &str) -> String {
    format!("${{{var}:?set {var} in .env (see .env.example)}}")
}

/// `${VAR:?...}` of the variable that holds secret `id`.
fn secret_env(stack: &Stack, id: &str) -> String {
    stack.secret_env(id).map(required_env).unwrap_or_default()
}

fn bind(source: String, target: String) -> Mount {
    Mount {
        kind: "bind",
        source,
        target,
        read_only: true,
    }
}

fn volume(source: String, target: &str) -> Mount {
    Mount {
        kind: "volume",
        source,
        target: target.into(),
        read_only: false,
    }
}

fn health(test: &[&str], start_period: &str) -> Option<Healthcheck> {
    Some(Healthcheck {
        test: test.iter().map(|s| s.to_string()).collect(),
        interval: "10s".into(),
        timeout: "5s".into(),
        retries: 5,
        start_period: start_period.into(),
    })
}

/// Whether the compose service of `name` has a healthcheck (so `service_healthy` works).
pub fn has_healthcheck(service: &Service) -> bool {
    match service.kind {
        Kind::RedisExporter | Kind::PgbouncerExporter | Kind::Cadvisor => false,
        Kind::App => service
            .app
            .as_ref()
            .is_some_and(|a| !a.healthcheck.is_empty()),
        _ => true,
    }
}

pub fn compose_services(stack: &Stack) -> Vec<ComposeService> {
    // Every host port the topology counts as published (the RabbitMQ management port
    // included), so the rules and the compose file agree on what a service publishes.
    let published = stack.published_ports();
    let mut out = Vec::new();
    for (name, service) in &stack.services {
        if service.deploy != Deploy::Container {
            continue;
        }
        for instance in stack.instances(name, service) {
            let ports = published
                .iter()
                .filter(|p| &p.service == name && p.instance == instance.name)
                .map(|p| format!("{}:{}:{}", p.address, p.host_port, p.container_port))
                .collect();
            out.push(compose_service(stack, name, service, &instance.name, ports));
        }
    }
    out
}

fn depends(stack: &Stack, on: &str, map: &mut BTreeMap<String, String>) {
    let Some(target) = stack.service(on) else {
        return;
    };
    if target.deploy != Deploy::Container {
        return;
    }
    let condition = if has_healthcheck(target) {
        "service_healthy"
    } else {
        "service_started"
    };
    for instance in stack.instances(on, target) {
        map.insert(instance.name, condition.into());
    }
}

/// What one kind adds to its compose service: everything but image, ports, networks,
/// restart policy and resources, which every kind takes straight from the model.
#[derive(Default)]
struct KindSettings {
    hostname: Option<String>,
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    volumes: Vec<Mount>,
    depends_on: BTreeMap<String, String>,
    extra_hosts: Vec<String>,
    healthcheck: Option<Healthcheck>,
}

impl KindSettings {
    fn env(&mut self, var: &str, value: String) {
        self.environment.insert(var.into(), value);
    }

    fn depends(&mut self, stack: &Stack, on: &str) {
        depends(stack, on, &mut self.depends_on);
    }
}

/// The container instance being rendered, and the model it comes from.
struct Instance<'a> {
    stack: &'a Stack,
    /// Service name (config files live under `./{name}/`).
    name: &'a str,
    service: &'a Service,
    /// Container name; differs from `name` for replicated services such as sentinels.
    instance: &'a str,
}

impl Instance<'_> {
    fn port(&self) -> u16 {
        self.service.port
    }

    /// A secret file of the secrets directory, by file name.
    fn secret_file(&self, file: String) -> String {
        format!("{}/{file}", self.stack.deploy.secrets_dir)
    }
}

fn compose_service(
    stack: &Stack,
    name: &str,
    service: &Service,
    instance: &str,
    ports: Vec<String>,
) -> ComposeService {
    let inst = Instance {
        stack,
        name,
        service,
        instance,
    };
    let settings = kind_settings(&inst);
    let (cpus, memory) = (service.cpus, service.memory);
    ComposeService {
        name: instance.to_string(),
        image: service.image.clone().unwrap_or_default(),
        hostname: settings.hostname,
        command: settings.command,
        environment: settings.environment,
        ports,
        volumes: settings.volumes,
        networks: service.networks.clone(),
        healthcheck: settings.healthcheck,
        depends_on: settings.depends_on,
        extra_hosts: settings.extra_hosts,
        restart: service.restart.clone(),
        cpus: format!("{cpus}"),
        memory: memory.docker(),
    }
}

fn kind_settings(inst: &Instance<'_>) -> KindSettings {
    match inst.service.kind {
        Kind::Postgres => postgres(inst),
        Kind::Pgbouncer => pgbouncer(inst),
        Kind::Redis => redis(inst),
        Kind::Sentinel => sentinel(inst),
        Kind::Rabbitmq => rabbitmq(inst),
        Kind::Api | Kind::Gateway => gateway(inst),
        Kind::Prometheus => prometheus(inst),
        Kind::Grafana => grafana(inst),
        Kind::PostgresExporter => postgres_exporter(inst),
        Kind::RedisExporter => redis_exporter(inst),
        Kind::PgbouncerExporter => pgbouncer_exporter(inst),
        Kind::NodeExporter => node_exporter(inst),
        Kind::Cadvisor => cadvisor(inst),
        Kind::Nginx => nginx(inst),
        Kind::App => app(inst),
    }
}

/// An app: its command, literal env (a `$` escaped so compose does not interpolate it),
/// links resolved from inside the container (secrets through the compose env file),
/// dependencies on every service it names, its own healthcheck.
fn app(inst: &Instance<'_>) -> KindSettings {
    let (stack, service) = (inst.stack, inst.service);
    let mut out = KindSettings::default();
    let Some(settings) = &service.app else {
        return out;
    };
    // Compose interpolates `$` everywhere: the model's words are meant literally.
    let literal = |word: &String| word.replace('$', "$$");
    out.command = settings.command.iter().map(literal).collect();
    for (var, value) in app::environment(stack, service) {
        let value = match value {
            app::LinkValue::Text(text) => text.replace('$', "$$"),
            app::LinkValue::Secret(id) => secret_env(stack, &id),
        };
        if value.contains("host.docker.internal") && out.extra_hosts.is_empty() {
            out.extra_hosts
                .push("host.docker.internal:host-gateway".into());
        }
        out.env(&var, value);
    }
    for dependency in app::dependencies(service) {
        out.depends(stack, &dependency);
    }
    if !settings.healthcheck.is_empty() {
        let mut test = vec!["CMD"];
        let words: Vec<String> = settings.healthcheck.iter().map(literal).collect();
        test.extend(words.iter().map(String::as_str));
        out.healthcheck = health(&test, "20s");
    }
    out
}

/// A bind source for a rendered file, relative to the compose file.
fn rendered(path: &str) -> String {
    format!("./{path}")
}

/// The proxy resolves its API by container name, or by the host alias for a native API.
fn nginx(inst: &Instance<'_>) -> KindSettings {
    let mut out = KindSettings::default();
    if let Some(n) = &inst.service.nginx {
        out.depends(inst.stack, &n.upstream);
        if inst
            .stack
            .service(&n.upstream)
            .is_some_and(|u| u.deploy == Deploy::Native)
        {
            out.extra_hosts
                .push("host.docker.internal:host-gateway".into());
        }
    }
    out.volumes = vec![bind(
        rendered(&paths::nginx_conf(inst.name)),
        nginx::CONTAINER_CONFIG.into(),
    )];
    let health_url = format!("http://127.0.0.1:{}{}", inst.port(), nginx::HEALTH_PATH);
    out.healthcheck = wget_health(&health_url, "10s");
    out
}

/// A healthcheck that fetches `url` from inside the container with wget.
fn wget_health(url: &str, start_period: &str) -> Option<Healthcheck> {
    health(&["CMD", "wget", "-q", "-O", "/dev/null", url], start_period)
}

fn redis_ping_health(port: u16) -> Option<Healthcheck> {
    health(
        &[
            "CMD-SHELL",
            &format!("redis-cli -p {port} ping | grep -q PONG"),
        ],
        "10s",
    )
}

fn postgres(inst: &Instance<'_>) -> KindSettings {
    let name = inst.name;
    let mut out = KindSettings::default();
    let pg = inst.service.postgres.as_ref();
    let db = pg.map(|p| p.database.clone()).unwrap_or_default();
    let user = pg.map(|p| p.superuser.clone()).unwrap_or_default();
    out.env("POSTGRES_DB", db.clone());
    out.env("POSTGRES_USER", user.clone());
    if let Some(pg) = pg {
        out.env(
            "POSTGRES_PASSWORD",
            secret_env(inst.stack, &pg.superuser_password.secret),
        );
    }
    out.command = [
        "postgres",
        "-c",
        "config_file=/etc/postgresql/postgresql.conf",
        "-c",
        "hba_file=/etc/postgresql/pg_hba.conf",
    ]
    .map(String::from)
    .to_vec();
    out.volumes = vec![
        bind(
            rendered(&paths::postgresql_conf(name)),
            "/etc/postgresql/postgresql.conf".into(),
        ),
        bind(
            rendered(&paths::pg_hba_conf(name)),
            "/etc/postgresql/pg_hba.conf".into(),
        ),
        // The primary keeps `<name>-data` when a standby joins; the standby has its own.
        volume(format!("{}-data", inst.instance), paths::POSTGRES_DATA),
    ];
    let port = inst.port().to_string();
    // TCP on 127.0.0.1: the init-time server listens on the socket only, so this
    // stays red until the real server is up (incident 26).
    let ready = [
        "pg_isready",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        &user,
        "-d",
        &db,
    ];
    out.healthcheck = health(&[&["CMD"], &ready[..]].concat(), "60s");
    if let Some((pg, standby)) = pg.and_then(|p| Some((p, p.standby.as_ref()?))) {
        let (serving, other) = pg.serving_and_standby(name).unwrap_or_default();
        let (role, peer) = if inst.instance == serving {
            ("primary", other)
        } else {
            ("standby", serving)
        };
        out.env("TGSTACK_POSTGRES_ROLE", role.into());
        out.env("TGSTACK_POSTGRES_PEER", peer);
        out.env(
            super::postgres::ENTRYPOINT_PASSWORD_VAR,
            secret_env(inst.stack, &standby.password.secret),
        );
        out.volumes.push(bind(
            rendered(&paths::postgres_entrypoint(name)),
            POSTGRES_ENTRYPOINT.into(),
        ));
        // The entrypoint runs as the image's command, before the image's entrypoint.
        out.command
            .splice(0..0, ["sh".to_string(), POSTGRES_ENTRYPOINT.to_string()]);
        // While the entrypoint copies its peer (as long as a copy takes) the server
        // cannot answer, and the task must not be replaced for that.
        let copying = format!(
            "test -e {}/{} || {}",
            paths::POSTGRES_DATA,
            paths::POSTGRES_COPYING_MARKER,
            ready.join(" ")
        );
        out.healthcheck = health(&["CMD-SHELL", &copying], "60s");
    }
    out
}

/// Where a PostgreSQL with a standby finds its entrypoint (`paths::postgres_entrypoint`).
const POSTGRES_ENTRYPOINT: &str = "/etc/postgresql/tgstack-entrypoint.sh";

fn pgbouncer(inst: &Instance<'_>) -> KindSettings {
    let name = inst.name;
    let mut out = KindSettings::default();
    if let Some(b) = &inst.service.pgbouncer {
        out.depends(inst.stack, &b.upstream);
    }
    let userlist = inst.secret_file(secret_files::userlist_name(name));
    out.volumes = vec![
        bind(
            rendered(&paths::pgbouncer_ini(name)),
            "/etc/pgbouncer/pgbouncer.ini".into(),
        ),
        bind(userlist.clone(), userlist),
    ];
    out.healthcheck = health(
        &[
            "CMD-SHELL",
            &format!("nc -z 127.0.0.1 {} || exit 1", inst.port()),
        ],
        "10s",
    );
    out
}

fn redis(inst: &Instance<'_>) -> KindSettings {
    let name = inst.name;
    let mut out = KindSettings::default();
    let redis = inst.service.redis.as_ref();
    if let Some(master) = redis.and_then(|r| r.replica_of.as_ref()) {
        out.depends(inst.stack, master);
    }
    if let Some(redis) = redis {
        // redis-cli reads the password from REDISCLI_AUTH (healthcheck only).
        out.env(
            "REDISCLI_AUTH",
            secret_env(inst.stack, &redis.password.secret),
        );
        if redis.persistence != Persistence::None {
            out.volumes.push(volume(format!("{name}-data"), "/data"));
        }
    }
    out.command = vec![
        "redis-server".into(),
        "/usr/local/etc/redis/redis.conf".into(),
    ];
    out.volumes.push(bind(
        rendered(&paths::redis_conf(name)),
        "/usr/local/etc/redis/redis.conf".into(),
    ));
    let auth = inst.secret_file(secret_files::redis_auth_name(name));
    out.volumes.push(bind(auth.clone(), auth));
    out.healthcheck = redis_ping_health(inst.port());
    out
}

fn sentinel(inst: &Instance<'_>) -> KindSettings {
    let (name, instance) = (inst.name, inst.instance);
    let mut out = KindSettings::default();
    if let Some(s) = &inst.service.sentinel {
        out.depends(inst.stack, &s.monitors);
    }
    out.hostname = Some(instance.to_string());
    let auth = inst.secret_file(secret_files::sentinel_auth_name(name));
    // Sentinel rewrites its config: run it from a writable copy (incident 14).
    out.command = vec![
        "sh".into(),
        "-c".into(),
        format!(
            "cp /etc/tgstack/sentinel.conf /data/sentinel.conf && cat {auth} >> /data/sentinel.conf && exec redis-sentinel /data/sentinel.conf"
        ),
    ];
    out.volumes = vec![
        bind(
            rendered(&paths::sentinel_conf(name, instance)),
            "/etc/tgstack/sentinel.conf".into(),
        ),
        bind(auth.clone(), auth),
        volume(format!("{instance}-data"), "/data"),
    ];
    out.healthcheck = redis_ping_health(inst.port());
    out
}

fn rabbitmq(inst: &Instance<'_>) -> KindSettings {
    let (name, instance) = (inst.name, inst.instance);
    let definitions = rabbitmq::DEFINITIONS_DIR;
    let mut volumes = vec![
        bind(
            rendered(&paths::rabbitmq_conf(name)),
            "/etc/rabbitmq/rabbitmq.conf".into(),
        ),
        bind(
            rendered(&paths::rabbitmq_plugins(name)),
            "/etc/rabbitmq/enabled_plugins".into(),
        ),
        bind(
            rendered(&paths::rabbitmq_definitions(name)),
            format!("{definitions}/definitions.json"),
        ),
        bind(
            inst.secret_file(secret_files::rabbitmq_users_name(name)),
            format!("{definitions}/users.json"),
        ),
        volume(format!("{instance}-data"), "/var/lib/rabbitmq"),
    ];
    // Members of a cluster share the cookie; one node makes its own.
    let clustered = inst
        .service
        .rabbitmq
        .as_ref()
        .is_some_and(|r| r.is_cluster() && r.cookie.is_some());
    if clustered {
        volumes.push(bind(
            inst.secret_file(secret_files::erlang_cookie_name(name)),
            rabbitmq::COOKIE_PATH.into(),
        ));
    }
    // A member is healthy when its broker runs, not only its Erlang node: a member whose
    // app was stopped (a join cut short) or paused (the minority side) is restarted.
    let check = if clustered { "check_running" } else { "ping" };
    KindSettings {
        // The node name comes from the host name; keep it stable across recreation.
        hostname: Some(instance.to_string()),
        volumes,
        healthcheck: health(&["CMD", "rabbitmq-diagnostics", "-q", check], "60s"),
        ..KindSettings::default()
    }
}

/// The gateway and the API: one binary, `run` or `api`, reading the model itself.
fn gateway(inst: &Instance<'_>) -> KindSettings {
    let (stack, service) = (inst.stack, inst.service);
    let mut out = KindSettings::default();
    let database = service
        .api
        .as_ref()
        .map(|a| a.database.clone())
        .or_else(|| service.gateway.as_ref().map(|g| g.database.clone()));
    if let Some(database) = database {
        out.depends(stack, &database);
    }
    if let Some(g) = &service.gateway {
        out.depends(stack, &g.redis);
        out.depends(stack, &g.broker);
    }
    for (var, id) in gateway_secrets(stack, service) {
        out.env(&var, secret_env(inst.stack, &id));
    }
    out.env("TGSTACK_MODEL", "/etc/tgstack/stack.toml".into());
    out.env("TGSTACK_SERVICE", inst.name.to_string());
    let sub = if service.kind == Kind::Api {
        "api"
    } else {
        "run"
    };
    out.command = vec!["tg-gateway".into(), sub.into()];
    out.volumes.push(bind(
        rendered(paths::EFFECTIVE_MODEL),
        "/etc/tgstack/stack.toml".into(),
    ));
    // The Telegram session outlives the container on a volume (in a swarm, one of the
    // gateway's pinned node).
    if service.kind == Kind::Gateway
        && let Some(session) = crate::model::native::session_file(stack, inst.name)
        && let Some((dir, _)) = session.rsplit_once('/')
    {
        out.volumes
            .push(volume(format!("{}-session", inst.name), dir));
    }
    out.healthcheck = health(
        &[
            "CMD",
            "tg-gateway",
            "healthcheck",
            &format!("http://127.0.0.1:{}/health", inst.port()),
        ],
        "20s",
    );
    out
}

fn prometheus(inst: &Instance<'_>) -> KindSettings {
    let (name, port) = (inst.name, inst.port());
    let mut out = KindSettings::default();
    if let Some(p) = &inst.service.prometheus {
        out.command = vec![
            "--config.file=/etc/prometheus/prometheus.yml".into(),
            "--storage.tsdb.path=/prometheus".into(),
            format!("--storage.tsdb.retention.time={}", p.retention.prometheus()),
            format!("--web.listen-address=:{port}"),
            "--web.enable-lifecycle".into(),
        ];
    }
    out.volumes = vec![
        bind(
            rendered(&paths::prometheus_yml(name)),
            "/etc/prometheus/prometheus.yml".into(),
        ),
        bind(format!("./{name}/rules"), "/etc/prometheus/rules".into()),
        volume(format!("{name}-data"), "/prometheus"),
    ];
    // Native services are scraped through the host.
    if inst
        .stack
        .services
        .values()
        .any(|s| s.deploy == Deploy::Native)
    {
        out.extra_hosts
            .push("host.docker.internal:host-gateway".into());
    }
    out.healthcheck = wget_health(&format!("http://127.0.0.1:{port}/-/healthy"), "20s");
    out
}

fn grafana(inst: &Instance<'_>) -> KindSettings {
    let (stack, name, port) = (inst.stack, inst.name, inst.port());
    let mut out = KindSettings::default();
    if let Some(g) = &inst.service.grafana {
        out.env("GF_SECURITY_ADMIN_USER", g.admin_user.clone());
        out.env(
            "GF_SECURITY_ADMIN_PASSWORD",
            secret_env(inst.stack, &g.admin_password.secret),
        );
        out.env("GF_SERVER_HTTP_PORT", port.to_string());
        out.env("GF_USERS_ALLOW_SIGN_UP", "false".into());
        out.env("GF_ANALYTICS_REPORTING_ENABLED", "false".into());
        if let Some(plugins) = super::grafana::install_plugins(inst.service) {
            out.env("GF_INSTALL_PLUGINS", plugins);
        }
        for (var, id) in grafana_secrets(stack, inst.service) {
            out.env(&var, secret_env(inst.stack, &id));
        }
        out.depends(stack, &g.prometheus);
        out.depends(stack, &g.database);
    }
    out.volumes = vec![
        bind(
            format!("./{name}/provisioning"),
            "/etc/grafana/provisioning".into(),
        ),
        bind(
            format!("./{name}/dashboards"),
            super::grafana::DASHBOARDS_DIR.into(),
        ),
        volume(format!("{name}-data"), "/var/lib/grafana"),
    ];
    out.healthcheck = wget_health(&format!("http://127.0.0.1:{port}/api/health"), "30s");
    out
}

fn postgres_exporter(inst: &Instance<'_>) -> KindSettings {
    let (stack, service, port) = (inst.stack, inst.service, inst.port());
    let mut out = KindSettings::default();
    if let Some(e) = &service.exporter {
        out.depends(stack, &e.target);
        if let (Ok(endpoint), Some(pg)) = (
            stack.reach(service, &e.target),
            stack.service(&e.target).and_then(|t| t.postgres.as_ref()),
        ) {
            out.env(
                "DATA_SOURCE_URI",
                format!("{endpoint}/{}?sslmode=disable", pg.database),
            );
            if let Some(user) = &e.user {
                out.env("DATA_SOURCE_USER", user.clone());
                if let Some(role) = pg.roles.get(user) {
                    out.env(
                        "DATA_SOURCE_PASS",
                        secret_env(inst.stack, &role.password.secret),
                    );
                }
            }
        }
    }
    let queries = super::prometheus::QUERIES_PATH;
    out.command = vec![
        format!("--web.listen-address=:{port}"),
        format!("--extend.query-path={queries}"),
    ];
    out.volumes.push(bind(
        format!("./{}/queries.yaml", inst.name),
        queries.into(),
    ));
    out.healthcheck = wget_health(&format!("http://127.0.0.1:{port}/metrics"), "10s");
    out
}

fn redis_exporter(inst: &Instance<'_>) -> KindSettings {
    let (stack, service) = (inst.stack, inst.service);
    let mut out = KindSettings::default();
    if let Some(e) = &service.exporter {
        out.depends(stack, &e.target);
        if let Ok(endpoint) = stack.reach(service, &e.target) {
            out.env("REDIS_ADDR", format!("redis://{endpoint}"));
        }
        if let Some(redis) = stack.service(&e.target).and_then(|t| t.redis.as_ref()) {
            out.env(
                "REDIS_PASSWORD",
                secret_env(inst.stack, &redis.password.secret),
            );
        }
    }
    out.env(
        "REDIS_EXPORTER_WEB_LISTEN_ADDRESS",
        format!(":{}", inst.port()),
    );
    out
}

fn pgbouncer_exporter(inst: &Instance<'_>) -> KindSettings {
    let (stack, service) = (inst.stack, inst.service);
    let mut out = KindSettings::default();
    let Some(e) = &service.exporter else {
        return out;
    };
    out.depends(stack, &e.target);
    let (Ok(endpoint), Some(b)) = (
        stack.reach(service, &e.target),
        stack.service(&e.target).and_then(|t| t.pgbouncer.as_ref()),
    ) else {
        return out;
    };
    let user = e.user.clone().unwrap_or_else(|| b.admin.user.clone());
    let secret = b
        .stats
        .iter()
        .chain(std::iter::once(&b.admin))
        .find(|u| u.user == user)
        .map(|u| u.password.secret.clone())
        .unwrap_or_default();
    if let Some(s) = stack.secrets.get(&secret) {
        // Compose interpolates the secret from .env at start.
        out.env(
            "PGBOUNCER_EXPORTER_CONNECTION_STRING",
            format!(
                "postgres://{user}:{}@{endpoint}/pgbouncer?sslmode=disable",
                required_env(&s.env)
            ),
        );
    }
    out.command = vec![format!("--web.listen-address=:{}", inst.port())];
    out
}

fn node_exporter(inst: &Instance<'_>) -> KindSettings {
    let port = inst.port();
    KindSettings {
        command: vec![
            "--path.rootfs=/host".into(),
            format!("--web.listen-address=:{port}"),
        ],
        volumes: vec![bind("/".into(), "/host".into())],
        healthcheck: wget_health(&format!("http://127.0.0.1:{port}/metrics"), "10s"),
        ..KindSettings::default()
    }
}

fn cadvisor(inst: &Instance<'_>) -> KindSettings {
    let host_paths = [
        ("/", "/rootfs"),
        ("/var/run", "/var/run"),
        ("/sys", "/sys"),
        ("/var/lib/docker", "/var/lib/docker"),
    ];
    KindSettings {
        command: vec![
            format!("--port={}", inst.port()),
            "--docker_only=true".into(),
        ],
        volumes: host_paths
            .into_iter()
            .map(|(source, target)| bind(source.into(), target.into()))
            .collect(),
        ..KindSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::placement::keeps_volume;

    /// The swarm rules read `keeps_volume`; it must say what this file mounts.
    #[test]
    fn named_volumes_are_what_the_model_says_a_service_keeps() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("stack.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let stack = crate::model::load_texts(vec![(path, text)]).unwrap().stack;
        for compose in super::compose_services(&stack) {
            let (name, service) = stack
                .services
                .iter()
                .find(|(name, s)| {
                    stack
                        .instances(name, s)
                        .iter()
                        .any(|i| i.name == compose.name)
                })
                .unwrap();
            let mounts_volume = compose.volumes.iter().any(|m| m.kind == "volume");
            assert_eq!(mounts_volume, keeps_volume(service), "{name}");
        }
    }
}
