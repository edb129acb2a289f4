//! `Exchange`: what differs between the four pairings of client wire format (OpenAI chat or
//! Anthropic messages) and provider kind (OpenAI-compatible or Anthropic).
//!
//! Same format both sides: the body passes through with only `model` rewritten (and, for
//! OpenAI streams, usage requested). Different formats: `providers::anthropic` translates the
//! request, the response and the stream. The request path calls the same three methods
//! whatever the pairing.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::error::{ApiError, Dialect};
use crate::chat;
use crate::policy::ProviderKind;
use crate::providers::anthropic::{
    self, ChatStreamToMessages, MessagesStreamToChat, MessagesStreamUsage,
};
use crate::providers::{StreamMode, openai};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// OpenAI client, OpenAI-compatible provider.
    OpenAiPassthrough,
    /// Anthropic client, Anthropic provider.
    AnthropicPassthrough,
    /// OpenAI client, Anthropic provider.
    OpenAiToAnthropic,
    /// Anthropic client, OpenAI-compatible provider.
    AnthropicToOpenAi,
}

impl Exchange {
    pub fn new(client: Dialect, provider: ProviderKind) -> Exchange {
        match (client, provider) {
            (Dialect::OpenAi, ProviderKind::Openai) => Exchange::OpenAiPassthrough,
            (Dialect::Anthropic, ProviderKind::Anthropic) => Exchange::AnthropicPassthrough,
            (Dialect::OpenAi, ProviderKind::Anthropic) => Exchange::OpenAiToAnthropic,
            (Dialect::Anthropic, ProviderKind::Openai) => Exchange::AnthropicToOpenAi,
        }
    }

    pub fn is_passthrough(self) -> bool {
        matches!(
            self,
            Exchange::OpenAiPassthrough | Exchange::AnthropicPassthrough
        )
    }

    /// The body to send upstream for `upstream_model`.
    pub fn request(
        self,
        request: &chat::Request<'_>,
        original: &[u8],
        upstream_model: &str,
    ) -> Result<Bytes, ApiError> {
        let body = match self {
            Exchange::OpenAiPassthrough => request.to_upstream(upstream_model, true),
            Exchange::AnthropicPassthrough => request.to_upstream(upstream_model, false),
            Exchange::OpenAiToAnthropic => {
                anthropic::chat_request_to_messages(original, upstream_model)
                    .map_err(ApiError::Untranslatable)?
            }
            Exchange::AnthropicToOpenAi => {
                anthropic::messages_request_to_chat(original, upstream_model)
                    .map_err(ApiError::Untranslatable)?
            }
        };
        Ok(Bytes::from(body))
    }

    /// The body for the client and what it says about usage.
    pub fn response(
        self,
        body: Bytes,
        client_model: &str,
    ) -> Result<(Bytes, openai::Reading), ApiError> {
        match self {
            Exchange::OpenAiPassthrough => {
                let reading = openai::read(&body);
                Ok((body, reading))
            }
            Exchange::AnthropicPassthrough => {
                let reading = openai::Reading {
                    usage: anthropic::usage_from_messages_response(&body),
                    usage_only: false,
                    text_chars: body.len() / 2,
                };
                Ok((body, reading))
            }
            Exchange::OpenAiToAnthropic => {
                let (out, usage) =
                    anthropic::messages_response_to_chat(&body, client_model, unix_now())
                        .map_err(ApiError::BadUpstream)?;
                Ok((Bytes::from(out), reading(usage)))
            }
            Exchange::AnthropicToOpenAi => {
                let (out, usage) = anthropic::chat_response_to_messages(&body, client_model)
                    .map_err(ApiError::BadUpstream)?;
                Ok((Bytes::from(out), reading(usage)))
            }
        }
    }

    /// How `UsageTap` reads and rewrites the stream.
    pub fn stream_mode(
        self,
        request: &chat::Request<'_>,
        client_model: &str,
        id: &str,
    ) -> StreamMode {
        match self {
            Exchange::OpenAiPassthrough => StreamMode::OpenAi {
                hide_usage: request.hides_usage(),
            },
            Exchange::AnthropicPassthrough => StreamMode::Anthropic(MessagesStreamUsage::new()),
            Exchange::OpenAiToAnthropic => StreamMode::AnthropicToOpenAi(Box::new(
                MessagesStreamToChat::new(client_model, request.include_usage, unix_now(), id),
            )),
            Exchange::AnthropicToOpenAi => {
                StreamMode::OpenAiToAnthropic(Box::new(ChatStreamToMessages::new(client_model, id)))
            }
        }
    }
}

fn reading(usage: crate::budget::Usage) -> openai::Reading {
    openai::Reading {
        usage: Some(usage),
        usage_only: false,
        text_chars: 0,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The message of an upstream error body in either shape, for re-shaping; generic if none.
pub fn upstream_error_message(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    value
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .map_or_else(
            || "the upstream provider rejected the request".to_owned(),
            str::to_owned,
        )
}

/// Whether a complete answer (in the client's format) was cut at the token limit, and its
/// text, for the escalation checks.
pub fn answer_summary(dialect: Dialect, body: &[u8]) -> (bool, Option<String>) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match dialect {
        Dialect::OpenAi => {
            let choice = value.get("choices").and_then(|c| c.get(0));
            let truncated = choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(|f| f.as_str())
                == Some("length");
            let text = choice
                .and_then(|c| c.get("message"))
                .and_then(|m| m.get("content"))
                .and_then(|t| t.as_str())
                .map(str::to_owned);
            (truncated, text)
        }
        Dialect::Anthropic => {
            let truncated = value.get("stop_reason").and_then(|s| s.as_str()) == Some("max_tokens");
            let text = value
                .get("content")
                .and_then(|c| c.as_array())
                .map(|blocks| {
                    blocks
                        .iter()
                        .filter_map(|b| b.get("text").and_then(|t| t.as_str()))
                        .collect::<String>()
                });
            (truncated, text)
        }
    }
}
