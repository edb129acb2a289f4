//! The ledger's request-path cost: `reserve` + `commit` (what the handler pays before it
//! awaits), and the time until the row's `Durable` resolves (group commit on the writer thread).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use switchyard::budget::{
    BudgetSpec, Dimension, Ledger, MicroUsd, MonthId, OnLimit, Row, Scope, SqliteStore, Store,
    Tenant,
};

fn specs() -> Vec<BudgetSpec> {
    let spec = |name: &str, scope, tz: &str| BudgetSpec {
        name: Arc::from(name),
        scope,
        limit: MicroUsd(u64::MAX / 4),
        timezone: TimeZone::get(tz).unwrap(),
        on_limit: OnLimit::Reject,
        downgrade_at: None,
        warn_at: Vec::new(),
    };
    vec![
        spec("company", Scope::Global, "Asia/Kuala_Lumpur"),
        spec("per-team", Scope::Team, "UTC"),
        spec("per-key", Scope::Key, "UTC"),
    ]
}

const MODELS: [&str; 4] = ["llama-8b", "qwen-32b", "gpt-4o", "claude-sonnet"];
const TASKS: [&str; 11] = [
    "code",
    "math",
    "reasoning",
    "summarization",
    "translation",
    "extraction",
    "classification",
    "open_qa",
    "creative_writing",
    "brainstorming",
    "chat",
];

/// The `n`-th request's row. Key, model, task and day vary independently so that after ~1M rows
/// the `daily` rollup holds every combination of 30 days × 64 keys × 4 models × 11 tasks
/// (84,480 rows), a pessimistic dashboard case.
fn row(n: usize, tenant: &Tenant) -> Row {
    let day = i64::try_from((n / (64 * 4 * 11)) % 30).unwrap();
    Row {
        time: jiff::civil::date(2026, 11, 1)
            .at(12, 0, 0, 0)
            .to_zoned_datetime(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .checked_add(jiff::SignedDuration::from_hours(24 * day))
            .unwrap(),
        request_id: "01J00000000000000000000000".to_owned(),
        key: tenant.key.clone(),
        team: tenant.team.clone(),
        route: Arc::from("routine"),
        task: Some(TASKS[(n / (64 * 4)) % TASKS.len()].to_owned()),
        difficulty: Some("easy".to_owned()),
        difficulty_score: Some(0.12),
        model: Arc::from(MODELS[(n / 64) % MODELS.len()]),
        tier: "open".to_owned(),
        input_tokens: 812,
        output_tokens: 143,
        baseline_cost: MicroUsd(3_460),
        status: "ok".to_owned(),
        latency_ms: 420,
        ..Row::default()
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let now: Timestamp = "2026-11-15T12:00:00Z".parse().unwrap();
    let store = Store::Sqlite(SqliteStore::open(dir.path()).unwrap());
    let ledger = Ledger::open(store, specs(), now).unwrap();
    let tenants: Vec<Tenant> = (0..64)
        .map(|i| Tenant {
            key: Arc::from(format!("key-{i}")),
            team: Some(Arc::from(format!("team-{}", i % 8))),
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("ledger");
    group.measurement_time(Duration::from_secs(8));

    // What the handler pays inline: reserve + commit, the Durable not awaited. The writer keeps
    // up in the background; the flush after each sample is not timed.
    group.bench_function("reserve_commit", |b| {
        let mut n = 0usize;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let t = &tenants[n % tenants.len()];
                let r = reserve_now(&ledger, t, now);
                drop(r.commit(MicroUsd(4_000), row(n, t)));
                n += 1;
            }
            let elapsed = start.elapsed();
            rt.block_on(ledger.flush()).unwrap();
            elapsed
        });
    });

    // One request alone: reserve, commit, then wait until it is durable (in the journal): what
    // a non-streamed response waits for before it leaves.
    group.bench_function("reserve_commit_until_durable", |b| {
        let mut n = 0usize;
        b.iter(|| {
            let t = &tenants[n % tenants.len()];
            let r = reserve_now(&ledger, t, now);
            rt.block_on(r.commit(MicroUsd(4_000), row(n, t))).unwrap();
            n += 1;
        });
    });

    // The same, then until SQLite holds it (a flush): what a response waited for before the
    // journal, and what a dashboard read right after a request waits for.
    group.bench_function("reserve_commit_until_in_sqlite", |b| {
        let mut n = 0usize;
        b.iter(|| {
            let t = &tenants[n % tenants.len()];
            let r = reserve_now(&ledger, t, now);
            rt.block_on(r.commit(MicroUsd(4_000), row(n, t))).unwrap();
            rt.block_on(ledger.flush()).unwrap();
            n += 1;
        });
    });

    // The dashboard's read: one month grouped by a dimension, over whatever the runs above wrote
    // (typically ~1M `requests` rows and the full 84,480-row `daily` rollup).
    eprintln!(
        "requests rows before month_rows: {}",
        ledger.store().request_count().unwrap()
    );
    let november = MonthId::new(2026, 11).unwrap();
    group.bench_function("month_rows_by_model", |b| {
        b.iter(|| {
            ledger
                .store()
                .month_rows(november, Dimension::Model)
                .unwrap()
        });
    });
    group.bench_function("month_rows_by_key", |b| {
        b.iter(|| ledger.store().month_rows(november, Dimension::Key).unwrap());
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

/// With SQLite a reserve never waits: its future is ready on first poll, so this measures the
/// reserve itself, not a runtime.
fn reserve_now(
    ledger: &Ledger,
    t: &Tenant,
    now: jiff::Timestamp,
) -> switchyard::budget::Reservation {
    futures_util::FutureExt::now_or_never(ledger.reserve(t, MicroUsd(10_000), now))
        .expect("SQLite reserves are immediate")
        .expect("the bench budgets have room")
}
