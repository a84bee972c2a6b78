//! Route handlers. Every statement is sent unnamed (`query_typed` / simple query): PgBouncer
//! in transaction mode hands each statement to any server connection, so a named prepared
//! statement would not exist where it runs next.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::{ToSql, Type};

use super::cursor::{self, Cursor, Order};
use super::view::{MessagePage, MessageView};
use super::{ApiState, error_response, metric};
use crate::cache::Lookup;
use crate::sql;

/// The API's statements, prepared once for the schema.
pub(crate) struct Statements {
    messages: String,
    message: String,
    channels: String,
}

impl Statements {
    pub(crate) fn new(schema: &str) -> Self {
        Statements {
            messages: sql::prepare(sql::API_MESSAGES, schema),
            message: sql::prepare(sql::API_MESSAGE, schema),
            channels: sql::prepare(sql::API_CHANNELS, schema),
        }
    }
}

/// Query parameters of `GET /api/messages`, in the order `openapi.yaml` lists them.
const LIST_PARAMS: [&str; 7] = [
    "channel",
    "since",
    "until",
    "limit",
    "cursor",
    "order",
    "include_deleted",
];

/// Query string of `GET /api/messages`, read by hand rather than by serde so that every
/// error names the parameter and never repeats what the client sent. Unknown parameters
/// are rejected so a typo (`channel_id=`) never silently returns everything.
#[derive(Debug, Default)]
pub(crate) struct ListParams {
    channel: Option<i64>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    cursor: Option<String>,
    order: Option<Order>,
    include_deleted: Option<bool>,
}

impl ListParams {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, String> {
        let mut params = ListParams::default();
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in pairs {
            let Some(&name) = LIST_PARAMS.iter().find(|known| **known == name) else {
                return Err(format!(
                    "unknown query parameter (accepted: {})",
                    LIST_PARAMS.join(", ")
                ));
            };
            if !seen.insert(name) {
                return Err(format!("`{name}` is given more than once"));
            }
            match name {
                "channel" => {
                    let id = value.parse().map_err(
                        |_| "`channel` must be an integer (as stored, e.g. -1001234567890)",
                    )?;
                    params.channel = Some(id);
                }
                "since" => params.since = Some(parse_time(name, &value)?),
                "until" => params.until = Some(parse_time(name, &value)?),
                "limit" => {
                    let limit = value
                        .parse()
                        .map_err(|_| "`limit` must be a positive integer")?;
                    params.limit = Some(limit);
                }
                // Empty means "from the start", as if the parameter were absent.
                "cursor" => params.cursor = (!value.is_empty()).then_some(value),
                "order" => {
                    params.order = Some(match value.as_str() {
                        "asc" => Order::Asc,
                        "desc" => Order::Desc,
                        _ => return Err("`order` must be `asc` or `desc`".into()),
                    });
                }
                _ => {
                    params.include_deleted = Some(match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err("`include_deleted` must be `true` or `false`".into()),
                    });
                }
            }
        }
        Ok(params)
    }
}

/// An RFC 3339 time within [`cursor::in_range`]: a time PostgreSQL cannot store is the
/// client's mistake (400), never a database failure.
fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|time| time.with_timezone(&Utc))
        .filter(|time| cursor::in_range(*time))
        .ok_or_else(|| {
            format!(
                "`{name}` must be an RFC 3339 date-time between years 0000 and 9999 \
                 (e.g. 2026-01-01T00:00:00Z)"
            )
        })
}

/// Owned statement parameters with their types (sent unnamed, so types travel with them).
type Params = Vec<(Box<dyn ToSql + Sync + Send>, Type)>;

/// A validated listing request.
#[derive(Debug, PartialEq)]
struct Listing {
    channel: Option<i64>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: u32,
    after: Option<Cursor>,
    order: Order,
    include_deleted: bool,
}

