//! The shared PostgreSQL store, for several replicas enforcing one set of budgets.
//!
//! Unlike SQLite, PostgreSQL is the authority on money here: every reservation is an atomic
//! conditional update (`sy_reserve`, see `pg_schema.rs`) across every budget row it touches,
//! so caps hold exactly whatever the number of replicas. The ledger keeps an in-memory mirror
//! of the counters only for headers and thresholds; the dashboard re-reads them
//! (`Ledger::refresh`).
//!
//! - Rows are group-committed by one writer task (one transaction per batch, every budget row
//!   the batch touches locked first in key order), and a row's `Durable` resolves after its
//!   transaction committed; settling also deletes the request's hold.
//! - Each replica heartbeats into `replicas`; holds of a replica not seen for `ttl` are
//!   released by the others, and a replica starting under an id releases that id's old holds.
//! - Migrations run in one transaction under an advisory lock: replicas may start together.
//!
//! Blocking reads (`month_rows`, …) run on the runtime the store was opened on
//! (`Handle::block_on`): call them from `spawn_blocking` or a plain thread, as with SQLite.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use jiff::Timestamp;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::pg_schema::MIGRATIONS;
use super::{
    Charge, DayRow, Dimension, Durable, GridCell, MonthRow, RecentRow, Served, SpendRow,
    encode_charges,
};
use crate::budget::Error;
use crate::budget::money::MicroUsd;
use crate::budget::row::Row;
use crate::budget::window::MonthId;

/// Rows per group-commit transaction at most.
const MAX_BATCH: usize = 512;
/// Attempts of a batch (or a reservation) that hit a deadlock or serialization failure.
const ATTEMPTS: u32 = 4;
/// Connections in the pool.
const POOL_SIZE: usize = 16;
/// How often rows that could not be written are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The id of an outstanding reservation in `holds`.
pub type HoldId = i64;

/// Where and as whom a replica uses the shared store.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://…` (libpq URL; `?options=-csearch_path%3D…` selects a schema).
    pub url: String,
    /// This replica's name in `replicas` and `holds`.
    pub replica: String,
    /// Holds of replicas not heard from for this long are released.
    pub ttl: Duration,
    /// With `sslmode=require`: PEM certificates trusted besides the public web roots (a private
    /// CA, or a managed database's bundle).
    pub ca_file: Option<std::path::PathBuf>,
}

