//! `swarm/stack.yml`, `swarm/deploy.sh` and `swarm/remove.sh`: the model's containers as
//! a Docker Swarm stack over the nodes of `[hosts]` (`deploy.target = "swarm"`).
//!
//! The services are the compose services of `compose.rs`, changed where Swarm differs:
//! placement, replicas, reservations, restart and update policies under `deploy:`; no
//! `depends_on` (every service retries until its dependencies answer); names resolving to
//! the tasks (dnsrr) and ports published on the task's node; rendered files as Swarm configs (named by a hash of their content, so a
//! change rolls the services that read them); every credential as a Swarm secret on tmpfs,
//! created by `deploy.sh` from the environment and from the files of
//! `render --with-secrets`, versioned by a hash of its value. This runs after the other
//! renderers, because configs are named by the rendered files' content.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::compose::{
    ComposeService, Healthcheck, Mount, compose_services, named_volumes, networks, required_env,
};
use super::{Output, rabbitmq};
use crate::model::paths::{self, swarm_secret as secret_path};
use crate::model::placement::{Plan, placement_of, runs_on_every_node};
use crate::model::{Kind, Model, Stack};
use crate::tree::Tree;

pub const STACK_FILE: &str = paths::SWARM_STACK;
pub const DEPLOY_SCRIPT: &str = "swarm/deploy.sh";
pub const REMOVE_SCRIPT: &str = "swarm/remove.sh";
pub const SWARM_MIGRATE: &str = "swarm/migrate.sh";

#[derive(Debug, Serialize)]
struct SwarmService {
    name: String,
    image: String,
    hostname: Option<String>,
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    ports: Vec<(u16, u16)>,
    volumes: Vec<Mount>,
    configs: Vec<Mounted>,
    secrets: Vec<Mounted>,
    networks: Vec<String>,
    healthcheck: Option<Healthcheck>,
    /// `global` for host agents (a task on every eligible node), else `replicated`.
    mode: &'static str,
    replicas: u32,
    constraints: Vec<String>,
    max_replicas_per_node: Option<u32>,
    cpus: String,
    memory: String,
    restart: &'static str,
    /// `start-first` for stateless services with room for a second task (no published
    /// port, not spread), `stop-first` for the rest (never two gateways on one session,
    /// never two servers on one volume, never an update stuck waiting for a free node).
    update_order: &'static str,
}

/// A config or secret mounted into a service: the stack file's key and the path, and
/// for a file its program reads only when no one else can (the Erlang cookie), the
/// (uid, gid) it belongs to with mode 0400.
#[derive(Debug, Serialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Mounted {
    source: String,
    target: String,
    owner: Option<(u32, u32)>,
}

/// A top-level config: its key, the rendered file (relative to the stack file) and
/// the content-addressed name Swarm stores it under.
#[derive(Debug, Serialize)]
struct Config {
    key: String,
    file: String,
    name: String,
    /// False when a second file was given the same key (see `clash`).
    #[serde(skip)]
    sources_agree: bool,
}

/// A top-level secret, created by `deploy.sh`: from a variable (`env`) or a file of
/// the secrets directory (`file`); `var` carries its versioned name into the stack file.
#[derive(Debug, Serialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Secret {
    key: String,
    var: String,
    env: Option<String>,
    file: Option<String>,
    /// The model's secret id (env secrets): mounted at `/run/secrets/<id>`.
    id: Option<String>,
}

/// The one-off task (a Swarm job) deploy.sh runs for the migrations: `swarm/migrate.sh`
/// in the PostgreSQL image, on a network of the database, with roles.sql and the SQL
/// files as configs and the superuser's and the roles' passwords as secrets.
#[derive(Debug, Serialize)]
struct Migration {
    /// The PostgreSQL service.
    service: String,
    image: String,
    network: String,
    port: u16,
    superuser: String,
    database: String,
    /// The superuser password's secret id, and the variable holding its Swarm name.
    superuser_secret: String,
    superuser_var: String,
    /// Files of the tree the job reads, by config key: (key, tree path, name in the job).
    files: Vec<(String, String, String)>,
    /// Migrations in order (names in the job's directory).
    migrations: Vec<String>,
    /// (psql variable, environment variable, secret id, variable holding the secret's
    /// Swarm name) of each role's password.
    roles: Vec<(String, String, String, String)>,
}