impl Listing {
    /// Checks the parameters (an empty or reversed `since`..`until` is a valid range that
    /// holds nothing, so it answers an empty page): a `limit` above `max_page_size` is rejected (400), not
    /// clamped, so a client never mistakes a short page for the end of the data.
    fn parse(params: ListParams, default_limit: u32, max_limit: u32) -> Result<Self, String> {
        let limit = params.limit.unwrap_or(default_limit);
        if limit == 0 || limit > max_limit {
            return Err(format!("limit must be between 1 and {max_limit}"));
        }
        let after = match params.cursor.as_deref() {
            None => None,
            Some(text) => Some(Cursor::decode(text).ok_or("invalid cursor")?),
        };
        let order = match (params.order, after) {
            (Some(order), Some(cursor)) if order != cursor.order => {
                return Err("order differs from the order the cursor was made for".into());
            }
            (Some(order), _) => order,
            (None, Some(cursor)) => cursor.order,
            (None, None) => Order::default(),
        };
        Ok(Listing {
            channel: params.channel,
            since: params.since,
            until: params.until,
            limit,
            after,
            order,
            include_deleted: params.include_deleted.unwrap_or(false),
        })
    }

    /// The keyset query: filters, then rows strictly after the cursor, one extra row to
    /// know whether another page follows.
    fn sql(&self, base: &str) -> (String, Params) {
        let mut sql = format!("{base} WHERE TRUE");
        let mut params: Params = Vec::new();
        let mut bind = |value: Box<dyn ToSql + Sync + Send>, ty: Type| {
            params.push((value, ty));
            format!("${}", params.len())
        };
        if let Some(channel) = self.channel {
            sql += &format!(" AND channel_id = {}", bind(Box::new(channel), Type::INT8));
        }
        if let Some(since) = self.since {
            sql += &format!(
                " AND posted_at >= {}",
                bind(Box::new(since), Type::TIMESTAMPTZ)
            );
        }
        if let Some(until) = self.until {
            sql += &format!(
                " AND posted_at < {}",
                bind(Box::new(until), Type::TIMESTAMPTZ)
            );
        }
        if !self.include_deleted {
            sql += " AND NOT deleted";
        }
        if let Some(cursor) = self.after {
            let posted_at = bind(Box::new(cursor.posted_at), Type::TIMESTAMPTZ);
            let channel = bind(Box::new(cursor.channel_id), Type::INT8);
            let message = bind(Box::new(cursor.message_id), Type::INT8);
            sql += &format!(
                " AND (posted_at, channel_id, message_id) {} ({posted_at}, {channel}, {message})",
                self.order.after()
            );
        }
        let direction = self.order.sql();
        let limit = bind(Box::new(i64::from(self.limit) + 1), Type::INT8);
        sql += &format!(
            " ORDER BY posted_at {direction}, channel_id {direction}, message_id {direction} LIMIT {limit}"
        );
        (sql, params)
    }
}

/// A statement that failed: the client's values are checked before they are bound, but
/// should PostgreSQL still refuse one (SQLSTATE class 22, data exception), that is the
/// request's fault: 400, and the database stays up on `/metrics`.
fn query_failed(error: tokio_postgres::Error) -> Response {
    let data_exception = error
        .code()
        .is_some_and(|code| code.code().starts_with("22"));
    if data_exception {
        tracing::info!(%error, "request refused by the database");
        return error_response(
            StatusCode::BAD_REQUEST,
            "a parameter is outside what the database accepts",
        );
    }
    database_error(error)
}

fn database_error(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "database request failed");
    metrics::gauge!(metric::DEPENDENCY_UP, "dependency" => "postgres").set(0.0);
    error_response(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
}

