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
//! The connection follows the master through Sentinel failovers ([`crate::redis_link`]).

use std::time::Duration;

use anyhow::Result;

use crate::config::RedisTarget;
use crate::redis_link::RedisLink;

const COMMITTED: &str = "c";

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
    link: RedisLink,
    ttl_seconds: u64,
    token: String,
}

impl Dedup {
    /// Nothing connects until the first check.
    pub fn new(target: &RedisTarget, ttl: Duration) -> Result<Self> {
        // Unique per process start: pid plus the start time.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Ok(Dedup {
            link: RedisLink::new(target)?,
            ttl_seconds: ttl.as_secs().max(1),
            token: format!("r{}-{nanos}", std::process::id()),
        })
    }

    /// Claims every key; one verdict per key, in order. An error means Redis could not
    /// answer: the caller lets everything through.
    pub async fn check(&mut self, keys: &[String]) -> Result<Vec<Verdict>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
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
        let previous: Vec<Option<String>> = self.link.query_pipe(&pipe).await?;
        Ok(previous
            .into_iter()
            .map(|old| match old.as_deref() {
                None => Verdict::Proceed,
                Some(COMMITTED) => Verdict::Duplicate,
                Some(token) if token == self.token => Verdict::Duplicate,
                Some(_) => Verdict::Proceed,
            })
            .collect())
    }

    /// Marks keys as committed (after the batch's transaction committed).
    pub async fn commit(&mut self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("SET")
                .arg(key)
                .arg(COMMITTED)
                .arg("EX")
                .arg(self.ttl_seconds)
                .ignore();
        }
        self.link.query_pipe(&pipe).await
    }

    /// `PING`, for the health probe.
    pub async fn ping(&mut self) -> Result<()> {
        self.link
            .query::<String>(&redis::cmd("PING"))
            .await
            .map(|_| ())
    }
}
