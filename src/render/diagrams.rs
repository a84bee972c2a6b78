//! Architecture diagrams from the model: PlantUML (topology with layers and ports, the
//! same with monitoring, the message/cache flow, deployment layers), a Markdown page with
//! the Mermaid version (renders on code hosts), and the port and budget table.

use std::collections::BTreeMap;

use minijinja::{Value, context};

use super::Output;
use crate::model::{Deploy, Kind, Model, Service, Stack, kinds};

/// PlantUML / Mermaid identifier of a service.
fn alias(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("svc_{cleaned}")
}

/// The layer a service is drawn in.
pub fn layer(service: &Service) -> &'static str {
    match service.deploy {
        Deploy::Native => "native",
        Deploy::Container => service.kind.layer(),
    }
}

const LAYERS: &[(&str, &str)] = &[
    ("native", "Native layer (systemd)"),
    ("data", "Data layer (containers)"),
    ("monitoring", "Monitoring layer (containers)"),
];

fn is_monitoring(kind: Kind) -> bool {
    kind.layer() == "monitoring"
}

/// Who talks to whom, with the address the caller uses: (from, to, label).
fn edges(stack: &Stack) -> Vec<(String, String, String, bool)> {
    let mut out = Vec::new();
    let mut add = |from: &str, to: &str, what: &str, port: Option<(u16, Option<u16>)>| {
        let (Some(caller), Some(callee)) = (stack.service(from), stack.service(to)) else {
            return;
        };
        let (port, publish) = port.unwrap_or((callee.port, callee.publish));
        let address = stack
            .reach_port(caller, to, port, publish)
            .map(|e| e.to_string())
            .unwrap_or_else(|_| "unreachable".into());
        let monitoring = is_monitoring(caller.kind) || is_monitoring(callee.kind);
        out.push((
            from.to_string(),
            to.to_string(),
            format!("{what} {address}"),
            monitoring,
        ));
    };
    for (name, s) in &stack.services {
        if let Some(g) = &s.gateway {
            add(name, &g.database, "SQL", None);
            add(name, &g.redis, "dedup", None);
            add(name, &g.broker, "AMQP", None);
        }
        if let Some(a) = &s.api {
            add(name, &a.database, "SQL", None);
        }
        if let Some(b) = &s.pgbouncer {
            add(name, &b.upstream, "pool", None);
        }
        if let Some(r) = &s.redis
            && let Some(master) = &r.replica_of
        {
            add(name, master, "replicates", None);
        }
        if let Some(sen) = &s.sentinel {
            add(name, &sen.monitors, "monitors", None);
        }
        if let Some(g) = &s.grafana {
            add(name, &g.prometheus, "PromQL", None);
            add(name, &g.database, "SQL", None);
            if let Some(r) = &g.redis {
                add(name, r, "Redis", None);
            }
        }
        if let Some(e) = &s.exporter {
            add(name, &e.target, "exports", None);
        }
        if s.prometheus.is_some() {
            for (target, t) in &stack.services {
                // Metrics ports other than the main one are never published.
                if let Some((port, _)) = kinds::scrape_endpoint(t) {
                    let publish = (port == t.port).then_some(t.publish).flatten();
                    add(name, target, "scrape", Some((port, publish)));
                }
            }
        }
    }
    out
}

