//! Facts derived from the model that renderers and rules share: who reaches whom at
//! which address, which host ports are published, what each service costs.

use super::{Deploy, Kind, PostgresSettings, ReadCache, Service, Stack};

/// An address one service uses to reach another.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    /// `host:port`, with an IPv6 address in brackets (`[::1]:6432`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a service cannot reach another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    UnknownService,
    /// A native caller and a container callee with no published port.
    NotPublished,
    /// Two containers without a common network.
    NoSharedNetwork,
}

/// Address the host side uses for a port published on `address`.
fn host_side(address: &str) -> String {
    if matches!(address, "0.0.0.0" | "::" | "") {
        "127.0.0.1".into()
    } else {
        address.to_string()
    }
}

impl Stack {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// Address that published ports of `service` bind to.
    pub fn publish_address(&self, service: &Service) -> String {
        service
            .publish_address
            .clone()
            .unwrap_or_else(|| self.host.bind.clone())
    }

    /// The environment variable that holds secret `id` at deploy time.
    pub fn secret_env(&self, id: &str) -> Option<&str> {
        self.secrets.get(id).map(|s| s.env.as_str())
    }

    /// How an operator on the host reaches port `port` (published as `publish`) of
    /// service `name`: where a native service listens, or a container's published port;
    /// `None` for a container that publishes nothing (reach it with `docker compose exec`).
    pub fn from_host(&self, name: &str, port: u16, publish: Option<u16>) -> Option<Endpoint> {
        let service = self.service(name)?;
        match service.deploy {
            Deploy::Native => Some(Endpoint {
                host: host_side(&self.listen_address(service)),
                port,
            }),
            Deploy::Container => publish.map(|port| Endpoint {
                host: host_side(&self.publish_address(service)),
                port,
            }),
        }
    }

    /// How `from` reaches port `port` (published as `publish`) of service `to`.
    pub fn reach_port(
        &self,
        from: &Service,
        to_name: &str,
        port: u16,
        publish: Option<u16>,
    ) -> Result<Endpoint, Unreachable> {
        let to = self.service(to_name).ok_or(Unreachable::UnknownService)?;
        match (from.deploy, to.deploy) {
            (Deploy::Container, Deploy::Container) => {
                if from.networks.iter().any(|n| to.networks.contains(n)) {
                    Ok(Endpoint {
                        host: to_name.to_string(),
                        port,
                    })
                } else {
                    Err(Unreachable::NoSharedNetwork)
                }
            }
            (Deploy::Native, Deploy::Container) => match publish {
                Some(host_port) => Ok(Endpoint {
                    host: host_side(&self.publish_address(to)),
                    port: host_port,
                }),
                None => Err(Unreachable::NotPublished),
            },
            // Where the other process listens (a wildcard is reached on loopback).
            (Deploy::Native, Deploy::Native) => Ok(Endpoint {
                host: host_side(&self.listen_address(to)),
                port,
            }),
            // Containers reach the host through the host-gateway alias compose adds.
            (Deploy::Container, Deploy::Native) => Ok(Endpoint {
                host: "host.docker.internal".into(),
                port,
            }),
        }
    }

    /// How `from` reaches the main port of `to`; of a PostgreSQL with a standby, the
    /// instance that serves as the primary.
    pub fn reach(&self, from: &Service, to_name: &str) -> Result<Endpoint, Unreachable> {
        let to = self.service(to_name).ok_or(Unreachable::UnknownService)?;
        let serving = to
            .postgres
            .as_ref()
            .and_then(|pg| pg.serving_and_standby(to_name))
            .and_then(|(serving, _)| {
                self.instances(to_name, to)
                    .into_iter()
                    .find(|i| i.name == serving)
            });
        match serving {
            Some(instance) => self.reach_instance(from, to_name, &instance),
            None => self.reach_port(from, to_name, to.port, to.publish),
        }
    }

