//! Several replicas over one PostgreSQL schema: one cap for all, and the holds of a replica
//! that stopped are released.

use std::time::Instant;

use super::*;

const NOW: &str = "2026-11-15T12:00:00Z";

fn replica(schema: &PgSchema, name: &str, specs: Vec<BudgetSpec>, ttl: Duration) -> Ledger {
    Ledger::open(schema.store(name, ttl), specs, ts(NOW)).unwrap()
}

#[test]
fn three_replicas_hold_one_cap_and_answer_alike() {
    const AMOUNT: u64 = 1_000;
    const CAP: u64 = 100 * AMOUNT;
    let schema = PgSchema::new();
    let specs = vec![
        spec("company", Scope::Global, CAP, "UTC"),
        spec("per-key", Scope::Key, CAP / 2, "UTC"),
    ];
    let replicas: Vec<Ledger> = ["a", "b", "c"]
        .iter()
        .map(|n| replica(&schema, n, specs.clone(), Duration::from_secs(60)))
        .collect();
    // 2 threads per replica, 30 attempts each: 180 attempts for room of 100.
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let ledger = replicas[i % 3].clone();
            std::thread::spawn(move || {
                let t = tenant(&format!("key-{}", i % 4), None);
                let mut committed = 0;
                for n in 0..30 {
                    if let Ok(r) = ledger.reserve_now(&t, MicroUsd(AMOUNT), ts(NOW)) {
                        // Half the requests cost less than their hold.
                        let actual = if n % 2 == 0 { AMOUNT } else { AMOUNT / 2 };
                        r.commit(MicroUsd(actual), row(&format!("{i}-{n}"), "ok", ts(NOW)))
                            .wait_blocking()
                            .unwrap();
                        committed += actual;
                    }
                }
                committed
            })
        })
        .collect();
    let committed: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(committed <= CAP, "{committed} over the cap {CAP}");
    // Each hold asked for AMOUNT: the cap refuses only when less than AMOUNT is left.
    assert!(
        committed > CAP - AMOUNT,
        "{committed}: the cap refused too early"
    );
    let answers: Vec<Vec<(String, String, u64, u64)>> = replicas
        .iter()
        .map(|l| {
            l.refresh(ts(NOW)).unwrap();
            l.all_status(ts(NOW))
                .iter()
                .map(|s| {
                    (
                        s.budget.to_string(),
                        s.scope_id.to_string(),
                        s.spent.0,
                        s.held.0,
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
    assert_eq!(
        answers[0][0],
        ("company".into(), "global".into(), committed, 0)
    );
    let store = replicas[0].store();
    assert_eq!(store.sum_cost().unwrap(), MicroUsd(committed));
    let audit = store.audit().unwrap();
    assert_eq!(
        audit.from_requests,
        audit
            .from_rollup
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .collect()
    );
}

#[test]
fn a_replica_restarted_under_its_id_releases_what_it_held() {
    let schema = PgSchema::new();
    let specs = vec![spec("company", Scope::Global, 10_000, "UTC")];
    let a = replica(&schema, "a", specs.clone(), Duration::from_secs(60));
    let b = replica(&schema, "b", specs.clone(), Duration::from_secs(60));
    let t = tenant("k", None);
    let kept = a.reserve_now(&t, MicroUsd(3_000), ts(NOW)).unwrap();
    // "Crash" b with a reservation outstanding: it is never settled.
    std::mem::forget(b.reserve_now(&t, MicroUsd(6_000), ts(NOW)).unwrap());
    assert!(
        a.reserve_now(&t, MicroUsd(2_000), ts(NOW)).is_err(),
        "9k of 10k held"
    );
    let b2 = replica(&schema, "b", specs, Duration::from_secs(60));
    let Store::Postgres(pg) = b2.store() else {
        unreachable!()
    };
    assert_eq!(
        pg.held_total().unwrap(),
        (MicroUsd(3_000), 1),
        "b's hold released, a's kept"
    );
    drop(a.reserve_now(&t, MicroUsd(7_000), ts(NOW)).unwrap());
    block_on(kept.commit(MicroUsd(2_500), row("r", "ok", ts(NOW)))).unwrap();
    b2.refresh(ts(NOW)).unwrap();
    let s = &b2.status(&t, ts(NOW))[0];
    assert_eq!((s.spent, s.held), (MicroUsd(2_500), MicroUsd::ZERO));
}

#[test]
fn holds_of_a_replica_not_seen_for_the_ttl_are_released_by_the_others() {
    let schema = PgSchema::new();
    let specs = vec![spec("company", Scope::Global, 10_000, "UTC")];
    let live = replica(&schema, "live", specs.clone(), Duration::from_millis(400));
    let t = tenant("k", None);
    let kept = live.reserve_now(&t, MicroUsd(1_000), ts(NOW)).unwrap();
    // A replica that registered, reserved, and stopped heartbeating long ago.
    block_on(async {
        let client = pg_admin().await;
        client
            .batch_execute(&format!(
                "SET search_path = {s};
                 INSERT INTO replicas VALUES ('ghost', now() - interval '1 hour');
                 SELECT sy_reserve('ghost', 4000, ARRAY['2026-11'], ARRAY['company'],
                                   ARRAY['global'], ARRAY[10000::bigint]);",
                s = schema.name
            ))
            .await
            .unwrap();
    });
    let Store::Postgres(pg) = live.store() else {
        unreachable!()
    };
    // The live replica's heartbeat (every ttl / 4) releases the ghost's hold, never its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg.held_total().unwrap() != (MicroUsd(1_000), 1) {
        assert!(
            Instant::now() < deadline,
            "ghost hold not released: {:?}",
            pg.held_total()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    block_on(kept.commit(MicroUsd(1_000), row("r", "ok", ts(NOW)))).unwrap();
    assert_eq!(pg.held_total().unwrap(), (MicroUsd::ZERO, 0));
}

#[test]
fn replicas_starting_together_migrate_once() {
    let schema = PgSchema::new();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let url = schema.url();
            std::thread::spawn(move || {
                let options = PgOptions {
                    url,
                    replica: format!("r{i}"),
                    ttl: Duration::from_secs(60),
                    ca_file: None,
                };
                block_on(PgStore::connect(
                    options,
                    crate::budget::MonthId::new(2026, 11).unwrap(),
                ))
                .map(drop)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let versions: i64 = block_on(async {
        let client = pg_admin().await;
        client
            .query_one(
                &format!("SELECT COUNT(*) FROM {}.schema_version", schema.name),
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(versions, 1);
}
