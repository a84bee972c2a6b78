//! Benchmark of the ingestion pipeline on this machine with real servers (not a test):
//! `cargo bench -p tg-gateway --bench pipeline`.
//!
//! `BENCH_MESSAGES=N` changes the throughput runs (default 150000); `BENCH_TOPOLOGIES=1`
//! measures the reference topology only.
//!
//! 1. Throughput, per broker topology (the reference: a quorum and a classic queue per
//!    message; then both classic; then one classic queue):
//!    - the broker's own limit: the gateway's publisher alone (same exchange, routing keys,
//!      queues, persistence, payloads, batch and confirms; no database, no dedup);
//!    - the pipeline: N new messages fed as fast as it takes them, until every one is
//!      stored (through PgBouncer) and confirmed by RabbitMQ;
//!    - the broker alone again, so the ratio compares figures of the same minutes.
//! 2. Dedup latency: one `SET NX GET EX` round trip per message (a batch of one), and a
//!    pipelined batch of 500, against the private Redis.
//! 3. End-to-end latency at 1,000 msg/s offered: from the source handing a message to the
//!    pipeline to a consumer on `telegram.archive` receiving it.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::percentile;
use futures_util::StreamExt;
use support::*;
use testkit::run;
use tg_gateway::config::{Config, GatewayConfig};
use tg_gateway::dedup::Dedup;
use tg_gateway::health::{self, Health};
use tg_gateway::pipeline::{Options, Pipeline};
use tg_gateway::publish::Publisher;
use tg_gateway::source::{IncomingMessage, SourceEvent};
use tg_gateway::store::{OutboxRow, message_payload};
use tgstack::model::Kind;

fn incoming(channel: i64, id: i64, raw: serde_json::Value) -> IncomingMessage {
    IncomingMessage {
        channel_id: channel,
        message_id: id,
        posted_at: chrono::DateTime::from_timestamp(1_767_225_600 + id, 0).unwrap(),
        text: format!("benchmark message {id} with a body of a typical signal length: BTC 97k"),
        sender_id: Some(42),
        reply_to_message_id: None,
        media_type: None,
        edit_date: None,
        raw,
    }
}

fn message(channel: i64, id: i64, raw: serde_json::Value) -> SourceEvent {
    SourceEvent::New(incoming(channel, id, raw))
}

/// The i-th message of a throughput run: channels in turn, ids ascending per channel.
fn nth_message(i: i64) -> IncomingMessage {
    incoming(
        CHANNELS[(i % 3) as usize],
        i / 3 + 1,
        serde_json::json!({"n": i}),
    )
}

/// Broker topologies measured, as overlays of the test model (queues replace the
/// reference's list).
const TOPOLOGIES: [(&str, &str); 3] = [
    (
        "reference: quorum telegram.signals + classic telegram.archive",
        "",
    ),
    (
        "both queues classic",
        r#"
[[services.rabbitmq.rabbitmq.queues]]
name = "telegram.signals"
binding = "telegram.channel.#"
dead_letter = true
queue_type = "classic"

[[services.rabbitmq.rabbitmq.queues]]
name = "telegram.archive"
binding = "telegram.channel.#"
dead_letter = true
message_ttl = "7d"
"#,
    ),
    (
        "one classic queue (telegram.archive only)",
        r#"
[[services.rabbitmq.rabbitmq.queues]]
name = "telegram.archive"
binding = "telegram.channel.#"
dead_letter = true
message_ttl = "7d"
"#,
    ),
];

fn gateway_config(stack: &TestStack) -> GatewayConfig {
    let env: std::collections::HashMap<String, String> = stack.env.iter().cloned().collect();
    let config = Config::from_model(
        stack.model.clone(),
        None,
        Kind::Gateway,
        Arc::new(move |name| env.get(name).cloned()),
    )
    .expect("config");
    config.gateway().expect("gateway config")
}

fn purge_queues(stack: &TestStack) {
    for queue in ["telegram.archive", "telegram.signals"] {
        let _ = run(
            "rabbitmqctl",
            &["-q", "purge_queue", "-p", &stack.vhost, queue],
            &[],
        );
    }
}

/// The outbox rows the pipeline publishes for the first `n` messages.
fn outbox_rows(n: i64) -> Vec<OutboxRow> {
    (0..n)
        .map(|i| {
            let message = nth_message(i);
            OutboxRow {
                id: i + 1,
                channel_id: message.channel_id,
                message_id: message.message_id,
                event: "new".into(),
                payload: message_payload("new", &message),
                received: None,
            }
        })
        .collect()
}

