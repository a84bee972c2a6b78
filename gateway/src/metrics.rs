//! Metrics of the gateway, registered from the one catalog the validator also reads
//! (`tgstack::catalog::gateway`). Every name used in this crate is one of the constants
//! below, and a test checks each against the catalog with its labels.

use anyhow::{Result, anyhow};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tgstack::catalog::gateway::LATENCY_BUCKETS;
use tgstack::catalog::{Metric, MetricType};

pub const RECEIVED: &str = "tg_gateway_messages_received_total";
pub const DEDUPLICATED: &str = "tg_gateway_messages_deduplicated_total";
pub const STORED: &str = "tg_gateway_messages_stored_total";
pub const PUBLISHED: &str = "tg_gateway_messages_published_total";
pub const FAILED: &str = "tg_gateway_messages_failed_total";
pub const EDITS: &str = "tg_gateway_edits_total";
pub const DELETES: &str = "tg_gateway_deletes_total";
pub const OUTBOX_DEPTH: &str = "tg_gateway_outbox_depth";
pub const INGESTION_LAG: &str = "tg_gateway_ingestion_lag_seconds";
pub const LAST_MESSAGE_TIMESTAMP: &str = "tg_gateway_last_message_timestamp_seconds";
pub const DEDUP_DURATION: &str = "tg_gateway_dedup_duration_seconds";
pub const STORE_DURATION: &str = "tg_gateway_store_duration_seconds";
pub const PUBLISH_DURATION: &str = "tg_gateway_publish_duration_seconds";
pub const END_TO_END_DURATION: &str = "tg_gateway_end_to_end_duration_seconds";
pub const DEPENDENCY_UP: &str = "tg_gateway_dependency_up";
pub const FLOOD_WAIT_SECONDS: &str = "tg_gateway_flood_wait_seconds_total";

/// Which process's catalog to register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Gateway,
    Api,
}

impl Process {
    pub fn catalog(self) -> &'static [Metric] {
        match self {
            Process::Gateway => tgstack::catalog::gateway::GATEWAY,
            Process::Api => tgstack::catalog::gateway::API,
        }
    }
}

/// Installs the global recorder with the catalog's descriptions and latency buckets.
/// Returns the handle `/metrics` renders from.
pub fn install(process: Process) -> Result<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    for metric in process.catalog() {
        if metric.kind == MetricType::Histogram {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(metric.name.to_string()), LATENCY_BUCKETS)
                .map_err(|e| anyhow!("histogram buckets of {}: {e}", metric.name))?;
        }
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| anyhow!("cannot install the metrics recorder: {e}"))?;
    describe(process);
    Ok(handle)
}

/// Registers HELP text for every catalog metric of `process`.
pub fn describe(process: Process) {
    for metric in process.catalog() {
        let help = metric.help;
        match metric.kind {
            MetricType::Counter => metrics::describe_counter!(metric.name, help),
            MetricType::Gauge => metrics::describe_gauge!(metric.name, help),
            MetricType::Histogram => metrics::describe_histogram!(metric.name, help),
            MetricType::Summary | MetricType::Untyped => {}
        }
    }
}

/// The text `/metrics` serves.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.render()
}

/// Label value of a channel.
pub fn channel_label(channel_id: i64) -> String {
    channel_id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tgstack::catalog::gateway::GATEWAY;

    #[test]
    fn every_name_is_in_the_gateway_catalog_with_its_labels() {
        let used: &[(&str, &[&str])] = &[
            (RECEIVED, &["channel"]),
            (DEDUPLICATED, &["channel"]),
            (STORED, &["channel"]),
            (PUBLISHED, &["channel"]),
            (FAILED, &["channel", "stage"]),
            (EDITS, &["channel"]),
            (DELETES, &["channel"]),
            (OUTBOX_DEPTH, &[]),
            (INGESTION_LAG, &["channel"]),
            (LAST_MESSAGE_TIMESTAMP, &["channel"]),
            (DEDUP_DURATION, &[]),
            (STORE_DURATION, &[]),
            (PUBLISH_DURATION, &[]),
            (END_TO_END_DURATION, &[]),
            (DEPENDENCY_UP, &["dependency"]),
            (FLOOD_WAIT_SECONDS, &[]),
        ];
        for (name, labels) in used {
            let metric = GATEWAY
                .iter()
                .find(|m| m.name == *name)
                .unwrap_or_else(|| panic!("{name} is not in the gateway catalog"));
            assert_eq!(metric.labels, *labels, "labels of {name}");
        }
        assert_eq!(used.len(), GATEWAY.len(), "every catalog metric is used");
    }
}
