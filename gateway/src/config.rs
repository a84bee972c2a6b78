//! The gateway's view of the model: its own service, and every endpoint resolved from
//! where it runs (`Stack::reach`: published host ports when native, service names and
//! internal ports in a container). Secrets come from the environment variables the
//! model's `[secrets]` entries name; they are never printed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tgstack::model::native;
use tgstack::model::{
    Channel, Deploy, Endpoint, Kind, Model, PostgresSettings, PostgresVariant, ReadCache,
    SecretRef, SentinelView, Service, Stack, Unreachable,
};

/// A secret value; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The model plus the service this process is.
#[derive(Clone)]
pub struct Config {
    pub model: Model,
    /// Name of this process's service in the model.
    pub name: String,
    lookup: Lookup,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").field("name", &self.name).finish()
    }
}

/// Where a PostgreSQL client connects, and as whom.
#[derive(Debug, Clone)]
pub struct DatabaseTarget {
    pub config: tokio_postgres::Config,
    pub endpoint: Endpoint,
    /// The `postgres` service behind the target (the target itself, or PgBouncer's upstream).
    pub postgres_service: String,
    pub schema: String,
    pub database: String,
}

/// Everything `tg-gateway run` / `replay` needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub service: String,
    pub listen: SocketAddr,
    pub database: DatabaseTarget,
    pub redis: RedisTarget,
    pub broker: BrokerTarget,
    pub dedup_ttl: Duration,
    pub batch_size: usize,
    pub batch_delay: Duration,
    pub reconcile_interval: Duration,
    pub update_buffer: usize,
    pub channels: Vec<Channel>,
    pub session_file: PathBuf,
    pub api_id: i64,
    pub api_hash: Secret,
    /// The enabled read caches of the APIs reading the database this gateway stores into.
    pub caches: Vec<CacheTarget>,
}

#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// The master as the model places it: used when no Sentinel answers.
    pub endpoint: Endpoint,
    pub password: Option<Secret>,
    /// The Sentinels watching that master, when the model has them: they say where the
    /// master is after a failover.
    pub sentinels: Option<SentinelView>,
}

impl RedisTarget {
    /// `redis://:password@host:port/` of the model's master; holds the password, never log it.
    pub fn url(&self) -> String {
        self.url_at(&self.endpoint)
    }

    /// The same for a server at `endpoint` (the master a Sentinel named).
    pub fn url_at(&self, endpoint: &Endpoint) -> String {
        match &self.password {
            Some(password) => format!(
                "redis://:{}@{}/",
                percent_encode(password.expose()),
                endpoint
            ),
            None => format!("redis://{endpoint}/"),
        }
    }
}

/// A read cache ([`crate::cache`]) as this process reaches it.
#[derive(Debug, Clone)]
pub struct CacheTarget {
    pub redis: RedisTarget,
    /// Prefix of every key: the PostgreSQL server and database the cached rows come from,
    /// so caches of two databases can share a Redis.
    pub prefix: String,
    /// Newest messages kept per channel.
    pub recent: usize,
    /// Lifetime of a channel's keys after its last write.
    pub ttl: Duration,
    /// Longest JSON of one cached message; a longer one is read from the database.
    pub entry_cap: usize,
    /// The channels cached: the model's.
    pub channels: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct BrokerTarget {
    /// The broker, or each member of its cluster: the publisher tries them in turn.
    pub endpoints: Vec<Endpoint>,
    pub user: String,
    pub password: Secret,
    pub vhost: String,
    pub exchange: String,
    pub routing_key_prefix: String,
}

impl BrokerTarget {
    /// `amqp://user:password@host:port/vhost` of the broker at `endpoint`; holds the
    /// password, never log it.
    pub fn uri(&self, endpoint: &Endpoint) -> String {
        format!(
            "amqp://{}:{}@{}/{}",
            percent_encode(&self.user),
            percent_encode(self.password.expose()),
            endpoint,
            percent_encode(&self.vhost)
        )
    }

