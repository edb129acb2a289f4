//! Request bodies: OpenAI chat request → Anthropic Messages request, and back.
//!
//! Owns: walking a client request field by field, rejecting what the other API cannot express
//! with a path-precise [`Error`], and building the upstream body.
//!
//! Deliberately does not: validate what the upstream validates anyway (value ranges, model
//! names, schema contents), or keep fields that have no counterpart: those are dropped, and
//! `TRANSLATION.md` says why for each one. Unknown fields are ignored, as both APIs' SDKs
//! send new fields before we know them.
//!
//! Invariants: the output always has the upstream model; an Anthropic request always has
//! `max_tokens` and strictly alternating user/assistant turns; prompt text is borrowed from the
//! parsed input and never appears in an error.

mod to_chat;
mod to_messages;

pub use to_chat::messages_request_to_chat;
pub use to_messages::chat_request_to_messages;
