//! The gateway's statements (gateway/src/sql/*.sql, as sent to the server) pass the
//! project's SQL checker after the rendered migration of the reference model, as the
//! migration itself does, and their `ON CONFLICT` target is the unique constraint that
//! migration creates on `messages`.

use tg_gateway::sql;
use tgstack::check::sql::check_sql_files;
use tgstack::model::{Kind, Model};
use tgstack::render::sql::{VARIANTS, migration};

use crate::support::root;

fn reference_model() -> Model {
    tgstack::model::load_files(&[root().join("stack.toml")]).expect("reference model loads")
}

/// (service, schema) of every postgres service of the model.
fn databases(model: &Model) -> Vec<(String, String)> {
    let databases: Vec<_> = model
        .stack
        .services
        .iter()
        .filter(|(_, s)| s.kind == Kind::Postgres)
        .filter_map(|(name, s)| Some((name.clone(), s.postgres.as_ref()?.schema.clone())))
        .collect();
    assert!(!databases.is_empty(), "the reference model has no database");
    databases
}

/// Every gateway statement file as sent to a database whose schema is `schema`.
fn prepared(schema: &str) -> Vec<(String, String)> {
    sql::FILES
        .iter()
        .map(|(name, text)| {
            (
                format!("gateway/src/sql/{name}"),
                sql::prepare(text, schema),
            )
        })
        .collect()
}

#[test]
fn every_statement_passes_the_sql_checker_after_the_migration() {
    let model = reference_model();
    for (service, schema) in databases(&model) {
        for &variant in VARIANTS {
            let mut files = migration(&model.stack, &service, variant).expect("migration renders");
            files.extend(prepared(&schema));
            assert_eq!(check_sql_files(&files), vec![], "{service} {variant:?}");

            // The checker does follow the gateway's inserts to the table: a conflict target
            // the migration does not create is reported.
            let mut wrong = migration(&model.stack, &service, variant).unwrap();
            wrong.extend(prepared(&schema).into_iter().map(|(name, text)| {
                let text = text.replace(
                    "ON CONFLICT ON CONSTRAINT ",
                    "ON CONFLICT ON CONSTRAINT not_",
                );
                (name, text)
            }));
            assert!(
                !check_sql_files(&wrong).is_empty(),
                "{service} {variant:?}: a wrong conflict target went unnoticed"
            );
        }
    }
}

#[test]
fn the_conflict_target_is_the_constraint_the_migration_creates() {
    let model = reference_model();
    for (service, schema) in databases(&model) {
        for &variant in VARIANTS {
            let files = migration(&model.stack, &service, variant).expect("migration renders");
            let tables = &files
                .iter()
                .find(|(name, _)| name == "002_tables.sql")
                .expect("002_tables.sql is rendered")
                .1;
            let messages = &tables[tables
                .find(".messages (")
                .expect("002_tables.sql creates messages")..];
            let messages = &messages[..messages.find(");").expect("CREATE TABLE ends")];
            let created: Vec<&str> = messages
                .split("CONSTRAINT ")
                .skip(1)
                .filter(|rest| rest.contains(" UNIQUE "))
                .filter_map(|rest| rest.split_whitespace().next())
                .collect();
            assert_eq!(created.len(), 1, "{service} {variant:?}: {messages}");

            let targets: Vec<String> = prepared(&schema)
                .iter()
                .flat_map(|(_, text)| {
                    text.split("ON CONFLICT ON CONSTRAINT ")
                        .skip(1)
                        .filter_map(|rest| rest.split_whitespace().next())
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            assert!(
                !targets.is_empty(),
                "the gateway inserts messages with ON CONFLICT"
            );
            for target in targets {
                assert_eq!(target, created[0], "{service} {variant:?}");
            }
        }
    }
}
