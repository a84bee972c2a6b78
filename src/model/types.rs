//! The typed stack.toml model. Every field documents its default; the JSON Schema in
//! `schemas/stack.schema.json` is derived from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;

use super::text;
use serde::{Deserialize, Serialize};

use super::app::AppSettings;
use super::nginx::NginxSettings;
use super::units::{ByteSize, Duration};

/// The whole stack: one file that every rendered artifact is derived from.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    /// Name of the stack; the compose project name and the prefix of volumes.
    #[schemars(pattern(text::NAME))]
    pub name: String,
    /// The machine the stack runs on: its budget and what it publishes on.
    pub host: Host,
    /// Where files live at deploy time.
    #[serde(default)]
    pub deploy: DeploySettings,
    /// The nodes of a Docker Swarm deploy (`deploy.target = "swarm"`), by node host name.
    /// Default none: the stack runs on the one `[host]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, SwarmHost>,
    /// Container networks, by name.
    #[serde(default)]
    pub networks: BTreeMap<String, Network>,
    /// Secrets, by id. Each is a reference to an environment variable read at deploy time;
    /// the value itself never appears in the model or in `generated/`.
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    /// The services of the stack, by name (the container and host name).
    pub services: BTreeMap<String, Service>,
    /// Telegram channels the gateway ingests.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Settings shared by the alerts.
    #[serde(default)]
    pub monitoring: super::MonitoringSettings,
    /// Alert rules, rendered into Prometheus rule files and promtool unit tests.
    #[serde(default)]
    pub alerts: Vec<super::Alert>,
    /// Findings the operator accepts, each with a reason.
    #[serde(default)]
    pub allow: Vec<Allow>,
}

/// The host machine and its budget.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// CPUs the stack may use in total (limits of all services added up).
    #[schemars(range(min = 0.01, max = 1024.0))]
    pub cpus: f64,
    /// Memory the stack may use in total.
    pub memory: ByteSize,
    /// Address published container ports bind to. Default `127.0.0.1`.
    #[serde(default = "default_bind")]
    #[schemars(pattern(text::ADDRESS))]
    pub bind: String,
    /// Host ports nothing in the stack may publish (ssh, web servers, ...). Default none.
    #[serde(default)]
    pub reserved_ports: Vec<u16>,
}

/// One node of a swarm: what it may run and the labels placements select it by.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwarmHost {
    /// CPUs the services placed on this node may use (their limits added up).
    #[schemars(range(min = 0.01, max = 1024.0))]
    pub cpus: f64,
    /// Memory the services placed on this node may use.
    pub memory: ByteSize,
    /// Node labels (`docker node update --label-add KEY=VALUE`), matched by
    /// `placement.labels`. Default none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "text::label_map")]
    pub labels: BTreeMap<String, String>,
}

/// Where a service runs in a swarm. Ignored by the compose target, which has one host.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// The node the service is pinned to (a key of `[hosts]`). Services with a volume
    /// must be pinned: a Swarm volume is local to its node. Default: any node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(text::NAME))]
    pub host: Option<String>,
    /// Node labels the node must carry, e.g. `{ disk = "ssd" }`. Default none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "text::label_map")]
    pub labels: BTreeMap<String, String>,
    /// At most one instance per node: the Sentinels of a set, the replicas of a service.
    /// Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spread: bool,
    /// Swarm tasks of the service; more than one only for stateless kinds (api,
    /// pgbouncer, nginx, app). Default 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[schemars(range(min = 1, max = 64))]
    pub replicas: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn default_bind() -> String {
    "127.0.0.1".into()
}

/// Deploy-time locations.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploySettings {
    /// Directory holding secret-bearing files written by `tgstack render --with-secrets`
    /// (mode 0700, files 0600), mounted read-only into containers at the same path.
    /// Default `/etc/tgstack/secrets`.
    #[serde(default = "default_secrets_dir")]
    #[schemars(pattern(text::PATH))]
    pub secrets_dir: String,
    /// Directory the rendered tree is installed to on the host (native units read their
    /// configs from here). Default `/etc/tgstack`.
    #[serde(default = "default_config_dir")]
    #[schemars(pattern(text::PATH))]
    pub config_dir: String,
    /// Parent of the state directories of native services. Default `/var/lib`.
    #[serde(default = "default_state_dir")]
    #[schemars(pattern(text::PATH))]
    pub state_dir: String,
    /// The engine the stack is deployed on: `compose` (one host, default) or `swarm`
    /// (the nodes of `[hosts]`, `swarm/stack.yml` for `docker stack deploy`).
    #[serde(default, skip_serializing_if = "Target::is_compose")]
    pub target: Target,
}

/// The engine a stack is rendered for.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `docker compose` on the one `[host]` (default).
    #[default]
    Compose,
    /// `docker stack deploy` on a Docker Swarm of the `[hosts]`.
    Swarm,
}

impl Target {
    pub fn is_compose(&self) -> bool {
        *self == Target::Compose
    }
}

