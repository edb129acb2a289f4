//! Concurrent reserves from OS threads cannot jointly overshoot a cap, on either store.

use super::*;

#[test]
fn eight_threads_cannot_jointly_overshoot_a_cap() {
    threads_cannot_jointly_overshoot_a_cap(Backend::Sqlite, 200);
}

#[test]
fn eight_threads_cannot_jointly_overshoot_a_cap_on_postgres() {
    threads_cannot_jointly_overshoot_a_cap(Backend::Postgres, 40);
}

fn threads_cannot_jointly_overshoot_a_cap(backend: Backend, per_thread: u64) {
    const THREADS: u64 = 8;
    const AMOUNT: u64 = 1_000;
    // Room for 5/8 of the attempts.
    let cap: u64 = THREADS * per_thread * AMOUNT * 5 / 8;
    let fixture = Fixture::new(backend);
    let now = ts("2026-11-15T12:00:00Z");
    let ledger = fixture.open(
        vec![
            spec("company", Scope::Global, cap, "UTC"),
            spec("per-key", Scope::Key, cap, "UTC"),
        ],
        now,
    );
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let t = tenant(&format!("key-{}", i % 2), None);
                let mut committed = 0;
                for n in 0..per_thread {
                    if let Ok(r) = ledger.reserve_now(&t, MicroUsd(AMOUNT), now) {
                        r.commit(MicroUsd(AMOUNT), row(&format!("{i}-{n}"), "ok", now))
                            .wait_blocking()
                            .unwrap();
                        committed += AMOUNT;
                    }
                }
                committed
            })
        })
        .collect();
    let committed: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(committed, cap, "exactly the cap fits, no more");
    ledger.refresh(now).unwrap();
    let company = &ledger.status(&tenant("x", None), now)[0];
    assert_eq!(
        (company.spent, company.held),
        (MicroUsd(cap), MicroUsd::ZERO)
    );
    block_on(ledger.flush()).unwrap();
    assert_eq!(ledger.store().sum_cost().unwrap(), MicroUsd(cap));
    assert_eq!(ledger.store().request_count().unwrap(), cap / AMOUNT);
}
