//! The monitoring part of the model: alert rules and the settings they share. Typed alert
//! kinds name the service they watch; the renderer builds their PromQL from the metric
//! catalog, so an alert can only be declared where an exporter provides its metrics.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::Duration;
use super::{Deploy, Service, Stack};

/// Settings every alert shares.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    /// Where the rendered tree is published (its URL as a browser opens it): each alert
    /// links its rendered runbook, `<runbook_url>/runbooks/<Alert>.md`, unless it sets its
    /// own `runbook`. Default: this project's rendered reference tree.
    #[serde(default = "default_runbook_url")]
    #[schemars(pattern(crate::model::text::TEXT))]
    pub runbook_url: String,
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        Self {
            runbook_url: default_runbook_url(),
        }
    }
}

fn default_runbook_url() -> String {
    "https://github.com/tgstack/tgstack/blob/main/generated".into()
}

/// How urgent an alert is; rendered as the `severity` label and the rule file it lands in.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    Critical,
    Warning,
    Info,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Critical => "critical",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Info => "info",
        }
    }
}

/// What an alert watches. Each typed kind builds its expression from catalog metrics of
/// the exporter (or service) that provides them; `custom` takes a user expression.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// `service` (any scraped service) cannot be scraped: `up == 0`.
    ServiceDown,
    /// The gateway `service` stores messages more than `threshold` seconds after Telegram
    /// sent them (per channel).
    IngestionLag,
    /// The redis `service` does not answer its redis-exporter.
    RedisDown,
    /// More than `threshold` clients (default 0) wait for a server connection of the
    /// pgbouncer `service`; needs a pgbouncer-exporter.
    PoolExhausted,
    /// More than `threshold` messages are ready in a queue of the rabbitmq `service`
    /// (only `queue` when set).
    QueueBacklog,
    /// The buffer-cache (postgres `service`, via postgres-exporter) or keyspace (redis
    /// `service`, via redis-exporter) hit ratio is below `threshold` (0..1) over `window`.
    CacheHitRate,
    /// Less than `threshold` (0..1) of `mountpoint` is free; `service` names the
    /// node-exporter (default: the only one).
    DiskSpace,
    /// A container uses more than `threshold` (0..1) of its memory limit; `service` names
    /// the cadvisor (default: the only one).
    MemoryHigh,
    /// `expr` as written; `summary` and `description` are required.
    Custom,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ServiceDown => "service-down",
            AlertKind::IngestionLag => "ingestion-lag",
            AlertKind::RedisDown => "redis-down",
            AlertKind::PoolExhausted => "pool-exhausted",
            AlertKind::QueueBacklog => "queue-backlog",
            AlertKind::CacheHitRate => "cache-hit-rate",
            AlertKind::DiskSpace => "disk-space",
            AlertKind::MemoryHigh => "memory-high",
            AlertKind::Custom => "custom",
        }
    }
}

/// One alert rule (`[[alerts]]`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Alert name, `UpperCamelCase` (e.g. `GatewayDown`); unique.
    // Free text here: TG502 checks the alert-name syntax with a message of its own.
    #[schemars(pattern(crate::model::text::TEXT))]
    pub name: String,
    /// What the alert watches.
    pub kind: AlertKind,
    /// `critical`, `warning` or `info`.
    pub severity: AlertSeverity,
    /// How long the condition must hold before the alert fires. Default `0s` (at once).
    #[serde(rename = "for", default)]
    pub for_: Option<Duration>,
    /// The service watched (see the kind). Not used by `custom`.
    #[serde(default)]
    #[schemars(pattern(crate::model::text::NAME))]
    pub service: Option<String>,
    /// Limit, in the kind's unit: seconds (`ingestion-lag`), clients (`pool-exhausted`),
    /// messages (`queue-backlog`), a ratio 0..1 (`cache-hit-rate`, `disk-space`,
    /// `memory-high`). Default per kind.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Rate window of `cache-hit-rate`. Default `5m`.
    #[serde(default)]
    pub window: Option<Duration>,
    /// `queue-backlog`: one queue. Default: every queue of the stack's vhost.
    #[serde(default)]
    #[schemars(pattern(crate::model::text::AMQP_NAME))]
    pub queue: Option<String>,
    /// `disk-space`: the mount point. Default `/`.
    #[serde(default)]
    #[schemars(pattern(crate::model::text::PATH))]
    pub mountpoint: Option<String>,
    /// `custom` only: the PromQL expression.
    #[serde(default)]
    #[schemars(pattern(crate::model::text::TEXT))]
    pub expr: Option<String>,
    /// Summary annotation (Prometheus template). Typed kinds generate one.
    #[serde(default)]
    #[schemars(pattern(crate::model::text::TEXT))]
    pub summary: Option<String>,
    /// Description annotation (Prometheus template). Typed kinds generate one.
    #[serde(default)]
    #[schemars(pattern(crate::model::text::TEXT))]
    pub description: Option<String>,
    /// Runbook link. Default `<monitoring.runbook_url>/runbooks/<name>.md`, the page tgstack
    /// renders for the alert.
    #[serde(default)]
    #[schemars(pattern(crate::model::text::TEXT))]
    pub runbook: Option<String>,
    /// Extra labels of the alert (routing keys such as `team`).
    #[serde(default)]
    #[schemars(schema_with = "crate::model::text::text_map")]
    pub labels: BTreeMap<String, String>,
    /// `custom` only: a firing case for the rendered promtool unit test.
    #[serde(default)]
    pub test: Option<AlertTest>,
}

/// A firing case of a custom alert: input series, and the alert expected after them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertTest {
    /// Input series in promtool's notation.
    pub input: Vec<TestSeries>,
    /// When to evaluate. Default: `for` plus two evaluation intervals.
    #[serde(default)]
    pub eval_time: Option<Duration>,
    /// Labels the firing alert carries, besides `alertname`, `severity` and `labels`.
    #[serde(default)]
    #[schemars(schema_with = "crate::model::text::text_map")]
    pub labels: BTreeMap<String, String>,
    /// The expanded `summary` and `description` expected.
    #[schemars(pattern(crate::model::text::TEXT))]
    pub summary: String,
    #[schemars(pattern(crate::model::text::TEXT))]
    pub description: String,
}

/// One input series of a promtool unit test.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSeries {
    /// Series selector with labels, e.g. `up{job="api"}`.
    #[schemars(pattern(crate::model::text::TEXT))]
    pub series: String,
    /// Expanding notation, e.g. `0x20` or `1+1x10`.
    #[schemars(pattern(crate::model::text::TEXT))]
    pub values: String,
}

impl Stack {
    /// The address a service's process listens on: `0.0.0.0` inside a container (the
    /// port is only reachable on its networks), `listen` (default `127.0.0.1`) on the host.
    pub fn listen_address(&self, service: &Service) -> String {
        match service.deploy {
            Deploy::Container => "0.0.0.0".into(),
            Deploy::Native => service.listen.clone().unwrap_or_else(|| "127.0.0.1".into()),
        }
    }
}

/// Whether an address is loopback-only (containers cannot reach it through the host).
pub fn is_loopback(address: &str) -> bool {
    address == "localhost"
        || address == "::1"
        || address
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}