impl Default for DeploySettings {
    fn default() -> Self {
        Self {
            secrets_dir: default_secrets_dir(),
            config_dir: default_config_dir(),
            state_dir: default_state_dir(),
            target: Target::Compose,
        }
    }
}

fn default_secrets_dir() -> String {
    "/etc/tgstack/secrets".into()
}
fn default_config_dir() -> String {
    "/etc/tgstack".into()
}
fn default_state_dir() -> String {
    "/var/lib".into()
}

/// A container network.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// IPv4 subnet in CIDR form; pg_hba.conf admits exactly the subnets of the networks
    /// the database joins.
    #[schemars(pattern(text::SUBNET))]
    pub subnet: String,
    /// No route out of the network. Default false.
    #[serde(default)]
    pub internal: bool,
}

/// A secret: where its value comes from at deploy time.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// Environment variable holding the value at deploy time, e.g. `TG_DB_PASSWORD`.
    #[schemars(pattern(text::ENV_VAR))]
    pub env: String,
    /// What the secret is for; printed in `.env.example`.
    #[serde(default)]
    #[schemars(pattern(text::TEXT))]
    pub description: String,
}

/// A reference to a secret by id: `{ secret = "db_app" }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Id of an entry of `[secrets]`.
    #[schemars(pattern(text::ID))]
    pub secret: String,
}

/// Container or native (systemd) deployment.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Deploy {
    /// A compose service on the container networks (default).
    #[default]
    Container,
    /// A systemd service on the host; it reaches containers only through published ports.
    Native,
}

/// What a service is; decides which settings table applies and what gets rendered.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Postgres,
    Pgbouncer,
    Redis,
    Sentinel,
    Rabbitmq,
    Gateway,
    Api,
    Prometheus,
    Grafana,
    PostgresExporter,
    RedisExporter,
    PgbouncerExporter,
    NodeExporter,
    Cadvisor,
    Nginx,
    App,
}

/// One service of the stack.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// What the service is.
    pub kind: Kind,
    /// `container` (default) or `native`.
    #[serde(default)]
    pub deploy: Deploy,
    /// Container image, pinned to a version (`repo:tag`). Required for containers.
    #[serde(default)]
    #[schemars(pattern(text::IMAGE))]
    pub image: Option<String>,
    /// The port the service listens on (inside its container, or on the host when native).
    /// Every URL between services uses this port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Host port the main port is published on (containers only). Default: not published.
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub publish: Option<u16>,
    /// Address the published port binds to. Default: `host.bind`.
    #[serde(default)]
    #[schemars(pattern(text::ADDRESS))]
    pub publish_address: Option<String>,
    /// Native services only: the address the process listens on. Default `127.0.0.1`.
    /// A native service that containers reach (Prometheus scrapes it through
    /// `host.docker.internal`, i.e. the Docker bridge gateway) must listen there, e.g.
    /// `172.17.0.1`: a loopback listener is unreachable from containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(text::ADDRESS))]
    pub listen: Option<String>,
    /// CPU limit.
    #[schemars(range(min = 0.01, max = 256.0))]
    pub cpus: f64,
    /// Memory limit.
    pub memory: ByteSize,
    /// Networks the container joins. Default none (then it cannot reach anything).
    #[serde(default)]
    #[schemars(inner(pattern(text::NAME)))]
    pub networks: Vec<String>,
    /// Compose restart policy. Default `unless-stopped`.
    #[serde(default = "default_restart")]
    #[schemars(pattern(text::WORD))]
    pub restart: String,
    /// Where the service runs when `deploy.target = "swarm"`. Default: any node, one task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,

    /// Settings of a `postgres` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSettings>,
    /// Settings of a `pgbouncer` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgbouncer: Option<PgbouncerSettings>,
    /// Settings of a `redis` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSettings>,
    /// Settings of a `sentinel` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelSettings>,
    /// Settings of a `rabbitmq` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq: Option<RabbitmqSettings>,
    /// Settings of a `gateway` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySettings>,
    /// Settings of an `api` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSettings>,
    /// Settings of a `prometheus` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSettings>,
    /// Settings of a `grafana` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana: Option<GrafanaSettings>,
    /// Settings of an exporter (`postgres-exporter`, `redis-exporter`, `pgbouncer-exporter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<ExporterSettings>,
    /// Settings of an `nginx` reverse proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxSettings>,
    /// Settings of an `app`: a service of any other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppSettings>,
    /// How a `native` service runs under systemd. Only valid with `deploy = "native"`.
    /// Default: every field's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeSettings>,
}

/// systemd settings of a native service.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NativeSettings {
    /// The program the unit starts. Default `/usr/local/bin/tg-gateway` (gateway and api).
    #[serde(default)]
    #[schemars(pattern(text::PATH))]
    pub binary: Option<String>,
    /// Dedicated system user (and group) the service runs as. Default: the service name.
    #[serde(default)]
    #[schemars(pattern(text::NAME))]
    pub user: Option<String>,
    /// Seconds systemd waits for a graceful stop before SIGKILL. Default `30s`.
    #[serde(default)]
    pub stop_timeout: Option<Duration>,
}

