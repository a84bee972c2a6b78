//! One builder per alert kind: the PromQL expression over catalog metrics, the scrape
//! jobs it reads, the annotations, and the fixture whose series fire it.

use super::promtool::{Fixture, Level};
use super::watched::{named_or_only, require_exporter, unknown_service, watched};
use super::{AlertProblem, go_value, promql_str};
use crate::model::{Alert, AlertKind, Kind, Stack, kinds, units::Duration};

/// An alert being built, with what its kind's expression and text need.
pub(super) struct AlertInput<'a> {
    pub(super) stack: &'a Stack,
    pub(super) alert: &'a Alert,
    /// The alert's threshold, or its kind's default.
    pub(super) threshold: f64,
    /// Rate window of `cache-hit-rate`.
    pub(super) window: Duration,
    /// `$value` as an annotation template in the kind's unit.
    pub(super) value: &'static str,
    /// The threshold as a description prints it.
    pub(super) threshold_text: String,
    /// ` for 5m` when the alert waits before firing, else empty; ends each description.
    pub(super) for_phrase: String,
}

/// What a kind builds: the rule's expression and text, and the fixture that fires it.
pub(super) struct KindRule {
    pub(super) expr: String,
    /// Scrape jobs whose catalogs the expression's metrics must come from.
    pub(super) jobs: Vec<String>,
    pub(super) summary: String,
    pub(super) description: String,
    /// Series of the promtool case; empty for a custom alert (its test is in the model).
    pub(super) fixture: Fixture,
}

/// The rule of the alert's kind, or `None` with the reasons in `problems`.
pub(super) fn build_kind(
    input: &AlertInput<'_>,
    problems: &mut Vec<AlertProblem>,
) -> Option<KindRule> {
    match input.alert.kind {
        AlertKind::ServiceDown => service_down(input, problems),
        AlertKind::IngestionLag => ingestion_lag(input, problems),
        AlertKind::RedisDown => redis_down(input, problems),
        AlertKind::PoolExhausted => pool_exhausted(input, problems),
        AlertKind::QueueBacklog => queue_backlog(input, problems),
        AlertKind::CacheHitRate => cache_hit_rate(input, problems),
        AlertKind::DiskSpace => disk_space(input, problems),
        AlertKind::MemoryHigh => memory_high(input, problems),
        AlertKind::Custom => custom(input, problems),
    }
}

fn service_down(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let (stack, alert, for_phrase) = (input.stack, input.alert, &input.for_phrase);
    let Some(name) = &alert.service else {
        problems.push(AlertProblem {
            rule: "TG502",
            field: "service",
            message: format!(
                "alert `{}` does not say which service it watches",
                alert.name
            ),
            help: "set service".into(),
        });
        return None;
    };
    let Some(service) = stack.service(name) else {
        problems.push(unknown_service(alert, name));
        return None;
    };
    if kinds::scrape_endpoint(service).is_none() {
        problems.push(AlertProblem {
            rule: "TG501",
            field: "service",
            message: format!(
                "alert `{}` watches `{name}`, which Prometheus does not scrape (a `{}` service exposes no metrics)",
                alert.name,
                service.kind.as_str()
            ),
            help: "watch its exporter, or use a kind that reads the exporter (e.g. redis-down)"
                .into(),
        });
        return None;
    }
    let job = promql_str(name);
    let instance = format!("{name}:1");
    let mut fixture = Fixture::default();
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
    Some(KindRule {
        expr: format!("up{{job={job}}} == 0"),
        jobs: vec![name.clone()],
        summary: "Service {{ $labels.job }} is down".to_string(),
        description: format!(
            "Prometheus could not scrape {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}){for_phrase}."
        ),
        fixture,
    })
}

fn ingestion_lag(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let AlertInput {
        threshold,
        value,
        threshold_text: t_text,
        for_phrase,
        ..
    } = input;
    let (name, _) = watched(input.stack, input.alert, &[Kind::Gateway], problems)?;
    let job = promql_str(name);
    let metric = "tg_gateway_ingestion_lag_seconds";
    let mut fixture = Fixture::default();
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
    Some(KindRule {
        expr: format!(
            "max by (channel) ({metric}{{job={job}}}) > {}",
            go_value(*threshold)
        ),
        jobs: vec![name.to_string()],
        summary: "Ingestion of channel {{ $labels.channel }} lags behind".to_string(),
        description: format!(
            "The newest message of channel {{{{ $labels.channel }}}} was stored {value} after Telegram sent it (threshold {t_text}){for_phrase}."
        ),
        fixture,
    })
}