pub(crate) async fn list_messages(
    State(state): State<ApiState>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Ok(Query(pairs)) = pairs else {
        return error_response(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let params = match ListParams::from_pairs(pairs) {
        Ok(params) => params,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    let listing = match Listing::parse(params, state.default_page_size, state.max_page_size) {
        Ok(listing) => listing,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    if let Some(body) = from_cache(&state, &listing).await {
        return ([(CONTENT_TYPE, "application/json")], body).into_response();
    }
    let (sql, params) = listing.sql(&state.sql.messages);
    let client = match state.pool.get().await {
        Ok(client) => client,
        Err(error) => return database_error(error),
    };
    let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
        .iter()
        .map(|(value, ty)| (value.as_ref() as &(dyn ToSql + Sync), ty.clone()))
        .collect();
    let rows = match client.query_typed(&sql, &typed).await {
        Ok(rows) => rows,
        Err(error) => return query_failed(error),
    };
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        match MessageView::from_row(row, false) {
            Ok(message) => messages.push(message),
            Err(error) => return database_error(error),
        }
    }
    let limit = listing.limit as usize;
    let next_cursor = if messages.len() > limit {
        messages.truncate(limit);
        messages
            .last()
            .map(|last| last.cursor(listing.order).encode())
    } else {
        None
    };
    Json(MessagePage {
        messages,
        next_cursor,
    })
    .into_response()
}

/// The page from the read cache, when the cache is on and can answer it: a channel's
/// newest messages (`order=desc`, no time range), within its cached window.
async fn from_cache(state: &ApiState, listing: &Listing) -> Option<String> {
    let cache = state.cache.as_ref()?;
    let channel = listing.channel?;
    let newest = listing.order == Order::Desc && listing.since.is_none() && listing.until.is_none();
    if !newest || !cache.caches(channel) {
        return None;
    }
    let lookup = cache
        .page(
            channel,
            listing.limit,
            listing.include_deleted,
            listing.after.as_ref(),
        )
        .await;
    match lookup {
        Lookup::Hit(body) => {
            metrics::counter!(metric::CACHE_HITS).increment(1);
            Some(body)
        }
        Lookup::Miss(reason) => {
            metrics::counter!(metric::CACHE_MISSES, "reason" => reason).increment(1);
            None
        }
    }
}

pub(crate) async fn get_message(
    State(state): State<ApiState>,
    path: Result<Path<(i64, i64)>, PathRejection>,
) -> Response {
    let (channel, id) = match path {
        Ok(Path(ids)) => ids,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "channel and id must be integers (channel as stored, e.g. -1001234567890)",
            );
        }
    };
    let client = match state.pool.get().await {
        Ok(client) => client,
        Err(error) => return database_error(error),
    };
    let row = client
        .query_typed_opt(
            &state.sql.message,
            &[(&channel, Type::INT8), (&id, Type::INT8)],
        )
        .await;
    match row {
        Ok(Some(row)) => match MessageView::from_row(&row, true) {
            Ok(message) => Json(message).into_response(),
            Err(error) => database_error(error),
        },
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            format!("no message {id} in channel {channel}"),
        ),
        Err(error) => query_failed(error),
    }
}

