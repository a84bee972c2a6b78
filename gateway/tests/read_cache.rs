//! The API's read cache against real servers: the gateway (a replay fed through a FIFO,
//! so it keeps running while the test reads) writes the cache in the stack's private Redis,
//! the API process reads it. Every page is checked against what PostgreSQL holds at that
//! moment, so an old version or a deleted message served from the cache fails the test.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{Daemon, eventually, run};

use crate::api::{Api, start_api};
use crate::support::*;
use tg_gateway::cache;

/// 50 newest messages per channel cached: 120 stored per channel, so walks leave the window.
const CACHE: &str = "
[services.gateway-api.api.cache]
enabled = true
redis = \"redis-master\"
recent = 50
";
const PER_CHANNEL: i64 = 120;
/// Messages of the first channel that are edited and deleted under load: the newest ones.
const EDITED: std::ops::RangeInclusive<i64> = 101..=120;

/// A replay reading a FIFO: lines written to `feed` are ingested while the process runs.
struct Writer {
    feed: Option<std::fs::File>,
    replay: Daemon,
}

impl Writer {
    fn start(stack: &TestStack) -> Writer {
        Writer::start_with(stack, None)
    }

    /// With `redis_port`, the writer reaches Redis there (a proxy) instead of directly.
    fn start_with(stack: &TestStack, redis_port: Option<u16>) -> Writer {
        let fifo = stack.tmp.path().join("feed.fifo");
        let (ok, out) = run("mkfifo", &[fifo.to_str().unwrap()], &[]);
        assert!(ok, "mkfifo: {out}");
        let mut model = stack.model_arg();
        if let Some(port) = redis_port {
            let overlay = stack.tmp.path().join("writer-overlay.toml");
            std::fs::write(
                &overlay,
                format!("[services.redis-master]\nport = {port}\n"),
            )
            .unwrap();
            model = format!("{model},{}", overlay.display());
        }
        let replay = testkit::spawn(
            "tg-gateway replay",
            BINARY,
            &[
                "--model",
                &model,
                "replay",
                "--drain-timeout",
                "30s",
                fifo.to_str().unwrap(),
            ],
            &stack.env,
            &stack.tmp.path().join("gateway.log"),
            None,
        );
        // Opening blocks until the replay opens its end.
        let feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        Writer {
            feed: Some(feed),
            replay,
        }
    }

    fn send(&mut self, lines: &[String]) {
        let feed = self.feed.as_mut().expect("feed open");
        for line in lines {
            writeln!(feed, "{line}").unwrap();
        }
        feed.flush().unwrap();
    }
}

fn edit(channel: i64, id: i64, version: i64) -> String {
    let posted = chrono::DateTime::from_timestamp(1_767_225_600 + id, 0).unwrap();
    let edited = chrono::DateTime::from_timestamp(1_800_000_000 + version, 0).unwrap();
    serde_json::json!({"kind": "edit", "channel_id": channel, "message_id": id,
        "posted_at": posted.to_rfc3339(), "text": format!("version {version}"),
        "edit_date": edited.to_rfc3339()})
    .to_string()
}

fn delete(channel: i64, ids: &[i64]) -> String {
    serde_json::json!({"kind": "delete", "channel_id": channel, "message_ids": ids}).to_string()
}

