//! switchyard: a cost-aware routing proxy for LLM APIs.
//!
//! One request, socket to upstream and back:
//!
//! ```text
//! listener::serve      accept (HTTP/1.1 + h2c), TCP_NODELAY, graceful drain
//!  └ server::stack     request id · trace span · concurrency limit · timeout · body limit
//!    └ server::proxy   auth (virtual key) → read body (capped) → chat::parse → policy snapshot
//!                      → server::plan (classify → rules → route::decide → tier pin)
//!                      → server::spend::reserve (worst case, every applicable budget)
//!                      → server::attempt (providers::Client::send, fallback before the first
//!                        byte; providers::UsageTap for streams or a bounded read for JSON)
//!                      → spend::Charge::settle (cost, ledger row, metrics, span) → escalation
//! ```
//!
//! Module map: `config` (how the process runs), `policy` (YAML → validated `Policy`, atomic
//! swap), `chat` (the request as read: typed fields + verbatim rest), `classify` (task and
//! difficulty model), `route` (pure decision), `budget` (integer money, reservations, ledger),
//! `providers`
//! (upstream client, SSE, usage, Anthropic translation), `listener` (the shared accept loop),
//! `server` (stack, handler, plan, attempt, auth, spend, errors), `dashboard` (admin listener),
//! `busy_poll` (optional: keep the runtime polling between requests), `telemetry` (metrics,
//! traces), `tally` (running totals), `report`, `simulate`, `demo` (simulated providers and the
//! replay report).

pub mod budget;
pub mod busy_poll;
pub mod chat;
pub mod classify;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod listener;
pub mod policy;
pub mod providers;
pub mod report;
pub mod route;
pub mod server;
pub mod simulate;
pub mod tally;
pub mod telemetry;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::{Config, Limits};
pub use policy::{Policy, PolicyHandle};
pub use server::AppState;

/// Why the proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the upstream client")]
    Client(#[from] providers::Error),
    #[error(transparent)]
    Policy(#[from] policy::Error),
    #[error("cannot open the ledger")]
    Ledger(#[from] budget::Error),
    #[error("cannot load classifier weights {path}")]
    Classifier {
        path: String,
        #[source]
        source: classify::Error,
    },
}

/// The classifier a policy asks for: its own weights file, or the embedded default.
pub fn load_classifier(policy: &Policy) -> Result<classify::Model, StartError> {
    match &policy.classifier_weights {
        None => classify::Model::embedded().map_err(|source| StartError::Classifier {
            path: "(embedded)".to_owned(),
            source,
        }),
        Some(path) => std::fs::read(path)
            .map_err(|source| classify::Error::Io {
                path: path.display().to_string(),
                source,
            })
            .and_then(|bytes| classify::Model::from_bytes(&bytes))
            .map_err(|source| StartError::Classifier {
                path: path.display().to_string(),
                source,
            }),
    }
}

/// The current time, for budget windows. Injected so tests can move it.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(jiff::Timestamp::now)
}

/// Build the shared state: the ledger in `data_dir` (SQLite), the system clock. Blocking.
pub fn state(policy: Policy, limits: Limits, data_dir: &Path) -> Result<AppState, StartError> {
    state_with_clock(policy, limits, data_dir, system_clock())
}

/// `state` for a policy loaded from `path`, which `AppState::reload` reads again, over an
/// opened `store` (`budget::Store::open_sqlite`, or `budget::PgStore::connect`). Blocking.
pub fn state_from_file(
    path: &Path,
    limits: Limits,
    store: budget::Store,
    clock: Clock,
) -> Result<AppState, StartError> {
    let policy = Policy::load(path)?;
    let mut state = state_with_store(policy, limits, store, clock)?;
    state.reloader = Arc::new(policy::Reloader::new(
        Some(path),
        &path.display().to_string(),
        (state.clock)(),
    ));
    Ok(state)
}

/// `state` with an injected clock.
pub fn state_with_clock(
    policy: Policy,
    limits: Limits,
    data_dir: &Path,
    clock: Clock,
) -> Result<AppState, StartError> {
    state_with_store(policy, limits, budget::Store::open_sqlite(data_dir)?, clock)
}

/// `state` over an opened ledger store. Blocking (reads the store).
pub fn state_with_store(
    policy: Policy,
    limits: Limits,
    store: budget::Store,
    clock: Clock,
) -> Result<AppState, StartError> {
    let classifier = load_classifier(&policy)?;
    let ledger = budget::Ledger::open(store, policy.budgets.clone(), clock())?;
    let reloader = Arc::new(policy::Reloader::new(None, &policy.source, clock()));
    Ok(AppState {
        policy: PolicyHandle::new(policy),
        client: providers::Client::new(limits.connect_timeout)?,
        classifier: Arc::new(arc_swap::ArcSwap::from_pointee(classifier)),
        reloader,
        ledger,
        clock,
        tally: Arc::new(tally::Tally::default()),
        traces: telemetry::Traces::off(),
        busy_poll: busy_poll::BusyPoll::off(),
        limits,
    })
}

/// Run the proxy on an already bound listener until `shutdown` resolves, then drain.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let ledger = state.ledger.clone();
    server::serve(listener, state, shutdown).await?;
    // Every charge of every drained request is on disk before we return.
    if let Err(err) = ledger.flush().await {
        tracing::error!(error = %err, "flushing the ledger failed");
    }
    Ok(())
}

/// With the shared PostgreSQL store: re-read every replica's spend into this replica's
/// mirror every `every`, so thresholds (`downgrade_at`) and the remaining-budget header
/// follow the other replicas' traffic too. Runs until the process ends.
pub fn spawn_ledger_refresh(state: AppState, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ledger = state.ledger.clone();
            let now = (state.clock)();
            match tokio::task::spawn_blocking(move || ledger.refresh(now)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "refreshing budget counters failed"),
                Err(err) => tracing::warn!(error = %err, "refreshing budget counters failed"),
            }
        }
    });
}

/// Reload the policy whenever its file changes (checked every `every`: modification time and
/// size), and on SIGHUP. Runs until the process ends.
pub fn spawn_reload_triggers(state: AppState, every: std::time::Duration) {
    let Some(path) = state.reloader.path().map(Path::to_path_buf) else {
        return;
    };
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let watched = state.clone();
    tokio::spawn(async move {
        let mut last = stamp(&path);
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = stamp(&path);
            if now != last && now.is_some() {
                last = now;
                // Refused reloads are recorded and logged by `reload`.
                let _outcome = watched.reload();
            }
        }
    });
    // Registered before returning, so a SIGHUP sent right after cannot hit the default action.
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let _outcome = state.reload();
                }
            });
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; reload by editing the file instead")
        }
    }
}
