//! Anthropic Messages request → OpenAI chat request (our Anthropic-compatible ingress, routed
//! to an OpenAI-compatible upstream).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::super::Error;
use super::super::wire::{
    self, ChatContent, ChatFunction, ChatFunctionCall, ChatMessage, ChatPart, ChatRequest,
    ChatTool, ChatToolCall, ChatToolChoice, ImageUrl, NamedFunction, Path, StreamOptions, field,
    object, opt_array, opt_bool, opt_f64, opt_object, opt_str, opt_u64, req_str, type_name,
};

/// Translates an Anthropic `/v1/messages` request body (our Anthropic-compatible ingress) into
/// an OpenAI chat request for an OpenAI-compatible upstream serving `upstream_model`.
///
/// When `stream` is true, `stream_options.include_usage` is set so the upstream reports usage
/// in its last chunk; [`super::ChatStreamToMessages`] consumes that chunk.
pub fn messages_request_to_chat(body: &[u8], upstream_model: &str) -> Result<Vec<u8>, Error> {
    let root = wire::parse_request(body)?;
    let p = Path::Root;
    let req = object(&root, p)?;

    let mut messages = Vec::new();
    if let Some(system) = system_to_chat(req, p)? {
        messages.push(system);
    }
    let msp = p.key("messages");
    let turns =
        opt_array(req, "messages", p)?.ok_or_else(|| msp.invalid("missing required field"))?;
    for (i, turn) in turns.iter().enumerate() {
        translate_turn(turn, msp.index(i), &mut messages)?;
    }

    let tools = messages_tools_to_chat(req, p)?;
    let (tool_choice, parallel_tool_calls) = if tools.is_empty() {
        (None, None)
    } else {
        messages_tool_choice_to_chat(req, p)?
    };
    let stream = opt_bool(req, "stream", p)?;
    let user = match opt_object(req, "metadata", p)? {
        Some(metadata) => opt_str(metadata, "user_id", p.key("metadata"))?,
        None => None,
    };
    let stop = match opt_array(req, "stop_sequences", p)? {
        None => Vec::new(),
        Some(items) => {
            let sp = p.key("stop_sequences");
            items
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.as_str().ok_or_else(|| {
                        sp.index(i)
                            .invalid(format!("expected a string, got {}", type_name(s)))
                    })
                })
                .collect::<Result<_, _>>()?
        }
    };

    let out = ChatRequest {
        model: upstream_model,
        messages,
        max_tokens: opt_u64(req, "max_tokens", p)?,
        temperature: opt_f64(req, "temperature", p)?,
        top_p: opt_f64(req, "top_p", p)?,
        stop,
        stream,
        stream_options: (stream == Some(true)).then_some(StreamOptions {
            include_usage: true,
        }),
        tools,
        tool_choice,
        parallel_tool_calls,
        user,
    };
    wire::encode(&out)
}

fn system_to_chat<'v>(
    req: &'v Map<String, Value>,
    p: Path<'_>,
) -> Result<Option<ChatMessage<'v>>, Error> {
    let sp = p.key("system");
    match field(req, "system") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(ChatMessage::System {
            content: ChatContent::Text(s),
        })),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.iter().enumerate() {
                let bp = sp.index(i);
                let block = object(block, bp)?;
                match req_str(block, "type", bp)? {
                    "text" => texts.push(req_str(block, "text", bp)?),
                    other => {
                        return Err(bp.key("type").invalid(format!(
                            "unsupported system block type `{}`",
                            wire::word(other)
                        )));
                    }
                }
            }
            Ok(match texts.as_slice() {
                [] => None,
                [one] => Some(ChatMessage::System {
                    content: ChatContent::Text(one),
                }),
                _ => Some(ChatMessage::System {
                    content: ChatContent::Parts(
                        texts
                            .into_iter()
                            .map(|text| ChatPart::Text { text })
                            .collect(),
                    ),
                }),
            })
        }
        Some(v) => Err(sp.invalid(format!(
            "expected a string or an array of text blocks, got {}",
            type_name(v)
        ))),
    }
}

fn translate_turn<'v>(
    turn: &'v Value,
    tp: Path<'_>,
    messages: &mut Vec<ChatMessage<'v>>,
) -> Result<(), Error> {
    let t = object(turn, tp)?;
    let cp = tp.key("content");
    let content = field(t, "content").ok_or_else(|| cp.invalid("missing required field"))?;
    match req_str(t, "role", tp)? {
        "user" => user_turn_to_chat(content, cp, messages),
        "assistant" => {
            messages.push(assistant_turn_to_chat(content, cp)?);
            Ok(())
        }
        other => Err(tp.key("role").invalid(format!(
            "unsupported role `{}` (expected user or assistant)",
            wire::word(other)
        ))),
    }
}

/// A user turn becomes one `tool` message per tool_result block, in order, and one user
/// message for the other blocks between them.
fn user_turn_to_chat<'v>(
    content: &'v Value,
    cp: Path<'_>,
    messages: &mut Vec<ChatMessage<'v>>,
) -> Result<(), Error> {
    let blocks = match content {
        Value::String(s) => {
            messages.push(ChatMessage::User {
                content: ChatContent::Text(s),
            });
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        v => {
            return Err(cp.invalid(format!(
                "expected a string or an array of blocks, got {}",
                type_name(v)
            )));
        }
    };
    let mut parts = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let bp = cp.index(i);
        let b = object(block, bp)?;
        match req_str(b, "type", bp)? {
            "text" => parts.push(ChatPart::Text {
                text: req_str(b, "text", bp)?,
            }),
            "image" => parts.push(image_block_to_part(b, bp)?),
            "tool_result" => {
                if !parts.is_empty() {
                    messages.push(ChatMessage::User {
                        content: ChatContent::Parts(std::mem::take(&mut parts)),
                    });
                }
                messages.push(ChatMessage::Tool {
                    tool_call_id: req_str(b, "tool_use_id", bp)?,
                    content: tool_result_text(field(b, "content"), bp.key("content"))?,
                });
            }
            other => {
                return Err(bp
                    .key("type")
                    .invalid(format!("unsupported block type `{}`", wire::word(other))));
            }
        }
    }
    if !parts.is_empty() {
        messages.push(ChatMessage::User {
            content: ChatContent::Parts(parts),
        });
    }
    Ok(())
}