fn counter(api: &Api, name: &str) -> f64 {
    let (_, metrics) = api.get_with("/metrics", None);
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The newest page of `channel` from the cache path, and the same page from the database
/// path (a time range the cache never answers): (cache body, database body).
fn both_paths(api: &Api, channel: i64, limit: u32, cursor: Option<&str>) -> (String, String) {
    let cursor = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
    let get = |extra: &str| {
        let path =
            format!("/api/messages?channel={channel}&order=desc&limit={limit}{cursor}{extra}");
        let (status, body) = api.get_with(&path, Some(&api.key));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    };
    (get(""), get("&since=0001-01-01T00:00:00Z"))
}

/// (edit date as text, deleted) of the edited messages, as PostgreSQL holds them now.
fn truth(stack: &TestStack) -> BTreeMap<i64, (String, bool)> {
    let rows = stack.sql(&format!(
        "SELECT message_id, coalesce(to_char(edit_date AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), ''), deleted \
         FROM telegram.messages WHERE channel_id = {} AND message_id BETWEEN {} AND {}",
        CHANNELS[0],
        EDITED.start(),
        EDITED.end()
    ));
    rows.lines()
        .filter_map(|line| {
            let mut cells = line.split('|');
            let id = cells.next()?.trim().parse().ok()?;
            let edited = cells.next()?.trim().to_string();
            let deleted = cells.next()?.trim() == "t";
            Some((id, (edited, deleted)))
        })
        .collect()
}

/// Checks one API page against the database state read just before it: every edit the
/// database had is shown (or a newer one), and nothing it had deleted is shown.
fn assert_not_older(before: &BTreeMap<i64, (String, bool)>, page: &Value, include_deleted: bool) {
    for message in page["messages"].as_array().unwrap() {
        let id = message["message_id"].as_i64().unwrap();
        let Some((edited, deleted)) = before.get(&id) else {
            continue;
        };
        let shown = message["edit_date"]
            .as_str()
            .map(|t| t.trim_end_matches('Z').to_string())
            .unwrap_or_default();
        assert!(
            shown.as_str() >= edited.as_str(),
            "message {id}: the API showed the edit of {shown:?} after the database had {edited:?}"
        );
        if *deleted {
            assert!(
                include_deleted,
                "message {id}: deleted in the database, still listed by the API"
            );
            assert_eq!(message["deleted"], true, "message {id}: deletion not shown");
        }
    }
}

/// A stack with the cache on, `PER_CHANNEL` messages per channel stored, the writer
/// running and the cache serving.
fn cached_stack(name: &str) -> (TestStack, Writer, Api) {
    let stack = TestStack::start(
        name,
        Wiring {
            extra: CACHE.into(),
            ..Wiring::default()
        },
    );
    let writer = Writer::start(&stack);
    let (writer, api) = fill(&stack, writer);
    (stack, writer, api)
}

/// Starts the API, stores `PER_CHANNEL` messages per channel through `writer`, and waits
/// for the cache to serve.
fn fill(stack: &TestStack, mut writer: Writer) -> (Writer, Api) {
    let api = start_api(stack);
    let lines: Vec<String> = (1..=PER_CHANNEL)
        .flat_map(|id| CHANNELS.map(|channel| new_message(channel, id)))
        .collect();
    writer.send(&lines);
    stack.wait_stored_over(&mut writer.replay, PER_CHANNEL * CHANNELS.len() as i64 - 1);
    eventually(
        "pages served from the cache",
        Duration::from_secs(30),
        || {
            for channel in CHANNELS {
                both_paths(&api, channel, 10, None);
            }
            (counter(&api, "tg_api_cache_hits_total") >= 3.0).then_some(())
        },
    );
    (writer, api)
}

#[test]
fn cached_pages_are_the_database_pages_byte_for_byte() {
    let (stack, mut writer, api) = cached_stack("cache_pages");
    for channel in CHANNELS {
        // Walk all pages: the first ones from the cache, then past its window.
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let (cached, database) = both_paths(&api, channel, 15, cursor.as_deref());
            assert_eq!(cached, database, "channel {channel}, page {pages}");
            pages += 1;
            let page: Value = serde_json::from_str(&cached).unwrap();
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
            assert!(pages < 100, "pagination does not end");
        }
        assert_eq!(pages, (PER_CHANNEL as usize).div_ceil(15));
    }
    let hits = counter(&api, "tg_api_cache_hits_total");
    let beyond = counter(&api, "tg_api_cache_misses_total{reason=\"window\"}");
    // 50 cached of 120: pages 1 to 3 of 8 fit the window (the third needs one row more).
    assert!(hits >= 3.0 * 3.0, "hits {hits}");
    assert!(beyond >= 3.0 * 4.0, "misses beyond the window {beyond}");

    // A date a double cannot hold to the microsecond: that channel leaves the cache, and
    // its pages stay right.
    let far = serde_json::json!({"kind": "new", "channel_id": CHANNELS[2], "message_id": 9999,
        "posted_at": "2300-01-01T00:00:00.000001Z", "text": "far future"});
    writer.send(&[far.to_string()]);
    stack.wait_stored_over(&mut writer.replay, PER_CHANNEL * CHANNELS.len() as i64);
    for _ in 0..3 {
        let hits = counter(&api, "tg_api_cache_hits_total");
        let (cached, database) = both_paths(&api, CHANNELS[2], 15, None);
        assert_eq!(cached, database);
        assert!(cached.contains("far future"), "{cached}");
        assert_eq!(
            counter(&api, "tg_api_cache_hits_total"),
            hits,
            "served from the cache"
        );
        std::thread::sleep(cache::RENEW_EVERY);
    }
}

