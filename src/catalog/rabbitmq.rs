//! Metrics of the `rabbitmq_prometheus` plugin of `rabbitmq:3.13.7-management-alpine`,
//! scraped on `/metrics/per-object` (queue families carry `vhost` and `queue`).

use super::MetricType::{Counter, Gauge};
use super::{Metric, m};

/// Source: rabbitmq/rabbitmq-server
/// `deps/rabbitmq_prometheus/src/collectors/prometheus_rabbitmq_core_metrics_collector.erl`
/// (`METRICS_RAW` and `TOTALS`, prefixed `rabbitmq_`), the global counters of
/// `prometheus_rabbitmq_global_metrics_collector.erl` (3.10+), and `rabbitmq_build_info` /
/// `rabbitmq_identity_info`. Channel and connection families (labels `channel`,
/// `connection`) are left out: the stack does not read them.
pub static METRICS: &[Metric] = &[
    m(
        "rabbitmq_build_info",
        Gauge,
        "RabbitMQ and Erlang/OTP version info.",
        &[
            "rabbitmq_version",
            "erlang_version",
            "prometheus_plugin_version",
            "prometheus_client_version",
        ],
    ),
    m(
        "rabbitmq_identity_info",
        Gauge,
        "RabbitMQ node and cluster identity info.",
        &[
            "rabbitmq_node",
            "rabbitmq_cluster",
            "rabbitmq_cluster_permanent_id",
        ],
    ),
    m(
        "rabbitmq_connections",
        Gauge,
        "Connections currently open.",
        &[],
    ),
    m("rabbitmq_channels", Gauge, "Channels currently open.", &[]),
    m(
        "rabbitmq_consumers",
        Gauge,
        "Consumers currently connected.",
        &[],
    ),
    m("rabbitmq_queues", Gauge, "Queues available.", &[]),
    m(
        "rabbitmq_connections_opened_total",
        Counter,
        "Total number of connections opened.",
        &[],
    ),
    m(
        "rabbitmq_connections_closed_total",
        Counter,
        "Total number of connections closed or terminated.",
        &[],
    ),
    m(
        "rabbitmq_process_open_fds",
        Gauge,
        "Open file descriptors.",
        &[],
    ),
    m(
        "rabbitmq_process_max_fds",
        Gauge,
        "Open file descriptors limit.",
        &[],
    ),
    m(
        "rabbitmq_process_resident_memory_bytes",
        Gauge,
        "Memory used in bytes.",
        &[],
    ),
    m(
        "rabbitmq_resident_memory_limit_bytes",
        Gauge,
        "Memory high watermark in bytes.",
        &[],
    ),
    m(
        "rabbitmq_disk_space_available_bytes",
        Gauge,
        "Disk space available in bytes.",
        &[],
    ),
    m(
        "rabbitmq_disk_space_available_limit_bytes",
        Gauge,
        "Free disk space low watermark in bytes.",
        &[],
    ),
    m(
        "rabbitmq_erlang_processes_used",
        Gauge,
        "Erlang processes used.",
        &[],
    ),
    m("rabbitmq_erlang_uptime_seconds", Gauge, "Node uptime.", &[]),
    m(
        "rabbitmq_queue_messages_ready",
        Gauge,
        "Messages ready to be delivered to consumers.",
        &["vhost", "queue"],
    ),
    m(
        "rabbitmq_queue_messages_unacked",
        Gauge,
        "Messages delivered to consumers but not yet acknowledged.",
        &["vhost", "queue"],
    ),
    m(
        "rabbitmq_queue_messages",
        Gauge,
        "Sum of ready and unacknowledged messages - total queue depth.",
        &["vhost", "queue"],
    ),
    m(
        "rabbitmq_queue_consumers",
        Gauge,
        "Consumers on a queue.",
        &["vhost", "queue"],
    ),
    m(
        "rabbitmq_queue_messages_bytes",
        Gauge,
        "Size in bytes of ready and unacknowledged messages.",
        &["vhost", "queue"],
    ),
    m(
        "rabbitmq_queue_messages_published_total",
        Counter,
        "Total number of messages published to queues.",
        &["vhost", "queue"],
    ),
    m(
        "rabbitmq_global_messages_received_total",
        Counter,
        "Total number of messages received from publishers.",
        &["protocol"],
    ),
    m(
        "rabbitmq_global_messages_confirmed_total",
        Counter,
        "Total number of messages confirmed to publishers.",
        &["protocol"],
    ),
    m(
        "rabbitmq_global_messages_routed_total",
        Counter,
        "Total number of messages routed to queues or streams.",
        &["protocol"],
    ),
    m(
        "rabbitmq_global_messages_unroutable_returned_total",
        Counter,
        "Total number of messages published as mandatory and returned as unroutable.",
        &["protocol"],
    ),
    m(
        "rabbitmq_global_messages_delivered_total",
        Counter,
        "Total number of messages delivered to consumers.",
        &["protocol"],
    ),
    m(
        "rabbitmq_global_messages_acknowledged_total",
        Counter,
        "Total number of messages acknowledged by consumers.",
        &["protocol"],
    ),
    m(
        "rabbitmq_global_publishers",
        Gauge,
        "Current number of publishers.",
        &["protocol"],
    ),
    m(
        "rabbitmq_global_consumers",
        Gauge,
        "Current number of consumers.",
        &["protocol"],
    ),
];
