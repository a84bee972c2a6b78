//! The promtool unit test of each alert (`alerts.test.yml`): for a typed alert, input
//! series that fire it and the alert expected at the right time; for a custom alert,
//! the test written in the model.

use std::collections::BTreeMap;

use serde::Serialize;

use super::humanize::{expand, go_value};
use crate::model::{AlertTest, units::Duration};

/// One promtool unit test: input series and expected alerts at given times.
#[derive(Debug, Clone, Serialize)]
pub struct TestCase {
    pub name: String,
    pub input: Vec<(String, String)>,
    pub checks: Vec<TestCheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestCheck {
    pub eval_time: String,
    pub alertname: String,
    pub alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpectedAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// How a fixture series moves over the test.
#[derive(Debug, Clone, Copy)]
pub(super) enum Level {
    /// Constant value of the series that fires (its labels are the alert's).
    Fire(f64),
    /// Constant value that must not fire.
    Quiet(f64),
    /// Constant value of a helper series (a denominator).
    Constant(f64),
    /// Counter growing by this much per evaluation interval.
    Rate(f64),
}

impl Level {
    fn values(self, steps: u64) -> String {
        match self {
            Level::Fire(v) | Level::Quiet(v) | Level::Constant(v) => {
                format!("{}x{steps}", go_value(v))
            }
            Level::Rate(step) => format!("0+{}x{steps}", go_value(step)),
        }
    }
}

/// The input series of a typed alert's test, and the labels of the alert it fires.
#[derive(Debug, Default)]
pub(super) struct Fixture {
    series: Vec<(String, Level)>,
    labels: BTreeMap<String, String>,
    /// `$value` of the alert the fixture fires.
    pub(super) value: f64,
}

impl Fixture {
    /// Adds a series; a non-empty `labels` marks it as the one whose alert is expected.
    pub(super) fn series(&mut self, series: String, level: Level, labels: &[(&str, &str)]) {
        if !labels.is_empty() {
            self.labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if let Level::Fire(value) = level {
                self.value = value;
            }
        }
        self.series.push((series, level));
    }
}

/// When an alert's test evaluates, in whole seconds.
pub(super) struct Timing {
    /// Rule evaluation interval of the stack's Prometheus.
    pub(super) interval_s: u64,
    /// The alert's `for`.
    pub(super) for_s: u64,
    /// History a rate-based expression needs before it has a value.
    pub(super) warmup_s: u64,
}

/// The labels and annotations of the alert as the rule file declares them.
pub(super) struct Declared<'a> {
    pub(super) name: &'a str,
    pub(super) labels: &'a BTreeMap<String, String>,
    pub(super) annotations: &'a BTreeMap<String, String>,
}

/// The case of a custom alert: the model's input series, and the alert expected with
/// the test's labels and annotations.
pub(super) fn custom_case(declared: &Declared<'_>, test: &AlertTest, timing: &Timing) -> TestCase {
    let eval = test
        .eval_time
        .map(|d| d.seconds())
        .unwrap_or(timing.for_s + 2 * timing.interval_s);
    let mut labels = declared.labels.clone();
    labels.extend(test.labels.clone());
    let mut annotations = declared.annotations.clone();
    annotations.insert("summary".into(), test.summary.clone());
    annotations.insert("description".into(), test.description.clone());
    TestCase {
        name: declared.name.to_string(),
        input: test
            .input
            .iter()
            .map(|s| (s.series.clone(), s.values.clone()))
            .collect(),
        checks: vec![TestCheck {
            eval_time: dur(eval),
            alertname: declared.name.to_string(),
            alerts: vec![ExpectedAlert {
                labels,
                annotations,
            }],
        }],
    }
}

/// The case of a typed alert: the fixture's series long enough to fire, nothing while
/// `for` has not passed, then the alert with its annotations expanded as Prometheus
/// would.
pub(super) fn typed_case(declared: &Declared<'_>, fixture: &Fixture, timing: &Timing) -> TestCase {
    let Timing {
        interval_s,
        for_s,
        warmup_s,
    } = *timing;
    let eval = round_up(warmup_s + for_s + 2 * interval_s, interval_s);
    let steps = eval / interval_s + 4;
    let mut labels = fixture.labels.clone();
    labels.extend(declared.labels.clone());
    let annotations: BTreeMap<String, String> = declared
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), expand(v, &fixture.labels, fixture.value)))
        .collect();
    let mut checks = Vec::new();
    if for_s > 0 {
        // Before `for` has passed the alert is only pending: nothing fires yet.
        checks.push(TestCheck {
            eval_time: dur(round_up(warmup_s, interval_s)),
            alertname: declared.name.to_string(),
            alerts: Vec::new(),
        });
    }
    checks.push(TestCheck {
        eval_time: dur(eval),
        alertname: declared.name.to_string(),
        alerts: vec![ExpectedAlert {
            labels,
            annotations,
        }],
    });
    TestCase {
        name: declared.name.to_string(),
        input: fixture
            .series
            .iter()
            .map(|(series, level)| (series.clone(), level.values(steps)))
            .collect(),
        checks,
    }
}

fn round_up(value: u64, step: u64) -> u64 {
    value.div_ceil(step) * step
}

/// Seconds of a duration as a PromQL/promtool duration.
fn dur(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    Duration(seconds * 1000).prometheus()
}