    /// How `from` reaches one instance of `service` (a Sentinel of three, say): between
    /// containers by the instance's own name, from the host by its published port.
    pub fn reach_instance(
        &self,
        from: &Service,
        service: &str,
        instance: &Instance,
    ) -> Result<Endpoint, Unreachable> {
        let mut endpoint = self.reach_port(from, service, instance.port, instance.publish)?;
        if endpoint.host == service {
            endpoint.host = instance.name.clone();
        }
        Ok(endpoint)
    }

    /// The Sentinels watching the Redis master `master`, as `from` sees them; `None` when
    /// no Sentinel service monitors it.
    pub fn sentinels_watching(&self, from: &Service, master: &str) -> Option<SentinelView> {
        let (name, service, settings) = self.services.iter().find_map(|(name, service)| {
            let settings = service.sentinel.as_ref()?;
            (settings.monitors == master).then_some((name, service, settings))
        })?;
        let sentinels = self
            .instances(name, service)
            .iter()
            .filter_map(|instance| self.reach_instance(from, name, instance).ok())
            .collect();
        // The master and its replicas, each under the address the Sentinels hand out
        // (how they reach it; replicas in containers announce their service name).
        let group = self.services.iter().filter(|(redis_name, redis)| {
            redis_name.as_str() == master
                || redis
                    .redis
                    .as_ref()
                    .is_some_and(|r| r.replica_of.as_deref() == Some(master))
        });
        let announced = group
            .filter_map(|(redis_name, _)| {
                Some((
                    self.reach(service, redis_name).ok()?,
                    self.reach(from, redis_name).ok()?,
                ))
            })
            .collect();
        Some(SentinelView {
            master_name: settings.master_name.clone(),
            sentinels,
            announced,
        })
    }

    /// The postgres settings behind a database service (itself, or a pgbouncer's
    /// upstream), with the name of the postgres service.
    pub fn database_of(&self, name: &str) -> Option<(&str, &PostgresSettings)> {
        let service = self.service(name)?;
        if let Some(pg) = &service.postgres {
            return Some((self.services.get_key_value(name)?.0.as_str(), pg));
        }
        let upstream = &service.pgbouncer.as_ref()?.upstream;
        let (key, target) = self.services.get_key_value(upstream)?;
        Some((key.as_str(), target.postgres.as_ref()?))
    }

