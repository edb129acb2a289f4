//! The SQLite store's journal: how a charge becomes durable before its response leaves without
//! the response waiting for a SQLite transaction.
//!
//! Each row is appended to `ledger.journal` in the data directory as one JSON line carrying a
//! sequence number, with a single `write(2)`. Once that returns, the bytes are in the kernel's
//! page cache and survive the process being killed: the same guarantee SQLite's WAL gives with
//! `synchronous=NORMAL`, at the price of one small write instead of a transaction that rewrites
//! several 4 KiB pages and two thread hand-offs. The writer thread then group-commits the rows
//! into SQLite and stores the highest sequence committed (`journal_state`) in the same
//! transaction; at the next open, lines with a higher sequence are committed first.
//!
//! When the file passes `ROTATE_AT`, the writer renames it to `ledger.journal.old` and starts a
//! new one; the old file is deleted once SQLite holds its last sequence. So at most two files
//! exist, each about `ROTATE_AT`.
//!
//! Invariants:
//! - sequence numbers are appended in increasing order and handed to the writer in that order
//!   (both under one mutex);
//! - SQLite holds a prefix of the journal: rows commit in sequence order, and a row SQLite
//!   refuses holds back the rows after it (retried) rather than being skipped;
//! - one process owns the journal (an exclusive lock on `ledger.journal.lock`): only it replays,
//!   truncates and appends. Another process on the same directory (`report` beside a running
//!   `serve`) writes straight to SQLite instead;
//! - a line counts only when complete (it ends in `\n`); a torn last line is a write that never
//!   returned, so no response waited on it. A failed append is cut off again before the next.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Charge;
use crate::budget::money::MicroUsd;
use crate::budget::row::{Counterfactual, Row};
use crate::budget::window::MonthId;

/// The journal file's name inside the data directory.
pub const FILE_NAME: &str = "ledger.journal";
/// The previous journal file while SQLite has not yet committed all of it.
pub const OLD_FILE_NAME: &str = "ledger.journal.old";
/// Held (`flock`) by the one process that owns the journal; see `lock`.
pub const LOCK_FILE_NAME: &str = "ledger.journal.lock";
/// Size past which the writer starts a new file (small in unit tests, so rotation is exercised).
const ROTATE_AT: u64 = if cfg!(test) { 16 << 10 } else { 4 << 20 };

/// One journal line. `S` is `&str` when writing and `String` when reading.
#[derive(Serialize, Deserialize)]
struct Line<S> {
    seq: u64,
    time_us: i64,
    request_id: S,
    key: S,
    team: Option<S>,
    route: S,
    task: Option<S>,
    difficulty: Option<S>,
    difficulty_score: Option<f32>,
    model: S,
    tier: S,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    cost: u64,
    baseline_cost: u64,
    status: S,
    latency_ms: u64,
    estimated: bool,
    overshoot: u64,
    budgets: Vec<(S, S)>,
    reason: S,
    shadow: Option<(S, u64)>,
    /// (month, budget, scope id) of every budget copy the row moved.
    charges: Vec<(S, S, S)>,
}

/// Appends `seq`, `row` and `charges` to `buf` as one line.
fn encode(buf: &mut Vec<u8>, seq: u64, row: &Row, charges: &[Charge]) -> serde_json::Result<()> {
    let months: Vec<String> = charges.iter().map(|c| c.month.to_string()).collect();
    let line = Line {
        seq,
        time_us: row.time.as_microsecond(),
        request_id: row.request_id.as_str(),
        key: &*row.key,
        team: row.team.as_deref(),
        route: &*row.route,
        task: row.task.as_deref(),
        difficulty: row.difficulty.as_deref(),
        difficulty_score: row.difficulty_score,
        model: &*row.model,
        tier: row.tier.as_str(),
        input_tokens: row.input_tokens,
        cached_input_tokens: row.cached_input_tokens,
        output_tokens: row.output_tokens,
        cost: row.cost.0,
        baseline_cost: row.baseline_cost.0,
        status: row.status.as_str(),
        latency_ms: row.latency_ms,
        estimated: row.estimated,
        overshoot: row.overshoot.0,
        budgets: row.budgets.iter().map(|(b, s)| (&**b, &**s)).collect(),
        reason: row.reason.as_str(),
        shadow: row.shadow.as_ref().map(|s| (&*s.model, s.cost.0)),
        charges: charges
            .iter()
            .zip(&months)
            .map(|(c, m)| (m.as_str(), &*c.budget, &*c.scope_id))
            .collect(),
    };
    serde_json::to_writer(&mut *buf, &line)?;
    buf.push(b'\n');
    Ok(())
}

