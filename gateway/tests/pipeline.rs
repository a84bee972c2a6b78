//! The ingestion pipeline end to end through the real binary: PostgreSQL behind a
//! PgBouncer started from the rendered config, Redis from the rendered config, RabbitMQ
//! with the rendered topology. Faults are real: processes killed by PID, proxies cut.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::support::*;
use testkit::eventually;

pub(crate) const ARCHIVE: &str = "telegram.archive";
const SIGNALS: &str = "telegram.signals";

/// Every message stored exactly once, every outbox row published.
pub(crate) fn assert_stored_once(stack: &TestStack, expected: i64) {
    assert_stored_once_with(stack, expected, expected);
}

/// `stored` rows, each once; `new_events` of them announced as new (the rest as edits).
fn assert_stored_once_with(stack: &TestStack, expected: i64, new_events: i64) {
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.messages"),
        expected,
        "stored rows"
    );
    assert_eq!(
        stack.count(
            "SELECT count(*) FROM (SELECT channel_id, message_id FROM telegram.messages \
             GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        0,
        "a message was stored twice"
    );
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE event = 'new'"),
        new_events,
        "one outbox row per stored message"
    );
}

/// Per channel, deliveries come in outbox order.
fn assert_in_order_per_channel(delivered: &[Delivered]) {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for d in delivered {
        let previous = last.insert(d.routing_key.clone(), d.outbox_id);
        if let Some(previous) = previous {
            assert!(
                d.outbox_id > previous,
                "{}: outbox row {} delivered after {}",
                d.routing_key,
                d.outbox_id,
                previous
            );
        }
    }
}

#[test]
fn replay_with_duplicates_and_out_of_order_stores_and_publishes_each_once() {
    let stack = TestStack::start("replay", Wiring::default());
    let per_channel = 400;
    let mut lines = replay_lines(per_channel, 3);
    // An edit, a repeated edit, a delete, and an edit of a message never seen before.
    let edited_at = "2026-02-01T00:00:00Z";
    let edit = |channel: i64, id: i64| {
        serde_json::json!({"kind": "edit", "channel_id": channel, "message_id": id,
            "posted_at": chrono::DateTime::from_timestamp(1_767_225_600 + id, 0).unwrap().to_rfc3339(),
            "text": "edited", "edit_date": edited_at})
        .to_string()
    };
    lines.push(edit(CHANNELS[0], 5));
    lines.push(edit(CHANNELS[0], 5));
    lines.push(format!(
        r#"{{"kind":"delete","channel_id":{},"message_ids":[7,8,999999]}}"#,
        CHANNELS[1]
    ));
    lines.push(edit(CHANNELS[2], 5000));
    let file = stack.tmp.path().join("replay.jsonl");
    write_lines(&file, &lines);

    let (ok, out) = stack.gateway(&["replay", file.to_str().unwrap()]);
    assert!(ok, "replay failed: {out}");
    assert!(out.contains("0 events left in the outbox"), "{out}");

    let total = per_channel * CHANNELS.len() as i64;
    assert_stored_once_with(&stack, total + 1, total);
    assert_eq!(
        stack.sql(&format!(
            "SELECT text || ':' || edit_date::text FROM telegram.messages WHERE channel_id = {} AND message_id = 5",
            CHANNELS[0]
        )),
        "edited:2026-02-01 00:00:00+00"
    );
    assert_eq!(
        stack.count(&format!(
            "SELECT count(*) FROM telegram.messages WHERE deleted AND channel_id = {}",
            CHANNELS[1]
        )),
        2
    );
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NULL"),
        0
    );

    // Both queues bound to the exchange got every event exactly once, persistent.
    for queue in [ARCHIVE, SIGNALS] {
        let delivered = stack.drain_queue(queue);
        let counts = tally(&delivered);
        for channel in CHANNELS {
            for id in 1..=per_channel {
                assert_eq!(
                    counts.get(&("new".to_string(), channel, id)),
                    Some(&1),
                    "{queue}: new {channel}/{id}"
                );
            }
        }
        assert_eq!(counts.get(&("edit".to_string(), CHANNELS[0], 5)), Some(&1));
        assert_eq!(
            counts.get(&("edit".to_string(), CHANNELS[2], 5000)),
            Some(&1)
        );
        assert_eq!(
            counts.get(&("delete".to_string(), CHANNELS[1], 7)),
            Some(&1)
        );
        assert_eq!(
            counts.get(&("delete".to_string(), CHANNELS[1], 8)),
            Some(&1)
        );
        assert_eq!(delivered.len() as i64, total + 4, "{queue}: nothing else");
        assert!(delivered.iter().all(|d| d.persistent), "delivery_mode 2");
        for d in &delivered {
            let channel = d.payload["channel_id"].as_i64().unwrap();
            assert_eq!(d.routing_key, format!("telegram.channel.{channel}"));
        }
        assert_in_order_per_channel(&delivered);
    }

    // The same file again: Redis (and the unique key) keep everything out.
    let (ok, out) = stack.gateway(&["replay", file.to_str().unwrap()]);
    assert!(ok, "second replay failed: {out}");
    assert_stored_once_with(&stack, total + 1, total);
    assert!(
        stack.drain_queue(ARCHIVE).is_empty(),
        "a replayed duplicate was published again"
    );
}