/// The broker's own limit: `rows` published by the gateway's publisher in batches of
/// `batch_size`, each batch confirmed before the next, as the pipeline does. Returns msg/s.
fn raw_broker(
    runtime: &tokio::runtime::Runtime,
    gateway: &GatewayConfig,
    rows: &[OutboxRow],
) -> f64 {
    runtime.block_on(async {
        let mut publisher = Publisher::new(gateway.broker.clone());
        publisher.connect().await.expect("connect to the broker");
        let health = Health::new(&[health::RABBITMQ]);
        let started = Instant::now();
        for batch in rows.chunks(gateway.batch_size) {
            let outcome = publisher.publish(batch, &health).await;
            assert!(outcome.error.is_none(), "publish: {:?}", outcome.error);
            assert_eq!(outcome.confirmed.len(), batch.len());
        }
        rows.len() as f64 / started.elapsed().as_secs_f64()
    })
}

/// The pipeline's throughput: `n` new messages stored and confirmed. Returns msg/s.
fn pipeline_throughput(
    runtime: &tokio::runtime::Runtime,
    stack: &TestStack,
    gateway: &GatewayConfig,
    n: i64,
) -> f64 {
    let elapsed = runtime.block_on(async {
        let health = Health::new(&[health::POSTGRES, health::REDIS, health::RABBITMQ]);
        let (pipeline, sink) =
            Pipeline::start(gateway, health, Options::default()).expect("pipeline");
        let store = pipeline.store.clone();
        let started = Instant::now();
        let feeder = tokio::spawn(async move {
            for i in 0..n {
                if sink.send(SourceEvent::New(nth_message(i))).await.is_err() {
                    break;
                }
            }
        });
        feeder.await.unwrap();
        let _ = pipeline
            .finish(Duration::from_secs(600), std::future::pending())
            .await;
        let elapsed = started.elapsed();
        let depth = store.outbox_depth().await.unwrap_or(-1);
        assert_eq!(depth, 0, "outbox not drained");
        elapsed
    });
    let stored_rows = stack.count("SELECT count(*) FROM telegram.messages");
    assert_eq!(stored_rows, n, "every message stored");
    n as f64 / elapsed.as_secs_f64()
}

/// Processes whose CPU time a run is charged with, by `comm` name ("this process" is
/// this benchmark, which runs the gateway).
const CPU_USERS: [(&str, &str); 5] = [
    ("rabbitmq", "beam.smp"),
    ("postgres", "postgres"),
    ("pgbouncer", "pgbouncer"),
    ("redis", "redis-server"),
    ("gateway", common::THIS_PROCESS),
];

fn cpu_seconds() -> Vec<f64> {
    common::cpu_seconds(&CPU_USERS)
}

fn cpu_used(before: &[f64], after: &[f64]) -> String {
    common::cpu_used(&CPU_USERS, before, after)
}

