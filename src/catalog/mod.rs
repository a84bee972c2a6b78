//! The metric catalog: for every process the stack scrapes, the metrics it exposes.
//! The gateway registers its metrics from [`gateway::GATEWAY`] and [`gateway::API`], and
//! the validator checks every alert and dashboard query against the same lists.

pub mod gateway;

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
