//! OpenAI Chat Completions ⇄ Anthropic Messages translation.
//!
//! Owns: converting request bodies, response bodies and streaming events between the two wire
//! formats in both directions, reading token usage out of native Anthropic traffic, and
//! Anthropic-shaped error bodies. Every field of both APIs is either mapped or deliberately
//! dropped; `docs/TRANSLATION.md` lists each one and why.
//!
//! Deliberately does not: do I/O, read clocks or make ids (timestamps and ids are passed in),
//! parse SSE framing (callers hand us one event at a time: name and data), choose HTTP statuses
//! (the server's error module does that), or log. The wire types in `wire.rs` stay private.
//!
//! Invariants a changer must keep:
//! - Every function is pure: same bytes in, same bytes out.
//! - [`Error`] messages name a field path (`messages[2].content[0]`) and never echo prompt text.
//! - Stream translators append only whole SSE events to `out`; after they report
//!   `finished()`, further input is ignored and nothing more is written.
//! - [`Usage`] follows one meaning everywhere: `input` is billed at the normal input price
//!   (Anthropic: `input_tokens + cache_creation_input_tokens`; OpenAI: `prompt_tokens -
//!   cached_tokens`), `cached_input` at the cached price, `output` at the output price.

mod request;
mod response;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use request::{chat_request_to_messages, messages_request_to_chat};
pub use response::{
    chat_response_to_messages, messages_response_to_chat, usage_from_messages_response,
};
pub use stream::{ChatStreamToMessages, MessagesStreamToChat, MessagesStreamUsage};

/// Anthropic requires `max_tokens`; OpenAI makes it optional. When an OpenAI request has
/// neither `max_completion_tokens` nor `max_tokens` we send this many output tokens.
///
/// 4096 is the largest output every current Claude model accepts, so the request never fails
/// on the cap, and it is long enough that ordinary chat answers are not cut short. Budget
/// reservations should use the same number as the worst case for such requests.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Canonical usage (`input` at the input price, `cached_input` at the cached price).
pub use crate::budget::Usage;

/// What went wrong while translating, and whose fault it is.
///
/// Messages carry a field path and a reason, never prompt text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client's request cannot be translated: malformed JSON, a wrong type, or a feature
    /// the other API lacks. The server answers 400 with this message.
    #[error("{path}: {message}")]
    InvalidRequest { path: String, message: String },
    /// The upstream's response or stream event is not what its API documents. The server
    /// answers 502 with a generic message; this text goes to the logs.
    #[error("upstream {path}: {message}")]
    InvalidUpstream { path: String, message: String },
    /// Serializing our own output failed (should not happen: our wire types always encode).
    #[error("failed to encode translated JSON")]
    Encode(#[source] serde_json::Error),
}

impl Error {
    /// True when the client caused the error (answer 4xx), false for upstream or internal faults.
    pub fn is_client_fault(&self) -> bool {
        matches!(self, Self::InvalidRequest { .. })
    }
}

/// An error body in Anthropic's shape: `{"type":"error","error":{"type":kind,"message":message}}`.
///
/// Used on the Anthropic-compatible ingress (`POST /v1/messages`). `kind` is usually
/// [`error_kind_for_status`]'s answer.
pub fn error_body(kind: &str, message: &str) -> Vec<u8> {
    wire::encode_infallible(&wire::AnthropicError::new(kind, message))
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_kind_for_status(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        402..=499 => "invalid_request_error",
        _ => "api_error",
    }
}
