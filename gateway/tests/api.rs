//! `tg-gateway api` against real servers: a fresh database on the local PostgreSQL with the
//! schema from the rendered migration, reached through a PgBouncer started from the
//! RENDERED pgbouncer.ini with the deploy-time userlist (harness in `support/`), and the
//! API process itself started from the test model (native, on a free port).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{BINARY, CHANNELS, TestStack, Wiring};
use serde_json::Value;
use testkit::{Daemon, free_port, spawn, wait_for_port};

/// The API process of one test stack.
pub(crate) struct Api {
    pub(crate) port: u16,
    pub(crate) key: String,
    model: String,
    env: Vec<(String, String)>,
    _daemon: Daemon,
}

/// Runs the model's `gateway-api` natively on a free port, through the stack's PgBouncer.
pub(crate) fn start_api(stack: &TestStack) -> Api {
    let port = free_port();
    let overlay: PathBuf = stack.tmp.path().join("api-overlay.toml");
    std::fs::write(
        &overlay,
        format!(
            "unset = [\"services.gateway-api.publish\"]\n\n\
             [services.gateway-api]\ndeploy = \"native\"\nport = {port}\n"
        ),
    )
    .unwrap();
    let model = format!("{},{}", stack.model_arg(), overlay.display());
    let key = stack.secrets["api_key"].clone();
    let env = stack.env.clone();
    let mut daemon = spawn(
        "tg-gateway api",
        BINARY,
        &["--model", &model, "--service", "gateway-api", "api"],
        &env,
        &stack.tmp.path().join("api.log"),
        None,
    );
    wait_for_port(&mut daemon, port, Duration::from_secs(20));
    Api {
        port,
        key,
        model,
        env,
        _daemon: daemon,
    }
}

impl Api {
    /// GET with an optional X-API-Key: (status, body).
    pub(crate) fn get_with(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let headers: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
        testkit::http_request(self.port, "GET", path, &headers, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("no HTTP response from the API to GET {path}"))
    }

    /// Authenticated GET that must answer 200 with JSON.
    pub(crate) fn json(&self, path: &str) -> Value {
        let (status, body) = self.get_with(path, Some(&self.key));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

/// `n` messages per model channel, ids 1..=n, two ids per second: many rows share a
/// posted_at, so the keyset's tie-breakers (channel_id, message_id) matter.
pub(crate) fn insert_messages(stack: &TestStack, n: i64) {
    stack.sql(&format!(
        "INSERT INTO telegram.messages (channel_id, message_id, posted_at, text, sender_id, raw) \
         SELECT c, i, timestamptz '2026-01-01 00:00:00+00' + (i / 2) * interval '1 second', \
                'message ' || i, 42, jsonb_build_object('id', i) \
         FROM unnest(ARRAY[{}]::bigint[]) AS c, generate_series(1, {n}) AS i",
        CHANNELS.map(|c| c.to_string()).join(",")
    ));
}

/// Inserts one row; `posted_at` is an SQL expression.
fn insert_one(stack: &TestStack, channel: i64, id: i64, posted_at: &str) {
    stack.sql(&format!(
        "INSERT INTO telegram.messages (channel_id, message_id, posted_at, text) \
         VALUES ({channel}, {id}, {posted_at}, 'late {id}')"
    ));
}

type Key = (i64, i64);

fn key_of(message: &Value) -> Key {
    (
        message["channel_id"].as_i64().unwrap(),
        message["message_id"].as_i64().unwrap(),
    )
}

/// Walks every page of `query`, calling `between` after each page; returns the keys in
/// the order served.
fn walk(api: &Api, query: &str, mut between: impl FnMut(usize)) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 10_000, "pagination does not end");
        let path = match &cursor {
            None => format!("/api/messages?{query}"),
            Some(c) => format!("/api/messages?{query}&cursor={c}"),
        };
        let body = api.json(&path);
        keys.extend(body["messages"].as_array().unwrap().iter().map(key_of));
        between(page);
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    keys
}

