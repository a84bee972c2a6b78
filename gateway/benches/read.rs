//! Benchmark of the REST API's read path on this machine with real servers (not a test):
//! `cargo bench -p tg-gateway --bench read`.
//!
//! Ten channels with 5,000 messages of history each; the gateway (a replay fed through a
//! FIFO) keeps storing 50 new messages a second, and so keeps the read cache current. Two
//! `tg-gateway api` processes read the same database: one with the cache off, one with it
//! on. Clients poll the newest page of a channel (limit 50) and follow its cursor: 60 % of
//! requests are newest pages, 25 % second pages (in the cache's window of 200), 15 % sixth
//! pages (past the window: the database answers). Requests are sent open-loop at 200, 1,000
//! and 5,000 requests/s for `BENCH_SECONDS` (default 10) each, on 32 keep-alive connections;
//! a request's latency counts from when it was due, so a server that falls behind shows it.
//! Each rate runs with the cache off, then on, `BENCH_ROUNDS` times (default 2).
//!
//! Reported per run: achieved rate, p50/p95/p99 latency, errors (non-200 or no answer
//! within 5 s), the cache's hit share, the queries/s PgBouncer sent to PostgreSQL (its
//! `SHOW STATS`) and PostgreSQL's transactions/s (`pg_stat_database`), both with the
//! gateway's own writes, and the CPU seconds of each process.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::percentile;
use support::*;
use testkit::{Daemon, free_port, run, spawn, wait_for_port};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CHANNEL_COUNT: i64 = 10;
const HISTORY: i64 = 5_000;
const PAGE: u32 = 50;
const CONNECTIONS: usize = 32;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// New messages stored per second while the clients read.
const WRITES_PER_SECOND: u64 = 50;

/// The benchmark's channels: the model's three and seven more.
fn channels() -> Vec<i64> {
    let mut all = CHANNELS.to_vec();
    all.extend((1..=CHANNEL_COUNT - 3).map(|n| -1_009_000_000_000 - n));
    all
}

/// The cache on for the writer, and the channels (replacing the model's list).
fn overlay() -> String {
    let mut text = String::from(
        "\n[services.gateway-api.api.cache]\nenabled = true\nredis = \"redis-master\"\nrecent = 200\n",
    );
    for id in channels() {
        text += &format!("\n[[channels]]\nid = {id}\ntitle = \"Bench {id}\"\n");
    }
    text
}

/// A `tg-gateway api` process with the cache on or off.
struct ApiProcess {
    port: u16,
    _daemon: Daemon,
}

fn start_api(stack: &TestStack, cache: bool) -> ApiProcess {
    let port = free_port();
    let file = stack.tmp.path().join(format!("api-{cache}.toml"));
    std::fs::write(
        &file,
        format!(
            "unset = [\"services.gateway-api.publish\"]\n\n\
             [services.gateway-api]\ndeploy = \"native\"\nport = {port}\n\n\
             [services.gateway-api.api.cache]\nenabled = {cache}\n"
        ),
    )
    .unwrap();
    let model = format!("{},{}", stack.model_arg(), file.display());
    let mut daemon = spawn(
        "tg-gateway api",
        BINARY,
        &["--model", &model, "api"],
        &stack.env,
        &stack.tmp.path().join(format!("api-{cache}.log")),
        None,
    );
    wait_for_port(&mut daemon, port, Duration::from_secs(20));
    ApiProcess {
        port,
        _daemon: daemon,
    }
}

/// History: `HISTORY` messages per channel, one a second, as the replay's messages are.
fn insert_history(stack: &TestStack) {
    let ids: Vec<String> = channels().iter().map(i64::to_string).collect();
    stack.sql(&format!(
        "INSERT INTO telegram.messages (channel_id, message_id, posted_at, text, sender_id, raw) \
         SELECT c, i, to_timestamp(1767225600 + i), \
                'message ' || i || ' of ' || c || ': BTC 97k, ETH 3.4k, a typical signal body', \
                42, jsonb_build_object('id', i, 'views', i * 3) \
         FROM unnest(ARRAY[{}]::bigint[]) AS c, generate_series(1, {HISTORY}) AS i",
        ids.join(",")
    ));
    stack.sql("ANALYZE telegram.messages");
}

/// Keeps storing new messages through a replay reading a FIFO, until dropped.
struct Trickle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _replay: Daemon,
}

