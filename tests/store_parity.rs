//! The same traffic written through a SQLite ledger and a PostgreSQL one reads back the same:
//! `report` (every dimension, with budgets), `simulate`, and the store reads the dashboard uses.
//!
//! Needs PostgreSQL: `SWITCHYARD_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`
//! (trust auth). The test makes its own schema and drops it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use switchyard::budget::{Ledger, MicroUsd, MonthId, Row, Store, Tenant};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

const POLICY: &str = "version: 1
providers:
  p: { kind: openai, base_url: \"http://127.0.0.1:1/v1\" }
models:
  small: { provider: p, model: s, tier: open, price: { input: 0, output: 100 } }
  big: { provider: p, model: b, tier: frontier, price: { input: 0, output: 400 } }
routes:
  - { name: cheap, when: { task: summarization }, use: [small] }
  - { name: default, use: [big] }
budgets:
  - { name: company, limit_usd: 50 }
  - { name: per-team, scope: team, limit_usd: 20 }
  - { name: per-key, scope: key, limit_usd: 8 }
";

/// The same requests, through `ledger`: reserved, then committed, released or dropped; plus
/// refusals recorded without a reservation. Times span October and November 2026, plus one
/// request per tenant at `now`, so that the current month has spend in every budget scope
/// whatever the date the test runs on.
async fn traffic(ledger: &Ledger, now: jiff::Timestamp) {
    let tenants = [
        ("app-a", Some("search")),
        ("app-b", Some("search")),
        ("app-c", Some("mail")),
        ("batch", None),
    ];
    let tasks = ["summarization", "code", "chat", "extraction"];
    for i in 0..120u64 {
        let (key, team) = tenants[(i % 4) as usize];
        let tenant = Tenant {
            key: Arc::from(key),
            team: team.map(Arc::from),
        };
        let day = if i < 20 { 20 + i % 10 } else { 1 + i % 25 };
        let month = if i < 20 { 10 } else { 11 };
        let time: jiff::Timestamp = format!("2026-{month:02}-{day:02}T{:02}:30:00Z", i % 24)
            .parse()
            .unwrap();
        let task = tasks[(i % 4) as usize];
        let (model, tier) = if task == "summarization" {
            ("small", "open")
        } else {
            ("big", "frontier")
        };
        let row = Row {
            time,
            request_id: format!("r{i}"),
            key: tenant.key.clone(),
            team: tenant.team.clone(),
            route: Arc::from(if tier == "open" { "cheap" } else { "default" }),
            task: Some(task.to_owned()),
            difficulty: Some(["easy", "medium", "hard"][(i % 3) as usize].to_owned()),
            difficulty_score: Some(0.25),
            model: Arc::from(model),
            tier: tier.to_owned(),
            input_tokens: 100 + i,
            cached_input_tokens: i % 7,
            output_tokens: 200 + 3 * i,
            baseline_cost: MicroUsd(90_000 + i),
            status: "ok".to_owned(),
            latency_ms: 40 + i,
            reason: format!("route {i}"),
            ..Row::default()
        };
        match ledger.reserve(&tenant, MicroUsd(150_000), time).await {
            Ok(r) => match i % 10 {
                7 => r
                    .release(Row {
                        status: "upstream_error".to_owned(),
                        ..row
                    })
                    .await
                    .unwrap(),
                9 => drop(r),
                _ => r.commit(MicroUsd(40_000 + 997 * i), row).await.unwrap(),
            },
            Err(_) => drop(ledger.record(Row {
                status: "rejected".to_owned(),
                ..row
            })),
        }
    }
    for (i, (key, team)) in tenants.into_iter().enumerate() {
        let tenant = Tenant {
            key: Arc::from(key),
            team: team.map(Arc::from),
        };
        let row = Row {
            time: now,
            request_id: format!("now{i}"),
            key: tenant.key.clone(),
            team: tenant.team.clone(),
            route: Arc::from("default"),
            model: Arc::from("big"),
            tier: "frontier".to_owned(),
            input_tokens: 10,
            output_tokens: 20,
            status: "ok".to_owned(),
            ..Row::default()
        };
        let held = ledger
            .reserve(&tenant, MicroUsd(10_000), now)
            .await
            .unwrap();
        held.commit(MicroUsd(8_000), row).await.unwrap();
    }
    ledger.flush().await.unwrap();
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgresql_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(&policy_path, POLICY).unwrap();
    let policy = switchyard::Policy::load(&policy_path).unwrap();
    let data = dir.path().join("data");

    let schema = support::Schema::new("parity").await;
    let url = schema.url();

    let start: jiff::Timestamp = "2026-10-20T00:00:00Z".parse().unwrap();
    let now = jiff::Timestamp::now();
    let ttl = Duration::from_secs(60);
    let mut ledgers = Vec::new();
    for store_url in [None, Some(url.as_str())] {
        let store = Store::open(store_url, &data, "parity", ttl, None)
            .await
            .unwrap();
        let ledger = Ledger::open(store, policy.budgets.clone(), start).unwrap();
        traffic(&ledger, now).await;
        ledgers.push(ledger);
    }

    // The store reads behind the dashboard.
    let reads = |ledger: Ledger| {
        tokio::task::spawn_blocking(move || {
            let store = ledger.store();
            let nov = MonthId::parse("2026-11").unwrap();
            let oct = MonthId::parse("2026-10").unwrap();
            let before: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
            (
                format!("{:?}", store.month_days(nov).unwrap()),
                format!("{:?}", store.month_grid(nov).unwrap()),
                format!("{:?}", store.recent(before, 50).unwrap()),
                format!("{:?}", store.month_spend(nov).unwrap()),
                format!("{:?}", store.month_spend(oct).unwrap()),
                store.sum_cost().unwrap(),
                store.request_count().unwrap(),
            )
        })
    };
    let sqlite = reads(ledgers[0].clone()).await.unwrap();
    let postgres = reads(ledgers[1].clone()).await.unwrap();
    assert!(sqlite.6 > 100, "{} rows", sqlite.6);
    assert_eq!(sqlite, postgres);
    drop(ledgers);

    // The commands, on each store.
    let data = data.to_str().unwrap();
    let policy = policy_path.to_str().unwrap();
    for by in ["task", "model", "route", "team", "key", "tier"] {
        for month in ["2026-10", "2026-11"] {
            let args = ["report", "--policy", policy, "--month", month, "--by", by];
            let args_json = [&args[..], &["--format", "json"]].concat();
            assert_eq!(
                run(&[&args_json[..], &["--data-dir", data]].concat()),
                run(&[&args_json[..], &["--store", &url]].concat()),
                "report --by {by} --month {month}"
            );
        }
    }
    // A past month's report lists how every budget that spent stood at the month's end; the
    // current month's report, how it stands now; alike on both stores (compared above for
    // past months, here for the current one).
    let november = run(&[
        "report", "--policy", policy, "--month", "2026-11", "--by", "key", "--format", "json",
        "--store", &url,
    ]);
    for scope in [
        "\"per-team\"",
        "\"search\"",
        "\"mail\"",
        "\"app-c\"",
        "\"company\"",
    ] {
        assert!(november.contains(scope), "{scope} missing: {november}");
    }
    let current = jiff::tz::TimeZone::UTC
        .to_datetime(now)
        .strftime("%Y-%m")
        .to_string();
    let args = [
        "report", "--policy", policy, "--month", &current, "--by", "key", "--format", "json",
    ];
    let on_pg = run(&[&args[..], &["--store", &url]].concat());
    assert_eq!(run(&[&args[..], &["--data-dir", data]].concat()), on_pg);
    for budget in [
        "\"company\"",
        "\"per-team\"",
        "\"per-key\"",
        "\"mail\"",
        "\"app-c\"",
    ] {
        assert!(on_pg.contains(budget), "{budget} missing: {on_pg}");
    }
    for month in ["2026-10", "2026-11"] {
        let args = ["simulate", "--policy", policy, "--month", month, "--json"];
        assert_eq!(
            run(&[&args[..], &["--data-dir", data]].concat()),
            run(&[&args[..], &["--store", &url]].concat()),
            "simulate --month {month}"
        );
    }

    schema.drop_schema().await;
}
