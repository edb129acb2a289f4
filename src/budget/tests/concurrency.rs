//! Concurrent reserves from OS threads cannot jointly overshoot a cap.

use super::*;

#[test]
fn eight_threads_cannot_jointly_overshoot_a_cap() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 200;
    const AMOUNT: u64 = 1_000;
    // Room for 1_000 of the 1_600 attempts.
    const CAP: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let now = ts("2026-11-15T12:00:00Z");
    let ledger = open(
        dir.path(),
        vec![
            spec("company", Scope::Global, CAP, "UTC"),
            spec("per-key", Scope::Key, CAP, "UTC"),
        ],
        now,
    );
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let t = tenant(&format!("key-{}", i % 2), None);
                let mut committed = 0;
                for n in 0..PER_THREAD {
                    if let Ok(r) = ledger.reserve(&t, MicroUsd(AMOUNT), now) {
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
    assert_eq!(committed, CAP, "exactly the cap fits, no more");
    let company = &ledger.status(&tenant("x", None), now)[0];
    assert_eq!(
        (company.spent, company.held),
        (MicroUsd(CAP), MicroUsd::ZERO)
    );
    block_on(ledger.flush()).unwrap();
    assert_eq!(ledger.store().sum_cost().unwrap(), MicroUsd(CAP));
    assert_eq!(ledger.store().request_count().unwrap(), CAP / AMOUNT);
}