fn redis_down(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let (stack, alert, for_phrase) = (input.stack, input.alert, &input.for_phrase);
    let (name, _) = watched(stack, alert, &[Kind::Redis], problems)?;
    let exporter = require_exporter(stack, alert, Kind::RedisExporter, name, problems)?;
    let job = promql_str(exporter);
    let instance = format!("{exporter}:1");
    let mut fixture = Fixture::default();
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
    Some(KindRule {
        expr: format!("redis_up{{job={job}}} == 0"),
        jobs: vec![exporter.to_string()],
        summary: format!("Redis {name} is down"),
        description: format!(
            "{exporter} cannot reach Redis {name} ({{{{ $labels.instance }}}}){for_phrase}."
        ),
        fixture,
    })
}

fn pool_exhausted(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let AlertInput {
        stack,
        alert,
        threshold,
        value,
        threshold_text: t_text,
        for_phrase,
        ..
    } = input;
    let (name, service) = watched(stack, alert, &[Kind::Pgbouncer], problems)?;
    let exporter = require_exporter(stack, alert, Kind::PgbouncerExporter, name, problems)?;
    let job = promql_str(exporter);
    let metric = "pgbouncer_pools_client_waiting_connections";
    let pool = service
        .pgbouncer
        .as_ref()
        .map(|b| {
            format!(
                " (pool size {} + reserve {})",
                b.default_pool_size, b.reserve_pool_size
            )
        })
        .unwrap_or_default();
    let mut fixture = Fixture::default();
    fixture.series(
        format!("{metric}{{job={job}, database=\"app\", user=\"busy\"}}"),
        Level::Fire((threshold + 5.0).floor()),
        &[("database", "app"), ("user", "busy")],
    );
    fixture.series(
        format!("{metric}{{job={job}, database=\"app\", user=\"idle\"}}"),
        Level::Quiet(0.0_f64.min(*threshold)),
        &[],
    );
    Some(KindRule {
        expr: format!(
            "max by (database, user) ({metric}{{job={job}}}) > {}",
            go_value(*threshold)
        ),
        jobs: vec![exporter.to_string()],
        summary: format!(
            "PgBouncer {name}: pool {{{{ $labels.database }}}}/{{{{ $labels.user }}}} is exhausted"
        ),
        description: format!(
            "{value} clients wait for a server connection of pool {{{{ $labels.database }}}}/{{{{ $labels.user }}}}{pool}; threshold {t_text}{for_phrase}."
        ),
        fixture,
    })
}

fn queue_backlog(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let AlertInput {
        alert,
        threshold,
        value,
        threshold_text: t_text,
        for_phrase,
        ..
    } = input;
    let (name, service) = watched(input.stack, alert, &[Kind::Rabbitmq], problems)?;
    let rabbit = service.rabbitmq.as_ref()?;
    let job = promql_str(name);
    let vhost = promql_str(&rabbit.vhost);
    let metric = "rabbitmq_queue_messages_ready";
    let queue_filter = alert
        .queue
        .as_ref()
        .map(|q| format!(", queue={}", promql_str(q)))
        .unwrap_or_default();
    let queue = alert.queue.clone().unwrap_or_else(|| "backlogged".into());
    let backlog = Level::Fire((threshold * 2.0).max(1.0).round());
    let mut fixture = Fixture::default();
    fixture.series(
        format!(
            "{metric}{{job={job}, vhost={vhost}, queue={}}}",
            promql_str(&queue)
        ),
        backlog,
        &[("vhost", &rabbit.vhost), ("queue", &queue)],
    );
    // The same backlog in another vhost must not fire.
    fixture.series(
        format!(
            "{metric}{{job={job}, vhost=\"other-vhost\", queue={}}}",
            promql_str(&queue)
        ),
        backlog,
        &[],
    );
    Some(KindRule {
        expr: format!(
            "max by (vhost, queue) ({metric}{{job={job}, vhost={vhost}{queue_filter}}}) > {}",
            go_value(*threshold)
        ),
        jobs: vec![name.to_string()],
        summary: "Queue {{ $labels.queue }} is building up".to_string(),
        description: format!(
            "{value} messages are ready in {{{{ $labels.vhost }}}}/{{{{ $labels.queue }}}} and not consumed (threshold {t_text}){for_phrase}."
        ),
        fixture,
    })
}

/// Of a Postgres database (buffer cache) or a Redis (keyspace), through its exporter, or
/// of an API's read cache, from the API's own metrics.
fn cache_hit_rate(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let (stack, alert) = (input.stack, input.alert);
    let kinds = [Kind::Postgres, Kind::Redis, Kind::Api];
    let (name, service) = watched(stack, alert, &kinds, problems)?;
    if service.kind == Kind::Api {
        // An API whose cache is off has no hit rate: the alert is not rendered, and that
        // is no problem of the model.
        service.api.as_ref()?.cache.as_ref().filter(|c| c.enabled)?;
        return Some(read_cache_hit_rate(input, name));
    }
    let exporter_kind = if service.kind == Kind::Postgres {
        Kind::PostgresExporter
    } else {
        Kind::RedisExporter
    };
    let exporter = require_exporter(stack, alert, exporter_kind, name, problems)?;
    // Hits and misses per interval whose ratio is half the threshold.
    let hits = (input.threshold * 50.0).floor();
    let misses = 100.0 - hits;
    let mut rule = match &service.postgres {
        Some(pg) => buffer_cache_hit_rate(input, name, exporter, &pg.database, hits, misses),
        None => keyspace_hit_rate(input, name, exporter, hits, misses),
    };
    rule.fixture.value = hits / 100.0;
    Some(rule)
}

