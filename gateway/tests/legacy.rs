//! `tg-gateway import-legacy` against both legacy shapes, built in scratch databases from
//! generated data: duplicates (the old unique key included `created_at DEFAULT now()`),
//! both channel id forms, every status, deleted rows, edits, captions, an id that is not a
//! number. The result is checked row by row against the mapping of docs/legacy-import.md,
//! which the generator states per message (not by calling the importer's own code).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use testkit::{Scratch, eventually, psql, psql_args, spawn};

use crate::support::{BINARY, TestStack, Wiring};

/// The model's first two channels (bare ids) and one it does not list.
const CHANNELS: [i64; 3] = [1_234_567_890, 1_234_567_891, 1_234_567_899];
const STATUSES: [&str; 8] = [
    "received",
    "retrying",
    "published",
    "queued",
    "failed",
    "reprocess_pending",
    "reprocessed",
    "deleted",
];
/// A password in the legacy URL: trust authentication ignores it, and it must never be
/// printed.
const URL_PASSWORD: &str = "legacy-pw-5d1e";

/// A legacy row as the generator writes it.
struct Copy {
    channel_form: String,
    message_id: i64,
    status: &'static str,
    text: Option<String>,
    caption: Option<String>,
    /// Seconds after the message's Telegram date.
    created: i64,
    updated: Option<i64>,
}

/// What the new database must hold for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    text: String,
    deleted: bool,
    copies: usize,
}

struct Generated {
    copies: Vec<Copy>,
    expected: BTreeMap<(i64, i64), Expected>,
}

fn model_id(bare: i64) -> i64 {
    -(1_000_000_000_000 + bare)
}

/// Seconds of a message's Telegram date after 2026-01-01 00:00 UTC.
fn telegram_second(message_id: i64) -> i64 {
    message_id * 60
}

/// `per_channel` messages in each channel, in six scenarios that each state their result.
fn generate(per_channel: i64) -> Generated {
    let mut copies = Vec::new();
    let mut expected = BTreeMap::new();
    for &channel in &CHANNELS {
        for m in 1..=per_channel {
            let tag = format!("c{channel}m{m}");
            let form = |k: i64| {
                if (m + k) % 2 == 0 {
                    format!("-100{channel}")
                } else {
                    channel.to_string()
                }
            };
            let copy = |k: i64, status, text: Option<String>, updated| Copy {
                channel_form: form(k),
                message_id: m,
                status,
                text,
                caption: None,
                created: k,
                updated,
            };
            let (rows, result) = match m % 6 {
                // One copy, every status in turn: deleted is kept, as deleted.
                0 => {
                    let status = STATUSES[((m / 6) % 8) as usize];
                    (
                        vec![copy(0, status, Some(tag.clone()), None)],
                        (tag.clone(), status == "deleted"),
                    )
                }
                // The most advanced status wins, whatever the order of arrival.
                1 => (
                    vec![
                        copy(0, "received", Some(format!("{tag}-received")), None),
                        copy(1, "published", Some(format!("{tag}-published")), None),
                        copy(2, "failed", Some(format!("{tag}-failed")), None),
                    ],
                    (format!("{tag}-published"), false),
                ),
                // An edit: same status, the later update wins (created earlier).
                2 => (
                    vec![
                        copy(1, "published", Some(format!("{tag}-old")), Some(5)),
                        copy(0, "published", Some(format!("{tag}-new")), Some(90)),
                    ],
                    (format!("{tag}-new"), false),
                ),
                // A deleted copy deletes the message; the content stays.
                3 => (
                    vec![
                        copy(0, "published", Some(format!("{tag}-x")), None),
                        copy(1, "deleted", Some(String::new()), Some(30)),
                    ],
                    (format!("{tag}-x"), true),
                ),
                // A photo: no text, the caption is the text.
                4 => {
                    let mut photo = copy(0, "published", None, None);
                    photo.caption = Some(format!("{tag}-cap"));
                    (vec![photo], (format!("{tag}-cap"), false))
                }
                // Reprocessed beats retrying.
                _ => (
                    vec![
                        copy(0, "reprocessed", Some(format!("{tag}-reproc")), None),
                        copy(1, "retrying", Some(format!("{tag}-retry")), None),
                    ],
                    (format!("{tag}-reproc"), false),
                ),
            };
            expected.insert(
                (model_id(channel), m),
                Expected {
                    text: result.0,
                    deleted: result.1,
                    copies: rows.len(),
                },
            );
            copies.extend(rows);
        }
    }
    Generated { copies, expected }
}

