//! The SQLite store's journal seen through the ledger: a charge is durable before SQLite has
//! it, rows left in the journal are committed at the next open (once), and a row SQLite
//! refuses is kept and lands later.

use super::*;
use crate::budget::store::Charge;
use crate::budget::store::journal::{self, Journal};
use crate::budget::{MonthId, Scope};

const NOW: &str = "2026-11-15T12:00:00Z";

fn cap() -> Vec<BudgetSpec> {
    vec![spec("cap", Scope::Global, 1_000_000, "UTC")]
}

fn sqlite(ledger: &Ledger) -> &SqliteStore {
    match ledger.store() {
        Store::Sqlite(s) => s,
        Store::Postgres(_) => unreachable!("these tests open SQLite"),
    }
}

fn spent(ledger: &Ledger) -> u64 {
    ledger.status(&tenant("k", None), ts(NOW))[0].spent.0
}

#[test]
fn a_charge_is_durable_in_the_journal_before_sqlite_commits_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), cap(), ts(NOW));
    // Another connection holds SQLite's write lock: the writer cannot commit.
    let blocker = rusqlite::Connection::open(dir.path().join("ledger.sqlite3")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let r = ledger
        .reserve_now(&tenant("k", None), MicroUsd(500), ts(NOW))
        .unwrap();
    let mut durable = std::pin::pin!(r.commit(MicroUsd(321), row("r1", "ok", ts(NOW))));
    let ready = durable
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    assert!(
        matches!(ready, std::task::Poll::Ready(Ok(()))),
        "durable at once: {ready:?}"
    );
    // What a restart would find: the row, in the journal.
    let lines = journal::recover(dir.path(), 0).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (lines[0].row.request_id.as_str(), lines[0].row.cost),
        ("r1", MicroUsd(321))
    );
    let in_sqlite: u64 = blocker
        .query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(in_sqlite, 0, "SQLite does not have it yet");

    blocker.execute_batch("COMMIT").unwrap();
    block_on(ledger.flush()).unwrap();
    assert_eq!(ledger.store().request_count().unwrap(), 1);
    assert_eq!(ledger.store().sum_cost().unwrap(), MicroUsd(321));
}