impl Trickle {
    fn start(stack: &TestStack) -> Trickle {
        let fifo = stack.tmp.path().join("feed.fifo");
        let (ok, out) = run("mkfifo", &[fifo.to_str().unwrap()], &[]);
        assert!(ok, "mkfifo: {out}");
        let replay = stack.spawn_replay(&fifo, "10s", false);
        let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::io::Write;
            let channels = channels();
            let mut id = HISTORY;
            // One message to every channel per tick.
            let tick = Duration::from_millis(1000 * CHANNEL_COUNT as u64 / WRITES_PER_SECOND);
            while !flag.load(Ordering::SeqCst) {
                id += 1;
                for channel in &channels {
                    let _ = writeln!(feed, "{}", new_message(*channel, id));
                }
                let _ = feed.flush();
                std::thread::sleep(tick);
            }
        });
        Trickle {
            stop,
            thread: Some(thread),
            _replay: replay,
        }
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    async fn open(port: u16) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    /// GET `path`: the status and body.
    async fn get(&mut self, path: &str, key: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n\r\n");
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut status = 0;
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let text = line.trim_end();
            if text.is_empty() {
                break;
            }
            if status == 0 {
                status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some((name, value)) = text.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

/// The paths of one run: per channel, the newest page, the second and the sixth (by the
/// cursors the database path gives now).
async fn paths(port: u16, key: &str) -> Vec<[String; 3]> {
    let mut connection = Connection::open(port).await.expect("connect to the API");
    let mut all = Vec::new();
    for channel in channels() {
        let newest = format!("/api/messages?channel={channel}&order=desc&limit={PAGE}");
        let mut cursors = Vec::new();
        let mut path = format!("{newest}&since=0001-01-01T00:00:00Z");
        for _ in 0..5 {
            let (status, body) = connection.get(&path, key).await.expect("a page");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let cursor = page["next_cursor"]
                .as_str()
                .expect("more pages")
                .to_string();
            path = format!("{newest}&since=0001-01-01T00:00:00Z&cursor={cursor}");
            cursors.push(cursor);
        }
        all.push([
            newest.clone(),
            format!("{newest}&cursor={}", cursors[0]),
            format!("{newest}&cursor={}", cursors[4]),
        ]);
    }
    all
}

/// What one run measured.
struct Outcome {
    achieved: f64,
    latencies_ms: Vec<f64>,
    errors: usize,
}

/// `rate` requests/s for `seconds`, open-loop on CONNECTIONS connections.
async fn load(port: u16, key: &str, rate: u64, seconds: u64, paths: &[[String; 3]]) -> Outcome {
    let total = rate * seconds;
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let paths = Arc::new(paths.to_vec());
    let mut workers = Vec::new();
    for worker in 0..CONNECTIONS {
        let (paths, key) = (paths.clone(), key.to_string());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut connection = Connection::open(port).await.ok();
            let mut i = worker as u64;
            while i < total {
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                tokio::time::sleep_until(due).await;
                let channel = &paths[(i % paths.len() as u64) as usize];
                let path = match i % 20 {
                    0..12 => &channel[0],
                    12..17 => &channel[1],
                    _ => &channel[2],
                };
                let answer = match connection.as_mut() {
                    Some(c) => tokio::time::timeout(REQUEST_TIMEOUT, c.get(path, &key)).await,
                    None => Ok(Err(std::io::ErrorKind::NotConnected.into())),
                };
                match answer {
                    Ok(Ok((200, _))) => latencies.push(due.elapsed().as_secs_f64() * 1000.0),
                    _ => {
                        errors += 1;
                        connection = Connection::open(port).await.ok();
                    }
                }
                i += CONNECTIONS as u64;
            }
            (latencies, errors)
        }));
    }
    let mut latencies_ms = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await.expect("worker");
        latencies_ms.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies_ms.sort_by(f64::total_cmp);
    Outcome {
        achieved: latencies_ms.len() as f64 / elapsed,
        latencies_ms,
        errors,
    }
}