impl fmt::Debug for PgOptions {
    /// Never the URL: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("replica", &self.replica)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

type Done = oneshot::Sender<Result<(), Error>>;

#[allow(clippy::large_enum_variant)] // as in the SQLite writer: nearly every message is a Write
enum Msg {
    Write {
        row: Row,
        charges: Vec<Charge>,
        hold: Option<HoldId>,
        done: Done,
    },
    Flush(Done),
    /// Nothing new: try the rows that failed before again.
    Retry,
}

/// The answer of `sy_reserve` / `sy_resize`.
#[derive(Debug)]
pub(crate) struct Standing {
    /// The hold made (reserve only).
    pub hold: Option<HoldId>,
    /// 0: done. i > 0: the i-th copy (1-based) refused. -1: the hold was gone (resize).
    pub refused: i32,
    /// Each copy's (spent, held), after the change or at the refusal.
    pub counters: Vec<(MicroUsd, MicroUsd)>,
}

/// The PostgreSQL store. Owned by the ledger.
pub struct PgStore {
    pool: Pool,
    replica: Arc<str>,
    handle: Handle,
    writer: mpsc::UnboundedSender<Msg>,
    /// This month's counters as read at connect, taken once by `Ledger::open`.
    initial: Mutex<Vec<SpendRow>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PgStore {
    /// Connects, migrates, registers this replica, releases holds left by an earlier process
    /// under the same id, reads this month's counters and starts the writer and heartbeat tasks
    /// on the current runtime.
    pub async fn connect(options: PgOptions, since: MonthId) -> Result<PgStore, Error> {
        let config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::StoreUrl(chain(&e)))?;
        let place = describe(&config);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            let tls = tls_config(options.ca_file.as_deref())?;
            Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            )
        } else {
            // `disable`, or `prefer` (the default): plain TCP, as libpq without TLS would.
            Manager::from_config(config, NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::Pool(chain(&e)))?;
        let replica: Arc<str> = Arc::from(options.replica.as_str());
        {
            let mut client = pool
                .get()
                .await
                .map_err(|e| Error::Pool(format!("{place}: {}", chain(&e))))?;
            migrate(&mut client).await?;
            heartbeat(&client, &replica).await?;
            let released: i64 = client
                .query_one(
                    "SELECT sy_reclaim($1, $2)",
                    &[&ttl_ms(options.ttl), &&*replica],
                )
                .await?
                .get(0);
            if released > 0 {
                tracing::info!(released, replica = %replica, "released stale reservations");
            }
        }
        let initial = load(&pool, since).await?;
        let (writer, queue) = mpsc::unbounded_channel();
        tokio::spawn(run_writer(pool.clone(), replica.clone(), queue));
        let heartbeat = tokio::spawn(run_heartbeat(pool.clone(), replica.clone(), options.ttl));
        tracing::info!(replica = %replica, "PostgreSQL ledger connected");
        Ok(PgStore {
            pool,
            replica,
            handle: Handle::current(),
            writer,
            initial: Mutex::new(initial),
            heartbeat,
        })
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub(crate) fn write(&self, row: Row, charges: Vec<Charge>, hold: Option<HoldId>) -> Durable {
        let (done, durable) = Durable::channel();
        let msg = Msg::Write {
            row,
            charges,
            hold,
            done,
        };
        if self.writer.send(msg).is_err() {
            tracing::error!("ledger writer task has stopped; a row was not written");
        }
        durable
    }

    pub(crate) fn flush(&self) -> Durable {
        let (done, durable) = Durable::channel();
        if self.writer.send(Msg::Flush(done)).is_err() {
            tracing::error!("ledger writer task has stopped; flush cannot complete");
        }
        durable
    }

    /// Reserves `amount` in every copy of `charges` (with its limit), or in none.
    pub(crate) async fn reserve(
        &self,
        charges: &[Charge],
        limits: &[MicroUsd],
        amount: MicroUsd,
    ) -> Result<Standing, Error> {
        let (months, budgets, scopes) = columns(charges);
        let limits: Vec<i64> = limits.iter().map(|l| i(l.0)).collect();
        let amount = i(amount.0);
        let replica: &str = &self.replica;
        let params: [&(dyn ToSql + Sync); 6] =
            [&replica, &amount, &months, &budgets, &scopes, &limits];
        let row = retrying(|| async {
            let client = get(&self.pool).await?;
            let stmt = client
                .prepare_cached(
                    "SELECT hold_id, refused, spent, held FROM sy_reserve($1, $2, $3, $4, $5, $6)",
                )
                .await?;
            Ok(client.query_one(&stmt, &params).await?)
        })
        .await?;
        Ok(Standing {
            hold: row.get(0),
            refused: row.get(1),
            counters: counters(row.get(2), row.get(3)),
        })
    }

    /// Moves hold `hold` to `amount`, checking `limits` (one per copy of the hold) when it grows.
    pub(crate) async fn resize(
        &self,
        hold: HoldId,
        limits: &[MicroUsd],
        amount: MicroUsd,
    ) -> Result<Standing, Error> {
        let limits: Vec<i64> = limits.iter().map(|l| i(l.0)).collect();
        let amount = i(amount.0);
        let params: [&(dyn ToSql + Sync); 3] = [&hold, &amount, &limits];
        let row = retrying(|| async {
            let client = get(&self.pool).await?;
            let stmt = client
                .prepare_cached("SELECT refused, spent, held FROM sy_resize($1, $2, $3)")
                .await?;
            Ok(client.query_one(&stmt, &params).await?)
        })
        .await?;
        Ok(Standing {
            hold: Some(hold),
            refused: row.get(0),
            counters: counters(row.get(1), row.get(2)),
        })
    }

    /// The counters read at connect (then empty): what `Ledger::open` starts its mirror from.
    pub(crate) fn load_spend(&self, _since: MonthId) -> Result<Vec<SpendRow>, Error> {
        Ok(std::mem::take(
            &mut *self.initial.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    /// Every budget copy's (spent, held) in `since` and later months, now. Blocking.
    pub(crate) fn current_spend(&self, since: MonthId) -> Result<Vec<SpendRow>, Error> {
        self.block_on(load(&self.pool, since))
    }

    fn block_on<T>(&self, f: impl Future<Output = Result<T, Error>> + Send) -> Result<T, Error> {
        self.handle.block_on(f)
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Error> {
        self.block_on(async {
            let client = get(&self.pool).await?;
            let stmt = client.prepare_cached(sql).await?;
            Ok(client.query(&stmt, params).await?)
        })
    }

    pub(crate) fn month_rows(&self, month: MonthId, by: Dimension) -> Result<Vec<MonthRow>, Error> {
        let (first, next) = super::month_days_range(month);
        let sql = format!(
            "SELECT {col}, SUM(requests)::BIGINT, SUM(input_tokens)::BIGINT,
                    SUM(cached_input_tokens)::BIGINT, SUM(output_tokens)::BIGINT,
                    SUM(cost)::BIGINT, SUM(baseline_cost)::BIGINT
             FROM daily WHERE day >= $1 AND day < $2
             GROUP BY {col} ORDER BY SUM(cost) DESC, {col}",
            col = by.column()
        );
        Ok(self
            .query(&sql, &[&first, &next])?
            .iter()
            .map(|r| MonthRow {
                group: r.get(0),
                requests: u(r.get(1)),
                input_tokens: u(r.get(2)),
                cached_input_tokens: u(r.get(3)),
                output_tokens: u(r.get(4)),
                cost: MicroUsd(u(r.get(5))),
                baseline_cost: MicroUsd(u(r.get(6))),
            })
            .collect())
    }

    pub(crate) fn month_days(&self, month: MonthId) -> Result<Vec<DayRow>, Error> {
        let (first, next) = super::month_days_range(month);
        Ok(self
            .query(
                "SELECT day, SUM(requests)::BIGINT, SUM(cost)::BIGINT, SUM(baseline_cost)::BIGINT
                 FROM daily WHERE day >= $1 AND day < $2 GROUP BY day ORDER BY day",
                &[&first, &next],
            )?
            .iter()
            .map(|r| DayRow {
                day: r.get(0),
                requests: u(r.get(1)),
                cost: MicroUsd(u(r.get(2))),
                baseline_cost: MicroUsd(u(r.get(3))),
            })
            .collect())
    }

    pub(crate) fn month_grid(&self, month: MonthId) -> Result<Vec<GridCell>, Error> {
        let (first, next) = super::month_days_range(month);
        Ok(self
            .query(
                "SELECT task, difficulty, SUM(requests)::BIGINT, SUM(cost)::BIGINT FROM daily_class
                 WHERE day >= $1 AND day < $2 GROUP BY task, difficulty ORDER BY task, difficulty",
                &[&first, &next],
            )?
            .iter()
            .map(|r| GridCell {
                task: r.get(0),
                difficulty: r.get(1),
                requests: u(r.get(2)),
                cost: MicroUsd(u(r.get(3))),
            })
            .collect())
    }

    pub(crate) fn recent(&self, before_us: i64, limit: u32) -> Result<Vec<RecentRow>, Error> {
        let limit = i64::from(limit);
        Ok(self
            .query(
                "SELECT time_us, request_id, key, team, route, task, difficulty, model, tier,
                        input_tokens, cached_input_tokens, output_tokens, cost, baseline_cost,
                        status, latency_ms, estimated, reason
                 FROM requests WHERE time_us < $1 ORDER BY time_us DESC, id DESC LIMIT $2",
                &[&before_us, &limit],
            )?
            .iter()
            .map(|r| RecentRow {
                time_us: r.get(0),
                request_id: r.get(1),
                key: r.get(2),
                team: r.get(3),
                route: r.get(4),
                task: r.get(5),
                difficulty: r.get(6),
                model: r.get(7),
                tier: r.get(8),
                input_tokens: u(r.get(9)),
                cached_input_tokens: u(r.get(10)),
                output_tokens: u(r.get(11)),
                cost: MicroUsd(u(r.get(12))),
                baseline_cost: MicroUsd(u(r.get(13))),
                status: r.get(14),
                latency_ms: u(r.get(15)),
                estimated: r.get(16),
                reason: r.get(17),
            })
            .collect())
    }

    pub(crate) fn month_spend(
        &self,
        month: MonthId,
    ) -> Result<Vec<(String, String, MicroUsd)>, Error> {
        Ok(self
            .query(
                "SELECT budget, scope_id, spent FROM spend_by_budget WHERE month = $1
                   AND (spent > 0 OR requests > 0) ORDER BY budget, scope_id",
                &[&month.to_string()],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), MicroUsd(u(r.get(2)))))
            .collect())
    }

    pub(crate) fn served_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Served>, Error> {
        Ok(self
            .query(
                "SELECT time_us, key, team, task, difficulty, model, input_tokens,
                        cached_input_tokens, output_tokens, cost
                 FROM requests
                 WHERE time_us >= $1 AND time_us < $2
                   AND status IN ('ok', 'client_gone', 'upstream_failed')
                 ORDER BY time_us, id",
                &[&from.as_microsecond(), &to.as_microsecond()],
            )?
            .iter()
            .map(|r| Served {
                time: Timestamp::from_microsecond(r.get(0)).unwrap_or(Timestamp::UNIX_EPOCH),
                key: r.get(1),
                team: r.get(2),
                task: r.get(3),
                difficulty: r.get(4),
                model: r.get(5),
                input_tokens: u(r.get(6)),
                cached_input_tokens: u(r.get(7)),
                output_tokens: u(r.get(8)),
                cost: MicroUsd(u(r.get(9))),
            })
            .collect())
    }

    pub(crate) fn ping(&self) -> Result<(), Error> {
        self.query("SELECT 1", &[]).map(drop)
    }

    pub(crate) fn sum_cost(&self) -> Result<MicroUsd, Error> {
        let rows = self.query("SELECT COALESCE(SUM(cost), 0)::BIGINT FROM requests", &[])?;
        Ok(MicroUsd(rows.first().map_or(0, |r| u(r.get(0)))))
    }

    pub(crate) fn request_count(&self) -> Result<u64, Error> {
        let rows = self.query("SELECT COUNT(*) FROM requests", &[])?;
        Ok(rows.first().map_or(0, |r| u(r.get(0))))
    }

    /// Money still held, over every budget copy and replica; and the number of holds.
    pub fn held_total(&self) -> Result<(MicroUsd, u64), Error> {
        let rows = self.query(
            "SELECT (SELECT COALESCE(SUM(held), 0)::BIGINT FROM spend_by_budget),
                    (SELECT COUNT(*) FROM holds)",
            &[],
        )?;
        Ok(rows.first().map_or((MicroUsd::ZERO, 0), |r| {
            (MicroUsd(u(r.get(0))), u(r.get(1)))
        }))
    }

    #[cfg(test)]
    pub(crate) fn audit(&self) -> Result<super::Audit, Error> {
        let mut audit = super::Audit::default();
        for r in self.query("SELECT cost, budgets FROM requests", &[])? {
            let cost = u(r.get(0));
            let budgets: String = r.get(1);
            for charge in super::decode_charges(&budgets) {
                *audit.from_requests.entry(charge).or_default() += cost;
            }
        }
        for r in self.query(
            "SELECT month, budget, scope_id, spent FROM spend_by_budget",
            &[],
        )? {
            audit
                .from_rollup
                .insert((r.get(0), r.get(1), r.get(2)), u(r.get(3)));
        }
        Ok(audit)
    }
}

async fn get(pool: &Pool) -> Result<deadpool_postgres::Object, Error> {
    pool.get().await.map_err(|e| Error::Pool(chain(&e)))
}

/// An error and its causes on one line ("db error: database \"x\" does not exist"). Neither
/// tokio-postgres nor deadpool puts the URL or a password in their messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// rustls (ring), verifying the server against the public web roots plus `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::StoreUrl(format!("cannot read the CA file {shown}: {e}")))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| Error::StoreUrl(format!("CA file {shown}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::StoreUrl(format!("CA file {shown}: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::StoreUrl(format!(
                "CA file {shown}: no certificate in it"
            )));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::StoreUrl(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Where a store URL points, without user or password: `host:port/database`.
fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config
            .get_dbname()
            .unwrap_or_else(|| config.get_user().unwrap_or("?"))
    )
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn columns(charges: &[Charge]) -> (Vec<String>, Vec<&str>, Vec<&str>) {
    (
        charges.iter().map(|c| c.month.to_string()).collect(),
        charges.iter().map(|c| &*c.budget).collect(),
        charges.iter().map(|c| &*c.scope_id).collect(),
    )
}

