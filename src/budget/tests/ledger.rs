//! Behaviours of the ledger, one test each.

use super::*;
use crate::budget::{
    BudgetState, Dimension, Error, MonthId, Ppm, STATUS_DROPPED, Scope, month_window,
};

const NOW: &str = "2026-11-15T12:00:00Z";

fn company_team_key() -> Vec<BudgetSpec> {
    vec![
        spec("company", Scope::Global, 10_000, "Asia/Kuala_Lumpur"),
        spec("per-team", Scope::Team, 5_000, "UTC"),
        spec("per-key", Scope::Key, 2_000, "UTC"),
    ]
}

#[test]
fn reserve_holds_in_every_applicable_budget_and_commit_charges_actual() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), company_team_key(), ts(NOW));
    let alice = tenant("alice", Some("search"));
    let r = ledger
        .reserve_now(&alice, MicroUsd(1_500), ts(NOW))
        .unwrap();
    assert_eq!(r.amount(), MicroUsd(1_500));
    let held: Vec<_> = ledger
        .status(&alice, ts(NOW))
        .iter()
        .map(|s| (s.budget.to_string(), s.scope_id.to_string(), s.held.0))
        .collect();
    assert_eq!(
        held,
        [
            ("company".into(), "global".into(), 1_500),
            ("per-team".into(), "search".into(), 1_500),
            ("per-key".into(), "alice".into(), 1_500),
        ]
    );
    block_on(r.commit(MicroUsd(400), row("r1", "ok", ts(NOW)))).unwrap();
    for s in ledger.status(&alice, ts(NOW)) {
        assert_eq!(
            (s.spent, s.held),
            (MicroUsd(400), MicroUsd::ZERO),
            "{}",
            s.budget
        );
    }
    assert_eq!(ledger.store().sum_cost().unwrap(), MicroUsd(400));
}

#[test]
fn a_refusal_changes_nothing_and_names_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), company_team_key(), ts(NOW));
    let alice = tenant("alice", Some("search"));
    let first = ledger
        .reserve_now(&alice, MicroUsd(1_800), ts(NOW))
        .unwrap();
    let err = ledger
        .reserve_now(&alice, MicroUsd(300), ts(NOW))
        .unwrap_err();
    assert_eq!(&*err.budget, "per-key");
    assert_eq!(&*err.scope_id, "alice");
    assert_eq!(
        (err.limit, err.held, err.requested),
        (MicroUsd(2_000), MicroUsd(1_800), MicroUsd(300))
    );
    assert_eq!(err.resets_at, ts("2026-12-01T00:00:00Z"));
    // The global and team budgets had room, but all-or-nothing means they hold nothing extra.
    for s in ledger.status(&alice, ts(NOW)) {
        assert_eq!(s.held, MicroUsd(1_800), "{}", s.budget);
    }
    // Another key of the same team still fits.
    let bob = tenant("bob", Some("search"));
    drop(ledger.reserve_now(&bob, MicroUsd(300), ts(NOW)).unwrap());
    drop(first);
}

#[test]
fn a_tenant_without_a_team_is_not_charged_to_team_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), company_team_key(), ts(NOW));
    let anon = Tenant::anonymous();
    let r = ledger.reserve_now(&anon, MicroUsd(10), ts(NOW)).unwrap();
    let names: Vec<_> = r.budgets().map(|(b, s, _)| format!("{b}/{s}")).collect();
    assert_eq!(names, ["company/global", "per-key/anonymous"]);
    drop(r);
}

#[test]
fn overshoot_is_charged_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(
        dir.path(),
        vec![spec("cap", Scope::Global, 1_000, "UTC")],
        ts(NOW),
    );
    let t = tenant("k", None);
    let r = ledger.reserve_now(&t, MicroUsd(900), ts(NOW)).unwrap();
    block_on(r.commit(MicroUsd(1_100), row("r1", "ok", ts(NOW)))).unwrap();
    let s = &ledger.status(&t, ts(NOW))[0];
    assert_eq!(
        (s.spent, s.remaining, s.state),
        (MicroUsd(1_100), MicroUsd::ZERO, BudgetState::Capped)
    );
    assert_eq!(s.used, Ppm(1_100_000));
    // Nothing more fits, not even zero.
    assert!(ledger.reserve_now(&t, MicroUsd(0), ts(NOW)).is_err());
    let audit = ledger.store().audit().unwrap();
    assert_eq!(audit.from_rollup.values().sum::<u64>(), 1_100);
}

