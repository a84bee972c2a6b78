//! Rules of a multi-host (Swarm) deploy, over the placement plan of `model::placement`:
//! TG801 a placement Swarm cannot honour, TG802 a node over its budget, TG803 a failure
//! domain (one node's loss takes a quorum, a master and its replica, or a volume's
//! data), TG804 a single-writer service with more than one task, TG805 ports Swarm
//! publishes on every address of a node.

use std::collections::BTreeMap;

use super::Ctx;
use crate::finding::Severity;
use crate::model::placement::{Plan, Unplaced, keeps_volume, placement_of, runs_on_every_node};
use crate::model::{Deploy, Kind, RabbitmqSettings, Service, Stack};

type Report = (&'static str, Severity, String, String, String);

pub fn run(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports: Vec<Report> = Vec::new();
    target(stack, &mut reports);
    if stack.is_swarm() && !stack.hosts.is_empty() {
        let plan = stack.swarm_plan();
        names(stack, &mut reports);
        unplaced(&plan, &mut reports);
        budgets(stack, &plan, &mut reports);
        failure_domains(stack, &plan, &mut reports);
        single_writers(stack, &plan, &mut reports);
        published(stack, &mut reports);
    }
    for (rule, severity, path, message, help) in reports {
        cx.report_key(rule, severity, &path, message, help);
    }
}

/// Hosts and placements belong to the swarm target, and the swarm target needs hosts.
fn target(stack: &Stack, reports: &mut Vec<Report>) {
    if stack.is_swarm() {
        if stack.hosts.is_empty() {
            reports.push((
                "TG801",
                Severity::Error,
                "deploy.target".into(),
                "the swarm target has no nodes: `[hosts]` is empty".into(),
                "declare the nodes, e.g. `[hosts.node-1]` with `cpus` and `memory`".into(),
            ));
        }
        for (name, service) in &stack.services {
            let placement = placement_of(service);
            if runs_on_every_node(service) && (placement.replicas > 1 || placement.spread) {
                reports.push((
                    "TG801",
                    Severity::Error,
                    format!("services.{name}.placement"),
                    format!("`{name}` reports on the node it runs on, so a swarm runs it once on every node: `replicas` and `spread` do not apply"),
                    "remove them; narrow the nodes with `labels` or `host`".into(),
                ));
            }
            if service.deploy == Deploy::Native {
                reports.push((
                    "TG801",
                    Severity::Error,
                    format!("services.{name}.deploy"),
                    format!("native service `{name}` has no node in a swarm deploy: Swarm runs containers only"),
                    "set `deploy = \"container\"` with an image, or deploy with the compose target".into(),
                ));
            }
        }
        return;
    }
    if !stack.hosts.is_empty() {
        reports.push((
            "TG801",
            Severity::Error,
            "hosts".into(),
            "`[hosts]` is declared but the stack deploys with compose on the one `[host]`".into(),
            "set `[deploy] target = \"swarm\"`, or remove `[hosts]`".into(),
        ));
    }
    for (name, service) in &stack.services {
        if service
            .postgres
            .as_ref()
            .is_some_and(|p| p.standby.is_some())
        {
            reports.push((
                "TG801",
                Severity::Error,
                format!("services.{name}.postgres.standby"),
                format!("`{name}` has a standby, but the compose target runs it on the primary's one host: its loss takes both"),
                "remove `standby`, or deploy to a swarm (`[deploy] target = \"swarm\"`) with the primary and the standby on two nodes".into(),
            ));
        }
        if let Some(rabbit) = service.rabbitmq.as_ref().filter(|r| r.is_cluster()) {
            reports.push((
                "TG801",
                Severity::Error,
                format!("services.{name}.rabbitmq.members"),
                format!("`{name}` is a cluster of {} members, but the compose target runs them all on its one host: its loss takes every member", rabbit.members),
                "set `members = 1`, or deploy to a swarm (`[deploy] target = \"swarm\"`) with the members spread over its nodes".into(),
            ));
        }
        if service.placement.is_some() {
            reports.push((
                "TG801",
                Severity::Warning,
                format!("services.{name}.placement"),
                format!("`placement` of `{name}` does nothing: the compose target has one host"),
                "remove it, or set `[deploy] target = \"swarm\"`".into(),
            ));
        }
    }
}

/// Swarm's limits on names: a node key placements can name, and service names (the
/// stack's name, `_`, the instance) of at most 63 characters.
fn names(stack: &Stack, reports: &mut Vec<Report>) {
    for node in stack.hosts.keys() {
        let valid = node.len() <= 63
            && node.starts_with(|c: char| c.is_ascii_alphanumeric())
            && node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            reports.push((
                "TG801",
                Severity::Error,
                format!("hosts.{node}"),
                format!("`{node}` is not a node host name a placement can name"),
                "use the node's host name: letters, digits, `.`, `_` and `-`".into(),
            ));
        }
    }
    let longest = MIGRATE_JOB.len();
    for (name, service) in &stack.services {
        let mut swarm_names: Vec<String> = stack
            .instances(name, service)
            .into_iter()
            .map(|i| i.name)
            .collect();
        // The job deploy.sh runs for a RabbitMQ cluster.
        if service.rabbitmq.as_ref().is_some_and(|r| r.is_cluster()) {
            swarm_names.push(crate::model::paths::swarm_members_job(name));
        }
        for instance in swarm_names {
            let swarm_name = format!("{}_{instance}", stack.name);
            if swarm_name.len() > SWARM_SERVICE_NAME_MAX {
                reports.push((
                    "TG801",
                    Severity::Error,
                    format!("services.{name}"),
                    format!("the swarm service `{swarm_name}` has {} characters; Swarm takes {SWARM_SERVICE_NAME_MAX}", swarm_name.len()),
                    "shorten the stack's `name` or the service's".into(),
                ));
            }
        }
    }
    if stack.name.len() + 1 + longest > SWARM_SERVICE_NAME_MAX {
        reports.push((
            "TG801",
            Severity::Error,
            "name".into(),
            format!("the stack's name leaves no room for its `{MIGRATE_JOB}` job within Swarm's {SWARM_SERVICE_NAME_MAX} characters"),
            "shorten the stack's `name`".into(),
        ));
    }
}

