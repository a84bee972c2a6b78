//! Telegram's raw types to [`SourceEvent`]s: pure functions, no client or network, so they
//! are tested on constructed values. Only channel messages of the model's enabled channels
//! become events; everything else Telegram sends (private chats, service messages, typing,
//! reactions, ...) maps to nothing.
//!
//! Channel ids are the model's form, the Bot API "marked" id (`-100` followed by the bare
//! id, e.g. `-1001234567890`), which is what `grammers_session::types::PeerId` holds.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use grammers_session::types::{PeerId, PeerKind};
use grammers_tl_types as tl;
use serde_json::json;
use tgstack::model::Channel;

use crate::source::{IncomingMessage, SourceEvent};

/// The channels whose messages are ingested: the model's `[[channels]]` with `enabled`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelFilter(HashSet<i64>);

impl ChannelFilter {
    pub fn from_model(channels: &[Channel]) -> Self {
        ChannelFilter(
            channels
                .iter()
                .filter(|c| c.enabled)
                .map(|c| c.id)
                .collect(),
        )
    }

    pub fn contains(&self, channel_id: i64) -> bool {
        self.0.contains(&channel_id)
    }

    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().copied()
    }
}

/// The marked id of a channel peer; `None` for users and basic groups.
pub fn channel_id_of(peer: &tl::enums::Peer) -> Option<i64> {
    let id = PeerId::from(peer.clone());
    match id.kind() {
        PeerKind::Channel => id.bot_api_dialog_id(),
        PeerKind::User | PeerKind::Chat => None,
    }
}

/// The marked id of a bare channel id as `updateDeleteChannelMessages` carries it.
pub fn marked_channel_id(bare: i64) -> Option<i64> {
    PeerId::channel(bare).and_then(PeerId::bot_api_dialog_id)
}

fn timestamp(seconds: i32) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(i64::from(seconds), 0)
}

/// Short name of a media kind, stored in `media_type`.
pub fn media_type(media: &tl::enums::MessageMedia) -> Option<&'static str> {
    use tl::enums::MessageMedia as M;
    Some(match media {
        M::Empty => return None,
        M::Photo(_) => "photo",
        M::Geo(_) => "geo",
        M::Contact(_) => "contact",
        M::Unsupported => "unsupported",
        M::Document(_) => "document",
        M::WebPage(_) => "webpage",
        M::Venue(_) => "venue",
        M::Game(_) => "game",
        M::Invoice(_) => "invoice",
        M::GeoLive(_) => "geo_live",
        M::Poll(_) => "poll",
        M::Dice(_) => "dice",
        M::Story(_) => "story",
        M::Giveaway(_) => "giveaway",
        M::GiveawayResults(_) => "giveaway_results",
        M::PaidMedia(_) => "paid_media",
        M::ToDo(_) => "todo",
        M::VideoStream(_) => "video_stream",
    })
}

/// A channel message as the pipeline stores it. `None` for empty and service messages and
/// for messages outside channels.
pub fn map_message(message: &tl::enums::Message) -> Option<IncomingMessage> {
    let tl::enums::Message::Message(message) = message else {
        return None;
    };
    let channel_id = channel_id_of(&message.peer_id)?;
    let reply_to_message_id = match &message.reply_to {
        Some(tl::enums::MessageReplyHeader::Header(header)) => {
            header.reply_to_msg_id.map(i64::from)
        }
        _ => None,
    };
    let media_type = message.media.as_ref().and_then(media_type);
    let sender_id = message
        .from_id
        .as_ref()
        .and_then(|peer| PeerId::from(peer.clone()).bot_api_dialog_id());
    // What the typed columns do not hold, kept for consumers; no secrets live in messages.
    let raw = json!({
        "source": "telegram",
        "id": message.id,
        "date": message.date,
        "edit_date": message.edit_date,
        "post": message.post,
        "silent": message.silent,
        "pinned": message.pinned,
        "post_author": message.post_author,
        "grouped_id": message.grouped_id,
        "views": message.views,
        "forwards": message.forwards,
        "forwarded": message.fwd_from.is_some(),
        "via_bot_id": message.via_bot_id,
        "entities": message.entities.as_ref().map_or(0, Vec::len),
        "media": media_type,
    });
    Some(IncomingMessage {
        channel_id,
        message_id: i64::from(message.id),
        posted_at: timestamp(message.date)?,
        text: message.message.clone(),
        sender_id,
        reply_to_message_id,
        media_type: media_type.map(str::to_string),
        edit_date: message.edit_date.and_then(timestamp),
        raw,
    })
}