#[test]
fn edits_and_deletes_under_concurrent_reads_never_show_an_old_version() {
    let (stack, mut writer, api) = cached_stack("cache_edits");
    let stack = Arc::new(stack);
    let api = Arc::new(api);
    let done = Arc::new(AtomicBool::new(false));
    let hits_before = counter(&api, "tg_api_cache_hits_total");
    // Each reader counts its checked pages; the writer waits for every reader to check at
    // least one page after each round, so on a loaded machine the reads still interleave
    // with all 60 rounds instead of a few slow pages covering the whole write phase.
    let progress: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let readers: Vec<_> = [false, true]
        .into_iter()
        .enumerate()
        .map(|(reader, include_deleted)| {
            let (stack, api, done) = (stack.clone(), api.clone(), done.clone());
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut checked = 0;
                while !done.load(Ordering::SeqCst) && checked < 5_000 {
                    let before = truth(&stack);
                    let path = format!(
                        "/api/messages?channel={}&order=desc&limit=30&include_deleted={include_deleted}",
                        CHANNELS[0]
                    );
                    let page = api.json(&path);
                    assert_not_older(&before, &page, include_deleted);
                    checked += 1;
                    progress[reader].store(checked, Ordering::SeqCst);
                }
                checked
            })
        })
        .collect();
    // 60 rounds of edits to every edited message, then half of them deleted, then edits
    // of the deleted ones (a deletion stays), in small chunks while the readers read.
    for version in 1..=60 {
        let mut lines: Vec<String> = EDITED
            .clone()
            .map(|id| edit(CHANNELS[0], id, version))
            .collect();
        if version == 40 {
            lines.push(delete(CHANNELS[0], &[101, 103, 105, 107, 109]));
        }
        let seen: Vec<usize> = progress.iter().map(|p| p.load(Ordering::SeqCst)).collect();
        writer.send(&lines);
        std::thread::sleep(Duration::from_millis(50));
        // A reader that stopped (it saw an old version) ends the wait: its join reports it.
        eventually(
            "every reader checking a page",
            Duration::from_secs(30),
            || {
                let moved = progress
                    .iter()
                    .zip(&seen)
                    .all(|(now, seen)| now.load(Ordering::SeqCst) > *seen);
                (moved || readers.iter().any(|r| r.is_finished())).then_some(())
            },
        );
    }
    eventually("the last edits stored", Duration::from_secs(30), || {
        let last = chrono::DateTime::from_timestamp(1_800_000_060, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        truth(&stack)
            .values()
            .all(|(edited, _)| edited.as_str() == last)
            .then_some(())
    });
    // Reads go on after the last write until the cache has served some of the checked
    // pages (bounded): on a loaded machine the writes' marks can keep it out of use for
    // most of the write phase, and a run that never read from the cache proves nothing.
    eventually(
        "the cache serving pages to the readers",
        Duration::from_secs(30),
        || (counter(&api, "tg_api_cache_hits_total") - hits_before > 10.0).then_some(()),
    );
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        let checked = reader.join().expect("a reader saw an old version");
        assert!(checked >= 60, "only {checked} pages checked");
    }
    let hits = counter(&api, "tg_api_cache_hits_total") - hits_before;
    assert!(
        hits > 10.0,
        "the cache served {hits} of the pages read under load"
    );
    // Settled: the cache path equals the database path.
    eventually("the cache serving again", Duration::from_secs(10), || {
        let before = counter(&api, "tg_api_cache_hits_total");
        let (cached, database) = both_paths(&api, CHANNELS[0], 30, None);
        (counter(&api, "tg_api_cache_hits_total") > before && cached == database).then_some(())
    });
    let page = api.json(&format!(
        "/api/messages?channel={}&order=desc&limit=30",
        CHANNELS[0]
    ));
    let ids: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_i64().unwrap())
        .collect();
    assert!(!ids.contains(&101) && ids.contains(&102), "{ids:?}");
}

/// SIGSTOPs a process until dropped (also when the test fails).
struct Frozen(u32);

impl Frozen {
    fn freeze(pid: u32) -> Frozen {
        let (ok, out) = run("kill", &["-STOP", &pid.to_string()], &[]);
        assert!(ok, "{out}");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = run("kill", &["-CONT", &self.0.to_string()], &[]);
    }
}

