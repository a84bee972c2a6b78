//! What the monitoring outputs share: which services are scraped where, and every alert
//! of the model built into a rule (PromQL from catalog metrics, annotations, and a
//! promtool test case that fires it). The check rules read the same functions, so what
//! is rendered is exactly what is validated.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{
    Alert, AlertKind, AlertSeverity, Deploy, Kind, Service, Stack, units::Duration,
};

/// One Prometheus scrape job: a model service with a metrics endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeJob {
    /// Job name: the service name.
    pub job: String,
    pub kind: Kind,
    pub metrics_path: &'static str,
    /// `host:port` as the Prometheus process reaches it.
    pub target: String,
}

/// The port and path a service exposes metrics on, if any. RabbitMQ is scraped on
/// `/metrics/per-object` so queue families carry `vhost` and `queue` labels.
pub fn metrics_endpoint(service: &Service) -> Option<(u16, &'static str)> {
    match service.kind {
        Kind::Gateway
        | Kind::Api
        | Kind::PostgresExporter
        | Kind::RedisExporter
        | Kind::PgbouncerExporter
        | Kind::NodeExporter
        | Kind::Cadvisor => Some((service.port, "/metrics")),
        Kind::Rabbitmq => service
            .rabbitmq
            .as_ref()
            .map(|r| (r.metrics_port, "/metrics/per-object")),
        Kind::Postgres
        | Kind::Pgbouncer
        | Kind::Redis
        | Kind::Sentinel
        | Kind::Prometheus
        | Kind::Grafana => None,
    }
}

/// The first Prometheus service of the stack (the one alerts and dashboards use).
pub fn prometheus_service(stack: &Stack) -> Option<(&str, &Service)> {
    stack
        .services
        .iter()
        .find(|(_, s)| s.kind == Kind::Prometheus)
        .map(|(name, s)| (name.as_str(), s))
}

/// Every scrape job of `prometheus`, sorted by service name. A service Prometheus cannot
/// reach is left out (the model rules report it).
pub fn scrape_jobs(stack: &Stack, prometheus: &Service) -> Vec<ScrapeJob> {
    let mut jobs = Vec::new();
    for (name, service) in &stack.services {
        let Some((port, metrics_path)) = metrics_endpoint(service) else {
            continue;
        };
        // Metrics ports other than the main one are never published.
        let publish = (port == service.port).then_some(service.publish).flatten();
        if let Ok(endpoint) = stack.reach_port(prometheus, name, port, publish) {
            jobs.push(ScrapeJob {
                job: name.clone(),
                kind: service.kind,
                metrics_path,
                target: endpoint.to_string(),
            });
        }
    }
    jobs
}

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

/// The exporter service of `kind` whose `exporter.target` is `target`.
fn exporter_for<'a>(stack: &'a Stack, kind: Kind, target: &str) -> Option<&'a str> {
    stack
        .services
        .iter()
        .find(|(_, s)| s.kind == kind && s.exporter.as_ref().is_some_and(|e| e.target == target))
        .map(|(name, _)| name.as_str())
}

/// The service `alert.service` names, or the only service of `kind` when unset.
fn named_or_only<'a>(
    stack: &'a Stack,
    alert: &Alert,
    kind: Kind,
    problems: &mut Vec<AlertProblem>,
) -> Option<&'a str> {
    if let Some(name) = &alert.service {
        return match stack.services.get_key_value(name) {
            Some((key, s)) if s.kind == kind => Some(key.as_str()),
            Some((_, s)) => {
                problems.push(AlertProblem {
                    rule: "TG501",
                    field: "service",
                    message: format!(
                        "alert `{}` ({}) needs a `{}` service, `{name}` is a `{}`",
                        alert.name,
                        alert.kind.as_str(),
                        kind.as_str(),
                        s.kind.as_str()
                    ),
                    help: format!("name a `{}` service", kind.as_str()),
                });
                None
            }
            None => {
                problems.push(unknown_service(alert, name));
                None
            }
        };
    }
    let all: Vec<&str> = stack
        .services
        .iter()
        .filter(|(_, s)| s.kind == kind)
        .map(|(n, _)| n.as_str())
        .collect();
    match all.as_slice() {
        [only] => Some(only),
        [] => {
            problems.push(AlertProblem {
                rule: "TG501",
                field: "kind",
                message: format!(
                    "alert `{}` ({}) needs a `{}` service, and the stack has none",
                    alert.name,
                    alert.kind.as_str(),
                    kind.as_str()
                ),
                help: format!(
                    "add a service with kind = \"{}\" (its metrics are what the alert reads), or drop the alert",
                    kind.as_str()
                ),
            });
            None
        }
        _ => {
            problems.push(AlertProblem {
                rule: "TG502",
                field: "service",
                message: format!(
                    "alert `{}` ({}) could watch several `{}` services",
                    alert.name,
                    alert.kind.as_str(),
                    kind.as_str()
                ),
                help: format!("set service to one of: {}", all.join(", ")),
            });
            None
        }
    }
}

