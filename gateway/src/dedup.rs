//! Redis dedup in front of the database: one pipelined `SET key <claim> NX GET EX ttl`
//! per batch. The claim is this process's run token until the batch is committed, then
//! `c`. So a duplicate of a committed message, or of one in flight in this process, is
//! dropped before it costs a database round trip; a key left claimed by a run that died
//! before committing lets the message through, and the unique constraint decides. That is
//! what keeps a crash between claim and commit from losing the message.
//!
//! Redis down is not fatal: every message goes through to the database (whose unique key
//! still prevents duplicates), and `tg_gateway_dependency_up{dependency="redis"}` says so.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

const COMMITTED: &str = "c";
/// A dedup round trip slower than this counts as Redis being unavailable.
const TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, wait this long before trying Redis again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The dedup key of a message.
pub fn key(channel_id: i64, message_id: i64) -> String {
    format!("tg:dedup:{channel_id}:{message_id}")
}

/// What the dedup check decided for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen, or claimed by a run that may have died before committing: store it.
    Proceed,
    /// Committed before, or in flight in this process: drop it.
    Duplicate,
}

pub struct Dedup {
    client: redis::Client,
    connection: Option<ConnectionManager>,
    ttl_seconds: u64,
    token: String,
    last_failure: Option<Instant>,
}

impl Dedup {
    /// Nothing connects until the first check.
    pub fn new(url: &str, ttl: Duration) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow!("invalid redis address: {e}"))?;
        // Unique per process start: pid plus the start time.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Ok(Dedup {
            client,
            connection: None,
            ttl_seconds: ttl.as_secs().max(1),
            token: format!("r{}-{nanos}", std::process::id()),
            last_failure: None,
        })
    }

    async fn connection(&mut self) -> Result<ConnectionManager> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        if let Some(at) = self.last_failure
            && at.elapsed() < RETRY_AFTER
        {
            return Err(anyhow!("redis unavailable (retrying shortly)"));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(connection)) => {
                self.connection = Some(connection.clone());
                Ok(connection)
            }
            Ok(Err(error)) => {
                self.last_failure = Some(Instant::now());
                Err(anyhow!("cannot connect to redis: {error}"))
            }
            Err(_) => {
                self.last_failure = Some(Instant::now());
                Err(anyhow!("cannot connect to redis: timed out"))
            }
        }
    }

    fn failed(&mut self) {
        self.last_failure = Some(Instant::now());
    }

    /// Claims every key; one verdict per key, in order. An error means Redis could not
    /// answer: the caller lets everything through.
    pub async fn check(&mut self, keys: &[String]) -> Result<Vec<Verdict>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection().await?;
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("SET")
                .arg(key)
                .arg(&self.token)
                .arg("NX")
                .arg("GET")
                .arg("EX")
                .arg(self.ttl_seconds);
        }
        let answer: Result<Vec<Option<String>>, _> =
            tokio::time::timeout(TIMEOUT, pipe.query_async(&mut connection))
                .await
                .map_err(|_| anyhow!("redis did not answer within {TIMEOUT:?}"))
                .and_then(|r| r.map_err(|e| anyhow!("redis: {e}")));
        match answer {
            Ok(previous) => Ok(previous
                .into_iter()
                .map(|old| match old.as_deref() {
                    None => Verdict::Proceed,
                    Some(COMMITTED) => Verdict::Duplicate,
                    Some(token) if token == self.token => Verdict::Duplicate,
                    Some(_) => Verdict::Proceed,
                })
                .collect()),
            Err(error) => {
                self.failed();
                Err(error)
            }
        }
    }

    /// Marks keys as committed (after the batch's transaction committed).
    pub async fn commit(&mut self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection().await?;
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("SET")
                .arg(key)
                .arg(COMMITTED)
                .arg("EX")
                .arg(self.ttl_seconds)
                .ignore();
        }
        let result: Result<(), _> =
            tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut connection))
                .await
                .map_err(|_| anyhow!("redis did not answer within {TIMEOUT:?}"))
                .and_then(|r| r.map_err(|e| anyhow!("redis: {e}")));
        if result.is_err() {
            self.failed();
        }
        result
    }

    /// `PING`, for the health probe.
    pub async fn ping(&mut self) -> Result<()> {
        let mut connection = self.connection().await?;
        let result: Result<String, _> = tokio::time::timeout(
            TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await
        .map_err(|_| anyhow!("redis did not answer within {TIMEOUT:?}"))
        .and_then(|r| r.map_err(|e| anyhow!("redis: {e}")));
        if result.is_err() {
            self.failed();
        }
        result.map(|_| ())
    }
}
