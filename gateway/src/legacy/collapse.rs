//! The documented mapping of legacy rows onto the new schema, as pure functions: channel
//! ids normalised, the copies of one Telegram message collapsed into one row.
//!
//! The rule (docs/legacy-import.md): the copies of one message are the legacy rows with the
//! same normalised channel and message id. The stored row takes its content from the copy
//! with the most advanced status (published > reprocessed > queued > reprocess_pending >
//! retrying > received > failed > anything else), then the latest `updated_at`, then the
//! latest `created_at`, then the greatest legacy id (as a number when ids are numbers), then
//! the row's own text (so the choice never depends on read order). The message is deleted when any copy
//! is. `posted_at` is that copy's Telegram date, else the earliest Telegram date of any
//! copy, else the earliest `created_at`; `received_at` is the earliest receipt of any copy.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Bot API channel ids are `-100` followed by the channel's own id.
const CHANNEL_OFFSET: i64 = 1_000_000_000_000;

/// A channel id as the legacy databases wrote it (`-1001234567890` or a bare
/// `1234567890`), in the model's form; `None` when it is not a number.
pub fn normalise_channel(text: &str) -> Option<i64> {
    let value: i64 = text.trim().parse().ok()?;
    Some(normalise_channel_id(value))
}

/// A bare positive channel id gets the `-100` prefix; a negative id is already in the
/// model's form.
pub fn normalise_channel_id(value: i64) -> i64 {
    if value > 0 && value < CHANNEL_OFFSET {
        -(CHANNEL_OFFSET + value)
    } else {
        value
    }
}

/// One legacy row, read through the common projection of either shape.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRow {
    pub channel_id: i64,
    pub message_id: i64,
    pub status: Option<String>,
    pub deleted: bool,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub media_type: Option<String>,
    pub telegram_date: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    /// The legacy primary key as text (a UUID or a serial number).
    pub legacy_id: Option<String>,
    /// The whole legacy row (media references and metadata included).
    pub row: Value,
}

/// One message of the new schema made from the copies of a legacy message.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub channel_id: i64,
    pub message_id: i64,
    pub posted_at: DateTime<Utc>,
    pub text: String,
    pub sender_id: Option<i64>,
    pub reply_to_message_id: Option<i64>,
    pub media_type: Option<String>,
    pub edit_date: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub received_at: DateTime<Utc>,
    pub raw: Value,
    /// How many legacy rows were collapsed into this one (1: no duplicate).
    pub copies: usize,
    pub legacy_ids: Vec<String>,
}

/// A legacy id ordered as a number when both are numbers (serial ids: 10 after 9), as
/// text otherwise (UUIDs); a row without an id comes first.
#[derive(PartialEq, Eq)]
struct LegacyId<'a>(Option<&'a str>);

impl Ord for LegacyId<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.0, other.0) {
            (Some(a), Some(b)) => match (a.parse::<i128>(), b.parse::<i128>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.cmp(b),
            },
            (a, b) => a.cmp(&b),
        }
    }
}

impl PartialOrd for LegacyId<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What the copy a message takes its content from maximises (see the module comment).
type ChoiceKey<'a> = (
    u8,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    LegacyId<'a>,
    String,
);

fn choice_key(r: &LegacyRow) -> ChoiceKey<'_> {
    (
        status_rank(r.status.as_deref()),
        r.updated_at,
        r.created_at,
        LegacyId(r.legacy_id.as_deref()),
        // Last: the whole row, so even identical keys do not depend on read order.
        r.row.to_string(),
    )
}

/// How far a status got in the legacy pipeline (higher: further).
pub fn status_rank(status: Option<&str>) -> u8 {
    match status {
        Some("published") => 7,
        Some("reprocessed") => 6,
        Some("queued") => 5,
        Some("reprocess_pending") => 4,
        Some("retrying") => 3,
        Some("received") => 2,
        Some("failed") => 1,
        _ => 0,
    }
}

