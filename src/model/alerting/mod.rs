//! What the monitoring outputs share: which services are scraped where, and every alert
//! of the model built into a rule (PromQL from catalog metrics, annotations, and a
//! promtool test case that fires it). Derived from the model alone: the renderers print them and the
//! rules check them, so what is rendered is exactly what is validated.
//!
//! - `scrape`: scrape topology (metrics endpoints, jobs, the stack's Prometheus).
//! - `alerts`: building and validating an alert; `builders`: one builder per alert kind;
//!   `watched`: the services an alert watches.
//! - `promtool`: the unit test of each alert (`alerts.test.yml`).
//! - `humanize`: Prometheus' value formatting and template expansion, emulated.

mod alerts;
mod builders;
mod humanize;
mod promtool;
mod scrape;
mod watched;

pub use alerts::{AlertProblem, BuiltAlert, build_alert};
pub use humanize::{expand, go_value, humanize_duration, humanize_percentage};
pub use promtool::{ExpectedAlert, TestCase, TestCheck};
pub use scrape::{ScrapeJob, native_unreachable_from_containers, prometheus_service, scrape_jobs};

/// A PromQL string literal.
pub fn promql_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_strings_are_escaped() {
        assert_eq!(promql_str("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
