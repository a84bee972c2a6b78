//! The `app` kind: a service of any kind tgstack has no dedicated support for (a consumer
//! of the queue, a dashboard app, a worker). An image or a native binary, its own port,
//! literal environment, and **links**: environment variables whose values are other
//! services' addresses, URLs and secrets, resolved for the deploy of each end (a container
//! reaches `pgbouncer:6432`, a native process `127.0.0.1:6434`), so they can never point
//! at a port that does not answer from where the app runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Endpoint, Kind, Service, Stack, Unreachable};
use crate::catalog::{Metric, MetricType};

/// Settings of an `app` service.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Arguments: the container's command (overrides the image's), or what the native
    /// unit passes to `native.binary`. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(crate::model::text::TEXT)))]
    pub command: Vec<String>,
    /// Environment variables with literal values. A credential never goes here (TG104):
    /// link it from `[secrets]` in `links`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::model::text::text_map")]
    pub env: BTreeMap<String, String>,
    /// Environment variables whose values tgstack derives from other services and secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, Link>,
    /// Services the app needs running first (compose `depends_on`, systemd `After=`).
    /// Every service a link names is a dependency already.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(crate::model::text::NAME)))]
    pub depends_on: Vec<String>,
    /// Container healthcheck: a command run inside the container, exec form
    /// (`["/app/healthcheck"]`). Default none (then `service_started` is all a dependant
    /// can wait for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(crate::model::text::TEXT)))]
    pub healthcheck: Vec<String>,
    /// The app's Prometheus endpoint on its `port`, and the families it serves there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<AppMetrics>,
}

/// One derived environment variable: exactly one of `secret`, `host`, `port`, `address`,
/// `url`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The value of a secret of `[secrets]`, by id (never written into the rendered tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::model::text::ID))]
    pub secret: Option<String>,
    /// The host name the app reaches this service at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::model::text::NAME))]
    pub host: Option<String>,
    /// The port the app reaches this service at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::model::text::NAME))]
    pub port: Option<String>,
    /// `host:port` of this service as the app reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::model::text::NAME))]
    pub address: Option<String>,
    /// A URL of this service without a password: `postgres://USER@host:port/DATABASE` for
    /// a postgres or pgbouncer, `redis://host:port` for redis, `amqp://USER@host:port/VHOST`
    /// for rabbitmq, `http://host:port` for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::model::text::NAME))]
    pub url: Option<String>,
    /// The database role or broker user in the URL (`url` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::model::text::NAME))]
    pub user: Option<String>,
}

/// What a link derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Secret,
    Host,
    Port,
    Address,
    Url,
}

impl Link {
    /// (what, the service or secret it names) for each of the exclusive fields set.
    pub fn targets(&self) -> Vec<(LinkKind, &str)> {
        [
            (LinkKind::Secret, &self.secret),
            (LinkKind::Host, &self.host),
            (LinkKind::Port, &self.port),
            (LinkKind::Address, &self.address),
            (LinkKind::Url, &self.url),
        ]
        .into_iter()
        .filter_map(|(kind, value)| value.as_deref().map(|v| (kind, v)))
        .collect()
    }

    /// The service this link reaches (None for a secret, or when not exactly one field
    /// is set: TG005 reports that).
    pub fn service(&self) -> Option<&str> {
        match self.targets().as_slice() {
            [(kind, name)] if *kind != LinkKind::Secret => Some(name),
            _ => None,
        }
    }
}

/// The Prometheus endpoint of an app.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppMetrics {
    /// Path on the app's `port`. Default `/metrics`.
    #[serde(default = "default_metrics_path")]
    #[schemars(pattern(crate::model::text::PATH))]
    pub path: String,
    /// The families the app serves: alerts and dashboards may use these and no others.
    pub families: Vec<Family>,
}

/// One metric family an app declares.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// Family name (`consumer_messages_total`).
    #[schemars(pattern(crate::model::text::SQL_IDENT))]
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    #[serde(rename = "type")]
    pub kind: FamilyType,
    /// What it measures.
    #[serde(default)]
    #[schemars(pattern(crate::model::text::TEXT))]
    pub help: String,
    /// Its labels.
    #[serde(default)]
    #[schemars(inner(pattern(crate::model::text::SQL_IDENT)))]
    pub labels: Vec<String>,
}

/// Prometheus metric type of a declared family.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

/// The declared families of an app as catalog entries. Catalog entries are `'static`
/// (the exporters' lists are compiled in), so a declared list is interned: each distinct
/// list is kept once per process however often a model is checked.
pub fn catalog(service: &Service) -> &'static [Metric] {
    let Some(metrics) = service.app.as_ref().and_then(|a| a.metrics.as_ref()) else {
        return &[];
    };
    let key = format!("{:?}", metrics.families);
    let mut catalogs = CATALOGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = catalogs.get(&key) {
        return found;
    }
    let entries: Vec<Metric> = metrics
        .families
        .iter()
        .map(|f| Metric {
            name: intern(&f.name),
            kind: match f.kind {
                FamilyType::Counter => MetricType::Counter,
                FamilyType::Gauge => MetricType::Gauge,
                FamilyType::Histogram => MetricType::Histogram,
                FamilyType::Summary => MetricType::Summary,
                FamilyType::Untyped => MetricType::Untyped,
            },
            help: intern(&f.help),
            labels: intern_list(&f.labels),
        })
        .collect();
    let leaked: &'static [Metric] = Box::leak(entries.into_boxed_slice());
    catalogs.insert(key, leaked);
    leaked
}