#[test]
fn dropping_a_reservation_releases_it_with_a_dropped_row() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(
        dir.path(),
        vec![spec("cap", Scope::Key, 1_000, "UTC")],
        ts(NOW),
    );
    let t = tenant("k", None);
    let mut r = ledger.reserve_now(&t, MicroUsd(1_000), ts(NOW)).unwrap();
    r.set_drop_row(row("req-7", "ok", ts(NOW)));
    drop(r);
    assert_eq!(ledger.status(&t, ts(NOW))[0].held, MicroUsd::ZERO);
    block_on(ledger.flush()).unwrap();
    assert_eq!(ledger.store().request_count().unwrap(), 1);
    let conn = rusqlite::Connection::open(dir.path().join("ledger.sqlite3")).unwrap();
    let (id, status, cost): (String, String, i64) = conn
        .query_row("SELECT request_id, status, cost FROM requests", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (id.as_str(), status.as_str(), cost),
        ("req-7", STATUS_DROPPED, 0)
    );
}

#[test]
fn reopening_the_store_rebuilds_the_month_totals() {
    let dir = tempfile::tempdir().unwrap();
    let specs = company_team_key();
    let alice = tenant("alice", Some("search"));
    let bob = tenant("bob", None);
    {
        let ledger = open(dir.path(), specs.clone(), ts(NOW));
        // Last month's spend must not count this month.
        let old = ledger.reserve_now(&alice, MicroUsd(999), ts("2026-10-20T00:00:00Z"));
        drop(old); // the ledger clock is already in November: charged to November, 0 cost
        for (t, cost) in [(&alice, 700), (&bob, 300), (&alice, 50)] {
            let r = ledger.reserve_now(t, MicroUsd(1_000), ts(NOW)).unwrap();
            block_on(r.commit(MicroUsd(cost), row("r", "ok", ts(NOW)))).unwrap();
        }
        // Outstanding at "crash" time: held money is not spend.
        std::mem::forget(ledger.reserve_now(&alice, MicroUsd(500), ts(NOW)).unwrap());
        block_on(ledger.flush()).unwrap();
    }
    let ledger = open(dir.path(), specs, ts("2026-11-20T00:00:00Z"));
    let spent = |t: &Tenant| -> Vec<u64> {
        ledger
            .status(t, ts(NOW))
            .iter()
            .map(|s| s.spent.0)
            .collect()
    };
    assert_eq!(spent(&alice), [1_050, 750, 750]);
    assert_eq!(spent(&bob), [1_050, 300]);
    assert!(
        ledger
            .status(&alice, ts(NOW))
            .iter()
            .all(|s| s.held == MicroUsd::ZERO)
    );
    // December starts from zero.
    let dec = ts("2026-12-02T00:00:00Z");
    assert!(
        ledger
            .status(&alice, dec)
            .iter()
            .all(|s| s.spent == MicroUsd::ZERO)
    );
}

#[test]
fn a_policy_reload_with_a_new_limit_keeps_spend() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = vec![spec("per-key", Scope::Key, 1_000, "UTC")];
    let ledger = open(dir.path(), specs.clone(), ts(NOW));
    let t = tenant("k", None);
    let r = ledger.reserve_now(&t, MicroUsd(800), ts(NOW)).unwrap();
    block_on(r.commit(MicroUsd(800), row("r", "ok", ts(NOW)))).unwrap();
    assert!(ledger.reserve_now(&t, MicroUsd(300), ts(NOW)).is_err());

    specs[0].limit = MicroUsd(2_000);
    specs[0].warn_at = vec![Ppm(400_000)];
    ledger.set_specs(specs.clone());
    let s = &ledger.status(&t, ts(NOW))[0];
    assert_eq!(
        (s.limit, s.spent, s.state),
        (
            MicroUsd(2_000),
            MicroUsd(800),
            BudgetState::Warned(Ppm(400_000))
        )
    );
    drop(ledger.reserve_now(&t, MicroUsd(300), ts(NOW)).unwrap());

    // Lowering below the spend caps it; a reload that drops and re-adds the budget keeps it too.
    specs[0].limit = MicroUsd(500);
    ledger.set_specs(Vec::new());
    assert!(ledger.status(&t, ts(NOW)).is_empty());
    ledger.set_specs(specs);
    let s = &ledger.status(&t, ts(NOW))[0];
    assert_eq!(
        (s.spent, s.remaining, s.state),
        (MicroUsd(800), MicroUsd::ZERO, BudgetState::Capped)
    );

    // And a reopened ledger under yet another limit sees the same spend.
    block_on(ledger.flush()).unwrap();
    drop(ledger);
    let ledger = open(
        dir.path(),
        vec![spec("per-key", Scope::Key, 9_000, "UTC")],
        ts(NOW),
    );
    assert_eq!(ledger.status(&t, ts(NOW))[0].spent, MicroUsd(800));
}

