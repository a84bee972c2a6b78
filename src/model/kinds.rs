//! The kind registry: every fact about a service kind in one entry (its name, settings
//! table, where it may run, its budget layer, its metrics endpoint and catalog). Render,
//! check and the gateway read kinds only through [`Kind::spec`], so adding a kind means
//! one entry here plus its own modules (settings, renderer, checker), templates and
//! fixtures.

use super::{Deploy, Kind, Service};
use crate::catalog::{self, Metric};

/// Which layer of the budget table a kind belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Data,
    Monitoring,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Data => "data",
            Layer::Monitoring => "monitoring",
        }
    }
}

/// The settings table a kind reads (`[services.NAME.<table>]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingsTable {
    pub table: &'static str,
    /// Whether the service must have the table (otherwise every setting has a default).
    pub required: bool,
}

/// Where a kind serves its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsPort {
    /// The service's main `port`.
    Main,
    /// RabbitMQ's separate Prometheus plugin port (`rabbitmq.metrics_port`).
    RabbitmqPlugin,
}

/// The metrics endpoint of a kind and the families it exposes there.
#[derive(Debug, Clone, Copy)]
pub struct MetricsSpec {
    pub port: MetricsPort,
    pub path: &'static str,
    /// The families on the endpoint. A kind without a catalog (Prometheus itself) serves
    /// metrics but is not scraped: no query may rely on them.
    pub catalog: Option<fn() -> &'static [Metric]>,
}

/// Everything tgstack knows about one kind.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    pub kind: Kind,
    /// The name in stack.toml (`kind = "..."`).
    pub name: &'static str,
    pub settings: Option<SettingsTable>,
    /// Deploy modes the kind supports. Native data services run under the
    /// distribution's own units with the rendered configs.
    pub deploys: &'static [Deploy],
    pub layer: Layer,
    pub metrics: Option<MetricsSpec>,
    /// The `tg-gateway` subcommand a native unit of this kind runs; kinds with one get a
    /// systemd unit rendered by tgstack.
    pub gateway_subcommand: Option<&'static str>,
}

const BOTH: &[Deploy] = &[Deploy::Container, Deploy::Native];
const CONTAINER: &[Deploy] = &[Deploy::Container];

const fn settings(table: &'static str, required: bool) -> Option<SettingsTable> {
    Some(SettingsTable { table, required })
}

const fn metrics(path: &'static str, catalog: fn() -> &'static [Metric]) -> Option<MetricsSpec> {
    Some(MetricsSpec {
        port: MetricsPort::Main,
        path,
        catalog: Some(catalog),
    })
}