fn sql_text(value: &Option<String>) -> String {
    match value {
        Some(text) => format!("'{}'", text.replace('\'', "''")),
        None => "NULL".into(),
    }
}

fn at(base: i64, offset: Option<i64>) -> String {
    match offset {
        Some(o) => format!(
            "timestamptz '2026-01-01 00:00:00+00' + interval '{} seconds'",
            base + o
        ),
        None => "NULL".into(),
    }
}

/// Shape A (the current legacy service) with its registry, as SQL.
fn shape_a_sql(data: &Generated) -> String {
    let mut sql = String::from(
        "CREATE TABLE messages (id uuid NOT NULL DEFAULT gen_random_uuid(), channel_id text NOT NULL, \
         message_id bigint NOT NULL, thread_id bigint, source text, message_type text, text text, \
         caption text, media_type text, media_refs jsonb, status text NOT NULL CHECK (status IN \
         ('received','retrying','published','queued','failed','reprocess_pending','reprocessed','deleted')), \
         received_at timestamptz, telegram_date timestamptz, published_at timestamptz, failed_at timestamptz, \
         queued_at timestamptz, metadata jsonb, created_at timestamptz NOT NULL DEFAULT now(), \
         updated_at timestamptz, deleted_at timestamptz, PRIMARY KEY (id, created_at), \
         UNIQUE (channel_id, message_id, created_at));\n\
         CREATE TABLE channels (id bigserial PRIMARY KEY, channel_id bigint UNIQUE, label text, \
         description text, is_active boolean DEFAULT true);\n",
    );
    for chunk in data.copies.chunks(500) {
        sql.push_str(
            "INSERT INTO messages (channel_id, message_id, source, message_type, text, caption, \
             media_type, media_refs, status, received_at, telegram_date, metadata, created_at, \
             updated_at, deleted_at) VALUES\n",
        );
        let rows: Vec<String> = chunk
            .iter()
            .map(|c| {
                let base = telegram_second(c.message_id);
                format!(
                    "('{}', {}, 'telegram', 'text', {}, {}, {}, {}, '{}', {}, {}, '{{\"sender_id\": 42}}', {}, {}, {})",
                    c.channel_form,
                    c.message_id,
                    sql_text(&c.text),
                    sql_text(&c.caption),
                    if c.caption.is_some() { "'photo'" } else { "NULL" },
                    if c.caption.is_some() { "'[\"file-1\"]'" } else { "NULL" },
                    c.status,
                    at(base, Some(c.created)),
                    at(base, Some(0)),
                    at(base, Some(c.created)),
                    at(base, c.updated),
                    if c.status == "deleted" { at(base, c.updated) } else { "NULL".into() },
                )
            })
            .collect();
        sql.push_str(&rows.join(",\n"));
        sql.push_str(";\n");
    }
    // A row whose channel is not a number: reported, not imported.
    sql.push_str(
        "INSERT INTO messages (channel_id, message_id, status, text, telegram_date) \
         VALUES ('@renamed', 1, 'received', 'lost', now());\n",
    );
    for (i, channel) in CHANNELS.iter().enumerate() {
        let _ = writeln!(
            sql,
            "INSERT INTO channels (channel_id, label, is_active) VALUES ({channel}, 'Channel {i} \"legacy\"', true);"
        );
    }
    // An inactive channel the model lacks: not proposed.
    sql.push_str(
        "INSERT INTO channels (channel_id, label, is_active) VALUES (1234567000, 'Old', false);\n",
    );
    sql
}

