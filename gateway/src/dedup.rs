//! Redis dedup in front of the database: one pipelined `SET key <claim> NX GET EX ttl`
//! per batch. The claim is this process's run token until the batch is committed, then
//! `c`. So a duplicate of a committed message, or of one in flight in this process, is
//! dropped before it costs a database round trip; a key left claimed by a run that died
//! before committing lets the message through, and the unique constraint decides. That is
//! what keeps a crash between claim and commit from losing the message.
//!
//! Redis down is not fatal: every message goes through to the database (whose unique key
//! still prevents duplicates), and `tg_gateway_dependency_up{dependency="redis"}` says so.
//!
//! Where the model has Sentinels watching the master, each (re)connection first asks them
//! where the master is now, maps the address they announce (a container name, say) to one
//! this process reaches, and checks that server really is a master. After a failover the
//! first failed round trip drops the connection, and the next one lands on the promoted
//! replica. With no Sentinel answering, the model's master address is used.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tgstack::model::{Endpoint, SentinelView};

use crate::config::RedisTarget;

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
    target: RedisTarget,
    connection: Option<ConnectionManager>,
    ttl_seconds: u64,
    token: String,
    last_failure: Option<Instant>,
}

impl Dedup {
    /// Nothing connects until the first check.
    pub fn new(target: &RedisTarget, ttl: Duration) -> Result<Self> {
        // Refuse a malformed address now rather than at every connection attempt.
        redis::Client::open(target.url()).map_err(|e| anyhow!("invalid redis address: {e}"))?;
        // Unique per process start: pid plus the start time.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Ok(Dedup {
            target: target.clone(),
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
        match self.connect().await {
            Ok(connection) => {
                self.connection = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                self.last_failure = Some(Instant::now());
                Err(error)
            }
        }
    }

    /// Connects to the master: where the Sentinels say it is, else where the model puts it.
    async fn connect(&self) -> Result<ConnectionManager> {
        let (endpoint, from_sentinel) = match &self.target.sentinels {
            Some(view) => match ask_sentinels(view).await {
                Some(endpoint) => (endpoint, true),
                None => (self.target.endpoint.clone(), false),
            },
            None => (self.target.endpoint.clone(), false),
        };
        let client = redis::Client::open(self.target.url_at(&endpoint))
            .map_err(|e| anyhow!("invalid redis address: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let mut connection = tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| anyhow!("cannot connect to redis at {endpoint}: timed out"))?
        .map_err(|e| anyhow!("cannot connect to redis at {endpoint}: {e}"))?;
        // A Sentinel's answer can be stale while a failover is under way: write only to a
        // server that says it is the master.
        if from_sentinel {
            let role: redis::Value =
                tokio::time::timeout(TIMEOUT, redis::cmd("ROLE").query_async(&mut connection))
                    .await
                    .map_err(|_| anyhow!("redis at {endpoint} did not answer ROLE"))?
                    .map_err(|e| anyhow!("redis at {endpoint}: {e}"))?;
            if !is_master(&role) {
                return Err(anyhow!(
                    "redis at {endpoint} is not the master (a failover is under way)"
                ));
            }
        }
        Ok(connection)
    }

    /// After a failed round trip: the next one reconnects, asking the Sentinels again.
    fn failed(&mut self) {
        self.last_failure = Some(Instant::now());
        self.connection = None;
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

/// Asks each Sentinel in turn where the master is; the first answer wins, mapped to an
/// address this process reaches (an unknown address is used as announced).
async fn ask_sentinels(view: &SentinelView) -> Option<Endpoint> {
    for sentinel in &view.sentinels {
        let ask = async {
            let client = redis::Client::open(format!("redis://{sentinel}/")).ok()?;
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            let answer: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&view.master_name)
                .query_async(&mut connection)
                .await
                .ok()?;
            answer
        };
        if let Ok(Some((host, port))) = tokio::time::timeout(TIMEOUT, ask).await {
            let announced = Endpoint { host, port };
            let reachable = view
                .announced
                .iter()
                .find(|(as_announced, _)| *as_announced == announced)
                .map(|(_, reachable)| reachable.clone());
            return Some(reachable.unwrap_or(announced));
        }
    }
    None
}

/// `ROLE`'s first element is `master` on a master.
fn is_master(role: &redis::Value) -> bool {
    match role {
        redis::Value::Array(items) => {
            matches!(
                items.first(),
                Some(redis::Value::BulkString(bytes)) if bytes.as_slice() == b"master"
            ) || matches!(
                items.first(),
                Some(redis::Value::SimpleString(text)) if text == "master"
            )
        }
        _ => false,
    }
}