fn unknown_service(alert: &Alert, name: &str) -> AlertProblem {
    AlertProblem {
        rule: "TG501",
        field: "service",
        message: format!("alert `{}` watches unknown service `{name}`", alert.name),
        help: "name a service of [services]".into(),
    }
}

/// The service `alert.service` names, which must be one of `kinds`.
fn watched<'a>(
    stack: &'a Stack,
    alert: &Alert,
    kinds: &[Kind],
    problems: &mut Vec<AlertProblem>,
) -> Option<(&'a str, &'a Service)> {
    let Some(name) = &alert.service else {
        problems.push(AlertProblem {
            rule: "TG502",
            field: "service",
            message: format!(
                "alert `{}` ({}) does not say which service it watches",
                alert.name,
                alert.kind.as_str()
            ),
            help: "set service".into(),
        });
        return None;
    };
    match stack.services.get_key_value(name) {
        None => {
            problems.push(unknown_service(alert, name));
            None
        }
        Some((key, s)) if kinds.contains(&s.kind) => Some((key.as_str(), s)),
        Some((_, s)) => {
            let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            problems.push(AlertProblem {
                rule: "TG501",
                field: "service",
                message: format!(
                    "alert `{}` ({}) cannot watch `{name}`, a `{}` service",
                    alert.name,
                    alert.kind.as_str(),
                    s.kind.as_str()
                ),
                help: format!("name a service of kind {}", kinds.join(" or ")),
            });
            None
        }
    }
}

/// The exporter of `kind` watching `target`, or a TG501 problem saying to add one.
fn require_exporter<'a>(
    stack: &'a Stack,
    alert: &Alert,
    kind: Kind,
    target: &str,
    problems: &mut Vec<AlertProblem>,
) -> Option<&'a str> {
    let found = exporter_for(stack, kind, target);
    if found.is_none() {
        problems.push(AlertProblem {
            rule: "TG501",
            field: "service",
            message: format!(
                "alert `{}` ({}) needs a `{}` watching `{target}`, and the stack has none",
                alert.name,
                alert.kind.as_str(),
                kind.as_str()
            ),
            help: format!(
                "add a service with kind = \"{}\" and exporter.target = \"{target}\"",
                kind.as_str()
            ),
        });
    }
    found
}

/// Seconds of a duration as a PromQL/promtool duration.
fn dur(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    Duration(seconds * 1000).prometheus()
}

