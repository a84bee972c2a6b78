//! Metrics of `oliver006/redis_exporter:v1.66.0` scraping one Redis.

use super::MetricType::{Counter, Gauge, Summary};
use super::{Metric, m};

/// Source: oliver006/redis_exporter `exporter/exporter.go`: `metricMapGauges` and
/// `metricMapCounters` (INFO fields renamed, prefixed `redis_`), the `metricDescriptions`
/// table (`db_keys`, `commands_total`, `instance_info`, `master_link_up`, ...), the exporter's
/// own `exporter_scrapes_total`/`exporter_scrape_duration_seconds`, and `up` (`redis.go`).
/// Families of optional flags (key checks, Lua scripts, cluster, Tile38) are left out.
pub static METRICS: &[Metric] = &[
    m(
        "redis_up",
        Gauge,
        "Information about the Redis instance: 1 when the scrape reached it.",
        &[],
    ),
    m(
        "redis_instance_info",
        Gauge,
        "Information about the Redis instance.",
        &[
            "role",
            "redis_version",
            "redis_build_id",
            "redis_mode",
            "os",
            "maxmemory_policy",
            "tcp_port",
            "run_id",
            "process_id",
        ],
    ),
    m(
        "redis_uptime_in_seconds",
        Gauge,
        "Seconds since the server started.",
        &[],
    ),
    m("redis_connected_clients", Gauge, "Client connections.", &[]),
    m(
        "redis_blocked_clients",
        Gauge,
        "Clients blocked on a blocking call.",
        &[],
    ),
    m(
        "redis_memory_used_bytes",
        Gauge,
        "Memory allocated by Redis (used_memory).",
        &[],
    ),
    m(
        "redis_memory_used_rss_bytes",
        Gauge,
        "Resident set size of Redis.",
        &[],
    ),
    m(
        "redis_memory_used_peak_bytes",
        Gauge,
        "Peak memory consumed by Redis.",
        &[],
    ),
    m(
        "redis_memory_max_bytes",
        Gauge,
        "The maxmemory setting.",
        &[],
    ),
    m(
        "redis_mem_fragmentation_ratio",
        Gauge,
        "Ratio of RSS to used memory.",
        &[],
    ),
    m(
        "redis_rdb_last_save_timestamp_seconds",
        Gauge,
        "Time of the last successful RDB save.",
        &[],
    ),
    m(
        "redis_rdb_changes_since_last_save",
        Gauge,
        "Changes since the last RDB save.",
        &[],
    ),
    m("redis_aof_enabled", Gauge, "Whether AOF is on.", &[]),
    m(
        "redis_aof_last_write_status",
        Gauge,
        "Status of the last AOF write (1 = ok).",
        &[],
    ),
    m(
        "redis_aof_current_size_bytes",
        Gauge,
        "Current AOF size.",
        &[],
    ),
    m("redis_connected_slaves", Gauge, "Connected replicas.", &[]),
    m(
        "redis_master_link_up",
        Gauge,
        "Master link status on a replica.",
        &["master_host", "master_port"],
    ),
    m(
        "redis_connected_slave_lag_seconds",
        Gauge,
        "Lag of a connected replica.",
        &["slave_ip", "slave_port", "slave_state"],
    ),
    m(
        "redis_connections_received_total",
        Counter,
        "Connections accepted.",
        &[],
    ),
    m(
        "redis_commands_processed_total",
        Counter,
        "Commands processed.",
        &[],
    ),
    m(
        "redis_rejected_connections_total",
        Counter,
        "Connections rejected (maxclients).",
        &[],
    ),
    m(
        "redis_net_input_bytes_total",
        Counter,
        "Bytes read from the network.",
        &[],
    ),
    m(
        "redis_net_output_bytes_total",
        Counter,
        "Bytes written to the network.",
        &[],
    ),
    m("redis_expired_keys_total", Counter, "Keys expired.", &[]),
    m(
        "redis_evicted_keys_total",
        Counter,
        "Keys evicted because of maxmemory.",
        &[],
    ),
    m(
        "redis_keyspace_hits_total",
        Counter,
        "Successful key lookups (read commands only).",
        &[],
    ),
    m(
        "redis_keyspace_misses_total",
        Counter,
        "Failed key lookups (read commands only).",
        &[],
    ),
    m(
        "redis_cpu_sys_seconds_total",
        Counter,
        "System CPU consumed by Redis.",
        &[],
    ),
    m(
        "redis_cpu_user_seconds_total",
        Counter,
        "User CPU consumed by Redis.",
        &[],
    ),
    m(
        "redis_commands_total",
        Counter,
        "Calls per command.",
        &["cmd"],
    ),
    m(
        "redis_commands_duration_seconds_total",
        Counter,
        "Time spent per command.",
        &["cmd"],
    ),
    m("redis_db_keys", Gauge, "Keys per database.", &["db"]),
    m(
        "redis_db_keys_expiring",
        Gauge,
        "Keys with a TTL per database.",
        &["db"],
    ),
    m(
        "redis_db_avg_ttl_seconds",
        Gauge,
        "Average TTL per database.",
        &["db"],
    ),
    m(
        "redis_last_slow_execution_duration_seconds",
        Gauge,
        "Duration of the last slow command.",
        &[],
    ),
    m(
        "redis_exporter_last_scrape_error",
        Gauge,
        "The last scrape error status.",
        &["err"],
    ),
    m(
        "redis_exporter_scrapes_total",
        Counter,
        "Scrapes of Redis by the exporter.",
        &[],
    ),
    m(
        "redis_exporter_scrape_duration_seconds",
        Summary,
        "Durations of scrapes by the exporter.",
        &[],
    ),
];