/// The job deploy.sh runs after the stack deploy for a RabbitMQ cluster: it joins an
/// empty member that formed a cluster of its own, checks that every member runs in one
/// cluster, then adds each member to every quorum queue.
#[derive(Debug, Serialize)]
struct ClusterJob {
    service: String,
    /// The job's Swarm service, after the stack's name.
    job: String,
    image: String,
    network: String,
    /// The members' Swarm services (instance names).
    members: Vec<String>,
    /// The members' Erlang node names.
    nodes: Vec<String>,
    /// The vhost whose queues tell whether a member holds messages.
    vhost: String,
    /// The variable holding the cookie secret's Swarm name, and where the job mounts it.
    cookie_var: String,
    cookie_path: &'static str,
    /// Owned by the image's user even in the job, which runs as root: a CLI that drops to
    /// that user (Debian's rabbitmqctl does) must read it too.
    cookie_owner: (u32, u32),
    /// The job's script in the tree, and its config key.
    script: String,
    script_key: String,
}

/// The script of the cluster job of RabbitMQ service `service`.
fn members_script(service: &str) -> String {
    format!("swarm/{service}-members.sh")
}

fn cluster_jobs(stack: &Stack) -> Vec<ClusterJob> {
    stack
        .services
        .iter()
        .filter_map(|(name, service)| {
            let nodes = rabbitmq::member_nodes(stack, name, service);
            if nodes.is_empty() {
                return None;
            }
            let cookie = format!(
                "file-{}",
                slug(&crate::model::secret_files::erlang_cookie_name(name))
            );
            Some(ClusterJob {
                service: name.clone(),
                job: paths::swarm_members_job(name),
                image: service.image.clone().unwrap_or_default(),
                network: job_network(stack, service),
                members: stack
                    .instances(name, service)
                    .into_iter()
                    .map(|i| i.name)
                    .collect(),
                nodes,
                vhost: service
                    .rabbitmq
                    .as_ref()
                    .map(|r| r.vhost.clone())
                    .unwrap_or_default(),
                cookie_var: var_of(&cookie),
                cookie_path: rabbitmq::COOKIE_PATH,
                cookie_owner: rabbitmq::cookie_owner(service.image.as_deref().unwrap_or_default()),
                script: members_script(name),
                script_key: slug(&members_script(name)),
            })
        })
        .collect()
}

/// The stack file's services, with the configs and secrets they mount.
struct Built {
    services: Vec<SwarmService>,
    configs: BTreeMap<String, Config>,
    secrets: BTreeSet<Secret>,
}

fn build(stack: &Stack, tree: &Tree) -> Built {
    let plan = stack.swarm_plan();
    let mut configs: BTreeMap<String, Config> = BTreeMap::new();
    let mut secrets: BTreeSet<Secret> = BTreeSet::new();
    let services: Vec<SwarmService> = compose_services(stack)
        .into_iter()
        .map(|c| swarm_service(stack, &plan, tree, c, &mut configs, &mut secrets))
        .collect();
    Built {
        services,
        configs,
        secrets,
    }
}

/// The model with the standby of PostgreSQL service `service` promoted (or back): what
/// its failover script applies to the running stack.
pub fn promoted(model: &Model, service: &str) -> Option<Model> {
    let mut flipped = model.clone();
    let standby = flipped
        .stack
        .services
        .get_mut(service)?
        .postgres
        .as_mut()?
        .standby
        .as_mut()?;
    standby.promoted = !standby.promoted;
    Some(flipped)
}

/// The PostgreSQL services with a standby: each gets a failover script.
pub fn with_standby(model: &Model) -> Vec<String> {
    if !model.stack.is_swarm() {
        return Vec::new();
    }
    model
        .stack
        .services
        .iter()
        .filter(|(_, s)| s.postgres.as_ref().is_some_and(|p| p.standby.is_some()))
        .map(|(name, _)| name.clone())
        .collect()
}

/// One PostgreSQL service's failover: its model promoted and that model's tree.
pub struct Promoted {
    pub service: String,
    pub model: Model,
    pub tree: Tree,
}