/// A row read back from the journal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub seq: u64,
    pub row: Row,
    pub charges: Vec<Charge>,
}

fn decode(text: &str) -> Option<Entry> {
    let line: Line<String> = serde_json::from_str(text).ok()?;
    let charges = line
        .charges
        .into_iter()
        .map(|(month, budget, scope_id)| {
            Some(Charge {
                month: MonthId::parse(&month)?,
                budget: Arc::from(budget),
                scope_id: Arc::from(scope_id),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let row = Row {
        time: Timestamp::from_microsecond(line.time_us).ok()?,
        request_id: line.request_id,
        key: Arc::from(line.key),
        team: line.team.map(Arc::from),
        route: Arc::from(line.route),
        task: line.task,
        difficulty: line.difficulty,
        difficulty_score: line.difficulty_score,
        model: Arc::from(line.model),
        tier: line.tier,
        input_tokens: line.input_tokens,
        cached_input_tokens: line.cached_input_tokens,
        output_tokens: line.output_tokens,
        cost: MicroUsd(line.cost),
        baseline_cost: MicroUsd(line.baseline_cost),
        status: line.status,
        latency_ms: line.latency_ms,
        estimated: line.estimated,
        overshoot: MicroUsd(line.overshoot),
        budgets: line
            .budgets
            .into_iter()
            .map(|(b, s)| (Arc::from(b), Arc::from(s)))
            .collect(),
        reason: line.reason,
        shadow: line.shadow.map(|(model, cost)| Counterfactual {
            model: Arc::from(model),
            cost: MicroUsd(cost),
        }),
    };
    Some(Entry {
        seq: line.seq,
        row,
        charges,
    })
}

/// Every complete line of the journal files in `dir` with a sequence above `committed`, in
/// sequence order. A line that cannot be read is skipped with a warning (the torn end of a
/// write that never returned is expected; anything else is reported).
pub(crate) fn recover(dir: &Path, committed: u64) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for name in [OLD_FILE_NAME, FILE_NAME] {
        let file = match File::open(dir.join(name)) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let Some(text) = line.strip_suffix('\n') else {
                tracing::info!(
                    file = name,
                    "ignoring the torn last line of the ledger journal"
                );
                break;
            };
            match decode(text) {
                Some(entry) if entry.seq > committed => entries.push(entry),
                Some(_) => {}
                None => tracing::warn!(file = name, "skipping an unreadable ledger journal line"),
            }
        }
    }
    entries.sort_by_key(|e| e.seq);
    entries.dedup_by_key(|e| e.seq);
    Ok(entries)
}

/// Takes the journal's lock for this process; `None` when another process holds it.
pub(crate) fn lock(dir: &Path) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE_NAME))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(err)) => Err(err),
    }
}

/// The open journal, shared by the request path (appends) and the writer thread (commits).
pub(crate) struct Journal {
    dir: PathBuf,
    appender: Mutex<Appender>,
    /// Highest sequence SQLite holds; readers wait on `caught_up` to see their own writes.
    committed: Mutex<u64>,
    caught_up: Condvar,
    /// How many times SQLite refused a journaled row (each is retried).
    refusals: AtomicU64,
    /// A file is due to be rotated or removed: only then does `committed_to` take the
    /// appender's lock, so the writer does not contend with requests on every commit.
    housekeeping: AtomicBool,
    /// The lock `lock` took; released when the journal is dropped.
    _lock: File,
}

struct Appender {
    file: File,
    /// Bytes in `file`.
    len: u64,
    /// The sequence the next row gets.
    next_seq: u64,
    /// The last sequence in `ledger.journal.old`, while that file exists.
    retired: Option<u64>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
}

