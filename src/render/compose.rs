//! docker-compose.yml: one compose service per container instance, with published
//! ports bound to the host address, healthchecks built from the model, dependencies
//! derived from references, and resource limits from the budget.

use std::collections::BTreeMap;

use minijinja::context;
use serde::Serialize;

use super::{Output, rabbitmq};
use crate::model::secret_files::{self, gateway_secrets, grafana_secrets};
use crate::model::{Deploy, Kind, Model, Persistence, Service, Stack, paths};

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
    let services = compose_services(stack);
    let volumes: Vec<String> = services
        .iter()
        .flat_map(|s| s.volumes.iter())
        .filter(|m| m.kind == "volume")
        .map(|m| m.source.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let networks: Vec<_> = stack
        .networks
        .iter()
        .map(|(name, net)| context! { name, subnet => &net.subnet, internal => net.internal })
        .collect();
    vec![Output::new(
        paths::COMPOSE,
        "docker-compose.yml.j2",
        context! { project => &stack.name, services => super::ser(&services), volumes, networks },
    )]
}

/// `${VAR:?message}`: compose refuses to start when a secret variable is unset.
pub fn required_env(var: &str) -> String {
    format!("${{{var}:?set {var} in .env (see .env.example)}}")
}

fn secret_env(stack: &Stack, id: &str) -> String {
    stack
        .secrets
        .get(id)
        .map(|s| required_env(&s.env))
        .unwrap_or_default()
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
    !matches!(
        service.kind,
        Kind::RedisExporter | Kind::PgbouncerExporter | Kind::Cadvisor
    )
}

