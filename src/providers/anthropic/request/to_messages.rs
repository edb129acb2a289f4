//! OpenAI chat request → Anthropic Messages request (a client speaking OpenAI, routed to
//! Anthropic).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::super::wire::{
    self, Block, ImageSource, MessagesRequest, Metadata, Path, Role, System, Tool, ToolChoice,
    ToolResultContent, Turn, field, object, opt_array, opt_bool, opt_f64, opt_object, opt_str,
    opt_u64, req_str, type_name,
};
use super::super::{DEFAULT_MAX_TOKENS, Error};

/// Image media types Anthropic accepts in a base64 source.
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Translates an OpenAI `/v1/chat/completions` request body into an Anthropic `/v1/messages`
/// request body for `upstream_model`.
///
/// System and developer messages, wherever they appear, become the top-level `system` (in
/// order); consecutive same-role turns are merged; tool results join the following user turn.
pub fn chat_request_to_messages(body: &[u8], upstream_model: &str) -> Result<Vec<u8>, Error> {
    let root = wire::parse_request(body)?;
    let p = Path::Root;
    let req = object(&root, p)?;

    if let Some(n) = opt_u64(req, "n", p)?
        && n != 1
    {
        return Err(p.key("n").invalid("only n=1 is supported for this model"));
    }
    for legacy in ["functions", "function_call"] {
        if field(req, legacy).is_some() {
            return Err(p
                .key(legacy)
                .invalid("the deprecated functions API is not supported; use `tools`"));
        }
    }

    let messages_path = p.key("messages");
    let messages = opt_array(req, "messages", p)?
        .ok_or_else(|| messages_path.invalid("missing required field"))?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'_>> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let mp = messages_path.index(i);
        translate_chat_message(message, mp, &mut system, &mut turns)?;
    }
    if turns.is_empty() {
        return Err(messages_path.invalid("at least one user or assistant message is required"));
    }

    let tools = chat_tools_to_messages(req, p)?;
    let tool_choice = if tools.is_empty() {
        None // Anthropic rejects tool_choice without tools; OpenAI would too.
    } else {
        chat_tool_choice_to_messages(req, p)?
    };

    let max_tokens = match opt_u64(req, "max_completion_tokens", p)? {
        Some(n) => n,
        None => opt_u64(req, "max_tokens", p)?.unwrap_or(u64::from(DEFAULT_MAX_TOKENS)),
    };
    // OpenAI's temperature runs 0..=2, Anthropic's 0..=1. Clamping keeps 0..=1 exact (the
    // common range) and treats "hotter than 1" as Anthropic's hottest; scaling would silently
    // cool every request.
    let temperature = opt_f64(req, "temperature", p)?.map(|t| t.clamp(0.0, 1.0));
    let user = match opt_str(req, "user", p)? {
        Some(user) => Some(user),
        None => opt_str(req, "safety_identifier", p)?,
    };

    let out = MessagesRequest {
        model: upstream_model,
        max_tokens,
        system: match system.as_slice() {
            [] => None,
            [
                Block::Text {
                    text,
                    cache_control: None,
                },
            ] => Some(System::Text(text)),
            _ => Some(System::Blocks(system)),
        },
        messages: turns,
        temperature,
        top_p: opt_f64(req, "top_p", p)?,
        stop_sequences: stop_sequences(req, p)?,
        stream: opt_bool(req, "stream", p)?,
        tools,
        tool_choice,
        metadata: user.map(|user_id| Metadata { user_id }),
    };
    wire::encode(&out)
}

fn translate_chat_message<'v>(
    message: &'v Value,
    mp: Path<'_>,
    system: &mut Vec<Block<'v>>,
    turns: &mut Vec<Turn<'v>>,
) -> Result<(), Error> {
    let m = object(message, mp)?;
    let role = req_str(m, "role", mp)?;
    let cp = mp.key("content");
    match role {
        "system" | "developer" => {
            for text in text_content(field(m, "content"), cp)? {
                system.push(text);
            }
        }
        "user" => {
            let blocks = user_content(field(m, "content"), cp)?;
            push_turn(turns, Role::User, blocks);
        }
        "assistant" => {
            let mut blocks = match field(m, "content") {
                None => Vec::new(),
                Some(content) => assistant_content(content, cp)?,
            };
            if let Some(calls) = opt_array(m, "tool_calls", mp)? {
                let tp = mp.key("tool_calls");
                for (j, call) in calls.iter().enumerate() {
                    blocks.push(tool_call_to_block(call, tp.index(j))?);
                }
            }
            push_turn(turns, Role::Assistant, blocks);
        }
        "tool" => {
            let tool_use_id = req_str(m, "tool_call_id", mp)?;
            let content = match field(m, "content") {
                None => ToolResultContent::Text(""),
                Some(Value::String(s)) => ToolResultContent::Text(s),
                Some(other) => ToolResultContent::Blocks(text_content(Some(other), cp)?),
            };
            push_turn(
                turns,
                Role::User,
                vec![Block::ToolResult {
                    tool_use_id,
                    content,
                }],
            );
        }
        "function" => {
            return Err(mp
                .key("role")
                .invalid("the deprecated `function` role is not supported; use `tool`"));
        }
        other => {
            return Err(mp
                .key("role")
                .invalid(format!("unsupported role `{}`", wire::word(other))));
        }
    }
    Ok(())
}

