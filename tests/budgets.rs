//! Budgets through the real server: caps that hold under concurrency, downgrade, streamed and
//! cut-off requests charged, month rollover in the budget's time zone, virtual keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;

use futures_util::future::join_all;
use http::StatusCode;
use serde_json::json;
use support::*;

/// Output tokens at $400 per million: a request with `max_tokens: 10` reserves $0.004 and,
/// answering 5 tokens, costs $0.002.
fn capped_policy(url: &str, budgets: &str) -> String {
    format!(
        "version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{url}\" }}\nmodels:\n  m: {{ provider: p, model: up, tier: open, price: {{ input: 0, output: 400 }} }}\nroutes:\n  - {{ name: main, use: [m] }}\nbudgets:\n{budgets}"
    )
}

fn small_request() -> String {
    json!({"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_never_overshoot_a_one_dollar_cap() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let p = proxy(&capped_policy(
        &up.url(),
        "  - { name: company, limit_usd: 1, on_limit: reject }\n",
    ))
    .await;
    let url = p.url("/v1/chat/completions");
    let answers = join_all((0..500).map(|_| {
        let url = url.clone();
        async move { post(&url, small_request(), &[]).await }
    }))
    .await;
    let ok: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .collect();
    let refused: Vec<_> = answers
        .iter()
        .filter(|a| a.status != StatusCode::OK)
        .collect();
    for r in &refused {
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let e = r.json();
        assert_eq!(e["error"]["type"], "insufficient_quota");
        assert_eq!(e["error"]["code"], "budget_exceeded");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("`company`") && message.contains("resets at"),
            "{message}"
        );
    }
    assert!(
        !ok.is_empty() && !refused.is_empty(),
        "the cap was reached: {} ok, {} refused",
        ok.len(),
        refused.len()
    );
    let charged: u64 = ok
        .iter()
        .map(|a| (a.header("x-switchyard-cost-usd").parse::<f64>().unwrap() * 1e6).round() as u64)
        .sum();
    let rows = ledger_rows(&p).await;
    let committed: u64 = rows.iter().map(|r| r.5).sum();
    assert!(
        committed <= 1_000_000,
        "committed {committed} µ$ over a $1 cap"
    );
    assert_eq!(
        committed, charged,
        "every 200 is in the ledger at the price it was told"
    );
    assert_eq!(rows.iter().filter(|r| r.4 == "ok").count(), ok.len());
    assert_eq!(
        rows.iter().filter(|r| r.4 == "rejected").count(),
        refused.len(),
        "every refusal leaves a row"
    );
    assert_eq!(p.state.ledger.store().sum_cost().unwrap().0, committed);
}

#[tokio::test]
async fn a_downgrade_budget_re_decides_among_cheaper_models() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let policy = format!(
        "version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  big: {{ provider: p, model: big-up, tier: frontier, price: {{ input: 0, output: 900 }} }}\n  small: {{ provider: p, model: small-up, tier: open, price: {{ input: 0, output: 100 }} }}\nroutes:\n  - {{ name: main, use: [big] }}\nbudgets:\n  - {{ name: team-cap, limit_usd: 0.005, on_limit: downgrade }}\n",
        up.url()
    );
    let p = proxy(&policy).await;
    // big reserves 10 × $900/M = $0.009 > $0.005; small reserves $0.001 and fits.
    let rsp = post(&p.url("/v1/chat/completions"), small_request(), &[]).await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.header("x-switchyard-model"), "small");
    assert_eq!(up.requests()[0].json()["model"], "small-up");
    // 5 tokens × $100/M = $0.0005 spent; $0.0045 left.
    assert_eq!(rsp.header("x-switchyard-budget-remaining-usd"), "0.004500");
    p.state.ledger.flush().await.unwrap();
    let db = rusqlite::Connection::open(p.data_dir.path().join("ledger.sqlite3")).unwrap();
    let reason: String = db
        .query_row("SELECT reason FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        reason,
        "route `main` matched; model `big` skipped: its worst-case cost does not fit a budget; downgraded to `small`: a budget is at its cap",
        "the ledger says why"
    );
    let dry = post(
        &p.url("/v1/chat/completions"),
        small_request(),
        &[("x-switchyard-dry-run", "1")],
    )
    .await;
    assert_eq!(
        dry.json()["route"],
        "main",
        "a dry run calls nothing and reserves nothing"
    );
    // The request path skips naming signals; a dry run, which shows them, does not.
    assert!(
        dry.json()["classification"]["signals"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{}",
        dry.json()
    );
}