pub fn compose_services(stack: &Stack) -> Vec<ComposeService> {
    let mut out = Vec::new();
    for (name, service) in &stack.services {
        if service.deploy != Deploy::Container {
            continue;
        }
        for instance in stack.instances(name, service) {
            out.push(compose_service(
                stack,
                name,
                service,
                &instance.name,
                instance.publish,
            ));
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

fn compose_service(
    stack: &Stack,
    name: &str,
    service: &Service,
    instance: &str,
    publish: Option<u16>,
) -> ComposeService {
    let address = stack.publish_address(service);
    let secrets_dir = &stack.deploy.secrets_dir;
    let port = service.port;
    let mut ports = Vec::new();
    if let Some(host_port) = publish {
        ports.push(format!("{address}:{host_port}:{port}"));
    }
    let mut command = Vec::new();
    let mut environment = BTreeMap::new();
    let mut volumes = Vec::new();
    let mut depends_on = BTreeMap::new();
    let mut extra_hosts = Vec::new();
    let mut hostname = None;
    let port_text = port.to_string();
    let healthcheck = match service.kind {
        Kind::Postgres => {
            let pg = service.postgres.as_ref();
            let db = pg.map(|p| p.database.clone()).unwrap_or_default();
            let user = pg.map(|p| p.superuser.clone()).unwrap_or_default();
            environment.insert("POSTGRES_DB".into(), db.clone());
            environment.insert("POSTGRES_USER".into(), user.clone());
            if let Some(pg) = pg {
                environment.insert(
                    "POSTGRES_PASSWORD".into(),
                    secret_env(stack, &pg.superuser_password.secret),
                );
            }
            command = [
                "postgres",
                "-c",
                "config_file=/etc/postgresql/postgresql.conf",
                "-c",
                "hba_file=/etc/postgresql/pg_hba.conf",
            ]
            .map(String::from)
            .to_vec();
            volumes.push(bind(
                format!("./{name}/postgresql.conf"),
                "/etc/postgresql/postgresql.conf".into(),
            ));
            volumes.push(bind(
                format!("./{name}/pg_hba.conf"),
                "/etc/postgresql/pg_hba.conf".into(),
            ));
            volumes.push(volume(format!("{name}-data"), "/var/lib/postgresql/data"));
            // TCP on 127.0.0.1: the init-time server listens on the socket only, so this
            // stays red until the real server is up (incident 26).
            health(
                &[
                    "CMD",
                    "pg_isready",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port_text,
                    "-U",
                    &user,
                    "-d",
                    &db,
                ],
                "60s",
            )
        }
        Kind::Pgbouncer => {
            if let Some(b) = &service.pgbouncer {
                depends(stack, &b.upstream, &mut depends_on);
            }
            volumes.push(bind(
                format!("./{name}/pgbouncer.ini"),
                "/etc/pgbouncer/pgbouncer.ini".into(),
            ));
            let userlist = format!("{secrets_dir}/{}", secret_files::userlist_name(name));
            volumes.push(bind(userlist.clone(), userlist));
            health(
                &["CMD-SHELL", &format!("nc -z 127.0.0.1 {port} || exit 1")],
                "10s",
            )
        }
        Kind::Redis => {
            let redis = service.redis.as_ref();
            if let Some(master) = redis.and_then(|r| r.replica_of.as_ref()) {
                depends(stack, master, &mut depends_on);
            }
            if let Some(redis) = redis {
                // redis-cli reads the password from REDISCLI_AUTH (healthcheck only).
                environment.insert(
                    "REDISCLI_AUTH".into(),
                    secret_env(stack, &redis.password.secret),
                );
                if redis.persistence != Persistence::None {
                    volumes.push(volume(format!("{name}-data"), "/data"));
                }
            }
            command = vec![
                "redis-server".into(),
                "/usr/local/etc/redis/redis.conf".into(),
            ];
            volumes.push(bind(
                format!("./{name}/redis.conf"),
                "/usr/local/etc/redis/redis.conf".into(),
            ));
            let auth = format!("{secrets_dir}/{}", secret_files::redis_auth_name(name));
            volumes.push(bind(auth.clone(), auth));
            health(
                &[
                    "CMD-SHELL",
                    &format!("redis-cli -p {port} ping | grep -q PONG"),
                ],
                "10s",
            )
        }
        Kind::Sentinel => {
            if let Some(s) = &service.sentinel {
                depends(stack, &s.monitors, &mut depends_on);
            }
            hostname = Some(instance.to_string());
            let auth = format!("{secrets_dir}/{}", secret_files::sentinel_auth_name(name));
            // Sentinel rewrites its config: run it from a writable copy (incident 14).
            command = vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "cp /etc/tgstack/sentinel.conf /data/sentinel.conf && cat {auth} >> /data/sentinel.conf && exec redis-sentinel /data/sentinel.conf"
                ),
            ];
            volumes.push(bind(
                format!("./{name}/{instance}.conf"),
                "/etc/tgstack/sentinel.conf".into(),
            ));
            volumes.push(bind(auth.clone(), auth));
            volumes.push(volume(format!("{instance}-data"), "/data"));
            health(
                &[
                    "CMD-SHELL",
                    &format!("redis-cli -p {port} ping | grep -q PONG"),
                ],
                "10s",
            )
        }
        Kind::Rabbitmq => {
            // The node name comes from the host name; keep it stable across recreation.
            hostname = Some(name.to_string());
            volumes.push(bind(
                format!("./{name}/rabbitmq.conf"),
                "/etc/rabbitmq/rabbitmq.conf".into(),
            ));
            volumes.push(bind(
                format!("./{name}/enabled_plugins"),
                "/etc/rabbitmq/enabled_plugins".into(),
            ));
            volumes.push(bind(
                format!("./{name}/definitions.json"),
                format!("{}/definitions.json", rabbitmq::DEFINITIONS_DIR),
            ));
            volumes.push(bind(
                format!("{secrets_dir}/{}", secret_files::rabbitmq_users_name(name)),
                format!("{}/users.json", rabbitmq::DEFINITIONS_DIR),
            ));
            volumes.push(volume(format!("{name}-data"), "/var/lib/rabbitmq"));
            health(&["CMD", "rabbitmq-diagnostics", "-q", "ping"], "60s")
        }
        Kind::Api | Kind::Gateway => {
            let database = service
                .api
                .as_ref()
                .map(|a| a.database.clone())
                .or_else(|| service.gateway.as_ref().map(|g| g.database.clone()));
            if let Some(database) = database {
                depends(stack, &database, &mut depends_on);
            }
            if let Some(g) = &service.gateway {
                depends(stack, &g.redis, &mut depends_on);
                depends(stack, &g.broker, &mut depends_on);
            }
            for (var, id) in gateway_secrets(stack, service) {
                environment.insert(var, secret_env(stack, &id));
            }
            environment.insert("TGSTACK_MODEL".into(), "/etc/tgstack/stack.toml".into());
            environment.insert("TGSTACK_SERVICE".into(), name.to_string());
            let sub = if service.kind == Kind::Api {
                "api"
            } else {
                "run"
            };
            command = vec!["tg-gateway".into(), sub.into()];
            volumes.push(bind(
                "./model/stack.toml".into(),
                "/etc/tgstack/stack.toml".into(),
            ));
            health(
                &[
                    "CMD",
                    "tg-gateway",
                    "healthcheck",
                    &format!("http://127.0.0.1:{port}/health"),
                ],
                "20s",
            )
        }
        Kind::Prometheus => {
            if let Some(p) = &service.prometheus {
                command = vec![
                    "--config.file=/etc/prometheus/prometheus.yml".into(),
                    "--storage.tsdb.path=/prometheus".into(),
                    format!("--storage.tsdb.retention.time={}", p.retention.prometheus()),
                    format!("--web.listen-address=:{port}"),
                    "--web.enable-lifecycle".into(),
                ];
            }
            volumes.push(bind(
                format!("./{name}/prometheus.yml"),
                "/etc/prometheus/prometheus.yml".into(),
            ));
            volumes.push(bind(
                format!("./{name}/rules"),
                "/etc/prometheus/rules".into(),
            ));
            volumes.push(volume(format!("{name}-data"), "/prometheus"));
            // Native services are scraped through the host.
            if stack.services.values().any(|s| s.deploy == Deploy::Native) {
                extra_hosts.push("host.docker.internal:host-gateway".into());
            }
            health(
                &[
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    &format!("http://127.0.0.1:{port}/-/healthy"),
                ],
                "20s",
            )
        }
        Kind::Grafana => {
            if let Some(g) = &service.grafana {
                environment.insert("GF_SECURITY_ADMIN_USER".into(), g.admin_user.clone());
                environment.insert(
                    "GF_SECURITY_ADMIN_PASSWORD".into(),
                    secret_env(stack, &g.admin_password.secret),
                );
                environment.insert("GF_SERVER_HTTP_PORT".into(), port.to_string());
                environment.insert("GF_USERS_ALLOW_SIGN_UP".into(), "false".into());
                environment.insert("GF_ANALYTICS_REPORTING_ENABLED".into(), "false".into());
                if let Some(plugins) = super::grafana::install_plugins(service) {
                    environment.insert("GF_INSTALL_PLUGINS".into(), plugins);
                }
                for (var, id) in grafana_secrets(stack, service) {
                    environment.insert(var, secret_env(stack, &id));
                }
                depends(stack, &g.prometheus, &mut depends_on);
                depends(stack, &g.database, &mut depends_on);
            }
            volumes.push(bind(
                format!("./{name}/provisioning"),
                "/etc/grafana/provisioning".into(),
            ));
            volumes.push(bind(
                format!("./{name}/dashboards"),
                super::grafana::DASHBOARDS_DIR.into(),
            ));
            volumes.push(volume(format!("{name}-data"), "/var/lib/grafana"));
            health(
                &[
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    &format!("http://127.0.0.1:{port}/api/health"),
                ],
                "30s",
            )
        }
        Kind::PostgresExporter => {
            if let Some(e) = &service.exporter {
                depends(stack, &e.target, &mut depends_on);
                if let (Ok(endpoint), Some(pg)) = (
                    stack.reach(service, &e.target),
                    stack.service(&e.target).and_then(|t| t.postgres.as_ref()),
                ) {
                    environment.insert(
                        "DATA_SOURCE_URI".into(),
                        format!("{endpoint}/{}?sslmode=disable", pg.database),
                    );
                    if let Some(user) = &e.user {
                        environment.insert("DATA_SOURCE_USER".into(), user.clone());
                        if let Some(role) = pg.roles.get(user) {
                            environment.insert(
                                "DATA_SOURCE_PASS".into(),
                                secret_env(stack, &role.password.secret),
                            );
                        }
                    }
                }
            }
            command = vec![
                format!("--web.listen-address=:{port}"),
                format!("--extend.query-path={}", super::prometheus::QUERIES_PATH),
            ];
            volumes.push(bind(
                format!("./{name}/queries.yaml"),
                super::prometheus::QUERIES_PATH.into(),
            ));
            health(
                &[
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    &format!("http://127.0.0.1:{port}/metrics"),
                ],
                "10s",
            )
        }
        Kind::RedisExporter => {
            if let Some(e) = &service.exporter {
                depends(stack, &e.target, &mut depends_on);
                if let Ok(endpoint) = stack.reach(service, &e.target) {
                    environment.insert("REDIS_ADDR".into(), format!("redis://{endpoint}"));
                }
                if let Some(redis) = stack.service(&e.target).and_then(|t| t.redis.as_ref()) {
                    environment.insert(
                        "REDIS_PASSWORD".into(),
                        secret_env(stack, &redis.password.secret),
                    );
                }
            }
            environment.insert(
                "REDIS_EXPORTER_WEB_LISTEN_ADDRESS".into(),
                format!(":{port}"),
            );
            None
        }
        Kind::PgbouncerExporter => {
            if let Some(e) = &service.exporter {
                depends(stack, &e.target, &mut depends_on);
                if let (Ok(endpoint), Some(b)) = (
                    stack.reach(service, &e.target),
                    stack.service(&e.target).and_then(|t| t.pgbouncer.as_ref()),
                ) {
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
                        environment.insert(
                            "PGBOUNCER_EXPORTER_CONNECTION_STRING".into(),
                            format!(
                                "postgres://{user}:{}@{endpoint}/pgbouncer?sslmode=disable",
                                required_env(&s.env)
                            ),
                        );
                    }
                    command = vec![format!("--web.listen-address=:{port}")];
                }
            }
            None
        }
        Kind::NodeExporter => {
            command = vec![
                "--path.rootfs=/host".into(),
                format!("--web.listen-address=:{port}"),
            ];
            volumes.push(Mount {
                kind: "bind",
                source: "/".into(),
                target: "/host".into(),
                read_only: true,
            });
            health(
                &[
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    &format!("http://127.0.0.1:{port}/metrics"),
                ],
                "10s",
            )
        }
        Kind::Cadvisor => {
            command = vec![format!("--port={port}"), "--docker_only=true".into()];
            for (source, target) in [
                ("/", "/rootfs"),
                ("/var/run", "/var/run"),
                ("/sys", "/sys"),
                ("/var/lib/docker", "/var/lib/docker"),
            ] {
                volumes.push(Mount {
                    kind: "bind",
                    source: source.into(),
                    target: target.into(),
                    read_only: true,
                });
            }
            None
        }
    };
    let (cpus, memory) = (service.cpus, service.memory);
    ComposeService {
        name: instance.to_string(),
        image: service.image.clone().unwrap_or_default(),
        hostname,
        command,
        environment,
        ports,
        volumes,
        networks: service.networks.clone(),
        healthcheck,
        depends_on,
        extra_hosts,
        restart: service.restart.clone(),
        cpus: format!("{cpus}"),
        memory: memory.docker(),
    }
}
