//! The services an alert watches: the one it names, or the only one of a kind, and the
//! exporter that reads it. A model that lacks them gets a problem saying what to add.

use super::AlertProblem;
use crate::model::{Alert, Kind, Service, Stack};

/// The exporter service of `kind` whose `exporter.target` is `target`.
fn exporter_for<'a>(stack: &'a Stack, kind: Kind, target: &str) -> Option<&'a str> {
    stack
        .services
        .iter()
        .find(|(_, s)| s.kind == kind && s.exporter.as_ref().is_some_and(|e| e.target == target))
        .map(|(name, _)| name.as_str())
}

/// The service `alert.service` names, or the only service of `kind` when unset.
pub(super) fn named_or_only<'a>(
    stack: &'a Stack,
    alert: &Alert,
    kind: Kind,
    problems: &mut Vec<AlertProblem>,
) -> Option<&'a str> {
    if let Some(name) = &alert.service {
        return match stack.services.get_key_value(name) {
            Some((key, s)) if s.kind == kind => Some(key.as_str()),
            Some((_, s)) => {
                problems.push(AlertProblem {
                    rule: "TG501",
                    field: "service",
                    message: format!(
                        "alert `{}` ({}) needs a `{}` service, `{name}` is a `{}`",
                        alert.name,
                        alert.kind.as_str(),
                        kind.as_str(),
                        s.kind.as_str()
                    ),
                    help: format!("name a `{}` service", kind.as_str()),
                });
                None
            }
            None => {
                problems.push(unknown_service(alert, name));
                None
            }
        };
    }
    let all: Vec<&str> = stack
        .services
        .iter()
        .filter(|(_, s)| s.kind == kind)
        .map(|(n, _)| n.as_str())
        .collect();
    match all.as_slice() {
        [only] => Some(only),
        [] => {
            problems.push(AlertProblem {
                rule: "TG501",
                field: "kind",
                message: format!(
                    "alert `{}` ({}) needs a `{}` service, and the stack has none",
                    alert.name,
                    alert.kind.as_str(),
                    kind.as_str()
                ),
                help: format!(
                    "add a service with kind = \"{}\" (its metrics are what the alert reads), or drop the alert",
                    kind.as_str()
                ),
            });
            None
        }
        _ => {
            problems.push(AlertProblem {
                rule: "TG502",
                field: "service",
                message: format!(
                    "alert `{}` ({}) could watch several `{}` services",
                    alert.name,
                    alert.kind.as_str(),
                    kind.as_str()
                ),
                help: format!("set service to one of: {}", all.join(", ")),
            });
            None
        }
    }
}

pub(super) fn unknown_service(alert: &Alert, name: &str) -> AlertProblem {
    AlertProblem {
        rule: "TG501",
        field: "service",
        message: format!("alert `{}` watches unknown service `{name}`", alert.name),
        help: "name a service of [services]".into(),
    }
}

/// The service `alert.service` names, which must be one of `kinds`.
pub(super) fn watched<'a>(
    stack: &'a Stack,
    alert: &Alert,
    kinds: &[Kind],
    problems: &mut Vec<AlertProblem>,
) -> Option<(&'a str, &'a Service)> {
    let Some(name) = &alert.service else {
        problems.push(AlertProblem {
            rule: "TG502",
            field: "service",
            message: format!(
                "alert `{}` ({}) does not say which service it watches",
                alert.name,
                alert.kind.as_str()
            ),
            help: "set service".into(),
        });
        return None;
    };
    match stack.services.get_key_value(name) {
        None => {
            problems.push(unknown_service(alert, name));
            None
        }
        Some((key, s)) if kinds.contains(&s.kind) => Some((key.as_str(), s)),
        Some((_, s)) => {
            let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            problems.push(AlertProblem {
                rule: "TG501",
                field: "service",
                message: format!(
                    "alert `{}` ({}) cannot watch `{name}`, a `{}` service",
                    alert.name,
                    alert.kind.as_str(),
                    s.kind.as_str()
                ),
                help: format!("name a service of kind {}", kinds.join(" or ")),
            });
            None
        }
    }
}

/// The exporter of `kind` watching `target`, or a TG501 problem saying to add one.
pub(super) fn require_exporter<'a>(
    stack: &'a Stack,
    alert: &Alert,
    kind: Kind,
    target: &str,
    problems: &mut Vec<AlertProblem>,
) -> Option<&'a str> {
    let found = exporter_for(stack, kind, target);
    if found.is_none() {
        problems.push(AlertProblem {
            rule: "TG501",
            field: "service",
            message: format!(
                "alert `{}` ({}) needs a `{}` watching `{target}`, and the stack has none",
                alert.name,
                alert.kind.as_str(),
                kind.as_str()
            ),
            help: format!(
                "add a service with kind = \"{}\" and exporter.target = \"{target}\"",
                kind.as_str()
            ),
        });
    }
    found
}
