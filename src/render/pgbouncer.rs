//! pgbouncer.ini of every `pgbouncer` service. The userlist holds passwords and is
//! written only at deploy time (see `secrets`).

use minijinja::context;

use super::Output;
use crate::model::{Deploy, Kind, Model, PoolMode, paths};

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let mut out = Vec::new();
    for (name, service) in &stack.services {
        let (Kind::Pgbouncer, Some(bouncer)) = (service.kind, &service.pgbouncer) else {
            continue;
        };
        let Some(upstream) = stack.service(&bouncer.upstream) else {
            continue;
        };
        let Some(pg) = &upstream.postgres else {
            continue;
        };
        let Ok(server) = stack.reach(service, &bouncer.upstream) else {
            continue;
        };
        let auth_type = bouncer.auth_type.unwrap_or(pg.password_encryption);
        let pool_mode = match bouncer.pool_mode {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        };
        let listen_addr = match service.deploy {
            Deploy::Container => "0.0.0.0",
            Deploy::Native => "127.0.0.1",
        };
        let stats_users: Vec<String> = bouncer.stats.iter().map(|s| s.user.clone()).collect();
        out.push(Output::new(
            paths::pgbouncer_ini(name),
            "pgbouncer/pgbouncer.ini.j2",
            context! {
                service => name,
                upstream => &bouncer.upstream,
                database => &pg.database,
                server => super::ser(&server),
                listen_addr,
                port => service.port,
                pool_mode,
                auth_type => auth_type.as_str(),
                auth_file => format!("{}/{}", stack.deploy.secrets_dir, crate::model::secret_files::userlist_name(name)),
                b => super::ser(bouncer),
                admin_user => &bouncer.admin.user,
                stats_users,
                query_timeout => bouncer.query_timeout.seconds(),
                server_idle_timeout => bouncer.server_idle_timeout.seconds(),
            },
        ));
    }
    out
}
