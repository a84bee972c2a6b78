//! Each config dialect checked against its program's own catalog (see `catalog`): the file
//! alone, with no model. Syntax, unknown settings (with the nearest known name) and values
//! of the wrong type, unit, range or enum. The artifact checks report these as TG022 in a
//! rendered tree; `tgstack audit` reports them in hand-written files.

pub mod catalog;
mod compose;
mod pgbouncer;
mod postgres;
mod rabbitmq;
mod redis;
mod systemd;
pub(crate) mod values;

pub use compose::{
    Mount, PortSpec, compose_file, compose_key_line, mount, port_spec, with_defaults,
};
pub use pgbouncer::pgbouncer_ini;
pub use postgres::postgresql_conf;
pub use rabbitmq::rabbitmq_conf;
pub use redis::{redis_conf, sentinel_conf};
pub use systemd::systemd_unit;

pub use catalog::Release;

use crate::check::artifacts::parse::SyntaxIssue;
use crate::suggest::did_you_mean;

/// A problem of one line of a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub line: usize,
    pub message: String,
    pub hint: String,
}

impl Issue {
    fn new(line: usize, message: impl Into<String>, hint: impl Into<String>) -> Issue {
        Issue {
            line,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// `key` is not in the catalog of `program`; the hint names the nearest known key.
    fn unknown<'a>(
        line: usize,
        what: &str,
        key: &str,
        program: &str,
        known: impl Iterator<Item = &'a str>,
    ) -> Issue {
        let hint = did_you_mean(key, known);
        Issue::new(
            line,
            format!("unknown {what} `{key}` ({program})"),
            if hint.is_empty() {
                format!("remove it: {program} does not know it")
            } else {
                hint
            },
        )
    }

    fn from_syntax(issues: Vec<SyntaxIssue>) -> Vec<Issue> {
        issues
            .into_iter()
            .map(|i| Issue::new(i.line, i.message, "fix the line"))
            .collect()
    }
}

/// The config dialects tgstack knows from their programs' catalogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dialect {
    Postgresql,
    Pgbouncer,
    Redis,
    Sentinel,
    Rabbitmq,
    Systemd,
    Compose,
}

impl Dialect {
    /// Checks one file of this dialect for `release` of its program; `file_name` matters
    /// for systemd (the unit type is its suffix).
    pub fn check(self, file_name: &str, text: &str, release: Release<'_>) -> Vec<Issue> {
        use catalog::{PGBOUNCER, POSTGRESQL, RABBITMQ, REDIS};
        match self {
            Dialect::Postgresql => postgresql_conf(text, POSTGRESQL.pick(release)),
            Dialect::Pgbouncer => pgbouncer_ini(text, PGBOUNCER.pick(release)),
            Dialect::Redis => redis_conf(text, REDIS.pick(release)),
            Dialect::Sentinel => sentinel_conf(text, REDIS.pick(release)),
            Dialect::Rabbitmq => rabbitmq_conf(text, RABBITMQ.pick(release)),
            Dialect::Systemd => systemd_unit(text, file_name),
            Dialect::Compose => match serde_saphyr::from_str::<serde_json::Value>(text) {
                Ok(document) => compose_file(text, &document),
                Err(e) => vec![Issue::new(
                    crate::check::artifacts::parse::error_line(&e.to_string()).unwrap_or(1),
                    format!("not valid YAML: {e}"),
                    "fix the YAML",
                )],
            },
        }
    }
}