/// The longest name of a Swarm service, and the job deploy.sh runs the migrations as.
const SWARM_SERVICE_NAME_MAX: usize = 63;
const MIGRATE_JOB: &str = "migrate";

fn unplaced(plan: &Plan, reports: &mut Vec<Report>) {
    for (name, why) in &plan.unplaced {
        let (key, message, help) = match why {
            Unplaced::UnknownHost(host) => (
                "host",
                format!("`{name}` is pinned to `{host}`, which is not a key of `[hosts]`"),
                "name a declared node, or declare it under `[hosts]`".to_string(),
            ),
            Unplaced::NoNodeWithLabels => (
                "labels",
                format!(
                    "no node satisfies the placement of `{name}`: Swarm would leave it pending forever"
                ),
                "add the labels to a node's `labels`, or relax `placement.labels`".to_string(),
            ),
            Unplaced::TooFewNodes { eligible, needed } => (
                "spread",
                format!(
                    "`{name}` spreads {needed} instance(s) over {eligible} eligible node(s): some would never start"
                ),
                format!("declare at least {needed} eligible nodes, or lower the instances"),
            ),
        };
        reports.push((
            "TG801",
            Severity::Error,
            format!("services.{name}.placement.{key}"),
            message,
            help,
        ));
    }
}

/// The limits of the tasks the plan puts on a node fit that node.
fn budgets(stack: &Stack, plan: &Plan, reports: &mut Vec<Report>) {
    for (node, (cpus, memory)) in stack.node_load(plan) {
        let Some(budget) = stack.hosts.get(&node) else {
            continue;
        };
        let on_it: Vec<&str> = plan
            .tasks
            .iter()
            .filter(|t| t.node.as_deref() == Some(node.as_str()))
            .map(|t| t.instance.as_str())
            .collect();
        let over = [
            (
                "cpus",
                cpus > budget.cpus + 1e-9,
                format!("{cpus:.2} CPUs of {}", budget.cpus),
            ),
            (
                "memory",
                memory > budget.memory.0,
                format!("{} MiB of {}", memory >> 20, budget.memory),
            ),
        ];
        for (key, exceeded, amount) in over {
            if exceeded {
                reports.push((
                    "TG802",
                    Severity::Error,
                    format!("hosts.{node}.{key}"),
                    format!("node `{node}` is given {amount} by {}", on_it.join(", ")),
                    "raise the node's budget, add a node, or pin services elsewhere".into(),
                ));
            }
        }
    }
}

