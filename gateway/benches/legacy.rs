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
//! - import: `tg-gateway import-legacy` from empty (messages and checkpoints truncated),
//!   through PgBouncer, as an operator runs it.
//!
//! Reported per round: seconds, legacy rows/s, and the ratio import / raw COPY; then the
//! medians over `BENCH_ROUNDS` rounds (default 2).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::Instant;

use support::*;
use testkit::{Scratch, psql};

const CHANNELS: i64 = 10;

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
    let psql_cmd = |db: &str, sql: &str| {
        let mut c = Command::new("psql");
        c.args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-q", "-d", db, "-c", sql]);
        c
    };
    let mut out = psql_cmd(
        legacy_db,
        "COPY (SELECT id, channel_id, message_id, source, message_type, text, caption, media_type, \
         media_refs, status, received_at, telegram_date, metadata, created_at, updated_at, \
         deleted_at FROM messages) TO STDOUT (FORMAT binary)",
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let status = psql_cmd(new_db, "COPY bench_raw FROM STDIN (FORMAT binary)")
        .stdin(out.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(status.success() && out.wait().unwrap().success(), "raw COPY failed");
    started.elapsed().as_secs_f64()
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
    let (mut raws, mut imports) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let raw = raw_copy(&legacy_db, &stack.database);
        stack.sql("TRUNCATE telegram.messages, telegram.legacy_import");
        let started = Instant::now();
        let output = Command::new(BINARY)
            .args(["--model", &model, "import-legacy", "--format", "json"])
            .envs(stack.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TGSTACK_LEGACY_URL", &url)
            .output()
            .unwrap();
        let import = started.elapsed().as_secs_f64();
        assert!(
            output.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["rows_read"], rows, "{summary}");
        assert_eq!(summary["stored"], rows * 9 / 10, "{summary}");
        println!(
            "round {round}: raw COPY {raw:.2} s ({:.0} rows/s), import {import:.2} s ({:.0} rows/s, \
             {} messages stored), ratio {:.2}",
            rows as f64 / raw,
            rows as f64 / import,
            summary["stored"],
            raw / import
        );
        raws.push(raw);
        imports.push(import);
    }
    let (raw, import) = (median(raws), median(imports));
    println!(
        "median over {rounds} rounds: raw COPY {raw:.2} s ({:.0} rows/s), import {import:.2} s \
         ({:.0} rows/s), ratio {:.2}",
        rows as f64 / raw,
        rows as f64 / import,
        raw / import
    );
}