#[test]
fn api_serves_messages_and_channels_only_with_the_right_key() {
    let stack = TestStack::start("api_auth", Wiring::default());
    let api = start_api(&stack);
    insert_messages(&stack, 150);
    stack.sql(&format!(
        "UPDATE telegram.messages SET deleted = true WHERE channel_id = {} AND message_id = 3",
        CHANNELS[0]
    ));

    // Open routes.
    let (status, body) = api.get_with("/health", None);
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["dependencies"]["postgres"]["status"], "up");

    // Missing, wrong and right key.
    let (status, body) = api.get_with("/api/channels", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing X-API-Key"), "{body}");
    let (status, body) = api.get_with("/api/channels", Some("not-the-key"));
    assert_eq!(status, 401, "{body}");
    let almost = format!("{}x", api.key);
    assert_eq!(api.get_with("/api/messages", Some(&almost)).0, 401);
    let (status, _) = api.get_with("/api/messages/1/1", None);
    assert_eq!(status, 401);

    // Channels: seeded from the model by the migration.
    let channels = api.json("/api/channels");
    let listed: Vec<(i64, String)> = channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel_id"].as_i64().unwrap(),
                c["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(i64, String)> = stack
        .model
        .stack
        .channels
        .iter()
        .map(|c| (c.id, c.title.clone()))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    assert_eq!(listed, expected);

    // One message, with its raw fields; an unknown one is 404.
    let one = api.json(&format!("/api/messages/{}/7", CHANNELS[1]));
    assert_eq!(one["text"], "message 7");
    assert_eq!(one["raw"]["id"], 7);
    assert_eq!(one["sender_id"], 42);
    let (status, body) = api.get_with(
        &format!("/api/messages/{}/999999", CHANNELS[1]),
        Some(&api.key),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no message 999999"), "{body}");
    let (status, _) = api.get_with("/api/messages/alpha/7", Some(&api.key));
    assert_eq!(status, 400);

    // Page sizes: default from the model, the maximum accepted, above it rejected.
    let settings = stack.model.stack.services["gateway-api"]
        .api
        .clone()
        .unwrap();
    let page = api.json("/api/messages");
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        settings.default_page_size as usize
    );
    assert!(page["next_cursor"].is_string());
    let page = api.json(&format!("/api/messages?limit={}", settings.max_page_size));
    // 450 rows minus the deleted one fit in one maximal page.
    assert_eq!(page["messages"].as_array().unwrap().len(), 449);
    assert!(page["next_cursor"].is_null());
    let (status, body) = api.get_with(
        &format!("/api/messages?limit={}", settings.max_page_size + 1),
        Some(&api.key),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!("between 1 and {}", settings.max_page_size)),
        "{body}"
    );
    for bad in ["cursor=xyz", "channel_id=1", "limit=0", "order=sideways"] {
        let (status, body) = api.get_with(&format!("/api/messages?{bad}"), Some(&api.key));
        assert_eq!(status, 400, "{bad}: {body}");
    }
    client_mistakes_are_400_and_leave_the_database_up(&api);

    // Filters: channel, time range, deleted rows.
    let channel = CHANNELS[0];
    let filtered = api.json(&format!(
        "/api/messages?channel={channel}&since=2026-01-01T00:00:10Z&until=2026-01-01T00:00:20Z&limit=100"
    ));
    let ids: Vec<i64> = filtered["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["channel_id"], channel);
            m["message_id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids, (20..=39).collect::<Vec<_>>(), "ids / 2 in [10, 20)");
    let with_deleted = api.json(&format!(
        "/api/messages?channel={channel}&until=2026-01-01T00:00:02Z&include_deleted=true"
    ));
    let rows = with_deleted["messages"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "ids 1..=3");
    assert_eq!(rows[2]["deleted"], true);
    let without = api.json(&format!(
        "/api/messages?channel={channel}&until=2026-01-01T00:00:02Z"
    ));
    assert_eq!(without["messages"].as_array().unwrap().len(), 2);

    // Metrics: open, per route template (never the raw path), with status codes.
    let (status, metrics) = api.get_with("/metrics", None);
    assert_eq!(status, 200);
    let templated = metrics.lines().any(|line| {
        line.starts_with("tg_api_http_requests_total{")
            && line.contains("route=\"/api/messages/{channel}/{id}\"")
            && line.contains("status=\"404\"")
    });
    assert!(templated, "no templated route series in:\n{metrics}");
    // Only label sets: a sample value such as 0.0022435009999999997 may contain the digits.
    assert!(
        !metrics
            .lines()
            .filter_map(|line| line
                .split_once('{')
                .and_then(|(_, rest)| rest.split_once('}')))
            .any(|(labels, _)| labels.contains("999999")),
        "raw path in a label:\n{metrics}"
    );
    assert!(metrics.contains("tg_api_http_request_duration_seconds_bucket"));
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tg_api_auth_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no auth failure counter in:\n{metrics}"));
    assert!(failures >= 4.0, "{failures}");

    // Without its key in the environment the API refuses to start, naming the variable.
    let env: Vec<(String, String)> = api
        .env
        .iter()
        .filter(|(name, _)| name != "TG_API_KEY")
        .cloned()
        .collect();
    let (ok, out) = testkit::run(
        BINARY,
        &["--model", &api.model, "--service", "gateway-api", "api"],
        &env,
    );
    assert!(!ok, "the API started without its key:\n{out}");
    assert!(out.contains("TG_API_KEY"), "{out}");
    for value in stack.secrets.values() {
        assert!(
            !out.contains(value.as_str()),
            "a secret value was printed:\n{out}"
        );
    }
}

/// Times PostgreSQL cannot hold, in parameters or inside a cursor, are the client's mistake:
/// 400 naming the parameter, the value never repeated, and the database still up on
/// `/metrics` (it once answered 503 and marked PostgreSQL down). An empty cursor is the
/// first page, as openapi.yaml says.
fn client_mistakes_are_400_and_leave_the_database_up(api: &Api) {
    use base64::Engine as _;
    let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    // 1:a:<micros>:<channel>:<id>; -220e15 µs is the year -5001, 253402300800e6 the year 10000.
    let far_past = encode("1:a:-220000000000000000:1:2");
    let far_future = encode("1:a:253402300800000000:1:2");
    let cases = [
        ("since=-5000-01-01T00:00:00Z".to_string(), "`since`", "5000"),
        (
            "until=+10000-01-01T00:00:00Z".to_string(),
            "`until`",
            "10000",
        ),
        (
            "since=%3Cb%3Ehello%3C%2Fb%3E".to_string(),
            "`since`",
            "hello",
        ),
        (format!("cursor={far_past}"), "cursor", far_past.as_str()),
        (
            format!("cursor={far_future}"),
            "cursor",
            far_future.as_str(),
        ),
        ("limit=99999999999".to_string(), "`limit`", "99999999999"),
        (
            "channel=9223372036854775808".to_string(),
            "`channel`",
            "9223372036854775808",
        ),
        (
            "sinec=2026-01-01T00:00:00Z".to_string(),
            "unknown query parameter",
            "sinec",
        ),
    ];
    for (query, names, sent) in &cases {
        let (status, body) = api.get_with(&format!("/api/messages?{query}"), Some(&api.key));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(names), "{query}: {body}");
        assert!(
            !body.contains(sent),
            "{query}: the error repeats the input: {body}"
        );
    }
    let first = api.json("/api/messages?limit=5");
    let empty_cursor = api.json("/api/messages?limit=5&cursor=");
    assert_eq!(first, empty_cursor, "an empty cursor is the first page");

    let (_, metrics) = api.get_with("/metrics", None);
    let postgres_up = metrics
        .lines()
        .find(|line| line.starts_with("tg_gateway_dependency_up{") && line.contains("postgres"))
        .unwrap_or_else(|| panic!("no postgres dependency gauge in:\n{metrics}"));
    assert!(
        postgres_up.ends_with(" 1"),
        "client input marked the database down: {postgres_up}"
    );
}

#[test]
fn pagination_walks_every_row_exactly_once_under_concurrent_inserts() {
    let stack = Arc::new(TestStack::start("api_pages", Wiring::default()));
    let api = start_api(&stack);
    insert_messages(&stack, 100);
    let original: BTreeSet<Key> = CHANNELS
        .iter()
        .flat_map(|&c| (1..=100).map(move |i| (c, i)))
        .collect();

    // A writer inserting all the time, before and after the walk's position.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stack, stop) = (stack.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut written = 0;
            while !stop.load(Ordering::SeqCst) && written < 400 {
                let second = (written * 7919) % 200;
                insert_one(
                    &stack,
                    CHANNELS[written as usize % 3],
                    500_000 + written,
                    &format!("timestamptz '2026-01-01 00:00:00+00' + interval '{second} seconds'"),
                );
                written += 1;
            }
            written
        })
    };

    // And between pages, one row far behind the cursor and one far ahead of it.
    let mut behind = BTreeSet::new();
    let mut ahead = BTreeSet::new();
    let served = walk(&api, "limit=7", |page| {
        let id = 900_000 + page as i64;
        insert_one(
            &stack,
            CHANNELS[0],
            id,
            "timestamptz '2025-06-01 00:00:00+00'",
        );
        behind.insert((CHANNELS[0], id));
        insert_one(
            &stack,
            CHANNELS[1],
            id,
            "timestamptz '2027-06-01 00:00:00+00'",
        );
        ahead.insert((CHANNELS[1], id));
    });
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0, "the concurrent writer inserted nothing");

    let unique: BTreeSet<Key> = served.iter().copied().collect();
    assert_eq!(unique.len(), served.len(), "a row was served twice");
    let missing: Vec<&Key> = original.difference(&unique).collect();
    assert!(missing.is_empty(), "rows never served: {missing:?}");
    assert!(
        unique.is_disjoint(&behind),
        "a row inserted behind the cursor was served"
    );
    // Rows inserted ahead of the cursor are all reached, but the one inserted after the
    // last page was served.
    let mut reachable: Vec<&Key> = ahead.iter().collect();
    reachable.pop();
    let skipped: Vec<&&Key> = reachable.iter().filter(|k| !unique.contains(k)).collect();
    assert!(
        skipped.is_empty(),
        "rows inserted ahead of the cursor were skipped: {skipped:?}"
    );

    // Newest first, one channel, a time window: exactly the rows SQL finds, in order.
    let channel = CHANNELS[2];
    let query = format!(
        "channel={channel}&since=2026-01-01T00:00:05Z&until=2026-01-01T00:00:45Z&order=desc&limit=4"
    );
    let served = walk(&api, &query, |_| {});
    let expected: Vec<Key> = stack
        .sql(&format!(
            "SELECT channel_id || ',' || message_id FROM telegram.messages \
             WHERE channel_id = {channel} AND NOT deleted \
               AND posted_at >= '2026-01-01T00:00:05Z' AND posted_at < '2026-01-01T00:00:45Z' \
             ORDER BY posted_at DESC, channel_id DESC, message_id DESC"
        ))
        .lines()
        .map(|line| {
            let (c, m) = line.split_once(',').unwrap();
            (c.parse().unwrap(), m.parse().unwrap())
        })
        .collect();
    assert!(expected.len() > 4, "the window spans several pages");
    assert_eq!(served, expected);
}