/// One node's loss must not take a Sentinel quorum, a Redis master with its replica,
/// or the only copy of a volume (a Swarm volume is local to its node).
fn failure_domains(stack: &Stack, plan: &Plan, reports: &mut Vec<Report>) {
    let several_nodes = stack.hosts.len() > 1;
    for (name, service) in &stack.services {
        if let Some(sentinel) = &service.sentinel
            && several_nodes
        {
            let tasks: Vec<_> = plan.of(name).collect();
            let apart = placement_of(service).spread;
            // The most Sentinels one node can hold, as placed.
            let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
            for task in &tasks {
                if let Some(node) = &task.node {
                    *per_node.entry(node).or_default() += 1;
                }
            }
            let worst = if apart {
                per_node.values().copied().max().unwrap_or(0)
            } else {
                sentinel.count
            };
            if sentinel.count.saturating_sub(worst) < sentinel.quorum {
                reports.push((
                    "TG803",
                    Severity::Error,
                    format!("services.{name}.placement.spread"),
                    format!(
                        "losing one node can take {worst} of {} Sentinels, leaving fewer than the quorum {}: no failover then",
                        sentinel.count, sentinel.quorum
                    ),
                    "set `spread = true` with at least `count` eligible nodes".into(),
                ));
            }
        }
        if let Some(master) = service.redis.as_ref().and_then(|r| r.replica_of.as_ref())
            && several_nodes
        {
            let (mine, theirs) = (plan.nodes_of(name), plan.nodes_of(master));
            if let Some(shared) = mine.intersection(&theirs).next() {
                reports.push((
                    "TG803",
                    Severity::Error,
                    format!("services.{name}.placement.host"),
                    format!("replica `{name}` and its master `{master}` may both run on node `{shared}`: its loss takes both"),
                    "pin the master and the replica to different nodes".into(),
                ));
            }
        }
    }
    for (name, service) in &stack.services {
        if let Some(rabbit) = service.rabbitmq.as_ref().filter(|r| r.is_cluster()) {
            rabbit_cluster(stack, plan, name, service, rabbit, reports);
        }
        if service
            .postgres
            .as_ref()
            .is_some_and(|p| p.standby.is_some())
        {
            postgres_standby(stack, plan, name, reports);
        }
    }
    for (name, service) in &stack.services {
        // Per task: a spread Sentinel is pinned to its own node.
        let nodes = plan.of(name).map(|t| t.nodes.len()).max().unwrap_or(0);
        // The gateway's session volume is TG804's (single writer).
        if keeps_volume(service)
            && service.kind != Kind::Gateway
            && service.deploy == Deploy::Container
            && nodes > 1
        {
            reports.push((
                "TG803",
                Severity::Error,
                format!("services.{name}.placement.host"),
                format!(
                    "`{name}` keeps its data in a volume but may run on {nodes} nodes: a Swarm volume is local to a node, so a move starts it empty"
                ),
                "pin it with `placement.host`".into(),
            ));
        }
    }
}

/// A RabbitMQ cluster survives one node's loss only with a majority of its members left
/// (quorum queues need one), and only its quorum queues are kept on every member.
fn rabbit_cluster(
    stack: &Stack,
    plan: &Plan,
    name: &str,
    service: &Service,
    rabbit: &RabbitmqSettings,
    reports: &mut Vec<Report>,
) {
    let members = rabbit.members;
    let majority = members / 2 + 1;
    if stack.hosts.len() > 1 {
        let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
        for task in plan.of(name) {
            if let Some(node) = &task.node {
                *per_node.entry(node).or_default() += 1;
            }
        }
        let worst = if placement_of(service).spread {
            per_node.values().copied().max().unwrap_or(0)
        } else {
            members
        };
        if members < 3 {
            reports.push((
                "TG803",
                Severity::Error,
                format!("services.{name}.rabbitmq.members"),
                format!("a RabbitMQ cluster of {members} members has no majority once one is lost: its quorum queues stop"),
                "use 3 members (or 5), one per node".into(),
            ));
        } else if members - worst < majority {
            reports.push((
                "TG803",
                Severity::Error,
                format!("services.{name}.placement.spread"),
                format!("losing one node can take {worst} of {members} RabbitMQ members, leaving no majority: the quorum queues stop"),
                "set `spread = true` with at least `members` eligible nodes".into(),
            ));
        }
    }
    if rabbit.cookie.is_none() {
        reports.push((
            "TG005",
            Severity::Error,
            format!("services.{name}.rabbitmq.members"),
            format!("`{name}` is a cluster of {members} members but has no `cookie`: members with different Erlang cookies never join"),
            "add `cookie = { secret = \"...\" }` naming a secret of `[secrets]`".into(),
        ));
    }
    // Quorum queues and streams keep a copy on every member; classic queues do not.
    for queue in rabbit.queues.iter().filter(|q| q.queue_type == "classic") {
        reports.push((
            "TG803",
            Severity::Error,
            format!("services.{name}.rabbitmq.queues"),
            format!("queue `{}` of the RabbitMQ cluster `{name}` is a {} queue: it lives on one member, and that member's loss takes it and its messages", queue.name, queue.queue_type),
            "set `queue_type = \"quorum\"`: a quorum queue keeps a copy on every member".into(),
        ));
    }
}