pub fn outputs(model: &Model, tree: &Tree, promotions: &[Promoted]) -> Vec<Output> {
    let stack = &model.stack;
    if !stack.is_swarm() {
        return Vec::new();
    }
    let Built {
        services,
        configs,
        mut secrets,
    } = build(stack, tree);
    let volumes = named_volumes(services.iter().flat_map(|s| s.volumes.iter()));
    let networks = networks(stack);
    let migration = migration(stack, &mut secrets);
    let clusters = cluster_jobs(stack);
    let secrets: Vec<Secret> = secrets.into_iter().collect();
    if let Some(clash) = clash(&configs, &secrets) {
        return vec![Output::new(
            STACK_FILE,
            "swarm/stack.yml.j2",
            context! { refused => clash },
        )];
    }
    let config_list: Vec<&Config> = configs.values().collect();
    let nodes: Vec<_> = stack
        .hosts
        .iter()
        .map(|(name, host)| context! { name, labels => &host.labels })
        .collect();
    // Variables the stack file still interpolates (credentials of programs that read no
    // file), for deploy.sh to export.
    let interpolated: BTreeSet<String> = stack
        .secrets
        .values()
        .map(|s| s.env.clone())
        .filter(|env| {
            let reference = required_env(env);
            services
                .iter()
                .flat_map(|s| s.environment.values())
                .any(|value| value.contains(&reference))
        })
        .collect();
    let global_services: Vec<String> = services
        .iter()
        .filter(|s| s.mode == "global")
        .map(|s| s.name.clone())
        .collect();
    let project = &stack.name;
    let mut outputs = vec![
        Output::new(
            STACK_FILE,
            "swarm/stack.yml.j2",
            context! {
                project,
                services => super::ser(&services),
                volumes,
                networks,
                configs => super::ser(&config_list),
                secrets => super::ser(&secrets),
            },
        ),
        Output::new(
            DEPLOY_SCRIPT,
            "swarm/deploy.sh.j2",
            context! {
                project,
                nodes,
                secrets => super::ser(&secrets),
                secrets_dir => &stack.deploy.secrets_dir,
                config_dir => &stack.deploy.config_dir,
                env_file => crate::model::secret_files::ENV_FILE,
                interpolated,
                global_services,
                migration => super::ser(&migration),
                clusters => super::ser(&clusters),
                standbys => standbys(stack),
                stack_file => STACK_FILE,
            },
        ),
        Output::new(
            REMOVE_SCRIPT,
            "swarm/remove.sh.j2",
            context! { project, clusters => super::ser(&clusters) },
        ),
        Output::new(
            SWARM_MIGRATE,
            "swarm/migrate.sh.j2",
            context! { project, migration => super::ser(&migration) },
        ),
    ];
    for c in &clusters {
        outputs.push(Output::new(
            c.script.clone(),
            "swarm/members.sh.j2",
            context! { project, c => super::ser(c) },
        ));
    }
    for promotion in promotions {
        let Some((failover, files)) = failover(stack, &services, &configs, promotion) else {
            continue;
        };
        for (path, content) in files {
            outputs.push(Output::new(path, "swarm/verbatim.j2", context! { content }));
        }
        outputs.push(Output::new(
            paths::swarm_failover(&failover.service),
            "swarm/failover.sh.j2",
            context! {
                project,
                config_dir => &stack.deploy.config_dir,
                secrets_dir => &stack.deploy.secrets_dir,
                env_file => crate::model::secret_files::ENV_FILE,
                f => super::ser(&failover),
            },
        ));
    }
    outputs
}

/// Each PostgreSQL standby as deploy.sh guards it: the service, the instance the model
/// makes its standby, and the one it makes the primary.
fn standbys(stack: &Stack) -> Vec<minijinja::Value> {
    stack
        .services
        .iter()
        .filter_map(|(name, service)| {
            let (serving, standby) = service.postgres.as_ref()?.serving_and_standby(name)?;
            Some(context! { service => name, serving, standby })
        })
        .collect()
}

/// What `swarm/<service>-failover.sh` does: stop the serving instance, then bring every
/// other running service to what the promoted model renders (the standby's role first,
/// then PgBouncer's ini, the exporter's address), the effective model file aside: the
/// services that only read it follow at the next deploy.
#[derive(Debug, Serialize)]
struct Failover {
    service: String,
    serving: String,
    standby: String,
    /// `promoted` after the failover, for the operator to write into the model.
    promoted_after: &'static str,
    port: u16,
    updates: Vec<Update>,
}

/// One `docker service update` of the failover.
#[derive(Debug, Serialize)]
struct Update {
    service: String,
    env_add: Vec<(String, String)>,
    env_rm: Vec<String>,
    /// (new config's key, its file in the tree, target path); the script reads the
    /// config it replaces from the running service.
    configs: Vec<(String, String, String)>,
}

