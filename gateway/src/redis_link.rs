//! One connection to the Redis master, shared by the dedup and the read cache.
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

/// A connection attempt or round trip slower than this counts as Redis being unavailable.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, wait this long before trying Redis again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A lazily (re)connected link to the master.
pub struct RedisLink {
    target: RedisTarget,
    connection: Option<ConnectionManager>,
    last_failure: Option<Instant>,
}

impl RedisLink {
    /// Nothing connects until the first use; a malformed address is refused now.
    pub fn new(target: &RedisTarget) -> Result<Self> {
        redis::Client::open(target.url()).map_err(|e| anyhow!("invalid redis address: {e}"))?;
        Ok(RedisLink {
            target: target.clone(),
            connection: None,
            last_failure: None,
        })
    }

    /// The connection, connecting first when there is none (at most once per RETRY_AFTER).
    pub async fn connection(&mut self) -> Result<ConnectionManager> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        if let Some(at) = self.last_failure
            && at.elapsed() < RETRY_AFTER
        {
            return Err(anyhow!("redis unavailable (retrying shortly)"));
        }
        match connect(&self.target).await {
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

    /// After a failed round trip: the next use reconnects, asking the Sentinels again.
    pub fn failed(&mut self) {
        self.last_failure = Some(Instant::now());
        self.connection = None;
    }

    /// Runs `command` within TIMEOUT; a failure drops the connection.
    pub async fn query<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Result<T> {
        let mut connection = self.connection().await?;
        let answer = within(command.query_async::<T>(&mut connection)).await;
        if answer.is_err() {
            self.failed();
        }
        answer
    }

    /// Runs `pipe` within TIMEOUT; a failure drops the connection.
    pub async fn query_pipe<T: redis::FromRedisValue>(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        let mut connection = self.connection().await?;
        let answer = within(pipe.query_async::<T>(&mut connection)).await;
        if answer.is_err() {
            self.failed();
        }
        answer
    }

    /// Runs a Lua script within TIMEOUT (loading it first if the server lacks it); a
    /// failure drops the connection.
    pub async fn invoke<T: redis::FromRedisValue>(
        &mut self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut connection = self.connection().await?;
        let answer = within(invocation.invoke_async(&mut connection)).await;
        if answer.is_err() {
            self.failed();
        }
        answer
    }
}

/// A Redis round trip bounded by TIMEOUT, its error in words.
pub async fn within<T>(
    round_trip: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    tokio::time::timeout(TIMEOUT, round_trip)
        .await
        .map_err(|_| anyhow!("redis did not answer within {TIMEOUT:?}"))?
        .map_err(|e| anyhow!("redis: {e}"))
}

/// Connects to the master: where the Sentinels say it is, else where the model puts it.
pub async fn connect(target: &RedisTarget) -> Result<ConnectionManager> {
    let (endpoint, from_sentinel) = match &target.sentinels {
        Some(view) => match ask_sentinels(view).await {
            Some(endpoint) => (endpoint, true),
            None => (target.endpoint.clone(), false),
        },
        None => (target.endpoint.clone(), false),
    };
    let client = redis::Client::open(target.url_at(&endpoint))
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
