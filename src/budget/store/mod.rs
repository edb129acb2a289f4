//! Where ledger rows and committed spend live: `enum Store { Sqlite, Postgres }`.
//!
//! - SQLite (one replica): the store never decides anything about money; the in-memory
//!   counters in `Ledger` are authoritative while the process runs, and the store is what they
//!   are rebuilt from (`spend_by_budget`) and what reports read (`daily`, `requests`).
//! - PostgreSQL (several replicas): the store IS the authority. Reservations are atomic
//!   conditional updates in PostgreSQL (`PgStore::reserve`); the ledger's counters are a mirror.
//!
//! Invariant: a row and every rollup it moves are written in one transaction, and a `Durable`
//! resolves `Ok` only after that transaction committed.

pub(crate) mod journal;
mod pg_schema;
mod postgres;
mod schema;
mod sqlite;

#[cfg(test)]
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::Error;
use super::money::MicroUsd;
use super::row::Row;
use super::window::MonthId;

pub(crate) use postgres::Standing;
pub use postgres::{HoldId, PgOptions, PgStore};
pub use sqlite::SqliteStore;

/// The ledger's storage backend. An enum, not a trait object: every backend is known here.
#[derive(Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// One budget copy a row moved, and the month (in that budget's zone) it moved it in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Charge {
    pub budget: Arc<str>,
    pub scope_id: Arc<str>,
    pub month: MonthId,
}

/// Committed spend of one budget copy in one month, as `spend_by_budget` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpendRow {
    pub charge: Charge,
    pub spent: MicroUsd,
    pub overshoot: MicroUsd,
    /// Reserved and not yet settled (PostgreSQL: every replica's holds; SQLite: always 0).
    pub held: MicroUsd,
}

/// A dimension the dashboard and `report --by` group spend by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Task,
    Model,
    Route,
    Team,
    Key,
    Tier,
}

impl Dimension {
    /// The `daily` column; a fixed string, never user input, so it is safe to splice into SQL.
    fn column(self) -> &'static str {
        match self {
            Dimension::Task => "task",
            Dimension::Model => "model",
            Dimension::Route => "route",
            Dimension::Team => "team",
            Dimension::Key => "key",
            Dimension::Tier => "tier",
        }
    }
}

/// One group of a month's traffic. An absent label (no team, no task) is `""`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRow {
    pub group: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost: MicroUsd,
    pub baseline_cost: MicroUsd,
}

impl MonthRow {
    /// The sum of `rows`, as a row named `total`.
    pub fn total(rows: &[MonthRow]) -> MonthRow {
        rows.iter().fold(
            MonthRow {
                group: "total".to_owned(),
                requests: 0,
                input_tokens: 0,
                cached_input_tokens: 0,
                output_tokens: 0,
                cost: MicroUsd::ZERO,
                baseline_cost: MicroUsd::ZERO,
            },
            |mut t, r| {
                t.requests += r.requests;
                t.input_tokens += r.input_tokens;
                t.cached_input_tokens += r.cached_input_tokens;
                t.output_tokens += r.output_tokens;
                t.cost += r.cost;
                t.baseline_cost += r.baseline_cost;
                t
            },
        )
    }
}

/// A served request as `simulate` re-decides it: its stored classification and tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub time: jiff::Timestamp,
    pub key: String,
    pub team: Option<String>,
    pub task: Option<String>,
    pub difficulty: Option<String>,
    pub model: String,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost: MicroUsd,
}

/// One UTC day of traffic, from the `daily` rollup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub requests: u64,
    pub cost: MicroUsd,
    pub baseline_cost: MicroUsd,
}

/// Requests and cost of one (task, difficulty) pair in a month; `""` when unclassified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridCell {
    pub task: String,
    pub difficulty: String,
    pub requests: u64,
    pub cost: MicroUsd,
}

/// One recent ledger row as the dashboard shows it: ids, labels, tokens and money; never text.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentRow {
    /// Unix microseconds.
    pub time_us: i64,
    pub request_id: String,
    /// The virtual key's name.
    pub key: String,
    pub team: Option<String>,
    pub route: String,
    pub task: Option<String>,
    pub difficulty: Option<String>,
    pub model: String,
    pub tier: String,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost: MicroUsd,
    pub baseline_cost: MicroUsd,
    pub status: String,
    pub latency_ms: u64,
    pub estimated: bool,
    /// Why it went where it did (see `Row::reason`).
    pub reason: String,
}