fn counters(spent: Option<Vec<i64>>, held: Option<Vec<i64>>) -> Vec<(MicroUsd, MicroUsd)> {
    spent
        .unwrap_or_default()
        .into_iter()
        .zip(held.unwrap_or_default())
        .map(|(s, h)| (MicroUsd(u(s)), MicroUsd(u(h))))
        .collect()
}

/// Deadlocks and serialization failures are retried; anything else is returned.
async fn retrying<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(Error::Postgres(e)) if attempt < ATTEMPTS && transient(&e) => {
                tracing::debug!(error = %e, attempt, "retrying a PostgreSQL conflict");
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn transient(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

async fn heartbeat(client: &tokio_postgres::Client, replica: &str) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO replicas (id, seen_at) VALUES ($1, clock_timestamp())
             ON CONFLICT (id) DO UPDATE SET seen_at = clock_timestamp()",
            &[&replica],
        )
        .await?;
    Ok(())
}

/// Every `ttl / 4`: refresh this replica's heartbeat, then release dead replicas' holds.
async fn run_heartbeat(pool: Pool, replica: Arc<str>, ttl: Duration) {
    let every = (ttl / 4).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let beat = async {
            let client = get(&pool).await?;
            heartbeat(&client, &replica).await?;
            let no_one: Option<&str> = None;
            let released: i64 = client
                .query_one("SELECT sy_reclaim($1, $2)", &[&ttl_ms(ttl), &no_one])
                .await?
                .get(0);
            Ok::<_, Error>(released)
        };
        match beat.await {
            Ok(0) => {}
            Ok(released) => {
                tracing::warn!(
                    released,
                    "released the reservations of a replica that stopped"
                )
            }
            Err(err) => tracing::warn!(error = %err, "replica heartbeat failed; will retry"),
        }
    }
}

