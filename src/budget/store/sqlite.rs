//! The embedded SQLite store: one file, `ledger.sqlite3`, in the data directory.
//!
//! A row is first appended to the journal (`journal.rs`, one `write(2)`), which makes it
//! durable against the process being killed; its `Durable` is then already complete. Writes to
//! SQLite go through ONE dedicated OS thread that owns the writing `Connection`, fed by a
//! channel: it takes everything queued (up to `MAX_BATCH`) and writes it in one transaction
//! (group commit), with the journal sequence it reached. Async workers never touch SQLite for a
//! write. Reads for reports use a second, read-only connection, after waiting for the writer to
//! catch up with the journal, so a reader sees every row written before it asked.
//!
//! Durability: the journal and the WAL (`synchronous=NORMAL`) both live in the page cache first:
//! a row survives the process being killed (kill -9); the last rows may be lost on power failure.
//! If the journal cannot be written, the row falls back to waiting for its SQLite commit.
//!
//! Invariant: a `Durable` resolves `Ok` only once its row is in the journal or in a committed
//! transaction; SQLite holds a prefix of the journal (a refused row is retried, never skipped).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::Served;
use super::journal::{self, Journal};
use super::schema::MIGRATIONS;
use super::{
    Charge, DayRow, Dimension, Durable, GridCell, MonthRow, RecentRow, SpendRow, encode_charges,
};
use crate::budget::Error;
use crate::budget::money::MicroUsd;
use crate::budget::row::Row;
use crate::budget::window::MonthId;

/// The ledger file's name inside the data directory.
pub const FILE_NAME: &str = "ledger.sqlite3";
/// Rows per group-commit transaction at most.
const MAX_BATCH: usize = 1024;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reader waits for the writer to catch up with the journal before reading anyway.
const READ_WAIT: Duration = Duration::from_secs(1);
/// How long the writer gathers journaled rows before committing them (see `run_writer`).
/// Nobody waits for it (readers and flushes wake the writer: `wake_writer`), so it is long: at 1k req/s,
/// 2 ms meant a wake-up and a transaction every other request, and the writer took a fifth of
/// the process's CPU time (docs/BENCHMARKS.md).
const LINGER: Duration = Duration::from_millis(25);
/// How soon the writer tries again after SQLite refused a journaled row.
const RETRY_EVERY: Duration = if cfg!(test) {
    Duration::from_millis(20)
} else {
    Duration::from_secs(1)
};

type Done = oneshot::Sender<Result<(), Error>>;

// Nearly every message is a `Write`; boxing the row would add an allocation per request to
// save space only on the rare `Flush`.
#[allow(clippy::large_enum_variant)]
enum Msg {
    /// A row already durable in the journal.
    Journaled {
        seq: u64,
        row: Row,
        charges: Vec<Charge>,
    },
    /// A row the journal could not take: its waiter waits for the commit.
    Write {
        row: Row,
        charges: Vec<Charge>,
        done: Done,
    },
    Flush(Done),
}

/// SQLite-backed store. Cheap to share behind the ledger's `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    /// To the writer thread. `mpsc::Sender` is `Sync`; sending never blocks.
    writer: mpsc::Sender<Msg>,
    /// The writer thread, to wake when a waiter is queued (see `wake_writer`, `run_writer`).
    writer_thread: thread::Thread,
    /// Set (before an unpark) when someone waits for the writer: it stops lingering.
    urgent: Arc<AtomicBool>,
    /// Read-only connection for reports; the mutex serialises its (blocking) use.
    reader: Mutex<Connection>,
    /// `None` when another process owns the directory's journal: rows then wait for SQLite.
    journal: Option<Arc<Journal>>,
    /// Joined on drop, so that the journal's lock is free once the store is gone.
    writer_handle: Option<thread::JoinHandle<()>>,
    /// Dropping it stops the checkpoint thread.
    _stop_checkpoints: mpsc::Sender<()>,
}

