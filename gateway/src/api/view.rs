//! What the API answers with: a stored message and a page of them. The read cache stores
//! the JSON of [`MessageView`] as serde writes it, so a page served from Redis is byte for
//! byte the page the database path serves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::cursor::{Cursor, Order};

/// A stored message as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct MessageView {
    channel_id: i64,
    message_id: i64,
    posted_at: DateTime<Utc>,
    text: String,
    sender_id: Option<i64>,
    reply_to_message_id: Option<i64>,
    media_type: Option<String>,
    edit_date: Option<DateTime<Utc>>,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<DateTime<Utc>>,
}

impl MessageView {
    pub(crate) fn from_row(row: &Row, detailed: bool) -> Result<Self, tokio_postgres::Error> {
        Ok(MessageView {
            channel_id: row.try_get("channel_id")?,
            message_id: row.try_get("message_id")?,
            posted_at: row.try_get("posted_at")?,
            text: row.try_get("text")?,
            sender_id: row.try_get("sender_id")?,
            reply_to_message_id: row.try_get("reply_to_message_id")?,
            media_type: row.try_get("media_type")?,
            edit_date: row.try_get("edit_date")?,
            deleted: row.try_get("deleted")?,
            raw: if detailed { row.try_get("raw")? } else { None },
            received_at: if detailed {
                row.try_get("received_at")?
            } else {
                None
            },
        })
    }

    pub(crate) fn cursor(&self, order: Order) -> Cursor {
        self.key().cursor(order)
    }

    pub(crate) fn key(&self) -> MessageKey {
        MessageKey {
            channel_id: self.channel_id,
            message_id: self.message_id,
            posted_at: self.posted_at,
        }
    }

    pub(crate) fn edit_date(&self) -> Option<DateTime<Utc>> {
        self.edit_date
    }

    pub(crate) fn deleted(&self) -> bool {
        self.deleted
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct MessagePage {
    pub(crate) messages: Vec<MessageView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// The sort key of a message, read back from its JSON (the cache's page ends).
#[derive(Debug, Deserialize)]
pub(crate) struct MessageKey {
    pub(crate) channel_id: i64,
    pub(crate) message_id: i64,
    pub(crate) posted_at: DateTime<Utc>,
}

impl MessageKey {
    pub(crate) fn cursor(&self, order: Order) -> Cursor {
        Cursor {
            order,
            posted_at: self.posted_at,
            channel_id: self.channel_id,
            message_id: self.message_id,
        }
    }
}
