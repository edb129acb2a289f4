//! OpenAI-compatible wire knowledge: reading usage and text from responses and stream chunks.
//!
//! Quirk handled: OpenAI-compatible streams carry usage only when asked
//! (`stream_options.include_usage`), in one extra final chunk whose `choices` is empty.
//! `prompt_tokens` includes cached tokens (`prompt_tokens_details.cached_tokens`), so the
//! canonical `Usage.input` subtracts them.

use std::borrow::Cow;

use serde::Deserialize;

use crate::budget::Usage;

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl WireUsage {
    fn canonical(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens);
        Usage {
            input: self.prompt_tokens - cached,
            cached_input: cached,
            output: self.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Text<'a>>,
    #[serde(borrow, default)]
    message: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Text<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a serde_json::value::RawValue>,
}

impl Text<'_> {
    fn chars(&self) -> usize {
        self.content.as_deref().map_or(0, |c| c.chars().count())
            + self.tool_calls.map_or(0, |t| t.get().len())
    }
}

/// What one response body or stream chunk says.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub usage: Option<Usage>,
    /// The chunk has usage and no choices: the extra chunk `include_usage` adds.
    pub usage_only: bool,
    /// Characters of generated text (content and tool-call arguments), for estimates.
    pub text_chars: usize,
}

/// Read a chat completion, a stream chunk's `data`, or an embeddings response.
/// Unreadable input reads as nothing (the stream is still forwarded).
pub fn read(json: &[u8]) -> Reading {
    let Ok(env) = serde_json::from_slice::<Envelope<'_>>(json) else {
        return Reading::default();
    };
    let usage = env.usage.as_ref().map(WireUsage::canonical);
    let choices = env.choices.as_deref().unwrap_or_default();
    let text_chars = choices
        .iter()
        .map(|c| {
            c.delta
                .as_ref()
                .or(c.message.as_ref())
                .map_or(0, Text::chars)
        })
        .sum();
    Reading {
        usage,
        usage_only: usage.is_some() && choices.is_empty(),
        text_chars,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_with_cached_tokens() {
        let r = read(br#"{"choices":[{"message":{"content":"hello"}}],"usage":{"prompt_tokens":100,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":40}}}"#);
        assert_eq!(
            r.usage,
            Some(Usage {
                input: 60,
                cached_input: 40,
                output: 7
            })
        );
        assert_eq!(r.text_chars, 5);
        assert!(!r.usage_only);
    }

    #[test]
    fn recognises_the_usage_only_chunk() {
        let r =
            read(br#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#);
        assert!(r.usage_only);
        let r =
            read(r#"{"id":"c","choices":[{"delta":{"content":"hé"}}],"usage":null}"#.as_bytes());
        assert_eq!(
            r,
            Reading {
                usage: None,
                usage_only: false,
                text_chars: 2
            }
        );
        assert_eq!(read(b"[DONE]"), Reading::default());
    }
}
