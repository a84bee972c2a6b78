//! The read cache: each channel's newest messages in Redis, for the newest pages of
//! `GET /api/messages?channel=...`. The gateway that stores messages is its only writer;
//! the API reads it, and answers from the database whenever the cache might be stale.
//!
//! Per channel, under the key prefix of the database the rows come from:
//! - `<ch>:order`, a sorted set of the window's rows (score: `posted_at` in microseconds;
//!   member: the zero-padded message id and the score, so ties sort as the database does);
//! - `<ch>:msgs`, a hash from member to version and JSON (the API's own serialisation; an
//!   empty JSON marks a message too large for its share of the budget);
//! - `<ch>:meta`: `count` (rows in the window), `full` (the window holds the whole channel),
//!   `seq` (batches begun) and one `p:<writer>` field per batch being written.
//!
//! Why a reader never sees an old version:
//! - a batch marks its channels (`p:` fields) before its transaction commits, and writes
//!   the rows as the database holds them after the commit, then clears the mark; a marked
//!   channel is read from the database;
//! - each writer holds a lease in `writers` and renews it only while every one of its cache
//!   writes succeeded. After a failure it stops renewing, and commits nothing more until the
//!   lease has run out; a reader trusts the cache only while every lease is live. Back in
//!   touch, the writer drops every channel's window and starts over from the database;
//! - versions (deleted, then edit date) only grow in the database, and the cache keeps the
//!   greater one, so writes arriving late or twice never undo a newer one;
//! - a window that lost a key to eviction (its counts disagree) is cold, never partial.
//!
//! Clocks: a lease's end is the writer's wall clock, compared with Redis's; both run on
//! synchronised hosts, and any skew between them adds to the lease.
//!
//! Limits: one ingesting process per database (one Telegram session) is assumed; a second
//! one cut off from Redis while the first is not would go unnoticed by readers. After a
//! Sentinel failover, writes the old master acknowledged but had not replicated can be
//! missing on the new one until the writer, which resyncs on its first failed write,
//! has started over (its lease, 3 s, bounds that).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use redis::Script;
use tokio::sync::Mutex;

use crate::api::cursor::{Cursor, Order};
use crate::api::view::{MessageKey, MessageView};
use crate::config::CacheTarget;
use crate::redis_link::{self, RedisLink};
use crate::store::Store;

/// How long a writer's lease lasts after it was sent.
pub const LEASE: Duration = Duration::from_secs(3);
/// How often a writer renews its lease and warms the channels readers asked for.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Channels warmed per tick at most.
const WARM_PER_TICK: usize = 16;
/// How long a reader waits for the cache before asking the database.
const READ_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed read, readers go to the database this long before trying Redis again.
const READ_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Microseconds since the epoch that a double holds exactly (2^53): years 1685 to 2255.
const EXACT_MICROS: i64 = 1 << 53;

/// Marks a batch's channels as being written (KEYS: writers, then each channel's meta).
const BEGIN: &str = r"
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], 'p:' .. ARGV[1], '1')
  redis.call('HINCRBY', KEYS[i], 'seq', 1)
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
";

/// Writes a committed batch's rows and clears its marks (KEYS: writers, then meta, order,
/// msgs per channel; ARGV: token, recent, ttl, then per channel a count and that many
/// member, score, value triples). A window that is cold, or lost a key, is left cold.
const APPLY: &str = r"
local token, recent, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local live = redis.call('ZSCORE', KEYS[1], token)
local a = 4
for k = 2, #KEYS, 3 do
  local meta, order, msgs = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local n = tonumber(ARGV[a])
  a = a + 1
  redis.call('HDEL', meta, 'p:' .. token)
  local count = redis.call('HGET', meta, 'count')
  if live and count then
    if redis.call('ZCARD', order) ~= tonumber(count) or redis.call('HLEN', msgs) ~= tonumber(count) then
      redis.call('DEL', meta, order, msgs)
    else
      local full = redis.call('HGET', meta, 'full') == '1'
      for i = 0, n - 1 do
        local m, sc, v = ARGV[a + 3 * i], ARGV[a + 3 * i + 1], ARGV[a + 3 * i + 2]
        local old = redis.call('HGET', msgs, m)
        if old then
          if string.sub(v, 1, 21) >= string.sub(old, 1, 21) then redis.call('HSET', msgs, m, v) end
        else
          local keep = full
          if not keep then
            local lowest = redis.call('ZRANGE', order, 0, 0, 'WITHSCORES')
            if #lowest > 0 then
              local s, ls = tonumber(sc), tonumber(lowest[2])
              keep = s > ls or (s == ls and m > lowest[1])
            end
          end
          if keep then
            redis.call('ZADD', order, sc, m)
            redis.call('HSET', msgs, m, v)
          end
        end
      end
      local size = redis.call('ZCARD', order)
      while size > recent do
        local gone = redis.call('ZPOPMIN', order)
        redis.call('HDEL', msgs, gone[1])
        size = size - 1
        full = false
      end
      redis.call('HSET', meta, 'count', size, 'full', full and '1' or '0')
      redis.call('PEXPIRE', meta, ttl)
      redis.call('PEXPIRE', order, ttl)
      redis.call('PEXPIRE', msgs, ttl)
    end
  end
  a = a + 3 * n