#[test]
fn killed_mid_replay_then_restarted_loses_and_duplicates_nothing() {
    let stack = TestStack::start("kill", Wiring::default());
    let per_channel = 20_000;
    let lines = replay_lines(per_channel, 0);
    let file = stack.tmp.path().join("big.jsonl");
    write_lines(&file, &lines);
    let total = per_channel * CHANNELS.len() as i64;

    let mut gateway = stack.spawn_gateway(&["replay", file.to_str().unwrap()], "first.log");
    stack.wait_stored_over(&mut gateway, 1000);
    gateway.kill(); // SIGKILL
    let stored_at_kill = stack.count("SELECT count(*) FROM telegram.messages");
    assert!(
        stored_at_kill < total,
        "the replay finished before it was killed; make the file bigger"
    );

    let (ok, out) = stack.gateway(&["replay", "--drain-timeout", "60s", file.to_str().unwrap()]);
    assert!(ok, "replay after the kill failed: {out}");
    assert_stored_once(&stack, total);
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NULL"),
        0
    );
    // Every message reached the broker; publishing is at-least-once across a SIGKILL
    // between the broker's confirm and the outbox update, so count the repeats.
    let delivered = stack.drain_queue(ARCHIVE);
    let counts = tally(&delivered);
    let missing: Vec<i64> = CHANNELS
        .iter()
        .flat_map(|&c| (1..=per_channel).map(move |id| (c, id)))
        .filter(|&(c, id)| !counts.contains_key(&("new".to_string(), c, id)))
        .map(|(_, id)| id)
        .collect();
    assert!(
        missing.is_empty(),
        "{} messages never published",
        missing.len()
    );
    let repeats = delivered.len() as i64 - total;
    eprintln!("published again after the SIGKILL: {repeats} of {total}");
    assert!(
        repeats <= stack.batch_size(),
        "more repeats ({repeats}) than the in-flight publish window (one batch)"
    );
}

