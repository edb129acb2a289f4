//! OpenAI-compatible upstream stream → Anthropic events for the client.

use super::super::wire::{
    self, AnthropicError, BlockDeltaOut, BlockOut, ChatChunkIn, MessageDeltaOut, MessageOut,
    MessagesUsageOut, Path, StreamEventOut, ToolCallDeltaIn,
};
use super::super::{Error, Usage};
use super::upstream_event_error;

/// The Anthropic content block currently open on the client side.
#[derive(Debug, Clone, Copy)]
enum OpenBlock {
    Text {
        index: u64,
    },
    /// `call` is the OpenAI `tool_calls[].index` feeding this block.
    Tool {
        index: u64,
        call: u64,
    },
}

/// Translates an OpenAI chat stream (chunk payloads, then `[DONE]`) into Anthropic events:
/// `message_start`, `content_block_start/delta/stop` for text and `tool_use` blocks (arguments
/// as `input_json_delta`), `message_delta` with `stop_reason` and usage, `message_stop`.
///
/// Anthropic blocks never interleave, so a new kind of content (text after a tool call, or
/// the next tool call) closes the open block. An upstream that resumes a closed tool call is
/// rejected rather than silently mis-assembled.
#[derive(Debug, Clone)]
pub struct ChatStreamToMessages {
    id: String,
    model: String,
    started: bool,
    finished: bool,
    next_block: u64,
    open: Option<OpenBlock>,
    closed_calls: Vec<u64>,
    saw_tool: bool,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    text_chars: usize,
}

impl ChatStreamToMessages {
    /// `id_hint` becomes the message `id` (e.g. `msg_<request id>`).
    pub fn new(client_model: &str, id_hint: &str) -> Self {
        Self {
            id: id_hint.to_owned(),
            model: client_model.to_owned(),
            started: false,
            finished: false,
            next_block: 0,
            open: None,
            closed_calls: Vec::new(),
            saw_tool: false,
            finish_reason: None,
            usage: None,
            text_chars: 0,
        }
    }

    /// Translates one upstream SSE event (a chunk, or `[DONE]`), appending complete Anthropic
    /// events to `out`.
    pub fn on_event(
        &mut self,
        _event: Option<&str>,
        data: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            return self.close(out);
        }
        let chunk = match serde_json::from_str::<ChatChunkIn<'_>>(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                self.fail(out)?;
                return Err(upstream_event_error(&e));
            }
        };
        if chunk.error.is_some() {
            return self.fail(out);
        }
        self.start(out)?;
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            for text in [&choice.delta.content, &choice.delta.refusal]
                .into_iter()
                .flatten()
            {
                if !text.is_empty() {
                    self.text(out, text)?;
                }
            }
            for (j, call) in choice.delta.tool_calls.iter().enumerate() {
                if let Err(e) = self.tool(out, call, j) {
                    self.fail(out)?;
                    return Err(e);
                }
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.clone());
                self.close_block(out)?;
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.to_usage());
        }
        Ok(())
    }

    /// Call when the upstream body ends. Without `[DONE]` but after a `finish_reason` the
    /// message is closed normally; before any `finish_reason` the client gets an error event.
    pub fn on_end(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        if self.finish_reason.is_some() {
            self.close(out)
        } else {
            self.fail(out)
        }
    }

    /// Usage from the upstream's usage chunk, once it arrived.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// True after `message_stop` or an error event was written.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Characters of text and tool arguments generated so far (for estimating output tokens).
    pub fn text_chars(&self) -> usize {
        self.text_chars
    }

    fn emit(out: &mut Vec<u8>, event: &StreamEventOut<'_>) -> Result<(), Error> {
        wire::write_event(out, event.name(), event)
    }

    fn start(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        // Input tokens are unknown until OpenAI's last chunk; they are sent in message_delta.
        let message = MessageOut {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: MessagesUsageOut::default(),
        };
        Self::emit(out, &StreamEventOut::MessageStart { message })
    }

    fn open_block(&mut self, out: &mut Vec<u8>, block: BlockOut<'_>) -> Result<u64, Error> {
        self.close_block(out)?;
        let index = self.next_block;
        self.next_block = index.saturating_add(1);
        Self::emit(
            out,
            &StreamEventOut::ContentBlockStart {
                index,
                content_block: block,
            },
        )?;
        Ok(index)
    }

    fn close_block(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self.open.take() {
            None => Ok(()),
            Some(OpenBlock::Text { index }) => {
                Self::emit(out, &StreamEventOut::ContentBlockStop { index })
            }
            Some(OpenBlock::Tool { index, call }) => {
                self.closed_calls.push(call);
                Self::emit(out, &StreamEventOut::ContentBlockStop { index })
            }
        }
    }

    fn text(&mut self, out: &mut Vec<u8>, text: &str) -> Result<(), Error> {
        self.text_chars = self.text_chars.saturating_add(text.chars().count());
        let index = match self.open {
            Some(OpenBlock::Text { index }) => index,
            _ => {
                let index = self.open_block(out, BlockOut::Text { text: "".into() })?;
                self.open = Some(OpenBlock::Text { index });
                index
            }
        };
        Self::emit(
            out,
            &StreamEventOut::ContentBlockDelta {
                index,
                delta: BlockDeltaOut::TextDelta { text },
            },
        )
    }

    fn tool(
        &mut self,
        out: &mut Vec<u8>,
        call: &ToolCallDeltaIn<'_>,
        position: usize,
    ) -> Result<(), Error> {
        self.saw_tool = true;
        let index = match self.open {
            Some(OpenBlock::Tool { index, call: open }) if open == call.index => index,
            _ => {
                let cp = Path::Root.key("choices");
                let cp = cp.index(0);
                let cp = cp.key("delta");
                let cp = cp.key("tool_calls");
                let cp = cp.index(position);
                if self.closed_calls.contains(&call.index) {
                    return Err(cp.upstream("tool call resumed after another block started"));
                }
                let name = call
                    .function
                    .name
                    .as_deref()
                    .ok_or_else(|| cp.upstream("first delta of a tool call has no name"))?;
                let fallback_id;
                let id = match call.id.as_deref() {
                    Some(id) => id,
                    None => {
                        fallback_id = format!("call_{}", call.index);
                        &fallback_id
                    }
                };
                let block = BlockOut::ToolUse {
                    id,
                    name,
                    input: serde_json::Value::Object(serde_json::Map::new()),
                };
                let index = self.open_block(out, block)?;
                self.open = Some(OpenBlock::Tool {
                    index,
                    call: call.index,
                });
                index
            }
        };
        match call.function.arguments.as_deref() {
            Some(args) if !args.is_empty() => {
                self.text_chars = self.text_chars.saturating_add(args.chars().count());
                let delta = BlockDeltaOut::InputJsonDelta { partial_json: args };
                Self::emit(out, &StreamEventOut::ContentBlockDelta { index, delta })
            }
            _ => Ok(()),
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.start(out)?;
        self.close_block(out)?;
        let stop_reason = wire::stop_reason_for(self.finish_reason.as_deref(), self.saw_tool);
        let delta = MessageDeltaOut {
            stop_reason,
            stop_sequence: None,
        };
        let usage = MessagesUsageOut::from_usage(self.usage.unwrap_or_default());
        Self::emit(out, &StreamEventOut::MessageDelta { delta, usage })?;
        Self::emit(out, &StreamEventOut::MessageStop)?;
        self.finished = true;
        Ok(())
    }

    fn fail(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.finished = true;
        let body = AnthropicError::new("api_error", "the upstream provider failed mid-stream");
        wire::write_event(out, "error", &body)
    }
}
