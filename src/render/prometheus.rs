//! Prometheus: `prometheus.yml` (scrape jobs from the model), one rule file per alert
//! severity, the promtool unit tests of those rules, and the custom queries file of each
//! postgres-exporter.

use std::collections::BTreeMap;

use minijinja::context;
use serde::Serialize;

use super::Output;
use crate::catalog::postgres_exporter;
use crate::model::alerting::{self, BuiltAlert};
use crate::model::{AlertSeverity, Kind, Model, PostgresVariant, paths};

/// Where each postgres-exporter reads its custom queries.
pub const QUERIES_PATH: &str = "/etc/postgres-exporter/queries.yaml";

/// Rule files of the model's alerts that build, by severity: `(file name, alerts)`.
pub fn rule_files(model: &Model) -> BTreeMap<AlertSeverity, Vec<&BuiltAlert>> {
    let mut files: BTreeMap<AlertSeverity, Vec<&BuiltAlert>> = BTreeMap::new();
    for alert in model.built_alerts().iter().flatten() {
        files.entry(alert.severity).or_default().push(alert);
    }
    files
}

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let mut out = Vec::new();
    for (name, service) in &stack.services {
        match (service.kind, &service.prometheus) {
            (Kind::Prometheus, Some(settings)) => {
                let files = rule_files(model);
                let rule_names: Vec<String> = files
                    .keys()
                    .map(|s| paths::prometheus_rule_file(*s))
                    .collect();
                out.push(Output::new(
                    paths::prometheus_yml(name),
                    "prometheus/prometheus.yml.j2",
                    context! {
                        stack => &stack.name,
                        scrape_interval => settings.scrape_interval.prometheus(),
                        evaluation_interval => settings.evaluation_interval.prometheus(),
                        rule_files => &rule_names,
                        jobs => super::ser(alerting::scrape_jobs(stack, service)),
                    },
                ));
                let mut tests = Vec::new();
                for (severity, alerts) in &files {
                    tests.extend(alerts.iter().filter_map(|a| a.test.clone()));
                    out.push(Output::new(
                        paths::prometheus_file(name, &paths::prometheus_rule_file(*severity)),
                        "prometheus/rules.yml.j2",
                        context! {
                            stack => &stack.name,
                            severity => severity.as_str(),
                            group => format!("{}-{}", stack.name, severity.as_str()),
                            alerts => super::ser(alerts),
                        },
                    ));
                }
                if !tests.is_empty() {
                    // Paths in a test file are relative to the test file.
                    let from_tests: Vec<String> =
                        rule_names.iter().map(|f| format!("../{f}")).collect();
                    out.push(Output::new(
                        paths::prometheus_file(name, paths::PROMETHEUS_TESTS),
                        "prometheus/alerts.test.yml.j2",
                        context! {
                            self_path => paths::prometheus_file(name, paths::PROMETHEUS_TESTS),
                            rule_files => from_tests,
                            interval => settings.evaluation_interval.prometheus(),
                            tests => super::ser(&tests),
                        },
                    ));
                }
            }
            (Kind::PostgresExporter, _) => {
                let Some(target) = service.exporter.as_ref().map(|e| &e.target) else {
                    continue;
                };
                let Some(pg) = stack.service(target).and_then(|t| t.postgres.as_ref()) else {
                    continue;
                };
                out.push(Output::new(
                    format!("{name}/queries.yaml"),
                    "prometheus/postgres_exporter_queries.yaml.j2",
                    context! {
                        service => name,
                        schema => &pg.schema,
                        database => &pg.database,
                        queries => super::ser(custom_queries(&pg.schema, pg.variant)),
                    },
                ));
            }
            _ => {}
        }
    }
    out
}

/// One query of the postgres-exporter custom queries file.
#[derive(Debug, Serialize)]
pub struct CustomQuery {
    pub name: &'static str,
    pub sql: String,
    pub columns: Vec<Column>,
}

#[derive(Debug, Serialize)]
pub struct Column {
    pub name: &'static str,
    /// `LABEL` or `GAUGE`.
    pub usage: &'static str,
    pub description: &'static str,
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A `LABEL` column, or the catalog family `<query>_<column>` as a `GAUGE`.
fn column(query: &str, name: &'static str, label: bool) -> Column {
    if label {
        return Column {
            name,
            usage: "LABEL",
            description: "label",
        };
    }
    let family = format!("{query}_{name}");
    let help = postgres_exporter::CUSTOM
        .iter()
        .find(|m| m.name == family)
        .map(|m| m.help)
        .unwrap_or("");
    Column {
        name,
        usage: "GAUGE",
        description: help,
    }
}

/// The custom queries, over the tables of the stack's SQL contract (`outbox`,
/// `channels`, `messages` in `schema`). Their families are `catalog::postgres_exporter::CUSTOM`.
pub fn custom_queries(schema: &str, variant: PostgresVariant) -> Vec<CustomQuery> {
    let s = ident(schema);
    let size = match variant {
        // Chunks are child tables: only hypertable_size counts them.
        PostgresVariant::Timescaledb => "hypertable_size",
        PostgresVariant::Plain => "pg_total_relation_size",
    };
    let messages_regclass = format!("{s}.messages").replace('\'', "''");
    vec![
        CustomQuery {
            name: "tg_outbox",
            sql: format!(
                "SELECT count(*) AS pending, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS oldest_age_seconds FROM {s}.outbox WHERE published_at IS NULL"
            ),
            columns: vec![
                column("tg_outbox", "pending", false),
                column("tg_outbox", "oldest_age_seconds", false),
            ],
        },
        CustomQuery {
            name: "tg_channel",
            sql: format!(
                "SELECT c.channel_id::text AS channel_id, COALESCE(c.username, '') AS username, EXTRACT(EPOCH FROM now() - m.posted_at) AS last_message_age_seconds FROM {s}.channels c LEFT JOIN LATERAL (SELECT posted_at FROM {s}.messages WHERE channel_id = c.channel_id ORDER BY posted_at DESC LIMIT 1) m ON true WHERE c.enabled"
            ),
            columns: vec![
                column("tg_channel", "channel_id", true),
                column("tg_channel", "username", true),
                column("tg_channel", "last_message_age_seconds", false),
            ],
        },
        CustomQuery {
            name: "tg_storage",
            sql: format!("SELECT {size}('{messages_regclass}'::regclass) AS messages_bytes"),
            columns: vec![column("tg_storage", "messages_bytes", false)],
        },
    ]
}