/// Queries PgBouncer has sent to PostgreSQL for the stack's database so far (its
/// `SHOW STATS`, read as the model's stats user).
fn pgbouncer_queries(stack: &TestStack) -> i64 {
    let port = stack.model.stack.services["pgbouncer"].port.to_string();
    let password = (
        "PGPASSWORD".to_string(),
        stack.secrets["pgbouncer_stats"].clone(),
    );
    let (ok, out) = run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "pgbouncer_stats",
            "-d",
            "pgbouncer",
            "-X",
            "-A",
            "-F",
            "|",
            "-c",
            "SHOW STATS",
        ],
        &[password],
    );
    assert!(ok, "SHOW STATS: {out}");
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('|').collect();
    let column = header
        .iter()
        .position(|c| *c == "total_query_count")
        .expect("SHOW STATS has total_query_count");
    lines
        .map(|line| line.split('|').collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&stack.database.as_str()))
        .and_then(|cells| cells.get(column)?.parse().ok())
        .unwrap_or(0)
}

/// PostgreSQL transactions of the stack's database so far.
fn transactions(stack: &TestStack) -> i64 {
    stack.count(&format!(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{}'",
        stack.database
    ))
}

/// The API's cache counters: (hits, misses).
async fn cache_counters(port: u16, key: &str) -> (f64, f64) {
    let mut connection = Connection::open(port).await.expect("connect");
    let (_, body) = connection.get("/metrics", key).await.expect("metrics");
    let text = String::from_utf8_lossy(&body);
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (
        sum("tg_api_cache_hits_total"),
        sum("tg_api_cache_misses_total"),
    )
}

const CPU_USERS: [(&str, &str); 5] = [
    ("postgres", "postgres"),
    ("pgbouncer", "pgbouncer"),
    ("redis", "redis-server"),
    ("tg-gateway (API and writer)", "tg-gateway"),
    ("clients", common::THIS_PROCESS),
];

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let stack = TestStack::start(
        "readbench",
        Wiring {
            extra: overlay(),
            ..Wiring::default()
        },
    );
    insert_history(&stack);
    let key = stack.secrets["api_key"].clone();
    let _trickle = Trickle::start(&stack);
    let off = start_api(&stack, false);
    let on = start_api(&stack, true);
    // Warm: every channel asked for once, so the writer loads its window.
    runtime.block_on(async {
        let paths = paths(on.port, &key).await;
        let _ = load(on.port, &key, 200, 3, &paths).await;
    });
    println!(
        "read path, {CHANNEL_COUNT} channels x {HISTORY} messages, {WRITES_PER_SECOND} new messages/s, \
         pages of {PAGE}, {CONNECTIONS} connections, {seconds} s per run"
    );
    println!(
        "| cache | offered req/s | achieved req/s | p50 ms | p95 ms | p99 ms | errors | cache hits | queries/s to PostgreSQL | PostgreSQL tx/s | CPU seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for round in 0..rounds {
        for rate in [200, 1_000, 5_000] {
            for (name, api) in [("off", &off), ("on", &on)] {
                let result = runtime.block_on(async {
                    let paths = paths(api.port, &key).await;
                    let counters_before = cache_counters(api.port, &key).await;
                    let tx_before = transactions(&stack);
                    let queries_before = pgbouncer_queries(&stack);
                    let cpu_before = common::cpu_seconds(&CPU_USERS);
                    let outcome = load(api.port, &key, rate, seconds, &paths).await;
                    let cpu_after = common::cpu_seconds(&CPU_USERS);
                    // pg_stat_database is flushed at most once a second.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    let tx = transactions(&stack) - tx_before;
                    let queries = pgbouncer_queries(&stack) - queries_before;
                    let counters_after = cache_counters(api.port, &key).await;
                    let hits = counters_after.0 - counters_before.0;
                    let misses = counters_after.1 - counters_before.1;
                    let hit_share = if hits + misses > 0.0 {
                        format!("{:.0} %", 100.0 * hits / (hits + misses))
                    } else {
                        "-".to_string()
                    };
                    (
                        outcome,
                        hit_share,
                        queries as f64 / seconds as f64,
                        tx as f64 / seconds as f64,
                        common::cpu_used(&CPU_USERS, &cpu_before, &cpu_after),
                    )
                });
                let (outcome, hit_share, queries_per_second, tx_per_second, cpu) = result;
                let l = &outcome.latencies_ms;
                println!(
                    "| {name} | {rate} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {hit_share} | {queries_per_second:.0} | {tx_per_second:.0} | {cpu} |",
                    outcome.achieved,
                    percentile(l, 0.5),
                    percentile(l, 0.95),
                    percentile(l, 0.99),
                    outcome.errors,
                );
            }
        }
        if round + 1 < rounds {
            println!("|  |  |  |  |  |  |  |  |  |  |  |");
        }
    }
}