/// schemathesis (PyPI, installed by scripts/test-env.sh) against gateway/openapi.yaml and
/// the API on a real database: the checks (see below for the one left out), positive and
/// negative data, the stateful phase through the spec's link, a fixed seed and a bounded
/// number of examples per operation, 0 failures.
#[test]
fn schemathesis_finds_no_difference_between_the_spec_and_the_api() {
    const SCHEMATHESIS: &str = "/opt/tgstack-tools/bin/st";
    assert!(
        std::path::Path::new(SCHEMATHESIS).exists(),
        "{SCHEMATHESIS} is missing: run `bash scripts/test-env.sh` (installs schemathesis)"
    );
    let stack = TestStack::start("api_fuzz", Wiring::default());
    let api = start_api(&stack);
    insert_messages(&stack, 30);
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let url = format!("http://127.0.0.1:{}", api.port);
    let header = format!("X-API-Key: {}", api.key);
    let output = std::process::Command::new(SCHEMATHESIS)
        .current_dir(stack.tmp.path())
        .args([
            "run",
            spec.to_str().unwrap(),
            "--url",
            &url,
            "--header",
            &header,
        ])
        .args(["--checks", "all", "--mode", "all", "--max-examples", "100"])
        // Not every schema-valid value can be accepted: `limit` is bounded by the model's
        // max_page_size (400 above it, by design) and a cursor is opaque, so a random
        // string is not one. Every other check runs, negative data included.
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--seed", "20261129", "--generation-database", "none"])
        .args(["--workers", "1", "--request-timeout", "10", "--no-color"])
        .output()
        .expect("run schemathesis");
    // The key is a secret of the test stack: never in the test's output.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .replace(&api.key, "<api key>");
    assert!(output.status.success(), "schemathesis failed:\n{text}");
    assert!(
        text.contains("5 selected") || text.contains("5 total"),
        "schemathesis did not test the 5 operations:\n{text}"
    );
}