fn default_restart() -> String {
    "unless-stopped".into()
}

/// PostgreSQL flavour: with the TimescaleDB extension or plain.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PostgresVariant {
    /// TimescaleDB preloaded: hypertables, compression, continuous aggregates (default).
    #[default]
    Timescaledb,
    /// Plain PostgreSQL: same tables, materialized views instead of continuous aggregates.
    Plain,
}

/// Password hashing of PostgreSQL, and so the auth method of everything that logs in.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum PasswordEncryption {
    /// SCRAM-SHA-256 (default; PostgreSQL 14+ default).
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// MD5 (deprecated).
    #[serde(rename = "md5")]
    Md5,
}

impl PasswordEncryption {
    pub fn as_str(self) -> &'static str {
        match self {
            PasswordEncryption::ScramSha256 => "scram-sha-256",
            PasswordEncryption::Md5 => "md5",
        }
    }
}

/// A database role.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// The role's password.
    pub password: SecretRef,
    /// `readwrite` (default), `readonly` or `admin`.
    #[serde(default)]
    pub access: Access,
    /// Connections the role may hold on the server. Default unlimited (-1).
    #[serde(default = "default_connection_limit")]
    #[schemars(range(min = -1, max = 100000))]
    pub connection_limit: i32,
}

fn default_connection_limit() -> i32 {
    -1
}

/// What a role may do.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    Readwrite,
    Readonly,
    Admin,
}

/// PostgreSQL (or TimescaleDB) server settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// `timescaledb` (default) or `plain`.
    #[serde(default)]
    pub variant: PostgresVariant,
    /// Database the stack uses. Default `telegram`.
    #[serde(default = "default_database")]
    #[schemars(pattern(text::SQL_IDENT))]
    pub database: String,
    /// Schema the stack's tables live in. Default `telegram`.
    #[serde(default = "default_database")]
    #[schemars(pattern(text::SQL_IDENT))]
    pub schema: String,
    /// The superuser role name. Default `postgres`.
    #[serde(default = "default_superuser")]
    #[schemars(pattern(text::SQL_IDENT))]
    pub superuser: String,
    /// The superuser's password.
    pub superuser_password: SecretRef,
    /// Roles that log in (the app, read-only dashboards, ...), by name.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// Password hashing; decides every auth method. Default `scram-sha-256`.
    #[serde(default)]
    pub password_encryption: PasswordEncryption,
    /// Default 100.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1, max = 262143))]
    pub max_connections: u32,
    /// Connections kept for superusers. Default 3.
    #[serde(default = "default_reserved_connections")]
    #[schemars(range(min = 0, max = 1000))]
    pub superuser_reserved_connections: u32,
    /// Default `512MiB`.
    #[serde(default = "default_shared_buffers")]
    pub shared_buffers: ByteSize,
    /// Default `1536MiB`.
    #[serde(default = "default_effective_cache_size")]
    pub effective_cache_size: ByteSize,
    /// Default `128MiB`.
    #[serde(default = "default_maintenance_work_mem")]
    pub maintenance_work_mem: ByteSize,
    /// Default `4MiB`.
    #[serde(default = "default_work_mem")]
    pub work_mem: ByteSize,
    /// Default `16MiB`.
    #[serde(default = "default_wal_buffers")]
    pub wal_buffers: ByteSize,
    /// Default `1GiB`.
    #[serde(default = "default_min_wal_size")]
    pub min_wal_size: ByteSize,
    /// Default `4GiB`.
    #[serde(default = "default_max_wal_size")]
    pub max_wal_size: ByteSize,
    /// Default 0.9.
    #[serde(default = "default_checkpoint_completion_target")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub checkpoint_completion_target: f64,
    /// Default 1.1 (SSD).
    #[serde(default = "default_random_page_cost")]
    #[schemars(range(min = 0.0, max = 10000.0))]
    pub random_page_cost: f64,
    /// Default 200 (SSD).
    #[serde(default = "default_effective_io_concurrency")]
    #[schemars(range(min = 0, max = 1000))]
    pub effective_io_concurrency: u32,
    /// Longest statement the server runs. Default `60s`.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: Duration,
    /// TimescaleDB chunk interval of `messages`. Default `1d`.
    #[serde(default = "default_chunk_interval")]
    pub chunk_interval: Duration,
    /// Compress chunks older than this. Default `14d`.
    #[serde(default = "default_compress_after")]
    pub compress_after: Duration,
    /// Drop chunks older than this. Default `90d`.
    #[serde(default = "default_retention")]
    pub retention: Duration,
    /// The `messages_hourly` / `messages_daily` aggregates. Defaults: see the fields.
    #[serde(default)]
    pub aggregates: AggregateSettings,
    /// A streaming standby on another node (swarm target only): a second instance
    /// `<name>-2`, copied from the primary with `pg_basebackup` and kept current by
    /// streaming replication; `swarm/<name>-failover.sh` promotes it.
    #[serde(default)]
    pub standby: Option<PostgresStandby>,
}