impl Drop for SqliteStore {
    /// Closes the writer's channel and waits for it to write what is queued and stop, so that
    /// the journal's lock is free once the store is gone (a reopen in this process owns it).
    fn drop(&mut self) {
        drop(std::mem::replace(&mut self.writer, mpsc::channel().0));
        self.wake_writer();
        if let Some(handle) = self.writer_handle.take()
            && handle.join().is_err()
        {
            tracing::error!("the ledger writer thread panicked");
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/ledger.sqlite3`, migrates it, and starts the writer
    /// thread. Blocking: call it at startup.
    pub fn open(dir: &Path) -> Result<SqliteStore, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "SQLite refused WAL journal mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoints move WAL pages into the database file. Run by the writer, every ~1000
        // pages, they stall the commit that triggers them (and every response waiting on it);
        // a separate thread runs them instead, PASSIVE, so commits never wait for one.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // After the WAL restarts, truncate a file grown past this by a burst.
        conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
        migrate(&mut conn)?;
        let journal = match journal::lock(dir).map_err(Error::Journal)? {
            Some(lock) => Some(Arc::new(replay_journal(&mut conn, dir, lock)?)),
            None => {
                tracing::info!(
                    dir = %dir.display(),
                    "another process owns this ledger's journal; rows go straight to SQLite"
                );
                None
            }
        };

        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(BUSY_TIMEOUT)?;

        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(BUSY_TIMEOUT)?;
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || run_checkpoints(&checkpointer, &stopped))
            .map_err(Error::Spawn)?;

        let (writer, queue) = mpsc::channel();
        let committer = journal.clone();
        let urgent = Arc::new(AtomicBool::new(false));
        let woken = urgent.clone();
        let writer_handle = thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run_writer(conn, queue, committer.as_deref(), &woken))
            .map_err(Error::Spawn)?;
        Ok(SqliteStore {
            path,
            writer,
            writer_thread: writer_handle.thread().clone(),
            urgent,
            writer_handle: Some(writer_handle),
            reader: Mutex::new(reader),
            journal,
            _stop_checkpoints: stop_checkpoints,
        })
    }

    /// Ends the writer's linger at once: the flag tells it someone waits; the unpark wakes it.
    /// (An unpark alone can be lost: the channel's blocking `recv` parks and unparks the same
    /// thread, and may consume it.)
    fn wake_writer(&self) {
        self.urgent.store(true, Ordering::Release);
        self.writer_thread.unpark();
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times SQLite refused a row already in the journal (each is retried).
    pub fn journal_refusals(&self) -> u64 {
        self.journal.as_ref().map_or(0, |j| j.refusals())
    }

    pub(crate) fn write(&self, row: Row, charges: Vec<Charge>) -> Durable {
        let Some(journal) = &self.journal else {
            return self.write_waiting(row, charges);
        };
        let appended = journal.append(row, charges, |seq, row, charges| {
            self.writer
                .send(Msg::Journaled { seq, row, charges })
                .is_ok()
        });
        let (row, charges) = match appended {
            Ok(sent) => {
                if !sent {
                    tracing::error!(
                        "ledger writer thread has stopped; a row stays in the journal until the next start"
                    );
                }
                return Durable::done(Ok(()));
            }
            Err(failed) => {
                let (err, row, charges) = *failed;
                tracing::warn!(error = %err, "ledger journal append failed; waiting for SQLite instead");
                (row, charges)
            }
        };
        self.write_waiting(row, charges)
    }

    /// Without the journal: the `Durable` resolves when the row's transaction committed.
    fn write_waiting(&self, row: Row, charges: Vec<Charge>) -> Durable {
        let (done, durable) = Durable::channel();
        // A failed send means the writer thread is gone; `done` is dropped with the message,
        // so the `Durable` resolves to `Error::WriterGone`.
        if self.writer.send(Msg::Write { row, charges, done }).is_err() {
            tracing::error!("ledger writer thread has stopped; a row was not written");
        }
        self.wake_writer();
        durable
    }

    pub(crate) fn flush(&self) -> Durable {
        let (done, durable) = Durable::channel();
        // On failure `done` is dropped and the `Durable` reports `Error::WriterGone`.
        if self.writer.send(Msg::Flush(done)).is_err() {
            tracing::error!("ledger writer thread has stopped; flush cannot complete");
        }
        self.wake_writer();
        durable
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, Error> {
        // A lingering writer is woken so that the reader does not wait out its linger.
        if let Some(journal) = &self.journal {
            self.wake_writer();
            journal.wait_committed(READ_WAIT);
        }
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(f(&conn)?)
    }

    pub(crate) fn load_spend(&self, since: MonthId) -> Result<Vec<SpendRow>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT month, budget, scope_id, spent, overshoot FROM spend_by_budget
                 WHERE month >= ?1",
            )?;
            let rows = stmt.query_map([since.to_string()], |r| {
                let month: String = r.get(0)?;
                let budget: String = r.get(1)?;
                let scope_id: String = r.get(2)?;
                Ok((
                    month,
                    budget,
                    scope_id,
                    r.get::<_, u64>(3)?,
                    r.get::<_, u64>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (month, budget, scope_id, spent, overshoot) = row?;
                let Some(month) = MonthId::parse(&month) else {
                    tracing::warn!(%month, "skipping a spend_by_budget row with a malformed month");
                    continue;
                };
                out.push(SpendRow {
                    charge: Charge {
                        budget: Arc::from(budget),
                        scope_id: Arc::from(scope_id),
                        month,
                    },
                    spent: MicroUsd(spent),
                    overshoot: MicroUsd(overshoot),
                    held: MicroUsd::ZERO,
                });
            }
            Ok(out)
        })
    }

    pub(crate) fn month_rows(&self, month: MonthId, by: Dimension) -> Result<Vec<MonthRow>, Error> {
        let (first, next) = super::month_days_range(month);
        let sql = format!(
            "SELECT {col}, SUM(requests), SUM(input_tokens), SUM(cached_input_tokens),
                    SUM(output_tokens), SUM(cost), SUM(baseline_cost)
             FROM daily WHERE day >= ?1 AND day < ?2
             GROUP BY {col} ORDER BY SUM(cost) DESC, {col}",
            col = by.column()
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![first, next], |r| {
                Ok(MonthRow {
                    group: r.get(0)?,
                    requests: r.get(1)?,
                    input_tokens: r.get(2)?,
                    cached_input_tokens: r.get(3)?,
                    output_tokens: r.get(4)?,
                    cost: MicroUsd(r.get(5)?),
                    baseline_cost: MicroUsd(r.get(6)?),
                })
            })?;
            rows.collect()
        })
    }

    pub(crate) fn month_days(&self, month: MonthId) -> Result<Vec<DayRow>, Error> {
        let (first, next) = super::month_days_range(month);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT day, SUM(requests), SUM(cost), SUM(baseline_cost) FROM daily
                 WHERE day >= ?1 AND day < ?2 GROUP BY day ORDER BY day",
            )?;
            let rows = stmt.query_map(params![first, next], |r| {
                Ok(DayRow {
                    day: r.get(0)?,
                    requests: r.get(1)?,
                    cost: MicroUsd(r.get(2)?),
                    baseline_cost: MicroUsd(r.get(3)?),
                })
            })?;
            rows.collect()
        })
    }

    pub(crate) fn month_grid(&self, month: MonthId) -> Result<Vec<GridCell>, Error> {
        let (first, next) = super::month_days_range(month);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT task, difficulty, SUM(requests), SUM(cost) FROM daily_class
                 WHERE day >= ?1 AND day < ?2 GROUP BY task, difficulty ORDER BY task, difficulty",
            )?;
            let rows = stmt.query_map(params![first, next], |r| {
                Ok(GridCell {
                    task: r.get(0)?,
                    difficulty: r.get(1)?,
                    requests: r.get(2)?,
                    cost: MicroUsd(r.get(3)?),
                })
            })?;
            rows.collect()
        })
    }

    pub(crate) fn recent(&self, before_us: i64, limit: u32) -> Result<Vec<RecentRow>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT time_us, request_id, key, team, route, task, difficulty, model, tier,
                        input_tokens, cached_input_tokens, output_tokens, cost, baseline_cost,
                        status, latency_ms, estimated, reason
                 FROM requests WHERE time_us < ?1 ORDER BY time_us DESC, id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![before_us, limit], |r| {
                Ok(RecentRow {
                    time_us: r.get(0)?,
                    request_id: r.get(1)?,
                    key: r.get(2)?,
                    team: r.get(3)?,
                    route: r.get(4)?,
                    task: r.get(5)?,
                    difficulty: r.get(6)?,
                    model: r.get(7)?,
                    tier: r.get(8)?,
                    input_tokens: r.get(9)?,
                    cached_input_tokens: r.get(10)?,
                    output_tokens: r.get(11)?,
                    cost: MicroUsd(r.get(12)?),
                    baseline_cost: MicroUsd(r.get(13)?),
                    status: r.get(14)?,
                    latency_ms: r.get(15)?,
                    estimated: r.get(16)?,
                    reason: r.get(17)?,
                })
            })?;
            rows.collect()
        })
    }

    pub(crate) fn month_spend(
        &self,
        month: MonthId,
    ) -> Result<Vec<(String, String, MicroUsd)>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT budget, scope_id, spent FROM spend_by_budget WHERE month = ?1
                 ORDER BY budget, scope_id",
            )?;
            let rows = stmt.query_map([month.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, MicroUsd(r.get(2)?)))
            })?;
            rows.collect()
        })
    }

    /// Served requests with `from <= time < to`, oldest first.
    pub(crate) fn served_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Served>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT time_us, key, team, task, difficulty, model, input_tokens,
                        cached_input_tokens, output_tokens, cost
                 FROM requests
                 WHERE time_us >= ?1 AND time_us < ?2
                   AND status IN ('ok', 'client_gone', 'upstream_failed')
                 ORDER BY time_us, id",
            )?;
            let rows =
                stmt.query_map(params![from.as_microsecond(), to.as_microsecond()], |r| {
                    let time_us: i64 = r.get(0)?;
                    Ok(Served {
                        time: Timestamp::from_microsecond(time_us).unwrap_or(Timestamp::UNIX_EPOCH),
                        key: r.get(1)?,
                        team: r.get(2)?,
                        task: r.get(3)?,
                        difficulty: r.get(4)?,
                        model: r.get(5)?,
                        input_tokens: r.get(6)?,
                        cached_input_tokens: r.get(7)?,
                        output_tokens: r.get(8)?,
                        cost: MicroUsd(r.get(9)?),
                    })
                })?;
            rows.collect()
        })
    }

    /// A cheap read that proves the file is open and readable.
    pub(crate) fn ping(&self) -> Result<(), Error> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
    }

    pub(crate) fn sum_cost(&self) -> Result<MicroUsd, Error> {
        self.read(|conn| {
            conn.query_row("SELECT COALESCE(SUM(cost), 0) FROM requests", [], |r| {
                r.get(0).map(MicroUsd)
            })
        })
    }

    pub(crate) fn request_count(&self) -> Result<u64, Error> {
        self.read(|conn| conn.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0)))
    }

    #[cfg(test)]
    pub(crate) fn audit(&self) -> Result<super::Audit, Error> {
        let mut audit = super::Audit::default();
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT cost, budgets FROM requests")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let cost: u64 = r.get(0)?;
                let budgets: String = r.get(1)?;
                for charge in super::decode_charges(&budgets) {
                    *audit.from_requests.entry(charge).or_default() += cost;
                }
            }
            let mut stmt =
                conn.prepare("SELECT month, budget, scope_id, spent FROM spend_by_budget")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                audit
                    .from_rollup
                    .insert((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?);
            }
            Ok(())
        })?;
        Ok(audit)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), Error> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let found: u64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let known = u64::try_from(MIGRATIONS.len()).unwrap_or(u64::MAX);
    if found > known {
        return Err(Error::SchemaTooNew { found, known });
    }
    for (version, sql) in (1u64..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= found) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
        tracing::info!(version, "ledger schema migrated");
    }
    Ok(())
}

/// The checkpoint thread: a PASSIVE checkpoint every `CHECKPOINT_EVERY` (it never blocks the
/// writer), until the store is dropped (its sender goes away).
fn run_checkpoints(conn: &Connection, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %err, "ledger checkpoint failed; will retry");
        }
    }
}

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Commits the journal lines SQLite does not hold yet (left by a process that was killed), in
/// one transaction, then starts an empty journal.
fn replay_journal(conn: &mut Connection, dir: &Path, lock: File) -> Result<Journal, Error> {
    let mut committed: u64 = conn.query_row("SELECT seq FROM journal_state", [], |r| r.get(0))?;
    let entries = journal::recover(dir, committed).map_err(Error::Journal)?;
    if let Some(last) = entries.last().map(|e| e.seq) {
        let tx = conn.transaction()?;
        insert_all(&tx, entries.iter().map(|e| (&e.row, e.charges.as_slice())))?;
        set_journal_seq(&tx, last)?;
        tx.commit()?;
        tracing::info!(
            rows = entries.len(),
            "ledger rows recovered from the journal"
        );
        committed = last;
    }
    Journal::create(dir, committed, lock).map_err(Error::Journal)
}

fn set_journal_seq(tx: &Transaction<'_>, seq: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE journal_state SET seq = ?1")?
        .execute([seq])
        .map(drop)
}

/// The writer thread: group-commits whatever is queued, then completes the waiters. Rows
/// SQLite refuses stay queued, with everything after them, and are tried again every
/// `RETRY_EVERY`. Ends when every sender is gone (the store was dropped), after one last try at
/// what is queued (anything left is still in the journal).
fn run_writer(
    mut conn: Connection,
    queue: mpsc::Receiver<Msg>,
    journal: Option<&Journal>,
    urgent: &AtomicBool,
) {
    let mut last_checkpoint = std::time::Instant::now();
    let mut batch: Vec<Msg> = Vec::new();
    let mut retry_at: Option<std::time::Instant> = None;
    loop {
        let open = match retry_at {
            None => queue.recv().map(|msg| batch.push(msg)).is_ok(),
            // Refused rows are waiting: gather new work until the retry is due.
            Some(at) => loop {
                let left = at.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break true;
                }
                match queue.recv_timeout(left) {
                    Ok(msg) => batch.push(msg),
                    Err(mpsc::RecvTimeoutError::Timeout) => break true,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break false,
                }
            },
        };
        if !open && batch.is_empty() {
            return;
        }
        // Nobody waits on a journaled row, so gather rows for a moment: one wake-up and one
        // transaction per `LINGER` under load instead of one per request (sending to a
        // receiver that is not blocked in `recv` wakes nobody). A waiter (flush, or a row the
        // journal could not take) unparks the thread, so it is served at once.
        if retry_at.is_none()
            && batch.len() == 1
            && matches!(batch.first(), Some(Msg::Journaled { .. }))
        {
            let until = std::time::Instant::now() + LINGER;
            while !urgent.swap(false, Ordering::AcqRel) {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                thread::park_timeout(left);
            }
        }
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        retry_at = if write_batch(&mut conn, &mut batch, journal) {
            None
        } else {
            Some(std::time::Instant::now() + RETRY_EVERY)
        };
        if !open {
            return;
        }
        // The checkpoint thread copies WAL frames while commits go on, so under steady load it
        // never catches up with the last frame, and SQLite restarts the WAL only once every
        // frame has been copied: the file would grow without bound. So now and then the writer,
        // between two batches and after answering its waiters, copies the few frames left
        // itself; the next commit then starts the WAL from its beginning again.
        if last_checkpoint.elapsed() >= WRITER_CHECKPOINT_EVERY {
            last_checkpoint = std::time::Instant::now();
            if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %err, "writer checkpoint skipped");
            }
        }
    }
}

/// How often the writer completes a checkpoint itself (see `run_writer`); shorter in unit tests
/// so that they can watch the WAL stay bounded in a second.
const WRITER_CHECKPOINT_EVERY: std::time::Duration = if cfg!(test) {
    std::time::Duration::from_millis(50)
} else {
    std::time::Duration::from_secs(1)
};

/// Writes `batch` in order and removes what it settled: committed rows and flushes (their
/// waiters answered), and rows that failed without a journal line (their waiters get the
/// error). Tries the whole batch in one transaction; if that fails, row by row, so one bad row
/// cannot sink its neighbours. A journaled row that fails stays, with everything after it.
/// True when nothing is left.
fn write_batch(conn: &mut Connection, batch: &mut Vec<Msg>, journal: Option<&Journal>) -> bool {
    let all = conn.transaction().and_then(|tx| {
        let last = batch.iter().rev().find_map(|msg| match msg {
            Msg::Journaled { seq, .. } => Some(*seq),
            Msg::Write { .. } | Msg::Flush(_) => None,
        });
        insert_all(
            &tx,
            batch.iter().filter_map(|msg| match msg {
                Msg::Journaled { row, charges, .. } | Msg::Write { row, charges, .. } => {
                    Some((row, charges.as_slice()))
                }
                Msg::Flush(_) => None,
            }),
        )?;
        if let Some(seq) = last {
            set_journal_seq(&tx, seq)?;
        }
        tx.commit().map(|()| last)
    });
    match all {
        Ok(last) => {
            if let (Some(seq), Some(journal)) = (last, journal) {
                journal.committed_to(seq);
            }
            for msg in batch.drain(..) {
                match msg {
                    // The waiter may have stopped waiting (dropped its `Durable`); allowed.
                    Msg::Write { done, .. } | Msg::Flush(done) => drop(done.send(Ok(()))),
                    Msg::Journaled { .. } => {}
                }
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, rows = batch.len(), "ledger batch failed; retrying row by row");
            let mut held = Vec::new();
            for msg in batch.drain(..) {
                if !held.is_empty() {
                    held.push(msg);
                    continue;
                }
                match msg {
                    Msg::Flush(done) => drop(done.send(Ok(()))),
                    Msg::Write { row, charges, done } => {
                        let result = write_one(conn, &row, &charges, None).map_err(|e| {
                            tracing::error!(error = %e, request_id = %row.request_id, "ledger row not written");
                            Error::Write(Arc::new(e))
                        });
                        drop(done.send(result));
                    }
                    Msg::Journaled { seq, row, charges } => {
                        match write_one(conn, &row, &charges, Some(seq)) {
                            Ok(()) => {
                                if let Some(journal) = journal {
                                    journal.committed_to(seq);
                                }
                            }
                            Err(e) => {
                                tracing::error!(error = %e, request_id = %row.request_id, "ledger row not written yet; it is in the journal and will be retried");
                                if let Some(journal) = journal {
                                    journal.refused();
                                }
                                held.push(Msg::Journaled { seq, row, charges });
                            }
                        }
                    }
                }
            }
            *batch = held;
            batch.is_empty()
        }
    }
}

fn write_one(
    conn: &mut Connection,
    row: &Row,
    charges: &[Charge],
    seq: Option<u64>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    insert(&tx, row, charges)?;
    if let Some(seq) = seq {
        set_journal_seq(&tx, seq)?;
    }
    tx.commit()
}

/// Inserts the rows and adds them to the rollups, in `tx`.
fn insert_all<'a>(
    tx: &Transaction<'_>,
    rows: impl IntoIterator<Item = (&'a Row, &'a [Charge])>,
) -> rusqlite::Result<()> {
    let mut rollups = Rollups::default();
    for (row, charges) in rows {
        insert_request(tx, row, charges)?;
        rollups.add(row, charges);
    }
    rollups.write(tx)
}

fn insert(tx: &Transaction<'_>, row: &Row, charges: &[Charge]) -> rusqlite::Result<()> {
    insert_all(tx, [(row, charges)])
}

fn insert_request(tx: &Transaction<'_>, row: &Row, charges: &[Charge]) -> rusqlite::Result<()> {
    let time_us = row.time.as_microsecond();
    tx.prepare_cached(
        "INSERT INTO requests (time_us, request_id, key, team, route, task, difficulty,
            difficulty_score, model, tier, input_tokens, cached_input_tokens, output_tokens, cost,
            baseline_cost, status, latency_ms, estimated, overshoot, budgets, shadow_model,
            shadow_cost, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23)",
    )?
    .execute(params![
        time_us,
        row.request_id,
        &*row.key,
        row.team.as_deref(),
        &*row.route,
        row.task,
        row.difficulty,
        row.difficulty_score,
        &*row.model,
        row.tier,
        row.input_tokens,
        row.cached_input_tokens,
        row.output_tokens,
        row.cost.0,
        row.baseline_cost.0,
        row.status,
        row.latency_ms,
        row.estimated,
        row.overshoot.0,
        encode_charges(charges),
        row.shadow.as_ref().map(|s| &*s.model),
        row.shadow.as_ref().map(|s| s.cost.0),
        row.reason,
    ])?;

    Ok(())
}

/// The three rollup tables' increments for a batch of rows, summed per key so that a batch
/// costs one upsert per distinct key instead of three or more per row.
#[derive(Default)]
struct Rollups {
    /// (month, budget, scope id) → (spent, overshoot, requests)
    spend: HashMap<SpendKey, (u64, u64, u64)>,
    /// (day, key, team, route, model, task, tier) → totals
    daily: HashMap<DailyKey, DailySum>,
    /// (day, task, difficulty) → (requests, cost)
    class: HashMap<(String, String, String), (u64, u64)>,
}

type SpendKey = (String, Arc<str>, Arc<str>);
type DailyKey = (String, Arc<str>, String, Arc<str>, Arc<str>, String, String);

#[derive(Default)]
struct DailySum {
    requests: u64,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    cost: u64,
    baseline_cost: u64,
}

impl Rollups {
    fn add(&mut self, row: &Row, charges: &[Charge]) {
        for c in charges {
            let s = self
                .spend
                .entry((c.month.to_string(), c.budget.clone(), c.scope_id.clone()))
                .or_default();
            s.0 += row.cost.0;
            s.1 += row.overshoot.0;
            s.2 += 1;
        }
        let day = jiff::tz::TimeZone::UTC
            .to_datetime(row.time)
            .date()
            .to_string();
        let d = self
            .daily
            .entry((
                day.clone(),
                row.key.clone(),
                row.team.as_deref().unwrap_or("").to_owned(),
                row.route.clone(),
                row.model.clone(),
                row.task.as_deref().unwrap_or("").to_owned(),
                row.tier.clone(),
            ))
            .or_default();
        d.requests += 1;
        d.input_tokens += row.input_tokens;
        d.cached_input_tokens += row.cached_input_tokens;
        d.output_tokens += row.output_tokens;
        d.cost += row.cost.0;
        d.baseline_cost += row.baseline_cost.0;
        let g = self
            .class
            .entry((
                day,
                row.task.as_deref().unwrap_or("").to_owned(),
                row.difficulty.as_deref().unwrap_or("").to_owned(),
            ))
            .or_default();
        g.0 += 1;
        g.1 += row.cost.0;
    }

    fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut spend = tx.prepare_cached(
            "INSERT INTO spend_by_budget (month, budget, scope_id, spent, overshoot, requests)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (month, budget, scope_id) DO UPDATE SET
                spent = spent + excluded.spent,
                overshoot = overshoot + excluded.overshoot,
                requests = requests + excluded.requests",
        )?;
        for ((month, budget, scope_id), (spent, overshoot, requests)) in &self.spend {
            spend.execute(params![
                month,
                &**budget,
                &**scope_id,
                spent,
                overshoot,
                requests
            ])?;
        }
        let mut daily = tx.prepare_cached(
            "INSERT INTO daily (day, key, team, route, model, task, tier, requests, input_tokens,
                cached_input_tokens, output_tokens, cost, baseline_cost)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (day, key, team, route, model, task, tier) DO UPDATE SET
                requests = requests + excluded.requests,
                input_tokens = input_tokens + excluded.input_tokens,
                cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
                output_tokens = output_tokens + excluded.output_tokens,
                cost = cost + excluded.cost,
                baseline_cost = baseline_cost + excluded.baseline_cost",
        )?;
        for ((day, key, team, route, model, task, tier), d) in &self.daily {
            daily.execute(params![
                day,
                &**key,
                team,
                &**route,
                &**model,
                task,
                tier,
                d.requests,
                d.input_tokens,
                d.cached_input_tokens,
                d.output_tokens,
                d.cost,
                d.baseline_cost,
            ])?;
        }
        let mut class = tx.prepare_cached(
            "INSERT INTO daily_class (day, task, difficulty, requests, cost)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (day, task, difficulty) DO UPDATE SET
                requests = requests + excluded.requests,
                cost = cost + excluded.cost",
        )?;
        for ((day, task, difficulty), (requests, cost)) in &self.class {
            class.execute(params![day, task, difficulty, requests, cost])?;
        }
        Ok(())
    }
}
