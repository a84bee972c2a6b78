//! Scrape topology: which services expose metrics, and where the Prometheus of the stack
//! reaches them.

use serde::Serialize;

use crate::model::{Deploy, Endpoint, Instance, Kind, Service, Stack, kinds};

/// One Prometheus scrape job: a model service with a metrics endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeJob {
    /// Job name: the service name.
    pub job: String,
    pub kind: Kind,
    pub metrics_path: String,
    /// `host:port` of each instance (one, or each member of a RabbitMQ cluster) as the
    /// Prometheus process reaches it.
    pub targets: Vec<String>,
    /// A swarm host agent (one task per node): the name and port Prometheus resolves to
    /// every task's address (DNS service discovery), where a static target is one task.
    pub every_task: Option<Endpoint>,
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
        let Some((port, metrics_path)) = kinds::scrape_endpoint(service) else {
            continue;
        };
        // Metrics ports other than the main one are never published.
        let publish = (port == service.port).then_some(service.publish).flatten();
        if let Ok(endpoint) = stack.reach_port(prometheus, name, port, publish) {
            let mut targets: Vec<String> = stack
                .instances(name, service)
                .iter()
                .filter_map(|i| {
                    let metrics = Instance {
                        port,
                        publish,
                        ..i.clone()
                    };
                    stack.reach_instance(prometheus, name, &metrics).ok()
                })
                .map(|e| e.to_string())
                .collect();
            targets.dedup();
            jobs.push(ScrapeJob {
                job: name.clone(),
                kind: service.kind,
                metrics_path: metrics_path.to_string(),
                targets,
                every_task: (stack.is_swarm()
                    && crate::model::placement::runs_on_every_node(service))
                .then_some(endpoint),
            });
        }
    }
    jobs
}

/// Whether a native service is reachable by containers at its listen address.
pub fn native_unreachable_from_containers(stack: &Stack, service: &Service) -> bool {
    service.deploy == Deploy::Native && crate::model::is_loopback(&stack.listen_address(service))
}
