//! Anthropic upstream stream → OpenAI chunks for the client.

use super::super::wire::{
    self, BlockDeltaIn, BlockIn, ChatUsageOut, ChunkChoiceOut, ChunkOut, DeltaOut,
    FunctionDeltaOut, OpenAiErrorBody, OpenAiErrorOut, StreamEventIn, ToolCallDeltaOut,
};
use super::super::{Error, Usage};
use super::{MessagesStreamUsage, upstream_event_error};

/// What an Anthropic content block became on the OpenAI side.
#[derive(Debug, Clone, Copy)]
enum ChatBlock {
    Text,
    /// A tool call, with its OpenAI `tool_calls[].index`.
    Tool(u64),
    /// Thinking and server-tool blocks: OpenAI chunks have no place for them.
    Ignored,
}

/// Translates an Anthropic Messages stream into OpenAI `chat.completion.chunk` events.
///
/// Output: a first chunk with `role: "assistant"`, content and tool-call chunks, a chunk with
/// `finish_reason`, then (only if the client asked with `stream_options.include_usage`) a usage
/// chunk with `choices: []`, then `data: [DONE]`. An upstream `error` event becomes an
/// OpenAI-shaped `{"error": …}` event and ends the stream without `[DONE]`.
#[derive(Debug, Clone)]
pub struct MessagesStreamToChat {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    tap: MessagesStreamUsage,
    /// Anthropic block index → what it became. Blocks are few; a Vec beats a map.
    blocks: Vec<(u64, ChatBlock)>,
    next_tool_index: u64,
    role_sent: bool,
    finish_sent: bool,
    finished: bool,
    error_kind: Option<String>,
}

impl MessagesStreamToChat {
    /// `id_hint` becomes every chunk's `id` (e.g. `chatcmpl-<request id>`); `created_unix` is
    /// every chunk's `created`, in seconds.
    pub fn new(client_model: &str, include_usage: bool, created_unix: u64, id_hint: &str) -> Self {
        Self {
            id: id_hint.to_owned(),
            model: client_model.to_owned(),
            created: created_unix,
            include_usage,
            tap: MessagesStreamUsage::new(),
            blocks: Vec::new(),
            next_tool_index: 0,
            role_sent: false,
            finish_sent: false,
            finished: false,
            error_kind: None,
        }
    }

