//! The rendered migrations: both variants pass the sqlparser check, the plain variant runs
//! twice on the real PostgreSQL server without changing anything the second time, and the
//! upserts deduplicate.

use crate::support::{load, own_roles};

use testkit::{Scratch, psql_args, require_local_postgres, unique};
use tgstack::check::sql::{check_sql, check_sql_files};
use tgstack::model::PostgresVariant;
use tgstack::render::{self, sql};

const PG: &str = "timescaledb";

/// Everything the migrations own, as text: relations (with oids, so a drop and re-create
/// shows), columns and defaults, indexes, constraints, functions, view definitions,
/// privileges, and the seeded rows with their row versions.
const CATALOG: &str = r#"
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
  SELECT 'nsp ' || nspname || ' ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'telegram'
  UNION ALL
  SELECT 'rel ' || c.relname || ' ' || c.oid || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '')
    FROM pg_class c WHERE c.relnamespace = 'telegram'::regnamespace
  UNION ALL
  SELECT 'col ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'telegram'::regnamespace)
     AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'idx ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE c.relnamespace = 'telegram'::regnamespace
  UNION ALL
  SELECT 'con ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'telegram'::regnamespace
  UNION ALL
  SELECT 'fn ' || p.oid::regprocedure::text || ' ' || p.oid || ' ' || md5(p.prosrc) || ' ' || p.provolatile::text || ' ' || coalesce(p.proacl::text, '')
    FROM pg_proc p WHERE p.pronamespace = 'telegram'::regnamespace
  UNION ALL
  SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid)) FROM pg_class c
   WHERE c.relnamespace = 'telegram'::regnamespace AND c.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'channel ' || channel_id || ' ' || coalesce(username, '-') || ' ' || title || ' ' || enabled || ' ' || xmin::text || ' ' || updated_at
    FROM telegram.channels
  UNION ALL
  SELECT 'migration ' || version || ' ' || applied_at || ' ' || xmin::text FROM telegram.schema_migrations
) AS s(x)
"#;

/// Applies the migration the way scripts/migrate.sh does: psql, ON_ERROR_STOP, one
/// transaction per file.
fn apply(database: &str, files: &[(String, String)], dir: &std::path::Path) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write migration file");
        psql_args(
            database,
            &[
                "--single-transaction",
                "-f",
                path.to_str().expect("utf-8 path"),
            ],
        );
    }
}

