//! The admin listener: the budget dashboard at `/` (one page, assets embedded with
//! `include_str!`, no CDN), its JSON API under `/api/v1`, Prometheus `/metrics`, and the
//! `/healthz` / `/readyz` probes. It listens on its own address, never the proxy's.
//!
//! Auth: when an admin token is configured (`SWITCHYARD_ADMIN_TOKEN`), every path but the
//! probes needs it, as `Authorization: Bearer …` or the `switchyard_admin` cookie that
//! `/?token=…` sets for a browser. Tokens are compared in constant time (as SHA-256 digests, so
//! lengths leak nothing either). Without a token the listener must be on loopback
//! (`check_exposure`).
//!
//! The dashboard only reads: the ledger (through its rollups, never a scan of `requests`), the
//! live policy and the reload status. The one write is `POST /api/v1/policy/reload`, which calls
//! `AppState::reload` like SIGHUP does. Nothing here shows prompt text, provider keys or
//! virtual-key secrets: responses are built field by field from names, counts and money.

mod api;
mod auth;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::AppState;

pub use auth::Token;

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// How long open admin connections may take to finish after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the admin listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the admin listener {addr} is reachable beyond loopback: set SWITCHYARD_ADMIN_TOKEN \
         (or listen on 127.0.0.1)"
    )]
    TokenRequired { addr: SocketAddr },
    #[error("SWITCHYARD_ADMIN_TOKEN is set but empty")]
    EmptyToken,
}

/// What the admin listener needs besides the proxy's state.
#[derive(Clone, Default)]
pub struct Admin {
    /// Required on every path but the probes when set.
    pub token: Option<Token>,
    /// Renders `/metrics`; `None` answers 503 (no recorder installed).
    pub metrics: Option<PrometheusHandle>,
}

/// Refuses an admin address beyond loopback without a token.
pub fn check_exposure(addr: SocketAddr, token: Option<&Token>) -> Result<(), Error> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(Error::TokenRequired { addr });
    }
    Ok(())
}

/// Serve the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    admin: Admin,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let service = hyper::service::service_fn(move |req| {
        let (state, admin) = (state.clone(), admin.clone());
        async move { Ok::<_, Infallible>(handle(&state, &admin, req).await) }
    });
    crate::listener::serve("admin", listener, service, shutdown, SHUTDOWN_GRACE).await
}

async fn handle(state: &AppState, admin: &Admin, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => return api::ready(state).await,
        _ => {}
    }
    if let Some(token) = &admin.token {
        match auth::check(token, req.headers(), &path, &query) {
            auth::Outcome::Allowed => {}
            auth::Outcome::SetCookie { location, cookie } => {
                let mut rsp = text(StatusCode::SEE_OTHER, "");
                rsp.headers_mut().insert(header::LOCATION, location);
                rsp.headers_mut().insert(header::SET_COOKIE, cookie);
                return rsp;
            }
            auth::Outcome::Refused => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "this admin endpoint needs the admin token: `Authorization: Bearer <token>` \
                     (or open the dashboard once at /?token=<token>)",
                    "unauthorized",
                );
            }
        }
    }
    let params = api::Params::parse(&query);
    let result = match (req.method(), path.as_str()) {
        (&Method::GET, "/") => return asset(INDEX_HTML, "text/html; charset=utf-8"),
        (&Method::GET, "/assets/app.js") => return asset(APP_JS, "text/javascript; charset=utf-8"),
        (&Method::GET, "/assets/app.css") => return asset(APP_CSS, "text/css; charset=utf-8"),
        (&Method::GET, "/metrics") => return api::metrics(state, admin.metrics.as_ref()),
        (&Method::GET, "/api/v1/budgets") => api::budgets(state, &params).await,
        (&Method::GET, "/api/v1/spend") => api::spend(state, &params).await,
        (&Method::GET, "/api/v1/daily") => api::daily(state, &params).await,
        (&Method::GET, "/api/v1/grid") => api::grid(state, &params).await,
        (&Method::GET, "/api/v1/recent") => api::recent(state, &params).await,
        (&Method::GET, "/api/v1/policy") => Ok(api::policy(state)),
        (&Method::POST, "/api/v1/policy/reload") => return api::reload(state).await,
        (
            _,
            "/"
            | "/metrics"
            | "/api/v1/budgets"
            | "/api/v1/spend"
            | "/api/v1/daily"
            | "/api/v1/grid"
            | "/api/v1/recent"
            | "/api/v1/policy"
            | "/api/v1/policy/reload",
        ) => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here",
                "method_not_allowed",
            );
        }
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no admin endpoint at {path}"),
                "not_found",
            );
        }
    };
    match result {
        Ok(value) => json(StatusCode::OK, &value),
        Err(api::Refusal::BadParam { param, message }) => {
            let mut rsp = error(StatusCode::BAD_REQUEST, &message, "bad_request");
            // Name the parameter, as the proxy's errors do.
            let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": "bad_request"}});
            *rsp.body_mut() = full(body.to_string());
            rsp
        }
        Err(api::Refusal::Internal(err)) => {
            tracing::error!(error = %err, path, "admin request failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the logs",
                "internal_error",
            )
        }
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

fn with_type(mut rsp: Response<Body>, content_type: &'static str) -> Response<Body> {
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    rsp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut rsp = Response::new(full(body));
    *rsp.status_mut() = status;
    with_type(rsp, "text/plain; charset=utf-8")
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut rsp = Response::new(full(value.to_string()));
    *rsp.status_mut() = status;
    with_type(rsp, "application/json")
}

/// The proxy's error shape: `{"error": {"message", "type", "param", "code"}}`.
fn error(status: StatusCode, message: &str, code: &str) -> Response<Body> {
    let kind = if status.is_server_error() {
        "api_error"
    } else {
        "invalid_request_error"
    };
    json(
        status,
        &serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut rsp = with_type(Response::new(full(body)), content_type);
    // Everything the page needs is served from here: no CDN, no inline script.
    rsp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    rsp.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    rsp
}
