//! Metrics of `prom/node-exporter:v1.8.2` (default collectors, host root at `/host`).

use super::MetricType::{Counter, Gauge};
use super::{Metric, m};

/// Source: prometheus/node_exporter `collector/filesystem_common.go` (`node_filesystem_*`),
/// `collector/meminfo.go` (one `node_memory_<field>_bytes` per /proc/meminfo field; the
/// fields the dashboards read are listed), `collector/cpu_linux.go`, `collector/loadavg.go`,
/// `collector/netdev_common.go`, `collector/diskstats_common.go`, `collector/stat_linux.go`,
/// `collector/time.go`. Only the families of these collectors are listed.
pub static METRICS: &[Metric] = &[
    m(
        "node_filesystem_avail_bytes",
        Gauge,
        "Filesystem space available to non-root users in bytes.",
        &["device", "fstype", "mountpoint"],
    ),
    m(
        "node_filesystem_free_bytes",
        Gauge,
        "Filesystem free space in bytes.",
        &["device", "fstype", "mountpoint"],
    ),
    m(
        "node_filesystem_size_bytes",
        Gauge,
        "Filesystem size in bytes.",
        &["device", "fstype", "mountpoint"],
    ),
    m(
        "node_filesystem_files",
        Gauge,
        "Filesystem total file nodes.",
        &["device", "fstype", "mountpoint"],
    ),
    m(
        "node_filesystem_files_free",
        Gauge,
        "Filesystem total free file nodes.",
        &["device", "fstype", "mountpoint"],
    ),
    m(
        "node_filesystem_readonly",
        Gauge,
        "Filesystem read-only status.",
        &["device", "fstype", "mountpoint"],
    ),
    m(
        "node_filesystem_device_error",
        Gauge,
        "Whether an error occurred while getting statistics.",
        &["device", "fstype", "mountpoint"],
    ),
    m(
        "node_memory_MemTotal_bytes",
        Gauge,
        "Memory information field MemTotal_bytes.",
        &[],
    ),
    m(
        "node_memory_MemAvailable_bytes",
        Gauge,
        "Memory information field MemAvailable_bytes.",
        &[],
    ),
    m(
        "node_memory_MemFree_bytes",
        Gauge,
        "Memory information field MemFree_bytes.",
        &[],
    ),
    m(
        "node_memory_Cached_bytes",
        Gauge,
        "Memory information field Cached_bytes.",
        &[],
    ),
    m(
        "node_memory_Buffers_bytes",
        Gauge,
        "Memory information field Buffers_bytes.",
        &[],
    ),
    m(
        "node_memory_SwapTotal_bytes",
        Gauge,
        "Memory information field SwapTotal_bytes.",
        &[],
    ),
    m(
        "node_memory_SwapFree_bytes",
        Gauge,
        "Memory information field SwapFree_bytes.",
        &[],
    ),
    m(
        "node_cpu_seconds_total",
        Counter,
        "Seconds the CPUs spent in each mode.",
        &["cpu", "mode"],
    ),
    m("node_load1", Gauge, "1m load average.", &[]),
    m("node_load5", Gauge, "5m load average.", &[]),
    m("node_load15", Gauge, "15m load average.", &[]),
    m(
        "node_network_receive_bytes_total",
        Counter,
        "Network device statistic receive_bytes.",
        &["device"],
    ),
    m(
        "node_network_transmit_bytes_total",
        Counter,
        "Network device statistic transmit_bytes.",
        &["device"],
    ),
    m(
        "node_disk_read_bytes_total",
        Counter,
        "The total number of bytes read successfully.",
        &["device"],
    ),
    m(
        "node_disk_written_bytes_total",
        Counter,
        "The total number of bytes written successfully.",
        &["device"],
    ),
    m(
        "node_disk_io_time_seconds_total",
        Counter,
        "Total seconds spent doing I/Os.",
        &["device"],
    ),
    m(
        "node_boot_time_seconds",
        Gauge,
        "Node boot time, in unixtime.",
        &[],
    ),
    m(
        "node_time_seconds",
        Gauge,
        "System time in seconds since epoch (1970).",
        &[],
    ),
];
