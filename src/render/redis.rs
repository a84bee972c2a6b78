//! Redis master/replica configs and one sentinel.conf per sentinel. Passwords live in
//! deploy-time include files (see `secrets`), never here.

use minijinja::context;

use super::Output;
use crate::model::{Deploy, Kind, Model, Persistence, paths};

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let secrets_dir = &stack.deploy.secrets_dir;
    let mut out = Vec::new();
    for (name, service) in &stack.services {
        let container = service.deploy == Deploy::Container;
        let bind = if container { "0.0.0.0" } else { "127.0.0.1" };
        match (service.kind, &service.redis, &service.sentinel) {
            (Kind::Redis, Some(redis), _) => {
                let master = match &redis.replica_of {
                    Some(master) => match stack.reach(service, master) {
                        Ok(endpoint) => Some(endpoint),
                        Err(_) => continue,
                    },
                    None => None,
                };
                let persistence = match redis.persistence {
                    Persistence::Aof => "aof",
                    Persistence::Rdb => "rdb",
                    Persistence::None => "none",
                };
                let dir = if container {
                    "/data".to_string()
                } else {
                    format!("{}/{}", stack.deploy.state_dir, name)
                };
                out.push(Output::new(
                    paths::redis_conf(name),
                    "redis/redis.conf.j2",
                    context! {
                        service => name,
                        bind,
                        port => service.port,
                        dir,
                        maxmemory => redis.maxmemory.redis(),
                        maxmemory_policy => &redis.maxmemory_policy,
                        persistence,
                        master => super::ser(&master),
                        // Replicas announce their service name so sentinels hand out
                        // resolvable names, not container IPs (incident 14).
                        announce => container.then_some(name.as_str()),
                        auth_include => format!("{secrets_dir}/{}", crate::model::secret_files::redis_auth_name(name)),
                    },
                ));
            }
            (Kind::Sentinel, _, Some(sentinel)) => {
                let Ok(master) = stack.reach(service, &sentinel.monitors) else {
                    continue;
                };
                for instance in stack.instances(name, service) {
                    let dir = if container {
                        "/data".to_string()
                    } else {
                        format!("{}/{}", stack.deploy.state_dir, instance.name)
                    };
                    out.push(Output::new(
                        paths::sentinel_conf(name, &instance.name),
                        "redis/sentinel.conf.j2",
                        context! {
                            service => name,
                            instance => &instance.name,
                            bind,
                            port => instance.port,
                            dir,
                            master => super::ser(&master),
                            s => super::ser(sentinel),
                            down_after => sentinel.down_after.millis(),
                            failover_timeout => sentinel.failover_timeout.millis(),
                            announce => container.then_some(instance.name.as_str()),
                        },
                    ));
                }
            }
            _ => {}
        }
    }
    out
}