fn failover(
    stack: &Stack,
    services: &[SwarmService],
    configs: &BTreeMap<String, Config>,
    promotion: &Promoted,
) -> Option<(Failover, Vec<(String, String)>)> {
    let pg = stack.service(&promotion.service)?.postgres.as_ref()?;
    let (serving, standby) = pg.serving_and_standby(&promotion.service)?;
    let after = build(&promotion.model.stack, &promotion.tree);
    let dir = paths::swarm_failover_dir(&promotion.service);
    let mut files = Vec::new();
    let mut updates = Vec::new();
    for now in services.iter().filter(|s| s.name != serving) {
        let Some(then) = after.services.iter().find(|s| s.name == now.name) else {
            continue;
        };
        let env_add: Vec<(String, String)> = then
            .environment
            .iter()
            .filter(|(var, value)| now.environment.get(*var) != Some(*value))
            .map(|(var, value)| (var.clone(), value.clone()))
            .collect();
        let env_rm: Vec<String> = now
            .environment
            .keys()
            .filter(|var| !then.environment.contains_key(*var))
            .cloned()
            .collect();
        let mut swaps = Vec::new();
        for mounted in &now.configs {
            let (Some(old), Some(new)) = (
                configs.get(&mounted.source),
                after.configs.get(&mounted.source),
            ) else {
                continue;
            };
            let file = old.file.trim_start_matches("../");
            if old.name == new.name || file == paths::EFFECTIVE_MODEL {
                continue;
            }
            let copy = format!("{dir}/{file}");
            let content = promotion.tree.get(file).cloned().unwrap_or_default();
            files.push((copy.clone(), String::from_utf8_lossy(&content).into_owned()));
            swaps.push((mounted.source.clone(), copy, mounted.target.clone()));
        }
        if env_add.is_empty() && env_rm.is_empty() && swaps.is_empty() {
            continue;
        }
        updates.push(Update {
            service: now.name.clone(),
            env_add,
            env_rm,
            configs: swaps,
        });
    }
    // The standby becomes the primary before its clients are pointed at it.
    updates.sort_by_key(|u| u.service != standby);
    files.sort();
    files.dedup();
    let failover = Failover {
        service: promotion.service.clone(),
        promoted_after: if pg.standby.as_ref()?.promoted {
            "false"
        } else {
            "true"
        },
        port: stack.service(&promotion.service)?.port,
        serving,
        standby,
        updates,
    };
    Some((failover, files))
}

/// The migration job of the first PostgreSQL service; its secrets join the stack's.
fn migration(stack: &Stack, secrets: &mut BTreeSet<Secret>) -> Option<Migration> {
    let (name, service, pg) = stack
        .services
        .iter()
        .find_map(|(n, s)| s.postgres.as_ref().map(|p| (n, s, p)))?;
    let migrations: Vec<String> = crate::render::sql::FILES
        .iter()
        .map(|(stem, _)| format!("{stem}.sql"))
        .collect();
    let mut files = vec![
        (
            slug(SWARM_MIGRATE),
            SWARM_MIGRATE.to_string(),
            "migrate.sh".to_string(),
        ),
        (
            slug(&paths::roles_sql(name)),
            paths::roles_sql(name),
            "roles.sql".to_string(),
        ),
    ];
    for file in &migrations {
        let path = format!("{}/{file}", paths::migrations_dir(name, pg.variant));
        files.push((slug(&path), path, file.clone()));
    }
    let mut add = |id: &str| {
        if let Some(secret) = stack.secrets.get(id) {
            let mut ignored = Vec::new();
            add_env_secret(secrets, &mut ignored, id, &secret.env);
        }
    };
    add(&pg.superuser_password.secret);
    // (psql variable, environment variable, secret id, its Swarm name's variable) of
    // each password roles.sql sets, its secret added to the stack's.
    let mut password = |var: String, id: &str| {
        add(id);
        (
            var,
            stack.secret_env(id).unwrap_or_default().to_string(),
            id.to_string(),
            env_secret_var(id),
        )
    };
    let mut roles: Vec<_> = pg
        .roles
        .iter()
        .map(|(role, spec)| {
            password(
                format!("{}_password", role.to_lowercase()),
                &spec.password.secret,
            )
        })
        .collect();
    if let Some(standby) = &pg.standby {
        roles.push(password(
            super::postgres::REPLICATION_PASSWORD_VAR.to_string(),
            &standby.password.secret,
        ));
    }
    // With a standby, the instance that serves as the primary.
    let serving = pg
        .serving_and_standby(name)
        .map_or_else(|| name.clone(), |(serving, _)| serving);
    Some(Migration {
        service: serving,
        image: service.image.clone().unwrap_or_default(),
        network: job_network(stack, service),
        port: service.port,
        superuser: pg.superuser.clone(),
        database: pg.database.clone(),
        superuser_secret: pg.superuser_password.secret.clone(),
        superuser_var: env_secret_var(&pg.superuser_password.secret),
        files,
        migrations,
        roles,
    })
}