/// The streaming standby of a PostgreSQL service (`[services.X.postgres.standby]`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresStandby {
    /// The role the standby replicates as (`REPLICATION`, no other right). Default
    /// `replicator`.
    #[serde(default = "default_replication_user")]
    #[schemars(pattern(text::SQL_IDENT))]
    pub user: String,
    /// The replication role's password.
    pub password: SecretRef,
    /// Which instance serves as the primary: false (default) `<name>`, true `<name>-2`.
    /// Set it to what the failover script printed after a failover: the next deploy
    /// then rebuilds the former primary as the standby of the promoted one.
    #[serde(default)]
    pub promoted: bool,
    /// WAL the primary keeps for a standby that is away (a node down, a restart), so it
    /// catches up without a new copy. Default `1GiB`.
    #[serde(default = "default_wal_keep")]
    pub wal_keep: ByteSize,
}

/// The second instance of a PostgreSQL service with a standby, beside `<name>`.
pub fn second_postgres(name: &str) -> String {
    format!("{name}-2")
}

fn default_replication_user() -> String {
    "replicator".into()
}

fn default_wal_keep() -> ByteSize {
    ByteSize(1 << 30)
}

impl PostgresSettings {
    /// The instance names of service `name`: the primary first, then the standby.
    pub fn serving_and_standby(&self, name: &str) -> Option<(String, String)> {
        let standby = self.standby.as_ref()?;
        let (first, second) = (name.to_string(), second_postgres(name));
        Some(if standby.promoted {
            (second, first)
        } else {
            (first, second)
        })
    }
}

/// The two message-count aggregates (continuous aggregates on TimescaleDB, materialized
/// views on plain PostgreSQL).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateSettings {
    /// Bucket width of `messages_hourly`. Default `1h`.
    #[serde(default = "default_hourly_bucket")]
    pub hourly_bucket: Duration,
    /// Bucket width of `messages_daily`. Default `1d`.
    #[serde(default = "default_daily_bucket")]
    pub daily_bucket: Duration,
    /// How often the refresh policy runs (TimescaleDB). Default `30m`.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: Duration,
    /// How far back a refresh recomputes (late and edited messages); at least three
    /// buckets are always covered. Default `7d`.
    #[serde(default = "default_refresh_window")]
    pub refresh_window: Duration,
}

impl Default for AggregateSettings {
    fn default() -> Self {
        Self {
            hourly_bucket: default_hourly_bucket(),
            daily_bucket: default_daily_bucket(),
            refresh_interval: default_refresh_interval(),
            refresh_window: default_refresh_window(),
        }
    }
}

fn default_hourly_bucket() -> Duration {
    Duration(3_600_000)
}
fn default_daily_bucket() -> Duration {
    Duration(86_400_000)
}
fn default_refresh_interval() -> Duration {
    Duration(1_800_000)
}
fn default_refresh_window() -> Duration {
    Duration(7 * 86_400_000)
}

fn default_database() -> String {
    "telegram".into()
}
fn default_superuser() -> String {
    "postgres".into()
}
fn default_max_connections() -> u32 {
    100
}
fn default_reserved_connections() -> u32 {
    3
}
fn default_shared_buffers() -> ByteSize {
    ByteSize(512 << 20)
}
fn default_effective_cache_size() -> ByteSize {
    ByteSize(1536 << 20)
}
fn default_maintenance_work_mem() -> ByteSize {
    ByteSize(128 << 20)
}
fn default_work_mem() -> ByteSize {
    ByteSize(4 << 20)
}
fn default_wal_buffers() -> ByteSize {
    ByteSize(16 << 20)
}
fn default_min_wal_size() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_max_wal_size() -> ByteSize {
    ByteSize(4 << 30)
}
fn default_checkpoint_completion_target() -> f64 {
    0.9
}
fn default_random_page_cost() -> f64 {
    1.1
}
fn default_effective_io_concurrency() -> u32 {
    200
}
fn default_statement_timeout() -> Duration {
    Duration(60_000)
}
fn default_chunk_interval() -> Duration {
    Duration(86_400_000)
}
fn default_compress_after() -> Duration {
    Duration(14 * 86_400_000)
}
fn default_retention() -> Duration {
    Duration(90 * 86_400_000)
}

/// PgBouncer pooling mode.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Session,
    /// Default: connections are shared per transaction; clients keep no session state.
    #[default]
    Transaction,
    Statement,
}

/// PgBouncer's own user (admin console or stats), not a database role.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    /// User name on the `pgbouncer` console database.
    #[schemars(pattern(text::SQL_IDENT))]
    pub user: String,
    pub password: SecretRef,
}

