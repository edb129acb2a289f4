//! Every `/api/v1` call over a ledger of one million requests (generated directly in SQLite,
//! with its rollups), through the real admin listener on loopback. Prints the median and the
//! worst of 20 calls per endpoint and fails if any call takes more than 200 ms.
//!
//! `cargo bench --bench dashboard_api` (figures in docs/BENCHMARKS.md, "Dashboard API").
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const ROWS: u64 = 1_000_000;
const CALLS: usize = 20;
const LIMIT: Duration = Duration::from_millis(200);

const POLICY: &str = r#"version: 1
providers:
  local: { kind: openai, base_url: "http://127.0.0.1:9/v1" }
  cloud: { kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: "sk-bench" }
models:
  llama-8b: { provider: local, model: l8, tier: open, price: { input: 0.1, output: 0.2 } }
  qwen-32b: { provider: local, model: q32, tier: open, price: { input: 0.3, output: 0.6 } }
  gpt-4o: { provider: cloud, model: g4o, tier: frontier, price: { input: 2.5, output: 10 } }
  claude-sonnet: { provider: cloud, model: cs, tier: frontier, price: { input: 3, output: 15 } }
routes:
  - { name: hard, when: { difficulty: hard }, use: [gpt-4o, claude-sonnet] }
  - { name: routine, use: [llama-8b, qwen-32b] }
baseline: gpt-4o
budgets:
  - { name: company, limit_usd: 100000, warn_at: [0.5, 0.8] }
  - { name: per-team, scope: team, limit_usd: 20000 }
  - { name: per-key, scope: key, limit_usd: 5000 }
"#;

/// One million rows in November 2026: 30 days × 64 keys (8 teams) × 4 models × 11 tasks × 3
/// difficulties vary independently, so the `daily` rollup holds 84,480 rows (every
/// day × key × model × task) — a pessimistic dashboard case — and `daily_class` 990.
fn generate(dir: &std::path::Path) {
    drop(switchyard::budget::SqliteStore::open(dir).unwrap()); // creates and migrates
    let db = rusqlite::Connection::open(dir.join("ledger.sqlite3")).unwrap();
    let started = Instant::now();
    db.execute_batch(&format!(
        r#"
        PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
        BEGIN;
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
        INSERT INTO requests (time_us, request_id, key, team, route, task, difficulty,
            difficulty_score, model, tier, input_tokens, cached_input_tokens, output_tokens, cost,
            baseline_cost, status, latency_ms, estimated, overshoot, budgets)
        SELECT 1793491200000000 + ((i / 2816) % 30) * 86400000000 + (i % 86400) * 1000000,
               'req-' || i, 'key-' || (i % 64), 'team-' || (i % 8),
               CASE WHEN (i / 64) % 4 < 2 THEN 'routine' ELSE 'hard' END,
               json_extract('["code","math","reasoning","summarization","translation","extraction","classification","open_qa","creative_writing","brainstorming","chat"]', '$[' || ((i / 256) % 11) || ']'),
               json_extract('["easy","medium","hard"]', '$[' || (i % 3) || ']'), 0.5,
               json_extract('["llama-8b","qwen-32b","gpt-4o","claude-sonnet"]', '$[' || ((i / 64) % 4) || ']'),
               CASE WHEN (i / 64) % 4 < 2 THEN 'open' ELSE 'frontier' END,
               400 + i % 800, 0, 200 + i % 300, 100 + i % 5000, 6000, 'ok', 50 + i % 900, 0, 0,
               '2026-11' || char(9) || 'company' || char(9) || 'global'
        FROM n;
        INSERT INTO daily (day, key, team, route, model, task, tier, requests, input_tokens,
            cached_input_tokens, output_tokens, cost, baseline_cost)
        SELECT strftime('%Y-%m-%d', time_us / 1000000, 'unixepoch'), key, COALESCE(team, ''), route,
               model, COALESCE(task, ''), tier, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens),
               SUM(output_tokens), SUM(cost), SUM(baseline_cost)
        FROM requests GROUP BY 1, 2, 3, 4, 5, 6, 7;
        INSERT INTO daily_class (day, task, difficulty, requests, cost)
        SELECT strftime('%Y-%m-%d', time_us / 1000000, 'unixepoch'), task, difficulty, COUNT(*), SUM(cost)
        FROM requests GROUP BY 1, 2, 3;
        INSERT INTO spend_by_budget (month, budget, scope_id, spent, overshoot, requests)
        SELECT '2026-11', 'company', 'global', SUM(cost), 0, COUNT(*) FROM requests;
        INSERT INTO spend_by_budget (month, budget, scope_id, spent, overshoot, requests)
        SELECT '2026-11', 'per-team', team, SUM(cost), 0, COUNT(*) FROM requests GROUP BY team;
        INSERT INTO spend_by_budget (month, budget, scope_id, spent, overshoot, requests)
        SELECT '2026-11', 'per-key', key, SUM(cost), 0, COUNT(*) FROM requests GROUP BY key;
        COMMIT;
        PRAGMA wal_checkpoint(TRUNCATE);
        "#,
        last = ROWS - 1
    ))
    .unwrap();
    let count = |table: &str| -> u64 {
        db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    println!(
        "generated {} requests ({} daily, {} daily_class rows) in {:.1} s",
        count("requests"),
        count("daily"),
        count("daily_class"),
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let policy = switchyard::Policy::from_yaml("bench.yaml", POLICY, &|_| None).unwrap();
        let now: jiff::Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
        let clock: switchyard::Clock = Arc::new(move || now);
        let state =
            switchyard::state_with_clock(policy, switchyard::Limits::default(), dir.path(), clock)
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(switchyard::dashboard::serve(
            listener,
            state,
            switchyard::dashboard::Admin::default(),
            std::future::pending(),
        ));
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let paths = [
            "/api/v1/budgets",
            "/api/v1/budgets?month=2026-10",
            "/api/v1/spend?by=task",
            "/api/v1/spend?by=model",
            "/api/v1/spend?by=route",
            "/api/v1/spend?by=team",
            "/api/v1/spend?by=key",
            "/api/v1/spend?by=tier",
            "/api/v1/daily",
            "/api/v1/grid",
            "/api/v1/recent?limit=50",
            "/api/v1/recent?limit=500",
            "/api/v1/policy",
        ];
        let mut worst_overall = Duration::ZERO;
        println!(
            "{:<32} {:>10} {:>10} {:>9}",
            "endpoint", "median ms", "max ms", "bytes"
        );
        for path in paths {
            let mut times = Vec::with_capacity(CALLS);
            let mut bytes = 0;
            for _ in 0..CALLS {
                let started = Instant::now();
                let req = http::Request::get(format!("http://{addr}{path}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let rsp = client.request(req).await.unwrap();
                assert!(rsp.status().is_success(), "{path}: {}", rsp.status());
                bytes = rsp.into_body().collect().await.unwrap().to_bytes().len();
                times.push(started.elapsed());
            }
            times.sort();
            let (median, max) = (times[CALLS / 2], times[CALLS - 1]);
            worst_overall = worst_overall.max(max);
            println!(
                "{path:<32} {:>10.1} {:>10.1} {bytes:>9}",
                median.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            );
        }
        println!(
            "worst call: {:.1} ms (limit {} ms)",
            worst_overall.as_secs_f64() * 1e3,
            LIMIT.as_millis()
        );
        assert!(
            worst_overall <= LIMIT,
            "a dashboard call took longer than {LIMIT:?}"
        );
    });
}