#[test]
fn a_reservation_commits_into_the_month_it_was_made_in() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(
        dir.path(),
        vec![spec("cap", Scope::Global, 1_000, "UTC")],
        ts(NOW),
    );
    let t = tenant("k", None);
    let late_nov = ts("2026-11-30T23:59:00Z");
    let early_dec = ts("2026-12-01T00:01:00Z");
    let r = ledger.reserve_now(&t, MicroUsd(900), late_nov).unwrap();
    // December starts at zero, even with November's hold outstanding.
    let s = &ledger.status(&t, early_dec)[0];
    assert_eq!(
        (s.spent, s.held, s.month.to_string()),
        (MicroUsd::ZERO, MicroUsd::ZERO, "2026-12".into())
    );
    drop(ledger.reserve_now(&t, MicroUsd(1_000), early_dec).unwrap());
    block_on(r.commit(MicroUsd(600), row("r", "ok", early_dec))).unwrap();
    assert_eq!(ledger.status(&t, early_dec)[0].spent, MicroUsd::ZERO);
    // November's counter is gone from memory now that nothing is outstanding in it...
    let nov = MonthId::new(2026, 11).unwrap();
    assert!(ledger.lock().counters.keys().all(|k| k.month != nov));
    // ...and its spend is in the store under November.
    let audit = ledger.store().audit().unwrap();
    assert_eq!(
        audit
            .from_rollup
            .get(&("2026-11".into(), "cap".into(), "global".into())),
        Some(&600)
    );
}

#[test]
fn a_clock_that_goes_back_cannot_reopen_a_closed_month() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(
        dir.path(),
        vec![spec("cap", Scope::Global, 1_000, "UTC")],
        ts("2026-12-01T00:00:01Z"),
    );
    let t = tenant("k", None);
    let r = ledger
        .reserve_now(&t, MicroUsd(10), ts("2026-11-30T23:59:59Z"))
        .unwrap();
    assert_eq!(
        r.budgets().next().map(|(_, _, m)| m.to_string()),
        Some("2026-12".into())
    );
    drop(r);
}

#[test]
fn status_reports_thresholds_and_all_status_lists_active_copies() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = company_team_key();
    specs[0].downgrade_at = Some(Ppm(900_000));
    specs[0].warn_at = vec![Ppm(500_000)];
    let ledger = open(dir.path(), specs, ts(NOW));
    assert_eq!(
        ledger.all_status(ts(NOW)).len(),
        1,
        "global budgets are always listed"
    );
    let a = tenant("a", Some("t1"));
    let b = tenant("b", Some("t2"));
    let ra = ledger.reserve_now(&a, MicroUsd(1_900), ts(NOW)).unwrap();
    let rb = ledger.reserve_now(&b, MicroUsd(1_900), ts(NOW)).unwrap();
    block_on(rb.commit(MicroUsd(1_600), row("r", "ok", ts(NOW)))).unwrap();
    let rows: Vec<_> = ledger
        .all_status(ts(NOW))
        .into_iter()
        .map(|s| (s.budget.to_string(), s.scope_id.to_string(), s.state))
        .collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[0],
        ("company".into(), "global".into(), BudgetState::Ok)
    );
    assert_eq!(rows[1].1, "t1");
    assert_eq!(rows[4], ("per-key".into(), "b".into(), BudgetState::Ok));
    let ra2 = ledger.reserve_now(&a, MicroUsd(0), ts(NOW)).unwrap();
    drop(ra2);
    let rc = ledger
        .reserve_now(&tenant("c", None), MicroUsd(2_000), ts(NOW))
        .unwrap();
    let company = &ledger.status(&a, ts(NOW))[0];
    assert_eq!(company.used, Ppm(550_000));
    assert_eq!(company.state, BudgetState::Warned(Ppm(500_000)));
    let rd = ledger
        .reserve_now(&tenant("d", None), MicroUsd(2_000), ts(NOW))
        .unwrap();
    assert_eq!(ledger.status(&a, ts(NOW))[0].used, Ppm(750_000));
    let re = ledger
        .reserve_now(&tenant("e", None), MicroUsd(1_500), ts(NOW))
        .unwrap();
    assert_eq!(
        ledger.status(&a, ts(NOW))[0].state,
        BudgetState::Downgrading
    );
    assert_eq!(
        ledger.status(&a, ts(NOW))[0].resets_at,
        month_window(&specs_tz(), ts(NOW)).end
    );
    drop((ra, rc, rd, re));
}

