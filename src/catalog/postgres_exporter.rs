//! Metrics of `quay.io/prometheuscommunity/postgres-exporter:v0.16.0` with its default
//! collectors, plus the stack's custom queries (rendered into `queries.yaml`).

use super::MetricType::{Counter, Gauge};
use super::{Metric, m};

/// Built-in families. Source: prometheus-community/postgres_exporter, `cmd/postgres_exporter`
/// (`pg_up`, the `pg_settings_*` of `pg_settings.go`), and the default-enabled collectors in
/// `collector/`: `pg_database.go`, `pg_locks.go`, `pg_postmaster.go`, `pg_stat_database.go`,
/// `pg_stat_bgwriter.go`, `pg_stat_user_tables.go`, `pg_replication_slot.go`,
/// `collector.go` (`pg_scrape_collector_*`). Only families whose names are unchanged from
/// v0.15 to v0.16 are listed; `pg_settings_*` holds one family per server setting, of which
/// the ones the dashboards use are listed.
pub static BUILTIN: &[Metric] = &[
    m(
        "pg_up",
        Gauge,
        "Whether the last scrape could connect to PostgreSQL (1 = yes).",
        &[],
    ),
    m(
        "pg_static",
        Gauge,
        "Version string as reported by PostgreSQL.",
        &["version", "short_version"],
    ),
    m(
        "pg_database_size_bytes",
        Gauge,
        "Disk space used by the database.",
        &["datname"],
    ),
    m(
        "pg_database_connection_limit",
        Gauge,
        "Connection limit set for the database.",
        &["datname"],
    ),
    m(
        "pg_locks_count",
        Gauge,
        "Number of locks.",
        &["datname", "mode"],
    ),
    m(
        "pg_postmaster_start_time_seconds",
        Gauge,
        "Time at which postmaster started.",
        &[],
    ),
    m(
        "pg_stat_database_numbackends",
        Gauge,
        "Backends currently connected to this database.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_xact_commit",
        Counter,
        "Transactions committed.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_xact_rollback",
        Counter,
        "Transactions rolled back.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_blks_read",
        Counter,
        "Disk blocks read.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_blks_hit",
        Counter,
        "Disk blocks found in the buffer cache.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_tup_returned",
        Counter,
        "Rows returned by queries.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_tup_fetched",
        Counter,
        "Rows fetched by queries.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_tup_inserted",
        Counter,
        "Rows inserted by queries.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_tup_updated",
        Counter,
        "Rows updated by queries.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_tup_deleted",
        Counter,
        "Rows deleted by queries.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_conflicts",
        Counter,
        "Queries canceled due to conflicts with recovery.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_temp_files",
        Counter,
        "Temporary files created by queries.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_temp_bytes",
        Counter,
        "Data written to temporary files.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_deadlocks",
        Counter,
        "Deadlocks detected.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_blk_read_time",
        Counter,
        "Time spent reading data file blocks, in milliseconds.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_blk_write_time",
        Counter,
        "Time spent writing data file blocks, in milliseconds.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_stats_reset",
        Counter,
        "Time at which these statistics were last reset.",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_database_active_time_seconds_total",
        Counter,
        "Time spent executing SQL statements (PostgreSQL >= 14).",
        &["datid", "datname"],
    ),
    m(
        "pg_stat_bgwriter_checkpoints_timed_total",
        Counter,
        "Scheduled checkpoints performed.",
        &[],
    ),
    m(
        "pg_stat_bgwriter_checkpoints_req_total",
        Counter,
        "Requested checkpoints performed.",
        &[],
    ),
    m(
        "pg_stat_bgwriter_buffers_checkpoint_total",
        Counter,
        "Buffers written during checkpoints.",
        &[],
    ),
    m(
        "pg_stat_bgwriter_buffers_clean_total",
        Counter,
        "Buffers written by the background writer.",
        &[],
    ),
    m(
        "pg_stat_bgwriter_buffers_backend_total",
        Counter,
        "Buffers written directly by a backend.",
        &[],
    ),
    m(
        "pg_stat_user_tables_seq_scan",
        Counter,
        "Sequential scans initiated on this table.",
        &["datname", "schemaname", "relname"],
    ),
    m(
        "pg_stat_user_tables_idx_scan",
        Counter,
        "Index scans initiated on this table.",
        &["datname", "schemaname", "relname"],
    ),
    m(
        "pg_stat_user_tables_n_live_tup",
        Gauge,
        "Estimated number of live rows.",
        &["datname", "schemaname", "relname"],
    ),
    m(
        "pg_stat_user_tables_n_dead_tup",
        Gauge,
        "Estimated number of dead rows.",
        &["datname", "schemaname", "relname"],
    ),
    m(
        "pg_stat_user_tables_n_tup_ins",
        Counter,
        "Rows inserted.",
        &["datname", "schemaname", "relname"],
    ),
    m(
        "pg_replication_slot_slot_is_active",
        Gauge,
        "Whether the replication slot is active.",
        &["slot_name", "slot_type"],
    ),
    m(
        "pg_settings_max_connections",
        Gauge,
        "Server setting max_connections.",
        &[],
    ),
    m(
        "pg_settings_shared_buffers_bytes",
        Gauge,
        "Server setting shared_buffers, in bytes.",
        &[],
    ),
    m(
        "pg_scrape_collector_success",
        Gauge,
        "Whether a collector succeeded.",
        &["collector"],
    ),
    m(
        "pg_scrape_collector_duration_seconds",
        Gauge,
        "Duration of a collector scrape.",
        &["collector"],
    ),
];

/// Families of the stack's custom queries file (`<exporter>/queries.yaml`, rendered by
/// `render::monitoring`): the exporter names each `<query>_<column>`. The list is the
/// single definition both the queries file and the validator read.
pub static CUSTOM: &[Metric] = &[
    m(
        "tg_outbox_pending",
        Gauge,
        "Stored messages not yet published (outbox rows without published_at).",
        &[],
    ),
    m(
        "tg_outbox_oldest_age_seconds",
        Gauge,
        "Age of the oldest unpublished outbox row.",
        &[],
    ),
    m(
        "tg_channel_last_message_age_seconds",
        Gauge,
        "Seconds since the newest stored message of each enabled channel.",
        &["channel_id", "username"],
    ),
    m(
        "tg_storage_messages_bytes",
        Gauge,
        "Disk size of the messages table (hypertable size on TimescaleDB).",
        &[],
    ),
];

static ALL: std::sync::LazyLock<Vec<Metric>> = std::sync::LazyLock::new(|| {
    let mut all = BUILTIN.to_vec();
    all.extend_from_slice(CUSTOM);
    all
});

/// Every family the exporter serves: its built-in collectors and the custom queries.
pub fn all() -> &'static [Metric] {
    ALL.as_slice()
}