/// Anthropic needs strictly alternating roles: a turn of the same role as the last one is
/// merged into it. Empty turns (an assistant message with `content: ""`) vanish.
fn push_turn<'v>(turns: &mut Vec<Turn<'v>>, role: Role, mut blocks: Vec<Block<'v>>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.append(&mut blocks),
        _ => turns.push(Turn {
            role,
            content: blocks,
        }),
    }
}

/// A text block, or nothing for empty text: Anthropic rejects empty text blocks.
fn text_block<'v>(text: &'v str, cache_control: Option<&'v Value>) -> Option<Block<'v>> {
    (!text.is_empty()).then_some(Block::Text {
        text,
        cache_control,
    })
}

/// Content that may only be text: system, developer and tool messages.
fn text_content<'v>(content: Option<&'v Value>, cp: Path<'_>) -> Result<Vec<Block<'v>>, Error> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(text_block(s, None).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (k, part) in parts.iter().enumerate() {
                let pp = cp.index(k);
                let part = object(part, pp)?;
                match req_str(part, "type", pp)? {
                    "text" => blocks.extend(text_block(
                        req_str(part, "text", pp)?,
                        field(part, "cache_control"),
                    )),
                    other => {
                        return Err(pp.invalid(format!(
                            "unsupported part type `{}` (only text is allowed here)",
                            wire::word(other)
                        )));
                    }
                }
            }
            Ok(blocks)
        }
        Some(v) => Err(cp.invalid(format!(
            "expected a string or an array of parts, got {}",
            type_name(v)
        ))),
    }
}

fn user_content<'v>(content: Option<&'v Value>, cp: Path<'_>) -> Result<Vec<Block<'v>>, Error> {
    let parts = match content {
        None => return Err(cp.invalid("missing required field")),
        Some(Value::String(s)) => return Ok(text_block(s, None).into_iter().collect()),
        Some(Value::Array(parts)) => parts,
        Some(v) => {
            return Err(cp.invalid(format!(
                "expected a string or an array of parts, got {}",
                type_name(v)
            )));
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (k, part) in parts.iter().enumerate() {
        let pp = cp.index(k);
        let part = object(part, pp)?;
        let cache_control = field(part, "cache_control");
        match req_str(part, "type", pp)? {
            "text" => blocks.extend(text_block(req_str(part, "text", pp)?, cache_control)),
            "image_url" => {
                let ip = pp.key("image_url");
                let image = opt_object(part, "image_url", pp)?
                    .ok_or_else(|| ip.invalid("missing required field"))?;
                let url = req_str(image, "url", ip)?;
                blocks.push(Block::Image {
                    source: image_source(url, ip.key("url"))?,
                    cache_control,
                });
            }
            other => {
                return Err(pp.invalid(format!("unsupported part type `{}`", wire::word(other))));
            }
        }
    }
    Ok(blocks)
}

fn assistant_content<'v>(content: &'v Value, cp: Path<'_>) -> Result<Vec<Block<'v>>, Error> {
    match content {
        Value::String(s) => Ok(text_block(s, None).into_iter().collect()),
        Value::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (k, part) in parts.iter().enumerate() {
                let pp = cp.index(k);
                let part = object(part, pp)?;
                let text = match req_str(part, "type", pp)? {
                    "text" => req_str(part, "text", pp)?,
                    // A refusal the model gave earlier is part of the conversation as text.
                    "refusal" => req_str(part, "refusal", pp)?,
                    other => {
                        return Err(
                            pp.invalid(format!("unsupported part type `{}`", wire::word(other)))
                        );
                    }
                };
                blocks.extend(text_block(text, field(part, "cache_control")));
            }
            Ok(blocks)
        }
        v => Err(cp.invalid(format!(
            "expected a string or an array of parts, got {}",
            type_name(v)
        ))),
    }
}

/// `https://…` becomes a URL source; `data:<media>;base64,<data>` a base64 source.
fn image_source<'v>(url: &'v str, up: Path<'_>) -> Result<ImageSource<'v>, Error> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| up.invalid("data URL has no `,` before its data"))?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            up.invalid("data URL must be base64-encoded (`data:<type>;base64,…`)")
        })?;
        if !IMAGE_MEDIA_TYPES.contains(&media_type) {
            return Err(up.invalid(format!("unsupported image media type `{}` (expected image/jpeg, image/png, image/gif or image/webp)", wire::word(media_type))));
        }
        return Ok(ImageSource::Base64 { media_type, data });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url { url });
    }
    Err(up.invalid("expected an https URL or a base64 data URL"))
}

