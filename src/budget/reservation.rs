//! The reservation guard: money held in every applicable budget until the request settles.
//!
//! Invariant: a reservation settles exactly once. `commit` and `release` consume it; dropping
//! it unsettled releases it and writes a row with status `dropped`. Each settle writes exactly
//! one ledger row, so rows written == reservations made.

use std::fmt;

use jiff::Timestamp;

use super::money::MicroUsd;
use super::row::{Row, STATUS_DROPPED};
use super::spec::Tenant;
use super::store::{Charge, Durable};
use super::{Error, HoldId, Ledger};

/// `amount` held in each applicable budget copy, for the month the reservation was made in.
#[must_use = "a reservation holds budget until it is committed or released"]
pub struct Reservation {
    ledger: Ledger,
    tenant: Tenant,
    amount: MicroUsd,
    /// Budget copies held, each with the month it is held in.
    charges: Vec<Charge>,
    /// Its row in the shared store's `holds` (PostgreSQL, when a budget applies).
    hold: Option<HoldId>,
    /// The (ledger) time it was made; the time of its row if it is dropped.
    made_at: Timestamp,
    /// The row to write if dropped unsettled; a minimal one otherwise.
    drop_row: Option<Row>,
    settled: bool,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("tenant", &self.tenant)
            .field("amount", &self.amount)
            .field("charges", &self.charges)
            .field("made_at", &self.made_at)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    pub(super) fn new(
        ledger: Ledger,
        tenant: Tenant,
        amount: MicroUsd,
        charges: Vec<Charge>,
        made_at: Timestamp,
        hold: Option<HoldId>,
    ) -> Reservation {
        Reservation {
            ledger,
            tenant,
            amount,
            charges,
            hold,
            made_at,
            drop_row: None,
            settled: false,
        }
    }

    /// The amount held in each applicable budget.
    pub fn amount(&self) -> MicroUsd {
        self.amount
    }

    /// Change the amount held (a fallback to a candidate with another worst case), all or
    /// nothing: on refusal (`Error::Exhausted`) the reservation keeps its old amount. One
    /// reservation per request, whatever the fallbacks, so a request still leaves exactly one
    /// row.
    pub async fn resize(&mut self, amount: MicroUsd) -> Result<(), Error> {
        self.ledger
            .resize(&self.charges, self.hold, self.amount, amount)
            .await?;
        self.amount = amount;
        Ok(())
    }

    /// The budget copies held: (budget name, scope id, month).
    pub fn budgets(&self) -> impl Iterator<Item = (&str, &str, super::MonthId)> {
        self.charges
            .iter()
            .map(|c| (&*c.budget, &*c.scope_id, c.month))
    }

    /// The row written if this reservation is dropped unsettled (its status becomes
    /// `dropped`), so the record keeps the request id, route and model known so far.
    pub fn set_drop_row(&mut self, row: Row) {
        self.drop_row = Some(row);
    }

    /// Charges `actual` and releases the rest of the hold, then writes `row` (its `cost`,
    /// `overshoot` and `budgets` are filled in here). `actual` above the hold is charged in full
    /// and recorded as overshoot: that happens only when a provider exceeds its own max-token
    /// bound. Await the returned `Durable` before finishing the client's response.
    pub fn commit(mut self, actual: MicroUsd, row: Row) -> Durable {
        self.settle(actual, row)
    }

    /// Charges nothing (an error before any generation); `row.status` says why.
    pub fn release(mut self, row: Row) -> Durable {
        self.settle(MicroUsd::ZERO, row)
    }

    fn settle(&mut self, actual: MicroUsd, row: Row) -> Durable {
        self.settled = true;
        let charges = std::mem::take(&mut self.charges);
        self.ledger
            .settle(charges, self.hold, self.amount, actual, row)
    }
}

impl Drop for Reservation {
    /// Releases an unsettled reservation (a cancelled request future, an early return) with a
    /// `dropped` row. Nobody waits for that row's durability.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut row = self.drop_row.take().unwrap_or_else(|| Row {
            time: self.made_at,
            key: self.tenant.key.clone(),
            team: self.tenant.team.clone(),
            ..Row::default()
        });
        row.status = STATUS_DROPPED.to_owned();
        // Nobody is left to wait; the row is still written.
        drop(self.settle(MicroUsd::ZERO, row));
    }
}
