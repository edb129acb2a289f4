//! `simulate` on a generated ledger with a known answer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use switchyard::budget::{Ledger, MicroUsd, MonthId, Row, SqliteStore, Store};

const POLICY: &str = "version: 1
providers:
  p: { kind: openai, base_url: \"http://127.0.0.1:1/v1\" }
models:
  small: { provider: p, model: s, tier: open, price: { input: 0, output: 100 } }
  big: { provider: p, model: b, tier: frontier, price: { input: 0, output: 400 } }
routes:
  - { name: cheap-summaries, when: { task: summarization }, use: [small] }
  - { name: default, use: [big] }
budgets:
  - { name: company, limit_usd: 3 }
";

#[tokio::test]
async fn moving_summarization_to_the_open_model_changes_cost_by_exactly_the_computed_amount() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Sqlite(SqliteStore::open(dir.path()).unwrap());
    let now: jiff::Timestamp = "2026-11-10T12:00:00Z".parse().unwrap();
    let ledger = Ledger::open(store, Vec::new(), now).unwrap();
    // Fifteen requests recorded on `big` (1,000 output tokens at $400/M = $0.40 each), one a
    // day from 1 November: ten summaries, then five code requests.
    for i in 0..15u64 {
        let task = if i < 10 { "summarization" } else { "code" };
        let time: jiff::Timestamp = format!("2026-11-{:02}T10:00:00Z", i + 1).parse().unwrap();
        drop(ledger.record(Row {
            time,
            request_id: format!("r{i}"),
            key: Arc::from("app"),
            route: Arc::from("default"),
            task: Some(task.to_owned()),
            difficulty: Some("easy".to_owned()),
            model: Arc::from("big"),
            tier: "frontier".to_owned(),
            output_tokens: 1_000,
            cost: MicroUsd(400_000),
            status: "ok".to_owned(),
            ..Row::default()
        }));
    }
    // A refused request is not traffic to re-decide.
    drop(ledger.record(Row {
        time: now,
        status: "rejected".to_owned(),
        ..Row::default()
    }));
    ledger.flush().await.unwrap();

    let policy = switchyard::Policy::from_yaml("new.yaml", POLICY, &|_| None).unwrap();
    let (from, to) =
        switchyard::simulate::month_bounds(MonthId::parse("2026-11").unwrap()).unwrap();
    let served = ledger.store().served_between(from, to).unwrap();
    assert_eq!(served.len(), 15);
    let sim = switchyard::simulate::simulate(&policy, &served, &|_| Some("frontier"));
    assert_eq!(sim.old_cost, MicroUsd(6_000_000));
    // Ten summaries now at $0.10 each, five code requests still at $0.40.
    assert_eq!(sim.new_cost, MicroUsd(3_000_000));
    assert_eq!(sim.by_task["summarization"].new_cost, MicroUsd(1_000_000));
    assert_eq!(sim.by_task["code"].new_cost, MicroUsd(2_000_000));
    assert_eq!(sim.new_by_tier["open"], 10);
    assert_eq!(sim.old_by_tier["frontier"], 15);
    let b = &sim.budgets[0];
    assert_eq!(b.budget, "company");
    assert_eq!(
        b.old_capped_on.as_deref(),
        Some("2026-11-08"),
        "$3 reached by the 8th request at $0.40"
    );
    assert_eq!(
        b.new_capped_on.as_deref(),
        Some("2026-11-15"),
        "exactly $3 after the last request"
    );
    let json = serde_json::to_value(&sim).unwrap();
    assert_eq!(json["new_cost_usd"], 3.0);
}
