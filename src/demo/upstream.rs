//! A simulated OpenAI-compatible provider on loopback, for the demo and the benchmarks.
//!
//! It answers `POST /v1/chat/completions` (JSON and SSE, honouring
//! `stream_options.include_usage` as OpenAI does) and `POST /v1/embeddings` with deterministic
//! text, realistic token counts (about four characters a token in, one token a word out) and a
//! configurable latency: time to first token plus a delay per token. It is a real HTTP server
//! on an ephemeral port, so the proxy in front of it runs exactly as in production.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::providers::BoxError;

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// How the simulated model behaves.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Name reported in responses.
    pub name: &'static str,
    pub time_to_first_token: Duration,
    pub per_token: Duration,
    /// Output length when the request gives no `max_tokens`: between these bounds.
    pub min_output: u32,
    pub max_output: u32,
    /// Every `fault_every`-th request answers 500 (0: never), for soak tests.
    pub fault_every: u64,
}

impl Profile {
    /// No latency at all: for load tests measuring the proxy alone.
    pub fn instant(name: &'static str) -> Profile {
        Profile {
            name,
            time_to_first_token: Duration::ZERO,
            per_token: Duration::ZERO,
            min_output: 16,
            max_output: 64,
            fault_every: 0,
        }
    }
}

/// Start the simulator on `addr` (use port 0 for an ephemeral port); returns the bound address.
/// The server runs until the process ends.
pub async fn start(addr: SocketAddr, profile: Profile) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            // Best effort: a socket that cannot take the option still works.
            let _nodelay = stream.set_nodelay(true);
            let served = served.clone();
            let svc = hyper::service::service_fn(move |req| {
                let n = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let fault = profile.fault_every > 0 && n.is_multiple_of(profile.fault_every);
                handle(req, profile, fault)
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            tokio::spawn(async move {
                let _ended = conn.await; // a client hanging up is normal here
            });
        }
    });
    Ok(local)
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<serde_json::Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

async fn handle(
    req: Request<Incoming>,
    profile: Profile,
    fault: bool,
) -> Result<Response<Body>, Infallible> {
    if fault {
        return Ok(status(StatusCode::INTERNAL_SERVER_ERROR, "injected fault"));
    }
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    Ok(match (method, path.as_str()) {
        (Method::POST, "/v1/chat/completions") => {
            match serde_json::from_slice::<ChatRequest>(&body) {
                Ok(chat) => completion(chat, profile).await,
                Err(e) => status(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        }
        (Method::POST, "/v1/embeddings") => embeddings(&body),
        (Method::GET, "/v1/models") => json(
            serde_json::json!({"object":"list","data":[{"id": profile.name, "object":"model"}]}),
        ),
        _ => status(StatusCode::NOT_FOUND, "not found"),
    })
}

fn status(code: StatusCode, message: &str) -> Response<Body> {
    let mut rsp = json(
        serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    );
    *rsp.status_mut() = code;
    rsp
}

fn json(value: serde_json::Value) -> Response<Body> {
    let mut rsp = Response::new(
        Full::new(Bytes::from(value.to_string()))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}

/// FNV-1a: a stable seed from the prompt, so the same prompt gets the same answer.
fn seed(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const WORDS: &[&str] = &[
    "the", "model", "answer", "is", "based", "on", "your", "request", "and", "we", "can", "see",
    "that", "this", "approach", "works", "well", "for", "most", "cases", "here", "a", "summary",
    "of", "key", "points", "first", "second", "finally", "result", "data", "value", "shows",
];

fn words(seed: u64, n: u32) -> Vec<&'static str> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            WORDS
                .get((x % WORDS.len() as u64) as usize)
                .copied()
                .unwrap_or("the")
        })
        .collect()
}

async fn completion(chat: ChatRequest, profile: Profile) -> Response<Body> {
    let prompt = serde_json::to_string(&chat.messages).unwrap_or_default();
    let input_tokens = (prompt.len() as u64).div_ceil(4).max(1);
    let s = seed(prompt.as_bytes());
    let span = u64::from(profile.max_output.saturating_sub(profile.min_output).max(1));
    let natural = profile.min_output + (s % span) as u32;
    let limit = chat
        .max_completion_tokens
        .or(chat.max_tokens)
        .unwrap_or(u32::MAX);
    let n = natural.min(limit).max(1);
    let finish = if natural > limit { "length" } else { "stop" };
    let text = words(s, n);
    let id = format!("chatcmpl-sim{:x}", s & 0xffff_ffff);
    let model = if chat.model.is_empty() {
        profile.name.to_owned()
    } else {
        chat.model
    };
    let usage = serde_json::json!({"prompt_tokens": input_tokens, "completion_tokens": n, "total_tokens": input_tokens + u64::from(n)});
    // Never sleep for zero: tokio rounds a timer up to its next 1 ms tick, which would give an
    // "instant" mock a millisecond or two of latency and jitter (and blur every benchmark).
    pause(profile.time_to_first_token).await;
    if !chat.stream {
        pause(profile.per_token * n).await;
        return json(serde_json::json!({
            "id": id, "object": "chat.completion", "created": 1_700_000_000u64, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text.join(" ")}, "finish_reason": finish}],
            "usage": usage,
        }));
    }
    let include_usage = chat.stream_options.is_some_and(|o| o.include_usage);
    let mut events: Vec<String> = Vec::with_capacity(text.len() + 4);
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let mut c = serde_json::json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if let (true, Some(obj)) = (include_usage, c.as_object_mut()) {
            obj.insert("usage".to_owned(), serde_json::Value::Null);
        }
        format!("data: {c}\n\n")
    };
    events.push(chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    ));
    for (i, w) in text.iter().enumerate() {
        let piece = if i == 0 {
            (*w).to_owned()
        } else {
            format!(" {w}")
        };
        events.push(chunk(serde_json::json!({"content": piece}), None));
    }
    events.push(chunk(serde_json::json!({}), Some(finish)));
    if include_usage {
        let c = serde_json::json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": model, "choices": [], "usage": usage});
        events.push(format!("data: {c}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_owned());
    let per_token = profile.per_token;
    let frames = stream::unfold(
        (events.into_iter(), true),
        move |(mut it, first)| async move {
            let next = it.next()?;
            if !first && !per_token.is_zero() {
                tokio::time::sleep(per_token).await;
            }
            Some((
                Ok::<_, BoxError>(Frame::data(Bytes::from(next))),
                (it, false),
            ))
        },
    );
    let mut rsp = Response::new(StreamBody::new(frames).boxed_unsync());
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    rsp
}

fn embeddings(body: &[u8]) -> Response<Body> {
    let tokens = (body.len() as u64).div_ceil(4);
    let s = seed(body);
    let vector: Vec<f32> = (0..8).map(|i| ((s >> i) & 0xff) as f32 / 255.0).collect();
    json(serde_json::json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": "sim-embed",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

/// `tokio::time::sleep`, except that zero returns at once.
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
