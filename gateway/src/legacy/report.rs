//! What `import-legacy` tells: the import summary, the verification (both sides per
//! channel, and every difference), and the legacy channels the model lacks. Human text and
//! JSON (`"version": 1`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Imported;
use crate::config::Config;

/// A channel of the legacy registry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LegacyChannel {
    pub id: i64,
    pub title: Option<String>,
    pub username: Option<String>,
    pub active: bool,
}

/// The legacy channels that are active but absent from the model, with the TOML to add.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelsReport {
    pub legacy_channels: usize,
    pub absent_from_model: Vec<LegacyChannel>,
}

impl ChannelsReport {
    /// `[[channels]]` entries to paste into stack.toml.
    pub fn toml(&self) -> String {
        let mut text = String::new();
        for channel in &self.absent_from_model {
            let title = channel
                .title
                .clone()
                .unwrap_or_else(|| format!("channel {}", channel.id));
            // A JSON string with only these escapes is a TOML basic string.
            let _ = writeln!(text, "[[channels]]\nid = {}", channel.id);
            if let Some(username) = &channel.username {
                let _ = writeln!(text, "username = {}", json_string(username));
            }
            let _ = writeln!(text, "title = {}\n", json_string(&title));
        }
        text
    }

    pub fn human(&self) -> String {
        if self.absent_from_model.is_empty() {
            return format!(
                "channels: every active one of the {} legacy channels is in the model\n",
                self.legacy_channels
            );
        }
        format!(
            "channels: {} active legacy channels are not in the model; add them to stack.toml:\n\n{}",
            self.absent_from_model.len(),
            self.toml()
        )
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// The active legacy channels the model does not list.
pub fn channels_against_model(config: &Config, legacy: &[LegacyChannel]) -> ChannelsReport {
    let known: BTreeSet<i64> = config.stack().channels.iter().map(|c| c.id).collect();
    ChannelsReport {
        legacy_channels: legacy.len(),
        absent_from_model: legacy
            .iter()
            .filter(|c| c.active && !known.contains(&c.id))
            .cloned()
            .collect(),
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub shape: String,
    /// Channels that had a checkpoint when this run started (a resumed import).
    pub resumed_channels: usize,
    pub rows_read: u64,
    /// Messages after collapsing duplicates.
    pub messages: u64,
    pub duplicates_collapsed: u64,
    /// New rows in the new database (the rest were there already).
    pub stored: u64,
    /// Outbox rows written (`--publish`).
    pub queued: u64,
    /// Messages of an earlier run updated to what the legacy database holds now
    /// (`--refresh`).
    pub updated: u64,
    pub batches: u64,
    /// Rows whose channel or message id is not a number: not imported.
    pub unplaceable_rows: i64,
    pub unplaceable_examples: Vec<String>,
    /// Messages none of whose copies has a date: not imported.
    pub undated: Vec<(i64, i64)>,
    pub channels: ChannelsReport,
}

impl ImportSummary {
    pub fn human(&self) -> String {
        let mut text = format!(
            "import-legacy: shape {}{}\nread {} rows: {} messages ({} duplicates collapsed); \
             stored {} new, {} already present ({} updated); {} queued for publishing; {} batches\n",
            self.shape,
            if self.resumed_channels > 0 {
                format!(
                    ", resumed ({} channels had a checkpoint)",
                    self.resumed_channels
                )
            } else {
                String::new()
            },
            self.rows_read,
            self.messages,
            self.duplicates_collapsed,
            self.stored,
            self.messages.saturating_sub(self.stored),
            self.updated,
            self.queued,
            self.batches,
        );
        if self.unplaceable_rows > 0 {
            let _ = writeln!(
                text,
                "not imported: {} rows whose channel or message id is not a number (e.g. {})",
                self.unplaceable_rows,
                self.unplaceable_examples.join(", ")
            );
        }
        if !self.undated.is_empty() {
            let _ = writeln!(
                text,
                "not imported: {} messages without any date (e.g. {})",
                self.undated.len(),
                examples(self.undated.iter().map(|(c, m)| format!("{c}/{m}")))
            );
        }
        text + &self.channels.human()
    }
}

fn examples(items: impl Iterator<Item = String>) -> String {
    items.take(5).collect::<Vec<_>>().join(", ")
}

/// One side of a channel's comparison.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Side {
    pub messages: u64,
    pub min_message_id: Option<i64>,
    pub max_message_id: Option<i64>,
    pub min_posted_at: Option<String>,
    pub max_posted_at: Option<String>,
    /// SHA-256 over every message's id, date, deleted flag and text, in id order.
    pub checksum: String,
    #[serde(skip)]
    hasher: Option<Sha256>,
}

impl Side {
    fn add(&mut self, message_id: i64, posted_at: &DateTime<Utc>, deleted: bool, text: &str) {
        let date = posted_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        self.messages += 1;
        self.min_message_id = Some(
            self.min_message_id
                .map_or(message_id, |m| m.min(message_id)),
        );
        self.max_message_id = Some(
            self.max_message_id
                .map_or(message_id, |m| m.max(message_id)),
        );
        if self.min_posted_at.as_ref().is_none_or(|m| date < *m) {
            self.min_posted_at = Some(date.clone());
        }
        if self.max_posted_at.as_ref().is_none_or(|m| date > *m) {
            self.max_posted_at = Some(date.clone());
        }
        let hasher = self.hasher.get_or_insert_with(Sha256::new);
        hasher.update(format!("{message_id}\u{1f}{date}\u{1f}{deleted}\u{1f}").as_bytes());
        hasher.update(text.as_bytes());
        hasher.update(b"\n");
    }

    fn close(&mut self) {
        let digest = self.hasher.take().unwrap_or_default().finalize();
        self.checksum = digest.iter().map(|b| format!("{b:02x}")).collect();
    }
}

/// At most this many message ids are listed per kind of difference (all are counted).
const LISTED: usize = 20;

/// Differences of one kind: how many, and the first message ids.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Differences {
    pub count: u64,
    pub message_ids: Vec<i64>,
}

impl Differences {
    fn add(&mut self, message_id: i64) {
        self.count += 1;
        if self.message_ids.len() < LISTED {
            self.message_ids.push(message_id);
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelCheck {
    pub channel_id: i64,
    pub ok: bool,
    pub legacy: Side,
    pub stored: Side,
    /// In the legacy database, not stored.
    pub missing: Differences,
    /// Stored with another date, text or deleted flag.
    pub different: Differences,
    /// Stored, at or below the legacy's highest id, but not in the legacy database.
    pub unexpected: Differences,
    /// Stored above the legacy's highest id: ingested by the new gateway since.
    pub newer: u64,
}

/// A message collapsed from several legacy rows.
#[derive(Debug, Clone, Serialize)]
pub struct Collapsed {
    pub channel_id: i64,
    pub message_id: i64,
    pub copies: usize,
    pub legacy_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub version: u32,
    pub ok: bool,
    pub channels: Vec<ChannelCheck>,
    /// Duplicates that explain why the legacy table has more rows than messages.
    pub collapsed: Vec<Collapsed>,
    /// Legacy messages without any date (never imported).
    pub undated: Vec<(i64, i64)>,
}

impl Verification {
    pub fn human(&self) -> String {
        let mut text = String::new();
        for c in &self.channels {
            let _ = writeln!(
                text,
                "channel {}: {}  legacy {} messages (ids {}..{}), stored {}{}",
                c.channel_id,
                if c.ok { "ok" } else { "MISMATCH" },
                c.legacy.messages,
                c.legacy.min_message_id.unwrap_or(0),
                c.legacy.max_message_id.unwrap_or(0),
                c.stored.messages,
                if c.newer > 0 {
                    format!(" (+{} newer, ingested since)", c.newer)
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                text,
                "  checksum legacy {} stored {}",
                &c.legacy.checksum[..16],
                &c.stored.checksum[..16]
            );
            for (what, d) in [
                ("missing", &c.missing),
                ("different", &c.different),
                ("unexpected", &c.unexpected),
            ] {
                if d.count > 0 {
                    let ids: Vec<String> = d.message_ids.iter().map(i64::to_string).collect();
                    let _ = writeln!(text, "  {what}: {} (ids {})", d.count, ids.join(", "));
                }
            }
        }
        let rows: usize = self.collapsed.iter().map(|c| c.copies).sum();
        let _ = writeln!(
            text,
            "collapsed duplicates: {} legacy rows into {} messages{}",
            rows,
            self.collapsed.len(),
            if self.collapsed.is_empty() {
                String::new()
            } else {
                format!(
                    " (e.g. {})",
                    examples(
                        self.collapsed
                            .iter()
                            .map(|c| format!("{}/{} x{}", c.channel_id, c.message_id, c.copies))
                    )
                )
            }
        );
        if !self.undated.is_empty() {
            let _ = writeln!(
                text,
                "never imported (no date): {} messages",
                self.undated.len()
            );
        }
        let _ = writeln!(
            text,
            "{}",
            if self.ok {
                "verified: every legacy message is stored as imported"
            } else {
                "MISMATCH: see the channels above"
            }
        );
        text
    }
}

/// The fingerprint of one message: what must match on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    posted_at: DateTime<Utc>,
    deleted: bool,
    text: [u8; 32],
}

fn fingerprint(posted_at: DateTime<Utc>, deleted: bool, text: &str) -> Fingerprint {
    Fingerprint {
        posted_at,
        deleted,
        text: Sha256::digest(text.as_bytes()).into(),
    }
}

/// Builds a `Verification`: the legacy side first (all of it), then the stored side in the
/// same (channel, message) order.
#[derive(Default)]
pub struct Verifier {
    expected: HashMap<(i64, i64), Fingerprint>,
    checks: BTreeMap<i64, ChannelCheck>,
    collapsed: Vec<Collapsed>,
    undated: Vec<(i64, i64)>,
}

impl Verifier {
    pub fn legacy(&mut self, m: &Imported) {
        let check = self.check(m.channel_id);
        check
            .legacy
            .add(m.message_id, &m.posted_at, m.deleted, &m.text);
        self.expected.insert(
            (m.channel_id, m.message_id),
            fingerprint(m.posted_at, m.deleted, &m.text),
        );
        if m.copies > 1 {
            self.collapsed.push(Collapsed {
                channel_id: m.channel_id,
                message_id: m.message_id,
                copies: m.copies,
                legacy_ids: m.legacy_ids.clone(),
            });
        }
    }

    pub fn undated(&mut self, channel_id: i64, message_id: i64) {
        self.undated.push((channel_id, message_id));
    }

    fn check(&mut self, channel_id: i64) -> &mut ChannelCheck {
        self.checks
            .entry(channel_id)
            .or_insert_with(|| ChannelCheck {
                channel_id,
                ..Default::default()
            })
    }

    /// The channels the legacy side has.
    pub fn channels(&self) -> Vec<i64> {
        self.checks.keys().copied().collect()
    }

    pub fn stored(
        &mut self,
        channel_id: i64,
        message_id: i64,
        posted_at: DateTime<Utc>,
        text: String,
        deleted: bool,
    ) {
        let expected = self.expected.remove(&(channel_id, message_id));
        let check = self.check(channel_id);
        match expected {
            Some(expected) => {
                check.stored.add(message_id, &posted_at, deleted, &text);
                if expected != fingerprint(posted_at, deleted, &text) {
                    check.different.add(message_id);
                }
            }
            None if check
                .legacy
                .max_message_id
                .is_none_or(|max| message_id > max) =>
            {
                check.newer += 1;
            }
            None => {
                check.stored.add(message_id, &posted_at, deleted, &text);
                check.unexpected.add(message_id);
            }
        }
    }

    pub fn finish(mut self) -> Verification {
        let mut missing: Vec<(i64, i64)> = self.expected.keys().copied().collect();
        missing.sort_unstable();
        for (channel_id, message_id) in missing {
            self.check(channel_id).missing.add(message_id);
        }
        let mut channels: Vec<ChannelCheck> = self.checks.into_values().collect();
        for c in &mut channels {
            c.legacy.close();
            c.stored.close();
            c.ok = c.missing.count == 0 && c.different.count == 0 && c.unexpected.count == 0;
        }
        Verification {
            version: 1,
            ok: channels.iter().all(|c| c.ok),
            channels,
            collapsed: self.collapsed,
            undated: self.undated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(id: i64, text: &str, copies: usize) -> Imported {
        Imported {
            channel_id: -100,
            message_id: id,
            posted_at: DateTime::from_timestamp(1_700_000_000 + id, 0).unwrap(),
            text: text.into(),
            sender_id: None,
            reply_to_message_id: None,
            media_type: None,
            edit_date: None,
            deleted: false,
            received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            raw: json!({}),
            copies,
            legacy_ids: Vec::new(),
        }
    }

    fn verify(legacy: &[Imported], stored: &[(i64, &str)]) -> Verification {
        let mut v = Verifier::default();
        for m in legacy {
            v.legacy(m);
        }
        for (id, text) in stored {
            let at = DateTime::from_timestamp(1_700_000_000 + id, 0).unwrap();
            v.stored(-100, *id, at, text.to_string(), false);
        }
        v.finish()
    }

    #[test]
    fn equal_sides_verify_and_share_a_checksum() {
        let legacy = [message(1, "a", 3), message(2, "b", 1)];
        let v = verify(&legacy, &[(1, "a"), (2, "b"), (9, "live")]);
        assert!(v.ok, "{}", v.human());
        let c = &v.channels[0];
        assert_eq!(c.legacy.checksum, c.stored.checksum);
        assert_eq!(c.newer, 1, "a message ingested since is not a mismatch");
        assert_eq!(v.collapsed.len(), 1);
        assert!(
            v.human().contains("3 legacy rows into 1 messages"),
            "{}",
            v.human()
        );
    }

    #[test]
    fn every_kind_of_difference_fails() {
        let legacy = [message(1, "a", 1), message(2, "b", 1), message(4, "d", 1)];
        let v = verify(&legacy, &[(1, "a"), (2, "changed"), (3, "not in legacy")]);
        assert!(!v.ok);
        let c = &v.channels[0];
        assert_eq!(c.missing.message_ids, [4]);
        assert_eq!(c.different.message_ids, [2]);
        assert_eq!(c.unexpected.message_ids, [3]);
        assert_ne!(c.legacy.checksum, c.stored.checksum);
        assert!(v.human().contains("MISMATCH"));
    }

    #[test]
    fn channels_toml_is_valid_toml() {
        let report = ChannelsReport {
            legacy_channels: 1,
            absent_from_model: vec![LegacyChannel {
                id: -1009,
                title: Some("Quotes \"and\" \\ backslash\n".into()),
                username: Some("gamma".into()),
                active: true,
            }],
        };
        let parsed: toml::Table = report.toml().parse().unwrap();
        let channel = &parsed["channels"][0];
        assert_eq!(channel["id"].as_integer(), Some(-1009));
        assert_eq!(
            channel["title"].as_str(),
            Some("Quotes \"and\" \\ backslash\n")
        );
    }
}