/// The Swarm network a job for `service` joins: the stack's copy of its first network.
fn job_network(stack: &Stack, service: &crate::model::Service) -> String {
    service
        .networks
        .first()
        .map(|n| format!("{}_{n}", stack.name))
        .unwrap_or_default()
}

fn swarm_service(
    stack: &Stack,
    plan: &Plan,
    tree: &Tree,
    compose: ComposeService,
    configs: &mut BTreeMap<String, Config>,
    secrets: &mut BTreeSet<Secret>,
) -> SwarmService {
    let task = plan.tasks.iter().find(|t| t.instance == compose.name);
    let owner = task.map(|t| t.service.as_str()).unwrap_or(&compose.name);
    let service = stack.service(owner);
    let placement = service.map(placement_of).unwrap_or_default();
    let mut mounted_configs = Vec::new();
    let mut mounted_secrets = Vec::new();
    let mut volumes = Vec::new();
    for mount in compose.volumes {
        match mount_kind(stack, tree, &mount) {
            MountKind::Rendered(files) => {
                for (file, target) in files {
                    let key = config(&stack.name, tree, &file, configs);
                    mounted_configs.push(Mounted {
                        source: key,
                        target,
                        owner: None,
                    });
                }
            }
            MountKind::SecretFile(name) => {
                let key = format!("file-{}", slug(&name));
                secrets.insert(Secret {
                    var: var_of(&key),
                    key: key.clone(),
                    env: None,
                    file: Some(name),
                    id: None,
                });
                let file_owner = (mount.target == rabbitmq::COOKIE_PATH)
                    .then(|| rabbitmq::cookie_owner(&compose.image));
                mounted_secrets.push(Mounted {
                    source: key,
                    target: mount.target,
                    owner: file_owner,
                });
            }
            MountKind::Kept => volumes.push(mount),
        }
    }
    let kind = service.map(|s| s.kind);
    let mut environment = BTreeMap::new();
    let mut healthcheck = compose.healthcheck;
    for (var, value) in compose.environment {
        let Some((id, env)) = whole_secret(stack, &value) else {
            environment.insert(var, value);
            continue;
        };
        let Some(file_var) = file_variable(kind, &var) else {
            // Only the healthcheck's redis-cli reads REDISCLI_AUTH: it reads the file.
            if var == "REDISCLI_AUTH"
                && let Some(check) = healthcheck.as_mut()
            {
                let command = check.test.last().cloned().unwrap_or_default();
                let path = secret_path(&id);
                *check.test.last_mut().expect("a CMD-SHELL test") =
                    format!("REDISCLI_AUTH=\"$$(cat {path})\" {command}");
                add_env_secret(secrets, &mut mounted_secrets, &id, &env);
                continue;
            }
            // The program reads this credential only from its environment.
            environment.insert(var, value);
            continue;
        };
        // An empty name: the program finds the file by its path alone.
        if !file_var.is_empty() {
            environment.insert(file_var, secret_path(&id));
        }
        add_env_secret(secrets, &mut mounted_secrets, &id, &env);
    }
    mounted_configs.sort();
    mounted_secrets.sort();
    mounted_secrets.dedup();
    let global = service.is_some_and(runs_on_every_node);
    // A global service runs on every node its placement allows: pinned only by `host`.
    let pinned = if global {
        placement.host.clone()
    } else {
        task.filter(|t| t.nodes.len() == 1)
            .map(|t| t.nodes[0].clone())
    };
    let mut constraints: Vec<String> = pinned
        .iter()
        .map(|node| format!("node.hostname == {node}"))
        .collect();
    constraints.extend(
        placement
            .labels
            .iter()
            .map(|(k, v)| format!("node.labels.{k} == {v}")),
    );
    let stateless = matches!(
        kind,
        Some(
            Kind::Api
                | Kind::Pgbouncer
                | Kind::Nginx
                | Kind::App
                | Kind::PostgresExporter
                | Kind::RedisExporter
                | Kind::PgbouncerExporter
                | Kind::NodeExporter
                | Kind::Cadvisor
        )
    );
    let multi_instance = service.is_some_and(|s| stack.instances(owner, s).len() > 1);
    let compose_ports_empty = compose.ports.is_empty();
    SwarmService {
        name: compose.name,
        image: compose.image,
        hostname: compose.hostname,
        command: compose.command,
        environment,
        ports: compose
            .ports
            .iter()
            .filter_map(|spec| published(spec))
            .collect(),
        volumes,
        configs: mounted_configs,
        secrets: mounted_secrets,
        networks: compose.networks,
        healthcheck,
        mode: if global { "global" } else { "replicated" },
        // A Sentinel set is one Swarm service per Sentinel: each has one task.
        replicas: if multi_instance {
            1
        } else {
            placement.replicas
        },
        constraints,
        max_replicas_per_node: (placement.spread && placement.replicas > 1).then_some(1),
        cpus: compose.cpus,
        memory: compose.memory,
        restart: restart_condition(&compose.restart),
        // Start-first needs room for a second task beside the first: not with a port
        // published on the node, nor with one task per node already on every node.
        update_order: if stateless && compose_ports_empty && !placement.spread {
            "start-first"
        } else {
            "stop-first"
        },
    }
}

