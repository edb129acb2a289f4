//! Private wire shapes of both APIs, and the small helpers every direction shares.
//!
//! Owns: the serde types we *write* (requests, responses, stream events of both APIs), the
//! serde types we *read* from upstream responses and stream events, the field-path cursor used
//! to explain client errors, SSE framing, and usage conversion.
//!
//! Deliberately does not: translate anything (the sibling modules do), or model fields we never
//! read. Client *requests* are walked as `serde_json::Value` with [`Path`] so every error names
//! the exact field (`messages[2].content[0].type`); upstream bodies use derived `Deserialize`
//! because their errors only reach logs.
//!
//! Invariant: output types serialize only what the target API documents; optional fields are
//! skipped, never sent as `null`, unless the target API itself sends `null` there.

mod anthropic;
mod openai;

pub(super) use anthropic::*;
pub(super) use openai::*;

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Error;

// ---------------------------------------------------------------------------------------------
// Field paths and typed access to client JSON
// ---------------------------------------------------------------------------------------------

/// A JSON field path built on the stack while walking a request; rendered only on error.
#[derive(Clone, Copy)]
pub(super) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub(super) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    pub(super) fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }

    /// A client-fault error at this path.
    pub(super) fn invalid(&self, message: impl Into<String>) -> Error {
        Error::InvalidRequest {
            path: self.to_string(),
            message: message.into(),
        }
    }

    /// An upstream-fault error at this path.
    pub(super) fn upstream(&self, message: impl Into<String>) -> Error {
        Error::InvalidUpstream {
            path: self.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("body"),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// JSON type name for error messages.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a client request body.
pub(super) fn parse_request(body: &[u8]) -> Result<Value, Error> {
    // serde_json syntax errors carry a position, never input text.
    serde_json::from_slice(body).map_err(|e| Path::Root.invalid(format!("not valid JSON: {e}")))
}

pub(super) fn object<'v>(v: &'v Value, p: Path<'_>) -> Result<&'v Map<String, Value>, Error> {
    v.as_object()
        .ok_or_else(|| p.invalid(format!("expected an object, got {}", type_name(v))))
}

/// A field, treating JSON `null` as absent (both APIs do).
pub(super) fn field<'v>(m: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    m.get(key).filter(|v| !v.is_null())
}

pub(super) fn opt_str<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    p: Path<'_>,
) -> Result<Option<&'v str>, Error> {
    match field(m, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(p
            .key(key)
            .invalid(format!("expected a string, got {}", type_name(v)))),
    }
}

pub(super) fn req_str<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    p: Path<'_>,
) -> Result<&'v str, Error> {
    opt_str(m, key, p)?.ok_or_else(|| p.key(key).invalid("missing required field"))
}

pub(super) fn opt_u64(
    m: &Map<String, Value>,
    key: &str,
    p: Path<'_>,
) -> Result<Option<u64>, Error> {
    match field(m, key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            p.key(key).invalid(format!(
                "expected a non-negative integer, got {}",
                type_name(v)
            ))
        }),
    }
}

pub(super) fn opt_f64(
    m: &Map<String, Value>,
    key: &str,
    p: Path<'_>,
) -> Result<Option<f64>, Error> {
    match field(m, key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            p.key(key)
                .invalid(format!("expected a number, got {}", type_name(v)))
        }),
    }
}

pub(super) fn opt_bool(
    m: &Map<String, Value>,
    key: &str,
    p: Path<'_>,
) -> Result<Option<bool>, Error> {
    match field(m, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(p
            .key(key)
            .invalid(format!("expected a boolean, got {}", type_name(v)))),
    }
}

pub(super) fn opt_array<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    p: Path<'_>,
) -> Result<Option<&'v [Value]>, Error> {
    match field(m, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(p
            .key(key)
            .invalid(format!("expected an array, got {}", type_name(v)))),
    }
}

pub(super) fn opt_object<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    p: Path<'_>,
) -> Result<Option<&'v Map<String, Value>>, Error> {
    field(m, key).map(|v| object(v, p.key(key))).transpose()
}

// ---------------------------------------------------------------------------------------------
// Encoding and SSE framing
// ---------------------------------------------------------------------------------------------

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(Error::Encode)
}

/// For bodies made only of strings and numbers, which always encode.
pub(super) fn encode_infallible<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| {
        br#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.to_vec()
    })
}

/// Appends `data: {json}\n\n` (OpenAI framing).
pub(super) fn write_data<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    let json = encode(value)?;
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    Ok(())
}

/// Appends `event: {name}\ndata: {json}\n\n` (Anthropic framing).
pub(super) fn write_event<T: Serialize>(
    out: &mut Vec<u8>,
    name: &str,
    value: &T,
) -> Result<(), Error> {
    let json = encode(value)?;
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stop reasons
// ---------------------------------------------------------------------------------------------

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub(super) fn finish_reason_for(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, absent, or a value newer than this code.
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`. Some compatible servers (Ollama, older
/// vLLM) say `stop` after emitting tool calls; a turn with tool calls always maps to `tool_use`.
pub(super) fn stop_reason_for(finish_reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls" | "function_call") => "tool_use",
        _ if has_tool_calls => "tool_use",
        _ => "end_turn",
    }
}

/// A client-sent schema word (role, part type, tool type) safe to echo in an error: short and
/// made of identifier characters. Anything else might be prompt text and is not echoed.
pub(super) fn word(s: &str) -> &str {
    let is_word = s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if is_word { s } else { "<not shown>" }
}
