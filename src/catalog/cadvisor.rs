//! Metrics of `gcr.io/cadvisor/cadvisor:v0.49.1` (Docker containers only).

use super::MetricType::{Counter, Gauge};
use super::{Metric, m};

/// Every container family carries `id`, `image`, `name` and one
/// `container_label_<docker label>` per Docker label; compose sets
/// `com.docker.compose.service`, so series name their model service.
const CONTAINER: &[&str] = &[
    "id",
    "image",
    "name",
    "container_label_com_docker_compose_service",
];

/// Source: google/cadvisor `metrics/prometheus.go` (`NewPrometheusCollector`: the
/// `containerMetrics` for CPU, memory, network, filesystem and spec). Only families of the
/// default metric set that the stack reads are listed.
pub static METRICS: &[Metric] = &[
    m(
        "container_cpu_usage_seconds_total",
        Counter,
        "Cumulative cpu time consumed in seconds.",
        &[
            "id",
            "image",
            "name",
            "container_label_com_docker_compose_service",
            "cpu",
        ],
    ),
    m(
        "container_memory_usage_bytes",
        Gauge,
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        CONTAINER,
    ),
    m(
        "container_memory_working_set_bytes",
        Gauge,
        "Current working set in bytes.",
        CONTAINER,
    ),
    m(
        "container_memory_rss",
        Gauge,
        "Size of RSS in bytes.",
        CONTAINER,
    ),
    m(
        "container_memory_cache",
        Gauge,
        "Number of bytes of page cache memory.",
        CONTAINER,
    ),
    m(
        "container_memory_failcnt",
        Counter,
        "Number of memory usage hits limits.",
        CONTAINER,
    ),
    m(
        "container_oom_events_total",
        Counter,
        "Count of out of memory events observed for the container.",
        CONTAINER,
    ),
    m(
        "container_spec_memory_limit_bytes",
        Gauge,
        "Memory limit for the container.",
        CONTAINER,
    ),
    m(
        "container_spec_cpu_quota",
        Gauge,
        "CPU quota of the container.",
        CONTAINER,
    ),
    m(
        "container_spec_cpu_period",
        Gauge,
        "CPU period of the container.",
        CONTAINER,
    ),
    m(
        "container_network_receive_bytes_total",
        Counter,
        "Cumulative count of bytes received.",
        &[
            "id",
            "image",
            "name",
            "container_label_com_docker_compose_service",
            "interface",
        ],
    ),
    m(
        "container_network_transmit_bytes_total",
        Counter,
        "Cumulative count of bytes transmitted.",
        &[
            "id",
            "image",
            "name",
            "container_label_com_docker_compose_service",
            "interface",
        ],
    ),
    m(
        "container_fs_usage_bytes",
        Gauge,
        "Number of bytes that are consumed by the container on this filesystem.",
        &[
            "id",
            "image",
            "name",
            "container_label_com_docker_compose_service",
            "device",
        ],
    ),
    m(
        "container_last_seen",
        Gauge,
        "Last time a container was seen by the exporter.",
        CONTAINER,
    ),
    m(
        "container_start_time_seconds",
        Gauge,
        "Start time of the container since unix epoch in seconds.",
        CONTAINER,
    ),
];
