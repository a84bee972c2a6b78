//! Lookups the rules need many times, built once per run so no rule scans every service
//! (or alert) for every file entry it reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Deploy, PoolMode, Service, Stack, kinds};

pub struct Index<'a> {
    /// Instance (container or process) name -> the services that run it, in service
    /// order. Names are unique in a valid model; a clash keeps every owner.
    instances: BTreeMap<String, Vec<(&'a String, &'a Service)>>,
    /// Metrics port -> the first native service serving metrics on it.
    native_metrics: BTreeMap<u16, (&'a String, &'a Service)>,
    /// Alert name -> position of the first alert with that name.
    alerts: BTreeMap<&'a str, usize>,
    /// Postgres services some PgBouncer pools in transaction mode.
    transaction_pooled: BTreeSet<&'a str>,
    /// Every secret's environment variable.
    pub secret_envs: BTreeSet<&'a str>,
}

impl<'a> Index<'a> {
    pub fn new(stack: &'a Stack) -> Self {
        let mut index = Index {
            instances: BTreeMap::new(),
            native_metrics: BTreeMap::new(),
            alerts: BTreeMap::new(),
            transaction_pooled: BTreeSet::new(),
            secret_envs: stack.secrets.values().map(|s| s.env.as_str()).collect(),
        };
        for (name, service) in &stack.services {
            for instance in stack.instances(name, service) {
                index
                    .instances
                    .entry(instance.name)
                    .or_default()
                    .push((name, service));
            }
            if service.deploy == Deploy::Native
                && let Some(port) = metrics_port(service)
            {
                index.native_metrics.entry(port).or_insert((name, service));
            }
            if let Some(b) = &service.pgbouncer
                && b.pool_mode == PoolMode::Transaction
            {
                index.transaction_pooled.insert(&b.upstream);
            }
        }
        for (position, alert) in stack.alerts.iter().enumerate() {
            index.alerts.entry(&alert.name).or_insert(position);
        }
        index
    }

    /// The first service (in name order) running an instance called `name`.
    pub fn first_owner(&self, name: &str) -> Option<(&'a String, &'a Service)> {
        self.instances.get(name).and_then(|o| o.first()).copied()
    }

    /// The name of the last service (in name order) running an instance called `name`.
    pub fn last_owner(&self, name: &str) -> Option<&'a String> {
        self.instances.get(name).and_then(|o| o.last()).map(|o| o.0)
    }

    /// The first native service serving metrics on `port`.
    pub fn native_metrics(&self, port: u16) -> Option<(&'a String, &'a Service)> {
        self.native_metrics.get(&port).copied()
    }

    /// Position of the first alert named `name`.
    pub fn alert(&self, name: &str) -> Option<usize> {
        self.alerts.get(name).copied()
    }

    /// Whether a PgBouncer pools postgres service `name` in transaction mode.
    pub fn transaction_pooled(&self, name: &str) -> bool {
        self.transaction_pooled.contains(name)
    }
}

/// The metrics port of a service, where its /metrics is served.
pub fn metrics_port(service: &Service) -> Option<u16> {
    kinds::metrics_endpoint(service).map(|(port, _)| port)
}
