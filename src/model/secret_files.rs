//! The secret-bearing files of a deploy (written by `render --with-secrets` into
//! `deploy.secrets_dir`, never into the rendered tree) and the secret variables each
//! process reads. The writer, the compose and unit renderers and the rules that check
//! mounts and `EnvironmentFile`s all read them here.

use std::collections::BTreeMap;

use super::{Deploy, Kind, SecretRef, Service, Stack};

/// The compose env file with every secret variable.
pub const ENV_FILE: &str = "stack.env";

pub fn userlist_name(service: &str) -> String {
    format!("{service}-userlist.txt")
}
pub fn redis_auth_name(service: &str) -> String {
    format!("{service}-auth.conf")
}
pub fn sentinel_auth_name(service: &str) -> String {
    format!("{service}-auth.conf")
}
pub fn rabbitmq_users_name(service: &str) -> String {
    format!("{service}-users.json")
}
pub fn erlang_cookie_name(service: &str) -> String {
    format!("{service}-erlang-cookie")
}
/// The `EnvironmentFile` of a native service's systemd unit: only the variables it reads.
pub fn native_env_name(service: &str) -> String {
    format!("{service}.env")
}

/// What one secret file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFileKind {
    /// PgBouncer's `auth_file`.
    PgbouncerUserlist,
    /// `requirepass`/`masterauth`, included by the Redis config.
    RedisAuth,
    /// `sentinel auth-pass`, included by each Sentinel config.
    SentinelAuth,
    /// Users and permissions RabbitMQ imports at boot.
    RabbitmqUsers,
    /// The Erlang cookie of a RabbitMQ cluster's members (and of the CLI reaching them).
    ErlangCookie,
    /// The `EnvironmentFile` of a native gateway or api unit.
    NativeEnv,
    /// Every secret variable, for `docker compose --env-file`.
    ComposeEnv,
}

/// One secret file: its name in `deploy.secrets_dir`, the service it belongs to (empty
/// for the compose env file) and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    pub name: String,
    pub service: String,
    pub kind: SecretFileKind,
}

/// Every secret file a deploy of `stack` needs, sorted by name.
pub fn secret_files(stack: &Stack) -> Vec<SecretFile> {
    // Keyed by name: a later file of the same name replaces the earlier one, as on disk.
    let mut files = BTreeMap::new();
    let mut add = |name: String, service: &str, kind| {
        let file = SecretFile {
            name: name.clone(),
            service: service.to_string(),
            kind,
        };
        files.insert(name, file);
    };
    for (name, service) in &stack.services {
        match service.kind {
            Kind::Pgbouncer
                if service
                    .pgbouncer
                    .as_ref()
                    .and_then(|b| stack.service(&b.upstream))
                    .is_some_and(|u| u.postgres.is_some()) =>
            {
                add(userlist_name(name), name, SecretFileKind::PgbouncerUserlist)
            }
            Kind::Redis if service.redis.is_some() => {
                add(redis_auth_name(name), name, SecretFileKind::RedisAuth)
            }
            Kind::Sentinel
                if service
                    .sentinel
                    .as_ref()
                    .and_then(|s| stack.service(&s.monitors))
                    .is_some_and(|m| m.redis.is_some()) =>
            {
                add(sentinel_auth_name(name), name, SecretFileKind::SentinelAuth)
            }
            Kind::Rabbitmq if service.rabbitmq.is_some() => {
                add(
                    rabbitmq_users_name(name),
                    name,
                    SecretFileKind::RabbitmqUsers,
                );
                if service
                    .rabbitmq
                    .as_ref()
                    .is_some_and(|r| r.cookie.is_some())
                {
                    add(erlang_cookie_name(name), name, SecretFileKind::ErlangCookie);
                }
            }
            _ => {}
        }
        // Native units read exactly the secrets their program reads (incident 29).
        let reads_secrets = match service.kind {
            Kind::Gateway | Kind::Api => true,
            Kind::App => !super::app::secret_links(service).is_empty(),
            _ => false,
        };
        if service.deploy == Deploy::Native && reads_secrets {
            add(native_env_name(name), name, SecretFileKind::NativeEnv);
        }
    }
    add(ENV_FILE.into(), "", SecretFileKind::ComposeEnv);
    files.into_values().collect()
}

/// The variables (name -> secret id) of a native service's EnvironmentFile: what
/// tg-gateway reads for a gateway or api, the secret links of an app.
pub fn native_env_secrets(stack: &Stack, service: &Service) -> BTreeMap<String, String> {
    match service.kind {
        Kind::App => super::app::secret_links(service),
        _ => gateway_secrets(stack, service),
    }
}

/// Environment variables (name -> secret id) a gateway/API process reads its secrets from.
pub fn gateway_secrets(stack: &Stack, service: &Service) -> BTreeMap<String, String> {
    let mut refs = Vec::new();
    if let Some(api) = &service.api {
        refs.extend(role_secret(stack, &api.database, &api.db_role));
        refs.push(&api.api_key);
    }
    if let Some(g) = &service.gateway {
        refs.extend(role_secret(stack, &g.database, &g.db_role));
        refs.push(&g.api_hash);
        refs.extend(
            stack
                .service(&g.redis)
                .and_then(|r| r.redis.as_ref())
                .map(|r| &r.password),
        );
        refs.extend(
            stack
                .service(&g.broker)
                .and_then(|b| b.rabbitmq.as_ref())
                .and_then(|r| r.users.get(&g.broker_user))
                .map(|u| &u.password),
        );
    }
    by_env(stack, refs)
}

/// Environment variables (name -> secret id) Grafana's datasources read passwords from.
pub fn grafana_secrets(stack: &Stack, service: &Service) -> BTreeMap<String, String> {
    let mut refs = Vec::new();
    if let Some(g) = &service.grafana {
        refs.extend(role_secret(stack, &g.database, &g.db_role));
        refs.extend(
            g.redis
                .as_ref()
                .and_then(|r| stack.service(r))
                .and_then(|r| r.redis.as_ref())
                .map(|r| &r.password),
        );
    }
    by_env(stack, refs)
}

/// The password secret of `role` on the database behind service `database`.
fn role_secret<'a>(stack: &'a Stack, database: &str, role: &str) -> Option<&'a SecretRef> {
    let (_, pg) = stack.database_of(database)?;
    pg.roles.get(role).map(|r| &r.password)
}

/// Maps secret references to `env var -> secret id`.
fn by_env(stack: &Stack, refs: Vec<&SecretRef>) -> BTreeMap<String, String> {
    refs.into_iter()
        .filter_map(|r| {
            stack
                .secrets
                .get(&r.secret)
                .map(|s| (s.env.clone(), r.secret.clone()))
        })
        .collect()
}
