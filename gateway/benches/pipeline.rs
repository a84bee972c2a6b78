//! Benchmark of the ingestion pipeline on this machine with real servers (not a test):
//! `cargo bench -p tg-gateway --bench pipeline`.
//!
//! 1. Throughput: N new messages fed as fast as the pipeline takes them, until every one
//!    is stored (through PgBouncer) and confirmed by RabbitMQ.
//! 2. Dedup latency: one `SET NX GET EX` round trip per message (a batch of one), and a
//!    pipelined batch of 500, against the private Redis.
//! 3. End-to-end latency at 1,000 msg/s offered: from the source handing a message to the
//!    pipeline to a consumer on `telegram.archive` receiving it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::*;
use testkit::run;
use tg_gateway::config::Config;
use tg_gateway::dedup::Dedup;
use tg_gateway::health::{self, Health};
use tg_gateway::pipeline::{Options, Pipeline};
use tg_gateway::source::{IncomingMessage, SourceEvent};
use tgstack::model::Kind;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn message(channel: i64, id: i64, raw: serde_json::Value) -> SourceEvent {
    SourceEvent::New(IncomingMessage {
        channel_id: channel,
        message_id: id,
        posted_at: chrono::DateTime::from_timestamp(1_767_225_600 + id, 0).unwrap(),
        text: format!("benchmark message {id} with a body of a typical signal length: BTC 97k"),
        sender_id: Some(42),
        reply_to_message_id: None,
        media_type: None,
        edit_date: None,
        raw,
    })
}

fn main() {
    let throughput_messages: i64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000);
    let stack = TestStack::start("bench", Wiring::default());
    let secrets = stack.secrets.clone();
    let env: std::collections::HashMap<String, String> = stack.env.iter().cloned().collect();
    let _ = secrets;
    let config = Config::from_model(
        stack.model.clone(),
        None,
        Kind::Gateway,
        Arc::new(move |name| env.get(name).cloned()),
    )
    .expect("config");
    let gateway = config.gateway().expect("gateway config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let metrics = tg_gateway::metrics::install(tg_gateway::metrics::Process::Gateway)
        .expect("metrics recorder");

    // 1. Throughput.
    let (elapsed, stored) = runtime.block_on(async {
        let health = Health::new(&[health::POSTGRES, health::REDIS, health::RABBITMQ]);
        let (pipeline, sink) =
            Pipeline::start(&gateway, health, Options::default()).expect("pipeline");
        let store = pipeline.store.clone();
        let started = Instant::now();
        let feeder = tokio::spawn(async move {
            for i in 0..throughput_messages {
                let channel = CHANNELS[(i % 3) as usize];
                let event = message(channel, i / 3 + 1, serde_json::json!({"n": i}));
                if sink.send(event).await.is_err() {
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
        (elapsed, throughput_messages)
    });
    let stored_rows = stack.count("SELECT count(*) FROM telegram.messages");
    assert_eq!(stored_rows, stored, "every message stored");
    let throughput = stored as f64 / elapsed.as_secs_f64();
    println!(
        "throughput: {stored} messages stored and confirmed in {:.2}s = {:.0} msg/s",
        elapsed.as_secs_f64(),
        throughput
    );
    // Where the time went: busy time of each stage.
    let text = tg_gateway::metrics::render(&metrics);
    for stage in ["dedup", "store", "publish"] {
        let family = format!("tg_gateway_{stage}_duration_seconds");
        let value = |suffix: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(&format!("{family}_{suffix} ")))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        println!(
            "  {stage}: {:.0} calls, {:.2}s busy",
            value("count"),
            value("sum")
        );
    }
    let _ = run(
        "rabbitmqctl",
        &["-q", "purge_queue", "-p", &stack.vhost, "telegram.archive"],
        &[],
    );
    let _ = run(
        "rabbitmqctl",
        &["-q", "purge_queue", "-p", &stack.vhost, "telegram.signals"],
        &[],
    );

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
