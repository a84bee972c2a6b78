//! nginx.conf of every `nginx` reverse proxy: listens on the service's port, passes
//! requests to its API at the address the topology gives, limits rate and body size.

use minijinja::{Value, context};

use super::Output;
use crate::model::nginx::{DOCKER_DNS, HEALTH_PATH};
use crate::model::units::ByteSize;
use crate::model::{Deploy, Kind, Model, Service, Stack, paths};

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    stack
        .services
        .iter()
        .filter(|(_, service)| service.kind == Kind::Nginx)
        .map(|(name, service)| {
            let ctx = context(stack, name, service)
                .unwrap_or_else(|problem| context! { refused => problem });
            Output::new(paths::nginx_conf(name), "nginx/nginx.conf.j2", ctx)
        })
        .collect()
}

fn context(stack: &Stack, name: &str, service: &Service) -> Result<Value, String> {
    let settings = service
        .nginx
        .as_ref()
        .ok_or_else(|| format!("services.{name} has no [services.{name}.nginx] table"))?;
    let endpoint = stack
        .reach(service, &settings.upstream)
        .map_err(|_| format!("services.{name} cannot reach `{}`", settings.upstream))?;
    // Container names change address when recreated; literal and host addresses do not.
    let by_container_name = service.deploy == Deploy::Container
        && stack
            .service(&settings.upstream)
            .is_some_and(|u| u.deploy == Deploy::Container);
    let listen = match service.deploy {
        Deploy::Container => service.port.to_string(),
        Deploy::Native => format!(
            "{}:{}",
            service.listen.as_deref().unwrap_or("127.0.0.1"),
            service.port
        ),
    };
    Ok(context! {
        service => name,
        upstream => &settings.upstream,
        upstream_address => endpoint.to_string(),
        resolver => by_container_name.then_some(DOCKER_DNS),
        listen,
        health_path => HEALTH_PATH,
        workers => (service.cpus.ceil() as u64).max(1),
        worker_connections => settings.worker_connections,
        max_body_size => nginx_size(settings.max_body_size),
        rate_limit => settings.rate_limit,
        burst => settings.burst,
        read_timeout => settings.read_timeout.prometheus(),
    })
}

/// A size in nginx's spelling: the largest exact unit of `g`, `m`, `k`, else bytes.
pub fn nginx_size(size: ByteSize) -> String {
    size.with_units(&[("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(nginx_size(ByteSize(1 << 20)), "1m");
        assert_eq!(nginx_size(ByteSize(3 << 30)), "3g");
        assert_eq!(nginx_size(ByteSize(1536)), "1536");
        assert_eq!(nginx_size(ByteSize(0)), "0");
    }
}