/// The text the newest page (one the cache can answer) shows for message `id`.
fn shown_text(api: &Api, id: i64) -> String {
    let page = api.json(&format!(
        "/api/messages?channel={}&order=desc&limit=20",
        CHANNELS[0]
    ));
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == id)
        .map(|m| m["text"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn a_frozen_redis_gives_database_answers_and_no_stale_page_after_it_thaws() {
    let (stack, mut writer, api) = cached_stack("cache_outage");
    assert_eq!(
        shown_text(&api, 120),
        format!("message 120 of {}", CHANNELS[0])
    );
    let unavailable = "tg_api_cache_misses_total{reason=\"unavailable\"}";
    let frozen = Frozen::freeze(stack.redis.pid());
    // Written while Redis cannot be told: the cache in Redis keeps the old text.
    writer.send(&[edit(CHANNELS[0], 120, 1)]);
    let started = Instant::now();
    eventually("the edit stored", Duration::from_secs(30), || {
        (stack.count(&format!(
            "SELECT count(*) FROM telegram.messages WHERE channel_id = {} AND message_id = 120 AND text = 'version 1'",
            CHANNELS[0]
        )) == 1)
            .then_some(())
    });
    // Correct answers, from the database, while Redis is frozen.
    for _ in 0..5 {
        assert_eq!(shown_text(&api, 120), "version 1");
    }
    assert!(
        counter(&api, unavailable) >= 1.0,
        "no read went to the frozen Redis"
    );
    // Long enough for any lease of the writer to run out.
    let frozen_for = cache_lease() + Duration::from_secs(1);
    std::thread::sleep(frozen_for.saturating_sub(started.elapsed()));
    drop(frozen);
    // Thawed, Redis still holds the old text: it must never be served again.
    let hits_before = counter(&api, "tg_api_cache_hits_total");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served_from_cache = false;
    while Instant::now() < deadline && !served_from_cache {
        assert_eq!(
            shown_text(&api, 120),
            "version 1",
            "stale page after the thaw"
        );
        served_from_cache = counter(&api, "tg_api_cache_hits_total") > hits_before;
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = |name: &str| std::fs::read_to_string(stack.tmp.path().join(name)).unwrap_or_default();
    assert!(
        served_from_cache,
        "the cache never served again after Redis thawed\ngateway log:\n{}",
        log("gateway.log")
    );
    let (cached, database) = both_paths(&api, CHANNELS[0], 20, None);
    assert_eq!(cached, database);
}

/// The writer's lease, as the gateway defines it.
fn cache_lease() -> Duration {
    cache::LEASE
}

/// Reads pages for `how_long`, each checked against the database state read just before.
fn read_checked(stack: &TestStack, api: &Api, how_long: Duration) -> usize {
    let deadline = Instant::now() + how_long;
    let mut checked = 0;
    while Instant::now() < deadline {
        let before = truth(stack);
        let page = api.json(&format!(
            "/api/messages?channel={}&order=desc&limit=20",
            CHANNELS[0]
        ));
        assert_not_older(&before, &page, false);
        checked += 1;
    }
    checked
}

#[test]
fn a_writer_cut_off_from_redis_stops_readers_trusting_the_cache() {
    let stack = TestStack::start(
        "cache_cut_writer",
        Wiring {
            extra: CACHE.into(),
            ..Wiring::default()
        },
    );
    // The writer reaches Redis through a proxy; the API reaches it directly.
    let proxy = testkit::Proxy::start(stack.redis_port);
    let writer = Writer::start_with(&stack, Some(proxy.port));
    let (mut writer, api) = fill(&stack, writer);
    proxy.cut();
    // The writer cannot mark the channel nor write the edit to the cache: the API, which
    // still reads Redis, must stop trusting the cache before the edit is in the database.
    writer.send(&[edit(CHANNELS[0], 120, 1)]);
    let checked = read_checked(&stack, &api, cache_lease() + Duration::from_secs(2));
    assert!(checked > 20, "only {checked} pages checked");
    assert_eq!(shown_text(&api, 120), "version 1");
    let hits_cut = counter(&api, "tg_api_cache_hits_total");
    // Back in touch, the writer resyncs and the cache serves the new text.
    proxy.restore();
    eventually(
        "the cache serving after the writer is back",
        Duration::from_secs(20),
        || {
            assert_eq!(
                shown_text(&api, 120),
                "version 1",
                "stale page after the writer is back"
            );
            (counter(&api, "tg_api_cache_hits_total") > hits_cut).then_some(())
        },
    );
    let (cached, database) = both_paths(&api, CHANNELS[0], 20, None);
    assert_eq!(cached, database);
}
