//! Streaming: Anthropic events ⇄ OpenAI chunks, one upstream SSE event at a time, and a usage
//! tap for native Anthropic streams.
//!
//! Owns: the per-stream state machines [`MessagesStreamToChat`], [`ChatStreamToMessages`] and
//! [`MessagesStreamUsage`], and the client-side SSE framing they write.
//!
//! Deliberately does not: split bytes into SSE events (the caller's incremental parser does;
//! we take one event's name and data), buffer upstream output (each event's translation is
//! written immediately), or read a clock (`created_unix` is passed in).
//!
//! Quirks handled: Anthropic sends input and cache tokens in `message_start` and cumulative
//! output tokens in `message_delta`; OpenAI streams carry usage only when asked
//! (`stream_options.include_usage`), in an extra chunk with `choices: []` after the one with
//! `finish_reason`, so the Anthropic `message_delta` is held back until `[DONE]`.
//!
//! Invariants: each call appends zero or more *complete* SSE events to `out`; once
//! `finished()` is true nothing more is written. When the upstream misbehaves, the translator
//! writes a client-shaped error event, finishes, and returns [`Error::InvalidUpstream`] so the
//! caller can log it; the caller forwards `out` either way.

mod to_chat;
mod to_messages;

pub use to_chat::MessagesStreamToChat;
pub use to_messages::ChatStreamToMessages;

use super::wire::{BlockDeltaIn, BlockIn, MessagesUsageIn, Path, StreamEventIn};
use super::{Error, Usage};

fn upstream_event_error(e: &serde_json::Error) -> Error {
    Path::Root.upstream(format!("stream event is not valid: {e}"))
}

// =============================================================================================
// Usage tap for native Anthropic streams
// =============================================================================================

/// Reads usage from a native Anthropic stream passing through unchanged.
///
/// `message_start` carries input and cache counts, `message_delta` the cumulative output count
/// (and, in newer API versions, the input counts again). Malformed events are ignored: the tap
/// must never break a stream it only watches.
#[derive(Debug, Default, Clone)]
pub struct MessagesStreamUsage {
    usage: Option<MessagesUsageIn>,
    text_chars: usize,
}

impl MessagesStreamUsage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one SSE event (its `event:` name, if any, and its `data:` payload).
    pub fn on_event(&mut self, _event: Option<&str>, data: &str) {
        // Anthropic's data carries `type`, which is authoritative; the event name repeats it.
        if let Ok(event) = serde_json::from_str::<StreamEventIn<'_>>(data) {
            self.observe(&event);
        }
    }

    /// Usage seen so far; `None` until an event carried usage.
    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(MessagesUsageIn::to_usage)
    }

    /// Characters of generated text and tool arguments seen so far, for estimating output
    /// tokens when the stream ends before `message_delta`.
    pub fn text_chars(&self) -> usize {
        self.text_chars
    }

    fn observe(&mut self, event: &StreamEventIn<'_>) {
        match event {
            StreamEventIn::MessageStart { message } => self.merge(message.usage),
            StreamEventIn::MessageDelta { usage, .. } => self.merge(*usage),
            StreamEventIn::ContentBlockStart {
                content_block: BlockIn::Text { text },
                ..
            } => {
                self.text_chars = self.text_chars.saturating_add(text.chars().count());
            }
            StreamEventIn::ContentBlockDelta { delta, .. } => {
                let chars = match delta {
                    BlockDeltaIn::TextDelta { text } => text.chars().count(),
                    BlockDeltaIn::InputJsonDelta { partial_json } => partial_json.chars().count(),
                    BlockDeltaIn::Other => 0,
                };
                self.text_chars = self.text_chars.saturating_add(chars);
            }
            _ => {}
        }
    }

    fn merge(&mut self, later: MessagesUsageIn) {
        self.usage
            .get_or_insert_with(MessagesUsageIn::default)
            .merge(later);
    }
}