fn context(stack: &Stack) -> Value {
    let mut totals: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut nodes = Vec::new();
    for (name, s) in &stack.services {
        let instances = stack.instances(name, s);
        let (cpus, memory) = stack.cost(name, s);
        let entry = totals.entry(layer(s)).or_default();
        entry.0 += cpus;
        entry.1 += memory;
        let publish: Vec<String> = instances
            .iter()
            .filter_map(|i| {
                i.publish
                    .map(|p| format!("{}:{p}", stack.publish_address(s)))
            })
            .collect();
        rows.push(context! {
            name,
            kind => s.kind.as_str(),
            layer => layer(s),
            deploy => if s.deploy == Deploy::Native { "systemd" } else { "container" },
            instances => instances.len(),
            port => s.port,
            publish => if publish.is_empty() { "-".to_string() } else { publish.join(", ") },
            cpus => format!("{cpus:.2}"),
            memory_mib => memory >> 20,
            image => s.image.clone().unwrap_or_else(|| "-".into()),
        });
        nodes.push(context! {
            id => alias(name),
            name,
            kind => s.kind.as_str(),
            layer => layer(s),
            port => s.port,
            publish => s.publish,
            instances => instances.len(),
            monitoring => is_monitoring(s.kind),
            networks => s.networks.clone(),
        });
    }
    let layers: Vec<Value> = LAYERS
        .iter()
        .map(|&(id, title)| {
            let (cpus, memory) = totals.get(id).copied().unwrap_or_default();
            context! { id, title, cpus => format!("{cpus:.2}"), memory_mib => memory >> 20 }
        })
        .collect();
    let (total_cpus, total_memory) = totals
        .values()
        .fold((0.0, 0u64), |(c, m), (cpus, memory)| (c + cpus, m + memory));
    let edges: Vec<Value> = edges(stack)
        .into_iter()
        .map(|(from, to, label, monitoring)| {
            context! { from => alias(&from), to => alias(&to), label, monitoring }
        })
        .collect();
    let flow = cache_flow(stack);
    let api = stack
        .services
        .iter()
        .find(|(_, s)| s.api.is_some())
        .map(|(name, _)| name.clone());
    let networks = networks_with_members(stack);
    context! {
        stack => &stack.name,
        nodes,
        edges,
        layers,
        rows,
        networks,
        flow,
        api,
        host_cpus => format!("{:.2}", stack.host.cpus),
        host_memory_mib => stack.host.memory.0 >> 20,
        total_cpus => format!("{total_cpus:.2}"),
        total_memory_mib => total_memory >> 20,
        bind => &stack.host.bind,
    }
}

/// The message path of the first gateway, for the cache-flow sequence.
fn cache_flow(stack: &Stack) -> Option<Value> {
    stack.services.iter().find_map(|(name, s)| {
        let g = s.gateway.as_ref()?;
        let broker = stack.service(&g.broker).and_then(|b| b.rabbitmq.as_ref());
        let upstream = stack
            .service(&g.database)
            .and_then(|d| d.pgbouncer.as_ref())
            .map(|b| b.upstream.clone());
        Some(context! {
            gateway => name,
            redis => &g.redis,
            database => &g.database,
            upstream,
            broker => &g.broker,
            exchange => broker.map(|b| b.exchange.clone()).unwrap_or_default(),
            routing_prefix => broker.map(|b| b.routing_key_prefix.clone()).unwrap_or_default(),
            dedup_ttl => g.dedup_ttl.to_string(),
            dedup_ttl_seconds => g.dedup_ttl.seconds(),
            batch_size => g.batch_size,
            batch_delay => g.batch_delay.to_string(),
            reconcile_interval => g.reconcile_interval.to_string(),
        })
    })
}

/// Each network with the containers on it.
fn networks_with_members(stack: &Stack) -> Vec<Value> {
    stack
        .networks
        .iter()
        .map(|(name, n)| {
            let members: Vec<String> = stack
                .services
                .iter()
                .filter(|(_, s)| s.deploy == Deploy::Container && s.networks.contains(name))
                .map(|(service, _)| alias(service))
                .collect();
            context! { id => format!("net_{}", alias(name)), name, subnet => &n.subnet, members }
        })
        .collect()
}

pub fn outputs(model: &Model) -> Vec<Output> {
    let ctx = context(&model.stack);
    let with = |monitoring: bool, title: &str| {
        context! { base => ctx.clone(), with_monitoring => monitoring, title }
    };
    vec![
        Output::new(
            "diagrams/topology.puml",
            "diagrams/components.puml.j2",
            with(false, "topology"),
        ),
        Output::new(
            "diagrams/monitoring.puml",
            "diagrams/components.puml.j2",
            with(true, "monitoring"),
        ),
        Output::new(
            "diagrams/cache-flow.puml",
            "diagrams/cache-flow.puml.j2",
            ctx.clone(),
        ),
        Output::new(
            "diagrams/deployment.puml",
            "diagrams/deployment.puml.j2",
            ctx.clone(),
        ),
        Output::new(
            "diagrams/architecture.md",
            "diagrams/architecture.md.j2",
            ctx.clone(),
        ),
        Output::new("diagrams/budget.md", "diagrams/budget.md.j2", ctx),
    ]
}