/// The variable deploy.sh sets to the Swarm name of the secret of model secret `id`.
fn env_secret_var(id: &str) -> String {
    var_of(&format!("env-{}", slug(id)))
}

fn add_env_secret(secrets: &mut BTreeSet<Secret>, mounted: &mut Vec<Mounted>, id: &str, env: &str) {
    let key = format!("env-{}", slug(id));
    secrets.insert(Secret {
        var: var_of(&key),
        key: key.clone(),
        env: Some(env.to_string()),
        file: None,
        id: Some(id.to_string()),
    });
    mounted.push(Mounted {
        source: key,
        target: secret_path(id),
        owner: None,
    });
}

enum MountKind {
    /// Rendered files: (path in the tree, path in the container), one per file of a
    /// mounted directory.
    Rendered(Vec<(String, String)>),
    /// A file of the secrets directory, by name.
    SecretFile(String),
    /// A named volume or a path of the node itself (node-exporter's `/`).
    Kept,
}

fn mount_kind(stack: &Stack, tree: &Tree, mount: &Mount) -> MountKind {
    if mount.kind != "bind" {
        return MountKind::Kept;
    }
    if let Some(path) = mount.source.strip_prefix("./") {
        if tree.contains_key(path) {
            return MountKind::Rendered(vec![(path.to_string(), mount.target.clone())]);
        }
        let prefix = format!("{path}/");
        let files = tree
            .keys()
            .filter_map(|file| file.strip_prefix(&prefix).map(|rest| (file, rest)))
            .map(|(file, rest)| (file.clone(), format!("{}/{rest}", mount.target)))
            .collect();
        return MountKind::Rendered(files);
    }
    let dir = format!("{}/", stack.deploy.secrets_dir.trim_end_matches('/'));
    match mount.source.strip_prefix(&dir) {
        Some(name) => MountKind::SecretFile(name.to_string()),
        None => MountKind::Kept,
    }
}

/// The config of a rendered file, added once; its key.
/// Two files or two secrets that would share one stack-file key (their names differ
/// only where a key has `-`), said as the reason the stack cannot be rendered.
fn clash(configs: &BTreeMap<String, Config>, secrets: &[Secret]) -> Option<String> {
    if let Some(config) = configs.values().find(|c| !c.sources_agree) {
        return Some(format!(
            "two rendered files share the swarm config key `{}`; rename one",
            config.key
        ));
    }
    secrets
        .windows(2)
        .find(|pair| pair[0].key == pair[1].key)
        .map(|pair| {
            format!(
                "two secrets share the swarm secret key `{}`; give them ids that differ in more than `-`, `_` or `.`",
                pair[0].key
            )
        })
}