fn stage_busy(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> Vec<(String, f64)> {
    let text = tg_gateway::metrics::render(metrics);
    ["dedup", "store", "publish"]
        .iter()
        .map(|stage| {
            let sum = format!("tg_gateway_{stage}_duration_seconds_sum ");
            let busy = text
                .lines()
                .find_map(|line| line.strip_prefix(&sum))
                .and_then(|value| value.trim().parse().ok())
                // Not yet registered: the stage has not run.
                .unwrap_or(0.0);
            (stage.to_string(), busy)
        })
        .collect()
}

fn main() {
    let throughput_messages: i64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let metrics = tg_gateway::metrics::install(tg_gateway::metrics::Process::Gateway)
        .expect("metrics recorder");

    // 1. Throughput per topology; the reference stack stays up for the latency runs.
    let mut reference = None;
    // BENCH_TOPOLOGIES=1 measures the reference topology only.
    let topologies: usize = std::env::var("BENCH_TOPOLOGIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TOPOLOGIES.len());
    for (index, (topology, overlay)) in TOPOLOGIES.iter().take(topologies.max(1)).enumerate() {
        let stack = TestStack::start(
            &format!("bench{index}"),
            Wiring {
                extra: overlay.to_string(),
                ..Wiring::default()
            },
        );
        let gateway = gateway_config(&stack);
        let n = throughput_messages;
        let rows = outbox_rows(n);
        let cpu_start = cpu_seconds();
        let before = raw_broker(&runtime, &gateway, &rows);
        let cpu_raw = cpu_seconds();
        purge_queues(&stack);
        let busy_before = stage_busy(&metrics);
        let cpu_before = cpu_seconds();
        let pipeline = pipeline_throughput(&runtime, &stack, &gateway, n);
        let cpu_after = cpu_seconds();
        let busy_after = stage_busy(&metrics);
        purge_queues(&stack);
        let after = raw_broker(&runtime, &gateway, &rows);
        purge_queues(&stack);
        let broker = (before + after) / 2.0;
        println!("throughput, {topology} ({n} messages each):");
        println!(
            "  broker alone: {before:.0} then {after:.0} msg/s (mean {broker:.0})\n  \
             pipeline: {pipeline:.0} msg/s = {:.2} of the broker alone",
            pipeline / broker
        );
        let busy: Vec<String> = busy_before
            .iter()
            .zip(&busy_after)
            .map(|((stage, a), (_, b))| format!("{stage} {:.2}s", b - a))
            .collect();
        println!("  pipeline stages busy: {}", busy.join(", "));
        println!("  CPU, broker alone: {}", cpu_used(&cpu_start, &cpu_raw));
        println!("  CPU, pipeline: {}", cpu_used(&cpu_before, &cpu_after));
        if index == 0 {
            reference = Some((stack, gateway));
        }
    }
    let (stack, gateway) = reference.expect("the reference topology ran");

    // 2. Dedup latency.
    let (single, batch) = runtime.block_on(async {
        let mut dedup = Dedup::new(&gateway.redis, gateway.dedup_ttl).unwrap();
        let mut single = Vec::new();
        for i in 0..20_000i64 {
            let key = vec![tg_gateway::dedup::key(7, 10_000_000 + i)];
            let started = Instant::now();
            dedup.check(&key).await.expect("redis");
            single.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let mut batch = Vec::new();
        for b in 0..400i64 {
            let keys: Vec<String> = (0..500)
                .map(|i| tg_gateway::dedup::key(8, b * 500 + i))
                .collect();
            let started = Instant::now();
            dedup.check(&keys).await.expect("redis");
            batch.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        single.sort_by(f64::total_cmp);
        batch.sort_by(f64::total_cmp);
        (single, batch)
    });
    println!(
        "dedup, one key per round trip: p50 {:.3} ms, p99 {:.3} ms ({} checks)",
        percentile(&single, 0.5),
        percentile(&single, 0.99),
        single.len()
    );
    println!(
        "dedup, 500 keys pipelined: p50 {:.3} ms, p99 {:.3} ms per batch = {:.4} ms per message at p99",
        percentile(&batch, 0.5),
        percentile(&batch, 0.99),
        percentile(&batch, 0.99) / 500.0
    );

    // 3. End-to-end latency at 1,000 msg/s offered.
    let rate = 1000u64;
    let seconds = 15u64;
    let latencies = runtime.block_on(async {
        let password = stack.secrets["rabbitmq_gateway"].clone();
        let uri = format!(
            "amqp://tg_gateway:{}@127.0.0.1:5672/{}",
            tg_gateway::config::percent_encode(&password),
            tg_gateway::config::percent_encode(&stack.vhost)
        );
        let connection = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
            .await
            .expect("consumer connection");
        let channel = connection.create_channel().await.unwrap();
        let mut consumer = channel
            .basic_consume(
                "telegram.archive".into(),
                "bench".into(),
                lapin::options::BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("consume");
        let health = Health::new(&[health::POSTGRES, health::REDIS, health::RABBITMQ]);
        let (pipeline, sink) =
            Pipeline::start(&gateway, health, Options::default()).expect("pipeline");
        let origin = Instant::now();
        let total = rate * seconds;
        let feeder = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let per_tick = rate / 100;
            let mut sent = 0u64;
            while sent < total {
                tick.tick().await;
                for _ in 0..per_tick {
                    let id = 1_000_000 + sent as i64;
                    let at = origin.elapsed().as_nanos() as u64;
                    let event = message(CHANNELS[0], id, serde_json::json!({ "sent_ns": at }));
                    let _ = sink.send(event).await;
                    sent += 1;
                }
            }
        });
        let mut latencies = Vec::with_capacity(total as usize);
        while (latencies.len() as u64) < total {
            let next = tokio::time::timeout(Duration::from_secs(30), consumer.next()).await;
            let Ok(Some(Ok(delivery))) = next else {
                break;
            };
            let now = origin.elapsed().as_nanos() as u64;
            let payload: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
            if let Some(sent) = payload["raw"]["sent_ns"].as_u64() {
                latencies.push((now.saturating_sub(sent)) as f64 / 1e6);
            }
        }
        feeder.await.unwrap();
        let _ = pipeline
            .finish(Duration::from_secs(30), std::future::pending())
            .await;
        let _ = connection.close(0, "done".into()).await;
        latencies.sort_by(f64::total_cmp);
        latencies
    });
    println!(
        "end-to-end at {rate} msg/s offered for {seconds}s (source -> stored -> confirmed -> consumer): \
         p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms ({} delivered)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.len()
    );
}