impl Journal {
    /// Starts an empty journal in `dir` whose first row gets `committed + 1`. Every earlier
    /// journal file is removed: call it only once SQLite holds all of them (after `recover`ed
    /// entries were committed).
    pub(crate) fn create(dir: &Path, committed: u64, lock: File) -> io::Result<Journal> {
        remove_if_present(&dir.join(OLD_FILE_NAME))?;
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        drop(file);
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            appender: Mutex::new(Appender {
                file,
                len: 0,
                next_seq: committed + 1,
                retired: None,
                buf: Vec::with_capacity(1024),
            }),
            committed: Mutex::new(committed),
            caught_up: Condvar::new(),
            refusals: AtomicU64::new(0),
            housekeeping: AtomicBool::new(false),
            _lock: lock,
        })
    }

    fn appender(&self) -> MutexGuard<'_, Appender> {
        self.appender.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the row and, still holding the journal's lock (so that the writer receives rows
    /// in sequence order), hands it to `then` with its sequence. On error nothing was appended
    /// and the row comes back.
    pub(crate) fn append<T>(
        &self,
        row: Row,
        charges: Vec<Charge>,
        then: impl FnOnce(u64, Row, Vec<Charge>) -> T,
    ) -> Result<T, Box<(io::Error, Row, Vec<Charge>)>> {
        let mut a = self.appender();
        let a = &mut *a;
        let seq = a.next_seq;
        a.buf.clear();
        if let Err(err) = encode(&mut a.buf, seq, &row, &charges) {
            return Err(Box::new((io::Error::other(err), row, charges)));
        }
        if let Err(err) = a.file.write_all(&a.buf) {
            // Cut off whatever part of the line reached the file, so that the next line starts
            // on a line of its own.
            if let Err(cut) = a.file.set_len(a.len) {
                tracing::error!(error = %cut, "cannot cut a failed ledger journal line");
            }
            return Err(Box::new((err, row, charges)));
        }
        a.len += a.buf.len() as u64;
        a.next_seq += 1;
        if a.len >= ROTATE_AT {
            self.housekeeping.store(true, Ordering::Relaxed);
        }
        Ok(then(seq, row, charges))
    }

    /// The last sequence appended so far.
    pub(super) fn appended(&self) -> u64 {
        self.appender().next_seq - 1
    }

    /// Counts a journaled row SQLite refused (it stays queued and is retried).
    pub(super) fn refused(&self) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times SQLite refused a journaled row so far.
    pub(super) fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// The highest sequence SQLite holds.
    #[cfg(test)]
    pub(super) fn committed(&self) -> u64 {
        *self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by the writer after SQLite committed every row up to `seq`: wakes readers,
    /// deletes the old file once it is fully committed, and starts a new file past `ROTATE_AT`.
    pub(super) fn committed_to(&self, seq: u64) {
        {
            let mut committed = self
                .committed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *committed = (*committed).max(seq);
        }
        self.caught_up.notify_all();
        if !self.housekeeping.load(Ordering::Relaxed) {
            return;
        }
        let mut a = self.appender();
        if a.retired.is_some_and(|last| last <= seq) {
            match remove_if_present(&self.dir.join(OLD_FILE_NAME)) {
                Ok(()) => a.retired = None,
                Err(err) => tracing::warn!(error = %err, "cannot remove the old ledger journal"),
            }
        }
        if a.len >= ROTATE_AT
            && a.retired.is_none()
            && let Err(err) = self.rotate(&mut a)
        {
            tracing::warn!(error = %err, "cannot start a new ledger journal file; will retry");
        }
        // Under the lock, so an append that crosses `ROTATE_AT` now cannot be missed.
        self.housekeeping
            .store(a.len >= ROTATE_AT || a.retired.is_some(), Ordering::Relaxed);
    }

    fn rotate(&self, a: &mut Appender) -> io::Result<()> {
        let path = self.dir.join(FILE_NAME);
        std::fs::rename(&path, self.dir.join(OLD_FILE_NAME))?;
        a.retired = Some(a.next_seq - 1);
        a.len = 0;
        a.file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(())
    }

    /// Blocks until SQLite holds every row appended before this call, or `limit` passes (then
    /// warns and returns: a reader gets slightly old figures rather than hanging while SQLite
    /// refuses writes).
    pub(super) fn wait_committed(&self, limit: Duration) {
        let target = self.appended();
        let deadline = Instant::now() + limit;
        let mut committed = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *committed < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    behind = target - *committed,
                    "reading the ledger while SQLite is behind its journal"
                );
                return;
            }
            committed = self
                .caught_up
                .wait_timeout(committed, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(dir: &Path) -> File {
        lock(dir).unwrap().expect("no other owner")
    }

    #[test]
    fn one_owner_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        assert!(first.is_some());
        assert!(lock(dir.path()).unwrap().is_none(), "held");
        drop(first);
        assert!(
            lock(dir.path()).unwrap().is_some(),
            "released with its owner"
        );
    }

    pub(crate) fn full_row(n: u64) -> (Row, Vec<Charge>) {
        let row = Row {
            time: Timestamp::from_microsecond(1_780_000_000_000_000 + n as i64).unwrap(),
            request_id: format!("req-{n}"),
            key: Arc::from("team-a-key"),
            team: Some(Arc::from("team-a")),
            route: Arc::from("routine"),
            task: Some("summarization".into()),
            difficulty: Some("easy".into()),
            difficulty_score: Some(0.123_456_79),
            model: Arc::from("llama"),
            tier: "open".into(),
            input_tokens: 120 + n,
            cached_input_tokens: 7,
            output_tokens: 30,
            cost: MicroUsd(1_234 + n),
            baseline_cost: MicroUsd(9_999),
            status: "ok".into(),
            latency_ms: 12,
            estimated: true,
            overshoot: MicroUsd(3),
            budgets: vec![(Arc::from("org"), Arc::from("*"))],
            reason: "route routine; \"quoted\"\nand a newline".into(),
            shadow: Some(Counterfactual {
                model: Arc::from("gpt-4o"),
                cost: MicroUsd(77),
            }),
        };
        let charges = vec![Charge {
            budget: Arc::from("org"),
            scope_id: Arc::from("*"),
            month: MonthId::parse("2026-06").unwrap(),
        }];
        (row, charges)
    }

    #[test]
    fn a_line_reads_back_as_the_row_it_was_written_from() {
        let (row, charges) = full_row(1);
        let mut buf = Vec::new();
        encode(&mut buf, 42, &row, &charges).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let text = std::str::from_utf8(&buf).unwrap();
        let entry = decode(text.strip_suffix('\n').unwrap()).unwrap();
        assert_eq!(
            entry,
            Entry {
                seq: 42,
                row,
                charges
            }
        );
        // Empty and absent fields too.
        let row = Row::default();
        buf.clear();
        encode(&mut buf, 1, &row, &[]).unwrap();
        let entry = decode(std::str::from_utf8(&buf).unwrap().trim_end()).unwrap();
        assert_eq!(entry.row, row);
    }

    #[test]
    fn recover_skips_committed_lines_and_a_torn_end() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), 0, owned(dir.path())).unwrap();
        for n in 1..=5 {
            let (row, charges) = full_row(n);
            assert_eq!(journal.append(row, charges, |seq, _, _| seq).unwrap(), n);
        }
        // A write cut short by a kill: half a line, no newline.
        let mut torn = Vec::new();
        let (row, charges) = full_row(6);
        encode(&mut torn, 6, &row, &charges).unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        file.write_all(&torn[..torn.len() / 2]).unwrap();

        let seqs = |committed| -> Vec<u64> {
            recover(dir.path(), committed)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(seqs(0), [1, 2, 3, 4, 5]);
        assert_eq!(seqs(3), [4, 5]);
        assert_eq!(seqs(5), Vec::<u64>::new());
        assert_eq!(recover(dir.path(), 4).unwrap()[0].row, full_row(5).0);
    }

    #[test]
    fn files_rotate_and_the_old_one_goes_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), 0, owned(dir.path())).unwrap();
        let old = dir.path().join(OLD_FILE_NAME);
        let mut n = 0;
        while journal.appender().len < ROTATE_AT {
            n += 1;
            let (row, charges) = full_row(n);
            journal
                .append(row.clone(), charges.clone(), |_, _, _| ())
                .unwrap();
        }
        // Rows 1..=n-1 committed: the file is over the limit, so a new one starts.
        journal.committed_to(n - 1);
        assert!(old.exists());
        assert_eq!(journal.appender().len, 0);
        let (row, charges) = full_row(n + 1);
        journal
            .append(row.clone(), charges.clone(), |_, _, _| ())
            .unwrap();
        // Both files are read, in order.
        assert_eq!(recover(dir.path(), n - 1).unwrap().len(), 2);
        // The old file still holds row n, not yet committed: it stays.
        journal.committed_to(n - 1);
        assert!(old.exists());
        journal.committed_to(n);
        assert!(!old.exists(), "fully committed, so removed");
        assert_eq!(recover(dir.path(), n).unwrap().len(), 1);
        // A new journal starts empty, past what is committed.
        drop(journal);
        let journal = Journal::create(dir.path(), n + 1, owned(dir.path())).unwrap();
        assert_eq!(journal.appended(), n + 1);
        assert!(recover(dir.path(), 0).unwrap().is_empty());
    }

    #[test]
    fn readers_wait_for_the_writer_to_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::create(dir.path(), 0, owned(dir.path())).unwrap());
        let (row, charges) = full_row(1);
        journal
            .append(row.clone(), charges.clone(), |_, _, _| ())
            .unwrap();
        let writer = {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || journal.committed_to(1))
        };
        journal.wait_committed(Duration::from_secs(30));
        assert_eq!(journal.committed(), 1);
        writer.join().unwrap();
        // Nothing outstanding: returns at once; and a stuck writer only delays a reader.
        journal.wait_committed(Duration::from_secs(30));
        journal
            .append(row.clone(), charges.clone(), |_, _, _| ())
            .unwrap();
        journal.wait_committed(Duration::from_millis(1));
        assert_eq!(journal.committed(), 1);
    }
}
