//! The REST API (`tg-gateway api`): messages and channels read through PgBouncer, behind
//! `X-API-Key`; `/health` and `/metrics` are open. Every route is listed once in
//! [`routes`]; the router is built from that list and a test checks it against
//! `gateway/openapi.yaml` in both directions.

pub mod auth;
pub mod cursor;
mod handlers;
pub mod metric;
pub(crate) mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_postgres::NoTls;

pub use auth::{ApiKey, ApiKeyError};

/// What the API needs, resolved from the model by [`crate::config`].
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// Connection to the database service of the API (PgBouncer in the reference stack).
    pub database: tokio_postgres::Config,
    /// Schema of the stack's tables (`services.<pg>.postgres.schema`).
    pub schema: String,
    pub api_key: ApiKey,
    pub request_timeout: Duration,
    pub max_page_size: u32,
    pub default_page_size: u32,
    /// Database connections the API keeps at most.
    pub pool_size: usize,
    /// The read cache, when the model turns it on.
    pub cache: Option<crate::config::CacheTarget>,
}

/// Database connections the API keeps at most: reads are short, and PgBouncer multiplexes
/// them onto its own pool anyway.
const POOL_SIZE: usize = 16;

impl ApiConfig {
    /// From the model's `api` service of `config`. The key is checked first: without it the
    /// API refuses to start, naming the variable and never a value.
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<ApiConfig> {
        let settings =
            config.service().api.as_ref().ok_or_else(|| {
                anyhow::anyhow!("service `{}` has no [api] settings", config.name)
            })?;
        let secret_id = &settings.api_key.secret;
        let env = config
            .stack()
            .secrets
            .get(secret_id)
            .map(|s| s.env.clone())
            .ok_or_else(|| anyhow::anyhow!("secret `{secret_id}` is not declared in [secrets]"))?;
        let api_key = ApiKey::from_env(&env, secret_id, |_| {
            config
                .secret(&settings.api_key)
                .ok()
                .map(|value| value.expose().to_string())
        })?;
        let database = config.database(&settings.database, &settings.db_role)?;
        let cache = match settings.cache.as_ref().filter(|c| c.enabled) {
            Some(cache) => Some(config.cache_target(cache, &database)?),
            None => None,
        };
        Ok(ApiConfig {
            listen: config.listen_addr(),
            database: database.config,
            schema: database.schema,
            api_key,
            request_timeout: Duration::from_millis(settings.request_timeout.millis()),
            max_page_size: settings.max_page_size,
            default_page_size: settings.default_page_size,
            pool_size: POOL_SIZE,
            cache,
        })
    }
}

/// Shared by every request.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) pool: Pool,
    pub(crate) api_key: ApiKey,
    pub(crate) sql: Arc<handlers::Statements>,
    pub(crate) max_page_size: u32,
    pub(crate) default_page_size: u32,
    pub(crate) request_timeout: Duration,
    pub(crate) metrics: Option<PrometheusHandle>,
    pub(crate) cache: Option<Arc<crate::cache::CacheReader>>,
}

impl ApiState {
    /// Builds the state; no connection is opened until the first request needs one.
    pub fn new(config: &ApiConfig, metrics: Option<PrometheusHandle>) -> anyhow::Result<Self> {
        let manager = Manager::from_config(
            config.database.clone(),
            NoTls,
            // Fast recycling sends nothing on reuse: no session state survives PgBouncer's
            // transaction pooling anyway.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // No pool timeouts of its own: the request timeout bounds every wait, and a pool
        // timeout racing it would turn "timed out" into "unavailable" at random.
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()?;
        Ok(ApiState {
            pool,
            api_key: config.api_key.clone(),
            sql: Arc::new(handlers::Statements::new(&config.schema)),
            max_page_size: config.max_page_size.max(1),
            default_page_size: config
                .default_page_size
                .clamp(1, config.max_page_size.max(1)),
            request_timeout: config.request_timeout,
            metrics,
            cache: match &config.cache {
                Some(target) => Some(Arc::new(crate::cache::CacheReader::new(target.clone())?)),
                None => None,
            },
        })
    }
}

/// One route of the API.
pub struct Route {
    pub method: Method,
    /// Path template in axum syntax, which is also OpenAPI's: `/api/messages/{channel}/{id}`.
    pub path: &'static str,
    /// Whether `X-API-Key` is required.
    pub authenticated: bool,
    handler: MethodRouter<ApiState>,
}

/// Every route of the API: the single source the router is built from.
pub fn routes() -> Vec<Route> {
    fn route(
        method: Method,
        path: &'static str,
        authenticated: bool,
        handler: MethodRouter<ApiState>,
    ) -> Route {
        Route {
            method,
            path,
            authenticated,
            handler,
        }
    }
    use handlers::*;
    vec![
        route(
            Method::GET,
            "/api/messages",
            true,
            on(MethodFilter::GET, list_messages),
        ),
        route(
            Method::GET,
            "/api/messages/{channel}/{id}",
            true,
            on(MethodFilter::GET, get_message),
        ),
        route(
            Method::GET,
            "/api/channels",
            true,
            on(MethodFilter::GET, list_channels),
        ),
        route(Method::GET, "/health", false, on(MethodFilter::GET, health)),
        route(
            Method::GET,
            "/metrics",
            false,
            on(MethodFilter::GET, metrics_text),
        ),
    ]
}

/// The router: authenticated routes behind the key check, every route timed out after
/// the model's `request_timeout` and counted by route template.
pub fn router(state: ApiState) -> Router {
    let mut open = Router::new();
    let mut guarded = Router::new();
    for route in routes() {
        if route.authenticated {
            guarded = guarded.route(route.path, route.handler);
        } else {
            open = open.route(route.path, route.handler);
        }
    }
    // route_layer: the key is checked only on matched routes, so unknown paths stay 404.
    let guarded = guarded.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    open.merge(guarded)
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe_and_time_out,
        ))
        .with_state(state)
}

/// Serves the API until ctrl-c / SIGTERM.
pub async fn serve(config: ApiConfig, metrics: Option<PrometheusHandle>) -> anyhow::Result<()> {
    let state = ApiState::new(&config, metrics)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", config.listen))?;
    tracing::info!(address = %config.listen, "REST API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// JSON error body: `{"error": "..."}`.
pub(crate) fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

async fn no_route() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such route")
}

/// Counts and times every request by route template (never the raw path, which would make
/// a label per message id), and answers 503 when the request outlives `request_timeout`.
async fn observe_and_time_out(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = std::time::Instant::now();
    let response = match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_response(StatusCode::SERVICE_UNAVAILABLE, "request timed out"),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics::counter!(metric::REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(metric::REQUEST_DURATION, "method" => method, "route" => route)
        .record(elapsed);
    response
}