    pub fn routing_key(&self, channel_id: i64) -> String {
        format!("{}.{channel_id}", self.routing_key_prefix)
    }
}

/// Encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn unreachable_reason(reason: Unreachable) -> &'static str {
    match reason {
        Unreachable::UnknownService => "no such service in the model",
        Unreachable::NotPublished => "it runs in a container and publishes no host port",
        Unreachable::NoSharedNetwork => "the two containers share no network",
    }
}

impl Config {
    /// Loads the model files and picks the service (`kind` decides the default).
    pub fn load(models: &[PathBuf], service: Option<&str>, kind: Kind) -> Result<Self> {
        let model = tgstack::model::load_files(models).map_err(|findings| {
            let messages: Vec<String> = findings.iter().map(|f| f.message.clone()).collect();
            anyhow!("cannot load the model: {}", messages.join("; "))
        })?;
        Self::from_model(
            model,
            service,
            kind,
            Arc::new(|name| std::env::var(name).ok()),
        )
    }

    /// From a loaded model, with secrets read through `lookup` (tests pass their own).
    pub fn from_model(
        model: Model,
        service: Option<&str>,
        kind: Kind,
        lookup: Lookup,
    ) -> Result<Self> {
        let name = match service {
            Some(name) => {
                let found = model
                    .stack
                    .service(name)
                    .ok_or_else(|| anyhow!("service `{name}` is not in the model"))?;
                if found.kind != kind {
                    bail!(
                        "service `{name}` is a `{}` service, this command needs a `{}` one",
                        found.kind.as_str(),
                        kind.as_str()
                    );
                }
                name.to_string()
            }
            None => {
                let candidates: Vec<&String> = model
                    .stack
                    .services
                    .iter()
                    .filter(|(_, s)| s.kind == kind)
                    .map(|(n, _)| n)
                    .collect();
                match candidates.as_slice() {
                    [one] => (*one).clone(),
                    [] => bail!("the model has no `{}` service", kind.as_str()),
                    many => bail!(
                        "the model has several `{}` services ({}): pick one with --service",
                        kind.as_str(),
                        many.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
        };
        Ok(Config {
            model,
            name,
            lookup,
        })
    }

    pub fn stack(&self) -> &Stack {
        &self.model.stack
    }

    /// This process's service.
    pub fn service(&self) -> &Service {
        // `from_model` checked the name exists.
        &self.model.stack.services[&self.name]
    }

    /// The value of a secret, from the environment variable the model names, or else
    /// from the file `<VAR>_FILE` names (a Docker Swarm secret under /run/secrets).
    pub fn secret(&self, reference: &SecretRef) -> Result<Secret> {
        let spec =
            self.stack().secrets.get(&reference.secret).ok_or_else(|| {
                anyhow!("secret `{}` is not declared in [secrets]", reference.secret)
            })?;
        if let Some(value) = (self.lookup)(&spec.env).filter(|v| !v.is_empty()) {
            return Ok(Secret(value));
        }
        let file_var = format!("{}_FILE", spec.env);
        let Some(path) = (self.lookup)(&file_var).filter(|p| !p.is_empty()) else {
            bail!(
                "environment variable {} (secret `{}`) is not set, nor {file_var}",
                spec.env,
                reference.secret
            );
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {path} ({file_var}, secret `{}`)",
                reference.secret
            )
        })?;
        // A secret file written by `echo` or an editor ends in a newline that is not part
        // of the value.
        let value = text
            .strip_suffix('\n')
            .map(|v| v.strip_suffix('\r').unwrap_or(v))
            .unwrap_or(&text);
        if value.is_empty() {
            bail!(
                "{path} ({file_var}, secret `{}`) is empty",
                reference.secret
            );
        }
        Ok(Secret(value.to_string()))
    }

    /// How this service reaches `target`.
    pub fn endpoint(&self, target: &str) -> Result<Endpoint> {
        self.stack()
            .reach(self.service(), target)
            .map_err(|reason| {
                anyhow!(
                    "service `{}` cannot reach `{target}`: {}",
                    self.name,
                    unreachable_reason(reason)
                )
            })
    }

    /// How this service reaches each instance of `target` (the members of a RabbitMQ
    /// cluster; one for most services).
    pub fn instance_endpoints(&self, target: &str) -> Result<Vec<Endpoint>> {
        let stack = self.stack();
        let service = stack
            .service(target)
            .ok_or_else(|| anyhow!("`{target}` is not in the model"))?;
        stack
            .instances(target, service)
            .iter()
            .map(|instance| {
                stack
                    .reach_instance(self.service(), target, instance)
                    .map_err(|reason| {
                        anyhow!(
                            "service `{}` cannot reach `{}`: {}",
                            self.name,
                            instance.name,
                            unreachable_reason(reason)
                        )
                    })
            })
            .collect()
    }

    /// Address the HTTP listener binds: the model's `listen` when native, every interface in
    /// a container.
    pub fn listen_addr(&self) -> SocketAddr {
        let service = self.service();
        let ip = match service.deploy {
            // The model's `listen` (what Prometheus scrapes), default 127.0.0.1.
            Deploy::Native => self
                .stack()
                .listen_address(service)
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Deploy::Container => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        SocketAddr::new(ip, service.port)
    }

    fn postgres_behind(&self, target: &str) -> Result<(String, &PostgresSettings)> {
        let service = self
            .stack()
            .service(target)
            .ok_or_else(|| anyhow!("service `{target}` is not in the model"))?;
        let pg_name = match service.kind {
            Kind::Postgres => target.to_string(),
            Kind::Pgbouncer => service
                .pgbouncer
                .as_ref()
                .map(|b| b.upstream.clone())
                .ok_or_else(|| anyhow!("service `{target}` has no [pgbouncer] settings"))?,
            other => bail!(
                "service `{target}` is a `{}` service, not a database",
                other.as_str()
            ),
        };
        let pg = self
            .stack()
            .service(&pg_name)
            .and_then(|s| s.postgres.as_ref())
            .ok_or_else(|| anyhow!("service `{pg_name}` has no [postgres] settings"))?;
        Ok((pg_name, pg))
    }

    /// A client of `target` (a postgres or pgbouncer service) logging in as `role`.
    pub fn database(&self, target: &str, role: &str) -> Result<DatabaseTarget> {
        let (pg_name, pg) = self.postgres_behind(target)?;
        let password = if role == pg.superuser {
            self.secret(&pg.superuser_password)?
        } else {
            let spec = pg
                .roles
                .get(role)
                .ok_or_else(|| anyhow!("role `{role}` is not a role of `{pg_name}`"))?;
            self.secret(&spec.password)?
        };
        let endpoint = self.endpoint(target)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&endpoint.host)
            .port(endpoint.port)
            .dbname(&pg.database)
            .user(role)
            .password(password.expose())
            .application_name(&self.name)
            .connect_timeout(Duration::from_secs(5))
            .keepalives_idle(Duration::from_secs(30));
        Ok(DatabaseTarget {
            config,
            endpoint,
            postgres_service: pg_name,
            schema: pg.schema.clone(),
            database: pg.database.clone(),
        })
    }

    /// The PostgreSQL server itself (never PgBouncer) as its superuser, for migrations.
    pub fn migration_target(
        &self,
        database_service: &str,
    ) -> Result<(DatabaseTarget, PostgresVariant)> {
        let (pg_name, pg) = self.postgres_behind(database_service)?;
        let superuser = pg.superuser.clone();
        let variant = pg.variant;
        Ok((self.database(&pg_name, &superuser)?, variant))
    }

    /// The settings of a `gateway` service.
    pub fn gateway(&self) -> Result<GatewayConfig> {
        let settings = self
            .service()
            .gateway
            .as_ref()
            .ok_or_else(|| anyhow!("service `{}` has no [gateway] settings", self.name))?;
        let database = self.database(&settings.database, &settings.db_role)?;

        let redis = self.redis_target(&settings.redis, "the gateway's dedup")?;

        let rabbit = self
            .stack()
            .service(&settings.broker)
            .and_then(|s| s.rabbitmq.as_ref())
            .ok_or_else(|| anyhow!("`{}` is not a rabbitmq service", settings.broker))?;
        let user = rabbit.users.get(&settings.broker_user).ok_or_else(|| {
            anyhow!(
                "broker user `{}` is not a user of `{}`",
                settings.broker_user,
                settings.broker
            )
        })?;
        let broker = BrokerTarget {
            endpoints: self.instance_endpoints(&settings.broker)?,
            user: settings.broker_user.clone(),
            password: self.secret(&user.password)?,
            vhost: rabbit.vhost.clone(),
            exchange: rabbit.exchange.clone(),
            routing_key_prefix: rabbit.routing_key_prefix.clone(),
        };

        let caches = self
            .stack()
            .read_caches_fed_by(&self.name)
            .into_iter()
            .map(|(_, cache)| self.cache_target(cache, &database))
            .collect::<Result<_>>()?;
        let session_file = native::session_file(self.stack(), &self.name)
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("service `{}` has no [gateway] settings", self.name))?;
        Ok(GatewayConfig {
            service: self.name.clone(),
            listen: self.listen_addr(),
            database,
            redis,
            broker,
            dedup_ttl: Duration::from_millis(settings.dedup_ttl.millis()),
            batch_size: usize::try_from(settings.batch_size).unwrap_or(500).max(1),
            batch_delay: Duration::from_millis(settings.batch_delay.millis()),
            reconcile_interval: Duration::from_millis(settings.reconcile_interval.millis()),
            update_buffer: usize::try_from(settings.update_buffer)
                .unwrap_or(10_000)
                .max(1),
            channels: self.stack().channels.clone(),
            session_file,
            api_id: settings.api_id,
            api_hash: self.secret(&settings.api_hash)?,
            caches,
        })
    }

