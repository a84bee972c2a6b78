//! What every source (Telegram, replay) produces and the pipeline consumes. The serde
//! form of [`SourceEvent`] is also the replay format: one JSON object per line, tagged
//! with `"kind": "new" | "edit" | "delete"`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// One message as a source saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingMessage {
    pub channel_id: i64,
    pub message_id: i64,
    /// Telegram's message date (UTC); part of the stored row's identity.
    pub posted_at: DateTime<Utc>,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub sender_id: Option<i64>,
    #[serde(default)]
    pub reply_to_message_id: Option<i64>,
    #[serde(default)]
    pub media_type: Option<String>,
    /// Set on edits: when Telegram says the message was last edited.
    #[serde(default)]
    pub edit_date: Option<DateTime<Utc>>,
    /// The source's own representation, stored as `raw jsonb`.
    #[serde(default = "empty_object")]
    pub raw: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A change a source observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceEvent {
    New(IncomingMessage),
    Edit(IncomingMessage),
    Delete {
        channel_id: i64,
        message_ids: Vec<i64>,
    },
}

impl SourceEvent {
    pub fn channel_id(&self) -> i64 {
        match self {
            SourceEvent::New(m) | SourceEvent::Edit(m) => m.channel_id,
            SourceEvent::Delete { channel_id, .. } => *channel_id,
        }
    }

    /// Parses one replay line; `None` for blank lines.
    pub fn from_json_line(line: &str) -> Option<Result<Self, serde_json::Error>> {
        let line = line.trim();
        if line.is_empty() {
            None
        } else {
            Some(serde_json::from_str(line))
        }
    }
}

/// The pipeline closed: the process is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the ingestion pipeline is closed")]
pub struct PipelineClosed;

/// The handle every source feeds. Bounded: when storage is slow or down, `send` waits,
/// so a source slows down instead of anything being dropped.
#[derive(Debug, Clone)]
pub struct EventSink {
    sender: mpsc::Sender<Received>,
}

/// An event and when the gateway received it (for end-to-end latency).
#[derive(Debug)]
pub struct Received {
    pub event: SourceEvent,
    pub at: std::time::Instant,
}

impl EventSink {
    /// A sink and the receiving end the pipeline consumes.
    pub fn channel(capacity: usize) -> (EventSink, mpsc::Receiver<Received>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (EventSink { sender }, receiver)
    }

    pub async fn send(&self, event: SourceEvent) -> Result<(), PipelineClosed> {
        self.sender
            .send(Received {
                event,
                at: std::time::Instant::now(),
            })
            .await
            .map_err(|_| PipelineClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_lines_round_trip_with_a_kind_tag() {
        let line = r#"{"kind":"new","channel_id":-100,"message_id":7,"posted_at":"2026-01-02T03:04:05Z","text":"hi"}"#;
        let event = SourceEvent::from_json_line(line).unwrap().unwrap();
        let SourceEvent::New(message) = &event else {
            panic!("expected a new message, got {event:?}");
        };
        assert_eq!(message.channel_id, -100);
        assert_eq!(message.raw, serde_json::json!({}));
        let again = serde_json::to_string(&event).unwrap();
        assert!(again.contains(r#""kind":"new""#), "{again}");
        assert_eq!(SourceEvent::from_json_line(&again).unwrap().unwrap(), event);
        let delete = r#"{"kind":"delete","channel_id":-100,"message_ids":[1,2]}"#;
        assert_eq!(
            SourceEvent::from_json_line(delete).unwrap().unwrap(),
            SourceEvent::Delete {
                channel_id: -100,
                message_ids: vec![1, 2]
            }
        );
        assert!(SourceEvent::from_json_line("  ").is_none());
        assert!(
            SourceEvent::from_json_line(r#"{"kind":"bogus"}"#)
                .unwrap()
                .is_err()
        );
    }
}