async fn load(pool: &Pool, since: MonthId) -> Result<Vec<SpendRow>, Error> {
    let client = get(pool).await?;
    let rows = client
        .query(
            "SELECT month, budget, scope_id, spent, overshoot, held FROM spend_by_budget
             WHERE month >= $1 AND (spent > 0 OR held > 0 OR requests > 0)",
            &[&since.to_string()],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let month: String = r.get(0);
        let Some(month) = MonthId::parse(&month) else {
            tracing::warn!(%month, "skipping a spend_by_budget row with a malformed month");
            continue;
        };
        let budget: String = r.get(1);
        let scope_id: String = r.get(2);
        out.push(SpendRow {
            charge: Charge {
                budget: Arc::from(budget),
                scope_id: Arc::from(scope_id),
                month,
            },
            spent: MicroUsd(u(r.get(3))),
            overshoot: MicroUsd(u(r.get(4))),
            held: MicroUsd(u(r.get(5))),
        });
    }
    Ok(out)
}

async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), Error> {
    let tx = client.transaction().await?;
    // One migrator at a time over the whole database; the others wait, then see it done.
    tx.execute("SELECT pg_advisory_xact_lock(7365821004)", &[])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await?;
    let found: i64 = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
        .map_or(0, |r| r.get(0));
    let found = u(found);
    let known = u64::try_from(MIGRATIONS.len()).unwrap_or(u64::MAX);
    if found > known {
        return Err(Error::SchemaTooNew { found, known });
    }
    for (version, sql) in (1u64..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= found) {
        tx.batch_execute(sql).await?;
        tx.execute("DELETE FROM schema_version", &[]).await?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&i(version)],
        )
        .await?;
        tracing::info!(version, "ledger schema migrated (PostgreSQL)");
    }
    tx.commit().await?;
    Ok(())
}