    /// A `redis` service as this process reaches it, following its Sentinels if any.
    fn redis_target(&self, name: &str, user: &str) -> Result<RedisTarget> {
        let service = self
            .stack()
            .service(name)
            .ok_or_else(|| anyhow!("redis service `{name}` is not in the model"))?;
        let settings = service.redis.as_ref().ok_or_else(|| {
            anyhow!(
                "`{name}` is a `{}` service; {user} needs a `redis` service",
                service.kind.as_str()
            )
        })?;
        Ok(RedisTarget {
            endpoint: self.endpoint(name)?,
            password: Some(self.secret(&settings.password)?),
            sentinels: self.stack().sentinels_watching(self.service(), name),
        })
    }

    /// A read cache of rows of `database`.
    pub fn cache_target(
        &self,
        cache: &ReadCache,
        database: &DatabaseTarget,
    ) -> Result<CacheTarget> {
        let channels = &self.stack().channels;
        Ok(CacheTarget {
            redis: self.redis_target(&cache.redis, "the read cache")?,
            prefix: format!(
                "tg:cache:{}/{}:",
                database.postgres_service, database.database
            ),
            recent: usize::try_from(cache.recent).unwrap_or(200).max(1),
            ttl: Duration::from_millis(cache.ttl.millis()),
            entry_cap: usize::try_from(cache.entry_cap(channels.len())).unwrap_or(usize::MAX),
            channels: channels.iter().map(|c| c.id).collect(),
        })
    }