/// Builds one alert of the model. Problems are returned in model terms; the renderer
/// skips an alert with problems (the model rules report them).
pub fn build_alert(stack: &Stack, alert: &Alert) -> Result<BuiltAlert, Vec<AlertProblem>> {
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
    let unit = unit_of(alert.kind);
    let threshold = alert
        .threshold
        .unwrap_or_else(|| default_threshold(alert.kind));
    if alert.kind != AlertKind::Custom {
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
    }
    let window = alert.window.unwrap_or(Duration(300_000));
    let interval_s = prometheus_service(stack)
        .and_then(|(_, p)| p.prometheus.as_ref())
        .map(|p| p.evaluation_interval.seconds().max(1))
        .unwrap_or(15);
    let for_s = alert.for_.map(|d| d.seconds()).unwrap_or(0);
    let for_text = alert.for_.filter(|d| d.0 > 0).map(|d| d.prometheus());
    let for_phrase = for_text
        .as_ref()
        .map(|f| format!(" for {f}"))
        .unwrap_or_default();
    let t_text = threshold_text(unit, threshold);
    let value = value_template(unit);

    // Per kind: expression, scrape jobs, annotations, and a test fixture.
    let mut fixture = Fixture::default();
    let built: Option<(String, Vec<String>, String, String)> = match alert.kind {
        AlertKind::ServiceDown => {
            let Some(name) = &alert.service else {
                problems.push(AlertProblem {
                    rule: "TG502",
                    field: "service",
                    message: format!("alert `{}` does not say which service it watches", alert.name),
                    help: "set service".into(),
                });
                return Err(problems);
            };
            match stack.service(name) {
                None => {
                    problems.push(unknown_service(alert, name));
                    None
                }
                Some(s) if metrics_endpoint(s).is_none() => {
                    problems.push(AlertProblem {
                        rule: "TG501",
                        field: "service",
                        message: format!(
                            "alert `{}` watches `{name}`, which Prometheus does not scrape (a `{}` service exposes no metrics)",
                            alert.name,
                            s.kind.as_str()
                        ),
                        help: "watch its exporter, or use a kind that reads the exporter (e.g. redis-down)".into(),
                    });
                    None
                }
                Some(_) => {
                    let job = promql_str(name);
                    let instance = format!("{name}:1");
                    fixture.series(
                        format!("up{{job={job}, instance={}}}", promql_str(&instance)),
                        Level::Fire(0.0),
                        &[("job", name), ("instance", &instance)],
                    );
                    fixture.series(
                        format!("up{{job={job}, instance=\"healthy:1\"}}"),
                        Level::Quiet(1.0),
                        &[],
                    );
                    Some((
                        format!("up{{job={job}}} == 0"),
                        vec![name.clone()],
                        "Service {{ $labels.job }} is down".to_string(),
                        format!(
                            "Prometheus could not scrape {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}){for_phrase}."
                        ),
                    ))
                }
            }
        }
        AlertKind::IngestionLag => {
            watched(stack, alert, &[Kind::Gateway], &mut problems).map(|(name, _)| {
                let job = promql_str(name);
                let metric = "tg_gateway_ingestion_lag_seconds";
                fixture.series(
                    format!("{metric}{{job={job}, channel=\"lagging\"}}"),
                    Level::Fire((threshold * 2.0).max(1.0).round()),
                    &[("channel", "lagging")],
                );
                fixture.series(
                    format!("{metric}{{job={job}, channel=\"current\"}}"),
                    Level::Quiet((threshold / 2.0).floor()),
                    &[],
                );
                (
                    format!("max by (channel) ({metric}{{job={job}}}) > {}", go_value(threshold)),
                    vec![name.to_string()],
                    "Ingestion of channel {{ $labels.channel }} lags behind".to_string(),
                    format!(
                        "The newest message of channel {{{{ $labels.channel }}}} was stored {value} after Telegram sent it (threshold {t_text}){for_phrase}."
                    ),
                )
            })
        }
        AlertKind::RedisDown => watched(stack, alert, &[Kind::Redis], &mut problems)
            .and_then(|(name, _)| {
                require_exporter(stack, alert, Kind::RedisExporter, name, &mut problems)
                    .map(|exporter| (name, exporter))
            })
            .map(|(name, exporter)| {
                let job = promql_str(exporter);
                let instance = format!("{exporter}:1");
                fixture.series(
                    format!("redis_up{{job={job}, instance={}}}", promql_str(&instance)),
                    Level::Fire(0.0),
                    &[("job", exporter), ("instance", &instance)],
                );
                fixture.series(
                    "redis_up{job=\"other-exporter\", instance=\"other:1\"}".to_string(),
                    Level::Fire(0.0),
                    &[],
                );
                (
                    format!("redis_up{{job={job}}} == 0"),
                    vec![exporter.to_string()],
                    format!("Redis {name} is down"),
                    format!(
                        "{exporter} cannot reach Redis {name} ({{{{ $labels.instance }}}}){for_phrase}."
                    ),
                )
            }),
        AlertKind::PoolExhausted => watched(stack, alert, &[Kind::Pgbouncer], &mut problems)
            .and_then(|(name, s)| {
                require_exporter(stack, alert, Kind::PgbouncerExporter, name, &mut problems)
                    .map(|exporter| (name, s, exporter))
            })
            .map(|(name, s, exporter)| {
                let job = promql_str(exporter);
                let metric = "pgbouncer_pools_client_waiting_connections";
                let pool = s
                    .pgbouncer
                    .as_ref()
                    .map(|b| {
                        format!(
                            " (pool size {} + reserve {})",
                            b.default_pool_size, b.reserve_pool_size
                        )
                    })
                    .unwrap_or_default();
                fixture.series(
                    format!("{metric}{{job={job}, database=\"app\", user=\"busy\"}}"),
                    Level::Fire((threshold + 5.0).floor()),
                    &[("database", "app"), ("user", "busy")],
                );
                fixture.series(
                    format!("{metric}{{job={job}, database=\"app\", user=\"idle\"}}"),
                    Level::Quiet(0.0_f64.min(threshold)),
                    &[],
                );
                (
                    format!(
                        "max by (database, user) ({metric}{{job={job}}}) > {}",
                        go_value(threshold)
                    ),
                    vec![exporter.to_string()],
                    format!(
                        "PgBouncer {name}: pool {{{{ $labels.database }}}}/{{{{ $labels.user }}}} is exhausted"
                    ),
                    format!(
                        "{value} clients wait for a server connection of pool {{{{ $labels.database }}}}/{{{{ $labels.user }}}}{pool}; threshold {t_text}{for_phrase}."
                    ),
                )
            }),
        AlertKind::QueueBacklog => watched(stack, alert, &[Kind::Rabbitmq], &mut problems)
            .and_then(|(name, s)| s.rabbitmq.as_ref().map(|r| (name, r)))
            .map(|(name, rabbit)| {
                let job = promql_str(name);
                let vhost = promql_str(&rabbit.vhost);
                let metric = "rabbitmq_queue_messages_ready";
                let queue_filter = alert
                    .queue
                    .as_ref()
                    .map(|q| format!(", queue={}", promql_str(q)))
                    .unwrap_or_default();
                let queue = alert.queue.clone().unwrap_or_else(|| "backlogged".into());
                fixture.series(
                    format!(
                        "{metric}{{job={job}, vhost={vhost}, queue={}}}",
                        promql_str(&queue)
                    ),
                    Level::Fire((threshold * 2.0).max(1.0).round()),
                    &[("vhost", &rabbit.vhost), ("queue", &queue)],
                );
                fixture.series(
                    format!(
                        "{metric}{{job={job}, vhost=\"other-vhost\", queue={}}}",
                        promql_str(&queue)
                    ),
                    Level::Fire((threshold * 2.0).max(1.0).round()),
                    &[],
                );
                (
                    format!(
                        "max by (vhost, queue) ({metric}{{job={job}, vhost={vhost}{queue_filter}}}) > {}",
                        go_value(threshold)
                    ),
                    vec![name.to_string()],
                    "Queue {{ $labels.queue }} is building up".to_string(),
                    format!(
                        "{value} messages are ready in {{{{ $labels.vhost }}}}/{{{{ $labels.queue }}}} and not consumed (threshold {t_text}){for_phrase}."
                    ),
                )
            }),
        AlertKind::CacheHitRate => {
            let w = window.prometheus();
            watched(stack, alert, &[Kind::Postgres, Kind::Redis], &mut problems)
                .and_then(|(name, s)| {
                    let kind = if s.kind == Kind::Postgres {
                        Kind::PostgresExporter
                    } else {
                        Kind::RedisExporter
                    };
                    require_exporter(stack, alert, kind, name, &mut problems)
                        .map(|exporter| (name, s, exporter))
                })
                .map(|(name, s, exporter)| {
                    let job = promql_str(exporter);
                    // Hits and misses per interval whose ratio is half the threshold.
                    let hits = (threshold * 50.0).floor();
                    let misses = 100.0 - hits;
                    fixture.value = hits / 100.0;
                    if let Some(pg) = &s.postgres {
                        let db = promql_str(&pg.database);
                        let hit = format!("pg_stat_database_blks_hit{{job={job}, datname={db}}}");
                        let read =
                            format!("pg_stat_database_blks_read{{job={job}, datname={db}}}");
                        for (series, level, labels) in [
                            (hit.clone(), Level::Rate(hits), vec![("datname", pg.database.as_str())]),
                            (read.clone(), Level::Rate(misses), vec![]),
                            (
                                format!("pg_stat_database_blks_hit{{job={job}, datname=\"other\"}}"),
                                Level::Rate(hits),
                                vec![],
                            ),
                            (
                                format!("pg_stat_database_blks_read{{job={job}, datname=\"other\"}}"),
                                Level::Rate(misses),
                                vec![],
                            ),
                        ] {
                            fixture.series(series, level, &labels);
                        }
                        let rate = |s: &str| format!("sum by (datname) (rate({s}[{w}]))");
                        (
                            format!(
                                "{} / ({} + {}) < {}",
                                rate(&hit),
                                rate(&hit),
                                rate(&read),
                                go_value(threshold)
                            ),
                            vec![exporter.to_string()],
                            format!("Low buffer cache hit rate on {name}"),
                            format!(
                                "Only {value} of block reads of {{{{ $labels.datname }}}} hit the buffer cache over {w} (threshold {t_text}){for_phrase}."
                            ),
                        )
                    } else {
                        let hit = format!("redis_keyspace_hits_total{{job={job}}}");
                        let miss = format!("redis_keyspace_misses_total{{job={job}}}");
                        fixture.series(hit.clone(), Level::Rate(hits), &[("job", exporter)]);
                        fixture.series(miss.clone(), Level::Rate(misses), &[]);
                        fixture.series(
                            "redis_keyspace_hits_total{job=\"other-exporter\"}".into(),
                            Level::Rate(hits),
                            &[],
                        );
                        fixture.series(
                            "redis_keyspace_misses_total{job=\"other-exporter\"}".into(),
                            Level::Rate(misses),
                            &[],
                        );
                        let rate = |s: &str| format!("sum by (job) (rate({s}[{w}]))");
                        (
                            format!(
                                "{} / ({} + {}) < {}",
                                rate(&hit),
                                rate(&hit),
                                rate(&miss),
                                go_value(threshold)
                            ),
                            vec![exporter.to_string()],
                            format!("Low cache hit rate on Redis {name}"),
                            format!(
                                "Only {value} of key lookups on {name} found their key over {w} (threshold {t_text}){for_phrase}."
                            ),
                        )
                    }
                })
        }
        AlertKind::DiskSpace => named_or_only(stack, alert, Kind::NodeExporter, &mut problems)
            .map(|exporter| {
                let job = promql_str(exporter);
                let mountpoint = alert.mountpoint.clone().unwrap_or_else(|| "/".into());
                let mp = promql_str(&mountpoint);
                let sel = format!("{{job={job}, mountpoint={mp}, fstype!~\"tmpfs|overlay\"}}");
                let labels = [
                    ("job", exporter),
                    ("instance", "host:1"),
                    ("device", "/dev/sda1"),
                    ("fstype", "ext4"),
                    ("mountpoint", mountpoint.as_str()),
                ];
                let series = |metric: &str, mount: &str| {
                    format!(
                        "{metric}{{job={job}, instance=\"host:1\", device=\"/dev/sda1\", fstype=\"ext4\", mountpoint={}}}",
                        promql_str(mount)
                    )
                };
                let other = if mountpoint == "/boot" { "/srv" } else { "/boot" };
                fixture.series(
                    series("node_filesystem_avail_bytes", &mountpoint),
                    Level::Fire(threshold_half_percent(threshold)),
                    &labels,
                );
                fixture.series(series("node_filesystem_size_bytes", &mountpoint), Level::Constant(100.0), &[]);
                fixture.value = threshold_half_percent(threshold) / 100.0;
                fixture.series(
                    series("node_filesystem_avail_bytes", other),
                    Level::Fire(threshold_half_percent(threshold)),
                    &[],
                );
                fixture.series(series("node_filesystem_size_bytes", other), Level::Constant(100.0), &[]);
                (
                    format!(
                        "node_filesystem_avail_bytes{sel} / node_filesystem_size_bytes{sel} < {}",
                        go_value(threshold)
                    ),
                    vec![exporter.to_string()],
                    "Low disk space on {{ $labels.mountpoint }}".to_string(),
                    format!(
                        "Only {value} of {{{{ $labels.mountpoint }}}} ({{{{ $labels.device }}}}) is free (threshold {t_text}){for_phrase}."
                    ),
                )
            }),
        AlertKind::MemoryHigh => named_or_only(stack, alert, Kind::Cadvisor, &mut problems)
            .map(|exporter| {
                let job = promql_str(exporter);
                let sel = format!("{{job={job}, name!=\"\"}}");
                let container = |name: &str| {
                    format!("{{job={job}, name={}, id=\"/docker/{name}\"}}", promql_str(name))
                };
                // Over the limit, under it, and without a limit (0): only the first fires.
                let over = (threshold * 100.0).floor() + ((100.0 - threshold * 100.0) / 2.0).ceil();
                for (name, used, limit, labels) in [
                    ("hungry", over, 100.0, vec![("name", "hungry")]),
                    ("modest", (threshold * 50.0).floor(), 100.0, vec![]),
                    ("unlimited", 100.0, 0.0, vec![]),
                ] {
                    fixture.series(
                        format!("container_memory_working_set_bytes{}", container(name)),
                        Level::Fire(used),
                        &labels,
                    );
                    fixture.series(
                        format!("container_spec_memory_limit_bytes{}", container(name)),
                        Level::Constant(limit),
                        &[],
                    );
                }
                fixture.value = over / 100.0;
                (
                    format!(
                        "max by (name) (container_memory_working_set_bytes{sel} / (container_spec_memory_limit_bytes{sel} > 0)) > {}",
                        go_value(threshold)
                    ),
                    vec![exporter.to_string()],
                    "Container {{ $labels.name }} is near its memory limit".to_string(),
                    format!(
                        "{{{{ $labels.name }}}} uses {value} of its memory limit (threshold {t_text}){for_phrase}."
                    ),
                )
            }),
        AlertKind::Custom => {
            let expr = alert.expr.clone().filter(|e| !e.trim().is_empty());
            let (Some(expr), Some(summary), Some(description)) =
                (expr, alert.summary.clone(), alert.description.clone())
            else {
                problems.push(AlertProblem {
                    rule: "TG502",
                    field: "expr",
                    message: format!(
                        "custom alert `{}` needs expr, summary and description",
                        alert.name
                    ),
                    help: "write the PromQL expression and both annotations".into(),
                });
                return Err(problems);
            };
            if let Err(error) = promql_parser::parser::parse(&expr) {
                problems.push(AlertProblem {
                    rule: "TG502",
                    field: "expr",
                    message: format!("expr of alert `{}` is not PromQL: {error}", alert.name),
                    help: "fix the expression (promtool check rules says the same)".into(),
                });
            }
            Some((expr, Vec::new(), summary, description))
        }
    };
    let Some((expr, jobs, summary, description)) = built else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let summary = alert.summary.clone().unwrap_or(summary);
    let description = alert.description.clone().unwrap_or(description);
    let runbook = alert.runbook.clone().unwrap_or_else(|| {
        format!(
            "{}#{}",
            stack.monitoring.runbook_url,
            alert.name.to_ascii_lowercase()
        )
    });
    let mut labels = alert.labels.clone();
    labels.insert("severity".into(), alert.severity.as_str().into());
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_string(), summary);
    annotations.insert("description".to_string(), description);
    annotations.insert("runbook_url".to_string(), runbook);

    let test = if alert.kind == AlertKind::Custom {
        alert.test.as_ref().map(|t| {
            let eval = t
                .eval_time
                .map(|d| d.seconds())
                .unwrap_or(for_s + 2 * interval_s);
            let mut expected = labels.clone();
            expected.extend(t.labels.clone());
            let mut exp_annotations = annotations.clone();
            exp_annotations.insert("summary".into(), t.summary.clone());
            exp_annotations.insert("description".into(), t.description.clone());
            TestCase {
                name: alert.name.clone(),
                input: t
                    .input
                    .iter()
                    .map(|s| (s.series.clone(), s.values.clone()))
                    .collect(),
                checks: vec![TestCheck {
                    eval_time: dur(eval),
                    alertname: alert.name.clone(),
                    alerts: vec![ExpectedAlert {
                        labels: expected,
                        annotations: exp_annotations,
                    }],
                }],
            }
        })
    } else {
        let rate_based = alert.kind == AlertKind::CacheHitRate;
        let warmup = if rate_based { window.seconds() } else { 0 };
        let eval = round_up(warmup + for_s + 2 * interval_s, interval_s);
        let steps = eval / interval_s + 4;
        let fired_value = fixture.value;
        let mut expected_labels = fixture.labels.clone();
        expected_labels.extend(labels.clone());
        let exp_annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| (k.clone(), expand(v, &fixture.labels, fired_value)))
            .collect();
        let mut checks = Vec::new();
        if for_s > 0 {
            // Before `for` has passed the alert is only pending: nothing fires yet.
            checks.push(TestCheck {
                eval_time: dur(round_up(warmup, interval_s)),
                alertname: alert.name.clone(),
                alerts: Vec::new(),
            });
        }
        checks.push(TestCheck {
            eval_time: dur(eval),
            alertname: alert.name.clone(),
            alerts: vec![ExpectedAlert {
                labels: expected_labels,
                annotations: exp_annotations,
            }],
        });
        Some(TestCase {
            name: alert.name.clone(),
            input: fixture
                .series
                .iter()
                .map(|(series, level)| (series.clone(), level.values(steps)))
                .collect(),
            checks,
        })
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

