//! The metric catalog: for every process the stack scrapes, the metrics it exposes.
//! The gateway registers its metrics from [`gateway::GATEWAY`] and [`gateway::API`], and
//! the validator checks every alert and dashboard query against the same lists.

pub mod cadvisor;
pub mod gateway;
pub mod node_exporter;
pub mod pgbouncer_exporter;
pub mod postgres_exporter;
pub mod rabbitmq;
pub mod redis_exporter;

use serde::Serialize;

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// One metric family as exposed on /metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Family name; histogram series add `_bucket`, `_sum`, `_count`.
    pub name: &'static str,
    pub kind: MetricType,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

impl Metric {
    /// Whether a series name in a query belongs to this family.
    pub fn matches(&self, series: &str) -> bool {
        if series == self.name {
            return true;
        }
        match self.kind {
            MetricType::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| series.strip_suffix(suffix) == Some(self.name)),
            MetricType::Summary => ["_sum", "_count"]
                .iter()
                .any(|suffix| series.strip_suffix(suffix) == Some(self.name)),
            _ => false,
        }
    }
}

/// A catalog entry; a `const fn` keeps the exporter lists one line per family.
pub const fn m(
    name: &'static str,
    kind: MetricType,
    help: &'static str,
    labels: &'static [&'static str],
) -> Metric {
    Metric {
        name,
        kind,
        help,
        labels,
    }
}

/// Series Prometheus itself adds to every scrape job (docs: "Jobs and instances").
pub static SCRAPE: &[Metric] = &[
    m(
        "up",
        MetricType::Gauge,
        "1 if the instance is healthy (reachable), 0 if the scrape failed.",
        &["job", "instance"],
    ),
    m(
        "scrape_duration_seconds",
        MetricType::Gauge,
        "Duration of the scrape.",
        &["job", "instance"],
    ),
    m(
        "scrape_samples_scraped",
        MetricType::Gauge,
        "Samples the target exposed.",
        &["job", "instance"],
    ),
    m(
        "scrape_samples_post_metric_relabeling",
        MetricType::Gauge,
        "Samples left after metric relabeling.",
        &["job", "instance"],
    ),
    m(
        "scrape_series_added",
        MetricType::Gauge,
        "Approximate number of new series in this scrape.",
        &["job", "instance"],
    ),
];

/// The family a series name belongs to among `metrics` (histogram suffixes included).
pub fn find<'a>(metrics: &'a [Metric], series: &str) -> Option<&'a Metric> {
    metrics.iter().find(|metric| metric.matches(series))
}
