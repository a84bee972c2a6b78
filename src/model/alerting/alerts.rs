//! Every alert of the model built into a Prometheus rule: fields checked, the kind's
//! rule built (see `kinds`), labels and annotations completed, and the promtool case
//! attached.

use std::collections::BTreeMap;

use serde::Serialize;

use super::builders::{AlertInput, KindRule, build_kind};
use super::humanize::{go_value, humanize_duration, humanize_percentage};
use super::prometheus_service;
use super::promtool::{Declared, TestCase, Timing, custom_case, typed_case};
use crate::model::{Alert, AlertKind, AlertSeverity, Stack, units::Duration};

/// A problem that keeps an alert from being built, at a field of the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertProblem {
    /// Rule id: TG501 (missing or wrong service/exporter) or TG502 (invalid alert).
    pub rule: &'static str,
    /// Field of the alert the problem is at (`service`, `expr`, ...), or `""`.
    pub field: &'static str,
    pub message: String,
    pub help: String,
}

/// An alert built into a Prometheus rule.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltAlert {
    pub name: String,
    pub severity: AlertSeverity,
    pub expr: String,
    /// `for`, Prometheus spelling; `None` when the alert fires at once.
    pub for_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Scrape jobs whose catalogs the expression's metrics must come from.
    pub jobs: Vec<String>,
    /// The promtool case; `None` for a custom alert without `test`.
    pub test: Option<TestCase>,
}

/// The unit of an alert kind's threshold and `$value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Count,
    Ratio,
    None,
}

fn unit_of(kind: AlertKind) -> Unit {
    match kind {
        AlertKind::IngestionLag => Unit::Seconds,
        AlertKind::PoolExhausted | AlertKind::QueueBacklog => Unit::Count,
        AlertKind::CacheHitRate | AlertKind::DiskSpace | AlertKind::MemoryHigh => Unit::Ratio,
        AlertKind::ServiceDown | AlertKind::RedisDown | AlertKind::Custom => Unit::None,
    }
}

fn default_threshold(kind: AlertKind) -> f64 {
    match kind {
        AlertKind::IngestionLag => 300.0,
        AlertKind::PoolExhausted => 0.0,
        AlertKind::QueueBacklog => 10_000.0,
        AlertKind::CacheHitRate => 0.95,
        AlertKind::DiskSpace => 0.10,
        AlertKind::MemoryHigh => 0.90,
        AlertKind::ServiceDown | AlertKind::RedisDown | AlertKind::Custom => 0.0,
    }
}

/// `{{ $value }}` in the unit of the kind, as a Prometheus annotation template.
fn value_template(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds => "{{ $value | humanizeDuration }}",
        Unit::Ratio => "{{ $value | humanizePercentage }}",
        Unit::Count | Unit::None => "{{ $value }}",
    }
}

/// A threshold in the kind's unit, as printed in a description.
fn threshold_text(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Seconds => humanize_duration(value),
        Unit::Ratio => humanize_percentage(value),
        Unit::Count | Unit::None => go_value(value),
    }
}

/// Alert names are metric-name-like identifiers (Prometheus label value, file-safe).
fn valid_alert_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Builds one alert of the model. Problems are returned in model terms; the renderer
/// skips an alert with problems (the model rules report them).
pub fn build_alert(stack: &Stack, alert: &Alert) -> Result<BuiltAlert, Vec<AlertProblem>> {
    let mut problems = name_and_label_problems(alert);
    let unit = unit_of(alert.kind);
    let threshold = alert
        .threshold
        .unwrap_or_else(|| default_threshold(alert.kind));
    if alert.kind != AlertKind::Custom {
        problems.extend(typed_field_problems(alert, unit, threshold));
    }
    let window = alert.window.unwrap_or(Duration(300_000));
    let for_text = alert.for_.filter(|d| d.0 > 0).map(|d| d.prometheus());
    let input = AlertInput {
        stack,
        alert,
        threshold,
        window,
        value: value_template(unit),
        threshold_text: threshold_text(unit, threshold),
        for_phrase: for_text
            .as_ref()
            .map(|f| format!(" for {f}"))
            .unwrap_or_default(),
    };
    let built = build_kind(&input, &mut problems);
    let Some(KindRule {
        expr,
        jobs,
        summary,
        description,
        fixture,
    }) = built.filter(|_| problems.is_empty())
    else {
        return Err(problems);
    };
    let mut labels = alert.labels.clone();
    labels.insert("severity".into(), alert.severity.as_str().into());
    let annotations = annotations(stack, alert, summary, description);
    let declared = Declared {
        name: &alert.name,
        labels: &labels,
        annotations: &annotations,
    };
    let timing = Timing {
        interval_s: evaluation_interval_s(stack),
        for_s: alert.for_.map(|d| d.seconds()).unwrap_or(0),
        // A rate has no value before its window has passed.
        warmup_s: if alert.kind == AlertKind::CacheHitRate {
            window.seconds()
        } else {
            0
        },
    };
    let test = if alert.kind == AlertKind::Custom {
        alert
            .test
            .as_ref()
            .map(|test| custom_case(&declared, test, &timing))
    } else {
        Some(typed_case(&declared, &fixture, &timing))
    };
    Ok(BuiltAlert {
        name: alert.name.clone(),
        severity: alert.severity,
        expr,
        for_: for_text,
        labels,
        annotations,
        jobs,
        test,
    })
}

