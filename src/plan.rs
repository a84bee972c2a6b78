//! What a render would change on disk, and what a deploy must then do: files added,
//! changed and removed, and per service whether it is recreated (its compose definition
//! changed), restarted or reloaded (a file it mounts or reads changed), whether
//! migrations run and whether RabbitMQ's definitions are imported again.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::model::{Deploy, Kind, Model};
use crate::tree::{Drift, Tree, compare};

/// What a deploy does to one service, mildest first: the strongest one a service needs is
/// the one it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Re-reads its config in place (SIGHUP, `RELOAD`, `/-/reload`, provisioning).
    Reload,
    /// RabbitMQ's definitions imported into the running broker.
    Import,
    /// Database migrations (`tg-gateway migrate`).
    Migrate,
    /// Restarted with the same definition.
    Restart,
    /// Recreated: its compose definition changed (`docker compose up -d`).
    Recreate,
    /// Gone from the compose file.
    Remove,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Reload => "reload",
            Step::Import => "import",
            Step::Migrate => "migrate",
            Step::Restart => "restart",
            Step::Recreate => "recreate",
            Step::Remove => "remove",
        }
    }
}

/// What a deploy does to one service, and the rendered files that make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub service: String,
    pub step: Step,
    pub because: Vec<String>,
}

/// A render's effect on an output directory.
#[derive(Debug, Clone)]
pub struct Plan {
    pub drift: Vec<Drift>,
    pub unchanged: usize,
    pub actions: Vec<Action>,
}

const COMPOSE: &str = "docker-compose.yml";

impl Plan {
    /// `expected` (what the model renders) against `actual` (what the directory holds).
    pub fn new(model: &Model, expected: &Tree, actual: &Tree) -> Plan {
        let drift = compare(expected, actual);
        let unchanged = expected.len()
            - drift
                .iter()
                .filter(|d| !matches!(d, Drift::Extra(_)))
                .count();
        let changed: Vec<&str> = drift.iter().map(drift_path).collect();
        let mut actions: BTreeMap<String, (Step, Vec<String>)> = BTreeMap::new();
        let mut add = |service: &str, step: Step, file: &str| {
            let entry = actions
                .entry(service.to_string())
                .or_insert((step, Vec::new()));
            entry.0 = entry.0.max(step);
            if !entry.1.iter().any(|f| f == file) {
                entry.1.push(file.to_string());
            }
        };
        compose_actions(model, expected, actual, &changed, &mut add);
        native_actions(model, &changed, &mut add);
        for file in &changed {
            if is_migration(model, file) {
                add("(database)", Step::Migrate, file);
            }
        }
        let actions = actions
            .into_iter()
            .map(|(service, (step, because))| Action {
                service,
                step,
                because,
            })
            .collect();
        Plan {
            drift,
            unchanged,
            actions,
        }
    }

    pub fn has_changes(&self) -> bool {
        !self.drift.is_empty()
    }

    /// Nothing was there before: every file is new.
    pub fn is_first(&self) -> bool {
        self.unchanged == 0 && self.drift.iter().all(|d| matches!(d, Drift::Missing(_)))
    }

    /// `1 to add, 2 to change, 0 to remove, 58 unchanged`.
    pub fn summary(&self) -> String {
        let [added, changed, removed] = self.counts();
        format!(
            "{added} to add, {changed} to change, {removed} to remove, {} unchanged",
            self.unchanged
        )
    }

    /// `1 added, 2 changed, 0 removed, 58 unchanged`, once written.
    pub fn done(&self) -> String {
        let [added, changed, removed] = self.counts();
        format!(
            "{added} added, {changed} changed, {removed} removed, {} unchanged",
            self.unchanged
        )
    }

    fn counts(&self) -> [usize; 3] {
        let count = |f: fn(&Drift) -> bool| self.drift.iter().filter(|d| f(d)).count();
        [
            count(|d| matches!(d, Drift::Missing(_))),
            count(|d| matches!(d, Drift::Changed(_))),
            count(|d| matches!(d, Drift::Extra(_))),
        ]
    }

