//! OpenAI Chat Completions wire shapes: the request and response/chunks we write, and the
//! response and stream chunks we read.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::Usage;

// ---------------------------------------------------------------------------------------------
// OpenAI Chat Completions: request we write (from an Anthropic request)
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ChatTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ChatToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub(crate) enum ChatMessage<'a> {
    System {
        content: ChatContent<'a>,
    },
    User {
        content: ChatContent<'a>,
    },
    Assistant {
        /// `null` when the turn is only tool calls, as OpenAI itself sends it.
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ChatToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: String,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ChatContent<'a> {
    Text(&'a str),
    Parts(Vec<ChatPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ChatPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
pub(crate) struct ImageUrl<'a> {
    pub url: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct ChatToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: ChatFunctionCall<'a>,
}

#[derive(Serialize)]
pub(crate) struct ChatFunctionCall<'a> {
    pub name: &'a str,
    /// A JSON document encoded as a string, as OpenAI sends it.
    pub arguments: String,
}

#[derive(Serialize)]
pub(crate) struct ChatTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: ChatFunction<'a>,
}

#[derive(Serialize)]
pub(crate) struct ChatFunction<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub parameters: &'a Value,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ChatToolChoice<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NamedFunction<'a>,
    },
}

#[derive(Serialize)]
pub(crate) struct NamedFunction<'a> {
    pub name: &'a str,
}

// ---------------------------------------------------------------------------------------------
// OpenAI Chat Completions: response and stream chunks we read (from an OpenAI-compatible upstream)
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct ChatCompletionIn {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub choices: Vec<ChoiceIn>,
    pub usage: Option<ChatUsageIn>,
}

#[derive(Deserialize)]
pub(crate) struct ChoiceIn {
    #[serde(default)]
    pub index: u64,
    pub message: ChatMessageIn,
    pub finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ChatMessageIn {
    /// A string, or (from some compatible servers) an array of text parts.
    pub content: Option<Value>,
    pub refusal: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCallIn>,
}

#[derive(Deserialize)]
pub(crate) struct ToolCallIn {
    pub id: String,
    pub function: FunctionCallIn,
}

#[derive(Deserialize)]
pub(crate) struct FunctionCallIn {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct ChatUsageIn {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    pub prompt_tokens_details: Option<PromptDetailsIn>,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct PromptDetailsIn {
    pub cached_tokens: Option<u64>,
}

impl ChatUsageIn {
    pub(crate) fn to_usage(self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Usage {
            input: self.prompt_tokens.saturating_sub(cached),
            cached_input: cached,
            output: self.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ChatChunkIn<'a> {
    #[serde(default, borrow)]
    pub choices: Vec<ChunkChoiceIn<'a>>,
    pub usage: Option<ChatUsageIn>,
    /// Some OpenAI-compatible servers report mid-stream failures as `{"error": {...}}`.
    pub error: Option<Value>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkChoiceIn<'a> {
    #[serde(default)]
    pub index: u64,
    #[serde(default, borrow)]
    pub delta: DeltaIn<'a>,
    pub finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct DeltaIn<'a> {
    #[serde(borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Vec<ToolCallDeltaIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolCallDeltaIn<'a> {
    #[serde(default)]
    pub index: u64,
    pub id: Option<String>,
    #[serde(default, borrow)]
    pub function: FunctionDeltaIn<'a>,
}

#[derive(Deserialize, Default)]
pub(crate) struct FunctionDeltaIn<'a> {
    pub name: Option<String>,
    #[serde(borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------------------------
// OpenAI output: chat.completion and chat.completion.chunk
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct ChatCompletionOut<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: [ChoiceOut<'a>; 1],
    pub usage: ChatUsageOut,
}

#[derive(Serialize)]
pub(crate) struct ChoiceOut<'a> {
    pub index: u64,
    pub message: AssistantOut<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct AssistantOut<'a> {
    pub role: &'static str,
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChatToolCall<'a>>,
    pub refusal: Option<()>,
}

#[derive(Serialize, Clone, Copy)]
pub(crate) struct ChatUsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: CachedTokensOut,
}

#[derive(Serialize, Clone, Copy)]
pub(crate) struct CachedTokensOut {
    pub cached_tokens: u64,
}

impl ChatUsageOut {
    pub(crate) fn from_usage(u: Usage) -> Self {
        let prompt = u.input.saturating_add(u.cached_input);
        Self {
            prompt_tokens: prompt,
            completion_tokens: u.output,
            total_tokens: prompt.saturating_add(u.output),
            prompt_tokens_details: CachedTokensOut {
                cached_tokens: u.cached_input,
            },
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ChunkOut<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoiceOut<'a>>,
    /// Absent unless the client asked for usage; then `null` on every chunk but the last,
    /// as OpenAI does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<ChatUsageOut>>,
}

#[derive(Serialize)]
pub(crate) struct ChunkChoiceOut<'a> {
    pub index: u64,
    pub delta: DeltaOut<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
pub(crate) struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDeltaOut<'a>>,
}

#[derive(Serialize)]
pub(crate) struct ToolCallDeltaOut<'a> {
    pub index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDeltaOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// OpenAI's error shape, used for a failure in the middle of a translated stream.
#[derive(Serialize)]
pub(crate) struct OpenAiErrorOut<'a> {
    pub error: OpenAiErrorBody<'a>,
}

#[derive(Serialize)]
pub(crate) struct OpenAiErrorBody<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<()>,
    pub code: &'static str,
}