#[derive(Debug, Serialize)]
struct ChannelView {
    channel_id: i64,
    username: Option<String>,
    title: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(crate) async fn list_channels(State(state): State<ApiState>) -> Response {
    let client = match state.pool.get().await {
        Ok(client) => client,
        Err(error) => return database_error(error),
    };
    let rows = match client.query_typed(&state.sql.channels, &[]).await {
        Ok(rows) => rows,
        Err(error) => return database_error(error),
    };
    let mut channels = Vec::with_capacity(rows.len());
    for row in &rows {
        let view = (|| -> Result<ChannelView, tokio_postgres::Error> {
            Ok(ChannelView {
                channel_id: row.try_get("channel_id")?,
                username: row.try_get("username")?,
                title: row.try_get("title")?,
                enabled: row.try_get("enabled")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        })();
        match view {
            Ok(view) => channels.push(view),
            Err(error) => return database_error(error),
        }
    }
    Json(serde_json::json!({ "channels": channels })).into_response()
}

/// Longest the health check waits for the database, well under any probe interval.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Reports the database: 200 when a round trip through the pool works, else 503.
pub(crate) async fn health(State(state): State<ApiState>) -> Response {
    let probe = async {
        let client = state.pool.get().await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    let outcome = match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
        Ok(outcome) => outcome,
        Err(_) => Err("timed out".to_string()),
    };
    let up = outcome.is_ok();
    metrics::gauge!(metric::DEPENDENCY_UP, "dependency" => "postgres").set(if up {
        1.0
    } else {
        0.0
    });
    let postgres = match &outcome {
        Ok(()) => serde_json::json!({ "status": "up" }),
        Err(error) => {
            tracing::warn!(%error, "health: database unreachable");
            serde_json::json!({ "status": "down", "error": "database unreachable" })
        }
    };
    let body = serde_json::json!({
        "status": if up { "ok" } else { "unavailable" },
        "dependencies": { "postgres": postgres },
    });
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn metrics_text(State(state): State<ApiState>) -> Response {
    let text = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ListParams, String> {
        let uri: axum::http::Uri = format!("/api/messages?{query}").parse().unwrap();
        ListParams::from_pairs(Query::try_from_uri(&uri).unwrap().0)
    }

    fn params(query: &str) -> ListParams {
        parse(query).unwrap()
    }

    #[test]
    fn limit_defaults_and_above_maximum_is_rejected() {
        assert_eq!(Listing::parse(params(""), 100, 1000).unwrap().limit, 100);
        assert_eq!(
            Listing::parse(params("limit=1000"), 100, 1000)
                .unwrap()
                .limit,
            1000
        );
        let error = Listing::parse(params("limit=1001"), 100, 1000).unwrap_err();
        assert!(error.contains("1000"), "{error}");
        assert!(Listing::parse(params("limit=0"), 100, 1000).is_err());
    }

    #[test]
    fn bad_parameters_are_named_but_never_echoed() {
        // (query, what the error says, what the client sent that it must not repeat)
        let cases = [
            ("channel_id=1", "unknown query parameter", "channel_id"),
            (
                "channel=12ab%3Cscript%3E",
                "`channel` must be an integer",
                "script",
            ),
            (
                "since=-5000-01-01T00:00:00Z",
                "`since` must be an RFC 3339",
                "5000",
            ),
            (
                "until=10000-01-01T00:00:00Z",
                "`until` must be an RFC 3339",
                "10000",
            ),
            ("since=yesterday-ECHO", "`since` must be", "ECHO"),
            ("limit=-7", "`limit` must be", "-7"),
            (
                "order=sideways",
                "`order` must be `asc` or `desc`",
                "sideways",
            ),
            ("include_deleted=yes", "`include_deleted` must be", "yes"),
            ("limit=1&limit=2", "`limit` is given more than once", "2"),
        ];
        for (query, expected, sent) in cases {
            let error = parse(query).unwrap_err();
            assert!(error.contains(expected), "{query}: {error}");
            assert!(!error.contains(sent), "{query} echoed: {error}");
        }
    }

    #[test]
    fn empty_cursor_is_the_first_page_and_edge_years_are_accepted() {
        let listing = Listing::parse(params("cursor="), 10, 100).unwrap();
        assert_eq!(listing.after, None);
        let listing = Listing::parse(
            params("since=0000-01-01T00:00:00Z&until=9999-12-31T23:59:59.999999Z"),
            10,
            100,
        )
        .unwrap();
        assert!(listing.since.is_some() && listing.until.is_some());
    }

    #[test]
    fn cursor_fixes_the_order() {
        let cursor = Cursor {
            order: Order::Desc,
            posted_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            channel_id: 1,
            message_id: 2,
        }
        .encode();
        let listing = Listing::parse(params(&format!("cursor={cursor}")), 10, 100).unwrap();
        assert_eq!(listing.order, Order::Desc);
        assert!(Listing::parse(params(&format!("cursor={cursor}&order=asc")), 10, 100).is_err());
        assert!(Listing::parse(params("cursor=bogus"), 10, 100).is_err());
    }

    #[test]
    fn keyset_sql_binds_every_value() {
        let cursor = Cursor {
            order: Order::Asc,
            posted_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            channel_id: 1,
            message_id: 2,
        }
        .encode();
        let listing = Listing::parse(
            params(&format!(
                "channel=-100&since=2024-01-01T00:00:00Z&until=2024-02-01T00:00:00Z&cursor={cursor}"
            )),
            10,
            100,
        )
        .unwrap();
        let (sql, params) = listing.sql("SELECT * FROM \"telegram\".messages");
        assert_eq!(params.len(), 7);
        assert!(
            sql.contains("(posted_at, channel_id, message_id) > ($4, $5, $6)"),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT $7"), "{sql}");
        assert!(sql.contains("AND NOT deleted"), "{sql}");
    }
}