static CATALOGS: LazyLock<Mutex<HashMap<String, &'static [Metric]>>> =
    LazyLock::new(Default::default);
static STRINGS: LazyLock<Mutex<HashMap<String, &'static str>>> = LazyLock::new(Default::default);
static LISTS: LazyLock<Mutex<HashMap<Vec<String>, &'static [&'static str]>>> =
    LazyLock::new(Default::default);

fn intern(text: &str) -> &'static str {
    let mut strings = STRINGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = strings.get(text) {
        return found;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    strings.insert(text.to_owned(), leaked);
    leaked
}

fn intern_list(items: &[String]) -> &'static [&'static str] {
    let mut lists = LISTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = lists.get(items) {
        return found;
    }
    let leaked: &'static [&'static str] = Box::leak(
        items
            .iter()
            .map(|i| intern(i))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    lists.insert(items.to_vec(), leaked);
    leaked
}

/// A link's value as the app at `name` sees it; secrets resolve to `Secret(id)`, which
/// each renderer writes its own way (compose interpolation, the unit's EnvironmentFile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkValue {
    Text(String),
    Secret(String),
}

/// Why a link cannot be resolved (the model rules report each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// Not exactly one of secret/host/port/address/url.
    Shape,
    Unreachable(Unreachable),
    /// `user` names no role of the database, or no user of the broker.
    UnknownUser,
}

/// Resolves link `link` of app `app`.
pub fn resolve(stack: &Stack, app: &Service, link: &Link) -> Result<LinkValue, LinkError> {
    let [(kind, target)] = link.targets()[..] else {
        return Err(LinkError::Shape);
    };
    if kind == LinkKind::Secret {
        return Ok(LinkValue::Secret(target.to_string()));
    }
    let endpoint = stack.reach(app, target).map_err(LinkError::Unreachable)?;
    Ok(LinkValue::Text(match kind {
        LinkKind::Host => endpoint.host,
        LinkKind::Port => endpoint.port.to_string(),
        LinkKind::Address => endpoint.to_string(),
        LinkKind::Url => url(stack, target, &endpoint, link.user.as_deref())?,
        LinkKind::Secret => unreachable!("handled above"),
    }))
}

/// The URL of service `target` at `endpoint`, for `user`.
fn url(
    stack: &Stack,
    target: &str,
    endpoint: &Endpoint,
    user: Option<&str>,
) -> Result<String, LinkError> {
    let service = stack
        .service(target)
        .ok_or(LinkError::Unreachable(Unreachable::UnknownService))?;
    let who = |known: bool| match user {
        Some(user) if known => Ok(format!("{user}@")),
        Some(_) => Err(LinkError::UnknownUser),
        None => Ok(String::new()),
    };
    Ok(match service.kind {
        Kind::Postgres | Kind::Pgbouncer => {
            let (_, pg) = stack.database_of(target).ok_or(LinkError::UnknownUser)?;
            let known = user.is_some_and(|u| pg.roles.contains_key(u) || u == pg.superuser);
            format!("postgres://{}{endpoint}/{}", who(known)?, pg.database)
        }
        Kind::Rabbitmq => {
            let broker = service.rabbitmq.as_ref();
            let known = user.is_some_and(|u| broker.is_some_and(|b| b.users.contains_key(u)));
            let vhost = broker.map_or_else(super::types::default_vhost, |b| b.vhost.clone());
            format!("amqp://{}{endpoint}/{vhost}", who(known)?)
        }
        Kind::Redis => format!("redis://{}{endpoint}", who(false)?),
        _ => format!("http://{}{endpoint}", who(false)?),
    })
}

/// The environment of app `name` as rendered for its deploy: literal `env`, then every
/// link resolved (links that cannot be resolved are left out; the model rules report
/// them).
pub fn environment(stack: &Stack, service: &Service) -> BTreeMap<String, LinkValue> {
    let Some(app) = &service.app else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<String, LinkValue> = app
        .env
        .iter()
        .map(|(k, v)| (k.clone(), LinkValue::Text(v.clone())))
        .collect();
    for (var, link) in &app.links {
        if let Ok(value) = resolve(stack, service, link) {
            out.insert(var.clone(), value);
        }
    }
    out
}

/// Every service app `service` depends on: its `depends_on` and the services its links
/// reach, sorted and once each.
pub fn dependencies(service: &Service) -> Vec<String> {
    let Some(app) = &service.app else {
        return Vec::new();
    };
    let mut all: Vec<String> = app.depends_on.clone();
    all.extend(
        app.links
            .values()
            .filter_map(Link::service)
            .map(String::from),
    );
    all.sort();
    all.dedup();
    all
}

/// The secret links of a native app: variable -> secret id, for its EnvironmentFile.
pub fn secret_links(service: &Service) -> BTreeMap<String, String> {
    let Some(app) = &service.app else {
        return BTreeMap::new();
    };
    app.links
        .iter()
        .filter_map(|(var, link)| match link.targets()[..] {
            [(LinkKind::Secret, id)] => Some((var.clone(), id.to_string())),
            _ => None,
        })
        .collect()
}
