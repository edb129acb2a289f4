//! The OTLP/HTTP exporter over the crate's own hyper client.
//!
//! Quirk handled: the SDK's batch span processor exports from its own OS thread with a
//! minimal executor, but a hyper client needs the tokio runtime. Each export is therefore
//! spawned onto the runtime captured at build time and awaited through its `JoinHandle`,
//! which any executor can poll.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::HttpError;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};

use super::Error;

/// Largest collector response read (they are tiny: a partial-success message at most).
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An `opentelemetry_http::HttpClient` on hyper-util (HTTP/1.1 and h2, http and https).
#[derive(Debug, Clone)]
pub(super) struct Client {
    inner: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<HttpConnector>,
        Full<Bytes>,
    >,
    runtime: tokio::runtime::Handle,
}

impl Client {
    fn new() -> Result<Client, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::Client(std::io::Error::other(e)))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| Error::Client(std::io::Error::other(e)))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
        Ok(Client { inner, runtime })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.inner.clone();
        let task = self.runtime.spawn(async move {
            let rsp = client.request(request.map(Full::new)).await?;
            let (parts, body) = rsp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        });
        task.await?
    }
}

/// The span exporter posting to `endpoint` (the full `…/v1/traces` URL); headers, timeout and
/// compression come from the `OTEL_EXPORTER_OTLP_*` variables.
pub(super) fn exporter(endpoint: String) -> Result<opentelemetry_otlp::SpanExporter, Error> {
    Ok(opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(Client::new()?)
        .build()?)
}
