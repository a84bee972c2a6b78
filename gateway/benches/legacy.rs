//! Benchmark of `tg-gateway import-legacy` on this machine with real servers (not a test):
//! `cargo bench -p tg-gateway --bench legacy`.
//!
//! A shape A legacy database of `BENCH_LEGACY_ROWS` rows (default 1,000,000) over 10
//! channels, 10 % of them duplicates of another row (the same message stored again with
//! another status and `created_at`), both channel id forms, texts of about 100 bytes.
//! Each round, in the same minutes:
//! - raw COPY: the same legacy rows through a client pipe, `COPY (SELECT ...) TO STDOUT`
//!   from the legacy database into `COPY ... FROM STDIN` of an empty table of the same
//!   columns in the new database (no collapsing, no constraint): the floor of moving them;
//! - indexed COPY: the same messages collapsed and mapped by SQL, piped into an empty table
//!   with every column, constraint and index of the stack's `messages` (two GIN indexes
//!   among them): the floor of storing them;
//! - import: `tg-gateway import-legacy` from empty (messages and checkpoints truncated),
//!   through PgBouncer, as an operator runs it.
//!
//! Reported per round: seconds, legacy rows/s, and the ratios import / raw COPY and
//! import / indexed COPY; then the
//! medians over `BENCH_ROUNDS` rounds (default 2), and the CPU seconds PostgreSQL and
//! PgBouncer spent on the import.

#[allow(dead_code)] // THIS_PROCESS: the importer is a child process, read by wall clock
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::Instant;

use support::*;
use testkit::{Scratch, psql};

const CHANNELS: i64 = 10;
/// Whose CPU time an import round reports (the importer exits: its time is read from
/// the PostgreSQL and PgBouncer side only, and the wall clock).
const CPU_USERS: &[(&str, &str)] = &[("postgres", "postgres"), ("pgbouncer", "pgbouncer")];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The legacy database: shape A, `rows` rows of which a tenth are duplicates.
fn legacy(rows: usize) -> (Scratch, String, String) {
    let database = format!("legacy_bench_{}", std::process::id());
    let reader = format!("legacy_bench_ro_{}", std::process::id());
    let scratch = Scratch::create(database.clone(), vec![reader.clone()]);
    let messages = rows * 9 / 10;
    let duplicates = rows - messages;
    psql(
        &database,
        &format!(
            "CREATE TABLE messages (id uuid NOT NULL DEFAULT gen_random_uuid(), channel_id text NOT NULL, \
             message_id bigint NOT NULL, source text, message_type text, text text, caption text, \
             media_type text, media_refs jsonb, status text NOT NULL, received_at timestamptz, \
             telegram_date timestamptz, metadata jsonb, created_at timestamptz NOT NULL DEFAULT now(), \
             updated_at timestamptz, deleted_at timestamptz, PRIMARY KEY (id, created_at), \
             UNIQUE (channel_id, message_id, created_at));
             INSERT INTO messages (channel_id, message_id, source, message_type, text, status, \
               received_at, telegram_date, metadata, created_at)
             SELECT CASE WHEN i % 2 = 0 THEN '-100' ELSE '' END || (1234567000 + i % {CHANNELS}),
                    i / {CHANNELS} + 1, 'telegram', 'text',
                    'message ' || i || ' ' || repeat('lorem ipsum ', 8), 'published',
                    t, t, jsonb_build_object('sender_id', i % 97), t
             FROM generate_series(0, {last}) AS i,
                  LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second' AS t) d;
             INSERT INTO messages (channel_id, message_id, source, message_type, text, status, \
               received_at, telegram_date, metadata, created_at)
             SELECT channel_id, message_id, source, message_type, text, 'received', received_at,
                    telegram_date, metadata, created_at + interval '1 second'
             FROM messages WHERE message_id % 9 = 0 LIMIT {duplicates};
             ALTER ROLE \"{reader}\" LOGIN;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{reader}\";
             ANALYZE messages;",
            last = messages - 1,
        ),
    );
    let url = format!("postgresql://{reader}@127.0.0.1:5432/{database}");
    (scratch, database, url)
}