#[tokio::test]
async fn a_reject_budget_refuses_even_when_a_cheaper_model_exists() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let policy = format!(
        "version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  big: {{ provider: p, model: big-up, tier: frontier, price: {{ input: 0, output: 900 }} }}\n  small: {{ provider: p, model: small-up, tier: open, price: {{ input: 0, output: 100 }} }}\nroutes:\n  - {{ name: main, use: [big] }}\nbudgets:\n  - {{ name: hard-cap, limit_usd: 0.005 }}\n",
        up.url()
    );
    let p = proxy(&policy).await;
    let rsp = post(&p.url("/v1/chat/completions"), small_request(), &[]).await;
    assert_eq!(rsp.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn streamed_requests_are_charged_from_streamed_usage() {
    let up = mock(|_| Reply::Sse {
        events: openai_stream(&["a", "b"], Some((7, 5))),
        gate: None,
    })
    .await;
    let p = proxy(&capped_policy(
        &up.url(),
        "  - { name: company, limit_usd: 10 }\n",
    ))
    .await;
    let mut req: serde_json::Value = serde_json::from_str(&small_request()).unwrap();
    req["stream"] = json!(true);
    let rsp = post(&p.url("/v1/chat/completions"), req.to_string(), &[]).await;
    assert!(String::from_utf8_lossy(&rsp.body).ends_with("data: [DONE]\n\n"));
    let rows = ledger_rows(&p).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].4.as_str(), rows[0].5, rows[0].6),
        ("ok", 2_000, 5),
        "5 streamed tokens × $400/M"
    );
    assert_eq!(
        rsp.header("x-switchyard-budget-remaining-usd"),
        "9.996000",
        "the hold, while streaming"
    );
}

#[tokio::test]
async fn a_client_hanging_up_mid_stream_is_charged_in_the_ledger() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let words: Vec<String> = (0..40).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let events = openai_stream(&refs, None);
    let up = mock(move |_| Reply::Sse {
        events: events.clone(),
        gate: Some((3, g.clone())),
    })
    .await;
    let p = proxy(&capped_policy(
        &up.url(),
        "  - { name: company, limit_usd: 10 }\n",
    ))
    .await;
    let mut req: serde_json::Value = serde_json::from_str(&small_request()).unwrap();
    req["stream"] = json!(true);
    let mut rsp = post_raw(&p.url("/v1/chat/completions"), req.to_string(), &[]).await;
    next_chunk(rsp.body_mut()).await.unwrap();
    drop(rsp);
    gate.notify_one();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        p.state.tally.recorded(1),
    )
    .await
    .unwrap();
    let rows = ledger_rows(&p).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].4, "client_gone");
    assert!(rows[0].5 > 0, "charged for what was generated");
}

#[tokio::test]
async fn the_month_resets_at_local_midnight_in_the_budgets_time_zone() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    // $0.005 fits one request's $0.004 hold; after it ($0.002 spent) the next hold does not fit.
    let budgets = "  - { name: kl, limit_usd: 0.005, timezone: Asia/Kuala_Lumpur }\n";
    // 15:59:59 UTC on 30 November is 23:59:59 in Kuala Lumpur (UTC+8).
    let (clock, now) = manual_clock("2026-11-30T15:59:59Z");
    let p = proxy_full(
        &capped_policy(&up.url(), budgets),
        switchyard::Limits::default(),
        clock,
    )
    .await;
    let url = p.url("/v1/chat/completions");
    assert_eq!(
        post(&url, small_request(), &[]).await.status,
        StatusCode::OK
    );
    let refused = post(&url, small_request(), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2026-11-30T16:00:00Z"),
        "names the reset time"
    );
    *now.lock().unwrap() = "2026-11-30T16:00:00Z".parse().unwrap(); // midnight, 1 December, in KL
    let fresh = post(&url, small_request(), &[]).await;
    assert_eq!(fresh.status, StatusCode::OK, "a new month starts at zero");
    assert_eq!(
        fresh.header("x-switchyard-budget-remaining-usd"),
        "0.003000"
    );
}

const KEY: &str = "sy-test-key-1";

fn keyed_policy(url: &str) -> String {
    let hash = switchyard::server::hash_key(KEY);
    format!(
        "{}keys:\n  - {{ name: search-backend, team: search, sha256: \"{hash}\" }}\n",
        capped_policy(
            url,
            "  - { name: per-key, scope: key, limit_usd: 1 }\n  - { name: per-team, scope: team, limit_usd: 1 }\n"
        )
    )
}

