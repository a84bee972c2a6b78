//! The database migrations of every `postgres` service, in two variants from one model:
//! TimescaleDB (hypertable, compression, retention, continuous aggregates) and plain
//! PostgreSQL (same tables and functions, materialized views). Both are always rendered,
//! into `<service>/sql/<variant>/NNN_name.sql`; `tg-gateway migrate` renders the same
//! files in memory through [`migration`].
//!
//! Every file is plain SQL (no psql meta-commands) so a client library can run it as one
//! simple query, and idempotent: applying the set twice changes nothing.

use minijinja::{Value, context};

use super::{Output, engine};
use crate::model::schema_names::MESSAGES_UNIQUE_CONSTRAINT;
use crate::model::units::Duration;
use crate::model::{Kind, Model, PostgresSettings, PostgresVariant, Stack, paths};

/// The migration files, applied in this order: (file stem, template).
pub const FILES: &[(&str, &str)] = &[
    ("001_schema", "sql/001_schema.sql.j2"),
    ("002_tables", "sql/002_tables.sql.j2"),
    ("003_indexes", "sql/003_indexes.sql.j2"),
    ("004_functions", "sql/004_functions.sql.j2"),
    ("005_aggregates", "sql/005_aggregates.sql.j2"),
    ("006_policies", "sql/006_policies.sql.j2"),
    ("007_views", "sql/007_views.sql.j2"),
    ("008_grants", "sql/008_grants.sql.j2"),
    ("009_channels", "sql/009_channels.sql.j2"),
];

/// Both variants, in the order they are rendered.
pub const VARIANTS: &[PostgresVariant] = &[PostgresVariant::Timescaledb, PostgresVariant::Plain];

/// The migration of `postgres_service` in `variant`: (file name, SQL) in apply order.
/// The same text `tgstack render` writes into `generated/<service>/sql/<variant>/`.
pub fn migration(
    stack: &Stack,
    postgres_service: &str,
    variant: PostgresVariant,
) -> Result<Vec<(String, String)>, String> {
    let pg = postgres_settings(stack, postgres_service)?;
    let env = engine::environment(None)?;
    let mut files = Vec::new();
    let channels = channels(stack);
    for (stem, template) in FILES {
        let ctx = context(postgres_service, pg, variant, stem, &channels)?;
        let text = env
            .get_template(template)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| {
                format!(
                    "cannot render {}: {}",
                    paths::migration(postgres_service, variant, stem),
                    engine::describe(&e)
                )
            })?;
        files.push((format!("{stem}.sql"), text));
    }
    Ok(files)
}

fn postgres_settings<'a>(stack: &'a Stack, name: &str) -> Result<&'a PostgresSettings, String> {
    let service = stack
        .service(name)
        .ok_or_else(|| format!("no service `{name}` in the model"))?;
    if service.kind != Kind::Postgres {
        return Err(format!(
            "service `{name}` is a {} service, not postgres",
            service.kind.as_str()
        ));
    }
    service
        .postgres
        .as_ref()
        .ok_or_else(|| format!("service `{name}` has no [services.{name}.postgres] table"))
}

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let mut out = Vec::new();
    for (name, service) in &stack.services {
        let (Kind::Postgres, Some(pg)) = (service.kind, &service.postgres) else {
            continue;
        };
        // Built once: every migration file of both variants shares it (it grows with the model).
        let channels = channels(stack);
        for &variant in VARIANTS {
            for (stem, template) in FILES {
                // A model the SQL cannot express becomes a render error naming the problem.
                let ctx = context(name, pg, variant, stem, &channels)
                    .unwrap_or_else(|problem| context! { refused => problem });
                out.push(Output::new(
                    paths::migration(name, variant, stem),
                    template,
                    ctx,
                ));
            }
        }
    }
    out
}

/// A PostgreSQL interval literal in the largest exact unit (`1 day`, `90 days`, `30 minutes`).
pub fn interval(duration: Duration) -> String {
    const UNITS: &[(u64, &str)] = &[
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    let ms = duration.millis();
    for &(factor, unit) in UNITS {
        if ms >= factor && ms.is_multiple_of(factor) {
            let n = ms / factor;
            return format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{ms} milliseconds")
}

/// One aggregate's bucket and refresh window. The window covers at least three buckets
/// (TimescaleDB refuses a policy window under two) and ends one bucket back, so only
/// closed buckets are materialized; newer ones are computed in real time.
fn aggregate(name: &str, bucket: Duration, window: Duration) -> Value {
    let start = Duration(window.millis().max(bucket.millis().saturating_mul(3)));
    context! {
        name,
        bucket => interval(bucket),
        start_offset => interval(start),
        end_offset => interval(bucket),
    }
}

/// The model's channels as the channels migration prints them.
fn channels(stack: &Stack) -> Value {
    stack
        .channels
        .iter()
        .map(|c| context! { id => c.id, username => c.username.clone(), title => &c.title, enabled => c.enabled })
        .collect::<Vec<Value>>()
        .into()
}

fn context(
    service: &str,
    pg: &PostgresSettings,
    variant: PostgresVariant,
    stem: &str,
    channels: &Value,
) -> Result<Value, String> {
    // Rule TG405 reports these before anything renders; refused here all the same.
    let problems: Vec<String> = pg
        .lifecycle_problems()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if !problems.is_empty() {
        return Err(format!(
            "services.{service}.postgres: {}",
            problems.join("; ")
        ));
    }
    // Identifiers inside dollar-quoted bodies must not be able to close the quote.
    let names = std::iter::once(pg.schema.as_str()).chain(pg.roles.keys().map(String::as_str));
    if let Some(bad) = names.into_iter().find(|n| n.contains('$')) {
        return Err(format!(
            "services.{service}.postgres: name `{bad}` holds `$`, which the migrations cannot quote inside function bodies"
        ));
    }
    let roles: Vec<Value> = pg
        .roles
        .iter()
        .map(|(name, role)| {
            context! { name, access => format!("{:?}", role.access).to_lowercase() }
        })
        .collect();
    let a = &pg.aggregates;
    Ok(context! {
        service,
        variant => paths::variant_dir(variant),
        timescale => variant == PostgresVariant::Timescaledb,
        version => stem,
        schema => &pg.schema,
        messages_unique_constraint => MESSAGES_UNIQUE_CONSTRAINT,
        chunk_interval => interval(pg.chunk_interval),
        compress_after => interval(pg.compress_after),
        retention => interval(pg.retention),
        refresh_interval => interval(a.refresh_interval),
        aggregates => vec![
            aggregate("messages_hourly", a.hourly_bucket, a.refresh_window),
            aggregate("messages_daily", a.daily_bucket, a.refresh_window),
        ],
        roles,
        channels => channels.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_use_the_largest_exact_unit() {
        assert_eq!(interval(Duration(86_400_000)), "1 day");
        assert_eq!(interval(Duration(90 * 86_400_000)), "90 days");
        assert_eq!(interval(Duration(1_800_000)), "30 minutes");
        assert_eq!(interval(Duration(1_500)), "1500 milliseconds");
    }
}