end
if live then return 1 end
return 0
";

/// Replaces a channel's window with rows read from the database, unless a batch was
/// begun since they were read (KEYS: writers, meta, order, msgs; ARGV: token, seq when
/// read, ttl, full, then member, score, value triples). 2: read again.
const WARM: &str = r"
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local fields = redis.call('HGETALL', KEYS[2])
local seq = ''
for i = 1, #fields, 2 do
  local f = fields[i]
  if f == 'seq' then seq = fields[i + 1]
  elseif string.sub(f, 1, 2) == 'p:' then return 2 end
end
if seq ~= ARGV[2] then return 2 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local n = 0
for i = 5, #ARGV, 3 do
  redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 2])
  n = n + 1
end
redis.call('HSET', KEYS[2], 'count', n, 'full', ARGV[4])
if seq ~= '' then redis.call('HSET', KEYS[2], 'seq', seq) end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
return 1
";

/// Extends this writer's lease to ARGV[2] (its wall clock), if it still holds one and the
/// new end is still ahead (a renewal that waited in a frozen server must not set a past
/// end, which readers would take for a lost writer).
const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= now then return 0 end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
";

/// Starts a writer over (KEYS: writers, wanted, then every channel's meta, order, msgs;
/// ARGV: new token, old token or '', lease end). Writers whose lease ran out (a crashed
/// process, or one cut off from Redis) may have stored what the cache lacks, and so may
/// this one under its old token: every window is dropped and read again from the database.
/// A call whose lease already ended is stale (sent to a frozen server, run after it
/// thawed, its writer long gone): it changes nothing, for an expired lease left behind
/// would keep every reader off the cache while the live writer only renews its own.
const RESYNC: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[3]) <= now then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now))
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[1], ARGV[2]) end
for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
";

/// Ends a writer that stops cleanly.
const LEAVE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
";

/// The rows of a page of a channel, newest first, when the cache may answer it (KEYS:
/// writers, meta, order, wanted; ARGV: channel, rows wanted, cursor score or '', cursor
/// member or ''). Answers `{'rows', full, member...}` or `{reason}`; a cold channel is asked
/// for (`wanted`). The messages themselves are fetched with one HMGET afterwards: Lua
/// handling their JSON cost ten times what the HMGET does. Whatever is written in between
/// is newer than this check, and a row replaced or evicted meanwhile is a miss.
const READ: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[1], now, '+inf') == 0 then return {'cold'} end
if redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. string.format('%d', now)) > 0 then return {'cold'} end
local fields = redis.call('HGETALL', KEYS[2])
local count, full = nil, '0'
for i = 1, #fields, 2 do
  local f = fields[i]
  if f == 'count' then count = tonumber(fields[i + 1])
  elseif f == 'full' then full = fields[i + 1]
  elseif string.sub(f, 1, 2) == 'p:' then return {'cold'} end
end
if count == nil or redis.call('ZCARD', KEYS[3]) ~= count then
  redis.call('SADD', KEYS[4], ARGV[1])
  return {'cold'}
