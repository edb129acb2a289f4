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
//! - `store/`: `enum Store { Sqlite }`: the durable ledger and its rollups.
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
    DayRow, Dimension, Durable, GridCell, MonthRow, RecentRow, Served, SqliteStore, Store,
};
pub use window::{MonthId, Window, month_window, window_of};

use spec::state_of;
use store::Charge;

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
    #[error("ledger schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: u64, known: u64 },
    #[error("cannot start the ledger writer thread")]
    Spawn(#[source] std::io::Error),
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
    /// team copy, the tenant's key copy), all or nothing, atomically w.r.t. concurrent reserves.
    /// Refuses with the first budget (policy order) that cannot take it.
    pub fn reserve(
        &self,
        tenant: &Tenant,
        amount: MicroUsd,
        now: Timestamp,
    ) -> Result<Reservation, Exhausted> {
        let mut state = self.lock();
        let made_at = state.advance(now);
        let State {
            budgets,
            counters,
            global_id,
            ..
        } = &mut *state;
        let mut charges = Vec::with_capacity(budgets.len());
        for b in budgets.iter() {
            let Some(scope_id) = scope_id(b.spec.scope, tenant, global_id) else {
                continue;
            };
            let charge = Charge {
                budget: b.spec.name.clone(),
                scope_id,
                month: b.window.month,
            };
            let c = counters.get(&charge).copied().unwrap_or_default();
            if c.spent + c.held + amount > b.spec.limit {
                tracing::debug!(budget = %b.spec.name, scope_id = %charge.scope_id, %amount, "reservation refused");
                return Err(Exhausted {
                    budget: charge.budget,
                    scope_id: charge.scope_id,
                    limit: b.spec.limit,
                    spent: c.spent,
                    held: c.held,
                    requested: amount,
                    resets_at: b.window.end,
                    on_limit: b.spec.on_limit,
                });
            }
            charges.push(charge);
        }
        for charge in &charges {
            let c = counters.entry(charge.clone()).or_default();
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
        ))
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
    /// every copy before changing any (all or nothing, under one lock).
    fn resize(&self, charges: &[Charge], old: MicroUsd, new: MicroUsd) -> Result<(), Exhausted> {
        let mut state = self.lock();
        let State {
            budgets, counters, ..
        } = &mut *state;
        if new > old {
            let extra = new.saturating_sub(old);
            for charge in charges {
                let c = counters.get(charge).copied().unwrap_or_default();
                let Some(b) = budgets.iter().find(|b| b.spec.name == charge.budget) else {
                    continue; // a budget removed by a reload no longer limits anything
                };
                if c.spent + c.held + extra > b.spec.limit {
                    return Err(Exhausted {
                        budget: charge.budget.clone(),
                        scope_id: charge.scope_id.clone(),
                        limit: b.spec.limit,
                        spent: c.spent,
                        held: c.held,
                        requested: new,
                        resets_at: b.window.end,
                        on_limit: b.spec.on_limit,
                    });
                }
            }
        }
        for charge in charges {
            if let Some(c) = counters.get_mut(charge) {
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
        self.shared.store.write(row, Vec::new())
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
        self.shared.store.write(row, charges)
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

impl State {
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