    /// The database service of this gateway (for `migrate`).
    pub fn gateway_database_service(&self) -> Result<String> {
        let service = self.service();
        if let Some(g) = &service.gateway {
            return Ok(g.database.clone());
        }
        if let Some(a) = &service.api {
            return Ok(a.database.clone());
        }
        Err(anyhow!("service `{}` has no database setting", self.name))
            .context("migrate needs a gateway or api service")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_MODEL: &str = include_str!("../../stack.toml");

    fn config(overlay: Option<&str>, kind: Kind) -> Result<Config> {
        let mut texts = vec![(PathBuf::from("stack.toml"), ROOT_MODEL.to_string())];
        if let Some(text) = overlay {
            texts.push((PathBuf::from("overlay.toml"), text.to_string()));
        }
        let model = tgstack::model::load_texts(texts)
            .map_err(|f| anyhow!("{:?}", f.iter().map(|f| &f.message).collect::<Vec<_>>()))?;
        Config::from_model(
            model,
            None,
            kind,
            Arc::new(|name| Some(format!("value-of-{name} /@:"))),
        )
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_else_from_the_file_var_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("api_key");
        std::fs::write(&file, "from-the-file\n").unwrap();
        let path = file.to_string_lossy().into_owned();
        let model = || {
            tgstack::model::load_texts(vec![(PathBuf::from("stack.toml"), ROOT_MODEL.into())])
                .unwrap()
        };
        let key = SecretRef {
            secret: "api_key".into(),
        };
        let from_file = Config::from_model(
            model(),
            None,
            Kind::Api,
            Arc::new(move |name| (name == "TG_API_KEY_FILE").then(|| path.clone())),
        )
        .unwrap();
        assert_eq!(from_file.secret(&key).unwrap().0, "from-the-file");
        let both = Config::from_model(
            model(),
            None,
            Kind::Api,
            Arc::new(|name| Some(format!("{name}-value"))),
        )
        .unwrap();
        assert_eq!(both.secret(&key).unwrap().0, "TG_API_KEY-value");
        let missing = dir.path().join("absent").to_string_lossy().into_owned();
        let unreadable = Config::from_model(
            model(),
            None,
            Kind::Api,
            Arc::new(move |name| (name == "TG_API_KEY_FILE").then(|| missing.clone())),
        )
        .unwrap();
        let error = format!("{:#}", unreadable.secret(&key).unwrap_err());
        assert!(error.contains("TG_API_KEY_FILE"), "{error}");
        let none = Config::from_model(model(), None, Kind::Api, Arc::new(|_| None)).unwrap();
        let error = format!("{:#}", none.secret(&key).unwrap_err());
        assert!(error.contains("nor TG_API_KEY_FILE"), "{error}");
    }

    #[test]
    fn native_gateway_reaches_containers_through_published_ports() {
        let gateway = config(None, Kind::Gateway).unwrap().gateway().unwrap();
        assert_eq!(gateway.service, "tg-gateway");
        assert_eq!(gateway.database.endpoint.to_string(), "127.0.0.1:6434");
        assert_eq!(gateway.database.database, "telegram");
        assert_eq!(gateway.database.schema, "telegram");
        assert_eq!(gateway.redis.endpoint.to_string(), "127.0.0.1:6379");
        assert_eq!(endpoints(&gateway.broker.endpoints), ["127.0.0.1:5672"]);
        assert_eq!(gateway.broker.routing_key(-42), "telegram.channel.-42");
        assert_eq!(gateway.listen.to_string(), "172.17.0.1:4007");
        assert_eq!(gateway.batch_size, 500);
        assert_eq!(gateway.batch_delay, Duration::from_millis(50));
        assert_eq!(
            gateway.session_file,
            PathBuf::from("/var/lib/tg-gateway/telegram.session")
        );
        let uri = gateway.broker.uri(&gateway.broker.endpoints[0]);
        assert!(
            uri.ends_with("@127.0.0.1:5672/telegram"),
            "vhost path in {uri}"
        );
        assert!(uri.contains("value-of-TG_RABBITMQ_GATEWAY_PASSWORD%20%2F%40%3A"));
        assert!(!format!("{gateway:?}").contains("value-of"), "secrets leak");
        // The three Sentinels through their published ports; what they announce (container
        // names) mapped to the published ports of the master and the replica.
        let sentinels = gateway.redis.sentinels.expect("the model has Sentinels");
        assert_eq!(sentinels.master_name, "mymaster");
        assert_eq!(
            endpoints(&sentinels.sentinels),
            ["127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381"]
        );
        assert_eq!(
            announced(&sentinels.announced),
            [
                (
                    "redis-master:6379".to_string(),
                    "127.0.0.1:6379".to_string()
                ),
                (
                    "redis-replica:6379".to_string(),
                    "127.0.0.1:6380".to_string()
                ),
            ]
        );
    }

    fn endpoints(list: &[Endpoint]) -> Vec<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    fn announced(pairs: &[(Endpoint, Endpoint)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn container_service_reaches_by_service_name_and_internal_port() {
        let overlay = "[services.tg-gateway]\ndeploy = \"container\"\nimage = \"x:1\"\nnetworks = [\"data\"]\n";
        let gateway = config(Some(overlay), Kind::Gateway)
            .unwrap()
            .gateway()
            .unwrap();
        assert_eq!(gateway.database.endpoint.to_string(), "pgbouncer:6432");
        assert_eq!(gateway.redis.endpoint.to_string(), "redis-master:6379");
        assert_eq!(gateway.listen.to_string(), "0.0.0.0:4007");
        let sentinels = gateway.redis.sentinels.expect("the model has Sentinels");
        assert_eq!(
            endpoints(&sentinels.sentinels),
            ["sentinel-1:26379", "sentinel-2:26379", "sentinel-3:26379"]
        );
        assert_eq!(
            announced(&sentinels.announced),
            [
                (
                    "redis-master:6379".to_string(),
                    "redis-master:6379".to_string()
                ),
                (
                    "redis-replica:6379".to_string(),
                    "redis-replica:6379".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_gateway_reaches_every_member_of_a_rabbitmq_cluster() {
        let overlay = "[secrets.rabbitmq_cookie]\nenv = \"TG_RABBITMQ_COOKIE\"\n\n\
            [services.tg-gateway]\ndeploy = \"container\"\nimage = \"x:1\"\nnetworks = [\"data\"]\n\n\
            [services.rabbitmq.rabbitmq]\nmembers = 3\ncookie = { secret = \"rabbitmq_cookie\" }\n";
        let gateway = config(Some(overlay), Kind::Gateway)
            .unwrap()
            .gateway()
            .unwrap();
        assert_eq!(
            endpoints(&gateway.broker.endpoints),
            ["rabbitmq-1:5672", "rabbitmq-2:5672", "rabbitmq-3:5672"]
        );
    }

    #[test]
    fn migration_goes_to_postgres_itself_as_superuser() {
        let config = config(None, Kind::Gateway).unwrap();
        let service = config.gateway_database_service().unwrap();
        let (target, variant) = config.migration_target(&service).unwrap();
        assert_eq!(target.postgres_service, "timescaledb");
        assert_eq!(target.endpoint.to_string(), "127.0.0.1:5434");
        assert_eq!(target.config.get_user(), Some("postgres"));
        assert_eq!(variant, PostgresVariant::Timescaledb);
    }

    #[test]
    fn missing_secret_names_the_variable_only() {
        let model =
            tgstack::model::load_texts(vec![(PathBuf::from("stack.toml"), ROOT_MODEL.to_string())])
                .unwrap();
        let config = Config::from_model(model, None, Kind::Gateway, Arc::new(|_| None)).unwrap();
        let error = config.gateway().unwrap_err().to_string();
        assert!(error.contains("TG_DB_APP_PASSWORD"), "{error}");
    }

    #[test]
    fn picks_the_api_service_for_api_and_rejects_a_wrong_kind() {
        let api = config(None, Kind::Api).unwrap();
        assert_eq!(api.name, "gateway-api");
        let model = api.model.clone();
        let error = Config::from_model(model, Some("redis-master"), Kind::Api, Arc::new(|_| None))
            .unwrap_err()
            .to_string();
        assert!(error.contains("`redis`"), "{error}");
    }
}
