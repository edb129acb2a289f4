//! The one tower stack every proxy request passes through, outermost first:
//!
//! 1. `RequestIdLayer` — gives the request its id (`x-switchyard-request-id`, echoed on every
//!    response, errors included), first so everything below can name it.
//! 2. `TraceLayer` — a tracing span per request carrying the id; logs status and latency once
//!    the response head is ready. Outside the limits so refused requests are logged too.
//! 3. `GlobalConcurrencyLimitLayer` (tower) — at most `max_concurrency` requests in the
//!    handler at once; more wait for a slot (backpressure, not errors). A slot is held until
//!    the response head is ready; streamed bodies are bounded by the connection count.
//! 4. `TimeoutLayer` — bounds the time to the response head (504 in OpenAI's shape). Inside
//!    the concurrency limit so time spent queueing does not count against the request.
//! 5. `BodyLimitLayer` — refuses a declared `content-length` above the limit with 413 before
//!    reading anything; the handler caps undeclared (chunked) bodies while reading.
//! 6. the router (`proxy::route_request`).
//!
//! Every layer's error type is `Infallible`: failures are already responses.

use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer, Service, ServiceBuilder};
use tracing::Instrument;

use super::error::ApiError;
use super::{Body, HEADER_REQUEST_ID};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The request's id, set by `RequestIdLayer`; the only domain-free value in extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Build the stack around `inner`.
pub fn build<S>(
    inner: S,
    limits: crate::config::Limits,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(TraceLayer)
        .layer(GlobalConcurrencyLimitLayer::new(limits.max_concurrency))
        .layer(TimeoutLayer(limits.request_timeout))
        .layer(BodyLimitLayer(limits.max_body_bytes))
        .service(inner)
}

fn request_id(req: &Request<Incoming>) -> Arc<str> {
    req.extensions()
        .get::<RequestId>()
        .map_or_else(|| Arc::from("-"), |id| id.0.clone())
}

// 1. request id -------------------------------------------------------------------------------

#[derive(Clone)]
pub struct RequestIdLayer {
    prefix: u32,
    counter: Arc<AtomicU64>,
}

impl RequestIdLayer {
    fn new() -> Self {
        // Random per process, so ids from several replicas do not collide.
        let prefix = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as u32;
        RequestIdLayer {
            prefix,
            counter: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestIdService<S> {
    inner: S,
    layer: RequestIdLayer,
}

impl<S> Service<Request<Incoming>> for RequestIdService<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let n = self.layer.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("req_{:08x}{:012x}", self.layer.prefix, n);
        let header = HeaderValue::from_str(&id).ok();
        req.extensions_mut().insert(RequestId(id.into()));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut rsp = fut.await?;
            if let Some(h) = header {
                rsp.headers_mut().insert(HEADER_REQUEST_ID, h);
            }
            Ok(rsp)
        })
    }
}

// 2. trace ------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Trace { inner }
    }
}

#[derive(Clone)]
pub struct Trace<S> {
    inner: S,
}

impl<S> Service<Request<Incoming>> for Trace<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let span = tracing::info_span!(
            "request",
            id = %request_id(&req),
            method = %req.method(),
            path = %req.uri().path(),
        );
        let started = Instant::now();
        let fut = {
            let _enter = span.enter();
            self.inner.call(req)
        };
        Box::pin(
            async move {
                let rsp = fut.await?;
                tracing::debug!(
                    status = rsp.status().as_u16(),
                    micros = started.elapsed().as_micros() as u64,
                    "response head"
                );
                Ok(rsp)
            }
            .instrument(span),
        )
    }
}

// 4. timeout ----------------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub struct TimeoutLayer(Duration);

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            limit: self.0,
        }
    }
}

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request<Incoming>> for Timeout<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let id = request_id(&req);
        let limit = self.limit;
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(rsp) => rsp,
                Err(_) => Ok(ApiError::Timeout(limit).into_response(&id)),
            }
        })
    }
}

// 5. body limit -------------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub struct BodyLimitLayer(usize);

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            limit: self.0,
        }
    }
}

#[derive(Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> Service<Request<Incoming>> for BodyLimit<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            let rsp = ApiError::TooLarge { limit: self.limit }.into_response(&request_id(&req));
            return Box::pin(async move { Ok(rsp) });
        }
        Box::pin(self.inner.call(req))
    }
}
