//! Tests of the ledger over a real SQLite file and a real PostgreSQL schema: behaviours
//! (`ledger.rs`), the property test against an in-memory model (`model.rs`, both stores),
//! concurrent reserves (`concurrency.rs`, both stores) and several replicas over one
//! PostgreSQL (`shared.rs`).
//!
//! PostgreSQL: `SWITCHYARD_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`
//! (trust auth); each test makes its own schema and drops it.

mod concurrency;
mod journal;
mod ledger;
mod model;
mod shared;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{
    BudgetSpec, Error, Exhausted, Ledger, MicroUsd, OnLimit, PgOptions, PgStore, Reservation, Row,
    Scope, SqliteStore, Store, Tenant,
};

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

/// One runtime for every test: PostgreSQL connections live on it.
static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

pub(super) fn block_on<F: Future>(f: F) -> F::Output {
    RT.block_on(f)
}

/// `Ledger::reserve`, waited for; a refusal is `Err`, a store failure fails the test.
pub(super) trait ReserveNow {
    fn reserve_now(
        &self,
        t: &Tenant,
        amount: MicroUsd,
        now: Timestamp,
    ) -> Result<Reservation, Exhausted>;
}

impl ReserveNow for Ledger {
    fn reserve_now(
        &self,
        t: &Tenant,
        amount: MicroUsd,
        now: Timestamp,
    ) -> Result<Reservation, Exhausted> {
        match block_on(self.reserve(t, amount, now)) {
            Ok(r) => Ok(r),
            Err(Error::Exhausted(e)) => Err(e),
            Err(e) => panic!("store failed: {e}"),
        }
    }
}

/// A PostgreSQL schema of its own for one test, dropped with it.
pub(super) struct PgSchema {
    name: String,
}

fn pg_base_url() -> String {
    std::env::var("SWITCHYARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_base_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at SWITCHYARD_TEST_PG_URL (default 127.0.0.1:5432, database test)");
    tokio::spawn(conn);
    client
}

impl PgSchema {
    pub(super) fn new() -> PgSchema {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "sy_unit_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        block_on(async {
            let admin = pg_admin().await;
            admin
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
                ))
                .await
                .unwrap();
        });
        PgSchema { name }
    }

    pub(super) fn url(&self) -> String {
        let base = pg_base_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-csearch_path%3D{}", self.name)
    }

    /// A store for `replica` in this schema.
    pub(super) fn store(&self, replica: &str, ttl: Duration) -> Store {
        let options = PgOptions {
            url: self.url(),
            replica: replica.to_owned(),
            ttl,
            ca_file: None,
        };
        let since = crate::budget::MonthId::new(2000, 1).unwrap();
        Store::Postgres(block_on(PgStore::connect(options, since)).unwrap())
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on(async move {
            let admin = pg_admin().await;
            let _ = admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await;
        });
    }
}

/// Which store a test runs against.
#[derive(Clone, Copy, Debug)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

/// A ledger over `backend`, and what keeps its storage alive; `reopen` opens the same
/// storage again (a restarted process).
pub(super) struct Fixture {
    backend: Backend,
    dir: tempfile::TempDir,
    schema: Option<PgSchema>,
}

impl Fixture {
    pub(super) fn new(backend: Backend) -> Fixture {
        Fixture {
            backend,
            dir: tempfile::tempdir().unwrap(),
            schema: matches!(backend, Backend::Postgres).then(PgSchema::new),
        }
    }

    pub(super) fn open(&self, specs: Vec<BudgetSpec>, now: Timestamp) -> Ledger {
        let store = match (self.backend, &self.schema) {
            (Backend::Postgres, Some(schema)) => schema.store("replica-a", Duration::from_secs(60)),
            _ => Store::Sqlite(SqliteStore::open(self.dir.path()).unwrap()),
        };
        Ledger::open(store, specs, now).unwrap()
    }
}
