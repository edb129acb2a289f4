//! Budgets: money-correct monthly caps, enforced with reservations, recorded in a ledger.
//!
//! The request path calls `Ledger::reserve` with the worst-case cost before forwarding, then
//! settles the `Reservation` exactly once: `commit` (actual cost), `release` (nothing charged) or
//! drop (released, row status `dropped`). Each settle writes one ledger row through the `Store`
//! and returns a `Durable` the caller awaits before finishing the client's response.
//!
//! - `money.rs`: integer micro-dollars and the cost formula.
//! - `window.rs`: pure calendar-month windows in a budget's time zone.
//! - `forecast.rs`: pure burn rate and month-end projection, for the dashboard and alerts.
//! - `spec.rs`: budget specs, tenants, status and the `Exhausted` refusal.
//! - `reservation.rs`: the settle-once guard.
//! - `row.rs`: the ledger row (one per request, never prompt text).
//! - `store/`: `enum Store { Sqlite, Postgres }`: the durable ledger and its rollups.
//!
//! Two engines, one API. With SQLite (one replica) the counters here are authoritative and a
//! reserve is a few map updates under a lock. With PostgreSQL (several replicas) PostgreSQL is
//! the authority: a reserve is one atomic conditional update there (`PgStore::reserve`), and
//! the counters here are a mirror, refreshed by every reserve and by `refresh`.
//!
//! Invariants a changer must keep:
//! - Money is integer micro-dollars; no float touches a counter.
//! - For every budget copy and month, `spent + held <= limit` after every reserve; committed
//!   spend exceeds a limit only by a provider overshoot, which the row records.
//! - A reserve checks and updates every applicable budget under ONE lock acquisition (all or
//!   nothing); the lock is never held across `.await` or I/O.
//! - A reservation commits into the month it was made in; a new month's counters start at zero.
//! - Spend is keyed by budget NAME and scope id, never by limit: a policy reload keeps it.
//! - Time is passed in (`now`); nothing here reads a clock. A `now` earlier than one already
//!   seen is treated as the latest seen, so a stale clock cannot reopen a closed month.

mod forecast;
mod money;
mod reservation;
mod row;
mod spec;
mod store;
mod window;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;

pub use forecast::{Forecast, forecast};
pub use money::{MicroUsd, Price, Usage};
pub use reservation::Reservation;
pub use row::{Counterfactual, Row, STATUS_DROPPED};
pub use spec::{
    BudgetSpec, BudgetState, BudgetStatus, Exhausted, GLOBAL_SCOPE_ID, OnLimit, Ppm, Scope, Tenant,
};
pub use store::{
    DayRow, Dimension, Durable, GridCell, HoldId, MonthRow, PgOptions, PgStore, RecentRow, Served,
    SqliteStore, Store,
};
pub use window::{MonthId, Window, month_window, window_of};

use spec::state_of;
use store::{Charge, Standing};