/// Rule evaluation interval of the stack's Prometheus, in whole seconds (15 without one).
fn evaluation_interval_s(stack: &Stack) -> u64 {
    prometheus_service(stack)
        .and_then(|(_, p)| p.prometheus.as_ref())
        .map(|p| p.evaluation_interval.seconds().max(1))
        .unwrap_or(15)
}

/// Summary and description (the model's, else the kind's) and the runbook link.
fn annotations(
    stack: &Stack,
    alert: &Alert,
    summary: String,
    description: String,
) -> BTreeMap<String, String> {
    let summary = alert.summary.clone().unwrap_or(summary);
    let description = alert.description.clone().unwrap_or(description);
    // The page tgstack renders for the alert (`runbooks/<name>.md`), where the operator
    // publishes the rendered tree.
    let runbook = alert.runbook.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            stack.monitoring.runbook_url.trim_end_matches('/'),
            crate::model::paths::runbook(&alert.name)
        )
    });
    BTreeMap::from([
        ("summary".to_string(), summary),
        ("description".to_string(), description),
        ("runbook_url".to_string(), runbook),
    ])
}

/// The alert's name and extra labels must be valid Prometheus names of their own.
fn name_and_label_problems(alert: &Alert) -> Vec<AlertProblem> {
    let mut problems = Vec::new();
    if !valid_alert_name(&alert.name) {
        problems.push(AlertProblem {
            rule: "TG502",
            field: "name",
            message: format!("alert name `{}` is not UpperCamelCase", alert.name),
            help: "use letters and digits starting with an uppercase letter, e.g. `GatewayDown`"
                .into(),
        });
    }
    for key in alert.labels.keys() {
        if !valid_label_name(key) || key == "severity" || key == "alertname" {
            problems.push(AlertProblem {
                rule: "TG502",
                field: "labels",
                message: format!("alert `{}` sets label `{key}`", alert.name),
                help: "use a label name (letters, digits, `_`) other than severity/alertname"
                    .into(),
            });
        }
    }
    problems
}

/// A typed alert generates its expression and test, and takes a threshold in its unit.
fn typed_field_problems(alert: &Alert, unit: Unit, threshold: f64) -> Vec<AlertProblem> {
    let mut problems = Vec::new();
    if alert.expr.is_some() || alert.test.is_some() {
        problems.push(AlertProblem {
            rule: "TG502",
            field: "expr",
            message: format!(
                "alert `{}` is of kind `{}`: its expression and test are generated",
                alert.name,
                alert.kind.as_str()
            ),
            help: "drop expr/test, or use kind = \"custom\"".into(),
        });
    }
    let bad = !threshold.is_finite()
        || threshold < 0.0
        || (unit == Unit::Ratio && !(threshold > 0.0 && threshold < 1.0));
    if alert.threshold.is_some() && (bad || unit == Unit::None) {
        problems.push(AlertProblem {
            rule: "TG502",
            field: "threshold",
            message: format!(
                "threshold {threshold} does not fit alert `{}` ({})",
                alert.name,
                alert.kind.as_str()
            ),
            help: match unit {
                Unit::Ratio => "write a ratio between 0 and 1, e.g. 0.9".into(),
                Unit::None => "this kind has no threshold: drop it".into(),
                _ => "write a non-negative number".into(),
            },
        });
    }
    problems
}