/// PgBouncer settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgbouncerSettings {
    /// The `postgres` service it pools.
    #[schemars(pattern(text::NAME))]
    pub upstream: String,
    /// Default `transaction`.
    #[serde(default)]
    pub pool_mode: PoolMode,
    /// Auth method for clients. Default: the upstream's `password_encryption`.
    #[serde(default)]
    pub auth_type: Option<PasswordEncryption>,
    /// Server connections per database/user pair. Default 20.
    #[serde(default = "default_pool_size")]
    #[schemars(range(min = 1, max = 10000))]
    pub default_pool_size: u32,
    /// Default 0.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub min_pool_size: u32,
    /// Extra connections when a pool is exhausted. Default 5.
    #[serde(default = "default_reserve_pool_size")]
    #[schemars(range(min = 0, max = 10000))]
    pub reserve_pool_size: u32,
    /// Default 100.
    #[serde(default = "default_max_client_conn")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_client_conn: u32,
    /// Upstream roles allowed through PgBouncer. Default: every role of the upstream.
    #[serde(default)]
    #[schemars(inner(pattern(text::SQL_IDENT)))]
    pub users: Option<Vec<String>>,
    /// Admin console user.
    pub admin: ConsoleUser,
    /// Stats console user (read-only SHOW commands; the pgbouncer exporter uses it).
    #[serde(default)]
    pub stats: Option<ConsoleUser>,
    /// Longest query PgBouncer lets run. Default `90s`.
    #[serde(default = "default_query_timeout")]
    pub query_timeout: Duration,
    /// Close idle server connections after. Default `600s`.
    #[serde(default = "default_server_idle_timeout")]
    pub server_idle_timeout: Duration,
    /// Protocol-level prepared statements PgBouncer tracks (PgBouncer >= 1.21). Default 0:
    /// clients must use unnamed statements.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100000))]
    pub max_prepared_statements: u32,
}

fn default_pool_size() -> u32 {
    20
}
fn default_reserve_pool_size() -> u32 {
    5
}
fn default_max_client_conn() -> u32 {
    100
}
fn default_query_timeout() -> Duration {
    Duration(90_000)
}
fn default_server_idle_timeout() -> Duration {
    Duration(600_000)
}

/// Redis persistence.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// Append-only file, fsync every second (default).
    #[default]
    Aof,
    /// Snapshots only.
    Rdb,
    /// Nothing on disk; no data volume is mounted.
    None,
}

/// Redis master or replica settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// The `redis` service this one replicates. Default: none (a master).
    #[serde(default)]
    #[schemars(pattern(text::NAME))]
    pub replica_of: Option<String>,
    /// The password clients and replicas use.
    pub password: SecretRef,
    /// Memory Redis may use before evicting; must leave headroom below `memory`.
    pub maxmemory: ByteSize,
    /// Default `volatile-lru` (dedup keys all carry a TTL).
    #[serde(default = "default_maxmemory_policy")]
    #[schemars(pattern(text::WORD))]
    pub maxmemory_policy: String,
    /// Default `aof`.
    #[serde(default)]
    pub persistence: Persistence,
}

fn default_maxmemory_policy() -> String {
    "volatile-lru".into()
}

/// Redis Sentinel settings; `count` sentinels are rendered as `<name>-1` .. `<name>-N`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentinelSettings {
    /// The `redis` master service watched.
    #[schemars(pattern(text::NAME))]
    pub monitors: String,
    /// Name of the monitored master group. Default `mymaster`.
    #[serde(default = "default_master_name")]
    #[schemars(pattern(text::NAME))]
    pub master_name: String,
    /// Number of sentinels. Default 3.
    #[serde(default = "default_sentinel_count")]
    #[schemars(range(min = 1, max = 9))]
    pub count: u32,
    /// Sentinels that must agree the master is down. Default 2.
    #[serde(default = "default_quorum")]
    #[schemars(range(min = 1, max = 9))]
    pub quorum: u32,
    /// Default `5000ms`.
    #[serde(default = "default_down_after")]
    pub down_after: Duration,
    /// Default `10000ms`.
    #[serde(default = "default_failover_timeout")]
    pub failover_timeout: Duration,
    /// Default 1.
    #[serde(default = "default_parallel_syncs")]
    #[schemars(range(min = 1, max = 100))]
    pub parallel_syncs: u32,
}

fn default_master_name() -> String {
    "mymaster".into()
}
fn default_sentinel_count() -> u32 {
    3
}
fn default_quorum() -> u32 {
    2
}
fn default_down_after() -> Duration {
    Duration(5_000)
}
fn default_failover_timeout() -> Duration {
    Duration(10_000)
}
fn default_parallel_syncs() -> u32 {
    1
}