fn image_block_to_part<'v>(b: &'v Map<String, Value>, bp: Path<'_>) -> Result<ChatPart<'v>, Error> {
    let sp = bp.key("source");
    let source =
        opt_object(b, "source", bp)?.ok_or_else(|| sp.invalid("missing required field"))?;
    let url = match req_str(source, "type", sp)? {
        "base64" => {
            let media_type = req_str(source, "media_type", sp)?;
            let data = req_str(source, "data", sp)?;
            Cow::Owned(format!("data:{media_type};base64,{data}"))
        }
        "url" => Cow::Borrowed(req_str(source, "url", sp)?),
        other => {
            return Err(sp.key("type").invalid(format!(
                "unsupported image source type `{}`",
                wire::word(other)
            )));
        }
    };
    Ok(ChatPart::ImageUrl {
        image_url: ImageUrl { url },
    })
}

/// OpenAI tool messages carry text only: text blocks are joined with newlines.
fn tool_result_text(content: Option<&Value>, cp: Path<'_>) -> Result<String, Error> {
    match content {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.iter().enumerate() {
                let bp = cp.index(i);
                let b = object(block, bp)?;
                match req_str(b, "type", bp)? {
                    "text" => texts.push(req_str(b, "text", bp)?),
                    other => {
                        return Err(bp.key("type").invalid(format!(
                            "unsupported tool_result block type `{}` (only text is allowed)",
                            wire::word(other)
                        )));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(v) => Err(cp.invalid(format!(
            "expected a string or an array of blocks, got {}",
            type_name(v)
        ))),
    }
}

fn assistant_turn_to_chat<'v>(content: &'v Value, cp: Path<'_>) -> Result<ChatMessage<'v>, Error> {
    let blocks = match content {
        Value::String(s) => {
            return Ok(ChatMessage::Assistant {
                content: Some(s.clone()),
                tool_calls: Vec::new(),
            });
        }
        Value::Array(blocks) => blocks,
        v => {
            return Err(cp.invalid(format!(
                "expected a string or an array of blocks, got {}",
                type_name(v)
            )));
        }
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let bp = cp.index(i);
        let b = object(block, bp)?;
        match req_str(b, "type", bp)? {
            "text" => text.push_str(req_str(b, "text", bp)?),
            "tool_use" => {
                let input = field(b, "input").map_or_else(|| "{}".to_owned(), Value::to_string);
                tool_calls.push(ChatToolCall {
                    id: req_str(b, "id", bp)?,
                    kind: "function",
                    function: ChatFunctionCall {
                        name: req_str(b, "name", bp)?,
                        arguments: input,
                    },
                });
            }
            // Earlier reasoning has no place in an OpenAI conversation; the answer text stays.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(bp
                    .key("type")
                    .invalid(format!("unsupported block type `{}`", wire::word(other))));
            }
        }
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(text)
    };
    Ok(ChatMessage::Assistant {
        content,
        tool_calls,
    })
}

fn messages_tools_to_chat<'v>(
    req: &'v Map<String, Value>,
    p: Path<'_>,
) -> Result<Vec<ChatTool<'v>>, Error> {
    let Some(tools) = opt_array(req, "tools", p)? else {
        return Ok(Vec::new());
    };
    let tsp = p.key("tools");
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let tp = tsp.index(i);
        let t = object(tool, tp)?;
        if let Some(kind) = opt_str(t, "type", tp)?
            && kind != "custom"
        {
            return Err(tp.key("type").invalid(format!(
                "server tool `{}` is not supported for this model",
                wire::word(kind)
            )));
        }
        let sp = tp.key("input_schema");
        let parameters =
            field(t, "input_schema").ok_or_else(|| sp.invalid("missing required field"))?;
        if !parameters.is_object() {
            return Err(sp.invalid(format!("expected an object, got {}", type_name(parameters))));
        }
        out.push(ChatTool {
            kind: "function",
            function: ChatFunction {
                name: req_str(t, "name", tp)?,
                description: opt_str(t, "description", tp)?,
                parameters,
            },
        });
    }
    Ok(out)
}

type ChatChoiceParts<'v> = (Option<ChatToolChoice<'v>>, Option<bool>);

fn messages_tool_choice_to_chat<'v>(
    req: &'v Map<String, Value>,
    p: Path<'_>,
) -> Result<ChatChoiceParts<'v>, Error> {
    let Some(choice) = opt_object(req, "tool_choice", p)? else {
        return Ok((None, None));
    };
    let cp = p.key("tool_choice");
    let parallel = opt_bool(choice, "disable_parallel_tool_use", cp)?
        .and_then(|disable| disable.then_some(false));
    let choice = match req_str(choice, "type", cp)? {
        "auto" => ChatToolChoice::Mode("auto"),
        "any" => ChatToolChoice::Mode("required"),
        "none" => ChatToolChoice::Mode("none"),
        "tool" => ChatToolChoice::Function {
            kind: "function",
            function: NamedFunction {
                name: req_str(choice, "name", cp)?,
            },
        },
        other => {
            return Err(cp.key("type").invalid(format!(
                "unsupported tool_choice type `{}`",
                wire::word(other)
            )));
        }
    };
    Ok((Some(choice), parallel))
}
