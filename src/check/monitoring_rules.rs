//! Model rules of the monitoring layer: alerts that cannot be built (missing exporter,
//! wrong service, invalid fields), scrape targets Prometheus cannot reach, and custom
//! alerts without a firing test. They use the renderer's own builders, so a model that
//! passes renders exactly what was checked.

use std::collections::BTreeMap;

use super::Ctx;
use crate::finding::Severity;
use crate::model::alerting::{native_unreachable_from_containers, prometheus_service};
use crate::model::{AlertKind, Deploy, Unreachable, kinds};

pub fn run(cx: &mut Ctx<'_>) {
    alerts(cx);
    scrape_targets(cx);
}

fn alerts(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let mut reports = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, (alert, built)) in stack.alerts.iter().zip(cx.model.built_alerts()).enumerate() {
        let base = format!("alerts.{index}");
        if let Some(first) = seen.insert(alert.name.as_str(), index) {
            reports.push((
                "TG502",
                Severity::Error,
                format!("{base}.name"),
                format!(
                    "alert `{}` is declared twice (alerts {first} and {index})",
                    alert.name
                ),
                "give every alert its own name".to_string(),
            ));
        }
        if let Err(problems) = built {
            for problem in problems {
                let path = if problem.field.is_empty() {
                    base.clone()
                } else {
                    format!("{base}.{}", problem.field)
                };
                reports.push((
                    problem.rule,
                    Severity::Error,
                    path,
                    problem.message.clone(),
                    problem.help.clone(),
                ));
            }
        } else if alert.kind == AlertKind::Custom && alert.test.is_none() {
            reports.push((
                "TG504",
                Severity::Warning,
                base.clone(),
                format!(
                    "custom alert `{}` has no test: nothing proves it can fire",
                    alert.name
                ),
                "add [alerts.test] with input series and the expected summary/description"
                    .to_string(),
            ));
        }
    }
    for (rule, severity, path, message, help) in reports {
        cx.report_key(rule, severity, &path, message, help);
    }
}

/// Every service with a metrics endpoint must be reachable from Prometheus (incident 11).
fn scrape_targets(cx: &mut Ctx<'_>) {
    let stack = cx.stack();
    let Some((prom_name, prometheus)) = prometheus_service(stack) else {
        return;
    };
    let mut reports = Vec::new();
    for (name, service) in &stack.services {
        let Some((port, _)) = kinds::scrape_endpoint(service) else {
            continue;
        };
        let publish = (port == service.port).then_some(service.publish).flatten();
        match stack.reach_port(prometheus, name, port, publish) {
            Err(Unreachable::NoSharedNetwork) => reports.push((
                format!("services.{name}.networks"),
                format!("Prometheus (`{prom_name}`) cannot scrape `{name}`: no shared network"),
                format!("add a network of `{prom_name}` to services.{name}.networks"),
            )),
            Err(Unreachable::NotPublished) => reports.push((
                format!("services.{name}.publish"),
                format!("native Prometheus (`{prom_name}`) cannot reach `{name}`: its metrics port is not published"),
                "publish the port, or run Prometheus as a container".to_string(),
            )),
            Err(Unreachable::UnknownService) => {}
            Ok(_) => {
                if prometheus.deploy == Deploy::Container
                    && native_unreachable_from_containers(stack, service)
                {
                    reports.push((
                        format!("services.{name}.listen"),
                        format!(
                            "`{name}` listens on {} only; Prometheus scrapes it from a container through host.docker.internal and cannot reach a loopback address",
                            stack.listen_address(service)
                        ),
                        "set listen to the Docker bridge address host.docker.internal resolves to (e.g. \"172.17.0.1\")".to_string(),
                    ));
                }
            }
        }
    }
    for (path, message, help) in reports {
        cx.report_key("TG503", Severity::Error, &path, message, help);
    }
}
