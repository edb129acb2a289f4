//! `UsageTap`: the body wrapper that streams an upstream response to the client while reading
//! its usage, and settles the request's cost exactly once.
//!
//! It forwards every event as soon as it is complete (no coalescing beyond one upstream read),
//! hides the usage-only chunk that switchyard itself asked for, and enforces the provider's read
//! timeout between chunks. Invariant: `settle` runs exactly once — at end of stream, on an
//! upstream failure, or from `Drop` when the client hangs up — with reported usage when it
//! arrived, else an estimate from the text seen (marked estimated). Once a provider starts
//! generating, money is spent, so a hang-up is charged too.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::anthropic::{ChatStreamToMessages, MessagesStreamToChat, MessagesStreamUsage};
use super::{BoxError, anthropic, estimate_tokens, openai, sse};
use crate::budget::Usage;

/// Largest single SSE event accepted from an upstream.
const MAX_EVENT_BYTES: usize = 4 << 20;

/// How the stream is read and what the client receives.
pub enum StreamMode {
    /// OpenAI-compatible upstream to an OpenAI client: events pass through byte for byte;
    /// `hide_usage` drops the usage-only chunk the client did not ask for.
    OpenAi { hide_usage: bool },
    /// Anthropic upstream to an Anthropic client: events pass through byte for byte; usage is
    /// read from `message_start` (input) and `message_delta` (output).
    Anthropic(MessagesStreamUsage),
    /// Anthropic upstream to an OpenAI client: events translated to chat chunks.
    AnthropicToOpenAi(Box<MessagesStreamToChat>),
    /// OpenAI-compatible upstream to an Anthropic client: chunks translated to message events.
    OpenAiToAnthropic(Box<ChatStreamToMessages>),
}

impl StreamMode {
    /// Whether the client speaks Anthropic's wire format (for error events).
    fn client_is_anthropic(&self) -> bool {
        matches!(
            self,
            StreamMode::Anthropic(_) | StreamMode::OpenAiToAnthropic(_)
        )
    }
}

/// How a stream ended, as recorded in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream finished the stream.
    Completed,
    /// The upstream failed or fell silent mid-stream.
    UpstreamFailed,
    /// The client went away before the end.
    ClientGone,
}

impl StreamEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Completed => "ok",
            StreamEnd::UpstreamFailed => "upstream_failed",
            StreamEnd::ClientGone => "client_gone",
        }
    }
}

/// Called once with the usage (reported, or estimated when `estimated`) and how it ended.
/// Returns a future that resolves when the charge is durable; the stream's last bytes are held
/// until it does, so a client that saw the end of its stream was charged even if the process
/// is killed right after.
pub type Settle = Box<dyn FnOnce(Usage, bool, StreamEnd) -> Durability + Send>;

/// Resolves when a settled charge is durable.
pub type Durability = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct UsageTap {
    inner: Incoming,
    parser: sse::Parser,
    mode: StreamMode,
    usage: Option<Usage>,
    text_chars: usize,
    input_estimate: u64,
    read_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    settle: Option<Settle>,
    /// The charge's durability, awaited before the bytes in `held` go out.
    durability: Option<Durability>,
    held: Option<Bytes>,
    finished: bool,
}

impl UsageTap {
    pub fn new(
        inner: Incoming,
        mode: StreamMode,
        input_estimate: u64,
        read_timeout: Duration,
        settle: Settle,
    ) -> UsageTap {
        UsageTap {
            inner,
            parser: sse::Parser::new(MAX_EVENT_BYTES),
            mode,
            usage: None,
            text_chars: 0,
            input_estimate,
            read_timeout,
            idle: Box::pin(tokio::time::sleep(read_timeout)),
            settle: Some(settle),
            durability: None,
            held: None,
            finished: false,
        }
    }