/// Shape B (the older service): bigint channel ids, text message ids, its own columns.
fn shape_b_sql(data: &Generated) -> String {
    let mut sql = String::from(
        "CREATE TABLE messages (id bigserial PRIMARY KEY, channel_id bigint NOT NULL, \
         message_id text NOT NULL, text text, caption text, media_type text, status text, \
         date timestamptz, is_deleted boolean NOT NULL DEFAULT false, raw jsonb, \
         created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz);\n\
         CREATE TABLE channels (id bigserial PRIMARY KEY, channel_id bigint, title text, \
         last_sync_at timestamptz);\n",
    );
    for chunk in data.copies.chunks(500) {
        sql.push_str(
            "INSERT INTO messages (channel_id, message_id, text, caption, media_type, status, date, \
             is_deleted, created_at, updated_at) VALUES\n",
        );
        let rows: Vec<String> = chunk
            .iter()
            .map(|c| {
                let base = telegram_second(c.message_id);
                format!(
                    "({}, '{}', {}, {}, {}, '{}', {}, {}, {}, {})",
                    c.channel_form,
                    c.message_id,
                    sql_text(&c.text),
                    sql_text(&c.caption),
                    if c.caption.is_some() {
                        "'photo'"
                    } else {
                        "NULL"
                    },
                    c.status,
                    at(base, Some(0)),
                    c.status == "deleted",
                    at(base, Some(c.created)),
                    at(base, c.updated),
                )
            })
            .collect();
        sql.push_str(&rows.join(",\n"));
        sql.push_str(";\n");
    }
    sql.push_str(
        "INSERT INTO messages (channel_id, message_id, text, date) VALUES (1234567890, 'abc', 'lost', now());\n",
    );
    for channel in CHANNELS {
        let _ = writeln!(
            sql,
            "INSERT INTO channels (channel_id, title, last_sync_at) VALUES ({channel}, 'B {channel}', now());"
        );
    }
    sql
}

/// A legacy database with a login role that can only read it; dropped with the test.
struct LegacyDb {
    url: String,
    _scratch: Scratch,
}

fn legacy_db(name: &str, sql: &str) -> LegacyDb {
    let unique = format!("{name}_{}", std::process::id());
    let database = format!("legacy_{unique}");
    let reader = format!("legacy_ro_{unique}");
    let scratch = Scratch::create(database.clone(), vec![reader.clone()]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), sql).unwrap();
    psql_args(&database, &["-f", file.path().to_str().unwrap()]);
    psql(&database, &format!("ALTER ROLE \"{reader}\" LOGIN"));
    psql(
        &database,
        &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{reader}\""),
    );
    LegacyDb {
        url: format!("postgresql://{reader}:{URL_PASSWORD}@127.0.0.1:5432/{database}"),
        _scratch: scratch,
    }
}

/// `tg-gateway import-legacy ARGS` with the legacy URL in TGSTACK_LEGACY_URL: (exit code,
/// stdout, stderr). No output may contain the URL's password.
fn import(stack: &TestStack, url: &str, args: &[&str]) -> (i32, String, String) {
    let model = stack.model_arg();
    let output = Command::new(BINARY)
        .args(["--model", &model, "import-legacy"])
        .args(args)
        .envs(stack.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("TGSTACK_LEGACY_URL", url)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        !out.contains(URL_PASSWORD) && !err.contains(URL_PASSWORD),
        "the legacy password was printed:\n{out}{err}"
    );
    (output.status.code().unwrap_or(-1), out, err)
}