/// One update to at most one event, keeping only enabled channels.
pub fn map_update(update: &tl::enums::Update, channels: &ChannelFilter) -> Option<SourceEvent> {
    use tl::enums::Update as U;
    let event = match update {
        U::NewChannelMessage(u) => SourceEvent::New(map_message(&u.message)?),
        U::NewMessage(u) => SourceEvent::New(map_message(&u.message)?),
        U::EditChannelMessage(u) => SourceEvent::Edit(map_message(&u.message)?),
        U::EditMessage(u) => SourceEvent::Edit(map_message(&u.message)?),
        U::DeleteChannelMessages(u) => SourceEvent::Delete {
            channel_id: marked_channel_id(u.channel_id)?,
            message_ids: u.messages.iter().copied().map(i64::from).collect(),
        },
        // updateDeleteMessages names no peer: it is only sent for private chats and basic
        // groups, never for channels.
        _ => return None,
    };
    channels.contains(event.channel_id()).then_some(event)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const ALPHA: i64 = -1001234567890;
    pub const ALPHA_BARE: i64 = 1234567890;
    const DISABLED: i64 = -1001234567892;

    fn channels() -> ChannelFilter {
        let channel = |id, enabled| Channel {
            id,
            username: None,
            title: "t".into(),
            enabled,
        };
        ChannelFilter::from_model(&[channel(ALPHA, true), channel(DISABLED, false)])
    }

    pub fn channel_peer(bare: i64) -> tl::enums::Peer {
        tl::types::PeerChannel { channel_id: bare }.into()
    }

    /// A full `message` constructor with every optional field empty.
    pub fn message(id: i32, peer: tl::enums::Peer, date: i32, text: &str) -> tl::types::Message {
        tl::types::Message {
            out: false,
            mentioned: false,
            media_unread: false,
            silent: false,
            post: true,
            from_scheduled: false,
            legacy: false,
            edit_hide: false,
            pinned: false,
            noforwards: false,
            invert_media: false,
            offline: false,
            video_processing_pending: false,
            paid_suggested_post_stars: false,
            paid_suggested_post_ton: false,
            id,
            from_id: None,
            from_boosts_applied: None,
            from_rank: None,
            peer_id: peer,
            saved_peer_id: None,
            fwd_from: None,
            via_bot_id: None,
            via_business_bot_id: None,
            guestchat_via_from: None,
            reply_to: None,
            date,
            message: text.into(),
            media: None,
            reply_markup: None,
            entities: None,
            views: Some(10),
            forwards: None,
            replies: None,
            edit_date: None,
            post_author: None,
            grouped_id: None,
            reactions: None,
            restriction_reason: None,
            ttl_period: None,
            quick_reply_shortcut_id: None,
            effect: None,
            factcheck: None,
            report_delivery_until_date: None,
            paid_message_stars: None,
            suggested_post: None,
            schedule_repeat_period: None,
            summary_from_language: None,
            rich_message: None,
        }
    }

    fn reply_header(to: i32) -> tl::enums::MessageReplyHeader {
        tl::types::MessageReplyHeader {
            reply_to_scheduled: false,
            forum_topic: false,
            quote: false,
            reply_to_ephemeral: false,
            reply_to_msg_id: Some(to),
            reply_to_peer_id: None,
            reply_from: None,
            reply_media: None,
            reply_to_top_id: None,
            quote_text: None,
            quote_entities: None,
            quote_offset: None,
            todo_item_id: None,
            poll_option: None,
        }
        .into()
    }

    fn new_channel_message(message: tl::types::Message) -> tl::enums::Update {
        tl::types::UpdateNewChannelMessage {
            message: message.into(),
            pts: 1,
            pts_count: 1,
        }
        .into()
    }

    #[test]
    fn channel_ids_use_the_marked_form_of_the_model() {
        assert_eq!(channel_id_of(&channel_peer(ALPHA_BARE)), Some(ALPHA));
        assert_eq!(marked_channel_id(ALPHA_BARE), Some(ALPHA));
        let user: tl::enums::Peer = tl::types::PeerUser { user_id: 5 }.into();
        assert_eq!(channel_id_of(&user), None);
    }

    #[test]
    fn new_channel_message_maps_every_column() {
        let mut raw = message(42, channel_peer(ALPHA_BARE), 1_700_000_000, "BUY BTC");
        raw.reply_to = Some(reply_header(41));
        raw.from_id = Some(tl::types::PeerUser { user_id: 777 }.into());
        raw.media = Some(
            tl::types::MessageMediaDice {
                value: 6,
                emoticon: "🎲".into(),
                game_outcome: None,
            }
            .into(),
        );
        let event = map_update(&new_channel_message(raw), &channels()).expect("an event");
        let SourceEvent::New(message) = event else {
            panic!("expected New, got {event:?}");
        };
        assert_eq!(message.channel_id, ALPHA);
        assert_eq!(message.message_id, 42);
        assert_eq!(message.posted_at.timestamp(), 1_700_000_000);
        assert_eq!(message.text, "BUY BTC");
        assert_eq!(message.sender_id, Some(777));
        assert_eq!(message.reply_to_message_id, Some(41));
        assert_eq!(message.media_type.as_deref(), Some("dice"));
        assert_eq!(message.edit_date, None);
        assert_eq!(message.raw["views"], 10);
        assert_eq!(message.raw["media"], "dice");
    }

    #[test]
    fn edits_carry_the_edit_date() {
        let mut raw = message(7, channel_peer(ALPHA_BARE), 1_700_000_000, "edited");
        raw.edit_date = Some(1_700_000_060);
        let update: tl::enums::Update = tl::types::UpdateEditChannelMessage {
            message: raw.into(),
            pts: 2,
            pts_count: 1,
        }
        .into();
        let Some(SourceEvent::Edit(message)) = map_update(&update, &channels()) else {
            panic!("expected an edit");
        };
        assert_eq!(message.text, "edited");
        assert_eq!(
            message.edit_date.map(|d| d.timestamp()),
            Some(1_700_000_060)
        );
    }

    #[test]
    fn channel_deletions_map_with_marked_id() {
        let update: tl::enums::Update = tl::types::UpdateDeleteChannelMessages {
            channel_id: ALPHA_BARE,
            messages: vec![3, 4],
            pts: 3,
            pts_count: 2,
        }
        .into();
        assert_eq!(
            map_update(&update, &channels()),
            Some(SourceEvent::Delete {
                channel_id: ALPHA,
                message_ids: vec![3, 4]
            })
        );
        // Private-chat deletions name no channel.
        let private: tl::enums::Update = tl::types::UpdateDeleteMessages {
            messages: vec![1],
            pts: 1,
            pts_count: 1,
        }
        .into();
        assert_eq!(map_update(&private, &channels()), None);
    }

    #[test]
    fn disabled_and_unknown_channels_and_private_chats_are_dropped() {
        let disabled = message(1, channel_peer(1234567892), 1_700_000_000, "x");
        assert_eq!(
            map_update(&new_channel_message(disabled), &channels()),
            None
        );
        let unknown = message(1, channel_peer(999), 1_700_000_000, "x");
        assert_eq!(map_update(&new_channel_message(unknown), &channels()), None);
        let private = message(1, tl::types::PeerUser { user_id: 5 }.into(), 1, "hi");
        let update: tl::enums::Update = tl::types::UpdateNewMessage {
            message: private.into(),
            pts: 1,
            pts_count: 1,
        }
        .into();
        assert_eq!(map_update(&update, &channels()), None);
    }

    #[test]
    fn empty_and_service_messages_map_to_nothing() {
        let empty: tl::enums::Message = tl::types::MessageEmpty {
            id: 1,
            peer_id: Some(channel_peer(ALPHA_BARE)),
        }
        .into();
        assert_eq!(map_message(&empty), None);
        let service: tl::enums::Message = tl::types::MessageService {
            out: false,
            mentioned: false,
            media_unread: false,
            reactions_are_possible: false,
            silent: false,
            post: true,
            legacy: false,
            id: 2,
            from_id: None,
            peer_id: channel_peer(ALPHA_BARE),
            saved_peer_id: None,
            reply_to: None,
            date: 1_700_000_000,
            action: tl::enums::MessageAction::Empty,
            reactions: None,
            ttl_period: None,
        }
        .into();
        assert_eq!(map_message(&service), None);
    }

    #[test]
    fn other_updates_map_to_nothing() {
        let update: tl::enums::Update = tl::types::UpdateChannelTooLong {
            channel_id: ALPHA_BARE,
            pts: None,
        }
        .into();
        assert_eq!(map_update(&update, &channels()), None);
    }
}
