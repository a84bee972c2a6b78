//! rabbitmq.conf, enabled_plugins and the topology definitions (vhost, exchanges,
//! queues, dead-lettering, bindings). Users and permissions carry password hashes and
//! are written only at deploy time (see `secrets`).

use minijinja::context;
use serde_json::{Map, Value as Json, json};

use super::Output;
use crate::model::{Kind, Model, RabbitmqSettings, Service, Stack, paths};

/// Where the image reads definitions from; topology and users are two files there.
pub const DEFINITIONS_DIR: &str = "/etc/rabbitmq/definitions";
/// The Erlang cookie of a cluster member: `$HOME/.erlang.cookie` of the image's user,
/// which the server and the CLI (run as root with the same `HOME`) both read.
pub const COOKIE_PATH: &str = "/var/lib/rabbitmq/.erlang.cookie";
/// The (uid, gid) the cookie belongs to, with mode 0400 (Erlang refuses a cookie others
/// can read): the image's `rabbitmq` user. The official image's Ubuntu variants create it
/// as 999:999, its Alpine variants (the reference's) as 100:101; any other image is
/// taken to follow the Alpine variant, as the test stand-ins do.
pub fn cookie_owner(image: &str) -> (u32, u32) {
    let name = image.split(['@', ':']).next().unwrap_or(image);
    let tag = image.strip_prefix(name).unwrap_or_default();
    let official = matches!(
        name.trim_start_matches("docker.io/"),
        "rabbitmq" | "library/rabbitmq"
    );
    if official && !tag.contains("alpine") {
        (999, 999)
    } else {
        (100, 101)
    }
}

/// The Erlang node names of the members of a cluster (empty for one node): the
/// container host name is each member's name, so the names survive a recreation.
pub fn member_nodes(stack: &Stack, name: &str, service: &Service) -> Vec<String> {
    match &service.rabbitmq {
        Some(rabbit) if rabbit.is_cluster() => stack
            .instances(name, service)
            .into_iter()
            .map(|i| format!("rabbit@{}", i.name))
            .collect(),
        _ => Vec::new(),
    }
}

pub fn outputs(model: &Model) -> Vec<Output> {
    let mut out = Vec::new();
    for (name, service) in &model.stack.services {
        let (Kind::Rabbitmq, Some(rabbit)) = (service.kind, &service.rabbitmq) else {
            continue;
        };
        out.push(Output::new(
            paths::rabbitmq_conf(name),
            "rabbitmq/rabbitmq.conf.j2",
            context! {
                service => name,
                port => service.port,
                r => super::ser(rabbit),
                disk_free_limit => rabbit.disk_free_limit.0,
                definitions_dir => DEFINITIONS_DIR,
                members => member_nodes(&model.stack, name, service),
            },
        ));
        out.push(Output::new(
            paths::rabbitmq_plugins(name),
            "rabbitmq/enabled_plugins.j2",
            context! { service => name },
        ));
        let clustered = rabbit.is_cluster();
        let definitions =
            serde_json::to_string_pretty(&topology(rabbit, clustered)).unwrap_or_default();
        out.push(Output::new(
            paths::rabbitmq_definitions(name),
            "rabbitmq/definitions.json.j2",
            context! { definitions },
        ));
    }
    out
}

/// The broker topology as RabbitMQ definitions JSON. In a cluster the dead-letter queue
/// is a quorum queue too: a classic queue lives on one member and goes with it.
pub fn topology(rabbit: &RabbitmqSettings, clustered: bool) -> Json {
    let vhost = &rabbit.vhost;
    let exchange = |name: &str, kind: &str| {
        json!({
            "name": name, "vhost": vhost, "type": kind,
            "durable": true, "auto_delete": false, "internal": false, "arguments": {}
        })
    };
    let mut queues = Vec::new();
    let mut bindings = Vec::new();
    for queue in &rabbit.queues {
        let mut arguments = Map::new();
        arguments.insert("x-queue-type".into(), json!(queue.queue_type));
        if queue.dead_letter {
            arguments.insert(
                "x-dead-letter-exchange".into(),
                json!(rabbit.dead_letter_exchange),
            );
        }
        if let Some(ttl) = queue.message_ttl {
            arguments.insert("x-message-ttl".into(), json!(ttl.millis()));
        }
        queues.push(json!({
            "name": queue.name, "vhost": vhost, "durable": true, "auto_delete": false,
            "arguments": arguments
        }));
        bindings.push(json!({
            "source": rabbit.exchange, "vhost": vhost, "destination": queue.name,
            "destination_type": "queue", "routing_key": queue.binding, "arguments": {}
        }));
    }
    queues.push(json!({
        "name": rabbit.dead_letter_queue, "vhost": vhost, "durable": true,
        "auto_delete": false,
        "arguments": { "x-queue-type": if clustered { "quorum" } else { "classic" } }
    }));
    bindings.push(json!({
        "source": rabbit.dead_letter_exchange, "vhost": vhost,
        "destination": rabbit.dead_letter_queue, "destination_type": "queue",
        "routing_key": "#", "arguments": {}
    }));
    json!({
        "vhosts": [{ "name": vhost }],
        "exchanges": [
            exchange(&rabbit.exchange, "topic"),
            exchange(&rabbit.dead_letter_exchange, "topic"),
        ],
        "queues": queues,
        "bindings": bindings,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cookie_belongs_to_the_user_of_the_image_variant() {
        for (image, owner) in [
            ("rabbitmq:3.13.7-management-alpine", (100, 101)),
            ("docker.io/library/rabbitmq:3.13-alpine", (100, 101)),
            ("rabbitmq:3.13.7-management", (999, 999)),
            ("rabbitmq", (999, 999)),
            ("docker.io/rabbitmq@sha256:0123", (999, 999)),
            ("registry.example/rabbitmq-standin:1", (100, 101)),
        ] {
            assert_eq!(super::cookie_owner(image), owner, "{image}");
        }
    }
}