end
local cs = tonumber(ARGV[3])
local max = '+inf'
if cs then max = ARGV[3] end
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[3], max, '-inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {'rows', full}
for i = 1, #rows, 2 do
  if not (cs and tonumber(rows[i + 1]) == cs and rows[i] >= ARGV[4]) then
    out[#out + 1] = rows[i]
  end
end
return out
";

/// The writer's scripts, hashed once.
static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(Scripts::new);

struct Scripts {
    begin: Script,
    apply: Script,
    warm: Script,
    renew: Script,
    resync: Script,
    leave: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            begin: Script::new(BEGIN),
            apply: Script::new(APPLY),
            warm: Script::new(WARM),
            renew: Script::new(RENEW),
            resync: Script::new(RESYNC),
            leave: Script::new(LEAVE),
        }
    }
}

/// Keys of one cache.
struct Keys {
    prefix: String,
}

impl Keys {
    fn writers(&self) -> String {
        format!("{}writers", self.prefix)
    }
    fn wanted(&self) -> String {
        format!("{}wanted", self.prefix)
    }
    fn meta(&self, channel: i64) -> String {
        format!("{}{channel}:meta", self.prefix)
    }
    fn order(&self, channel: i64) -> String {
        format!("{}{channel}:order", self.prefix)
    }
    fn msgs(&self, channel: i64) -> String {
        format!("{}{channel}:msgs", self.prefix)
    }
}

fn micros(time: DateTime<Utc>) -> Option<i64> {
    let micros = time.timestamp_micros();
    (-EXACT_MICROS < micros && micros < EXACT_MICROS).then_some(micros)
}

/// The sorted-set member of a row: message id shifted to sort as unsigned text, then the
/// score, so two rows of one id and different dates stay apart.
fn member(message_id: i64, micros: i64) -> String {
    format!("{:020}:{micros}", (message_id as u64) ^ (1 << 63))
}

/// A row as the cache holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub channel: i64,
    member: String,
    score: i64,
    /// 21 characters of version (deleted, then the edit date), then the JSON.
    value: String,
}