/// A row waiting to be written: (row, charges, hold).
type Pending = (Row, Vec<Charge>, Option<HoldId>);

/// The writer task: group-commits whatever is queued, then completes the waiters. Ends when
/// the store is dropped, after writing what was already queued.
///
/// A batch that cannot be written (PostgreSQL unreachable) fails its waiters (their responses
/// report the failure) but its rows are kept and written with the next batch, retried every
/// `RETRY_EVERY`: the spend and the release of each hold still land once PostgreSQL is back.
async fn run_writer(pool: Pool, replica: Arc<str>, mut queue: mpsc::UnboundedReceiver<Msg>) {
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let first = if pending.is_empty() {
            queue.recv().await
        } else {
            match tokio::time::timeout(RETRY_EVERY, queue.recv()).await {
                Ok(msg) => msg,
                Err(_elapsed) => Some(Msg::Retry),
            }
        };
        let Some(first) = first else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        let mut rows: Vec<Pending> = std::mem::take(&mut pending);
        let mut waiters: Vec<Done> = Vec::with_capacity(batch.len());
        for msg in batch {
            match msg {
                Msg::Write {
                    row,
                    charges,
                    hold,
                    done,
                } => {
                    rows.push((row, charges, hold));
                    waiters.push(done);
                }
                Msg::Flush(done) => waiters.push(done),
                Msg::Retry => {}
            }
        }
        let result = retrying(|| write_batch(&pool, &replica, &rows)).await;
        let answer = match &result {
            Ok(()) => Ok(()),
            Err(err) => {
                tracing::error!(error = %err, rows = rows.len(), "ledger rows not written yet; will retry");
                pending = rows;
                Err(err.to_string())
            }
        };
        for done in waiters {
            // The waiter may have stopped waiting; that is allowed.
            let _ = done.send(answer.clone().map_err(Error::Store));
        }
    }
    if !pending.is_empty() {
        tracing::error!(
            rows = pending.len(),
            "ledger rows never written: PostgreSQL unreachable at shutdown"
        );
    }
}

