//! Where each container of a swarm deploy runs. The one place placements are resolved,
//! so the rules (budgets per node, failure domains) and `swarm/stack.yml` agree.
//!
//! Swarm places a task on a node that satisfies its constraints and has room for its
//! reservations, preferring the node with the fewest tasks. The plan does the same, in a
//! fixed order (pinned services first, then spread ones, then the rest, each by name), so
//! the budgets are checked on a placement Swarm can actually make.

use std::collections::{BTreeMap, BTreeSet};

use super::{Deploy, Placement, Stack, Target};

/// One Swarm task: an instance of a service (a Sentinel of a set) times its replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub service: String,
    /// The Swarm service it belongs to (the instance name, e.g. `sentinel-2`).
    pub instance: String,
    /// Nodes it may run on: one when pinned (by `placement.host`, or a spread Sentinel
    /// the plan gave its own node), several otherwise.
    pub nodes: Vec<String>,
    /// The node the plan puts it on; None when no node satisfies its placement.
    pub node: Option<String>,
}

/// Why a service cannot be placed.
#[derive(Debug, Clone, PartialEq)]
pub enum Unplaced {
    /// `placement.host` names no key of `[hosts]`.
    UnknownHost(String),
    /// No node carries every label of `placement.labels`.
    NoNodeWithLabels,
    /// `spread` with fewer eligible nodes than instances.
    TooFewNodes { eligible: usize, needed: usize },
}

/// The whole swarm placement: every task, and the services that cannot be placed.
#[derive(Debug, Default)]
pub struct Plan {
    pub tasks: Vec<Task>,
    pub unplaced: BTreeMap<String, Unplaced>,
}

impl Plan {
    /// The tasks of one service.
    pub fn of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks.iter().filter(move |t| t.service == service)
    }

    /// The nodes any task of `service` may run on.
    pub fn nodes_of<'a>(&'a self, service: &'a str) -> BTreeSet<&'a str> {
        self.of(service)
            .flat_map(|t| t.nodes.iter().map(String::as_str))
            .collect()
    }
}

/// Whether the service keeps data in a named volume (its container render mounts one):
/// in a swarm such a service must stay on one node.
pub fn keeps_volume(service: &super::Service) -> bool {
    use super::{Kind, Persistence};
    match service.kind {
        Kind::Postgres
        | Kind::Rabbitmq
        | Kind::Prometheus
        | Kind::Grafana
        | Kind::Sentinel
        | Kind::Gateway => true,
        Kind::Redis => service
            .redis
            .as_ref()
            .is_some_and(|r| r.persistence != Persistence::None),
        _ => false,
    }
}

/// Whether the service is a host agent (node-exporter, cAdvisor): it reports on the node
/// it runs on, so a swarm runs it as a global service, one task on every eligible node.
pub fn runs_on_every_node(service: &super::Service) -> bool {
    use super::Kind;
    service.deploy == super::Deploy::Container
        && matches!(service.kind, Kind::NodeExporter | Kind::Cadvisor)
}

/// The placement of a service, or the default (any node, one task).
pub fn placement_of(service: &super::Service) -> Placement {
    service.placement.clone().unwrap_or(Placement {
        replicas: 1,
        ..Placement::default()
    })
}

impl Stack {
    pub fn is_swarm(&self) -> bool {
        self.deploy.target == Target::Swarm
    }