/// Every stored message: (channel, message) -> (text, deleted, copies), and the
/// posted_at of each as seconds after 2026-01-01.
fn stored(stack: &TestStack) -> BTreeMap<(i64, i64), (Expected, i64)> {
    stack
        .sql(
            "SELECT channel_id, message_id, text, deleted, raw->'legacy'->>'copies', \
             extract(epoch FROM posted_at - timestamptz '2026-01-01 00:00:00+00')::bigint \
             FROM telegram.messages ORDER BY 1, 2",
        )
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            (
                (f[0].parse().unwrap(), f[1].parse().unwrap()),
                (
                    Expected {
                        text: f[2].to_string(),
                        deleted: f[3] == "t",
                        copies: f[4].parse().unwrap(),
                    },
                    f[5].parse().unwrap(),
                ),
            )
        })
        .collect()
}

/// The stored rows are exactly the generator's expectations (posted_at = Telegram date).
fn assert_stored_as_expected(stack: &TestStack, data: &Generated) {
    let stored = stored(stack);
    assert_eq!(stored.len(), data.expected.len(), "one row per message");
    for (key, expected) in &data.expected {
        let (got, second) = stored
            .get(key)
            .unwrap_or_else(|| panic!("message {key:?} was not imported"));
        assert_eq!(got, expected, "message {key:?}");
        assert_eq!(*second, telegram_second(key.1), "posted_at of {key:?}");
    }
}

