//! Scrape topology: which services expose metrics, and where the Prometheus of the stack
//! reaches them.

use serde::Serialize;

use crate::model::{Deploy, Kind, Service, Stack};

/// One Prometheus scrape job: a model service with a metrics endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeJob {
    /// Job name: the service name.
    pub job: String,
    pub kind: Kind,
    pub metrics_path: &'static str,
    /// `host:port` as the Prometheus process reaches it.
    pub target: String,
}

/// The port and path a service exposes metrics on, if any. RabbitMQ is scraped on
/// `/metrics/per-object` so queue families carry `vhost` and `queue` labels.
pub fn metrics_endpoint(service: &Service) -> Option<(u16, &'static str)> {
    match service.kind {
        Kind::Gateway
        | Kind::Api
        | Kind::PostgresExporter
        | Kind::RedisExporter
        | Kind::PgbouncerExporter
        | Kind::NodeExporter
        | Kind::Cadvisor => Some((service.port, "/metrics")),
        Kind::Rabbitmq => service
            .rabbitmq
            .as_ref()
            .map(|r| (r.metrics_port, "/metrics/per-object")),
        Kind::Postgres
        | Kind::Pgbouncer
        | Kind::Redis
        | Kind::Sentinel
        | Kind::Prometheus
        | Kind::Grafana => None,
    }
}

/// The first Prometheus service of the stack (the one alerts and dashboards use).
pub fn prometheus_service(stack: &Stack) -> Option<(&str, &Service)> {
    stack
        .services
        .iter()
        .find(|(_, s)| s.kind == Kind::Prometheus)
        .map(|(name, s)| (name.as_str(), s))
}

/// Every scrape job of `prometheus`, sorted by service name. A service Prometheus cannot
/// reach is left out (the model rules report it).
pub fn scrape_jobs(stack: &Stack, prometheus: &Service) -> Vec<ScrapeJob> {
    let mut jobs = Vec::new();
    for (name, service) in &stack.services {
        let Some((port, metrics_path)) = metrics_endpoint(service) else {
            continue;
        };
        // Metrics ports other than the main one are never published.
        let publish = (port == service.port).then_some(service.publish).flatten();
        if let Ok(endpoint) = stack.reach_port(prometheus, name, port, publish) {
            jobs.push(ScrapeJob {
                job: name.clone(),
                kind: service.kind,
                metrics_path,
                target: endpoint.to_string(),
            });
        }
    }
    jobs
}

/// Whether a native service is reachable by containers at its listen address.
pub fn native_unreachable_from_containers(stack: &Stack, service: &Service) -> bool {
    service.deploy == Deploy::Native && crate::model::is_loopback(&stack.listen_address(service))
}
