//! The proxy listener: accept loop (HTTP/1.1 and h2c on one port), the tower stack, the
//! handler, and graceful shutdown.
//!
//! Shutdown: when the `shutdown` future resolves, stop accepting, let in-flight requests and
//! streams finish for up to `Limits::shutdown_grace`, then return.

mod attempt;
mod auth;
mod error;
mod exchange;
mod plan;
mod proxy;
mod spend;
mod stack;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderName;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::Limits;
use crate::policy::PolicyHandle;
use crate::providers::{self, BoxError};
use crate::tally::Tally;

pub use auth::hash_key;
pub use error::{ApiError, json_error};
pub use plan::explain;

/// Every response body.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub const HEADER_ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
pub const HEADER_MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
pub const HEADER_REQUEST_ID: HeaderName = HeaderName::from_static("x-switchyard-request-id");
pub const HEADER_COST: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");
pub const HEADER_REMAINING: HeaderName =
    HeaderName::from_static("x-switchyard-budget-remaining-usd");
/// Response header: the check that made switchyard retry on the escalation model.
pub const HEADER_ESCALATED: HeaderName = HeaderName::from_static("x-switchyard-escalated");
/// Response header, shadow mode: the model the policy would have chosen.
pub const HEADER_SHADOW_MODEL: HeaderName = HeaderName::from_static("x-switchyard-shadow-model");
pub const HEADER_TASK: HeaderName = HeaderName::from_static("x-switchyard-task");
pub const HEADER_DIFFICULTY: HeaderName = HeaderName::from_static("x-switchyard-difficulty");
/// Request header: a client pins `open` or `frontier` (where the policy allows it).
pub const HEADER_TIER: HeaderName = HeaderName::from_static("x-switchyard-tier");
/// Request header: `1` returns the decision without calling a provider.
pub const HEADER_DRY_RUN: HeaderName = HeaderName::from_static("x-switchyard-dry-run");

/// Shared state of the proxy; cheap to clone (every field is shared).
#[derive(Clone)]
pub struct AppState {
    /// Swapped atomically on reload; each request takes one snapshot.
    pub policy: PolicyHandle,
    /// The one pooled upstream client (internally synchronised).
    pub client: providers::Client,
    /// The task and difficulty model; swapped with the policy when its weights change.
    pub classifier: Arc<arc_swap::ArcSwap<crate::classify::Model>>,
    /// The policy file and the outcome of the last reload.
    pub reloader: Arc<crate::policy::Reloader>,
    /// Budgets and the ledger (internally synchronised; see `budget`).
    pub ledger: crate::budget::Ledger,
    /// The time, for budget windows; injectable so tests can cross a month boundary.
    pub clock: crate::Clock,
    /// Running totals (a concurrent map).
    pub tally: Arc<Tally>,
    /// Where request spans go (off unless `OTEL_*` asks; the SDK synchronises internally).
    pub traces: crate::telemetry::Traces,
    /// Touched on every proxied request (off unless `serve --busy-poll-us`; atomics inside).
    pub busy_poll: crate::busy_poll::BusyPoll,
    pub limits: Limits,
}

impl AppState {
    /// Reload the policy file: validated aside, then swapped in atomically with its budgets and
    /// classifier; requests in flight keep the policy they started with; spend is kept (it is
    /// keyed by budget name). An invalid file is refused, its errors recorded, and the old
    /// policy keeps serving.
    pub fn reload(&self) -> Result<(), crate::policy::Error> {
        let now = (self.clock)();
        let result = self.reloader.load().and_then(|policy| {
            let old = self.policy.snapshot();
            if policy.classifier_weights != old.classifier_weights {
                let model = crate::load_classifier(&policy).map_err(|e| {
                    crate::policy::Error::Invalid(vec![crate::policy::Diagnostic {
                        file: policy.source.clone(),
                        position: None,
                        path: "classifier.weights".to_owned(),
                        message: e.to_string(),
                        hint: None,
                    }])
                })?;
                self.classifier.store(Arc::new(model));
            }
            self.ledger.set_specs(policy.budgets.clone());
            self.policy.store(policy);
            Ok(())
        });
        self.reloader.record(now, result.as_ref().map(|_| ()));
        crate::telemetry::metrics::record_reload(result.is_ok());
        match &result {
            Ok(()) => tracing::info!(source = ?self.reloader.path(), "policy reloaded"),
            Err(err) => {
                tracing::warn!(error = %err, "policy reload refused; the previous policy keeps serving")
            }
        }
        result
    }
}

/// Serve the proxy on `listener` until `shutdown` resolves, then drain.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = state.limits;
    let handler = tower::service_fn(move |req| {
        state.busy_poll.touch();
        proxy::route_request(state.clone(), req)
    });
    let service = TowerToHyperService::new(stack::build(handler, limits));
    crate::listener::serve("proxy", listener, service, shutdown, limits.shutdown_grace).await
}