/// Everything that can go wrong in the budget module, other than a budget being spent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Exhausted(#[from] Exhausted),
    #[error("cannot create the ledger directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("writing a ledger row failed")]
    Write(#[source] Arc<rusqlite::Error>),
    #[error("the ledger writer thread has stopped")]
    WriterGone,
    #[error("ledger journal error")]
    Journal(#[source] std::io::Error),
    #[error("ledger schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: u64, known: u64 },
    #[error("cannot start the ledger writer thread")]
    Spawn(#[source] std::io::Error),
    #[error("PostgreSQL ledger error")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("cannot reach the PostgreSQL ledger: {0}")]
    Pool(String),
    #[error("invalid store URL: {0}")]
    StoreUrl(String),
    #[error("writing ledger rows failed: {0}")]
    Store(String),
    #[error("the reservation was released by another replica (this one was taken for dead)")]
    HoldGone,
    #[error("the ledger task stopped before answering")]
    TaskGone,
}

/// The authoritative counters (spent and held, per budget copy and month) plus the store that
/// makes them durable. Cheap to clone: an `Arc` inside. `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Ledger {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Every counter and spec; one `std::sync::Mutex`, held for microseconds, never across
    /// `.await` or I/O.
    state: Mutex<State>,
    store: Store,
}

#[derive(Debug)]
struct State {
    /// Policy order; names unique.
    budgets: Vec<Budget>,
    /// Keyed by (budget name, scope id, month). Only the current month of each budget, plus
    /// past months that still have reservations outstanding.
    counters: HashMap<Charge, Counter>,
    /// The latest `now` seen: time only moves forward here.
    clock: Timestamp,
    /// The scope id of global budgets, allocated once.
    global_id: Arc<str>,
}

#[derive(Debug)]
struct Budget {
    spec: BudgetSpec,
    /// The month containing `State::clock` in the budget's zone.
    window: Window,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    spent: MicroUsd,
    held: MicroUsd,
    /// Part of `spent` past the reservations that covered it.
    overshoot: MicroUsd,
    /// Reservations not yet settled; the counter is kept while any are.
    outstanding: u64,
}

impl Ledger {
    /// Opens the ledger over `store`, rebuilding this month's committed spend per (budget name,
    /// scope id) from it. Blocking (reads the store): call it at startup.
    pub fn open(store: Store, specs: Vec<BudgetSpec>, now: Timestamp) -> Result<Ledger, Error> {
        // Load the previous UTC month onwards: whatever a budget's zone, its current month is
        // at most a day away from UTC's, so this covers every budget's current month.
        let utc = month_window(&jiff::tz::TimeZone::UTC, now).month;
        let since = utc.previous().unwrap_or(utc);
        let mut counters: HashMap<Charge, Counter> = HashMap::new();
        for row in store.load_spend(since)? {
            let c = counters.entry(row.charge).or_default();
            c.spent += row.spent;
            c.overshoot += row.overshoot;
            c.held += row.held;
        }
        let mut state = State {
            budgets: Vec::new(),
            counters,
            clock: now,
            global_id: Arc::from(GLOBAL_SCOPE_ID),
        };
        state.set_specs(specs);
        tracing::info!(
            budgets = state.budgets.len(),
            counters = state.counters.len(),
            "budget ledger opened"
        );
        Ok(Ledger {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                store,
            }),
        })
    }

    /// A policy reload. Spend is keyed by budget name and scope id, so a changed limit,
    /// threshold or action applies to the month's existing spend; nothing resets.
    pub fn set_specs(&self, specs: Vec<BudgetSpec>) {
        self.lock().set_specs(specs);
    }

    /// Reserves `amount` in every budget that applies to `tenant` (global ones, the tenant's
    /// team copy, the tenant's key copy), all or nothing, atomically w.r.t. concurrent reserves
    /// (of every replica, with PostgreSQL). Refuses with `Error::Exhausted` naming the first
    /// budget (policy order) that cannot take it; other errors mean the store failed.
    ///
    /// Cancel-safe: if the caller stops waiting, a reservation already made is released.
    pub async fn reserve(
        &self,
        tenant: &Tenant,
        amount: MicroUsd,
        now: Timestamp,
    ) -> Result<Reservation, Error> {
        if !matches!(self.shared.store, Store::Postgres(_)) {
            return Ok(self.reserve_here(tenant, amount, now)?);
        }
        let (made_at, targets) = {
            let mut state = self.lock();
            let made_at = state.advance(now);
            (made_at, state.targets(tenant))
        };
        if targets.is_empty() {
            return Ok(Reservation::new(
                self.clone(),
                tenant.clone(),
                amount,
                Vec::new(),
                made_at,
                None,
            ));
        }
        // Run to completion in its own task: a reservation made after the caller gave up is
        // dropped (released) here instead of leaking a hold.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ledger = self.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move {
            let result = ledger
                .reserve_shared(tenant, amount, made_at, targets)
                .await;
            drop(tx.send(result));
        });
        rx.await.unwrap_or(Err(Error::TaskGone))
    }

    async fn reserve_shared(
        &self,
        tenant: Tenant,
        amount: MicroUsd,
        made_at: Timestamp,
        targets: Vec<Target>,
    ) -> Result<Reservation, Error> {
        let Store::Postgres(pg) = &self.shared.store else {
            return Err(Error::TaskGone);
        };
        let charges: Vec<Charge> = targets.iter().map(|t| t.charge.clone()).collect();
        let limits: Vec<MicroUsd> = targets.iter().map(|t| t.limit).collect();
        let standing = pg.reserve(&charges, &limits, amount).await?;
        let mut state = self.lock();
        state.mirror(&charges, &standing);
        if let Some(i) = refused_index(&standing) {
            let t = targets.get(i).ok_or(Error::TaskGone)?;
            let (spent, held) = standing.counters.get(i).copied().unwrap_or_default();
            return Err(t.exhausted(spent, held, amount).into());
        }
        for charge in &charges {
            state
                .counters
                .entry(charge.clone())
                .or_default()
                .outstanding += 1;
        }
        drop(state);
        Ok(Reservation::new(
            self.clone(),
            tenant,
            amount,
            charges,
            made_at,
            standing.hold,
        ))
    }

    /// `reserve` on the in-memory counters (SQLite).
    fn reserve_here(
        &self,
        tenant: &Tenant,
        amount: MicroUsd,
        now: Timestamp,
    ) -> Result<Reservation, Exhausted> {
        let mut state = self.lock();
        let made_at = state.advance(now);
        let targets = state.targets(tenant);
        let mut charges = Vec::with_capacity(targets.len());
        for t in targets {
            let c = state.counters.get(&t.charge).copied().unwrap_or_default();
            if c.spent + c.held + amount > t.limit {
                tracing::debug!(budget = %t.charge.budget, scope_id = %t.charge.scope_id, %amount, "reservation refused");
                return Err(t.exhausted(c.spent, c.held, amount));
            }
            charges.push(t.charge);
        }
        for charge in &charges {
            let c = state.counters.entry(charge.clone()).or_default();
            c.held += amount;
            c.outstanding += 1;
        }
        drop(state);
        Ok(Reservation::new(
            self.clone(),
            tenant.clone(),
            amount,
            charges,
            made_at,
            None,
        ))
    }

    /// Re-reads every counter of the current months from the store (PostgreSQL: what every
    /// replica spent and holds), so `status` and `all_status` answer as of now. Nothing to do
    /// with SQLite, whose counters are authoritative. Blocking: call it from `spawn_blocking`.
    pub fn refresh(&self, now: Timestamp) -> Result<(), Error> {
        let Store::Postgres(pg) = &self.shared.store else {
            return Ok(());
        };
        let utc = month_window(&jiff::tz::TimeZone::UTC, now).month;
        let rows = pg.current_spend(utc.previous().unwrap_or(utc))?;
        let mut state = self.lock();
        state.advance(now);
        for row in rows {
            let current = state
                .budgets
                .iter()
                .any(|b| b.spec.name == row.charge.budget && b.window.month == row.charge.month);
            if current || state.counters.contains_key(&row.charge) {
                let c = state.counters.entry(row.charge).or_default();
                c.spent = row.spent;
                c.held = row.held;
                c.overshoot = row.overshoot;
            }
        }
        Ok(())
    }

    /// Every applicable budget's standing for `tenant` in the month containing `now`, in policy
    /// order. Read-only (only the internal clock moves forward).
    pub fn status(&self, tenant: &Tenant, now: Timestamp) -> Vec<BudgetStatus> {
        let mut state = self.lock();
        state.advance(now);
        state
            .budgets
            .iter()
            .filter_map(|b| {
                let scope_id = scope_id(b.spec.scope, tenant, &state.global_id)?;
                Some(state.status_of(b, scope_id))
            })
            .collect()
    }

    /// Every budget copy with activity this month, plus every global budget; in policy order,
    /// then by scope id. For reports and the dashboard.
    pub fn all_status(&self, now: Timestamp) -> Vec<BudgetStatus> {
        let mut state = self.lock();
        state.advance(now);
        let mut out = Vec::new();
        for b in &state.budgets {
            let mut ids: Vec<Arc<str>> = state
                .counters
                .keys()
                .filter(|k| k.budget == b.spec.name && k.month == b.window.month)
                .map(|k| k.scope_id.clone())
                .collect();
            if b.spec.scope == Scope::Global && ids.is_empty() {
                ids.push(state.global_id.clone());
            }
            ids.sort();
            out.extend(ids.into_iter().map(|id| state.status_of(b, id)));
        }
        out
    }

    /// How each budget of the policy stood at the end of a month other than the current one,
    /// from that month's committed spend (`Store::month_spend`) and TODAY's specs (limits and
    /// thresholds as the policy now says; nothing is held). Every global budget appears; scoped
    /// ones only for the copies that spent.
    pub fn month_status(
        &self,
        month: MonthId,
        spent: &[(String, String, MicroUsd)],
    ) -> Vec<BudgetStatus> {
        let state = self.lock();
        let mut out = Vec::new();
        for b in &state.budgets {
            let window = window_of(&b.spec.timezone, month);
            let mut copies: Vec<(Arc<str>, MicroUsd)> = spent
                .iter()
                .filter(|(name, _, _)| **name == *b.spec.name)
                .map(|(_, id, s)| (Arc::from(id.as_str()), *s))
                .collect();
            if b.spec.scope == Scope::Global && copies.is_empty() {
                copies.push((state.global_id.clone(), MicroUsd::ZERO));
            }
            for (scope_id, spent) in copies {
                let (used, st) = state_of(&b.spec, spent, MicroUsd::ZERO);
                out.push(BudgetStatus {
                    budget: b.spec.name.clone(),
                    scope: b.spec.scope,
                    scope_id,
                    month,
                    limit: b.spec.limit,
                    spent,
                    held: MicroUsd::ZERO,
                    remaining: b.spec.limit.saturating_sub(spent),
                    used,
                    state: st,
                    on_limit: b.spec.on_limit,
                    starts_at: window.start,
                    resets_at: window.end,
                });
            }
        }
        out
    }

    /// The budget specs in force, in policy order.
    pub fn specs(&self) -> Vec<BudgetSpec> {
        self.lock().budgets.iter().map(|b| b.spec.clone()).collect()
    }

    /// Moves a reservation's hold from `old` to `new` in each of its budget copies, checking
    /// every copy before changing any (all or nothing, under one lock, or in one PostgreSQL
    /// statement).
    async fn resize(
        &self,
        charges: &[Charge],
        hold: Option<HoldId>,
        old: MicroUsd,
        new: MicroUsd,
    ) -> Result<(), Error> {
        let Store::Postgres(pg) = &self.shared.store else {
            return Ok(self.resize_here(charges, old, new)?);
        };
        let Some(hold) = hold else {
            return Ok(()); // no budget applies
        };
        let targets: Vec<Option<Target>> = {
            let state = self.lock();
            charges.iter().map(|c| state.target_of(c)).collect()
        };
        let limits: Vec<MicroUsd> = targets
            .iter()
            .map(|t| t.as_ref().map_or(MicroUsd(u64::MAX), |t| t.limit))
            .collect();
        let standing = pg.resize(hold, &limits, new).await?;
        let mut state = self.lock();
        state.mirror(charges, &standing);
        if standing.refused < 0 {
            return Err(Error::HoldGone);
        }
        if let Some(i) = refused_index(&standing) {
            let (spent, held) = standing.counters.get(i).copied().unwrap_or_default();
            if let Some(Some(t)) = targets.get(i) {
                return Err(t.exhausted(spent, held, new).into());
            }
        }
        Ok(())
    }

    fn resize_here(
        &self,
        charges: &[Charge],
        old: MicroUsd,
        new: MicroUsd,
    ) -> Result<(), Exhausted> {
        let mut state = self.lock();
        if new > old {
            let extra = new.saturating_sub(old);
            for charge in charges {
                let c = state.counters.get(charge).copied().unwrap_or_default();
                let Some(t) = state.target_of(charge) else {
                    continue; // a budget removed by a reload no longer limits anything
                };
                if c.spent + c.held + extra > t.limit {
                    return Err(t.exhausted(c.spent, c.held, new));
                }
            }
        }
        for charge in charges {
            if let Some(c) = state.counters.get_mut(charge) {
                c.held = c.held.saturating_sub(old) + new;
            }
        }
        Ok(())
    }

    /// Writes a row that charges nothing (a request refused before any reservation, a dry
    /// run) so that every request leaves a row. Counters are untouched; `budgets` is cleared.
    pub fn record(&self, mut row: Row) -> Durable {
        row.budgets.clear();
        row.overshoot = MicroUsd::ZERO;
        self.shared.store.write(row, Vec::new(), None)
    }

    /// Resolves once every row handed to the store so far is durable.
    pub async fn flush(&self) -> Result<(), Error> {
        self.shared.store.flush().await
    }

    /// The store, for reports (`month_rows`, `sum_cost`).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Settles one reservation: moves `amount` out of held and `actual` into spent in each
    /// charged budget copy, then hands the row to the store. Called once per reservation.
    fn settle(
        &self,
        charges: Vec<Charge>,
        hold: Option<HoldId>,
        amount: MicroUsd,
        actual: MicroUsd,
        mut row: Row,
    ) -> Durable {
        let overshoot = actual.saturating_sub(amount);
        {
            let mut state = self.lock();
            for charge in &charges {
                state.settle(charge, amount, actual, overshoot);
            }
        }
        row.cost = actual;
        row.overshoot = overshoot;
        row.budgets = charges
            .iter()
            .map(|c| (c.budget.clone(), c.scope_id.clone()))
            .collect();
        self.shared.store.write(row, charges, hold)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever did, the counters are still
        // internally consistent per field, so recover rather than take the proxy down.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One budget copy a reservation would charge, with what a refusal must say.
#[derive(Debug, Clone)]
struct Target {
    charge: Charge,
    limit: MicroUsd,
    on_limit: OnLimit,
    resets_at: Timestamp,
}

impl Target {
    fn exhausted(&self, spent: MicroUsd, held: MicroUsd, requested: MicroUsd) -> Exhausted {
        Exhausted {
            budget: self.charge.budget.clone(),
            scope_id: self.charge.scope_id.clone(),
            limit: self.limit,
            spent,
            held,
            requested,
            resets_at: self.resets_at,
            on_limit: self.on_limit,
        }
    }
}

/// The 0-based index of the refusing copy of a PostgreSQL answer, if one refused.
fn refused_index(standing: &Standing) -> Option<usize> {
    usize::try_from(standing.refused)
        .ok()
        .and_then(|i| i.checked_sub(1))
}

impl State {
    /// The budget copies `tenant` spends from, in policy order, in each budget's current month.
    fn targets(&self, tenant: &Tenant) -> Vec<Target> {
        self.budgets
            .iter()
            .filter_map(|b| {
                let scope_id = scope_id(b.spec.scope, tenant, &self.global_id)?;
                Some(Target {
                    charge: Charge {
                        budget: b.spec.name.clone(),
                        scope_id,
                        month: b.window.month,
                    },
                    limit: b.spec.limit,
                    on_limit: b.spec.on_limit,
                    resets_at: b.window.end,
                })
            })
            .collect()
    }

    /// `charge` with its budget's limit as the policy now says; `None` if a reload removed it.
    fn target_of(&self, charge: &Charge) -> Option<Target> {
        let b = self.budgets.iter().find(|b| b.spec.name == charge.budget)?;
        Some(Target {
            charge: charge.clone(),
            limit: b.spec.limit,
            on_limit: b.spec.on_limit,
            resets_at: b.window.end,
        })
    }

    /// Copies PostgreSQL's answer into the mirror.
    fn mirror(&mut self, charges: &[Charge], standing: &Standing) {
        for (charge, (spent, held)) in charges.iter().zip(&standing.counters) {
            let c = self.counters.entry(charge.clone()).or_default();
            c.spent = *spent;
            c.held = *held;
        }
    }

    /// Moves the clock forward to `now` (never back) and rolls each budget's window over when
    /// its month has ended. Returns the clock.
    fn advance(&mut self, now: Timestamp) -> Timestamp {
        if now > self.clock {
            self.clock = now;
        }
        let clock = self.clock;
        let mut rolled = Vec::new();
        for b in &mut self.budgets {
            if !b.window.contains(clock) {
                b.window = month_window(&b.spec.timezone, clock);
                rolled.push((b.spec.name.clone(), b.window.month));
            }
        }
        for (name, month) in rolled {
            self.prune(&name, month);
        }
        clock
    }

    fn set_specs(&mut self, specs: Vec<BudgetSpec>) {
        let mut old: HashMap<Arc<str>, Budget> = self
            .budgets
            .drain(..)
            .map(|b| (b.spec.name.clone(), b))
            .collect();
        let mut budgets: Vec<Budget> = Vec::with_capacity(specs.len());
        for spec in specs {
            if budgets.iter().any(|b| b.spec.name == spec.name) {
                tracing::warn!(budget = %spec.name, "duplicate budget name; keeping the first");
                continue;
            }
            let window = match old.remove(&spec.name) {
                Some(b) if b.spec.timezone == spec.timezone && b.window.contains(self.clock) => {
                    b.window
                }
                _ => month_window(&spec.timezone, self.clock),
            };
            budgets.push(Budget { spec, window });
        }
        self.budgets = budgets;
        let current: Vec<_> = self
            .budgets
            .iter()
            .map(|b| (b.spec.name.clone(), b.window.month))
            .collect();
        for (name, month) in current {
            self.prune(&name, month);
        }
    }

    /// Drops `name`'s counters of months before `month` that have nothing outstanding: their
    /// spend is in the store, and a new month starts at zero.
    fn prune(&mut self, name: &str, month: MonthId) {
        self.counters
            .retain(|k, c| !(&*k.budget == name && k.month < month && c.outstanding == 0));
    }

    fn settle(&mut self, charge: &Charge, amount: MicroUsd, actual: MicroUsd, overshoot: MicroUsd) {
        let Some(c) = self.counters.get_mut(charge) else {
            // Unreachable: a counter with a reservation outstanding is never pruned.
            tracing::error!(budget = %charge.budget, scope_id = %charge.scope_id, "settling a reservation with no counter");
            return;
        };
        c.held = c.held.saturating_sub(amount);
        c.spent += actual;
        c.overshoot += overshoot;
        c.outstanding = c.outstanding.saturating_sub(1);
        if overshoot > MicroUsd::ZERO {
            tracing::warn!(budget = %charge.budget, scope_id = %charge.scope_id, %overshoot, "provider overshot its reservation");
        }
        let stale = self
            .budgets
            .iter()
            .any(|b| b.spec.name == charge.budget && charge.month < b.window.month);
        if stale && c.outstanding == 0 {
            self.counters.remove(charge);
        }
    }

    fn status_of(&self, b: &Budget, scope_id: Arc<str>) -> BudgetStatus {
        let key = Charge {
            budget: b.spec.name.clone(),
            scope_id,
            month: b.window.month,
        };
        let c = self.counters.get(&key).copied().unwrap_or_default();
        let (used, state) = state_of(&b.spec, c.spent, c.held);
        BudgetStatus {
            budget: key.budget,
            scope: b.spec.scope,
            scope_id: key.scope_id,
            month: key.month,
            limit: b.spec.limit,
            spent: c.spent,
            held: c.held,
            remaining: b.spec.limit.saturating_sub(c.spent + c.held),
            used,
            state,
            on_limit: b.spec.on_limit,
            starts_at: b.window.start,
            resets_at: b.window.end,
        }
    }
}

/// The copy of a budget with `scope` that `tenant` spends from; `None` when it has none (a
/// team budget and a tenant without a team).
fn scope_id(scope: Scope, tenant: &Tenant, global_id: &Arc<str>) -> Option<Arc<str>> {
    match scope {
        Scope::Global => Some(global_id.clone()),
        Scope::Team => tenant.team.clone(),
        Scope::Key => Some(tenant.key.clone()),
    }
}
