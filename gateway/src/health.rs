//! Connection status of each dependency, shared by the pipeline, the probes and `/health`,
//! mirrored into `tg_gateway_dependency_up`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Dependencies the gateway reports.
pub const POSTGRES: &str = "postgres";
pub const REDIS: &str = "redis";
pub const RABBITMQ: &str = "rabbitmq";
pub const TELEGRAM: &str = "telegram";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DependencyState {
    pub up: bool,
    /// Why it is down (never holds a secret: error texts of clients, not URLs).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct Health {
    states: Arc<Mutex<BTreeMap<&'static str, DependencyState>>>,
}

/// The `/health` document.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ok` when everything is up, `degraded` when the gateway still stores messages but
    /// something else is down, `down` when it cannot store.
    pub status: &'static str,
    pub dependencies: BTreeMap<&'static str, DependencyState>,
}

impl Health {
    pub fn new(dependencies: &[&'static str]) -> Self {
        let health = Health::default();
        for dependency in dependencies {
            health.set(dependency, false, "not checked yet");
        }
        health
    }

    pub fn set(&self, dependency: &'static str, up: bool, detail: impl Into<String>) {
        let detail = if up { String::new() } else { detail.into() };
        metrics::gauge!(crate::metrics::DEPENDENCY_UP, "dependency" => dependency).set(if up {
            1.0
        } else {
            0.0
        });
        if let Ok(mut states) = self.states.lock() {
            states.insert(dependency, DependencyState { up, detail });
        }
    }

    pub fn is_up(&self, dependency: &str) -> bool {
        self.states
            .lock()
            .map(|s| s.get(dependency).is_some_and(|d| d.up))
            .unwrap_or(false)
    }

    pub fn report(&self) -> Report {
        let dependencies = self.states.lock().map(|s| s.clone()).unwrap_or_default();
        let status = if dependencies.get(POSTGRES).is_some_and(|d| !d.up) {
            "down"
        } else if dependencies.values().all(|d| d.up) {
            "ok"
        } else {
            "degraded"
        };
        Report {
            status,
            dependencies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_down_without_postgres_and_degraded_without_others() {
        let health = Health::new(&[POSTGRES, REDIS]);
        assert_eq!(health.report().status, "down");
        health.set(POSTGRES, true, "");
        assert_eq!(health.report().status, "degraded");
        health.set(REDIS, true, "");
        assert_eq!(health.report().status, "ok");
        health.set(REDIS, false, "connection refused");
        let report = health.report();
        assert_eq!(report.status, "degraded");
        assert_eq!(report.dependencies[REDIS].detail, "connection refused");
    }
}