/// The copies of one message as one row; `None` when no copy has any date to store it at.
/// `copies` must be non-empty and share channel and message id.
pub fn collapse(copies: &[LegacyRow], shape: &str) -> Option<Imported> {
    let content = copies
        .iter()
        .max_by(|a, b| choice_key(a).cmp(&choice_key(b)))?;
    let posted_at = content
        .telegram_date
        .or_else(|| copies.iter().filter_map(|r| r.telegram_date).min())
        .or_else(|| copies.iter().filter_map(|r| r.created_at).min())?;
    let received_at = copies
        .iter()
        .filter_map(|r| r.received_at.or(r.created_at))
        .min()
        .unwrap_or(posted_at);
    let metadata = content.row.get("metadata");
    let metadata_i64 = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_i64);
    let edit_date = metadata
        .and_then(|m| m.get("edit_date"))
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|d| d.with_timezone(&Utc));
    let mut legacy_ids: Vec<String> = copies.iter().filter_map(|r| r.legacy_id.clone()).collect();
    legacy_ids.sort();
    let text = content
        .text
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| content.caption.clone())
        .unwrap_or_default();
    Some(Imported {
        channel_id: content.channel_id,
        message_id: content.message_id,
        posted_at,
        text,
        sender_id: metadata_i64("sender_id"),
        reply_to_message_id: metadata_i64("reply_to_message_id"),
        media_type: content.media_type.clone(),
        edit_date,
        deleted: copies.iter().any(|r| r.deleted),
        received_at,
        raw: json!({
            "legacy": { "shape": shape, "row": content.row, "copies": copies.len(), "ids": legacy_ids },
        }),
        copies: copies.len(),
        legacy_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(&format!("2026-03-01T10:{minute:02}:00Z"))
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    fn copy(id: &str, status: &str, text: &str, created: u32) -> LegacyRow {
        LegacyRow {
            channel_id: -1001234567890,
            message_id: 42,
            status: Some(status.into()),
            deleted: status == "deleted",
            text: Some(text.into()),
            caption: None,
            media_type: None,
            telegram_date: at(0),
            created_at: at(created),
            updated_at: None,
            received_at: at(created),
            legacy_id: Some(id.into()),
            row: json!({ "id": id, "metadata": { "sender_id": 7 } }),
        }
    }

    #[test]
    fn both_channel_forms_become_the_bot_api_form() {
        assert_eq!(normalise_channel("-1001234567890"), Some(-1001234567890));
        assert_eq!(normalise_channel("1234567890"), Some(-1001234567890));
        assert_eq!(normalise_channel(" 1234567890 "), Some(-1001234567890));
        assert_eq!(
            normalise_channel("-4567"),
            Some(-4567),
            "a basic group stays"
        );
        assert_eq!(normalise_channel("@signals"), None);
        assert_eq!(normalise_channel_id(1234567890), -1001234567890);
    }

    #[test]
    fn the_most_advanced_status_wins_then_the_latest_edit() {
        let copies = [
            copy("a", "received", "first", 1),
            copy("b", "published", "published text", 2),
            copy("c", "failed", "later but failed", 3),
        ];
        let one = collapse(&copies, "A").unwrap();
        assert_eq!(one.text, "published text");
        assert_eq!(one.copies, 3);
        assert_eq!(one.legacy_ids, ["a", "b", "c"]);
        assert_eq!(one.received_at, at(1).unwrap(), "the earliest receipt");
        assert_eq!(one.sender_id, Some(7));
        assert!(!one.deleted);
        // Same status: the later updated_at wins.
        let mut edited = copy("d", "published", "edited", 1);
        edited.updated_at = at(30);
        let one = collapse(&[copies[1].clone(), edited], "A").unwrap();
        assert_eq!(one.text, "edited");
    }

    #[test]
    fn a_deleted_copy_deletes_the_message_but_keeps_the_content() {
        let copies = [
            copy("a", "published", "kept", 1),
            copy("b", "deleted", "", 5),
        ];
        let one = collapse(&copies, "A").unwrap();
        assert!(one.deleted);
        assert_eq!(one.text, "kept");
    }

    #[test]
    fn dates_fall_back_and_a_row_without_any_is_refused() {
        let mut only_created = copy("a", "received", "x", 9);
        only_created.telegram_date = None;
        assert_eq!(
            collapse(&[only_created.clone()], "B").unwrap().posted_at,
            at(9).unwrap()
        );
        only_created.created_at = None;
        assert_eq!(collapse(&[only_created], "B"), None);
        let mut caption = copy("a", "received", "", 1);
        caption.caption = Some("photo caption".into());
        assert_eq!(collapse(&[caption], "A").unwrap().text, "photo caption");
    }

    #[test]
    fn serial_ids_break_ties_as_numbers() {
        let copies = [
            copy("9", "queued", "nine", 1),
            copy("10", "queued", "ten", 1),
        ];
        assert_eq!(collapse(&copies, "B").unwrap().text, "ten");
    }

    #[test]
    fn the_choice_does_not_depend_on_the_order_read() {
        let copies = [
            copy("a", "queued", "q", 1),
            copy("b", "queued", "q2", 1),
            copy("c", "retrying", "r", 4),
        ];
        let forward = collapse(&copies, "A").unwrap();
        let mut reversed = copies.to_vec();
        reversed.reverse();
        assert_eq!(collapse(&reversed, "A").unwrap(), forward);
        assert_eq!(forward.text, "q2", "the greatest legacy id breaks the tie");
    }
}