    /// The nodes a placement allows, by name, or why there are none.
    pub fn eligible_nodes(&self, placement: &Placement) -> Result<Vec<String>, Unplaced> {
        if let Some(host) = &placement.host
            && !self.hosts.contains_key(host)
        {
            return Err(Unplaced::UnknownHost(host.clone()));
        }
        let nodes: Vec<String> = self
            .hosts
            .iter()
            .filter(|(name, _)| placement.host.as_ref().is_none_or(|h| h == *name))
            .filter(|(_, node)| {
                placement
                    .labels
                    .iter()
                    .all(|(key, value)| node.labels.get(key) == Some(value))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if nodes.is_empty() {
            Err(Unplaced::NoNodeWithLabels)
        } else {
            Ok(nodes)
        }
    }

    /// Places every container task on the nodes of `[hosts]` (empty without hosts).
    pub fn swarm_plan(&self) -> Plan {
        let mut plan = Plan::default();
        if self.hosts.is_empty() {
            return plan;
        }
        let mut order: Vec<(&String, &super::Service, Placement)> = self
            .services
            .iter()
            .filter(|(_, s)| s.deploy == Deploy::Container)
            .map(|(name, s)| (name, s, placement_of(s)))
            .collect();
        // Host agents first (they take room on every node), then pinned, then spread,
        // then the rest: the constrained ones take their room before the free ones fill
        // the nodes. The sort is stable, so names order within.
        order.sort_by_key(|(_, s, p)| (!runs_on_every_node(s), p.host.is_none(), !p.spread));
        let mut load: BTreeMap<&str, (f64, u64, usize)> = BTreeMap::new();
        for (name, service, placement) in order {
            let eligible = match self.eligible_nodes(&placement) {
                Ok(nodes) => nodes,
                Err(why) => {
                    plan.unplaced.insert(name.clone(), why);
                    continue;
                }
            };
            if runs_on_every_node(service) {
                for node in eligible {
                    let entry = load.entry(self.node_key(&node)).or_default();
                    entry.0 += service.cpus;
                    entry.1 += service.memory.0;
                    entry.2 += 1;
                    plan.tasks.push(Task {
                        service: name.clone(),
                        instance: name.clone(),
                        nodes: vec![node.clone()],
                        node: Some(node),
                    });
                }
                continue;
            }
            let instances = self.instances(name, service);
            let needed = instances.len() * placement.replicas as usize;
            if placement.spread && needed > eligible.len() {
                plan.unplaced.insert(
                    name.clone(),
                    Unplaced::TooFewNodes {
                        eligible: eligible.len(),
                        needed,
                    },
                );
            }
            // A spread set of several Swarm services (the Sentinels, RabbitMQ members) is
            // pinned one per node: instance i on the i-th eligible node by name, so a
            // change elsewhere in the model never moves a member away from its volume.
            // Replicas of one service are kept apart by Swarm itself.
            let pin_each = placement.spread && instances.len() > 1;
            let mut used: BTreeSet<String> = BTreeSet::new();
            for (index, instance) in instances.iter().enumerate() {
                for _ in 0..placement.replicas {
                    let node = if pin_each {
                        eligible.get(index).cloned()
                    } else {
                        let free: Vec<&String> = eligible
                            .iter()
                            .filter(|n| !placement.spread || !used.contains(*n))
                            .collect();
                        pick(self, &free, &load, service.cpus, service.memory.0)
                    };
                    if let Some(node) = &node {
                        let entry = load.entry(self.node_key(node)).or_default();
                        entry.0 += service.cpus;
                        entry.1 += service.memory.0;
                        entry.2 += 1;
                        used.insert(node.clone());
                    }
                    let nodes = match (&node, pin_each) {
                        (Some(node), true) => vec![node.clone()],
                        _ => eligible.clone(),
                    };
                    plan.tasks.push(Task {
                        service: name.clone(),
                        instance: instance.name.clone(),
                        nodes,
                        node,
                    });
                }
            }
        }
        plan
    }

    /// The `[hosts]` key of `node`, borrowed from the model for the load table.
    fn node_key(&self, node: &str) -> &str {
        self.hosts
            .get_key_value(node)
            .map(|(k, _)| k.as_str())
            .unwrap_or_default()
    }

    /// CPUs and memory the plan puts on each node, every node listed.
    pub fn node_load(&self, plan: &Plan) -> BTreeMap<String, (f64, u64)> {
        let mut load: BTreeMap<String, (f64, u64)> =
            self.hosts.keys().map(|h| (h.clone(), (0.0, 0))).collect();
        for task in &plan.tasks {
            let (Some(node), Some(service)) = (&task.node, self.service(&task.service)) else {
                continue;
            };
            let entry = load.entry(node.clone()).or_default();
            entry.0 += service.cpus;
            entry.1 += service.memory.0;
        }
        load
    }
}

/// Swarm's choice among `free` nodes: one with room for the task's limits if any, then
/// the fewest tasks, then the first by name.
fn pick(
    stack: &Stack,
    free: &[&String],
    load: &BTreeMap<&str, (f64, u64, usize)>,
    cpus: f64,
    memory: u64,
) -> Option<String> {
    let used = |node: &str| load.get(node).copied().unwrap_or_default();
    let has_room = |node: &str| {
        let (c, m, _) = used(node);
        stack
            .hosts
            .get(node)
            .is_some_and(|h| c + cpus <= h.cpus + 1e-9 && m + memory <= h.memory.0)
    };
    free.iter()
        .min_by_key(|node| (!has_room(node), used(node).2))
        .map(|node| node.to_string())
}

#[cfg(test)]
mod tests {
    use crate::model::load_texts;
    use crate::model::units::ByteSize;

    fn stack(extra: &str) -> crate::model::Stack {
        load_texts(vec![("s.toml".into(), stack_text(extra))])
            .expect("loads")
            .stack
    }

    fn stack_text(extra: &str) -> String {
        let base = r#"
name = "s"
[host]
cpus = 8.0
memory = "8GiB"
[deploy]
target = "swarm"
[hosts.a]
cpus = 2.0
memory = "1GiB"
labels = { disk = "ssd" }
[hosts.b]
cpus = 2.0
memory = "1GiB"
[hosts.c]
cpus = 2.0
memory = "1GiB"
[secrets.r]
env = "R"
[services.redis]
kind = "redis"
image = "redis:7.2"
port = 6379
cpus = 0.5
memory = "256MiB"
[services.redis.redis]
password = { secret = "r" }
maxmemory = "128MiB"
[services.redis.placement]
host = "b"
[services.sentinel]
kind = "sentinel"
image = "redis:7.2"
port = 26379
cpus = 0.1
memory = "64MiB"
[services.sentinel.sentinel]
monitors = "redis"
"#;
        format!("{base}{extra}")
    }

    /// The base model with `extra`, then `overlay` over it.
    fn stack_with(extra: &str, overlay: &str) -> crate::model::Stack {
        let base = stack_text(extra);
        load_texts(vec![
            ("s.toml".into(), base),
            ("o.toml".into(), overlay.to_string()),
        ])
        .expect("loads")
        .stack
    }

    #[test]
    fn a_host_agent_runs_one_task_on_every_eligible_node() {
        let mut stack = stack(
            "[services.node-exporter]\nkind = \"node-exporter\"\nimage = \"prom/node-exporter:v1.8.2\"\nport = 9100\ncpus = 0.1\nmemory = \"32MiB\"\n",
        );
        let nodes: Vec<_> = stack
            .swarm_plan()
            .of("node-exporter")
            .map(|t| (t.node.clone().unwrap(), t.nodes.clone()))
            .collect();
        let expected: Vec<_> = ["a", "b", "c"]
            .map(|n| (n.to_string(), vec![n.to_string()]))
            .into();
        assert_eq!(nodes, expected);
        // Labels narrow the nodes it runs on; the budget counts it on each.
        let agent = stack.services.get_mut("node-exporter").unwrap();
        agent.placement = Some(crate::model::Placement {
            labels: [("disk".to_string(), "ssd".to_string())].into(),
            replicas: 1,
            ..Default::default()
        });
        let plan = stack.swarm_plan();
        assert_eq!(plan.of("node-exporter").count(), 1);
        let load = stack.node_load(&plan);
        assert!(load["a"].1 >= 32 << 20, "{load:?}");
    }

    #[test]
    fn pinned_first_spread_sentinels_one_per_node() {
        let stack = stack("[services.sentinel.placement]\nspread = true\n");
        let plan = stack.swarm_plan();
        assert!(plan.unplaced.is_empty(), "{:?}", plan.unplaced);
        let redis: Vec<_> = plan.of("redis").collect();
        assert_eq!(redis[0].node.as_deref(), Some("b"));
        assert_eq!(redis[0].nodes, ["b"]);
        let sentinels: Vec<_> = plan.of("sentinel").map(|t| t.node.clone()).collect();
        assert_eq!(sentinels.len(), 3);
        let distinct: std::collections::BTreeSet<_> = sentinels.iter().collect();
        assert_eq!(distinct.len(), 3, "{sentinels:?}");
        assert!(plan.of("sentinel").all(|t| t.nodes.len() == 1));
        // Sentinel i on the i-th node by name, whatever else runs there: a change
        // elsewhere in the model never moves an instance away from its volume.
        assert_eq!(
            sentinels,
            [Some("a".into()), Some("b".into()), Some("c".into())]
        );
        let busier = stack_with(
            "[services.sentinel.placement]\nspread = true\n",
            "[services.redis.placement]\nhost = \"a\"\n",
        );
        let moved: Vec<_> = busier
            .swarm_plan()
            .of("sentinel")
            .map(|t| t.node.clone())
            .collect();
        assert_eq!(moved, sentinels);
    }

    #[test]
    fn labels_unknown_hosts_and_too_few_nodes_are_unplaced() {
        let stack =
            stack("[services.sentinel.placement]\nspread = true\nlabels = { disk = \"ssd\" }\n");
        let plan = stack.swarm_plan();
        assert_eq!(
            plan.unplaced.get("sentinel"),
            Some(&super::Unplaced::TooFewNodes {
                eligible: 1,
                needed: 3
            })
        );
        let stack = stack_with_redis_on("z");
        assert_eq!(
            stack.swarm_plan().unplaced.get("redis"),
            Some(&super::Unplaced::UnknownHost("z".into()))
        );
        let stack = self::stack("[services.sentinel.placement]\nlabels = { gpu = \"yes\" }\n");
        assert_eq!(
            stack.swarm_plan().unplaced.get("sentinel"),
            Some(&super::Unplaced::NoNodeWithLabels)
        );
    }

    fn stack_with_redis_on(host: &str) -> crate::model::Stack {
        let mut stack = stack("");
        stack
            .services
            .get_mut("redis")
            .unwrap()
            .placement
            .as_mut()
            .unwrap()
            .host = Some(host.into());
        stack
    }

    #[test]
    fn a_task_goes_where_there_is_room() {
        let mut stack = stack("");
        // b holds a 900 MiB Redis: the fourth Sentinel finds b with the fewest tasks
        // but no room, and goes to c instead.
        stack.services.get_mut("redis").unwrap().memory = ByteSize(900 << 20);
        let sentinel = stack.services.get_mut("sentinel").unwrap();
        sentinel.memory = ByteSize(200 << 20);
        sentinel.sentinel.as_mut().unwrap().count = 4;
        let plan = stack.swarm_plan();
        let nodes: Vec<_> = plan
            .of("sentinel")
            .map(|t| t.node.clone().unwrap())
            .collect();
        assert_eq!(nodes, ["a", "c", "a", "c"]);
        let load = stack.node_load(&plan);
        assert!(load.values().all(|(_, m)| *m <= 1 << 30), "{load:?}");
    }
}
