//! Metrics of `tg-gateway run` (ingestion) and `tg-gateway api` (REST API). The gateway
//! crate registers exactly these; nothing else may be queried for those jobs.

use super::{Metric, MetricType};

/// Histogram buckets (seconds) for dedup/store/publish latencies: sub-millisecond to seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub static GATEWAY: &[Metric] = &[
    Metric {
        name: "tg_gateway_messages_received_total",
        kind: MetricType::Counter,
        help: "Messages received from the source (Telegram or replay), per channel.",
        labels: &["channel"],
    },
    Metric {
        name: "tg_gateway_messages_deduplicated_total",
        kind: MetricType::Counter,
        help: "Messages dropped as duplicates by the Redis dedup check, per channel.",
        labels: &["channel"],
    },
    Metric {
        name: "tg_gateway_messages_stored_total",
        kind: MetricType::Counter,
        help: "Messages newly stored in PostgreSQL, per channel.",
        labels: &["channel"],
    },
    Metric {
        name: "tg_gateway_messages_published_total",
        kind: MetricType::Counter,
        help: "Messages confirmed by RabbitMQ, per channel.",
        labels: &["channel"],
    },
    Metric {
        name: "tg_gateway_messages_failed_total",
        kind: MetricType::Counter,
        help: "Messages that failed a pipeline stage (dedup, store, publish), per channel.",
        labels: &["channel", "stage"],
    },
    Metric {
        name: "tg_gateway_edits_total",
        kind: MetricType::Counter,
        help: "Message edits applied, per channel.",
        labels: &["channel"],
    },
    Metric {
        name: "tg_gateway_deletes_total",
        kind: MetricType::Counter,
        help: "Message deletions applied, per channel.",
        labels: &["channel"],
    },
    Metric {
        name: "tg_gateway_outbox_depth",
        kind: MetricType::Gauge,
        help: "Stored messages not yet published.",
        labels: &[],
    },
    Metric {
        name: "tg_gateway_ingestion_lag_seconds",
        kind: MetricType::Gauge,
        help: "Seconds between a message's Telegram date and its storage, last message per channel.",
        labels: &["channel"],
    },
    Metric {
        name: "tg_gateway_last_message_timestamp_seconds",
        kind: MetricType::Gauge,
        help: "Unix time of the newest stored message, per channel.",
        labels: &["channel"],
    },
    Metric {
        name: "tg_gateway_dedup_duration_seconds",
        kind: MetricType::Histogram,
        help: "Latency of the Redis dedup check.",
        labels: &[],
    },
    Metric {
        name: "tg_gateway_store_duration_seconds",
        kind: MetricType::Histogram,
        help: "Latency of one batch write to PostgreSQL.",
        labels: &[],
    },
    Metric {
        name: "tg_gateway_publish_duration_seconds",
        kind: MetricType::Histogram,
        help: "Latency from publish to broker confirm.",
        labels: &[],
    },
    Metric {
        name: "tg_gateway_end_to_end_duration_seconds",
        kind: MetricType::Histogram,
        help: "Latency from receipt to confirmed publish.",
        labels: &[],
    },
    Metric {
        name: "tg_gateway_dependency_up",
        kind: MetricType::Gauge,
        help: "1 when the dependency (postgres, redis, rabbitmq, telegram) is connected, else 0.",
        labels: &["dependency"],
    },
    Metric {
        name: "tg_gateway_flood_wait_seconds_total",
        kind: MetricType::Counter,
        help: "Seconds spent honouring Telegram flood waits.",
        labels: &[],
    },
];

pub static API: &[Metric] = &[
    Metric {
        name: "tg_api_cache_hits_total",
        kind: MetricType::Counter,
        help: "Newest pages of a channel served from the read cache.",
        labels: &[],
    },
    Metric {
        name: "tg_api_cache_misses_total",
        kind: MetricType::Counter,
        help: "Newest pages of a channel the read cache could not serve, by reason: cold (not cached, being written, or not trusted), window (beyond the cached messages), large (a message over its budget share), unavailable (Redis did not answer).",
        labels: &["reason"],
    },
    Metric {
        name: "tg_api_http_requests_total",
        kind: MetricType::Counter,
        help: "HTTP requests served, by method, route template and status code.",
        labels: &["method", "route", "status"],
    },
    Metric {
        name: "tg_api_http_request_duration_seconds",
        kind: MetricType::Histogram,
        help: "HTTP request latency by method and route template.",
        labels: &["method", "route"],
    },
    Metric {
        name: "tg_api_auth_failures_total",
        kind: MetricType::Counter,
        help: "Requests rejected for a missing or wrong X-API-Key.",
        labels: &[],
    },
    Metric {
        name: "tg_gateway_dependency_up",
        kind: MetricType::Gauge,
        help: "1 when the dependency (postgres) is connected, else 0.",
        labels: &["dependency"],
    },
];

/// Environment variables `tg-gateway` reads besides the secrets of its model service
/// (model path, own service name, log filter). A unit or container may set only these.
pub const PROCESS_ENV: &[&str] = &["TGSTACK_MODEL", "TGSTACK_SERVICE", "TG_GATEWAY_LOG"];