/// The registry, one entry per kind, in declaration order of [`Kind`].
pub static KINDS: &[KindSpec] = &[
    KindSpec {
        kind: Kind::Postgres,
        name: "postgres",
        settings: settings("postgres", true),
        deploys: BOTH,
        layer: Layer::Data,
        metrics: None,
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::Pgbouncer,
        name: "pgbouncer",
        settings: settings("pgbouncer", true),
        deploys: BOTH,
        layer: Layer::Data,
        metrics: None,
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::Redis,
        name: "redis",
        settings: settings("redis", true),
        deploys: BOTH,
        layer: Layer::Data,
        metrics: None,
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::Sentinel,
        name: "sentinel",
        settings: settings("sentinel", true),
        deploys: BOTH,
        layer: Layer::Data,
        metrics: None,
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::Rabbitmq,
        name: "rabbitmq",
        settings: settings("rabbitmq", false),
        deploys: CONTAINER,
        layer: Layer::Data,
        // Per-object, so queue families carry `vhost` and `queue` labels.
        metrics: Some(MetricsSpec {
            port: MetricsPort::RabbitmqPlugin,
            path: "/metrics/per-object",
            catalog: Some(|| catalog::rabbitmq::METRICS),
        }),
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::Gateway,
        name: "gateway",
        settings: settings("gateway", true),
        deploys: BOTH,
        layer: Layer::Data,
        metrics: metrics("/metrics", || catalog::gateway::GATEWAY),
        gateway_subcommand: Some("run"),
    },
    KindSpec {
        kind: Kind::Api,
        name: "api",
        settings: settings("api", true),
        deploys: BOTH,
        layer: Layer::Data,
        metrics: metrics("/metrics", || catalog::gateway::API),
        gateway_subcommand: Some("api"),
    },
    KindSpec {
        kind: Kind::Prometheus,
        name: "prometheus",
        settings: settings("prometheus", false),
        deploys: CONTAINER,
        layer: Layer::Monitoring,
        metrics: Some(MetricsSpec {
            port: MetricsPort::Main,
            path: "/metrics",
            catalog: None,
        }),
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::Grafana,
        name: "grafana",
        settings: settings("grafana", true),
        deploys: CONTAINER,
        layer: Layer::Monitoring,
        metrics: None,
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::PostgresExporter,
        name: "postgres-exporter",
        settings: settings("exporter", true),
        deploys: BOTH,
        layer: Layer::Monitoring,
        metrics: metrics("/metrics", catalog::postgres_exporter::all),
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::RedisExporter,
        name: "redis-exporter",
        settings: settings("exporter", true),
        deploys: BOTH,
        layer: Layer::Monitoring,
        metrics: metrics("/metrics", || catalog::redis_exporter::METRICS),
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::PgbouncerExporter,
        name: "pgbouncer-exporter",
        settings: settings("exporter", true),
        deploys: BOTH,
        layer: Layer::Monitoring,
        metrics: metrics("/metrics", || catalog::pgbouncer_exporter::METRICS),
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::NodeExporter,
        name: "node-exporter",
        settings: None,
        deploys: CONTAINER,
        layer: Layer::Monitoring,
        metrics: metrics("/metrics", || catalog::node_exporter::METRICS),
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::Cadvisor,
        name: "cadvisor",
        settings: None,
        deploys: CONTAINER,
        layer: Layer::Monitoring,
        metrics: metrics("/metrics", || catalog::cadvisor::METRICS),
        gateway_subcommand: None,
    },
    KindSpec {
        kind: Kind::Nginx,
        name: "nginx",
        settings: settings("nginx", true),
        deploys: BOTH,
        layer: Layer::Data,
        metrics: None,
        gateway_subcommand: None,
    },
    // Its metrics endpoint and families are declared per service (`app.metrics`).
    KindSpec {
        kind: Kind::App,
        name: "app",
        settings: settings("app", false),
        deploys: BOTH,
        layer: Layer::Data,
        metrics: None,
        gateway_subcommand: None,
    },
];

impl Kind {
    /// This kind's registry entry.
    pub fn spec(self) -> &'static KindSpec {
        // The registry lists every kind in declaration order (a unit test pins it).
        &KINDS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The layer the budget table groups the service in.
    pub fn layer(self) -> &'static str {
        self.spec().layer.as_str()
    }

    /// The metric families Prometheus scrapes from a process of this kind; empty for
    /// kinds that are not scraped (their metrics come from an exporter).
    pub fn metrics(self) -> &'static [Metric] {
        self.spec()
            .metrics
            .and_then(|m| m.catalog)
            .map_or(&[], |catalog| catalog())
    }
}

/// Where a service serves metrics: port and path.
pub fn metrics_endpoint(service: &Service) -> Option<(u16, &str)> {
    if let Some(metrics) = service.app.as_ref().and_then(|a| a.metrics.as_ref()) {
        return Some((service.port, metrics.path.as_str()));
    }
    let spec = service.kind.spec().metrics?;
    let port = match spec.port {
        MetricsPort::Main => service.port,
        MetricsPort::RabbitmqPlugin => service.rabbitmq.as_ref()?.metrics_port,
    };
    Some((port, spec.path))
}

/// Where Prometheus scrapes a service: its metrics endpoint, for kinds with a catalog
/// (an app's is the families it declares).
pub fn scrape_endpoint(service: &Service) -> Option<(u16, &str)> {
    if service.kind != Kind::App {
        service.kind.spec().metrics?.catalog?;
    }
    metrics_endpoint(service)
}

/// The families Prometheus scrapes from `service`: its kind's catalog, or what an app
/// declares.
pub fn service_metrics(service: &Service) -> &'static [Metric] {
    match service.kind {
        Kind::App => super::app::catalog(service),
        kind => kind.metrics(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_every_kind_in_declaration_order() {
        for (index, spec) in KINDS.iter().enumerate() {
            assert_eq!(spec.kind as usize, index, "{}", spec.name);
            let parsed: Kind = serde_json::from_value(serde_json::json!(spec.name)).unwrap();
            assert_eq!(
                parsed, spec.kind,
                "the registry name is the stack.toml spelling"
            );
        }
        let schema = serde_json::to_value(schemars::schema_for!(Kind)).unwrap();
        let names = schema["enum"].as_array().map_or(0, Vec::len)
            + schema["oneOf"].as_array().map_or(0, Vec::len);
        assert_eq!(names, KINDS.len(), "one registry entry per kind");
    }
}