/// Resolves once the row (or, for `flush`, everything handed over before it) is durable.
///
/// Dropping it does not cancel the write; it only stops waiting.
#[must_use = "await it before finishing the response so a crash cannot lose the spend"]
#[derive(Debug)]
pub struct Durable {
    state: DurableState,
}

#[derive(Debug)]
enum DurableState {
    /// Already durable (the SQLite journal took the row), or already failed; taken once.
    Done(Option<Result<(), Error>>),
    /// Waiting for a writer to commit.
    Waiting(oneshot::Receiver<Result<(), Error>>),
}

impl Durable {
    pub(crate) fn channel() -> (oneshot::Sender<Result<(), Error>>, Durable) {
        let (tx, rx) = oneshot::channel();
        (
            tx,
            Durable {
                state: DurableState::Waiting(rx),
            },
        )
    }

    /// A `Durable` that is complete from the start.
    pub(crate) fn done(result: Result<(), Error>) -> Durable {
        Durable {
            state: DurableState::Done(Some(result)),
        }
    }

    /// Waits on the calling OS thread. For threads outside the async runtime only (tests,
    /// benchmarks, shutdown); tokio panics if this is called from inside an async task.
    pub fn wait_blocking(self) -> Result<(), Error> {
        match self.state {
            DurableState::Done(result) => result.unwrap_or(Err(Error::WriterGone)),
            DurableState::Waiting(rx) => rx.blocking_recv().unwrap_or(Err(Error::WriterGone)),
        }
    }
}

impl Future for Durable {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            DurableState::Done(result) => {
                Poll::Ready(result.take().unwrap_or(Err(Error::WriterGone)))
            }
            DurableState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|done| done.unwrap_or(Err(Error::WriterGone))),
        }
    }
}

impl Store {
    /// The SQLite store in `dir` (created if needed). Blocking.
    pub fn open_sqlite(dir: &std::path::Path) -> Result<Store, Error> {
        SqliteStore::open(dir).map(Store::Sqlite)
    }