    /// `on_event`, settling as soon as the stream's last event is seen (`[DONE]`,
    /// `message_stop`), before the client can read it: whoever reads the end also sees the
    /// charge.
    fn on_event_checked(&mut self, event: sse::Event) -> Option<Bytes> {
        let ends = match &self.mode {
            StreamMode::OpenAi { .. } => event.data == "[DONE]",
            StreamMode::Anthropic(_) => {
                event.event.as_deref() == Some("message_stop")
                    || event.data.contains("\"type\":\"message_stop\"")
            }
            StreamMode::AnthropicToOpenAi(_) | StreamMode::OpenAiToAnthropic(_) => false,
        };
        let out = self.on_event(event);
        let translated_done = match &self.mode {
            StreamMode::AnthropicToOpenAi(t) => t.finished(),
            StreamMode::OpenAiToAnthropic(t) => t.finished(),
            StreamMode::OpenAi { .. } | StreamMode::Anthropic(_) => false,
        };
        if ends || translated_done {
            self.settle(StreamEnd::Completed);
        }
        out
    }

    /// Handle one complete event; returns the bytes to forward, if any.
    fn on_event(&mut self, event: sse::Event) -> Option<Bytes> {
        let name = event.event.as_deref();
        match &mut self.mode {
            StreamMode::OpenAi { hide_usage } => {
                if event.data.is_empty() || event.data == "[DONE]" {
                    return Some(event.raw);
                }
                let reading = openai::read(event.data.as_bytes());
                self.text_chars += reading.text_chars;
                if reading.usage.is_some() {
                    self.usage = reading.usage;
                }
                if *hide_usage && reading.usage_only {
                    return None;
                }
                Some(event.raw)
            }
            StreamMode::Anthropic(tap) => {
                tap.on_event(name, &event.data);
                self.usage = tap.usage();
                self.text_chars = tap.text_chars();
                Some(event.raw)
            }
            StreamMode::AnthropicToOpenAi(t) => {
                if event.data.is_empty() {
                    return None; // keep-alives have no OpenAI counterpart
                }
                let mut out = Vec::new();
                if let Err(err) = t.on_event(name, &event.data, &mut out) {
                    tracing::warn!(error = %err, "untranslatable upstream event");
                }
                self.usage = t.usage();
                self.text_chars = t.text_chars();
                (!out.is_empty()).then(|| Bytes::from(out))
            }
            StreamMode::OpenAiToAnthropic(t) => {
                if event.data.is_empty() {
                    return None;
                }
                let mut out = Vec::new();
                if let Err(err) = t.on_event(name, &event.data, &mut out) {
                    tracing::warn!(error = %err, "untranslatable upstream event");
                }
                self.usage = t.usage();
                self.text_chars = t.text_chars();
                (!out.is_empty()).then(|| Bytes::from(out))
            }
        }
    }