/// A RabbitMQ queue bound to the stack's exchange.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    #[schemars(pattern(text::AMQP_NAME))]
    pub name: String,
    /// Binding key on the topic exchange, e.g. `telegram.channel.#`.
    #[schemars(pattern(text::AMQP_PATTERN))]
    pub binding: String,
    /// Rejected or expired messages go to the dead-letter queue. Default true.
    #[serde(default = "default_true")]
    pub dead_letter: bool,
    /// Messages older than this expire (to the dead-letter queue). Default: never.
    #[serde(default)]
    pub message_ttl: Option<Duration>,
    /// `quorum` or `classic` (default).
    #[serde(default = "default_queue_type")]
    #[schemars(pattern(text::WORD))]
    pub queue_type: String,
}

fn default_true() -> bool {
    true
}
fn default_queue_type() -> String {
    "classic".into()
}

/// A RabbitMQ user with permissions on the stack's vhost.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokerUser {
    pub password: SecretRef,
    /// Management tags, e.g. `["administrator"]`. Default none.
    #[serde(default)]
    #[schemars(inner(pattern(text::WORD)))]
    pub tags: Vec<String>,
    /// Regex of resources the user may configure. Default `^$` (none).
    #[serde(default = "default_no_permission")]
    #[schemars(pattern(text::TEXT))]
    pub configure: String,
    /// Default `.*`.
    #[serde(default = "default_all_permission")]
    #[schemars(pattern(text::TEXT))]
    pub write: String,
    /// Default `.*`.
    #[serde(default = "default_all_permission")]
    #[schemars(pattern(text::TEXT))]
    pub read: String,
}

fn default_no_permission() -> String {
    "^$".into()
}
fn default_all_permission() -> String {
    ".*".into()
}

/// RabbitMQ settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RabbitmqSettings {
    /// Default `telegram`.
    #[serde(default = "default_vhost")]
    #[schemars(pattern(text::AMQP_NAME))]
    pub vhost: String,
    /// Topic exchange messages are published to. Default `telegram.messages`.
    #[serde(default = "default_exchange")]
    #[schemars(pattern(text::AMQP_NAME))]
    pub exchange: String,
    /// Routing key prefix; the key is `<prefix>.<channel_id>`. Default `telegram.channel`.
    #[serde(default = "default_routing_prefix")]
    #[schemars(pattern(text::AMQP_NAME))]
    pub routing_key_prefix: String,
    /// Dead-letter exchange. Default `telegram.dlx`.
    #[serde(default = "default_dlx")]
    #[schemars(pattern(text::AMQP_NAME))]
    pub dead_letter_exchange: String,
    /// Dead-letter queue. Default `telegram.dead-letter`.
    #[serde(default = "default_dlq")]
    #[schemars(pattern(text::AMQP_NAME))]
    pub dead_letter_queue: String,
    /// Queues bound to the exchange.
    #[serde(default)]
    pub queues: Vec<Queue>,
    /// Users, by name.
    #[serde(default)]
    pub users: BTreeMap<String, BrokerUser>,
    /// Management UI/API port. Default 15672.
    #[serde(default = "default_management_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub management_port: u16,
    /// Host port of the management UI. Default: not published.
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub management_publish: Option<u16>,
    /// Port of the built-in Prometheus plugin. Default 15692.
    #[serde(default = "default_rabbit_metrics_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub metrics_port: u16,
    /// Relative memory high watermark. Default 0.6.
    #[serde(default = "default_watermark")]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub memory_high_watermark: f64,
    /// Publishers block below this free disk. Default `2GiB`.
    #[serde(default = "default_disk_free_limit")]
    pub disk_free_limit: ByteSize,
    /// Cluster members: 1 (default) is one node; 3 or more is a cluster whose members
    /// are containers `<name>-1` .. `<name>-<n>` (swarm target), one per node with
    /// `placement.spread`, joined by classic-config peer discovery. Quorum queues then
    /// keep a copy on every member.
    #[serde(default = "default_members")]
    #[schemars(range(min = 1, max = 9))]
    pub members: u32,
    /// The Erlang cookie the members of a cluster share (required with `members` > 1):
    /// Erlang distribution and the CLI authenticate with it.
    #[serde(default)]
    pub cookie: Option<SecretRef>,
}

fn default_members() -> u32 {
    1
}

impl RabbitmqSettings {
    /// Several members: a cluster, each member a container of its own.
    pub fn is_cluster(&self) -> bool {
        self.members > 1
    }
}

pub(crate) fn default_vhost() -> String {
    "telegram".into()
}
fn default_exchange() -> String {
    "telegram.messages".into()
}
fn default_routing_prefix() -> String {
    "telegram.channel".into()
}
fn default_dlx() -> String {
    "telegram.dlx".into()
}
fn default_dlq() -> String {
    "telegram.dead-letter".into()
}
fn default_management_port() -> u16 {
    15672
}
fn default_rabbit_metrics_port() -> u16 {
    15692
}
fn default_watermark() -> f64 {
    0.6
}
fn default_disk_free_limit() -> ByteSize {
    ByteSize(2 << 30)
}

