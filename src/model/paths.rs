//! Where each rendered file lies in the tree (relative to `generated/`). The renderers
//! write there and the rules read there, so a path is spelled once: a checker can never
//! look for a file under a name the renderer does not use.

use super::{AlertSeverity, PostgresVariant};

/// The compose file of the whole stack.
pub const COMPOSE: &str = "docker-compose.yml";
/// The stack file of the swarm target, instead of the compose file.
pub const SWARM_STACK: &str = "swarm/stack.yml";

/// The Swarm service (after `<stack>_`) of the job deploy.sh runs for RabbitMQ cluster
/// `service`: spelled once, for the renderer and for the rule that checks name lengths.
pub fn swarm_members_job(service: &str) -> String {
    format!("{service}-members")
}

/// The state directory the tg-gateway image creates for its user (gateway/Dockerfile):
/// a swarm gateway's session volume must be mounted there to be writable.
pub const GATEWAY_IMAGE_STATE_DIR: &str = "/var/lib/tg-gateway";

/// Where a swarm mounts secret `id` for a program told its path (`*_FILE`, `$__file{}`).
pub fn swarm_secret(id: &str) -> String {
    format!("/run/secrets/{id}")
}
/// Every secret variable, with an empty value (operators copy it).
pub const ENV_EXAMPLE: &str = ".env.example";
/// The effective model, after overlays.
pub const EFFECTIVE_MODEL: &str = "model/stack.toml";
/// Every file of the tree.
pub const MANIFEST: &str = "MANIFEST";
/// The users of every native unit.
pub const SYSUSERS: &str = "systemd/tgstack.sysusers.conf";
/// Alert rule files, relative to prometheus.yml.
pub const PROMETHEUS_RULES_DIR: &str = "rules";
/// promtool unit tests of the alerts, relative to prometheus.yml.
pub const PROMETHEUS_TESTS: &str = "tests/alerts.test.yml";

pub fn postgresql_conf(service: &str) -> String {
    format!("{service}/postgresql.conf")
}
pub fn pg_hba_conf(service: &str) -> String {
    format!("{service}/pg_hba.conf")
}
pub fn roles_sql(service: &str) -> String {
    format!("{service}/roles.sql")
}
/// The entrypoint of a PostgreSQL with a standby: copies, rebuilds or promotes the
/// instance as its role in the model says, then runs the image's own entrypoint.
pub fn postgres_entrypoint(service: &str) -> String {
    format!("{service}/entrypoint.sh")
}
/// Where the PostgreSQL images keep their data directory (`PGDATA`): the volume's
/// mount point, and the entrypoint's default.
pub const POSTGRES_DATA: &str = "/var/lib/postgresql/data";
/// The file the entrypoint keeps in the data directory while it copies its peer: the
/// healthcheck stays green while it exists.
pub const POSTGRES_COPYING_MARKER: &str = ".tgstack-copying";
/// The swarm failover script of PostgreSQL service `service`.
pub fn swarm_failover(service: &str) -> String {
    format!("swarm/{service}-failover.sh")
}
/// Where the failover script finds the files the promoted model renders differently
/// (PgBouncer's ini pointing at the promoted instance): `<dir>/<path in the tree>`.
pub fn swarm_failover_dir(service: &str) -> String {
    format!("swarm/{service}-failover")
}
/// Directory name of a migration variant below `<service>/sql/`.
pub fn variant_dir(variant: PostgresVariant) -> &'static str {
    match variant {
        PostgresVariant::Timescaledb => "timescaledb",
        PostgresVariant::Plain => "plain",
    }
}
/// The directory of one migration variant of a postgres service.
pub fn migrations_dir(service: &str, variant: PostgresVariant) -> String {
    format!("{service}/sql/{}", variant_dir(variant))
}
/// One migration file of a postgres service.
pub fn migration(service: &str, variant: PostgresVariant, stem: &str) -> String {
    format!("{}/{stem}.sql", migrations_dir(service, variant))
}
pub fn pgbouncer_ini(service: &str) -> String {
    format!("{service}/pgbouncer.ini")
}
pub fn redis_conf(service: &str) -> String {
    format!("{service}/redis.conf")
}
/// One Sentinel's config: `<service>/<instance>.conf`.
pub fn sentinel_conf(service: &str, instance: &str) -> String {
    format!("{service}/{instance}.conf")
}
pub fn rabbitmq_conf(service: &str) -> String {
    format!("{service}/rabbitmq.conf")
}
pub fn rabbitmq_plugins(service: &str) -> String {
    format!("{service}/enabled_plugins")
}
pub fn rabbitmq_definitions(service: &str) -> String {
    format!("{service}/definitions.json")
}
pub fn prometheus_yml(service: &str) -> String {
    format!("{service}/prometheus.yml")
}
/// A rule file as prometheus.yml names it: `rules/<severity>.yml`.
pub fn prometheus_rule_file(severity: AlertSeverity) -> String {
    format!("{PROMETHEUS_RULES_DIR}/{}.yml", severity.as_str())
}
/// A file of the Prometheus service's directory (`rules/...`, `tests/...`).
pub fn prometheus_file(service: &str, relative: &str) -> String {
    format!("{service}/{relative}")
}
pub fn grafana_datasources(service: &str) -> String {
    format!("{service}/provisioning/datasources/datasources.yml")
}
/// The dashboard provider's directory.
pub fn grafana_dashboard_provisioning_dir(service: &str) -> String {
    format!("{service}/provisioning/dashboards")
}
pub fn grafana_dashboard_provider(service: &str) -> String {
    format!(
        "{}/dashboards.yml",
        grafana_dashboard_provisioning_dir(service)
    )
}
pub fn grafana_dashboard(service: &str, uid: &str) -> String {
    format!("{service}/dashboards/{uid}.json")
}
pub fn nginx_conf(service: &str) -> String {
    format!("{service}/nginx.conf")
}
/// A native service's systemd unit.
pub fn unit(service: &str) -> String {
    format!("systemd/{service}.service")
}

/// The runbook page of an alert.
pub fn runbook(alert: &str) -> String {
    format!("runbooks/{alert}.md")
}

/// The runbook of moving the legacy history in and cutting over (`tg-gateway import-legacy`).
pub fn cutover_runbook() -> String {
    "runbooks/cutover.md".into()
}

/// The index of the runbooks.
pub fn runbook_index() -> String {
    "runbooks/README.md".into()
}