/// A batch's rollups are summed per key before they are written: after one batch of rows with
/// repeated and distinct keys, days, tasks and budgets, every rollup table equals the same
/// sums taken over `requests` row by row.
#[test]
fn a_batchs_summed_rollups_equal_the_sums_of_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let lock = journal::lock(dir.path()).unwrap().unwrap();
    let journal = Journal::create(dir.path(), 0, lock).unwrap();
    let month = MonthId::parse("2026-11").unwrap();
    for n in 0..40u64 {
        let day = if n % 3 == 0 {
            "2026-11-15T12:00:00Z"
        } else {
            "2026-11-16T01:00:00Z"
        };
        let mut r = row(&format!("r{n}"), "ok", ts(day));
        r.key = Arc::from(["a", "b"][(n % 2) as usize]);
        r.task = (n % 5 != 0).then(|| ["code", "chat"][(n % 2) as usize].to_owned());
        r.difficulty = (n % 4 != 0).then(|| "easy".to_owned());
        r.input_tokens = n * 7;
        r.cached_input_tokens = n;
        r.output_tokens = n * 3 + 1;
        r.cost = MicroUsd(n * 11 + 5);
        r.baseline_cost = MicroUsd(n * 13);
        r.overshoot = MicroUsd(n % 3);
        let scopes: &[&str] = if n % 2 == 0 {
            &["global", "k:a"]
        } else {
            &["global"]
        };
        let charges = scopes
            .iter()
            .map(|scope| Charge {
                budget: Arc::from("cap"),
                scope_id: Arc::from(*scope),
                month,
            })
            .collect();
        journal.append(r, charges, |_, _, _| ()).unwrap();
    }
    drop(journal);
    // The next open commits all forty in one transaction.
    let ledger = open(dir.path(), cap(), ts(NOW));
    assert_eq!(ledger.store().request_count().unwrap(), 40);
    drop(ledger);

    let conn = rusqlite::Connection::open(dir.path().join("ledger.sqlite3")).unwrap();
    let rows = |sql: &str| -> Vec<Vec<i64>> {
        let mut st = conn.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map([], |r| (0..n).map(|i| r.get::<_, i64>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let daily = rows(
        "SELECT requests, input_tokens, cached_input_tokens, output_tokens, cost, baseline_cost
         FROM daily ORDER BY day, key, task",
    );
    let from_requests = rows(
        "SELECT COUNT(*), SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens),
                SUM(cost), SUM(baseline_cost)
         FROM requests
         GROUP BY strftime('%Y-%m-%d', time_us / 1000000, 'unixepoch'), key, COALESCE(task, '')
         ORDER BY strftime('%Y-%m-%d', time_us / 1000000, 'unixepoch'), key, COALESCE(task, '')",
    );
    assert_eq!(
        daily.len(),
        8,
        "2 days x 2 keys x (task or none) ...: {daily:?}"
    );
    assert_eq!(daily, from_requests);
    assert_eq!(
        rows("SELECT requests, cost FROM daily_class ORDER BY day, task, difficulty"),
        rows(
            "SELECT COUNT(*), SUM(cost) FROM requests
             GROUP BY strftime('%Y-%m-%d', time_us / 1000000, 'unixepoch'), COALESCE(task, ''),
                      COALESCE(difficulty, '')
             ORDER BY strftime('%Y-%m-%d', time_us / 1000000, 'unixepoch'), COALESCE(task, ''),
                      COALESCE(difficulty, '')"
        )
    );
    // Every row charged "global"; the even ones also "k:a".
    let cost = |pred: fn(u64) -> bool| {
        (0..40u64)
            .filter(|n| pred(*n))
            .map(|n| n * 11 + 5)
            .sum::<u64>()
    };
    let over = |pred: fn(u64) -> bool| (0..40u64).filter(|n| pred(*n)).map(|n| n % 3).sum::<u64>();
    assert_eq!(
        rows("SELECT spent, overshoot, requests FROM spend_by_budget ORDER BY scope_id"),
        vec![
            vec![cost(|_| true) as i64, over(|_| true) as i64, 40],
            vec![cost(|n| n % 2 == 0) as i64, over(|n| n % 2 == 0) as i64, 20],
        ]
    );
}

#[test]
fn rows_left_in_the_journal_are_committed_once_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    // A process that appended three rows and was killed before its writer committed them.
    drop(SqliteStore::open(dir.path()).unwrap());
    let lock = journal::lock(dir.path()).unwrap().unwrap();
    let journal = Journal::create(dir.path(), 0, lock).unwrap();
    let month = MonthId::parse("2026-11").unwrap();
    for (n, cost) in [(1, 100), (2, 20), (3, 3)] {
        let mut r = row(&format!("r{n}"), "ok", ts(NOW));
        r.cost = MicroUsd(cost);
        r.budgets = vec![(Arc::from("cap"), Arc::from("global"))];
        let charges = vec![Charge {
            budget: Arc::from("cap"),
            scope_id: Arc::from("global"),
            month,
        }];
        journal.append(r, charges, |_, _, _| ()).unwrap();
    }
    drop(journal);

    let ledger = open(dir.path(), cap(), ts(NOW));
    assert_eq!(ledger.store().request_count().unwrap(), 3);
    assert_eq!(spent(&ledger), 123, "the month total includes them");
    assert!(journal::recover(dir.path(), 0).unwrap().is_empty());
    drop(ledger);

    let ledger = open(dir.path(), cap(), ts(NOW));
    assert_eq!(ledger.store().request_count().unwrap(), 3, "not twice");
    assert_eq!(spent(&ledger), 123);
    // New rows continue after the recovered ones.
    let r = ledger
        .reserve_now(&tenant("k", None), MicroUsd(10), ts(NOW))
        .unwrap();
    block_on(r.commit(MicroUsd(4), row("r4", "ok", ts(NOW)))).unwrap();
    block_on(ledger.flush()).unwrap();
    assert_eq!(ledger.store().sum_cost().unwrap(), MicroUsd(127));
}

#[test]
fn a_row_sqlite_refuses_stays_queued_and_lands_later() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), cap(), ts(NOW));
    let t = tenant("k", None);
    let r = ledger.reserve_now(&t, MicroUsd(10), ts(NOW)).unwrap();
    block_on(r.commit(MicroUsd(1), row("r1", "ok", ts(NOW)))).unwrap();
    block_on(ledger.flush()).unwrap();

    // A table every row writes to disappears: SQLite refuses the next rows.
    let other = rusqlite::Connection::open(dir.path().join("ledger.sqlite3")).unwrap();
    other
        .execute_batch("ALTER TABLE daily_class RENAME TO daily_class_away")
        .unwrap();
    for n in 2..=3 {
        let r = ledger.reserve_now(&t, MicroUsd(10), ts(NOW)).unwrap();
        block_on(r.commit(MicroUsd(n), row(&format!("r{n}"), "ok", ts(NOW)))).unwrap();
    }
    let start = std::time::Instant::now();
    while sqlite(&ledger).journal_refusals() == 0 {
        assert!(start.elapsed().as_secs() < 30, "the writer never tried");
        std::thread::yield_now();
    }
    assert_eq!(spent(&ledger), 6, "the counters already hold them");

    other
        .execute_batch("ALTER TABLE daily_class_away RENAME TO daily_class")
        .unwrap();
    block_on(ledger.flush()).unwrap();
    assert_eq!(ledger.store().request_count().unwrap(), 3);
    assert_eq!(ledger.store().sum_cost().unwrap(), MicroUsd(6));
}

#[test]
fn a_second_store_on_the_same_directory_leaves_the_owners_journal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), cap(), ts(NOW));
    let t = tenant("k", None);
    // The owner has a row SQLite refused: it is only in the owner's journal.
    let other = rusqlite::Connection::open(dir.path().join("ledger.sqlite3")).unwrap();
    other
        .execute_batch("ALTER TABLE daily_class RENAME TO daily_class_away")
        .unwrap();
    let r = ledger.reserve_now(&t, MicroUsd(10), ts(NOW)).unwrap();
    block_on(r.commit(MicroUsd(7), row("r1", "ok", ts(NOW)))).unwrap();
    let start = std::time::Instant::now();
    while sqlite(&ledger).journal_refusals() == 0 {
        assert!(start.elapsed().as_secs() < 30, "the writer never tried");
        std::thread::yield_now();
    }

    // `report` beside a running `serve`: it must neither replay the owner's rows (they would
    // count twice) nor start a new journal over the owner's.
    let second = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(second.request_count().unwrap(), 0);
    assert_eq!(journal::recover(dir.path(), 0).unwrap().len(), 1);

    other
        .execute_batch("ALTER TABLE daily_class_away RENAME TO daily_class")
        .unwrap();
    block_on(ledger.flush()).unwrap();
    assert_eq!(second.request_count().unwrap(), 1, "once");
    assert_eq!(second.sum_cost().unwrap(), MicroUsd(7));
    // A row the second store writes goes straight to SQLite.
    block_on(second.write(row("r2", "ok", ts(NOW)), Vec::new())).unwrap();
    assert_eq!(ledger.store().request_count().unwrap(), 2);
}