/// The MTProto gateway (ingestion).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Telegram API id (public, from my.telegram.org).
    #[schemars(range(min = 1, max = 2147483647))]
    pub api_id: i64,
    /// Telegram API hash.
    pub api_hash: SecretRef,
    /// The session file holding the Telegram login. Default
    /// `<deploy.state_dir>/<service>/telegram.session` for a native gateway; in a
    /// container `/var/lib/tg-gateway/telegram.session` (the directory the image owns,
    /// where the volume `<service>-session` is mounted).
    #[serde(default)]
    #[schemars(pattern(text::PATH))]
    pub session_file: Option<String>,
    /// The service it stores through (pgbouncer or postgres).
    #[schemars(pattern(text::NAME))]
    pub database: String,
    /// Database role it logs in as.
    #[schemars(pattern(text::SQL_IDENT))]
    pub db_role: String,
    /// The redis (or sentinel) service used for dedup.
    #[schemars(pattern(text::NAME))]
    pub redis: String,
    /// The rabbitmq service it publishes to.
    #[schemars(pattern(text::NAME))]
    pub broker: String,
    /// Broker user it publishes as.
    #[schemars(pattern(text::ID))]
    pub broker_user: String,
    /// How long a dedup key lives. Default `7d`.
    #[serde(default = "default_dedup_ttl")]
    pub dedup_ttl: Duration,
    /// Messages per database batch. Default 500.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch_size: u32,
    /// Longest wait before a partial batch is flushed. Default `50ms`.
    #[serde(default = "default_batch_delay")]
    pub batch_delay: Duration,
    /// History re-check interval (update streams drop messages). Default `5m`.
    #[serde(default = "default_reconcile_interval")]
    pub reconcile_interval: Duration,
    /// Update buffer size (overflow is dropped by the client library). Default 10000.
    #[serde(default = "default_update_buffer")]
    #[schemars(range(min = 1, max = 1000000))]
    pub update_buffer: u32,
}

fn default_dedup_ttl() -> Duration {
    Duration(7 * 86_400_000)
}
fn default_batch_size() -> u32 {
    500
}
fn default_batch_delay() -> Duration {
    Duration(50)
}
fn default_reconcile_interval() -> Duration {
    Duration(300_000)
}
fn default_update_buffer() -> u32 {
    10_000
}

/// The REST API.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// The key every route but `/health` and `/metrics` requires in `X-API-Key`.
    pub api_key: SecretRef,
    /// The service it reads through (pgbouncer or postgres).
    #[schemars(pattern(text::NAME))]
    pub database: String,
    /// Database role it logs in as.
    #[schemars(pattern(text::SQL_IDENT))]
    pub db_role: String,
    /// Longest request. Default `30s`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// Largest `limit` of a page. Default 1000.
    #[serde(default = "default_max_page")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_page_size: u32,
    /// Default page size. Default 100.
    #[serde(default = "default_page")]
    #[schemars(range(min = 1, max = 10000))]
    pub default_page_size: u32,
    /// A Redis cache of each channel's newest messages for the newest pages of
    /// `GET /api/messages?channel=...`; written by the gateway that stores into this API's
    /// database, read here, and bypassed whenever it might be stale.
    #[serde(default)]
    pub cache: Option<ReadCache>,
}

/// The read cache of an API (`[services.<api>.api.cache]`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadCache {
    /// Serve the newest pages from the cache. Default `false`: measured in BENCHMARKS.md
    /// ("Read path"), it takes 60-75 % of the reads off PostgreSQL but answers no faster
    /// at 200-1,000 requests/s; turn it on when the database is the bottleneck.
    #[serde(default)]
    pub enabled: bool,
    /// The Redis master holding the cache (the gateway's dedup Redis is fine).
    #[schemars(pattern(text::NAME))]
    pub redis: String,
    /// Newest messages kept per channel (deleted ones included). Default 200.
    #[serde(default = "default_cache_recent")]
    #[schemars(range(min = 1, max = 10000))]
    pub recent: u32,
    /// How long a channel's cache lives after its last write. Default `1h`.
    #[serde(default = "default_cache_ttl")]
    pub ttl: Duration,
    /// Most memory the cache may take in that Redis; a message larger than its share
    /// (memory / (channels x recent)) is read from the database. Default `64MiB`.
    #[serde(default = "default_cache_memory")]
    pub memory: ByteSize,
}

impl ReadCache {
    /// Bytes a cached message costs Redis beyond its JSON (sorted-set and hash entries).
    pub const ENTRY_OVERHEAD: u64 = 128;

    /// Longest JSON of one cached message: the budget shared by `recent` entries of each
    /// of `channels` channels, less their overhead.
    pub fn entry_cap(&self, channels: usize) -> u64 {
        let entries = (channels.max(1) as u64) * u64::from(self.recent.max(1));
        (self.memory.0 / entries).saturating_sub(Self::ENTRY_OVERHEAD)
    }
}