/// Seconds to pipe every legacy row into an empty table of the same columns.
fn raw_copy(legacy_db: &str, new_db: &str) -> f64 {
    psql(
        new_db,
        "DROP TABLE IF EXISTS bench_raw; CREATE TABLE bench_raw (id uuid, channel_id text, \
         message_id bigint, source text, message_type text, text text, caption text, media_type text, \
         media_refs jsonb, status text, received_at timestamptz, telegram_date timestamptz, \
         metadata jsonb, created_at timestamptz, updated_at timestamptz, deleted_at timestamptz)",
    );
    let started = Instant::now();
    let mut out = psql_command(
        legacy_db,
        "COPY (SELECT id, channel_id, message_id, source, message_type, text, caption, media_type, \
         media_refs, status, received_at, telegram_date, metadata, created_at, updated_at, \
         deleted_at FROM messages) TO STDOUT (FORMAT binary)",
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let status = psql_command(new_db, "COPY bench_raw FROM STDIN (FORMAT binary)")
        .stdin(out.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(
        status.success() && out.wait().unwrap().success(),
        "raw COPY failed"
    );
    let seconds = started.elapsed().as_secs_f64();
    psql(new_db, "DROP TABLE bench_raw");
    seconds
}

/// Seconds to pipe the same messages, already collapsed and mapped by SQL (one row per
/// message, the model's channel ids, the legacy row as `raw`), into an empty table with
/// every column, constraint and index of the stack's `messages`: the floor of storing
/// them, index maintenance included.
fn indexed_copy(legacy_db: &str, new_db: &str) -> f64 {
    psql(
        new_db,
        "DROP TABLE IF EXISTS bench_indexed; \
         CREATE TABLE bench_indexed (LIKE telegram.messages INCLUDING ALL)",
    );
    let started = Instant::now();
    let mut out = psql_command(
        legacy_db,
        "COPY (SELECT DISTINCT ON (c, m.message_id) c, m.message_id, m.telegram_date, m.text, \
         (m.metadata->>'sender_id')::bigint, NULL::bigint, m.media_type, \
         jsonb_build_object('legacy', to_jsonb(m)), NULL::timestamptz, m.deleted_at IS NOT NULL, \
         m.received_at FROM messages m, LATERAL (SELECT CASE WHEN m.channel_id LIKE '-%' \
         THEN m.channel_id::bigint ELSE -(1000000000000 + m.channel_id::bigint) END AS c) k \
         ORDER BY c, m.message_id, m.status) TO STDOUT (FORMAT binary)",
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let status = psql_command(
        new_db,
        "COPY bench_indexed (channel_id, message_id, posted_at, text, sender_id, \
         reply_to_message_id, media_type, raw, edit_date, deleted, received_at) FROM STDIN (FORMAT binary)",
    )
    .stdin(out.stdout.take().unwrap())
    .status()
    .unwrap();
    assert!(
        status.success() && out.wait().unwrap().success(),
        "indexed COPY failed"
    );
    let seconds = started.elapsed().as_secs_f64();
    psql(new_db, "DROP TABLE bench_indexed");
    seconds
}

fn psql_command(db: &str, sql: &str) -> Command {
    let mut c = Command::new("psql");
    c.args([
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-X",
        "-q",
        "-d",
        db,
        "-c",
        sql,
    ]);
    c
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    common::percentile(&values, 0.5)
}

fn main() {
    let rows = env_number("BENCH_LEGACY_ROWS", 1_000_000);
    let rounds = env_number("BENCH_ROUNDS", 2);
    let stack = TestStack::start("legacybench", Wiring::default());
    let started = Instant::now();
    let (_legacy, legacy_db, url) = legacy(rows);
    println!(
        "legacy database: {rows} rows ({} duplicates), built in {:.1} s",
        rows - rows * 9 / 10,
        started.elapsed().as_secs_f64()
    );
    let model = stack.model_arg();
    let (mut raws, mut indexed_copies, mut imports) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let raw = raw_copy(&legacy_db, &stack.database);
        let indexed = indexed_copy(&legacy_db, &stack.database);
        stack.sql("TRUNCATE telegram.messages, telegram.legacy_import");
        let cpu_before = common::cpu_seconds(CPU_USERS);
        let started = Instant::now();
        let output = Command::new(BINARY)
            .args(["--model", &model, "import-legacy", "--format", "json"])
            .envs(stack.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TGSTACK_LEGACY_URL", &url)
            .output()
            .unwrap();
        let import = started.elapsed().as_secs_f64();
        let cpu = common::cpu_used(CPU_USERS, &cpu_before, &common::cpu_seconds(CPU_USERS));
        assert!(
            output.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["rows_read"], rows, "{summary}");
        assert_eq!(summary["stored"], rows * 9 / 10, "{summary}");
        println!(
            "round {round}: raw COPY {raw:.2} s ({:.0} rows/s), indexed COPY {indexed:.2} s, \
             import {import:.2} s ({:.0} rows/s, {} messages stored), ratio to raw {:.2}, \
             to indexed {:.2}; import CPU: {cpu}",
            rows as f64 / raw,
            rows as f64 / import,
            summary["stored"],
            raw / import,
            indexed / import
        );
        raws.push(raw);
        indexed_copies.push(indexed);
        imports.push(import);
    }
    let (raw, indexed, import) = (median(raws), median(indexed_copies), median(imports));
    println!(
        "median over {rounds} rounds: raw COPY {raw:.2} s ({:.0} rows/s), indexed COPY \
         {indexed:.2} s ({:.0} rows/s), import {import:.2} s ({:.0} rows/s), ratio to raw {:.2}, \
         to indexed {:.2}",
        rows as f64 / raw,
        rows as f64 / indexed,
        rows as f64 / import,
        raw / import,
        indexed / import
    );
}