    /// Translates one upstream SSE event, appending complete client events to `out`.
    pub fn on_event(
        &mut self,
        _event: Option<&str>,
        data: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        let event = match serde_json::from_str::<StreamEventIn<'_>>(data) {
            Ok(event) => event,
            Err(e) => {
                self.fail(out, "upstream_error")?;
                return Err(upstream_event_error(&e));
            }
        };
        self.tap.observe(&event);
        match event {
            StreamEventIn::MessageStart { .. } => self.send_role(out)?,
            StreamEventIn::ContentBlockStart {
                index,
                content_block,
            } => {
                let kind = match content_block {
                    BlockIn::Text { text } => {
                        if !text.is_empty() {
                            self.send_text(out, &text)?;
                        }
                        ChatBlock::Text
                    }
                    BlockIn::ToolUse { id, name, .. } => {
                        let call = self.next_tool_index;
                        self.next_tool_index = call.saturating_add(1);
                        let tool = ToolCallDeltaOut {
                            index: call,
                            id: Some(&id),
                            kind: Some("function"),
                            function: FunctionDeltaOut {
                                name: Some(&name),
                                arguments: "",
                            },
                        };
                        self.send(
                            out,
                            DeltaOut {
                                tool_calls: vec![tool],
                                ..DeltaOut::default()
                            },
                            None,
                        )?;
                        ChatBlock::Tool(call)
                    }
                    BlockIn::Other => ChatBlock::Ignored,
                };
                self.blocks.push((index, kind));
            }
            StreamEventIn::ContentBlockDelta { index, delta } => match delta {
                // Text is text whatever block it claims to belong to.
                BlockDeltaIn::TextDelta { text } if !text.is_empty() => {
                    self.send_text(out, &text)?
                }
                BlockDeltaIn::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    if let Some(ChatBlock::Tool(call)) = self.block(index) {
                        let tool = ToolCallDeltaOut {
                            index: call,
                            id: None,
                            kind: None,
                            function: FunctionDeltaOut {
                                name: None,
                                arguments: &partial_json,
                            },
                        };
                        self.send(
                            out,
                            DeltaOut {
                                tool_calls: vec![tool],
                                ..DeltaOut::default()
                            },
                            None,
                        )?;
                    }
                }
                _ => {}
            },
            StreamEventIn::MessageDelta { delta, .. } => {
                if let Some(stop_reason) = delta.stop_reason.as_deref() {
                    self.send_finish(out, wire::finish_reason_for(Some(stop_reason)))?;
                }
            }
            StreamEventIn::MessageStop => {
                self.send_finish(out, "stop")?;
                if self.include_usage {
                    let usage = ChatUsageOut::from_usage(self.tap.usage().unwrap_or_default());
                    let chunk = self.chunk(Vec::new(), Some(Some(usage)));
                    wire::write_data(out, &chunk)?;
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.finished = true;
            }
            StreamEventIn::Error { error } => {
                let kind = if error.kind.is_empty() {
                    "api_error".to_owned()
                } else {
                    error.kind
                };
                self.fail(out, &kind)?;
            }
            StreamEventIn::ContentBlockStop | StreamEventIn::Ping | StreamEventIn::Unknown => {}
        }
        Ok(())
    }

    /// Call when the upstream body ends. If `message_stop` never came, the client gets an
    /// error event rather than a stream that looks complete.
    pub fn on_end(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        self.fail(out, "stream_truncated")
    }

    /// Usage reported so far (input at `message_start`, output at `message_delta`).
    pub fn usage(&self) -> Option<Usage> {
        self.tap.usage()
    }

    /// True after `[DONE]` or an error event was written.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Characters of text and tool arguments generated so far (for estimating output tokens).
    pub fn text_chars(&self) -> usize {
        self.tap.text_chars()
    }

    /// The upstream error `type` (e.g. `overloaded_error`) if the stream ended in an error.
    pub fn error_kind(&self) -> Option<&str> {
        self.error_kind.as_deref()
    }

    fn block(&self, index: u64) -> Option<ChatBlock> {
        self.blocks
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, kind)| *kind)
    }

    fn chunk<'a>(
        &'a self,
        choices: Vec<ChunkChoiceOut<'a>>,
        usage: Option<Option<ChatUsageOut>>,
    ) -> ChunkOut<'a> {
        ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        }
    }

    fn send(
        &mut self,
        out: &mut Vec<u8>,
        delta: DeltaOut<'_>,
        finish_reason: Option<&'static str>,
    ) -> Result<(), Error> {
        if !self.role_sent {
            self.send_role(out)?;
        }
        let choice = ChunkChoiceOut {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        // OpenAI puts `"usage": null` on every chunk but the last when usage was requested.
        let chunk = self.chunk(vec![choice], self.include_usage.then_some(None));
        wire::write_data(out, &chunk)
    }

    fn send_role(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.role_sent {
            return Ok(());
        }
        self.role_sent = true;
        self.send(
            out,
            DeltaOut {
                role: Some("assistant"),
                content: Some(""),
                ..DeltaOut::default()
            },
            None,
        )
    }

    fn send_text(&mut self, out: &mut Vec<u8>, text: &str) -> Result<(), Error> {
        self.send(
            out,
            DeltaOut {
                content: Some(text),
                ..DeltaOut::default()
            },
            None,
        )
    }

    fn send_finish(&mut self, out: &mut Vec<u8>, finish_reason: &'static str) -> Result<(), Error> {
        if self.finish_sent {
            return Ok(());
        }
        self.finish_sent = true;
        self.send(out, DeltaOut::default(), Some(finish_reason))
    }

    fn fail(&mut self, out: &mut Vec<u8>, kind: &str) -> Result<(), Error> {
        self.finished = true;
        self.error_kind = Some(kind.to_owned());
        let message = format!("the upstream provider failed mid-stream ({kind})");
        let body = OpenAiErrorOut {
            error: OpenAiErrorBody {
                message: &message,
                kind: "api_error",
                param: None,
                code: "upstream_error",
            },
        };
        wire::write_data(out, &body)
    }
}