#[test]
fn plain_migration_applies_twice_without_change_and_upserts_dedup() {
    require_local_postgres();
    let mut model = load("");
    let suffix = unique("t");
    own_roles(&mut model, PG, &suffix);
    let readwrite = format!("tg_app_{suffix}");
    let readonly = format!("grafana_ro_{suffix}");
    let scratch = Scratch::create(
        unique("tgstack_sql"),
        vec![readwrite.clone(), readonly.clone()],
    );
    let files =
        sql::migration(&model.stack, PG, PostgresVariant::Plain).expect("migration renders");
    assert_eq!(files.len(), sql::FILES.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let db = scratch.database.as_str();

    apply(db, &files, dir.path());
    let first = psql_args(db, &["-c", CATALOG]);
    apply(db, &files, dir.path());
    let second = psql_args(db, &["-c", CATALOG]);
    assert!(
        first.contains("rel messages ") && first.contains("channel -1001234567890 signals_alpha"),
        "catalog snapshot misses the schema:\n{first}"
    );
    assert_eq!(
        first, second,
        "applying the migration a second time changed the database"
    );
    assert_eq!(
        psql_args(
            db,
            &["-c", "SELECT count(*) FROM telegram.schema_migrations"]
        ),
        sql::FILES.len().to_string()
    );

    // Indexes: six of the model plus the keys, and the two aggregate keys.
    let indexes = psql_args(
        db,
        &[
            "-c",
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'telegram'",
        ],
    );
    for name in [
        "messages_channel_posted_idx",
        "messages_raw_gin_idx",
        "messages_text_search_idx",
        "messages_edited_idx",
        "messages_sender_idx",
        "outbox_unpublished_idx",
        "messages_channel_message_key",
    ] {
        assert!(
            indexes.split(',').any(|i| i == name),
            "index {name} missing: {indexes}"
        );
    }

    // upsert_message: true once, then false; one row.
    let call = "SELECT telegram.upsert_message(-1001234567890, 42, '2026-01-02T03:04:05Z', 'BUY', '{\"sender_id\": 7, \"media_type\": \"photo\"}')";
    assert_eq!(psql_args(db, &["-c", call]), "t");
    assert_eq!(psql_args(db, &["-c", call]), "f");
    assert_eq!(
        psql_args(
            db,
            &[
                "-c",
                "SELECT count(*), max(sender_id), max(media_type) FROM telegram.messages WHERE message_id = 42"
            ]
        ),
        "1|7|photo"
    );
    // A different message date is a different message (the key holds the date).
    assert_eq!(
        psql_args(
            db,
            &[
                "-c",
                "SELECT telegram.last_message_id(-1001234567890), telegram.last_message_id(1)"
            ]
        ),
        "42|0"
    );
    let edit =
        "SELECT telegram.edit_message(-1001234567890, 42, '2026-01-02T04:00:00Z', 'SELL', NULL)";
    assert_eq!(psql_args(db, &["-c", edit]), "t");
    assert_eq!(psql_args(db, &["-c", edit]), "f");
    let delete = "SELECT telegram.delete_messages(-1001234567890, ARRAY[42, 43]::bigint[])";
    assert_eq!(psql_args(db, &["-c", delete]), "1");
    assert_eq!(psql_args(db, &["-c", delete]), "0");
    assert_eq!(
        psql_args(
            db,
            &[
                "-c",
                "SELECT text, deleted FROM telegram.messages WHERE message_id = 42"
            ]
        ),
        "SELL|t"
    );
    // Outbox: published once.
    let id = psql_args(
        db,
        &[
            "-c",
            "INSERT INTO telegram.outbox (channel_id, message_id, posted_at, event, payload) VALUES (-1001234567890, 42, '2026-01-02T03:04:05Z', 'new', '{}') RETURNING id",
        ],
    );
    assert_eq!(
        psql_args(db, &["-c", "SELECT pending FROM telegram.v_outbox_backlog"]),
        "1"
    );
    let mark = format!("SELECT telegram.mark_published(ARRAY[{id}]::bigint[])");
    assert_eq!(psql_args(db, &["-c", &mark]), "1");
    assert_eq!(psql_args(db, &["-c", &mark]), "0");
    // Aggregates and monitoring views answer after a refresh.
    psql_args(db, &["-c", "SELECT telegram.refresh_aggregates()"]);
    assert_eq!(
        psql_args(
            db,
            &[
                "-c",
                "SELECT messages, edited, deleted FROM telegram.messages_hourly WHERE channel_id = -1001234567890"
            ]
        ),
        "1|1|1"
    );
    assert_eq!(
        psql_args(
            db,
            &[
                "-c",
                "SELECT last_message_id, lag_seconds > 0 FROM telegram.v_ingestion_lag WHERE channel_id = -1001234567890"
            ]
        ),
        "42|t"
    );
    assert_eq!(
        psql_args(
            db,
            &["-c", "SELECT count(*) FROM telegram.v_channel_activity"]
        ),
        "3"
    );
    // upsert_channel keeps the row when nothing changed.
    let before = psql_args(
        db,
        &[
            "-c",
            "SELECT xmin FROM telegram.channels WHERE channel_id = -1001234567890",
        ],
    );
    psql_args(
        db,
        &[
            "-c",
            "SELECT telegram.upsert_channel(-1001234567890, 'signals_alpha', 'Alpha Signals')",
        ],
    );
    let after = psql_args(
        db,
        &[
            "-c",
            "SELECT xmin FROM telegram.channels WHERE channel_id = -1001234567890",
        ],
    );
    assert_eq!(before, after, "a no-op upsert_channel rewrote the row");

    // Grants follow the roles' access.
    let privileges = format!(
        "SELECT has_table_privilege('{rw}', 'telegram.messages', 'INSERT'), has_table_privilege('{ro}', 'telegram.messages', 'INSERT'), has_table_privilege('{ro}', 'telegram.v_ingestion_lag', 'SELECT'), has_function_privilege('{rw}', 'telegram.upsert_message(bigint,bigint,timestamptz,text,jsonb)', 'EXECUTE'), has_function_privilege('{ro}', 'telegram.upsert_message(bigint,bigint,timestamptz,text,jsonb)', 'EXECUTE'), has_sequence_privilege('{rw}', 'telegram.outbox_id_seq', 'USAGE')",
        rw = readwrite,
        ro = readonly
    );
    assert_eq!(psql_args(db, &["-c", &privileges]), "t|f|t|t|f|t");

    // With data present, a third run still changes no definition.
    apply(db, &files, dir.path());
    let third = psql_args(db, &["-c", CATALOG]);
    let definitions = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("channel ") && !l.starts_with("migration "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(definitions(&second), definitions(&third));
}

#[test]
fn both_variants_pass_the_static_check() {
    let model = load("");
    for &variant in sql::VARIANTS {
        let files = sql::migration(&model.stack, PG, variant).expect("migration renders");
        let issues = check_sql_files(&files);
        assert!(issues.is_empty(), "{variant:?}: {issues:#?}");
        // Each file also parses alone (conflict targets aside).
        for (name, text) in &files {
            let syntax: Vec<_> = check_sql(name, text)
                .into_iter()
                .filter(|i| !i.message.contains("which no checked statement creates"))
                .collect();
            assert!(syntax.is_empty(), "{variant:?} {name}: {syntax:#?}");
        }
    }
}

#[test]
fn rendered_files_are_the_migration() {
    let model = load("");
    let tree = render::render(&model, None)
        .unwrap_or_else(|f| panic!("render fails:\n{}", tgstack::report::human(&f)));
    for &variant in sql::VARIANTS {
        let files = sql::migration(&model.stack, PG, variant).expect("migration renders");
        for (name, text) in &files {
            let path = format!(
                "{}/{name}",
                tgstack::model::paths::migrations_dir(PG, variant)
            );
            let rendered = tree
                .get(&path)
                .unwrap_or_else(|| panic!("{path} not rendered"));
            assert_eq!(String::from_utf8_lossy(rendered), *text, "{path}");
            assert!(
                text.starts_with("-- generated by tgstack"),
                "{path} lacks the header"
            );
        }
    }
    // The plain variant has no TimescaleDB call; the TimescaleDB one has every policy.
    let plain: String = sql::migration(&model.stack, PG, PostgresVariant::Plain)
        .unwrap()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let timescale: String = sql::migration(&model.stack, PG, PostgresVariant::Timescaledb)
        .unwrap()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    for call in ["create_hypertable", "timescaledb.", "time_bucket", "add_"] {
        assert!(!plain.contains(call), "plain variant uses {call}");
    }
    for needle in [
        "chunk_time_interval => INTERVAL '1 day'",
        "add_compression_policy",
        "compress_after => INTERVAL '14 days'",
        "drop_after => INTERVAL '90 days'",
        "WITH (timescaledb.continuous",
        "add_continuous_aggregate_policy",
    ] {
        assert!(
            timescale.contains(needle),
            "TimescaleDB variant lacks {needle}"
        );
    }
}

#[test]
fn model_values_reach_the_sql() {
    let model = load(
        "[services.timescaledb.postgres]\nschema = \"TgData\"\nchunk_interval = \"12h\"\nretention = \"30d\"\n[services.timescaledb.postgres.aggregates]\nhourly_bucket = \"15m\"\n",
    );
    let text: String = sql::migration(&model.stack, PG, PostgresVariant::Timescaledb)
        .expect("migration renders")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    // Mixed case survives only quoted.
    assert!(text.contains("CREATE SCHEMA IF NOT EXISTS \"TgData\";"));
    assert!(text.contains("chunk_time_interval => INTERVAL '12 hours'"));
    assert!(text.contains("drop_after => INTERVAL '30 days'"));
    assert!(text.contains("time_bucket(INTERVAL '15 minutes', posted_at)"));
    let files = sql::migration(&model.stack, PG, PostgresVariant::Timescaledb).unwrap();
    assert_eq!(check_sql_files(&files), vec![]);
}

#[test]
fn impossible_policies_are_refused() {
    let model = load("[services.timescaledb.postgres]\ncompress_after = \"120d\"\n");
    let error = sql::migration(&model.stack, PG, PostgresVariant::Plain).unwrap_err();
    assert!(
        error.contains("compress_after (120d) must be shorter than retention (90d)"),
        "{error}"
    );
    let findings = render::render(&model, None).expect_err("render refuses");
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("timescaledb/sql/") && f.message.contains("compress_after")),
        "{findings:#?}"
    );
    assert!(sql::migration(&model.stack, "pgbouncer", PostgresVariant::Plain).is_err());
}