async fn write_batch(pool: &Pool, replica: &str, rows: &[Pending]) -> Result<(), Error> {
    let writes: Vec<(&Row, &[Charge], Option<HoldId>)> = rows
        .iter()
        .map(|(row, charges, hold)| (row, charges.as_slice(), *hold))
        .collect();
    if writes.is_empty() {
        return Ok(());
    }
    let mut client = get(pool).await?;
    let tx = client.transaction().await?;
    // Lock every budget row of the batch in key order before anything else, as `sy_reserve`
    // does: two batches (or a batch and a reservation) then never wait on each other in a cycle.
    let keys: BTreeSet<(String, &str, &str)> = writes
        .iter()
        .flat_map(|(_, charges, _)| charges.iter())
        .map(|c| (c.month.to_string(), &*c.budget, &*c.scope_id))
        .collect();
    if !keys.is_empty() {
        let months: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let budgets: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let scopes: Vec<&str> = keys.iter().map(|k| k.2).collect();
        tx.execute("SELECT sy_lock($1, $2, $3)", &[&months, &budgets, &scopes])
            .await?;
    }
    let settle = tx
        .prepare_cached("SELECT sy_settle($1, $2, $3, $4, $5, $6)")
        .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO requests (time_us, request_id, key, team, route, task, difficulty,
                difficulty_score, model, tier, input_tokens, cached_input_tokens, output_tokens,
                cost, baseline_cost, status, latency_ms, estimated, overshoot, budgets,
                shadow_model, shadow_cost, reason, replica)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $19, $20, $21, $22, $23, $24)",
        )
        .await?;
    let daily = tx
        .prepare_cached(
            "INSERT INTO daily AS d (day, key, team, route, model, task, tier, requests,
                input_tokens, cached_input_tokens, output_tokens, cost, baseline_cost)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $11, $12)
             ON CONFLICT (day, key, team, route, model, task, tier) DO UPDATE SET
                requests = d.requests + 1,
                input_tokens = d.input_tokens + excluded.input_tokens,
                cached_input_tokens = d.cached_input_tokens + excluded.cached_input_tokens,
                output_tokens = d.output_tokens + excluded.output_tokens,
                cost = d.cost + excluded.cost,
                baseline_cost = d.baseline_cost + excluded.baseline_cost",
        )
        .await?;
    let class = tx
        .prepare_cached(
            "INSERT INTO daily_class AS d (day, task, difficulty, requests, cost)
             VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (day, task, difficulty) DO UPDATE SET
                requests = d.requests + 1, cost = d.cost + excluded.cost",
        )
        .await?;
    for (row, charges, hold) in writes {
        let cost = i(row.cost.0);
        if !charges.is_empty() || hold.is_some() {
            let overshoot = i(row.overshoot.0);
            let (months, budgets, scopes) = columns(charges);
            tx.execute(
                &settle,
                &[&hold, &cost, &overshoot, &months, &budgets, &scopes],
            )
            .await?;
        }
        let shadow_model = row.shadow.as_ref().map(|s| &*s.model);
        let shadow_cost = row.shadow.as_ref().map(|s| i(s.cost.0));
        tx.execute(
            &insert,
            &[
                &row.time.as_microsecond(),
                &row.request_id,
                &&*row.key,
                &row.team.as_deref(),
                &&*row.route,
                &row.task,
                &row.difficulty,
                &row.difficulty_score,
                &&*row.model,
                &row.tier,
                &i(row.input_tokens),
                &i(row.cached_input_tokens),
                &i(row.output_tokens),
                &cost,
                &i(row.baseline_cost.0),
                &row.status,
                &i(row.latency_ms),
                &row.estimated,
                &i(row.overshoot.0),
                &encode_charges(charges),
                &shadow_model,
                &shadow_cost,
                &row.reason,
                &replica,
            ],
        )
        .await?;
        let day = jiff::tz::TimeZone::UTC
            .to_datetime(row.time)
            .date()
            .to_string();
        tx.execute(
            &daily,
            &[
                &day,
                &&*row.key,
                &row.team.as_deref().unwrap_or(""),
                &&*row.route,
                &&*row.model,
                &row.task.as_deref().unwrap_or(""),
                &row.tier,
                &i(row.input_tokens),
                &i(row.cached_input_tokens),
                &i(row.output_tokens),
                &cost,
                &i(row.baseline_cost.0),
            ],
        )
        .await?;
        tx.execute(
            &class,
            &[
                &day,
                &row.task.as_deref().unwrap_or(""),
                &row.difficulty.as_deref().unwrap_or(""),
                &cost,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