impl Entry {
    /// From an API row; `Err(channel)` for a date a double cannot hold exactly (that
    /// channel is then not cached).
    fn from_row(row: &tokio_postgres::Row, cap: usize) -> Result<Result<Entry, i64>> {
        let view = MessageView::from_row(row, false)?;
        let key = view.key();
        let Some(score) = micros(key.posted_at) else {
            return Ok(Err(key.channel_id));
        };
        let edited = view
            .edit_date()
            .map(|t| (t.timestamp_micros() as u64) ^ (1 << 63))
            .unwrap_or(0);
        let json = serde_json::to_string(&view)?;
        let json = if json.len() > cap { "" } else { &json };
        Ok(Ok(Entry {
            channel: key.channel_id,
            member: member(key.message_id, score),
            score,
            value: format!("{}{edited:020}{json}", u8::from(view.deleted())),
        }))
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A batch's marks, to clear once it is committed.
pub struct Marked {
    channels: Vec<i64>,
}

/// The writing side, owned by the pipeline's writer task: every batch goes through
/// [`CacheWriter::before_commit`] and [`CacheWriter::after_commit`].
pub struct CacheWriter {
    target: CacheTarget,
    link: RedisLink,
    /// This writer's lease while synced; a new one after every resync.
    token: String,
    synced: bool,
    /// Wall-clock ms until which readers may still trust the cache under `token`.
    lease_end_ms: u64,
    last_tick: Option<Instant>,
    generation: u64,
}

impl CacheWriter {
    pub fn new(target: CacheTarget) -> Result<Self> {
        Ok(CacheWriter {
            link: RedisLink::new(&target.redis)?,
            target,
            token: String::new(),
            synced: false,
            lease_end_ms: 0,
            last_tick: None,
            generation: 0,
        })
    }

    fn keys(&self) -> Keys {
        Keys {
            prefix: self.target.prefix.clone(),
        }
    }

    fn cached(&self, channel: i64) -> bool {
        self.target.channels.contains(&channel)
    }

    fn ttl_ms(&self) -> u64 {
        self.target.ttl.as_millis().max(1) as u64
    }

    /// A write failed or the lease is gone: readers stop trusting the cache once the lease
    /// runs out, and nothing commits before that.
    fn lost(&mut self, why: &str) {
        if self.synced {
            tracing::warn!(
                "read cache out of step ({why}): served from the database until resynced"
            );
        }
        self.synced = false;
    }

    /// Waits, when out of step, until readers no longer trust what this writer might have
    /// left stale.
    async fn wait_for_lease_end(&self) {
        let now = wall_ms();
        if !self.synced && now < self.lease_end_ms {
            tokio::time::sleep(Duration::from_millis(self.lease_end_ms - now)).await;
        }
    }

    /// Before a batch's transaction: marks its cached channels.
    pub async fn before_commit(&mut self, channels: &[i64]) -> Option<Marked> {
        let channels: Vec<i64> = channels
            .iter()
            .copied()
            .filter(|c| self.cached(*c))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if self.synced && !channels.is_empty() {
            let keys = self.keys();
            let mut invocation = SCRIPTS.begin.prepare_invoke();
            invocation.key(keys.writers());
            for channel in &channels {
                invocation.key(keys.meta(*channel));
            }
            invocation.arg(&self.token).arg(self.ttl_ms());
            match self.link.invoke::<i64>(&invocation).await {
                Ok(1) => return Some(Marked { channels }),
                Ok(_) => self.lost("lease taken over"),
                Err(error) => self.lost(&format!("{error:#}")),
            }
        }
        self.wait_for_lease_end().await;
        None
    }

    /// After the commit: the rows the batch changed, as the database now holds them.
    pub async fn after_commit(&mut self, store: &Store, marked: Marked, changed: &[(i64, i64)]) {
        let keys: Vec<(i64, i64)> = changed
            .iter()
            .copied()
            .filter(|(c, _)| marked.channels.contains(c))
            .collect();
        let rows = if keys.is_empty() {
            Ok(Vec::new())
        } else {
            store.cache_rows(&keys).await
        };
        let (entries, uncacheable) = match rows.and_then(|rows| self.entries(&rows)) {
            Ok(entries) => entries,
            Err(error) => {
                // The marks stay: those channels are read from the database until resynced.
                self.lost(&format!("cannot read the batch back: {error:#}"));
                return;
            }
        };
        // Dropped while still marked, so no reader sees their old window in between.
        for channel in &uncacheable {
            self.drop_channel(*channel).await;
        }
        let mut per_channel: BTreeMap<i64, Vec<&Entry>> =
            marked.channels.iter().map(|c| (*c, Vec::new())).collect();
        for entry in entries.iter().filter(|e| !uncacheable.contains(&e.channel)) {
            per_channel.entry(entry.channel).or_default().push(entry);
        }
        let k = self.keys();
        let mut invocation = SCRIPTS.apply.prepare_invoke();
        invocation.key(k.writers());
        invocation
            .arg(&self.token)
            .arg(self.target.recent)
            .arg(self.ttl_ms());
        for (channel, rows) in &per_channel {
            invocation
                .key(k.meta(*channel))
                .key(k.order(*channel))
                .key(k.msgs(*channel));
            invocation.arg(rows.len());
            for row in rows {
                invocation.arg(&row.member).arg(row.score).arg(&row.value);
            }
        }
        match self.link.invoke::<i64>(&invocation).await {
            Ok(1) => {}
            Ok(_) => self.lost("lease taken over"),
            Err(error) => self.lost(&format!("{error:#}")),
        }
    }

    /// The rows as entries, and the channels of rows the cache cannot hold.
    fn entries(&self, rows: &[tokio_postgres::Row]) -> Result<(Vec<Entry>, Vec<i64>)> {
        let mut entries = Vec::with_capacity(rows.len());
        let mut uncacheable = Vec::new();
        for row in rows {
            match Entry::from_row(row, self.target.entry_cap)? {
                Ok(entry) => entries.push(entry),
                Err(channel) => uncacheable.push(channel),
            }
        }
        Ok((entries, uncacheable))
    }

    /// A channel holding a date the cache cannot order exactly is never cached.
    async fn drop_channel(&mut self, channel: i64) {
        let k = self.keys();
        let mut command = redis::cmd("DEL");
        command
            .arg(k.meta(channel))
            .arg(k.order(channel))
            .arg(k.msgs(channel));
        if let Err(error) = self.link.query::<i64>(&command).await {
            self.lost(&format!("{error:#}"));
        }
    }

    /// Renews the lease and warms what readers asked for; out of step, tries to resync.
    /// Called between batches, at least every [`RENEW_EVERY`] while idle.
    pub async fn tick(&mut self, store: &Store) {
        if self.last_tick.is_some_and(|at| at.elapsed() < RENEW_EVERY) {
            return;
        }
        self.last_tick = Some(Instant::now());
        if !self.synced {
            if self.resync().await {
                let channels = self.target.channels.clone();
                for channel in channels {
                    self.warm(store, channel).await;
                }
            }
            return;
        }
        let sent = wall_ms();
        let mut invocation = SCRIPTS.renew.prepare_invoke();
        invocation
            .key(self.keys().writers())
            .arg(&self.token)
            .arg(sent + LEASE.as_millis() as u64);
        match self.link.invoke::<i64>(&invocation).await {
            Ok(1) => self.lease_end_ms = sent + LEASE.as_millis() as u64,
            Ok(_) => {
                self.lost("lease taken over");
                return;
            }
            Err(error) => {
                // It may still have been applied: count on the later end.
                self.lease_end_ms = sent + LEASE.as_millis() as u64;
                self.lost(&format!("{error:#}"));
                return;
            }
        }
        let wanted: Vec<i64> = match self
            .link
            .query(
                redis::cmd("SPOP")
                    .arg(self.keys().wanted())
                    .arg(WARM_PER_TICK),
            )
            .await
        {
            Ok(wanted) => wanted,
            Err(error) => {
                self.lost(&format!("{error:#}"));
                return;
            }
        };
        let wanted: Vec<i64> = wanted.into_iter().filter(|c| self.cached(*c)).collect();
        for channel in wanted {
            self.warm(store, channel).await;
        }
    }

    /// A new token, every window dropped, the lease taken.
    async fn resync(&mut self) -> bool {
        self.generation += 1;
        let token = format!("w{}-{}-{}", std::process::id(), wall_ms(), self.generation);
        let sent = wall_ms();
        let k = self.keys();
        let mut invocation = SCRIPTS.resync.prepare_invoke();
        invocation.key(k.writers()).key(k.wanted());
        for channel in &self.target.channels {
            invocation
                .key(k.meta(*channel))
                .key(k.order(*channel))
                .key(k.msgs(*channel));
        }
        invocation
            .arg(&token)
            .arg(&self.token)
            .arg(sent + LEASE.as_millis() as u64);
        // Whatever the answer, the new token may hold a lease until then.
        self.lease_end_ms = self.lease_end_ms.max(sent + LEASE.as_millis() as u64);
        match self.link.invoke::<i64>(&invocation).await {
            Ok(1) => {
                self.token = token;
                self.synced = true;
                tracing::info!("read cache in step: warming from the database");
                true
            }
            // The lease ran out before Redis ran it (a slow round trip): try again.
            Ok(_) => {
                self.token = token;
                false
            }
            Err(_) => {
                // Should it have been applied after all, the stale token is replaced at
                // the next try; its lease ends by `lease_end_ms`, waited for before commits.
                self.token = token;
                false
            }
        }
    }

    /// Replaces a channel's window with the database's newest rows.
    async fn warm(&mut self, store: &Store, channel: i64) {
        for _ in 0..3 {
            let k = self.keys();
            let seq: Option<String> = match self
                .link
                .query(redis::cmd("HGET").arg(k.meta(channel)).arg("seq"))
                .await
            {
                Ok(seq) => seq,
                Err(error) => return self.lost(&format!("{error:#}")),
            };
            let limit = self.target.recent as i64;
            let rows = match store.cache_window(channel, limit).await {
                Ok(rows) => rows,
                // The database is down: the channel stays cold and is asked for again.
                Err(_) => return,
            };
            let entries = match self.entries(&rows) {
                Ok((entries, uncacheable)) if uncacheable.is_empty() => entries,
                Ok(_) => return self.drop_channel(channel).await,
                Err(_) => return,
            };
            let full = if rows.len() < self.target.recent {
                "1"
            } else {
                "0"
            };
            let mut invocation = SCRIPTS.warm.prepare_invoke();
            invocation
                .key(k.writers())
                .key(k.meta(channel))
                .key(k.order(channel))
                .key(k.msgs(channel));
            invocation
                .arg(&self.token)
                .arg(seq.unwrap_or_default())
                .arg(self.ttl_ms())
                .arg(full);
            for entry in &entries {
                invocation
                    .arg(&entry.member)
                    .arg(entry.score)
                    .arg(&entry.value);
            }
            match self.link.invoke::<i64>(&invocation).await {
                Ok(1) => return,
                Ok(2) => continue,
                Ok(_) => return self.lost("lease taken over"),
                Err(error) => return self.lost(&format!("{error:#}")),
            }
        }
    }

    /// On a clean stop: gives up the lease, so readers need not wait for it to run out.
    pub async fn leave(&mut self) {
        if self.token.is_empty() {
            return;
        }
        let mut invocation = SCRIPTS.leave.prepare_invoke();
        invocation.key(self.keys().writers()).arg(&self.token);
        let _ = self.link.invoke::<i64>(&invocation).await;
    }
}

/// What the cache answered for a page.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The page's JSON body.
    Hit(String),
    /// Why the database answers instead: `cold`, `window`, `large` or `unavailable`.
    Miss(&'static str),
}

/// The reading side, shared by the API's requests.
pub struct CacheReader {
    target: CacheTarget,
    read: Script,
    connection: Mutex<Option<redis::aio::ConnectionManager>>,
    last_failure: std::sync::Mutex<Option<Instant>>,
}

impl CacheReader {
    pub fn new(target: CacheTarget) -> Result<Self> {
        redis::Client::open(target.redis.url()).context("invalid redis address")?;
        Ok(CacheReader {
            target,
            read: Script::new(READ),
            connection: Mutex::new(None),
            last_failure: std::sync::Mutex::new(None),
        })
    }

    /// Whether the cache holds this channel at all.
    pub fn caches(&self, channel: i64) -> bool {
        self.target.channels.contains(&channel)
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager> {
        let recently_failed = self
            .last_failure
            .lock()
            .map(|at| at.is_some_and(|at| at.elapsed() < READ_RETRY_AFTER))
            .unwrap_or(false);
        if recently_failed {
            return Err(anyhow!("redis unavailable (retrying shortly)"));
        }
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = redis_link::connect(&self.target.redis).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn failed(&self) {
        if let Ok(mut at) = self.last_failure.lock() {
            *at = Some(Instant::now());
        }
        *self.connection.lock().await = None;
    }

    /// The newest page of `channel` after `cursor` (newest first), from the cache.
    pub async fn page(
        &self,
        channel: i64,
        limit: u32,
        include_deleted: bool,
        cursor: Option<&Cursor>,
    ) -> Lookup {
        let (score, member_after) = match cursor {
            None => (String::new(), String::new()),
            Some(cursor) => match micros(cursor.posted_at) {
                Some(score) if cursor.channel_id == channel => {
                    (score.to_string(), member(cursor.message_id, score))
                }
                _ => return Lookup::Miss("window"),
            },
        };
        let keys = Keys {
            prefix: self.target.prefix.clone(),
        };
        let want = limit as usize + 1;
        // Rows are fetched for the page plus a few deleted ones; a page that needs more is
        // asked again with room for four times as many.
        let mut rows = want + 8;
        for _ in 0..3 {
            let mut invocation = self.read.prepare_invoke();
            invocation
                .key(keys.writers())
                .key(keys.meta(channel))
                .key(keys.order(channel))
                .key(keys.wanted());
            invocation
                .arg(channel)
                .arg(rows)
                .arg(&score)
                .arg(&member_after);
            let answer: Vec<String> = match self.round_trip(&invocation, &keys, channel).await {
                Ok(Some(answer)) => answer,
                Ok(None) => return Lookup::Miss("cold"),
                Err(()) => return Lookup::Miss("unavailable"),
            };
            let (full, values) = match answer.as_slice() {
                [tag, full, values @ ..] if tag == "rows" => (full == "1", values),
                _ => return Lookup::Miss("cold"),
            };
            let mut found: Vec<&str> = Vec::with_capacity(want);
            for value in values {
                if value.len() < 21 {
                    return Lookup::Miss("cold");
                }
                if include_deleted || value.starts_with('0') {
                    let json = &value[21..];
                    if json.is_empty() {
                        return Lookup::Miss("large");
                    }
                    found.push(json);
                    if found.len() == want {
                        break;
                    }
                }
            }
            let exhausted = values.len() < rows;
            if found.len() == want || exhausted {
                if found.len() < want && !full {
                    return Lookup::Miss("window");
                }
                return page_body(&found, limit as usize);
            }
            rows *= 4;
        }
        Lookup::Miss("window")
    }

    /// The READ check, then the messages of the rows it named (`None`: one of them is gone,
    /// a miss); `Err` when Redis did not answer.
    async fn round_trip(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        keys: &Keys,
        channel: i64,
    ) -> Result<Option<Vec<String>>, ()> {
        let answer: Result<Option<Vec<String>>> = async {
            let mut connection = self.connection().await?;
            let checked: Vec<String> =
                within_read(invocation.invoke_async(&mut connection)).await?;
            let members = match checked.as_slice() {
                [tag, _, members @ ..] if tag == "rows" => members,
                _ => return Ok(Some(checked)),
            };
            if members.is_empty() {
                return Ok(Some(checked));
            }
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(keys.msgs(channel)).arg(members);
            let values: Vec<Option<String>> =
                within_read(hmget.query_async(&mut connection)).await?;
            let Some(values) = values.into_iter().collect::<Option<Vec<String>>>() else {
                return Ok(None);
            };
            Ok(Some(checked[..2].iter().cloned().chain(values).collect()))
        }
        .await;
        match answer {
            Ok(answer) => Ok(answer),
            Err(error) => {
                tracing::debug!("read cache unavailable: {error:#}");
                self.failed().await;
                Err(())
            }
        }
    }
}

/// A read round trip within READ_TIMEOUT.
async fn within_read<T>(
    round_trip: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    tokio::time::timeout(READ_TIMEOUT, round_trip)
        .await
        .map_err(|_| anyhow!("redis did not answer within {READ_TIMEOUT:?}"))?
        .map_err(|e| anyhow!("redis: {e}"))
}

/// The JSON of a page as the database path writes it (`MessagePage`, compact): up to
/// `limit` messages, and the cursor of the last one shown when one more was found.
fn page_body(found: &[&str], limit: usize) -> Lookup {
    let shown = &found[..found.len().min(limit)];
    let next_cursor = if found.len() > limit {
        match shown
            .last()
            .map(|last| serde_json::from_str::<MessageKey>(last))
        {
            Some(Ok(key)) => Some(key.cursor(Order::Desc).encode()),
            _ => return Lookup::Miss("cold"),
        }
    } else {
        None
    };
    let next = serde_json::to_string(&next_cursor).unwrap_or_else(|_| "null".into());
    Lookup::Hit(format!(
        "{{\"messages\":[{}],\"next_cursor\":{next}}}",
        shown.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_sort_as_the_database_orders_ids() {
        let ids = [i64::MIN, -5, -1, 0, 1, 9, 10, 1_000_000, i64::MAX];
        let members: Vec<String> = ids.iter().map(|id| member(*id, 7)).collect();
        let mut sorted = members.clone();
        sorted.sort();
        assert_eq!(members, sorted);
    }

    #[test]
    fn dates_a_double_cannot_hold_are_not_cached() {
        let inside = DateTime::parse_from_rfc3339("2255-01-01T00:00:00.000001Z").unwrap();
        let outside = DateTime::parse_from_rfc3339("2300-01-01T00:00:00Z").unwrap();
        assert!(micros(inside.with_timezone(&Utc)).is_some());
        assert_eq!(micros(outside.with_timezone(&Utc)), None);
    }

    #[test]
    fn a_page_body_ends_with_the_cursor_of_its_last_message() {
        let message = |id: i64| {
            format!(
                "{{\"channel_id\":-100,\"message_id\":{id},\"posted_at\":\"2026-01-01T00:00:0{id}Z\"}}"
            )
        };
        let messages: Vec<String> = [3, 2, 1].into_iter().map(message).collect();
        let found: Vec<&str> = messages.iter().map(String::as_str).collect();
        let Lookup::Hit(body) = page_body(&found, 2) else {
            panic!("a hit")
        };
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["messages"].as_array().unwrap().len(), 2);
        let cursor = Cursor::decode(page["next_cursor"].as_str().unwrap()).unwrap();
        assert_eq!((cursor.message_id, cursor.order), (2, Order::Desc));
        let Lookup::Hit(last) = page_body(&found[..2], 2) else {
            panic!("a hit")
        };
        assert!(last.ends_with("\"next_cursor\":null}"), "{last}");
        assert_eq!(
            page_body(&[], 5),
            Lookup::Hit("{\"messages\":[],\"next_cursor\":null}".into())
        );
    }
}
