//! Opaque keyset cursors for `GET /api/messages`.
//!
//! A cursor is the sort key `(posted_at, channel_id, message_id)` of the last row of a page,
//! plus the sort order it belongs to. The next page continues strictly after that key, so
//! rows inserted while a client walks the pages never shift or repeat what it sees.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

/// Sort order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first (default): a client following the feed sees new rows at the end.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

impl Order {
    fn tag(self) -> &'static str {
        match self {
            Order::Asc => "a",
            Order::Desc => "d",
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }

    /// Row-value comparison that selects the rows after the cursor in this order.
    pub fn after(self) -> &'static str {
        match self {
            Order::Asc => ">",
            Order::Desc => "<",
        }
    }
}

/// Position after which the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub order: Order,
    pub posted_at: DateTime<Utc>,
    pub channel_id: i64,
    pub message_id: i64,
}

const VERSION: &str = "1";

/// Times the API accepts, in parameters and cursors: RFC 3339's four-digit years, all of
/// which PostgreSQL's `timestamptz` can hold (its range is 4713 BC to 294276 AD).
pub fn in_range(time: DateTime<Utc>) -> bool {
    (0..=9999).contains(&chrono::Datelike::year(&time))
}

impl Cursor {
    pub fn encode(&self) -> String {
        let text = format!(
            "{VERSION}:{}:{}:{}:{}",
            self.order.tag(),
            self.posted_at.timestamp_micros(),
            self.channel_id,
            self.message_id
        );
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Parses a cursor produced by [`Cursor::encode`]; anything else is `None`.
    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split(':');
        if parts.next()? != VERSION {
            return None;
        }
        let order = match parts.next()? {
            "a" => Order::Asc,
            "d" => Order::Desc,
            _ => return None,
        };
        let micros: i64 = parts.next()?.parse().ok()?;
        let channel_id: i64 = parts.next()?.parse().ok()?;
        let message_id: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Cursor {
            order,
            posted_at: DateTime::from_timestamp_micros(micros).filter(|time| in_range(*time))?,
            channel_id,
            message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_microseconds() {
        let cursor = Cursor {
            order: Order::Desc,
            posted_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            channel_id: -1001234567890,
            message_id: 42,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn rejects_garbage_and_other_versions() {
        assert_eq!(Cursor::decode(""), None);
        assert_eq!(Cursor::decode("not base64 !"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("2:a:1:2:3")), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1:x:1:2:3")), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1:a:1:2:3:4")), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1:a:1:2")), None);
    }

    #[test]
    fn rejects_times_outside_four_digit_years() {
        // -5000-01-01 and 10000-01-01: chrono holds them, PostgreSQL or RFC 3339 does not.
        for micros in [-220_000_000_000_000_000_i64, 253_402_300_800_000_000] {
            let text = URL_SAFE_NO_PAD.encode(format!("1:a:{micros}:1:2"));
            assert_eq!(Cursor::decode(&text), None, "{micros}");
        }
        let last = URL_SAFE_NO_PAD.encode("1:a:253402300799999999:1:2");
        assert!(Cursor::decode(&last).is_some());
    }
}
