//! Anthropic Messages wire shapes: the request and response/events we write, and the
//! response and stream events we read.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::Usage;

// ---------------------------------------------------------------------------------------------
// Anthropic Messages: request we write (from an OpenAI request)
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct MessagesRequest<'a> {
    pub model: &'a str,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System<'a>>,
    pub messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum System<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    User,
    Assistant,
}

#[derive(Serialize)]
pub(crate) struct Turn<'a> {
    pub role: Role,
    pub content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    Image {
        source: ImageSource<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: ToolResultContent<'a>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ToolResultContent<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ImageSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
pub(crate) struct Tool<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: Cow<'a, Value>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToolChoice<'a> {
    Auto {
        #[serde(skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

#[derive(Serialize)]
pub(crate) struct Metadata<'a> {
    pub user_id: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages: response and stream events we read (from an Anthropic upstream)
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct MessagesResponseIn {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub content: Vec<BlockIn>,
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: MessagesUsageIn,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockIn {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// thinking, redacted_thinking, server tool blocks: nothing in OpenAI's shape carries them.
    #[serde(other)]
    Other,
}

/// Anthropic usage. Every field is optional because `message_delta` carries only the fields
/// that changed (always `output_tokens`; newer API versions repeat the input counts).
#[derive(Deserialize, Default, Clone, Copy, Debug)]
pub(crate) struct MessagesUsageIn {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

impl MessagesUsageIn {
    pub(crate) fn to_usage(self) -> Usage {
        Usage {
            input: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(self.cache_creation_input_tokens.unwrap_or(0)),
            cached_input: self.cache_read_input_tokens.unwrap_or(0),
            output: self.output_tokens.unwrap_or(0),
        }
    }

    /// Later values win; absent fields keep what we had (the `message_start` counts).
    pub(crate) fn merge(&mut self, later: MessagesUsageIn) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StreamEventIn<'a> {
    MessageStart {
        message: StartMessageIn,
    },
    ContentBlockStart {
        index: u64,
        content_block: BlockIn,
    },
    ContentBlockDelta {
        index: u64,
        #[serde(borrow)]
        delta: BlockDeltaIn<'a>,
    },
    ContentBlockStop,
    MessageDelta {
        delta: MessageDeltaIn,
        #[serde(default)]
        usage: MessagesUsageIn,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorIn,
    },
    /// Event types added after this code was written are skipped, as Anthropic advises.
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
pub(crate) struct StartMessageIn {
    #[serde(default)]
    pub usage: MessagesUsageIn,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockDeltaIn<'a> {
    TextDelta {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    InputJsonDelta {
        #[serde(borrow)]
        partial_json: Cow<'a, str>,
    },
    /// thinking_delta, signature_delta, citations_delta.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
pub(crate) struct MessageDeltaIn {
    pub stop_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ErrorIn {
    #[serde(rename = "type", default)]
    pub kind: String,
}

// ---------------------------------------------------------------------------------------------
// Anthropic output: message and stream events
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: Vec<BlockOut<'a>>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<()>,
    pub usage: MessagesUsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockOut<'a> {
    Text {
        text: Cow<'a, str>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
}

#[derive(Serialize, Default, Clone, Copy)]
pub(crate) struct MessagesUsageOut {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

impl MessagesUsageOut {
    /// OpenAI never reports cache writes, so `cache_creation_input_tokens` is always 0.
    pub(crate) fn from_usage(u: Usage) -> Self {
        Self {
            input_tokens: u.input,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: u.cached_input,
            output_tokens: u.output,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StreamEventOut<'a> {
    MessageStart {
        message: MessageOut<'a>,
    },
    ContentBlockStart {
        index: u64,
        content_block: BlockOut<'a>,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDeltaOut<'a>,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: MessageDeltaOut,
        usage: MessagesUsageOut,
    },
    MessageStop,
}

impl StreamEventOut<'_> {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockDeltaOut<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
pub(crate) struct MessageDeltaOut {
    pub stop_reason: &'static str,
    pub stop_sequence: Option<()>,
}

#[derive(Serialize)]
pub(crate) struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicErrorBody<'a>,
}

#[derive(Serialize)]
struct AnthropicErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

impl<'a> AnthropicError<'a> {
    pub(crate) fn new(kind: &'a str, message: &'a str) -> Self {
        Self {
            kind: "error",
            error: AnthropicErrorBody { kind, message },
        }
    }
}
