//! Property test: random interleavings of reserve / commit / release / drop / clock moves /
//! month rollover / policy reloads, run against a real SQLite file and against a real
//! PostgreSQL schema, and checked step by step against a simple in-memory model.
//!
//! Invariants checked:
//! - the ledger accepts exactly the reservations the model accepts (same refusing budget);
//! - spent and held per budget copy equal the model's after every step, and
//!   `spent + held <= highest limit in force + recorded overshoot`;
//! - a new month starts at zero;
//! - every reservation settles exactly once: rows written == reservations made;
//! - totals never drift: per (month, budget, scope id), the sum of committed row costs, the
//!   `spend_by_budget` rollup and the model agree after `flush`, and a ledger re-opened from
//!   the file reports the same month totals.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::budget::{MonthId, Reservation, month_window};

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        tenant: usize,
        amount: u64,
    },
    /// Settle the `pick`-th outstanding reservation with `percent`% of the hold, plus `extra`
    /// over it when `extra > 0` (a provider overshoot).
    Commit {
        pick: usize,
        percent: u64,
        extra: u64,
    },
    Release {
        pick: usize,
    },
    Drop {
        pick: usize,
    },
    Advance {
        minutes: i64,
    },
    /// Jump just past the earliest window end among the budgets.
    Rollover,
    /// Swap between the base limits and a scaled set (both up and down).
    Reload {
        scale_percent: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..TENANTS.len(), 0u64..700).prop_map(|(tenant, amount)| Op::Reserve { tenant, amount }),
        4 => (any::<usize>(), 0u64..=100, prop_oneof![6 => Just(0u64), 1 => 1u64..300])
            .prop_map(|(pick, percent, extra)| Op::Commit { pick, percent, extra }),
        1 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Drop { pick }),
        2 => (1i64..3 * 24 * 60).prop_map(|minutes| Op::Advance { minutes }),
        1 => Just(Op::Rollover),
        1 => prop_oneof![Just(100u64), Just(50), Just(200)].prop_map(|scale_percent| Op::Reload { scale_percent }),
    ]
}

const TENANTS: &[(&str, Option<&str>)] = &[
    ("k1", Some("red")),
    ("k2", Some("red")),
    ("k3", Some("blue")),
    ("anonymous", None),
];

fn base_specs() -> Vec<BudgetSpec> {
    vec![
        spec("company", Scope::Global, 4_000, "Asia/Kuala_Lumpur"),
        spec("per-team", Scope::Team, 2_500, "UTC"),
        spec("per-key", Scope::Key, 1_200, "America/New_York"),
    ]
}

type Key = (String, String, MonthId);

#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Cell {
    spent: u64,
    held: u64,
    overshoot: u64,
    /// The highest limit in force while this copy took a reservation.
    ceiling: u64,
}

struct Model {
    specs: Vec<BudgetSpec>,
    cells: HashMap<Key, Cell>,
    clock: Timestamp,
    reservations_made: u64,
    total_committed: u64,
}

struct Held {
    real: Reservation,
    amount: u64,
    keys: Vec<Key>,
}

impl Model {
    fn applicable(&self, tenant: usize) -> Vec<(usize, Key)> {
        let (key, team) = TENANTS[tenant];
        self.specs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let scope_id = match s.scope {
                    Scope::Global => "global",
                    Scope::Team => team?,
                    Scope::Key => key,
                };
                let month = month_window(&s.timezone, self.clock).month;
                Some((i, (s.name.to_string(), scope_id.to_owned(), month)))
            })
            .collect()
    }
}

fn take(outstanding: &mut Vec<Held>, pick: usize) -> Option<Held> {
    if outstanding.is_empty() {
        None
    } else {
        Some(outstanding.swap_remove(pick % outstanding.len()))
    }
}

fn settle(model: &mut Model, held: &Held, actual: u64) {
    for key in &held.keys {
        let cell = model.cells.get_mut(key).unwrap();
        cell.held -= held.amount;
        cell.spent += actual;
        cell.overshoot += actual.saturating_sub(held.amount);
    }
    model.total_committed += actual;
}

fn check_status(ledger: &Ledger, model: &Model) {
    for (t, &(key, team)) in TENANTS.iter().enumerate() {
        let got = ledger.status(&tenant(key, team), model.clock);
        let want = model.applicable(t);
        assert_eq!(got.len(), want.len());
        for (s, (i, k)) in got.iter().zip(&want) {
            let cell = model.cells.get(k).copied().unwrap_or_default();
            assert_eq!(
                (&*s.budget, &*s.scope_id, s.month),
                (k.0.as_str(), k.1.as_str(), k.2)
            );
            assert_eq!((s.spent.0, s.held.0), (cell.spent, cell.held), "{k:?}");
            assert_eq!(s.limit, model.specs[*i].limit);
            assert!(
                cell.spent + cell.held <= cell.ceiling.max(s.limit.0) + cell.overshoot,
                "{k:?} over its limit without overshoot: {cell:?}"
            );
        }
    }
}

