//! postgresql.conf, pg_hba.conf and the roles script of every `postgres` service.

use minijinja::context;

use super::Output;
use crate::model::{Deploy, Kind, Model, PostgresVariant, paths};

/// The psql variable roles.sql reads the replication role's password from (prefixed, so
/// no role of the model can have it too).
pub const REPLICATION_PASSWORD_VAR: &str = "tgstack_replication_password";
/// The variable the entrypoint reads the replication password from (a compose
/// interpolation), or with `_FILE` the path of its secret file (swarm).
pub const ENTRYPOINT_PASSWORD_VAR: &str = "TGSTACK_REPLICATION_PASSWORD";

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let mut out = Vec::new();
    for (name, service) in &stack.services {
        let (Kind::Postgres, Some(pg)) = (service.kind, &service.postgres) else {
            continue;
        };
        // In a container the server must listen on the container network (incident 10).
        let listen_addresses = match service.deploy {
            Deploy::Container => "*",
            Deploy::Native => "127.0.0.1",
        };
        let preload: Vec<&str> = match pg.variant {
            PostgresVariant::Timescaledb => vec!["timescaledb", "pg_stat_statements"],
            PostgresVariant::Plain => vec!["pg_stat_statements"],
        };
        // pg_hba admits exactly the declared networks the server joins, never more.
        let subnets: Vec<(String, String)> = service
            .networks
            .iter()
            .filter_map(|n| {
                stack
                    .networks
                    .get(n)
                    .map(|net| (n.clone(), net.subnet.clone()))
            })
            .collect();
        let roles: Vec<_> = pg
            .roles
            .iter()
            .map(|(role, spec)| {
                context! {
                    name => role,
                    access => format!("{:?}", spec.access).to_lowercase(),
                    connection_limit => spec.connection_limit,
                    password_var => format!("{}_password", role.to_lowercase()),
                    password_env => stack.secret_env(&spec.password.secret).unwrap_or_default(),
                }
            })
            .collect();
        let standby = pg.standby.as_ref().map(|standby| {
            context! {
                user => &standby.user,
                password_var => REPLICATION_PASSWORD_VAR,
                password_env => stack.secret_env(&standby.password.secret).unwrap_or_default(),
                wal_keep => standby.wal_keep.postgres(),
            }
        });
        if let Some(standby) = &pg.standby {
            out.push(Output::new(
                paths::postgres_entrypoint(name),
                "postgres/entrypoint.sh.j2",
                context! {
                    service => name,
                    port => service.port,
                    user => &standby.user,
                    password_file_var => format!("{ENTRYPOINT_PASSWORD_VAR}_FILE"),
                    password_var => ENTRYPOINT_PASSWORD_VAR,
                    data => paths::POSTGRES_DATA,
                    marker => paths::POSTGRES_COPYING_MARKER,
                },
            ));
        }
        out.push(Output::new(
            paths::postgresql_conf(name),
            "postgres/postgresql.conf.j2",
            context! {
                service => name,
                port => service.port,
                listen_addresses,
                preload,
                pg => super::ser(pg),
                shared_buffers => pg.shared_buffers.postgres(),
                effective_cache_size => pg.effective_cache_size.postgres(),
                maintenance_work_mem => pg.maintenance_work_mem.postgres(),
                work_mem => pg.work_mem.postgres(),
                wal_buffers => pg.wal_buffers.postgres(),
                min_wal_size => pg.min_wal_size.postgres(),
                max_wal_size => pg.max_wal_size.postgres(),
                statement_timeout_ms => pg.statement_timeout.millis(),
                password_encryption => pg.password_encryption.as_str(),
                standby => standby.clone(),
            },
        ));
        out.push(Output::new(
            paths::pg_hba_conf(name),
            "postgres/pg_hba.conf.j2",
            context! {
                service => name,
                superuser => &pg.superuser,
                database => &pg.database,
                method => pg.password_encryption.as_str(),
                subnets,
                container => service.deploy == Deploy::Container,
                standby => standby.clone(),
            },
        ));
        out.push(Output::new(
            paths::roles_sql(name),
            "postgres/roles.sql.j2",
            context! {
                service => name,
                database => &pg.database,
                schema => &pg.schema,
                roles,
                standby,
            },
        ));
    }
    out
}