    /// At end of stream: what a translator still has to say (a truncated stream becomes an
    /// error event rather than looking complete).
    fn on_end(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        let result = match &mut self.mode {
            StreamMode::AnthropicToOpenAi(t) => t.on_end(&mut out),
            StreamMode::OpenAiToAnthropic(t) => t.on_end(&mut out),
            StreamMode::OpenAi { .. } | StreamMode::Anthropic(_) => Ok(()),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "upstream stream ended early");
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn settle(&mut self, end: StreamEnd) {
        if let Some(settle) = self.settle.take() {
            let (usage, estimated) = match self.usage {
                Some(u) => (u, false),
                None => (
                    Usage {
                        input: self.input_estimate,
                        cached_input: 0,
                        output: estimate_tokens(self.text_chars),
                    },
                    true,
                ),
            };
            self.durability = Some(settle(usage, estimated, end));
        }
    }

    /// Bytes to send now, or held until the charge is durable.
    fn emit(
        &mut self,
        bytes: Option<Bytes>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(durability) = self.durability.as_mut() {
            if durability.as_mut().poll(cx).is_pending() {
                if let Some(b) = bytes {
                    self.held = Some(match self.held.take() {
                        Some(h) => Bytes::from([h, b].concat()),
                        None => b,
                    });
                }
                return Poll::Pending;
            }
            self.durability = None;
        }
        let out = match (self.held.take(), bytes) {
            (Some(a), Some(b)) => Some(Bytes::from([a, b].concat())),
            (a, b) => a.or(b),
        };
        match out {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None if self.finished => Poll::Ready(None),
            None => {
                // Nothing to send yet: poll again rather than stall.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    /// Drain complete events from the parser into one frame's worth of bytes.
    fn drain(&mut self, at_eof: bool) -> Result<Option<Bytes>, sse::TooLarge> {
        let mut single: Option<Bytes> = None;
        let mut many: Option<BytesMut> = None;
        loop {
            let event = match self.parser.next_event()? {
                Some(e) => e,
                None if at_eof => match self.parser.finish() {
                    Some(e) => e,
                    None => break,
                },
                None => break,
            };
            let forwarded = self.on_event_checked(event);
            let Some(bytes) = forwarded else {
                continue;
            };
            match (&mut single, &mut many) {
                (None, None) => single = Some(bytes),
                (Some(first), None) => {
                    let mut buf = BytesMut::with_capacity(first.len() + bytes.len());
                    buf.extend_from_slice(first);
                    buf.extend_from_slice(&bytes);
                    single = None;
                    many = Some(buf);
                }
                (_, Some(buf)) => buf.extend_from_slice(&bytes),
            }
        }
        Ok(many.map(BytesMut::freeze).or(single))
    }

    /// An error event in the client's wire format, for failures after the head was sent.
    fn error_event(&self, message: &str) -> Bytes {
        if self.mode.client_is_anthropic() {
            let body = anthropic::error_body("api_error", message);
            let mut out = b"event: error\ndata: ".to_vec();
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\n\n");
            return Bytes::from(out);
        }
        let body = serde_json::json!({"error": {"message": message, "type": "api_error", "param": null, "code": "upstream_error"}});
        Bytes::from(format!("data: {body}\n\n"))
    }
}

impl Body for UsageTap {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        // The charge must be durable before the stream's last bytes go out.
        if let Some(durability) = this.durability.as_mut() {
            if durability.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.durability = None;
        }
        if let Some(held) = this.held.take() {
            return Poll::Ready(Some(Ok(Frame::data(held))));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers: nothing for the client
                    };
                    this.parser.push(&data);
                    let deadline = Instant::now() + this.read_timeout;
                    this.idle.as_mut().reset(deadline);
                    match this.drain(false) {
                        Ok(Some(bytes)) => return this.emit(Some(bytes), cx),
                        Ok(None) => {
                            if let Some(durability) = this.durability.as_mut() {
                                if durability.as_mut().poll(cx).is_pending() {
                                    return Poll::Pending;
                                }
                                this.durability = None;
                            }
                            continue;
                        }
                        Err(too_large) => {
                            tracing::warn!(error = %too_large, "upstream stream rejected");
                            this.finished = true;
                            this.settle(StreamEnd::UpstreamFailed);
                            let bytes = this.error_event("the upstream stream was malformed");
                            return this.emit(Some(bytes), cx);
                        }
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    tracing::warn!(error = %err, "upstream stream failed");
                    this.finished = true;
                    this.settle(StreamEnd::UpstreamFailed);
                    let bytes = this.error_event("the upstream stream was interrupted");
                    return this.emit(Some(bytes), cx);
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    let rest = this.drain(true).ok().flatten();
                    let tail = this.on_end();
                    this.settle(StreamEnd::Completed);
                    let bytes = match (rest, tail) {
                        (Some(a), Some(b)) => Some(Bytes::from([a, b].concat())),
                        (a, b) => a.or(b),
                    };
                    return this.emit(bytes, cx);
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        tracing::warn!(timeout = ?this.read_timeout, "upstream stream fell silent");
                        this.finished = true;
                        this.settle(StreamEnd::UpstreamFailed);
                        let bytes = this.error_event("the upstream stream timed out");
                        return this.emit(Some(bytes), cx);
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for UsageTap {
    fn drop(&mut self) {
        // The client hung up (or the server is shutting down) before the end: charge what was
        // generated so far.
        self.settle(StreamEnd::ClientGone);
    }
}

use std::future::Future;
