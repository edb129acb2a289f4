//! `ApiError`: every failure a client can see, and the one place that picks its HTTP status.
//!
//! Client faults carry a specific message; upstream and internal faults get a generic message
//! plus the request id (the detail goes to the log, once, where the error becomes a response).
//! The body is OpenAI's `{"error":{"message","type","param","code"}}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::Body;
use crate::{chat, providers};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(#[from] chat::Error),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    UnknownModel(String),
    #[error("header `{name}` must be {expected}")]
    BadHeader {
        name: &'static str,
        expected: &'static str,
    },
    #[error("Incorrect API key provided.")]
    Unauthorized,
    #[error("{}", budget_message(.0))]
    BudgetExceeded(crate::budget::Exhausted),
    #[error("the budget ledger is unavailable; nothing was sent upstream or charged")]
    LedgerUnavailable(#[source] crate::budget::Error),
    #[error("recording the charge failed")]
    Ledger(#[source] crate::budget::Error),
    #[error("no route in the policy serves this request")]
    NoRoute,
    #[error("Unknown request URL: {method} {path}")]
    NotFound { method: String, path: String },
    #[error("the upstream provider failed")]
    Upstream(#[source] providers::Error),
    #[error("the upstream provider timed out")]
    UpstreamTimeout(#[source] providers::Error),
    #[error("the request cannot be translated for the chosen provider: {0}")]
    Untranslatable(#[source] providers::anthropic::Error),
    #[error("the upstream response could not be translated")]
    BadUpstream(#[source] providers::anthropic::Error),
    /// An upstream 4xx re-shaped for a client of the other wire format.
    #[error("{message}")]
    UpstreamRejected { status: StatusCode, message: String },
    #[error("the request took longer than {0:?}")]
    Timeout(std::time::Duration),
    #[error("reading the request body failed")]
    ClientBody(#[source] providers::BoxError),
}

impl From<providers::Error> for ApiError {
    fn from(e: providers::Error) -> Self {
        match e {
            providers::Error::Timeout { .. } => ApiError::UpstreamTimeout(e),
            e => ApiError::Upstream(e),
        }
    }
}

impl ApiError {
    /// (status, OpenAI `type`, stable `code`).
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            Self::TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
            ),
            Self::UnknownModel(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
            ),
            Self::BadHeader { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_header",
            ),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
            ),
            Self::BudgetExceeded(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "budget_exceeded",
            ),
            Self::LedgerUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "ledger_unavailable",
            ),
            Self::Ledger(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
            ),
            Self::NoRoute => (StatusCode::SERVICE_UNAVAILABLE, "api_error", "no_route"),
            Self::NotFound { .. } => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "unknown_url",
            ),
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "api_error", "upstream_error"),
            Self::UpstreamTimeout(_) => {
                (StatusCode::GATEWAY_TIMEOUT, "api_error", "upstream_timeout")
            }
            Self::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "api_error", "request_timeout"),
            Self::ClientBody(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_body",
            ),
            Self::Untranslatable(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unsupported_for_provider",
            ),
            Self::BadUpstream(_) => (StatusCode::BAD_GATEWAY, "api_error", "upstream_error"),
            Self::UpstreamRejected { status, .. } => {
                (*status, "invalid_request_error", "upstream_rejected")
            }
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            Self::BadRequest(e) => e.param(),
            Self::UnknownModel(_) => Some("model"),
            _ => None,
        }
    }

    /// Whether the message is safe and useful for the client (client faults), or generic.
    fn is_client_fault(&self) -> bool {
        self.parts().0.is_client_error()
    }

    /// The response in OpenAI's shape, logging upstream and internal faults once with their
    /// source chain.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        self.into_response_for(request_id, Dialect::OpenAi)
    }

    /// The response in the client's wire format.
    pub fn into_response_for(self, request_id: &str, dialect: Dialect) -> Response<Body> {
        let (status, kind, code) = self.parts();
        let message = if self.is_client_fault() {
            self.to_string()
        } else {
            tracing::error!(request_id, error = %chain(&self), "request failed");
            format!("{self} (request id {request_id})")
        };
        match dialect {
            Dialect::OpenAi => json_error(status, &message, kind, self.param(), code),
            Dialect::Anthropic => anthropic_error(status, &message),
        }
    }
}

/// Names the budget and when it resets; never the key's secret (scope ids are key and team
/// *names*).
fn budget_message(e: &crate::budget::Exhausted) -> String {
    format!(
        "The monthly budget `{}` ({}) is spent: limit ${:.2}; it resets at {}.",
        e.budget,
        e.scope_id,
        e.limit.as_usd(),
        e.resets_at
    )
}

/// `e: cause: cause…` for logs.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// An OpenAI-shaped error response.
pub fn json_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: &str,
) -> Response<Body> {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": param, "code": code }
    });
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Which API shape the client speaks (chosen by the path it called).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

/// An Anthropic-shaped error response: `{"type":"error","error":{"type","message"}}`.
pub fn anthropic_error(status: StatusCode, message: &str) -> Response<Body> {
    let kind = providers::anthropic::error_kind_for_status(status.as_u16());
    let body = providers::anthropic::error_body(kind, message);
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A complete body.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