    /// The files (`+`, `~`, `-`) and the services' steps, as `plan` prints them.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for item in &self.drift {
            let (sign, path) = match item {
                Drift::Missing(p) => ('+', p),
                Drift::Changed(p) => ('~', p),
                Drift::Extra(p) => ('-', p),
            };
            let _ = writeln!(out, "  {sign} {path}");
        }
        if !self.actions.is_empty() {
            let width = self
                .actions
                .iter()
                .map(|a| a.service.len())
                .max()
                .unwrap_or(0);
            let _ = writeln!(out, "\ndeploy:");
            const NAMED: usize = 3;
            for action in &self.actions {
                let mut because = action.because[..action.because.len().min(NAMED)].join(", ");
                if action.because.len() > NAMED {
                    because += &format!(" and {} more", action.because.len() - NAMED);
                }
                let _ = writeln!(
                    out,
                    "  {:<width$}  {:<8}  {because}",
                    action.service,
                    action.step.as_str(),
                );
            }
        }
        out
    }
}

fn drift_path(drift: &Drift) -> &str {
    match drift {
        Drift::Missing(p) | Drift::Changed(p) | Drift::Extra(p) => p,
    }
}

/// The compose file's services, by name.
fn compose_services(tree: &Tree) -> BTreeMap<String, Value> {
    tree.get(COMPOSE)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| serde_saphyr::from_str::<Value>(text).ok())
        .and_then(|doc| doc.get("services")?.as_object().cloned())
        .map(|services| services.into_iter().collect())
        .unwrap_or_default()
}

/// The model service a compose service is an instance of (`sentinel-2` of `sentinel`).
fn model_service<'a>(model: &'a Model, compose_name: &str) -> Option<&'a crate::model::Service> {
    model.stack.service(compose_name).or_else(|| {
        let (base, number) = compose_name.rsplit_once('-')?;
        number.parse::<u32>().ok()?;
        model.stack.service(base)
    })
}

/// How a service takes a change of a file it mounts.
fn step_for(kind: Option<Kind>, file: &str) -> Step {
    match kind {
        Some(Kind::Prometheus | Kind::Pgbouncer | Kind::Nginx) => Step::Reload,
        Some(Kind::Grafana) if file.contains("/dashboards") => Step::Reload,
        Some(Kind::Rabbitmq) if file.ends_with("definitions.json") => Step::Import,
        _ => Step::Restart,
    }
}

fn compose_actions(
    model: &Model,
    expected: &Tree,
    actual: &Tree,
    changed: &[&str],
    add: &mut impl FnMut(&str, Step, &str),
) {
    let new = compose_services(expected);
    let old = compose_services(actual);
    for name in old.keys().filter(|name| !new.contains_key(*name)) {
        add(name, Step::Remove, COMPOSE);
    }
    for (name, definition) in &new {
        if old.get(name) != Some(definition) {
            add(name, Step::Recreate, COMPOSE);
        }
        let kind = model_service(model, name).map(|s| s.kind);
        let mounts = definition["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for mount in mounts {
            let Some(source) = mount["source"].as_str().and_then(|s| s.strip_prefix("./")) else {
                continue;
            };
            for file in changed {
                let under = file
                    .strip_prefix(source)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                if under {
                    add(name, step_for(kind, file), file);
                }
            }
        }
    }
}

/// Native services: their unit, and the model copy they read at start.
fn native_actions(model: &Model, changed: &[&str], add: &mut impl FnMut(&str, Step, &str)) {
    for (name, service) in &model.stack.services {
        if service.deploy != Deploy::Native {
            continue;
        }
        let unit = format!("systemd/{name}.service");
        for file in changed {
            let reads_model =
                file.starts_with("model/") && matches!(service.kind, Kind::Gateway | Kind::Api);
            if *file == unit || reads_model {
                add(name, Step::Restart, file);
            }
        }
    }
}

/// A rendered migration of a postgres service.
fn is_migration(model: &Model, file: &str) -> bool {
    model.stack.services.iter().any(|(name, service)| {
        service.kind == Kind::Postgres && file.starts_with(&format!("{name}/sql/"))
    })
}