    /// Opens the store `url` names: `postgres://…` or `postgresql://…` for the shared
    /// PostgreSQL store (as `replica`, releasing dead replicas' holds after `ttl`); anything else
    /// (or nothing) is the SQLite store in `data_dir`. With `?sslmode=require` the connection
    /// is TLS (rustls), verified against the web roots plus `ca_file`. Must run inside a tokio
    /// runtime.
    pub async fn open(
        url: Option<&str>,
        data_dir: &std::path::Path,
        replica: &str,
        ttl: std::time::Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Store, Error> {
        match url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let now = jiff::Timestamp::now();
                let utc = super::window::month_window(&jiff::tz::TimeZone::UTC, now).month;
                let options = PgOptions {
                    url: url.to_owned(),
                    replica: replica.to_owned(),
                    ttl,
                    ca_file: ca_file.map(std::path::Path::to_path_buf),
                };
                Ok(Store::Postgres(
                    PgStore::connect(options, utc.previous().unwrap_or(utc)).await?,
                ))
            }
            Some(other) if !other.is_empty() => Err(Error::StoreUrl(
                "expected postgres://… (leave it unset for SQLite in --data-dir)".to_owned(),
            )),
            _ => Store::open_sqlite(data_dir),
        }
    }

    /// Hands a row to the store; the returned `Durable` resolves when it is committed.
    pub(crate) fn write(&self, row: Row, charges: Vec<Charge>, hold: Option<HoldId>) -> Durable {
        match self {
            Store::Sqlite(s) => s.write(row, charges),
            Store::Postgres(s) => s.write(row, charges, hold),
        }
    }

    /// Resolves once every row handed over before this call is durable.
    pub(crate) fn flush(&self) -> Durable {
        match self {
            Store::Sqlite(s) => s.flush(),
            Store::Postgres(s) => s.flush(),
        }
    }

    /// Committed spend of every budget copy in `since` and later months.
    pub(crate) fn load_spend(&self, since: MonthId) -> Result<Vec<SpendRow>, Error> {
        match self {
            Store::Sqlite(s) => s.load_spend(since),
            Store::Postgres(s) => s.load_spend(since),
        }
    }

    /// A (UTC) month's traffic grouped by `by`, from the `daily` rollup, most expensive first.
    /// Blocking: call it from `spawn_blocking` on an async runtime.
    pub fn month_rows(&self, month: MonthId, by: Dimension) -> Result<Vec<MonthRow>, Error> {
        match self {
            Store::Sqlite(s) => s.month_rows(month, by),
            Store::Postgres(s) => s.month_rows(month, by),
        }
    }

    /// A (UTC) month's traffic per day, from the `daily` rollup; days without traffic are
    /// absent. Blocking.
    pub fn month_days(&self, month: MonthId) -> Result<Vec<DayRow>, Error> {
        match self {
            Store::Sqlite(s) => s.month_days(month),
            Store::Postgres(s) => s.month_days(month),
        }
    }

    /// A (UTC) month's requests per (task, difficulty), from the `daily_class` rollup. Blocking.
    pub fn month_grid(&self, month: MonthId) -> Result<Vec<GridCell>, Error> {
        match self {
            Store::Sqlite(s) => s.month_grid(month),
            Store::Postgres(s) => s.month_grid(month),
        }
    }

    /// The latest `limit` rows written before `before` (newest first). Blocking.
    pub fn recent(&self, before: jiff::Timestamp, limit: u32) -> Result<Vec<RecentRow>, Error> {
        match self {
            Store::Sqlite(s) => s.recent(before.as_microsecond(), limit),
            Store::Postgres(s) => s.recent(before.as_microsecond(), limit),
        }
    }

    /// Committed spend per (budget name, scope id) in `month` (each budget's own calendar), as
    /// `spend_by_budget` holds it. Blocking.
    pub fn month_spend(&self, month: MonthId) -> Result<Vec<(String, String, MicroUsd)>, Error> {
        match self {
            Store::Sqlite(s) => s.month_spend(month),
            Store::Postgres(s) => s.month_spend(month),
        }
    }

    /// Served requests in `[from, to)`, oldest first, for `simulate`. Blocking.
    pub fn served_between(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<Served>, Error> {
        match self {
            Store::Sqlite(s) => s.served_between(from, to),
            Store::Postgres(s) => s.served_between(from, to),
        }
    }

    /// Whether the store answers a trivial read. Blocking.
    pub fn ping(&self) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.ping(),
            Store::Postgres(s) => s.ping(),
        }
    }

    /// Total cost over every row in `requests`. Blocking.
    pub fn sum_cost(&self) -> Result<MicroUsd, Error> {
        match self {
            Store::Sqlite(s) => s.sum_cost(),
            Store::Postgres(s) => s.sum_cost(),
        }
    }

    /// Number of rows in `requests`. Blocking.
    pub fn request_count(&self) -> Result<u64, Error> {
        match self {
            Store::Sqlite(s) => s.request_count(),
            Store::Postgres(s) => s.request_count(),
        }
    }

    /// Spend per (month, budget, scope id) summed from `requests` itself, and, separately, as
    /// the `spend_by_budget` rollup holds it. Tests compare both with the ledger.
    #[cfg(test)]
    pub(crate) fn audit(&self) -> Result<Audit, Error> {
        match self {
            Store::Sqlite(s) => s.audit(),
            Store::Postgres(s) => s.audit(),
        }
    }
}

/// See `Store::audit`. Keys are (month, budget, scope id).
#[cfg(test)]
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Audit {
    pub from_requests: HashMap<(String, String, String), u64>,
    pub from_rollup: HashMap<(String, String, String), u64>,
}

/// `[first day, first day of the next month)` as `daily` spells days.
fn month_days_range(month: MonthId) -> (String, String) {
    let first = format!("{month}-01");
    let next = month
        .next()
        .map_or_else(|| "9999-99".to_owned(), |m| format!("{m}-01"));
    (first, next)
}

/// `requests.budgets`: one `month TAB budget TAB scope_id` line per charge.
fn encode_charges(charges: &[Charge]) -> String {
    let mut text = String::new();
    for c in charges {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{}\t{}\t{}", c.month, c.budget, c.scope_id));
    }
    text
}

#[cfg(test)]
fn decode_charges(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            Some((
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
            ))
        })
        .collect()
}