fn buffer_cache_hit_rate(
    input: &AlertInput<'_>,
    name: &str,
    exporter: &str,
    database: &str,
    hits: f64,
    misses: f64,
) -> KindRule {
    let AlertInput {
        threshold,
        value,
        threshold_text: t_text,
        for_phrase,
        ..
    } = input;
    let w = input.window.prometheus();
    let job = promql_str(exporter);
    let db = promql_str(database);
    let hit = format!("pg_stat_database_blks_hit{{job={job}, datname={db}}}");
    let read = format!("pg_stat_database_blks_read{{job={job}, datname={db}}}");
    let mut fixture = Fixture::default();
    fixture.series(hit.clone(), Level::Rate(hits), &[("datname", database)]);
    fixture.series(read.clone(), Level::Rate(misses), &[]);
    fixture.series(
        format!("pg_stat_database_blks_hit{{job={job}, datname=\"other\"}}"),
        Level::Rate(hits),
        &[],
    );
    fixture.series(
        format!("pg_stat_database_blks_read{{job={job}, datname=\"other\"}}"),
        Level::Rate(misses),
        &[],
    );
    let rate = |s: &str| format!("sum by (datname) (rate({s}[{w}]))");
    KindRule {
        expr: format!(
            "{} / ({} + {}) < {}",
            rate(&hit),
            rate(&hit),
            rate(&read),
            go_value(*threshold)
        ),
        jobs: vec![exporter.to_string()],
        summary: format!("Low buffer cache hit rate on {name}"),
        description: format!(
            "Only {value} of block reads of {{{{ $labels.datname }}}} hit the buffer cache over {w} (threshold {t_text}){for_phrase}."
        ),
        fixture,
    }
}

fn keyspace_hit_rate(
    input: &AlertInput<'_>,
    name: &str,
    exporter: &str,
    hits: f64,
    misses: f64,
) -> KindRule {
    let AlertInput {
        value,
        threshold_text: t_text,
        for_phrase,
        ..
    } = input;
    let w = input.window.prometheus();
    let counters = HitCounters {
        job: exporter,
        hits: "redis_keyspace_hits_total",
        misses: "redis_keyspace_misses_total",
        miss_labels: "",
        other_job: "other-exporter",
    };
    let (expr, fixture) = counters.ratio_below(input, hits, misses);
    KindRule {
        expr,
        jobs: vec![exporter.to_string()],
        summary: format!("Low cache hit rate on Redis {name}"),
        description: format!(
            "Only {value} of key lookups on {name} found their key over {w} (threshold {t_text}){for_phrase}."
        ),
        fixture,
    }
}

/// Of the read cache of API `name`: pages served from Redis among those it could serve.
fn read_cache_hit_rate(input: &AlertInput<'_>, name: &str) -> KindRule {
    let AlertInput {
        threshold,
        value,
        threshold_text: t_text,
        for_phrase,
        ..
    } = input;
    let w = input.window.prometheus();
    let counters = HitCounters {
        job: name,
        hits: "tg_api_cache_hits_total",
        misses: "tg_api_cache_misses_total",
        miss_labels: ", reason=\"cold\"",
        other_job: "other-api",
    };
    // Hits and misses per interval whose ratio is half the threshold.
    let hits = (threshold * 50.0).floor();
    let (expr, mut fixture) = counters.ratio_below(input, hits, 100.0 - hits);
    fixture.value = hits / 100.0;
    KindRule {
        expr,
        jobs: vec![name.to_string()],
        summary: format!("Low read cache hit rate on {name}"),
        description: format!(
            "Only {value} of the newest pages {name} could serve from its read cache came from it over {w} (threshold {t_text}){for_phrase}."
        ),
        fixture,
    }
}

/// A hit and a miss counter of one scrape job.
struct HitCounters<'a> {
    job: &'a str,
    hits: &'a str,
    misses: &'a str,
    /// Labels the fixture's miss series carry besides `job` (`, name="value"`).
    miss_labels: &'a str,
    /// A job whose equally low ratio must not fire the alert.
    other_job: &'a str,
}

