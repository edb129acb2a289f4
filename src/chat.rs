//! The OpenAI chat/embeddings request as switchyard reads it.
//!
//! A proxy that drops or reorders fields breaks its users silently, so the body is read once into
//! an ordered list of `(key, raw JSON)` pairs borrowed from the original bytes; only the fields
//! switchyard needs are typed. Writing the request back out changes `model` (and, for streams,
//! `stream_options.include_usage`) and copies every other field byte for byte.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Why a request body was refused; every message names the offending field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request body is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("`{field}` {problem}")]
    Field {
        field: &'static str,
        problem: &'static str,
    },
}

impl Error {
    /// The request field at fault, for OpenAI's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            Error::Json(_) => None,
            Error::Field { field, .. } => Some(field),
        }
    }
}

/// One JSON object, its members in order, values unparsed.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    fields.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON object key, borrowed unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A chat message as the classifier and the estimator see it.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    #[serde(borrow, default)]
    pub role: Cow<'a, str>,
    #[serde(borrow, default)]
    pub content: Option<Content<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

#[derive(Debug, Deserialize)]
pub struct Part<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

impl Message<'_> {
    /// The text of the message (text parts joined by newlines).
    pub fn text(&self) -> Cow<'_, str> {
        match &self.content {
            None => Cow::Borrowed(""),
            Some(Content::Text(t)) => Cow::Borrowed(t),
            Some(Content::Parts(parts)) => {
                let texts: Vec<&str> = parts.iter().filter_map(|p| p.text.as_deref()).collect();
                match texts.as_slice() {
                    [one] => Cow::Borrowed(one),
                    many => Cow::Owned(many.join("\n")),
                }
            }
        }
    }
}

/// A parsed request body: typed view plus every member verbatim.
pub struct Request<'a> {
    fields: RawObject<'a>,
    /// The `model` the client asked for.
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// Chat messages; empty for embeddings.
    pub messages: Vec<Message<'a>>,
    pub has_tools: bool,
    /// `response_format.type` (`json_object`, `json_schema`, `text`).
    pub response_format: Option<Cow<'a, str>>,
    /// Rough size of the input (characters of messages or embedding input), for estimates.
    pub input_chars: usize,
    /// Size of the whole body in bytes, for the input bound.
    body_len: usize,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct ResponseFormat<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

/// Which endpoint's body this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OpenAI `/v1/chat/completions`.
    Chat,
    /// OpenAI `/v1/embeddings`.
    Embeddings,
    /// Anthropic `/v1/messages`: same typed view (its text blocks read like OpenAI text
    /// parts); the top-level `system` becomes the first message.
    Messages,
}

fn field_err(field: &'static str, problem: &'static str) -> Error {
    Error::Field { field, problem }
}

pub fn parse(body: &[u8], kind: Kind) -> Result<Request<'_>, Error> {
    let fields: RawObject<'_> = serde_json::from_slice(body).map_err(Error::Json)?;
    let mut req = Request {
        model: Cow::Borrowed(""),
        stream: false,
        include_usage: false,
        max_tokens: None,
        messages: Vec::new(),
        has_tools: false,
        response_format: None,
        input_chars: 0,
        body_len: body.len(),
        fields: RawObject(Vec::new()),
    };
    let mut saw_model = false;
    let mut saw_messages = false;
    for (key, raw) in &fields.0 {
        let json = raw.get();
        match key.as_ref() {
            "model" => {
                req.model = serde_json::from_str::<Cow<'_, str>>(json)
                    .map_err(|_| field_err("model", "must be a string"))?;
                saw_model = true;
            }
            "stream" => {
                req.stream = serde_json::from_str::<Option<bool>>(json)
                    .map_err(|_| field_err("stream", "must be a boolean"))?
                    .unwrap_or(false)
            }
            "stream_options" => {
                req.include_usage = serde_json::from_str::<Option<StreamOptions>>(json)
                    .map_err(|_| field_err("stream_options", "must be an object"))?
                    .is_some_and(|o| o.include_usage)
            }
            "max_tokens" | "max_completion_tokens" => {
                let n = serde_json::from_str::<Option<u64>>(json).map_err(|_| {
                    field_err(
                        if key == "max_tokens" {
                            "max_tokens"
                        } else {
                            "max_completion_tokens"
                        },
                        "must be a non-negative integer",
                    )
                })?;
                if key == "max_completion_tokens" || req.max_tokens.is_none() {
                    req.max_tokens = n.or(req.max_tokens);
                }
            }
            "messages" if kind != Kind::Embeddings => {
                let mut messages: Vec<Message<'_>> = serde_json::from_str(json).map_err(|_| {
                    field_err("messages", "must be an array of {role, content} objects")
                })?;
                // A `system` seen before `messages` stays first.
                req.messages.append(&mut messages);
                saw_messages = true;
            }
            "system" if kind == Kind::Messages => {
                let content: Content<'_> = serde_json::from_str(json).map_err(|_| {
                    field_err("system", "must be a string or an array of text blocks")
                })?;
                req.messages.insert(
                    0,
                    Message {
                        role: Cow::Borrowed("system"),
                        content: Some(content),
                    },
                );
            }
            "input" if kind == Kind::Embeddings => {
                req.input_chars = json.len();
                saw_messages = true;
            }
            "tools" | "functions" => req.has_tools = json != "null" && json != "[]",
            "response_format" => {
                req.response_format = serde_json::from_str::<Option<ResponseFormat<'_>>>(json)
                    .map_err(|_| field_err("response_format", "must be an object with a `type`"))?
                    .map(|f| f.kind)
            }
            _ => {}
        }
    }
    if !saw_model {
        return Err(field_err("model", "is required"));
    }
    if !saw_messages {
        return Err(match kind {
            Kind::Chat | Kind::Messages => field_err("messages", "is required"),
            Kind::Embeddings => field_err("input", "is required"),
        });
    }
    if kind != Kind::Embeddings {
        req.input_chars = req
            .messages
            .iter()
            .map(|m| m.text().chars().count() + 4)
            .sum();
    }
    req.fields = fields;
    Ok(req)
}