fn round_up(value: u64, step: u64) -> u64 {
    value.div_ceil(step) * step
}

/// Free space (of 100) half way below a ratio threshold, so the alert fires clearly.
fn threshold_half_percent(threshold: f64) -> f64 {
    (threshold * 50.0).floor()
}

/// How a fixture series moves over the test.
#[derive(Debug, Clone, Copy)]
enum Level {
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
struct Fixture {
    series: Vec<(String, Level)>,
    labels: BTreeMap<String, String>,
    /// `$value` of the alert the fixture fires.
    value: f64,
}

impl Fixture {
    /// Adds a series; a non-empty `labels` marks it as the one whose alert is expected.
    fn series(&mut self, series: String, level: Level, labels: &[(&str, &str)]) {
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

/// Expands the Prometheus template forms the typed alerts use, as Prometheus would:
/// `{{ $labels.x }}`, `{{ $value }}`, `| humanizeDuration`, `| humanizePercentage`.
pub fn expand(template: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = rest[start + 2..start + end].trim();
        let text = match inner {
            "$value" => go_value(value),
            "$value | humanizeDuration" => humanize_duration(value),
            "$value | humanizePercentage" => humanize_percentage(value),
            other => match other.strip_prefix("$labels.") {
                Some(label) => labels.get(label).cloned().unwrap_or_default(),
                None => format!("{{{{ {other} }}}}"),
            },
        };
        out.push_str(&text);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Go's `%v` of a float64 (how Prometheus prints `$value` and how promtool reads values).
pub fn go_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e21 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Go's `%.4g`.
fn go_g4(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let scientific = format!("{value:.3e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..4).contains(&exponent) {
        let mantissa = trim_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = usize::try_from(3 - exponent).unwrap_or(0);
    trim_zeros(&format!("{value:.decimals$}"))
}

fn trim_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// Prometheus' `humanizePercentage`.
pub fn humanize_percentage(value: f64) -> String {
    format!("{}%", go_g4(value * 100.0))
}

/// Prometheus' `humanizeDuration` (seconds and up; below a second in ms/us/ns).
pub fn humanize_duration(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{}s", go_g4(value));
    }
    let (sign, v) = if value < 0.0 {
        ("-", -value)
    } else {
        ("", value)
    };
    if v >= 1.0 {
        let total = v as i64;
        let (days, hours, minutes, seconds) = (
            total / 86_400,
            (total / 3600) % 24,
            (total / 60) % 60,
            total % 60,
        );
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", go_g4(v))
        };
    }
    for (unit, factor) in [("ms", 1e3), ("us", 1e6), ("ns", 1e9)] {
        if v * factor >= 1.0 || unit == "ns" {
            return format!("{sign}{}{unit}", go_g4(v * factor));
        }
    }
    String::new()
}

/// Every alert of the model that builds, in model order.
pub fn built_alerts(stack: &Stack) -> Vec<BuiltAlert> {
    stack
        .alerts
        .iter()
        .filter_map(|alert| build_alert(stack, alert).ok())
        .collect()
}

/// Whether a native service is reachable by containers at its listen address.
pub fn native_unreachable_from_containers(stack: &Stack, service: &Service) -> bool {
    service.deploy == Deploy::Native && crate::model::is_loopback(&stack.listen_address(service))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(humanize_duration(600.0), "10m 0s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(42.5), "42.5s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_percentage(0.95), "95%");
        assert_eq!(humanize_percentage(0.5), "50%");
        assert_eq!(humanize_percentage(0.12345), "12.35%");
        assert_eq!(go_g4(123456.0), "1.235e+05");
        assert_eq!(go_value(20000.0), "20000");
        assert_eq!(go_value(0.9), "0.9");
    }

    #[test]
    fn expand_fills_labels_and_value() {
        let labels = BTreeMap::from([("queue".to_string(), "q1".to_string())]);
        assert_eq!(
            expand("{{ $value }} in {{ $labels.queue }}", &labels, 3.0),
            "3 in q1"
        );
    }

    #[test]
    fn promql_strings_are_escaped() {
        assert_eq!(promql_str("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