impl HitCounters<'_> {
    /// `hits / (hits + misses) < threshold` per job over the window, and the fixture
    /// (`hits` and `misses` per interval) that fires it.
    fn ratio_below(&self, input: &AlertInput<'_>, hits: f64, misses: f64) -> (String, Fixture) {
        let w = input.window.prometheus();
        let job = promql_str(self.job);
        let other = promql_str(self.other_job);
        let hit = format!("{}{{job={job}}}", self.hits);
        let miss = format!("{}{{job={job}}}", self.misses);
        let mut fixture = Fixture::default();
        fixture.series(hit.clone(), Level::Rate(hits), &[("job", self.job)]);
        fixture.series(
            format!("{}{{job={job}{}}}", self.misses, self.miss_labels),
            Level::Rate(misses),
            &[],
        );
        fixture.series(
            format!("{}{{job={other}}}", self.hits),
            Level::Rate(hits),
            &[],
        );
        fixture.series(
            format!("{}{{job={other}{}}}", self.misses, self.miss_labels),
            Level::Rate(misses),
            &[],
        );
        let rate = |s: &str| format!("sum by (job) (rate({s}[{w}]))");
        let expr = format!(
            "{} / ({} + {}) < {}",
            rate(&hit),
            rate(&hit),
            rate(&miss),
            go_value(input.threshold)
        );
        (expr, fixture)
    }
}

fn disk_space(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let AlertInput {
        threshold,
        value,
        threshold_text: t_text,
        for_phrase,
        ..
    } = input;
    let exporter = named_or_only(input.stack, input.alert, Kind::NodeExporter, problems)?;
    let job = promql_str(exporter);
    let mountpoint = input.alert.mountpoint.clone().unwrap_or_else(|| "/".into());
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
    // Free space (of 100) half way below the threshold, so the alert fires clearly; the
    // same on another mount point must not fire.
    let free = (threshold * 50.0).floor();
    let other = if mountpoint == "/boot" {
        "/srv"
    } else {
        "/boot"
    };
    let mut fixture = Fixture::default();
    for (mount, labels) in [(mountpoint.as_str(), &labels[..]), (other, &[])] {
        fixture.series(
            series("node_filesystem_avail_bytes", mount),
            Level::Fire(free),
            labels,
        );
        fixture.series(
            series("node_filesystem_size_bytes", mount),
            Level::Constant(100.0),
            &[],
        );
    }
    fixture.value = free / 100.0;
    Some(KindRule {
        expr: format!(
            "node_filesystem_avail_bytes{sel} / node_filesystem_size_bytes{sel} < {}",
            go_value(*threshold)
        ),
        jobs: vec![exporter.to_string()],
        summary: "Low disk space on {{ $labels.mountpoint }}".to_string(),
        description: format!(
            "Only {value} of {{{{ $labels.mountpoint }}}} ({{{{ $labels.device }}}}) is free (threshold {t_text}){for_phrase}."
        ),
        fixture,
    })
}

fn memory_high(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let AlertInput {
        threshold,
        value,
        threshold_text: t_text,
        for_phrase,
        ..
    } = input;
    let exporter = named_or_only(input.stack, input.alert, Kind::Cadvisor, problems)?;
    let job = promql_str(exporter);
    let sel = format!("{{job={job}, name!=\"\"}}");
    let container = |name: &str| {
        format!(
            "{{job={job}, name={}, id=\"/docker/{name}\"}}",
            promql_str(name)
        )
    };
    // Over the limit, under it, and without a limit (0): only the first fires.
    let over = (threshold * 100.0).floor() + ((100.0 - threshold * 100.0) / 2.0).ceil();
    let mut fixture = Fixture::default();
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
    Some(KindRule {
        expr: format!(
            "max by (name) (container_memory_working_set_bytes{sel} / (container_spec_memory_limit_bytes{sel} > 0)) > {}",
            go_value(*threshold)
        ),
        jobs: vec![exporter.to_string()],
        summary: "Container {{ $labels.name }} is near its memory limit".to_string(),
        description: format!(
            "{{{{ $labels.name }}}} uses {value} of its memory limit (threshold {t_text}){for_phrase}."
        ),
        fixture,
    })
}

/// The model's own expression and annotations; its test is the model's too.
fn custom(input: &AlertInput<'_>, problems: &mut Vec<AlertProblem>) -> Option<KindRule> {
    let alert = input.alert;
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
        return None;
    };
    if let Err(error) = promql_parser::parser::parse(&expr) {
        problems.push(AlertProblem {
            rule: "TG502",
            field: "expr",
            message: format!("expr of alert `{}` is not PromQL: {error}", alert.name),
            help: "fix the expression (promtool check rules says the same)".into(),
        });
    }
    Some(KindRule {
        expr,
        jobs: Vec::new(),
        summary,
        description,
        fixture: Fixture::default(),
    })
}