#[test]
fn redis_killed_mid_run_keeps_ingesting_without_duplicates_and_health_shows_it() {
    let mut stack = TestStack::start("redis", Wiring::default());
    let per_channel = 15_000;
    let lines = replay_lines(per_channel, 4);
    let file = stack.tmp.path().join("big.jsonl");
    write_lines(&file, &lines);
    let total = per_channel * CHANNELS.len() as i64;

    let mut gateway = stack.spawn_replay(&file, "60s", true);
    stack.wait_stored_over(&mut gateway, 1000);
    stack.redis.kill(); // the private instance, by PID
    let health = stack.wait_health(
        "/health reporting redis down",
        r#""redis":{"up":false"#,
        Duration::from_secs(30),
    );
    assert_eq!(
        health.0, 200,
        "redis down degrades, it does not fail: {}",
        health.1
    );
    assert!(health.1.contains(r#""status":"degraded""#), "{}", health.1);
    let metrics = stack.http_get("/metrics").expect("metrics").1;
    assert!(
        metrics.contains(r#"tg_gateway_dependency_up{dependency="redis"} 0"#),
        "{metrics}"
    );
    let status = gateway.child.wait().unwrap();
    assert!(status.success(), "replay failed:\n{}", gateway.log_text());
    assert_stored_once(&stack, total);
    let delivered = stack.drain_queue(ARCHIVE);
    assert_eq!(delivered.len() as i64, total, "each published once");
    assert_eq!(tally(&delivered).len() as i64, total);
}

/// The master killed under a running replay, with the model's replica and three
/// Sentinels running from the rendered configs: the Sentinels promote the replica, the
/// gateway asks them where the master is now and its dedup resumes there (health up, new
/// dedup keys written to the promoted replica) while the replay goes on; nothing is stored
/// twice, nothing is lost.
#[test]
fn dedup_follows_a_sentinel_failover_to_the_promoted_replica() {
    let mut stack = TestStack::start(
        "failover",
        Wiring {
            sentinels: true,
            ..Wiring::default()
        },
    );
    let per_channel = 40_000;
    let (file, total) = stack.replay_file("big.jsonl", per_channel, 4);
    let password = stack.secrets["redis"].clone();
    let failover = stack.failover.as_ref().unwrap();
    let (replica_port, sentinel_port) = (failover.replica_port, failover.sentinel_port);
    let redis_cli = |port: u16, args: &[&str]| {
        let port = port.to_string();
        let mut all = vec![
            "-p",
            port.as_str(),
            "-a",
            password.as_str(),
            "--no-auth-warning",
        ];
        all.extend_from_slice(args);
        testkit::run("redis-cli", &all, &[]).1
    };

    let mut gateway = stack.spawn_replay(&file, "60s", true);
    stack.wait_stored_over(&mut gateway, 1000);
    stack.redis.kill(); // the master, by PID
    let killed_at = std::time::Instant::now();
    stack.wait_health(
        "/health reporting redis down",
        r#""redis":{"up":false"#,
        Duration::from_secs(15),
    );
    eventually(
        "the Sentinels to promote the replica",
        Duration::from_secs(30),
        || {
            let out = redis_cli(
                sentinel_port,
                &["sentinel", "get-master-addr-by-name", "mymaster"],
            );
            (out.lines().nth(1)?.trim() == replica_port.to_string()).then_some(())
        },
    );
    let promoted_after = killed_at.elapsed();
    let keys_at_promotion: i64 = redis_cli(replica_port, &["dbsize"]).trim().parse().unwrap();
    stack.wait_health(
        "/health reporting redis up again, on the promoted replica",
        r#""redis":{"up":true"#,
        Duration::from_secs(15),
    );
    let (keys_now, _) = eventually(
        "new dedup keys on the promoted replica",
        Duration::from_secs(15),
        || {
            let keys: i64 = redis_cli(replica_port, &["dbsize"]).trim().parse().ok()?;
            (keys > keys_at_promotion).then_some((keys, ()))
        },
    );
    let resumed_after = killed_at.elapsed();
    eprintln!(
        "failover: promoted after {promoted_after:?}, dedup resumed after {resumed_after:?} \
         ({keys_at_promotion} -> {keys_now} keys)"
    );
    assert!(
        stack.count("SELECT count(*) FROM telegram.messages") < total,
        "the replay ended before dedup resumed; make the file bigger"
    );
    let status = gateway.child.wait().unwrap();
    assert!(status.success(), "replay failed:\n{}", gateway.log_text());
    assert_stored_once(&stack, total);
}

#[test]
fn rabbitmq_unreachable_then_back_drains_the_outbox_in_order_per_channel() {
    let stack = TestStack::start(
        "rabbit",
        Wiring {
            rabbitmq_proxy: true,
            ..Wiring::default()
        },
    );
    let proxy = stack.rabbitmq_proxy.as_ref().unwrap();
    proxy.cut();
    let per_channel = 2_000;
    let (file, total) = stack.replay_file("replay.jsonl", per_channel, 5);

    let mut gateway = stack.spawn_replay(&file, "120s", true);
    // Everything is stored while the broker is away; nothing is published.
    eventually("every message stored", Duration::from_secs(60), || {
        (stack.count("SELECT count(*) FROM telegram.messages") == total).then_some(())
    });
    let health = stack.wait_health(
        "/health reporting rabbitmq down",
        r#""rabbitmq":{"up":false"#,
        Duration::from_secs(30),
    );
    assert_eq!(health.0, 200, "{}", health.1);
    // The container healthcheck command accepts a degraded gateway.
    let url = format!("http://127.0.0.1:{}/health", stack.gateway_port);
    let (ok, out) = stack.gateway(&["healthcheck", &url]);
    assert!(ok, "healthcheck refused a degraded gateway: {out}");
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NULL"),
        total
    );
    assert!(stack.drain_queue(ARCHIVE).is_empty());

    proxy.restore();
    let status = gateway.child.wait().unwrap();
    assert!(status.success(), "replay failed:\n{}", gateway.log_text());
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NULL"),
        0,
        "the outbox drained once the broker was back"
    );
    let delivered = stack.drain_queue(ARCHIVE);
    assert_eq!(delivered.len() as i64, total, "each published once");
    assert_eq!(tally(&delivered).len() as i64, total);
    assert_in_order_per_channel(&delivered);
    // The drainer reads each channel oldest first: message ids ascend per channel too,
    // as each batch's outbox rows were written in message order.
    let routing: HashSet<&str> = delivered.iter().map(|d| d.routing_key.as_str()).collect();
    assert_eq!(routing.len(), CHANNELS.len());
}

#[test]
fn postgres_path_cut_mid_run_retries_without_loss_or_duplicates() {
    let stack = TestStack::start(
        "pgcut",
        Wiring {
            postgres_proxy: true,
            ..Wiring::default()
        },
    );
    let proxy = stack.postgres_proxy.as_ref().unwrap();
    let per_channel = 15_000;
    let (file, total) = stack.replay_file("big.jsonl", per_channel, 6);

    let mut gateway = stack.spawn_replay(&file, "60s", true);
    stack.wait_stored_over(&mut gateway, 1000);
    proxy.cut();
    let health = stack.wait_health(
        "/health reporting postgres down",
        r#""postgres":{"up":false"#,
        Duration::from_secs(30),
    );
    assert_eq!(health.0, 503, "{}", health.1);
    let url = format!("http://127.0.0.1:{}/health", stack.gateway_port);
    let (ok, out) = stack.gateway(&["healthcheck", &url]);
    assert!(!ok, "healthcheck passed while the database was cut: {out}");
    std::thread::sleep(Duration::from_secs(2));
    proxy.restore();
    let status = gateway.child.wait().unwrap();
    assert!(status.success(), "replay failed:\n{}", gateway.log_text());
    assert_stored_once(&stack, total);
    let delivered = stack.drain_queue(ARCHIVE);
    let counts = tally(&delivered);
    assert_eq!(counts.len() as i64, total, "every message published");
    assert_in_order_per_channel(&delivered);
}

#[test]
fn rabbitmq_cut_mid_publish_recovers_and_delivers_everything_in_first_seen_order() {
    let stack = TestStack::start(
        "rabbitcut",
        Wiring {
            rabbitmq_proxy: true,
            ..Wiring::default()
        },
    );
    let proxy = stack.rabbitmq_proxy.as_ref().unwrap();
    let per_channel = 15_000;
    let (file, total) = stack.replay_file("big.jsonl", per_channel, 0);

    let mut gateway = stack.spawn_replay(&file, "120s", false);
    stack.wait_published_over(&mut gateway, 1000);
    proxy.cut();
    assert!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NOT NULL") < total,
        "everything was published before the cut; make the file bigger"
    );
    std::thread::sleep(Duration::from_secs(3));
    proxy.restore();
    let status = gateway.child.wait().unwrap();
    assert!(status.success(), "replay failed:\n{}", gateway.log_text());
    assert_stored_once(&stack, total);
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NULL"),
        0
    );
    // Confirms lost with the connection make a suffix go out twice (at-least-once), never
    // more than the chunk in flight; the first delivery of each row still follows outbox
    // order per channel.
    let delivered = stack.drain_queue(ARCHIVE);
    let mut seen = HashSet::new();
    let first: Vec<Delivered> = delivered
        .iter()
        .filter(|d| seen.insert(d.outbox_id))
        .cloned()
        .collect();
    assert_eq!(first.len() as i64, total, "every message published");
    assert_in_order_per_channel(&first);
    let repeats = (delivered.len() - first.len()) as i64;
    eprintln!("published again after the cut: {repeats} of {total}");
    assert!(
        repeats <= stack.batch_size(),
        "more repeats ({repeats}) than the in-flight publish window (one batch)"
    );
}