fn run(ops: Vec<Op>, backend: Backend) {
    let fixture = Fixture::new(backend);
    let start = ts("2026-10-30T10:00:00Z");
    let ledger = fixture.open(base_specs(), start);
    let mut model = Model {
        specs: base_specs(),
        cells: HashMap::new(),
        clock: start,
        reservations_made: 0,
        total_committed: 0,
    };
    let mut outstanding: Vec<Held> = Vec::new();
    for (n, op) in ops.into_iter().enumerate() {
        let row = row(&format!("req-{n}"), "ok", model.clock);
        match op {
            Op::Reserve { tenant: t, amount } => {
                let (key, team) = TENANTS[t];
                let got = ledger.reserve_now(&tenant(key, team), MicroUsd(amount), model.clock);
                let applicable = model.applicable(t);
                let refusal = applicable.iter().find(|(i, k)| {
                    let c = model.cells.get(k).copied().unwrap_or_default();
                    c.spent + c.held + amount > model.specs[*i].limit.0
                });
                match (got, refusal) {
                    (Ok(real), None) => {
                        model.reservations_made += 1;
                        for (i, k) in &applicable {
                            let cell = model.cells.entry(k.clone()).or_default();
                            cell.held += amount;
                            cell.ceiling = cell.ceiling.max(model.specs[*i].limit.0);
                        }
                        let keys = applicable.into_iter().map(|(_, k)| k).collect();
                        outstanding.push(Held { real, amount, keys });
                    }
                    (Err(e), Some((_, k))) => {
                        assert_eq!((&*e.budget, &*e.scope_id), (k.0.as_str(), k.1.as_str()));
                        let c = model.cells.get(k).copied().unwrap_or_default();
                        assert_eq!((e.spent.0, e.held.0), (c.spent, c.held));
                    }
                    (got, want) => panic!("ledger {got:?}, model refusal {want:?}"),
                }
            }
            Op::Commit {
                pick,
                percent,
                extra,
            } => {
                if let Some(held) = take(&mut outstanding, pick) {
                    let actual = held.amount * percent / 100 + extra;
                    settle(&mut model, &held, actual);
                    // Durable before the next step, as a response waits for it: with
                    // PostgreSQL, a settle is seen by the next reserve only once committed.
                    block_on(held.real.commit(MicroUsd(actual), row)).unwrap();
                }
            }
            Op::Release { pick } => {
                if let Some(held) = take(&mut outstanding, pick) {
                    settle(&mut model, &held, 0);
                    block_on(held.real.release(row)).unwrap();
                }
            }
            Op::Drop { pick } => {
                if let Some(held) = take(&mut outstanding, pick) {
                    settle(&mut model, &held, 0);
                    drop(held.real);
                    block_on(ledger.flush()).unwrap();
                }
            }
            Op::Advance { minutes } => {
                model.clock = model
                    .clock
                    .checked_add(jiff::SignedDuration::from_mins(minutes))
                    .unwrap();
            }
            Op::Rollover => {
                let before: Vec<MonthId> = model
                    .specs
                    .iter()
                    .map(|s| month_window(&s.timezone, model.clock).month)
                    .collect();
                let end = model
                    .specs
                    .iter()
                    .map(|s| month_window(&s.timezone, model.clock).end)
                    .min()
                    .unwrap();
                model.clock = end.checked_add(jiff::SignedDuration::from_secs(1)).unwrap();
                // Every budget whose month changed starts at zero, holds of the old month
                // notwithstanding.
                for &(key, team) in TENANTS {
                    for s in ledger.status(&tenant(key, team), model.clock) {
                        let i = model.specs.iter().position(|m| m.name == s.budget).unwrap();
                        if s.month != before[i] {
                            assert_eq!((s.spent, s.held), (MicroUsd::ZERO, MicroUsd::ZERO));
                        }
                    }
                }
            }
            Op::Reload { scale_percent } => {
                let specs: Vec<BudgetSpec> = base_specs()
                    .into_iter()
                    .map(|mut s| {
                        s.limit = MicroUsd(s.limit.0 * scale_percent / 100);
                        s
                    })
                    .collect();
                ledger.set_specs(specs.clone());
                model.specs = specs;
            }
        }
        check_status(&ledger, &model);
    }

    // Settle the rest by dropping them: each still writes its one row.
    for held in std::mem::take(&mut outstanding) {
        settle(&mut model, &held, 0);
        drop(held.real);
    }
    check_status(&ledger, &model);
    block_on(ledger.flush()).unwrap();

    let store = ledger.store();
    assert_eq!(
        store.request_count().unwrap(),
        model.reservations_made,
        "one row per reservation"
    );
    assert_eq!(store.sum_cost().unwrap(), MicroUsd(model.total_committed));
    let nonzero =
        |m: HashMap<(String, String, String), u64>| -> HashMap<(String, String, String), u64> {
            m.into_iter().filter(|(_, v)| *v > 0).collect()
        };
    let want = nonzero(
        model
            .cells
            .iter()
            .map(|((b, s, m), c)| ((m.to_string(), b.clone(), s.clone()), c.spent))
            .collect(),
    );
    let audit = store.audit().unwrap();
    assert_eq!(nonzero(audit.from_requests), want, "requests rows vs model");
    assert_eq!(nonzero(audit.from_rollup), want, "spend_by_budget vs model");
    // Nothing held, and no past month kept in memory once nothing is outstanding in it.
    {
        let state = ledger.lock();
        for (k, c) in &state.counters {
            assert_eq!(c.held, MicroUsd::ZERO);
            if let Some(b) = state.budgets.iter().find(|b| b.spec.name == k.budget) {
                assert!(k.month >= b.window.month, "stale counter kept: {k:?}");
            }
        }
    }

    // Re-open from disk: the month totals are rebuilt.
    drop(ledger);
    let reopened = fixture.open(model.specs.clone(), model.clock);
    check_status(&reopened, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ledger_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops, Backend::Sqlite);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn postgres_ledger_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops, Backend::Postgres);
    }
}