impl Request<'_> {
    /// The body to send upstream: `model` replaced, and for streams
    /// `stream_options.include_usage` forced on when `force_usage` (so switchyard can charge
    /// streamed responses). Every other member is copied verbatim, in order.
    pub fn to_upstream(&self, upstream_model: &str, force_usage: bool) -> Vec<u8> {
        let size: usize = self
            .fields
            .0
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size + upstream_model.len() + 48);
        out.push(b'{');
        let mut first = true;
        let mut wrote_options = false;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        for (key, raw) in &self.fields.0 {
            sep(&mut out);
            write_json_str(&mut out, key);
            out.push(b':');
            match key.as_ref() {
                "model" => write_json_str(&mut out, upstream_model),
                "stream_options" if force_usage && self.stream && !self.include_usage => {
                    out.extend_from_slice(&with_include_usage(raw.get()));
                    wrote_options = true;
                }
                _ => out.extend_from_slice(raw.get().as_bytes()),
            }
        }
        if force_usage && self.stream && !self.include_usage && !wrote_options {
            sep(&mut out);
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
        }
        out.push(b'}');
        out
    }

    /// An upper bound on the input tokens this request can be billed for, for reservations:
    /// a token covers at least one byte of what is sent (text, tool schemas and all), plus
    /// the chat template's few tokens per message. Estimates for charging use `input_chars`.
    pub fn input_token_bound(&self) -> u64 {
        let messages = u64::try_from(self.messages.len()).unwrap_or(u64::MAX);
        u64::try_from(self.body_len)
            .unwrap_or(u64::MAX)
            .saturating_add(messages.saturating_mul(8))
            .saturating_add(16)
    }

    /// The text of the last user message (empty when there is none).
    pub fn last_user_text(&self) -> Cow<'_, str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map_or(Cow::Borrowed(""), Message::text)
    }

    /// True when the proxy adds `include_usage` and must hide the usage chunk from the client.
    pub fn hides_usage(&self) -> bool {
        self.stream && !self.include_usage
    }
}

/// `stream_options` with `include_usage: true` set, other members kept.
fn with_include_usage(json: &str) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
        Ok(mut map) => {
            map.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
            serde_json::to_vec(&map).unwrap_or_else(|_| br#"{"include_usage":true}"#.to_vec())
        }
        Err(_) => br#"{"include_usage":true}"#.to_vec(),
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str cannot fail.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn rewrites_model_and_keeps_every_other_field_verbatim() {
        let body = br#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"response_format":{"type":"json_object"},"x_vendor":{"a":[1,2.50,"\u00e9"]},"temperature":0.7}"#;
        let req = parse(body, Kind::Chat).unwrap();
        assert_eq!(req.model, "auto");
        assert!(req.has_tools);
        assert_eq!(req.response_format.as_deref(), Some("json_object"));
        let out = String::from_utf8(req.to_upstream("llama3.1:8b", true)).unwrap();
        let expected = String::from_utf8(body.to_vec())
            .unwrap()
            .replace("\"auto\"", "\"llama3.1:8b\"");
        assert_eq!(out, expected);
    }

    #[test]
    fn streams_ask_for_usage_without_losing_stream_options() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"x":1},"messages":[]}"#;
        let req = parse(body, Kind::Chat).unwrap();
        assert!(req.hides_usage());
        let out: Value = serde_json::from_slice(&req.to_upstream("u", true)).unwrap();
        assert_eq!(out["stream_options"], json!({"x":1,"include_usage":true}));
        let body = br#"{"model":"m","stream":true,"messages":[]}"#;
        let out: Value =
            serde_json::from_slice(&parse(body, Kind::Chat).unwrap().to_upstream("u", true))
                .unwrap();
        assert_eq!(out["stream_options"], json!({"include_usage":true}));
    }

    #[test]
    fn names_the_bad_field() {
        let err = parse(br#"{"messages":[]}"#, Kind::Chat).err().unwrap();
        assert_eq!(err.to_string(), "`model` is required");
        let err = parse(br#"{"model":3,"messages":[]}"#, Kind::Chat)
            .err()
            .unwrap();
        assert_eq!(err.param(), Some("model"));
        assert!(matches!(
            parse(b"{\"model\":", Kind::Chat),
            Err(Error::Json(_))
        ));
        assert!(matches!(parse(b"[1]", Kind::Chat), Err(Error::Json(_))));
    }

    #[test]
    fn reads_text_of_string_and_part_contents() {
        let body = br#"{"model":"m","max_tokens":5,"max_completion_tokens":9,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a\"b"},{"type":"image_url","image_url":{"url":"x"}}]}]}"#;
        let req = parse(body, Kind::Chat).unwrap();
        assert_eq!(req.max_tokens, Some(9));
        assert_eq!(req.messages[1].text(), "a\"b");
        assert_eq!(req.messages[0].role, "system");
    }
}
