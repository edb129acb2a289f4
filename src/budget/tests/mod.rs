//! Tests of the ledger over a real SQLite file: behaviours (`ledger.rs`), the property test
//! against an in-memory model (`model.rs`), and concurrent reserves (`concurrency.rs`).

mod concurrency;
mod ledger;
mod model;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{BudgetSpec, Ledger, MicroUsd, OnLimit, Row, Scope, SqliteStore, Store, Tenant};

pub(super) fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

pub(super) fn spec(name: &str, scope: Scope, limit: u64, tz: &str) -> BudgetSpec {
    BudgetSpec {
        name: Arc::from(name),
        scope,
        limit: MicroUsd(limit),
        timezone: TimeZone::get(tz).unwrap(),
        on_limit: OnLimit::Reject,
        downgrade_at: None,
        warn_at: Vec::new(),
    }
}

pub(super) fn tenant(key: &str, team: Option<&str>) -> Tenant {
    Tenant {
        key: Arc::from(key),
        team: team.map(Arc::from),
    }
}

pub(super) fn row(request_id: &str, status: &str, time: Timestamp) -> Row {
    Row {
        time,
        request_id: request_id.to_owned(),
        key: Arc::from("k"),
        route: Arc::from("default"),
        model: Arc::from("llama-8b"),
        tier: "open".to_owned(),
        status: status.to_owned(),
        ..Row::default()
    }
}

pub(super) fn open(dir: &Path, specs: Vec<BudgetSpec>, now: Timestamp) -> Ledger {
    let store = Store::Sqlite(SqliteStore::open(dir).unwrap());
    Ledger::open(store, specs, now).unwrap()
}

pub(super) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}