#[tokio::test]
async fn virtual_keys_authenticate_and_charge_their_key_and_team() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let p = proxy(&keyed_policy(&up.url())).await;
    let url = p.url("/v1/chat/completions");
    let bearer = format!("Bearer {KEY}");
    assert_eq!(
        post(&url, small_request(), &[("authorization", &bearer)])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(&url, small_request(), &[("x-api-key", KEY)])
            .await
            .status,
        StatusCode::OK
    );
    let rows = ledger_rows(&p).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.1 == "search-backend" && r.2.as_deref() == Some("search"))
    );
    assert!(
        !up.requests()[0]
            .headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap().contains(KEY)),
        "the virtual key never goes upstream"
    );
}

#[tokio::test]
async fn an_unknown_key_is_401_in_each_api_shape_and_never_echoed() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let p = proxy(&keyed_policy(&up.url())).await;
    let wrong = "sy-wrong-secret-value";
    let rsp = post(
        &p.url("/v1/chat/completions"),
        small_request(),
        &[("authorization", &format!("Bearer {wrong}"))],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(rsp.json()["error"]["code"], "invalid_api_key");
    assert!(!String::from_utf8_lossy(&rsp.body).contains(wrong));
    let rsp = post(&p.url("/v1/chat/completions"), small_request(), &[]).await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED, "no key at all");
    let msg =
        json!({"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let rsp = post(
        &p.url("/v1/messages"),
        msg.to_string(),
        &[("x-api-key", wrong)],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(rsp.json()["type"], "error");
    assert_eq!(rsp.json()["error"]["type"], "authentication_error");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_fallback_is_charged_to_the_same_budgets() {
    let bad = mock(|_| {
        Reply::Json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": {"message": "overloaded"}}),
        )
    })
    .await;
    let good = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let policy = format!(
        "version: 1\nproviders:\n  a: {{ kind: openai, base_url: \"{}\" }}\n  b: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  first: {{ provider: a, model: x, tier: open, price: {{ input: 0, output: 100 }} }}\n  second: {{ provider: b, model: y, tier: frontier, price: {{ input: 0, output: 400 }} }}\nroutes:\n  - {{ name: main, use: [first, second] }}\nbudgets:\n  - {{ name: company, limit_usd: 1 }}\n",
        bad.url(),
        good.url()
    );
    let p = proxy(&policy).await;
    let rsp = post(&p.url("/v1/chat/completions"), small_request(), &[]).await;
    assert_eq!(rsp.header("x-switchyard-model"), "second");
    let rows = ledger_rows(&p).await;
    assert_eq!(rows.len(), 1, "one row per request, fallbacks included");
    assert_eq!((rows[0].3.as_str(), rows[0].5), ("second", 2_000));
}

#[tokio::test]
async fn past_downgrade_at_frontier_models_serve_only_hard_requests() {
    let up = mock(|r| {
        let tokens = if r.json()["max_tokens"] == 2000 {
            1500
        } else {
            5
        };
        Reply::Json(StatusCode::OK, completion("ok", 3, tokens))
    })
    .await;
    let policy = format!(
        "version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  big: {{ provider: p, model: big-up, tier: frontier, price: {{ input: 0, output: 400 }} }}\n  small: {{ provider: p, model: small-up, tier: open, price: {{ input: 0, output: 100 }} }}\nrules:\n  - {{ name: vip, if: {{ header: {{ x-vip: yes }} }}, then: {{ difficulty: hard }} }}\n  - {{ name: easy, if: {{ min_input_tokens: 0 }}, then: {{ difficulty: easy }} }}\nroutes:\n  - {{ name: main, use: [big, small] }}\nbudgets:\n  - {{ name: company, limit_usd: 1, downgrade_at: 0.5 }}\n",
        up.url()
    );
    let p = proxy(&policy).await;
    let url = p.url("/v1/chat/completions");
    let big = json!({"model": "auto", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    // $0.60 spent on the frontier model: past the 50% mark.
    assert_eq!(
        post(&url, big, &[]).await.header("x-switchyard-model"),
        "big"
    );
    let easy = post(&url, small_request(), &[]).await;
    assert_eq!(
        easy.header("x-switchyard-model"),
        "small",
        "an easy request goes to the open model"
    );
    let hard = post(&url, small_request(), &[("x-vip", "yes")]).await;
    assert_eq!(
        hard.header("x-switchyard-model"),
        "big",
        "a hard request keeps the frontier model"
    );
}