fn default_cache_recent() -> u32 {
    200
}
fn default_cache_ttl() -> Duration {
    Duration(3_600_000)
}
fn default_cache_memory() -> ByteSize {
    ByteSize(64 * 1024 * 1024)
}

fn default_request_timeout() -> Duration {
    Duration(30_000)
}
fn default_max_page() -> u32 {
    1000
}
fn default_page() -> u32 {
    100
}

/// Prometheus settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSettings {
    /// Default `15s`.
    #[serde(default = "default_scrape_interval")]
    pub scrape_interval: Duration,
    /// Default `15s`.
    #[serde(default = "default_scrape_interval")]
    pub evaluation_interval: Duration,
    /// Default `30d`.
    #[serde(default = "default_retention_time")]
    pub retention: Duration,
}

fn default_scrape_interval() -> Duration {
    Duration(15_000)
}
fn default_retention_time() -> Duration {
    Duration(30 * 86_400_000)
}

/// Grafana settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrafanaSettings {
    /// Default `admin`.
    #[serde(default = "default_admin_user")]
    #[schemars(pattern(text::SQL_IDENT))]
    pub admin_user: String,
    pub admin_password: SecretRef,
    /// The prometheus service queried.
    #[schemars(pattern(text::NAME))]
    pub prometheus: String,
    /// The service the SQL datasource connects through (pgbouncer or postgres).
    #[schemars(pattern(text::NAME))]
    pub database: String,
    /// Read-only database role of the SQL datasource.
    #[schemars(pattern(text::SQL_IDENT))]
    pub db_role: String,
    /// The redis service of the Redis datasource.
    #[serde(default)]
    #[schemars(pattern(text::NAME))]
    pub redis: Option<String>,
    /// Datasource query timeout. Default `60s`.
    #[serde(default = "default_grafana_timeout")]
    pub query_timeout: Duration,
}

fn default_admin_user() -> String {
    "admin".into()
}
fn default_grafana_timeout() -> Duration {
    Duration(60_000)
}

/// Exporter settings: what it watches.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExporterSettings {
    /// The service it exports metrics of.
    #[schemars(pattern(text::NAME))]
    pub target: String,
    /// Role (postgres) or console user (pgbouncer) it logs in as.
    #[serde(default)]
    #[schemars(pattern(text::SQL_IDENT))]
    pub user: Option<String>,
}

/// A Telegram channel.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Telegram's numeric channel id (as stored; routing key suffix).
    pub id: i64,
    /// Public username, without `@`.
    #[serde(default)]
    #[schemars(pattern(text::TG_USERNAME))]
    pub username: Option<String>,
    /// Human title.
    #[schemars(pattern(text::TEXT))]
    pub title: String,
    /// Ingest this channel. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// A finding the operator accepts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// Rule ID, e.g. `TG205`.
    #[schemars(pattern(text::RULE_ID))]
    pub rule: String,
    /// Limit to findings at this model path prefix, e.g. `services.grafana`. Default: all.
    #[serde(default)]
    #[schemars(pattern(text::TEXT))]
    pub path: Option<String>,
    /// Why this is acceptable (required).
    #[schemars(pattern(text::TEXT))]
    pub reason: String,
}

impl PostgresSettings {
    /// Settings the migrations cannot honour, with the key each is about: data dropped
    /// before it is compressed, a refresh window reaching past retention (it would erase
    /// aggregated counts), zero-length buckets. Rule TG405 reports them; the SQL renderer
    /// refuses them too.
    pub fn lifecycle_problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let a = &self.aggregates;
        if self.compress_after.millis() >= self.retention.millis() {
            problems.push((
                "compress_after",
                format!(
                    "compress_after ({}) must be shorter than retention ({}): chunks would be dropped before they are compressed",
                    self.compress_after, self.retention
                ),
            ));
        }
        if self.chunk_interval.millis() > self.compress_after.millis() {
            problems.push((
                "chunk_interval",
                format!(
                    "chunk_interval ({}) must not exceed compress_after ({})",
                    self.chunk_interval, self.compress_after
                ),
            ));
        }
        for (key, bucket) in [
            ("aggregates.hourly_bucket", a.hourly_bucket),
            ("aggregates.daily_bucket", a.daily_bucket),
        ] {
            let window = a.refresh_window.millis().max(bucket.millis() * 3);
            if window >= self.retention.millis() {
                problems.push((
                    "retention",
                    format!(
                        "{key} refresh window ({}) must be shorter than retention ({}): a refresh after retention would erase aggregated counts",
                        Duration(window),
                        self.retention
                    ),
                ));
            }
            if bucket.millis() == 0 {
                problems.push((key, format!("{key} must be longer than 0")));
            }
        }
        if a.refresh_interval.millis() == 0 {
            problems.push((
                "aggregates.refresh_interval",
                "aggregates.refresh_interval must be longer than 0".into(),
            ));
        }
        problems
    }
}