fn specs_tz() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Asia/Kuala_Lumpur").unwrap()
}

#[test]
fn month_rows_group_the_daily_rollup() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(
        dir.path(),
        vec![spec("cap", Scope::Global, 1_000_000, "UTC")],
        ts(NOW),
    );
    let t = tenant("k", None);
    for (model, task, cost, day) in [
        ("gpt-4o", "code", 500, "2026-11-02T10:00:00Z"),
        ("gpt-4o", "code", 300, "2026-11-03T10:00:00Z"),
        ("llama-8b", "chat", 5, "2026-11-03T11:00:00Z"),
        ("llama-8b", "chat", 7, "2026-12-01T00:00:00Z"),
    ] {
        let r = ledger.reserve_now(&t, MicroUsd(1_000), ts(day)).unwrap();
        let mut row = row("r", "ok", ts(day));
        row.model = Arc::from(model);
        row.task = Some(task.to_owned());
        row.input_tokens = 10;
        row.baseline_cost = MicroUsd(1_000);
        block_on(r.commit(MicroUsd(cost), row)).unwrap();
    }
    block_on(ledger.record(row("rejected", "rejected", ts(NOW)))).unwrap();
    let by_model = ledger
        .store()
        .month_rows(MonthId::new(2026, 11).unwrap(), Dimension::Model)
        .unwrap();
    let got: Vec<_> = by_model
        .iter()
        .map(|r| (r.group.as_str(), r.requests, r.input_tokens, r.cost.0))
        .collect();
    assert_eq!(got, [("gpt-4o", 2, 20, 800), ("llama-8b", 2, 10, 5)]);
    let by_task = ledger
        .store()
        .month_rows(MonthId::new(2026, 11).unwrap(), Dimension::Task)
        .unwrap();
    let groups: Vec<_> = by_task.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(groups, ["code", "chat", ""]);
    assert_eq!(ledger.store().request_count().unwrap(), 5);
}

#[test]
fn durable_reports_a_stopped_writer() {
    let (done, durable) = crate::budget::Durable::channel();
    drop(done);
    assert!(matches!(block_on(durable), Err(Error::WriterGone)));
}

#[test]
fn ledger_is_shareable_and_reservations_can_cross_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Ledger>();
    send::<crate::budget::Reservation>();
    send::<crate::budget::Durable>();
}

#[test]
fn the_wal_stays_bounded_under_continuous_commits() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(
        dir.path(),
        vec![spec("cap", Scope::Global, u64::MAX / 4, "UTC")],
        ts(NOW),
    );
    let t = tenant("k", None);
    let wal = dir.path().join("ledger.sqlite3-wal");
    let start = std::time::Instant::now();
    let mut rows = 0u64;
    // One commit per row, without pause, for twenty writer checkpoint intervals (50 ms in
    // unit tests).
    while start.elapsed() < std::time::Duration::from_secs(1) {
        let r = ledger.reserve_now(&t, MicroUsd(10), ts(NOW)).unwrap();
        r.commit(MicroUsd(5), row(&format!("r{rows}"), "ok", ts(NOW)))
            .wait_blocking()
            .unwrap();
        // Into SQLite, not only the journal: one transaction per row.
        block_on(ledger.flush()).unwrap();
        rows += 1;
    }
    // Each commit appends a 4 KiB page for each of the five tables and indexes a row touches:
    // a WAL that never restarted would hold 20 KiB per commit.
    let len = std::fs::metadata(&wal).unwrap().len();
    // Also fails when a flush waits out the writer's 25 ms linger (a lost wake-up).
    assert!(rows > 500, "only {rows} commits in a second");
    assert!(
        len < rows * 8192,
        "WAL {len} bytes after {rows} commits: it is not restarting"
    );
}