#[test]
fn shape_a_is_imported_as_documented_resumes_after_a_kill_and_verifies() {
    let stack = TestStack::start(
        "legacy_a",
        Wiring {
            postgres_proxy: true,
            ..Default::default()
        },
    );
    let data = generate(1000);
    let legacy = legacy_db("a", &shape_a_sql(&data));

    // Killed mid-batch: the writes hang at a frozen proxy, then the process dies.
    let model = stack.model_arg();
    let mut env = stack.env.clone();
    env.push(("TGSTACK_LEGACY_URL".into(), legacy.url.clone()));
    let mut first = spawn(
        "import-legacy",
        BINARY,
        &["--model", &model, "import-legacy", "--batch", "10"],
        &env,
        &stack.tmp.path().join("import-1.log"),
        None,
    );
    eventually("a first checkpoint", Duration::from_secs(60), || {
        (stack.count("SELECT count(*) FROM telegram.legacy_import") > 0).then_some(())
    });
    let proxy = stack.postgres_proxy.as_ref().unwrap();
    proxy.freeze();
    std::thread::sleep(Duration::from_millis(300));
    first.kill();
    proxy.restore();
    let partial = stack.count("SELECT count(*) FROM telegram.messages");
    assert!(
        partial > 0 && partial < data.expected.len() as i64,
        "the kill came too late or too early: {partial} of {} stored",
        data.expected.len()
    );
    // Every checkpoint covers exactly the rows stored for its channel.
    let behind = stack.count(
        "SELECT count(*) FROM telegram.legacy_import l WHERE l.last_message_id <> \
         (SELECT max(message_id) FROM telegram.messages m WHERE m.channel_id = l.channel_id)",
    );
    assert_eq!(behind, 0, "a checkpoint and its rows were committed apart");

    let (code, out, err) = import(&stack, &legacy.url, &["--batch", "10"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("shape A, resumed"), "{out}");
    assert!(
        out.contains(
            "not imported: 1 rows whose channel or message id is not a number (e.g. @renamed/1)"
        ),
        "{out}"
    );
    assert_stored_as_expected(&stack, &data);
    // The other columns of one message with three copies (received, published, failed):
    // the earliest receipt, the metadata's sender, the legacy row and its copies in raw.
    let one = stack.sql(&format!(
        "SELECT sender_id, extract(epoch FROM received_at - timestamptz '2026-01-01 00:00:00+00')::bigint, \
         raw->'legacy'->'row'->>'status', jsonb_array_length(raw->'legacy'->'ids') \
         FROM telegram.messages WHERE channel_id = {} AND message_id = 7",
        model_id(CHANNELS[1])
    ));
    assert_eq!(one, format!("42|{}|published|3", telegram_second(7)));
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox"),
        0,
        "history is not published unless asked"
    );
    let checkpoints = stack
        .sql("SELECT channel_id, last_message_id, messages FROM telegram.legacy_import ORDER BY 1");
    let expected_checkpoints: Vec<String> = [CHANNELS[2], CHANNELS[1], CHANNELS[0]]
        .iter()
        .map(|c| format!("{}|1000|1000", model_id(*c)))
        .collect();
    assert_eq!(checkpoints, expected_checkpoints.join("\n"));

    // The channel the model lacks is proposed as TOML (the inactive one is not).
    assert!(
        out.contains(&format!("id = {}", model_id(CHANNELS[2]))),
        "{out}"
    );
    assert!(out.contains(r#"title = "Channel 2 \"legacy\"""#), "{out}");
    assert!(!out.contains("-1001234567000"), "{out}");

    // Again: nothing new.
    let (code, out, _) = import(&stack, &legacy.url, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stored 0 new"), "{out}");

    // Verified, with the collapsed duplicates listed.
    let (code, out, err) = import(&stack, &legacy.url, &["--verify", "--format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    let collapsed = report["collapsed"].as_array().unwrap();
    let duplicated = data.expected.values().filter(|e| e.copies > 1).count();
    assert_eq!(collapsed.len(), duplicated);
    let channel = &report["channels"][0];
    assert_eq!(channel["legacy"]["checksum"], channel["stored"]["checksum"]);

    // The legacy service goes on after the import: a later copy of message 12 (an edit),
    // and message 13 deleted. A plain import does not see changes at or below the
    // checkpoints; --refresh (the cutover's final import) does.
    let legacy_database = legacy.url.rsplit('/').next().unwrap();
    let alpha = CHANNELS[0];
    psql(
        legacy_database,
        &format!(
            "INSERT INTO messages (channel_id, message_id, status, text, telegram_date, created_at, updated_at) \
             VALUES ('-100{alpha}', 12, 'published', 'late edit', \
             timestamptz '2026-01-01 00:00:00+00' + interval '720 seconds', \
             timestamptz '2026-01-01 00:00:00+00' + interval '725 seconds', now()); \
             UPDATE messages SET status = 'deleted', deleted_at = now() \
             WHERE message_id = 13 AND status = 'received' AND channel_id IN ('{alpha}', '-100{alpha}')"
        ),
    );
    let (code, out, _) = import(&stack, &legacy.url, &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = import(&stack, &legacy.url, &["--verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("different: 2 (ids 12, 13)"), "{out}");
    let (code, out, err) = import(&stack, &legacy.url, &["--refresh"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(2 updated)"), "{out}");
    let (code, out, _) = import(&stack, &legacy.url, &["--verify"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        stack.sql(&format!(
            "SELECT text, deleted FROM telegram.messages WHERE channel_id = {} AND message_id IN (12, 13) ORDER BY message_id",
            model_id(alpha)
        )),
        format!("late edit|f\nc{alpha}m13-published|t")
    );

    // The REST API serves the history.
    let api = crate::api::start_api(&stack);
    let message = api.json(&format!("/api/messages/{}/7", model_id(CHANNELS[0])));
    assert_eq!(
        message["text"],
        format!("c{}m7-published", CHANNELS[0]),
        "{message}"
    );

    // A changed and a lost row: verify fails and names both.
    stack.sql(&format!(
        "UPDATE telegram.messages SET text = 'tampered' WHERE channel_id = {} AND message_id = 8; \
         DELETE FROM telegram.messages WHERE channel_id = {} AND message_id = 9",
        model_id(CHANNELS[0]),
        model_id(CHANNELS[0])
    ));
    let (code, out, _) = import(&stack, &legacy.url, &["--verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISMATCH"), "{out}");
    assert!(out.contains("missing: 1 (ids 9)"), "{out}");
    assert!(out.contains("different: 1 (ids 8)"), "{out}");
}

#[test]
fn shape_b_is_imported_and_published_when_asked() {
    let stack = TestStack::start("legacy_b", Wiring::default());
    let data = generate(60);
    let legacy = legacy_db("b", &shape_b_sql(&data));
    let (code, out, err) = import(&stack, &legacy.url, &["--publish", "--format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["shape"], "B");
    assert_eq!(summary["unplaceable_rows"], 1);
    assert_eq!(summary["messages"], data.expected.len());
    assert_stored_as_expected(&stack, &data);
    // Every message that is not deleted waits in the outbox for the running gateway.
    let live = data.expected.values().filter(|e| !e.deleted).count() as i64;
    assert_eq!(summary["queued"], live);
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE event = 'new'"),
        live
    );
    let (code, out, _) = import(&stack, &legacy.url, &["--verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified"), "{out}");
    // The registry of shape B has titles and no activity flag: every channel counts.
    let (code, out, _) = import(&stack, &legacy.url, &["--channels"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "id = {}\ntitle = \"B {}\"",
            model_id(CHANNELS[2]),
            CHANNELS[2]
        )),
        "{out}"
    );
}

#[test]
fn unknown_shapes_writable_roles_and_urls_on_the_command_line_are_refused() {
    let stack = TestStack::start("legacy_refusals", Wiring::default());
    let neither = legacy_db(
        "neither",
        "CREATE TABLE messages (channel_id bigint, message_id bigint, text text);",
    );
    let (code, _, err) = import(&stack, &neither.url, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("channel_id bigint and message_id bigint: neither shape A"),
        "{err}"
    );
    // The superuser can write there: refused unless allowed.
    let data = generate(6);
    let legacy = legacy_db("writable", &shape_a_sql(&data));
    let database = legacy.url.rsplit('/').next().unwrap();
    let superuser = format!("postgresql://postgres:{URL_PASSWORD}@127.0.0.1:5432/{database}");
    let (code, _, err) = import(&stack, &superuser, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("can write to"), "{err}");
    assert_eq!(stack.count("SELECT count(*) FROM telegram.messages"), 0);
    let (code, out, err) = import(&stack, &superuser, &["--allow-writable-source"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.messages"),
        data.expected.len() as i64
    );
    // The URL on the command line is refused, and not repeated.
    let (code, out, err) = import(&stack, "", &["--from", &superuser]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("never goes on the command line"), "{err}");
    // An unset variable is named.
    let (code, _, err) = import(&stack, "", &["--from", "env:NO_SUCH_LEGACY_URL"]);
    assert_eq!(code, 1);
    assert!(err.contains("NO_SUCH_LEGACY_URL"), "{err}");
}

/// The rendered cutover.sh and cutover-rollback.sh, run for real against this stack: the
/// gateway's commands through TGSTACK_GATEWAY_COMMAND, systemctl through a stand-in that
/// records what it was asked.
#[test]
fn cutover_moves_ingestion_in_and_the_rollback_takes_it_back() {
    let stack = TestStack::start("legacy_cutover", Wiring::default());
    let data = generate(30);
    let legacy = legacy_db("cutover", &shape_a_sql(&data));
    let database = legacy.url.rsplit('/').next().unwrap().to_string();
    let writer = format!("postgresql://postgres:{URL_PASSWORD}@127.0.0.1:5432/{database}");
    let dir = stack.tmp.path();
    let systemctl = dir.join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}/systemctl.log\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &systemctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let script = |name: &str, args: &[&str]| {
        let output = Command::new("bash")
            .arg(dir.join("generated/scripts").join(name))
            .args(args)
            .envs(stack.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TGSTACK_SYSTEMCTL", &systemctl)
            .env(
                "TGSTACK_GATEWAY_COMMAND",
                format!("{BINARY} --model {}", stack.model_arg()),
            )
            .env("TGSTACK_LEGACY_URL", &legacy.url)
            .env("TGSTACK_LEGACY_WRITE_URL", &writer)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !text.contains(URL_PASSWORD),
            "a password was printed:\n{text}"
        );
        (output.status.code().unwrap_or(-1), text)
    };
    let systemctl_log = || std::fs::read_to_string(dir.join("systemctl.log")).unwrap_or_default();

    let stopped = dir.join("legacy-stopped");
    let stop = format!("touch {}", stopped.display());
    let (code, out) = script("cutover.sh", &["--stop-legacy", &stop]);
    assert_eq!(code, 0, "{out}");
    assert!(
        stopped.exists(),
        "the legacy ingestion was not stopped:\n{out}"
    );
    assert_stored_as_expected(&stack, &data);
    assert!(out.contains("verified"), "{out}");
    assert_eq!(systemctl_log(), "start tg-gateway.service\n");

    // A mismatch the final import cannot repair (a message the legacy database never had,
    // within its range) stops a cutover before the gateway starts.
    let alpha = model_id(CHANNELS[0]);
    stack.sql(&format!(
        "INSERT INTO telegram.messages (channel_id, message_id, posted_at, text) \
         VALUES ({alpha}, 0, '2026-01-01T00:00:00Z', 'stray')"
    ));
    let (code, out) = script("cutover.sh", &["--legacy-stopped"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unexpected: 1 (ids 0)"), "{out}");
    assert!(out.contains("is not started"), "{out}");
    assert_eq!(systemctl_log(), "start tg-gateway.service\n");
    stack.sql(&format!(
        "DELETE FROM telegram.messages WHERE channel_id = {alpha} AND message_id = 0"
    ));

    // The new gateway ingests: two messages above the checkpoint, one in a channel the
    // legacy database never had.
    let gamma = -1_001_234_567_892_i64;
    stack.sql(&format!(
        "INSERT INTO telegram.messages (channel_id, message_id, posted_at, text, received_at) VALUES \
         ({alpha}, 31, '2026-02-01T00:00:00Z', 'after cutover 31', '2026-02-01T00:00:01Z'), \
         ({alpha}, 32, '2026-02-01T00:01:00Z', 'after cutover 32', '2026-02-01T00:01:01Z'), \
         ({gamma}, 1, '2026-02-01T00:02:00Z', 'new channel', '2026-02-01T00:02:01Z')"
    ));
    let started = dir.join("legacy-started");
    let start = format!("touch {}", started.display());
    let (code, out) = script("cutover-rollback.sh", &["--start-legacy", &start]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("; 3 written"), "{out}");
    assert!(started.exists(), "{out}");
    assert_eq!(
        systemctl_log(),
        "start tg-gateway.service\nstop tg-gateway.service\n"
    );
    let exported = psql(
        &database,
        "SELECT channel_id, message_id, status, text, telegram_date = created_at - interval '1 second' \
         FROM messages WHERE metadata->>'exported_from' = 'tgstack' ORDER BY 1, 2",
    );
    assert_eq!(
        exported,
        format!(
            "{alpha}|31|published|after cutover 31|t\n{alpha}|32|published|after cutover 32|t\n\
             {gamma}|1|published|new channel|t"
        )
    );
    // Idempotent, and the legacy database now agrees with the stack.
    let (code, out) = script("cutover-rollback.sh", &["--no-start-legacy"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("; 0 written"), "{out}");
    assert_eq!(
        psql(
            &database,
            "SELECT count(*) FROM messages WHERE metadata->>'exported_from' = 'tgstack'"
        ),
        "3",
        "a second rollback wrote duplicates"
    );
    let (code, out, err) = import(&stack, &legacy.url, &["--verify"]);
    assert_eq!(code, 0, "{out}{err}");
}