    /// The gateways storing into the PostgreSQL server that database service `database`
    /// (a postgres or a pgbouncer in front of one) leads to: the writers of the read cache
    /// of an API reading through `database`.
    pub fn gateways_storing_into(&self, database: &str) -> Vec<&str> {
        let Some((postgres, _)) = self.database_of(database) else {
            return Vec::new();
        };
        self.services
            .iter()
            .filter(|(_, s)| {
                s.gateway.as_ref().is_some_and(|g| {
                    self.database_of(&g.database)
                        .is_some_and(|(target, _)| target == postgres)
                })
            })
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The enabled read caches gateway `gateway` keeps current: `(api service, cache)` of
    /// every API whose cache is on and whose database this gateway stores into.
    pub fn read_caches_fed_by(&self, gateway: &str) -> Vec<(&str, &ReadCache)> {
        self.services
            .iter()
            .filter_map(|(name, s)| {
                let api = s.api.as_ref()?;
                let cache = api.cache.as_ref().filter(|c| c.enabled)?;
                self.gateways_storing_into(&api.database)
                    .contains(&gateway)
                    .then_some((name.as_str(), cache))
            })
            .collect()
    }

    /// Every host port the stack publishes, with its owner.
    pub fn published_ports(&self) -> Vec<PublishedPort> {
        let mut ports = Vec::new();
        for (name, service) in &self.services {
            if service.deploy == Deploy::Native {
                for instance in self.instances(name, service) {
                    ports.push(PublishedPort {
                        service: name.clone(),
                        path: format!("services.{name}.port"),
                        host_port: instance.port,
                        container_port: instance.port,
                        address: "127.0.0.1".into(),
                        instance: instance.name,
                    });
                }
                continue;
            }
            let address = self.publish_address(service);
            for instance in self.instances(name, service) {
                if let Some(host_port) = instance.publish {
                    ports.push(PublishedPort {
                        service: name.clone(),
                        path: format!("services.{name}.publish"),
                        host_port,
                        container_port: service.port,
                        address: address.clone(),
                        instance: instance.name.clone(),
                    });
                }
            }
            if let Some(rabbit) = &service.rabbitmq
                && let Some(first) = rabbit.management_publish
            {
                // Cluster members publish consecutive ports, as their AMQP ports.
                for (offset, instance) in self.instances(name, service).into_iter().enumerate() {
                    ports.push(PublishedPort {
                        service: name.clone(),
                        path: format!("services.{name}.rabbitmq.management_publish"),
                        host_port: first.saturating_add(u16::try_from(offset).unwrap_or(u16::MAX)),
                        container_port: rabbit.management_port,
                        address: address.clone(),
                        instance: instance.name,
                    });
                }
            }
        }
        ports
    }

    /// The processes a service runs as: one, or `count` Sentinels or `members` RabbitMQ
    /// cluster members named `<name>-<i>`, or a PostgreSQL `<name>` and its standby
    /// `<name>-2`. Their containers publish consecutive host ports; native ones share
    /// the host and so listen on consecutive ports.
    pub fn instances(&self, name: &str, service: &Service) -> Vec<Instance> {
        let count = match (&service.kind, &service.sentinel, &service.rabbitmq) {
            (Kind::Sentinel, Some(sentinel), _) => sentinel.count,
            (Kind::Rabbitmq, _, Some(rabbit)) if rabbit.is_cluster() => rabbit.members,
            _ => 0,
        };
        let has_standby = service
            .postgres
            .as_ref()
            .is_some_and(|pg| pg.standby.is_some());
        let names: Vec<String> = match count {
            // The primary keeps the service's name (and so its volume) when a standby joins.
            _ if has_standby => vec![name.to_string(), super::types::second_postgres(name)],
            0 => vec![name.to_string()],
            count => (1..=count).map(|i| format!("{name}-{i}")).collect(),
        };
        let native = service.deploy == Deploy::Native;
        names
            .into_iter()
            .enumerate()
            .map(|(i, instance)| {
                let offset = u16::try_from(i).unwrap_or(u16::MAX);
                Instance {
                    name: instance,
                    port: if native {
                        service.port.saturating_add(offset)
                    } else {
                        service.port
                    },
                    publish: service.publish.map(|p| p.saturating_add(offset)),
                }
            })
            .collect()
    }

    /// CPU and memory of a service, counting every instance.
    pub fn cost(&self, name: &str, service: &Service) -> (f64, u64) {
        let n = self.instances(name, service).len() as f64;
        (service.cpus * n, (service.memory.0 as f64 * n) as u64)
    }
}

/// One container (or native process) of a service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Instance {
    pub name: String,
    /// Port the process listens on.
    pub port: u16,
    pub publish: Option<u16>,
}

/// The Sentinels of one Redis master, as one client sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelView {
    /// The name the Sentinels monitor the master under (`get-master-addr-by-name`).
    pub master_name: String,
    /// Each Sentinel, as the client reaches it.
    pub sentinels: Vec<Endpoint>,
    /// (address a Sentinel announces, address the client reaches) for the master and
    /// each of its replicas: a native client cannot resolve container names.
    pub announced: Vec<(Endpoint, Endpoint)>,
}

/// A host port bound by the stack.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublishedPort {
    pub service: String,
    pub instance: String,
    /// Model path of the key that publishes it.
    pub path: String,
    pub host_port: u16,
    pub container_port: u16,
    pub address: String,
}