#[test]
fn broken_sql_is_reported_with_file_and_line() {
    // Incident 17: the dedup key holds a DEFAULT now() column, so no retry ever conflicts.
    let broken = "\
CREATE TABLE messages (
    channel_id bigint NOT NULL,
    message_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_key UNIQUE (channel_id, message_id, created_at)
);
INSERT INTO messages (channel_id, message_id) VALUES (1, 2)
ON CONFLICT ON CONSTRAINT messages_key DO NOTHING;
INSERT INTO messages (channel_id, message_id) VALUES (1, 2)
ON CONFLICT ON CONSTRAINT messages_channel_message_key DO NOTHING;
CREATE INDEX broken_idx ON messages (channel_id;
ALTER TABLE messages SET (timescaledb.compress, timescaledb.compress_orderby = 'posted_at DESC');
";
    let issues = check_sql("broken.sql", broken);
    let at = |line: u64, needle: &str| {
        issues
            .iter()
            .any(|i| i.file == "broken.sql" && i.line == line && i.message.contains(needle))
    };
    assert!(at(8, "created_at"), "{issues:#?}");
    assert!(at(10, "messages_channel_message_key"), "{issues:#?}");
    assert!(at(11, "cannot parse"), "{issues:#?}");
    assert!(at(12, "posted_at"), "{issues:#?}");
    assert_eq!(issues.len(), 4, "{issues:#?}");
}