/// A standby guards against a node's loss only on another node, and only clients that
/// follow a failover (through PgBouncer, which the failover script repoints) keep working.
fn postgres_standby(stack: &Stack, plan: &Plan, name: &str, reports: &mut Vec<Report>) {
    let nodes: Vec<&str> = plan.of(name).filter_map(|t| t.node.as_deref()).collect();
    let apart = plan.of(name).all(|t| t.nodes.len() == 1);
    if !apart || nodes.windows(2).any(|w| w[0] == w[1]) {
        let shared = nodes.first().copied().unwrap_or_default();
        reports.push((
            "TG803",
            Severity::Error,
            format!("services.{name}.placement.spread"),
            format!("the primary and the standby of `{name}` may both run on node `{shared}`: its loss takes both"),
            "set `placement.spread = true` (with `labels` naming at least two nodes): the primary runs on the first eligible node, the standby on the second".into(),
        ));
    }
    if let Some(pg) = stack.service(name).and_then(|s| s.postgres.as_ref())
        && let Some(standby) = &pg.standby
        && (standby.user == pg.superuser || pg.roles.contains_key(&standby.user))
    {
        reports.push((
            "TG005",
            Severity::Error,
            format!("services.{name}.postgres.standby.user"),
            format!(
                "the standby replicates as `{}`, a role the stack already uses for something else",
                standby.user
            ),
            "give the replication its own role, e.g. `user = \"replicator\"`".into(),
        ));
    }
    for (client, service) in &stack.services {
        let direct = [
            service.gateway.as_ref().map(|g| &g.database),
            service.api.as_ref().map(|a| &a.database),
        ]
        .into_iter()
        .flatten()
        .any(|database| database == name);
        if direct {
            reports.push((
                "TG803",
                Severity::Error,
                format!("services.{client}"),
                format!("`{client}` connects to `{name}` directly: after a failover it keeps asking the stopped primary until it is deployed again"),
                format!("connect through the PgBouncer in front of `{name}`: the failover script points it at the promoted standby"),
            ));
        }
    }
}

/// Only stateless kinds may run several tasks; the gateway never (one Telegram session),
/// and it stays on the node that holds its session volume.
fn single_writers(stack: &Stack, plan: &Plan, reports: &mut Vec<Report>) {
    for (name, service) in &stack.services {
        let nodes = plan.nodes_of(name).len();
        if service.kind == Kind::Gateway && nodes > 1 {
            reports.push((
                "TG804",
                Severity::Error,
                format!("services.{name}.placement.host"),
                format!("gateway `{name}` may run on {nodes} nodes, but its Telegram session lives on a volume of one"),
                "pin it with `placement.host`".into(),
            ));
        }
        let replicas = placement_of(service).replicas;
        // A host agent's replicas are TG801's: it runs once per node whatever they say.
        if replicas <= 1 || runs_on_every_node(service) {
            continue;
        }
        let stateless = matches!(
            service.kind,
            Kind::Api | Kind::Pgbouncer | Kind::Nginx | Kind::App
        );
        let why = if service.kind == Kind::Gateway {
            "two gateways on one Telegram session are refused by Telegram and would store each message twice"
        } else if stateless {
            continue;
        } else {
            "its state (data, a quorum member, a scrape database) is not shared between tasks"
        };
        reports.push((
            "TG804",
            Severity::Error,
            format!("services.{name}.placement.replicas"),
            format!(
                "`{name}` ({}) runs {replicas} tasks: {why}",
                service.kind.as_str()
            ),
            "set `replicas = 1`; scale stateless services (api, pgbouncer, nginx, app) instead"
                .into(),
        ));
    }
}

/// Swarm publishes a port on every address of the node that runs the task: the model's
/// bind address cannot hold.
fn published(stack: &Stack, reports: &mut Vec<Report>) {
    let containers = stack.published_ports().into_iter().filter(|p| {
        stack
            .service(&p.service)
            .is_some_and(|s| s.deploy == Deploy::Container)
    });
    for port in containers {
        reports.push((
            "TG805",
            Severity::Warning,
            port.path.clone(),
            format!(
                "`{}` publishes {} on every address of the node that runs it (Swarm publishes on the node, not on {})",
                port.instance, port.host_port, port.address
            ),
            "publish only what clients outside the swarm need, behind a firewall; or allow this finding with the reason".into(),
        ));
    }
}
