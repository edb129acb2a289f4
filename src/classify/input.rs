//! The classifier's view of a request: its turns (borrowed where possible) and the few request
//! fields that carry signal (tools, response_format, max tokens).
//!
//! Invariant: building an `Input` from JSON never fails; fields of the wrong shape are ignored,
//! because a proxy must classify whatever the client sent.

use std::borrow::Cow;

use serde_json::Value;

/// Who wrote a turn. Unknown roles (e.g. "developer") map to the nearest known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// OpenAI role names; "developer" counts as system, "function" as tool, anything else as user.
    pub fn from_name(name: &str) -> Role {
        match name {
            "system" | "developer" => Role::System,
            "assistant" | "model" => Role::Assistant,
            "tool" | "function" | "ipython" => Role::Tool,
            _ => Role::User,
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn<'a> {
    pub role: Role,
    pub text: Cow<'a, str>,
}

/// The `response_format.type` the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema,
}

/// A request as the classifier sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Input<'a> {
    pub turns: Vec<Turn<'a>>,
    pub has_tools: bool,
    pub response_format: Option<ResponseFormat>,
    pub max_tokens: Option<u32>,
}

impl<'a> Input<'a> {
    /// A single user turn, no options: what `explain "PROMPT"` classifies.
    pub fn from_prompt(text: &'a str) -> Input<'a> {
        Input {
            turns: vec![Turn {
                role: Role::User,
                text: Cow::Borrowed(text),
            }],
            ..Input::default()
        }
    }

    /// From an OpenAI chat request object (or any object with `messages`). String contents are
    /// borrowed; arrays of parts keep their `text` parts (joined by a newline). `tools` or
    /// `functions` (non-empty) set `has_tools`; `max_completion_tokens` wins over `max_tokens`.
    pub fn from_chat_json(v: &'a Value) -> Input<'a> {
        let mut turns = Vec::new();
        if let Some(messages) = v.get("messages").and_then(Value::as_array) {
            for m in messages {
                let role = Role::from_name(m.get("role").and_then(Value::as_str).unwrap_or("user"));
                let text = m
                    .get("content")
                    .map(content_text)
                    .unwrap_or(Cow::Borrowed(""));
                turns.push(Turn { role, text });
            }
        } else if let Some(prompt) = v.get("prompt").and_then(Value::as_str) {
            turns.push(Turn {
                role: Role::User,
                text: Cow::Borrowed(prompt),
            });
        }
        if let Some(system) = v.get("system") {
            // Anthropic-shaped requests carry the system prompt beside the messages.
            let text = content_text(system);
            if !text.is_empty() {
                turns.insert(
                    0,
                    Turn {
                        role: Role::System,
                        text,
                    },
                );
            }
        }
        let non_empty = |key: &str| match v.get(key) {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        };
        let has_tools = non_empty("tools") || non_empty("functions");
        let response_format = v
            .get("response_format")
            .and_then(|rf| rf.get("type"))
            .and_then(Value::as_str)
            .map(|t| match t {
                "json_object" => ResponseFormat::JsonObject,
                "json_schema" => ResponseFormat::JsonSchema,
                _ => ResponseFormat::Text,
            });
        let max_tokens = v
            .get("max_completion_tokens")
            .and_then(Value::as_u64)
            .or_else(|| v.get("max_tokens").and_then(Value::as_u64))
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        Input {
            turns,
            has_tools,
            response_format,
            max_tokens,
        }
    }

    /// Index of the last user turn, if any.
    pub(crate) fn last_user_index(&self) -> Option<usize> {
        self.turns.iter().rposition(|t| t.role == Role::User)
    }
}

/// Text of a `content` value: a string, or the text parts of an array of parts.
fn content_text(content: &Value) -> Cow<'_, str> {
    match content {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Array(parts) => {
            let mut texts = parts.iter().filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                Value::Object(_) => {
                    let kind = p.get("type").and_then(Value::as_str).unwrap_or("text");
                    if kind == "text" || kind == "input_text" {
                        p.get("text").and_then(Value::as_str)
                    } else {
                        None
                    }
                }
                _ => None,
            });
            let Some(first) = texts.next() else {
                return Cow::Borrowed("");
            };
            match texts.next() {
                None => Cow::Borrowed(first),
                Some(second) => {
                    let mut joined = format!("{first}\n{second}");
                    for t in texts {
                        joined.push('\n');
                        joined.push_str(t);
                    }
                    Cow::Owned(joined)
                }
            }
        }
        _ => Cow::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_openai_request_fields() {
        let v = json!({
            "model": "auto",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "part two"}]},
                {"role": "assistant", "content": null, "tool_calls": []},
                {"role": "tool", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_schema"},
            "max_tokens": 100,
            "max_completion_tokens": 200
        });
        let input = Input::from_chat_json(&v);
        assert_eq!(input.turns.len(), 4);
        assert_eq!(input.turns[0].role, Role::System);
        assert_eq!(input.turns[1].text, "part one\npart two");
        assert_eq!(input.turns[2].text, "");
        assert_eq!(input.turns[3].role, Role::Tool);
        assert!(input.has_tools);
        assert_eq!(input.response_format, Some(ResponseFormat::JsonSchema));
        assert_eq!(input.max_tokens, Some(200));
        assert_eq!(input.last_user_index(), Some(1));
    }

    #[test]
    fn tolerates_odd_shapes() {
        let v = json!({"messages": "nope", "tools": [], "max_tokens": -3});
        let input = Input::from_chat_json(&v);
        assert!(input.turns.is_empty());
        assert!(!input.has_tools);
        assert_eq!(input.max_tokens, None);
        let v = json!({"system": "be brief", "messages": [{"role": "user", "content": "hi"}], "functions": [{}]});
        let input = Input::from_chat_json(&v);
        assert_eq!(input.turns[0].role, Role::System);
        assert!(input.has_tools);
    }
}
