//! Names of database objects that the rendered migrations create and that code outside the
//! templates refers to (the gateway's statements): spelled once, here.

/// The unique constraint of `messages` on (channel_id, message_id, posted_at): the
/// `ON CONFLICT ON CONSTRAINT` target of every insert that deduplicates stored messages.
pub const MESSAGES_UNIQUE_CONSTRAINT: &str = "messages_channel_message_key";
