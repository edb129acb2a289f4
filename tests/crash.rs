//! kill -9 of the real binary mid-load loses no completed response's spend, and a restart
//! resumes the month's totals from the ledger.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use http::StatusCode;
use serde_json::json;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// Start `switchyard serve` on an ephemeral port; returns the child and its base URL.
fn serve(policy: &std::path::Path, data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--policy",
        ])
        .arg(policy)
        // The single-threaded runtime (one CPU, or `--threads 1`) under a kill -9 too.
        .env("SWITCHYARD_THREADS", "1")
        .arg("--data-dir")
        .arg(data_dir)
        .env("SWITCHYARD_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("switchyard listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    (child, url)
}

/// Eight clients in a loop until the server goes away; each completed response's request id
/// and charge (micro-dollars) is pushed to `completed`.
fn load(url: &str, completed: &Arc<Mutex<Vec<(String, u64)>>>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..8)
        .map(|_| {
            let (url, completed) = (url.to_owned(), completed.clone());
            tokio::spawn(async move {
                let client = client();
                loop {
                    let req = http::Request::post(url.as_str())
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(bytes::Bytes::from(request())))
                        .unwrap();
                    let Ok(rsp) = client.request(req).await else {
                        return;
                    };
                    let id = rsp.headers()["x-switchyard-request-id"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    let cost = rsp.headers().get("x-switchyard-cost-usd").map_or(0, |v| {
                        (v.to_str().unwrap().parse::<f64>().unwrap() * 1e6).round() as u64
                    });
                    use http_body_util::BodyExt;
                    if rsp.into_body().collect().await.is_err() {
                        return;
                    }
                    completed.lock().unwrap().push((id, cost));
                }
            })
        })
        .collect()
}

/// Resolves once `n` responses completed (or fails the test after a minute).
async fn until_completed(completed: &Arc<Mutex<Vec<(String, u64)>>>, n: usize) {
    let enough = async {
        while completed.lock().unwrap().len() < n {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), enough)
        .await
        .expect("responses");
}

/// A one-model policy on `up` with a $100 budget in `dir`; returns it and the data dir.
fn write_policy(dir: &tempfile::TempDir, up: &Mock) -> (std::path::PathBuf, std::path::PathBuf) {
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  m: {{ provider: p, model: up, tier: open, price: {{ input: 0, output: 400 }} }}\nroutes:\n  - {{ name: main, use: [m] }}\nbudgets:\n  - {{ name: company, limit_usd: 100 }}\n", up.url()),
    )
    .unwrap();
    (policy, dir.path().join("data"))
}

fn request() -> String {
    json!({"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_completed_spend_and_restart_resumes_totals() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let dir = tempfile::tempdir().unwrap();
    let (policy, data) = write_policy(&dir, &up);
    let (mut child, base) = serve(&policy, &data);
    let url = format!("{base}/v1/chat/completions");

    let completed: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let workers = load(&url, &completed);
    until_completed(&completed, 200).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let completed: HashMap<String, u64> = completed.lock().unwrap().iter().cloned().collect();

    // Restart: rows that were only in the journal at the kill are committed before it serves.
    let (mut child, base) = serve(&policy, &data);
    let db = rusqlite::Connection::open(data.join("ledger.sqlite3")).unwrap();
    let rows: HashMap<String, u64> = db
        .prepare("SELECT request_id, cost FROM requests WHERE status = 'ok'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (id, cost) in &completed {
        assert_eq!(
            rows.get(id),
            Some(cost),
            "completed response {id} is in the ledger at its price"
        );
    }
    assert!(
        rows.len() - completed.len() <= 8,
        "only requests in flight at the kill may be charged beyond those seen"
    );
    let committed: u64 = rows.values().sum();
    let rebuilt: u64 = db
        .query_row("SELECT SUM(spent) FROM spend_by_budget", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rebuilt, committed, "the budget rollup agrees with the rows");
    drop(db);

    // The month's spend is back, so the remaining budget continues from it.
    let rsp = post(&format!("{base}/v1/chat/completions"), request(), &[]).await;
    assert_eq!(rsp.status, StatusCode::OK);
    let remaining = (rsp
        .header("x-switchyard-budget-remaining-usd")
        .parse::<f64>()
        .unwrap()
        * 1e6)
        .round() as u64;
    assert_eq!(remaining, 100_000_000 - committed - 2_000);
    child.kill().unwrap();
    child.wait().unwrap();

    // `report` reads the same ledger.
    let out = Command::new(BIN)
        .args(["report", "--format", "json", "--by", "route", "--data-dir"])
        .arg(&data)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = (report["total"]["cost_usd"].as_f64().unwrap() * 1e6).round() as u64;
    assert_eq!(total, committed + 2_000);
    assert_eq!(report["rows"][0]["route"], "main");
    assert_eq!(report["budgets"][0]["budget"], "company");
    let spent = (report["budgets"][0]["spent_usd"].as_f64().unwrap() * 1e6).round() as u64;
    assert_eq!(spent, committed + 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_or_charges_in_flight_requests_and_exits_0() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let dir = tempfile::tempdir().unwrap();
    let (policy, data) = write_policy(&dir, &up);
    let (mut child, base) = serve(&policy, &data);
    let url = format!("{base}/v1/chat/completions");
    let completed: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let workers = load(&url, &completed);
    until_completed(&completed, 100).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    for w in workers {
        w.await.unwrap();
    }
    let completed = completed.lock().unwrap().clone();
    let db = rusqlite::Connection::open(data.join("ledger.sqlite3")).unwrap();
    let ok: std::collections::HashSet<String> = db
        .prepare("SELECT request_id FROM requests WHERE status = 'ok'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        completed.iter().all(|(id, _)| ok.contains(id)),
        "every completed request is charged"
    );
    let unsettled: u64 = db
        .query_row(
            "SELECT COUNT(*) FROM requests WHERE status = 'dropped'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        unsettled, 0,
        "in-flight requests finished rather than being dropped"
    );
}