fn config(
    project: &str,
    tree: &Tree,
    file: &str,
    configs: &mut BTreeMap<String, Config>,
) -> String {
    let key = slug(file);
    let file_in_stack = format!("../{file}");
    if let Some(existing) = configs.get_mut(&key) {
        existing.sources_agree &= existing.file == file_in_stack;
        return key;
    }
    configs.entry(key.clone()).or_insert_with(|| {
        let content = tree.get(file).map(Vec::as_slice).unwrap_or_default();
        let hash = hex(&Sha256::digest(content))[..12].to_string();
        Config {
            key: key.clone(),
            file: file_in_stack,
            name: swarm_name(project, &key, &hash),
            sources_agree: true,
        }
    });
    key
}

/// `<project>_<key>_<hash>`, its front cut to Swarm's 64 characters: the hash keeps it
/// unique and ends it with a letter or digit, as Swarm wants. deploy.sh names its own
/// secrets and configs the same way.
fn swarm_name(project: &str, key: &str, hash: &str) -> String {
    let base = format!("{project}_{key}");
    let keep = SWARM_NAME_MAX - 1 - hash.len();
    format!("{}_{hash}", &base[..base.len().min(keep)])
}

/// The longest name of a Swarm config or secret.
const SWARM_NAME_MAX: usize = 64;

/// A value that is exactly one secret's `${VAR:?...}`: the secret id and its variable.
fn whole_secret(stack: &Stack, value: &str) -> Option<(String, String)> {
    stack
        .secrets
        .iter()
        .find(|(_, s)| value == required_env(&s.env))
        .map(|(id, s)| (id.clone(), s.env.clone()))
}

/// The variable a program reads a credential's file from, where it reads one: the
/// official images' `_FILE` conventions, Grafana's `__FILE`, and tg-gateway's `_FILE`;
/// empty where the program is told the path another way (Grafana's datasources).
fn file_variable(kind: Option<Kind>, var: &str) -> Option<String> {
    match (kind?, var) {
        (Kind::Postgres, "POSTGRES_PASSWORD") => Some("POSTGRES_PASSWORD_FILE".into()),
        (Kind::Postgres, super::postgres::ENTRYPOINT_PASSWORD_VAR) => Some(format!("{var}_FILE")),
        (Kind::PostgresExporter, "DATA_SOURCE_PASS") => Some("DATA_SOURCE_PASS_FILE".into()),
        (Kind::Grafana, var) if var.starts_with("GF_") => Some(format!("{var}__FILE")),
        // Grafana's datasources read `$__file{...}` themselves (render/grafana.rs).
        (Kind::Grafana, _) => Some(String::new()),
        (Kind::Gateway | Kind::Api, var) => Some(format!("{var}_FILE")),
        _ => None,
    }
}

/// `ADDRESS:HOST:CONTAINER` of the compose renderer: (published, target).
fn published(spec: &str) -> Option<(u16, u16)> {
    let mut parts = spec.rsplit(':');
    let target = parts.next()?.parse().ok()?;
    let published = parts.next()?.parse().ok()?;
    Some((published, target))
}

fn restart_condition(restart: &str) -> &'static str {
    match restart {
        "no" => "none",
        "on-failure" => "on-failure",
        _ => "any",
    }
}

/// A stack-file key from a path or name: letters and digits, anything else `-`.
fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The variable `deploy.sh` exports with a secret's versioned name.
fn var_of(key: &str) -> String {
    format!(
        "TGSTACK_SECRET_{}",
        key.to_ascii_uppercase().replace('-', "_")
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn swarm_names_fit_sixty_four_characters() {
        let short = super::swarm_name("stack", "model-stack-toml", "0123456789ab");
        assert_eq!(short, "stack_model-stack-toml_0123456789ab");
        let long = super::swarm_name(
            "telegram-hybrid",
            "timescaledb-sql-timescaledb-005-aggregates-sql",
            "0123456789ab",
        );
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("telegram-hybrid_timescaledb-sql-"));
        assert!(long.ends_with("_0123456789ab"));
    }

    #[test]
    fn ports_keys_and_variables() {
        assert_eq!(super::published("127.0.0.1:4010:4010"), Some((4010, 4010)));
        assert_eq!(
            super::published("0.0.0.0:15672:15672"),
            Some((15672, 15672))
        );
        assert_eq!(
            super::slug("grafana/provisioning/a.yml"),
            "grafana-provisioning-a-yml"
        );
        assert_eq!(
            super::var_of("file-pgbouncer-userlist-txt"),
            "TGSTACK_SECRET_FILE_PGBOUNCER_USERLIST_TXT"
        );
    }
}
