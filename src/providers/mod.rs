//! Upstream providers: one pooled HTTP(S) client, and the per-kind knowledge of where to send a
//! request, how to authenticate, and how to read usage back.
//!
//! The request path sees one small interface: `send` a prepared body to a provider for an
//! operation, get the upstream response; wrap a streamed body in `UsageTap`. Provider kinds
//! are an enum (`ProviderKind`), not trait objects. This module never decides routing or money.

pub mod anthropic;
pub mod openai;
pub mod sse;
mod usage_tap;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::policy::{ProviderKind, ProviderSpec};

pub use crate::budget::Usage;
pub use usage_tap::{Durability, Settle, StreamEnd, StreamMode, UsageTap};

/// Boxed error for response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the client asked for, in provider-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Embeddings,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to provider `{provider}`")]
    Connect {
        provider: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("provider `{provider}` sent no response headers within {timeout:?}")]
    Timeout { provider: String, timeout: Duration },
    #[error("provider `{provider}` does not serve {operation:?}")]
    Unsupported {
        provider: String,
        operation: Operation,
    },
    #[error("invalid upstream URL for provider `{provider}`")]
    Url {
        provider: String,
        #[source]
        source: http::Error,
    },
    #[error("reading the response of provider `{provider}` failed")]
    Body {
        provider: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
    #[error("provider `{provider}` answered {status}")]
    Status {
        provider: String,
        status: http::StatusCode,
    },
}

/// The one pooled upstream client: HTTP/1.1 and HTTP/2, TLS by rustls (no OpenSSL).
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<HttpConnector>,
        Full<Bytes>,
    >,
}

impl Client {
    pub fn new(connect_timeout: Duration) -> Result<Client, Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(Error::Tls)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        Ok(Client { inner })
    }

    /// Send `body` to `provider` for `operation`. Any HTTP status is `Ok`: the caller decides
    /// what a 4xx or 5xx means. Connect failures and header timeouts are `Err`.
    pub async fn send(
        &self,
        provider: &ProviderSpec,
        operation: Operation,
        body: Bytes,
        stream: bool,
    ) -> Result<Response<Incoming>, Error> {
        let path = match (provider.kind, operation) {
            (ProviderKind::Openai, Operation::Chat) => "/chat/completions",
            (ProviderKind::Openai, Operation::Embeddings) => "/embeddings",
            (ProviderKind::Anthropic, Operation::Chat) => "/v1/messages",
            (ProviderKind::Anthropic, Operation::Embeddings) => {
                return Err(Error::Unsupported {
                    provider: provider.name.to_string(),
                    operation,
                });
            }
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", provider.base_url))
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(
                header::ACCEPT,
                HeaderValue::from_static(if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }),
            );
        if let Some(key) = &provider.api_key {
            builder = match provider.kind {
                ProviderKind::Openai => {
                    builder.header(header::AUTHORIZATION, format!("Bearer {}", key.expose()))
                }
                ProviderKind::Anthropic => builder.header("x-api-key", key.expose()),
            };
        }
        if provider.kind == ProviderKind::Anthropic {
            builder = builder.header("anthropic-version", &*provider.anthropic_version);
        }
        for (name, value) in &provider.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Full::new(body)).map_err(|source| Error::Url {
            provider: provider.name.to_string(),
            source,
        })?;
        match tokio::time::timeout(provider.read_timeout, self.inner.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(source)) => Err(Error::Connect {
                provider: provider.name.to_string(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                provider: provider.name.to_string(),
                timeout: provider.read_timeout,
            }),
        }
    }
}

/// Estimated tokens for `chars` characters of text (about four characters a token in English;
/// used only when a provider reports no usage, and marked estimated).
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}
