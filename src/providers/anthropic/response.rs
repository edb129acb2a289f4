//! Non-streaming response bodies: Anthropic message ⇄ OpenAI chat.completion, and usage.
//!
//! Owns: rebuilding a complete response in the client's API shape and reading [`Usage`] from
//! the upstream's body in the same pass.
//!
//! Deliberately does not: keep blocks the client's API has no place for (thinking, server tool
//! results), or invent data (OpenAI never reports cache writes, Anthropic never reports a
//! creation time). An upstream body that does not match its API is an upstream fault
//! ([`Error::InvalidUpstream`]), never a client one.
//!
//! Invariant: the returned [`Usage`] is the same one the client's body reports, converted with
//! the one meaning documented on [`Usage`].

use std::borrow::Cow;

use serde_json::Value;

use super::wire::{
    self, AssistantOut, BlockIn, BlockOut, ChatCompletionIn, ChatCompletionOut, ChatFunctionCall,
    ChatToolCall, ChatUsageOut, ChoiceOut, MessageOut, MessagesResponseIn, MessagesUsageOut, Path,
};
use super::{Error, Usage};

/// Translates an Anthropic `/v1/messages` response into an OpenAI `chat.completion` whose
/// `model` is `client_model` and `created` is `created_unix` (seconds; Anthropic sends none,
/// and this module reads no clock). The `id` is the upstream message id.
pub fn messages_response_to_chat(
    body: &[u8],
    client_model: &str,
    created_unix: u64,
) -> Result<(Vec<u8>, Usage), Error> {
    let msg: MessagesResponseIn = serde_json::from_slice(body)
        .map_err(|e| Path::Root.upstream(format!("not an Anthropic message: {e}")))?;
    let usage = msg.usage.to_usage();

    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in &msg.content {
        match block {
            BlockIn::Text { text: t } => text.push_str(t),
            BlockIn::ToolUse { id, name, input } => tool_calls.push(ChatToolCall {
                id,
                kind: "function",
                function: ChatFunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            BlockIn::Other => {}
        }
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(text)
    };
    let out = ChatCompletionOut {
        id: &msg.id,
        object: "chat.completion",
        created: created_unix,
        model: client_model,
        choices: [ChoiceOut {
            index: 0,
            message: AssistantOut {
                role: "assistant",
                content,
                tool_calls,
                refusal: None,
            },
            logprobs: None,
            finish_reason: wire::finish_reason_for(msg.stop_reason.as_deref()),
        }],
        usage: ChatUsageOut::from_usage(usage),
    };
    Ok((wire::encode(&out)?, usage))
}

/// Translates an OpenAI `chat.completion` into an Anthropic message whose `model` is
/// `client_model`. Only the first choice is used (we never ask for more than one).
pub fn chat_response_to_messages(
    body: &[u8],
    client_model: &str,
) -> Result<(Vec<u8>, Usage), Error> {
    let completion: ChatCompletionIn = serde_json::from_slice(body)
        .map_err(|e| Path::Root.upstream(format!("not a chat.completion: {e}")))?;
    let usage = completion.usage.map(|u| u.to_usage()).unwrap_or_default();
    let p = Path::Root;
    let cp = p.key("choices");
    let (index, choice) = completion
        .choices
        .iter()
        .enumerate()
        .find(|(_, c)| c.index == 0)
        .ok_or_else(|| cp.upstream("no choice with index 0"))?;
    let mp = cp.index(index);
    let mp = mp.key("message");

    let mut content = Vec::new();
    match &choice.message.content {
        None => {}
        Some(Value::String(s)) => push_text(&mut content, Cow::Borrowed(s)),
        Some(Value::Array(parts)) => {
            // Some compatible servers answer with text parts instead of a string.
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    push_text(&mut content, Cow::Borrowed(text));
                }
            }
        }
        Some(_) => return Err(mp.key("content").upstream("expected a string or an array")),
    }
    if let Some(refusal) = &choice.message.refusal {
        push_text(&mut content, Cow::Borrowed(refusal));
    }
    let tp = mp.key("tool_calls");
    for (j, call) in choice.message.tool_calls.iter().enumerate() {
        let input = parse_arguments(&call.function.arguments).ok_or_else(|| {
            tp.index(j)
                .key("function")
                .key("arguments")
                .upstream("not a JSON object")
        })?;
        content.push(BlockOut::ToolUse {
            id: &call.id,
            name: &call.function.name,
            input,
        });
    }

    let has_tool_calls = !choice.message.tool_calls.is_empty();
    let stop_reason = if choice.message.refusal.is_some() {
        "refusal"
    } else {
        wire::stop_reason_for(choice.finish_reason.as_deref(), has_tool_calls)
    };
    let out = MessageOut {
        id: &completion.id,
        kind: "message",
        role: "assistant",
        model: client_model,
        content,
        stop_reason: Some(stop_reason),
        stop_sequence: None,
        usage: MessagesUsageOut::from_usage(usage),
    };
    Ok((wire::encode(&out)?, usage))
}

fn push_text<'a>(content: &mut Vec<BlockOut<'a>>, text: Cow<'a, str>) {
    if !text.is_empty() {
        content.push(BlockOut::Text { text });
    }
}

/// OpenAI arguments are a JSON string; Anthropic wants an object. Empty means no arguments.
pub(super) fn parse_arguments(arguments: &str) -> Option<Value> {
    if arguments.trim().is_empty() {
        return Some(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str::<Value>(arguments)
        .ok()
        .filter(Value::is_object)
}

/// Usage from a native Anthropic `/v1/messages` response, for passthrough when client and
/// upstream both speak Anthropic. `None` when the body has no readable `usage`.
pub fn usage_from_messages_response(body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct UsageOnly {
        usage: Option<wire::MessagesUsageIn>,
    }
    let parsed: UsageOnly = serde_json::from_slice(body).ok()?;
    parsed.usage.map(wire::MessagesUsageIn::to_usage)
}