fn tool_call_to_block<'v>(call: &'v Value, tp: Path<'_>) -> Result<Block<'v>, Error> {
    let call = object(call, tp)?;
    if let Some(kind) = opt_str(call, "type", tp)?
        && kind != "function"
    {
        return Err(tp
            .key("type")
            .invalid(format!("unsupported tool call type `{}`", wire::word(kind))));
    }
    let id = req_str(call, "id", tp)?;
    let fp = tp.key("function");
    let function =
        opt_object(call, "function", tp)?.ok_or_else(|| fp.invalid("missing required field"))?;
    let name = req_str(function, "name", fp)?;
    let arguments = opt_str(function, "arguments", fp)?.unwrap_or("");
    // Anthropic wants the arguments as an object, OpenAI sends them as a JSON string.
    let input = if arguments.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        match serde_json::from_str::<Value>(arguments) {
            Ok(v @ Value::Object(_)) => v,
            Ok(v) => {
                return Err(fp
                    .key("arguments")
                    .invalid(format!("expected a JSON object, got {}", type_name(&v))));
            }
            Err(_) => return Err(fp.key("arguments").invalid("not valid JSON")),
        }
    };
    Ok(Block::ToolUse { id, name, input })
}

fn chat_tools_to_messages<'v>(
    req: &'v Map<String, Value>,
    p: Path<'_>,
) -> Result<Vec<Tool<'v>>, Error> {
    let Some(tools) = opt_array(req, "tools", p)? else {
        return Ok(Vec::new());
    };
    let tsp = p.key("tools");
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let tp = tsp.index(i);
        let tool = object(tool, tp)?;
        match req_str(tool, "type", tp)? {
            "function" => {}
            other => {
                return Err(tp
                    .key("type")
                    .invalid(format!("unsupported tool type `{}`", wire::word(other))));
            }
        }
        let fp = tp.key("function");
        let function = opt_object(tool, "function", tp)?
            .ok_or_else(|| fp.invalid("missing required field"))?;
        let input_schema = match field(function, "parameters") {
            Some(schema @ Value::Object(_)) => Cow::Borrowed(schema),
            Some(v) => {
                return Err(fp
                    .key("parameters")
                    .invalid(format!("expected an object, got {}", type_name(v))));
            }
            // OpenAI allows a function without parameters; Anthropic requires a schema.
            None => Cow::Owned(empty_object_schema()),
        };
        out.push(Tool {
            name: req_str(function, "name", fp)?,
            description: opt_str(function, "description", fp)?,
            input_schema,
        });
    }
    Ok(out)
}

fn empty_object_schema() -> Value {
    let mut schema = Map::new();
    schema.insert("type".to_owned(), Value::from("object"));
    schema.insert("properties".to_owned(), Value::Object(Map::new()));
    Value::Object(schema)
}

fn chat_tool_choice_to_messages<'v>(
    req: &'v Map<String, Value>,
    p: Path<'_>,
) -> Result<Option<ToolChoice<'v>>, Error> {
    // parallel_tool_calls=false lives on Anthropic's tool_choice as disable_parallel_tool_use.
    let disable_parallel =
        opt_bool(req, "parallel_tool_calls", p)?.and_then(|parallel| (!parallel).then_some(true));
    let cp = p.key("tool_choice");
    let choice = match field(req, "tool_choice") {
        None => disable_parallel.map(|d| ToolChoice::Auto {
            disable_parallel_tool_use: Some(d),
        }),
        Some(Value::String(mode)) => Some(match mode.as_str() {
            "auto" => ToolChoice::Auto {
                disable_parallel_tool_use: disable_parallel,
            },
            "required" => ToolChoice::Any {
                disable_parallel_tool_use: disable_parallel,
            },
            "none" => ToolChoice::None,
            other => {
                return Err(cp.invalid(format!("unsupported tool_choice `{}`", wire::word(other))));
            }
        }),
        Some(Value::Object(choice)) => {
            match req_str(choice, "type", cp)? {
                "function" => {}
                other => {
                    return Err(cp.key("type").invalid(format!(
                        "unsupported tool_choice type `{}`",
                        wire::word(other)
                    )));
                }
            }
            let fp = cp.key("function");
            let function = opt_object(choice, "function", cp)?
                .ok_or_else(|| fp.invalid("missing required field"))?;
            Some(ToolChoice::Tool {
                name: req_str(function, "name", fp)?,
                disable_parallel_tool_use: disable_parallel,
            })
        }
        Some(v) => {
            return Err(cp.invalid(format!(
                "expected a string or an object, got {}",
                type_name(v)
            )));
        }
    };
    Ok(choice)
}

fn stop_sequences<'v>(req: &'v Map<String, Value>, p: Path<'_>) -> Result<Vec<&'v str>, Error> {
    let sp = p.key("stop");
    match field(req, "stop") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().ok_or_else(|| {
                    sp.index(i)
                        .invalid(format!("expected a string, got {}", type_name(item)))
                })
            })
            .collect(),
        Some(v) => Err(sp.invalid(format!(
            "expected a string or an array of strings, got {}",
            type_name(v)
        ))),
    }
}
