//! Operating policies safely: hot reload under load, refused reloads, SIGHUP-style reload that
//! keeps spend, shadow mode, and the escalation cascade.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;
use support::*;

fn two_model_policy(url: &str, route_to: &str, limit: &str) -> String {
    format!(
        "version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{url}\" }}\nmodels:\n  a: {{ provider: p, model: up-a, tier: open, price: {{ input: 0, output: 100 }} }}\n  b: {{ provider: p, model: up-b, tier: frontier, price: {{ input: 0, output: 400 }} }}\nroutes:\n  - {{ name: main, use: [{route_to}] }}\nbaseline: b\nbudgets:\n  - {{ name: company, limit_usd: {limit} }}\n"
    )
}

fn request() -> String {
    json!({"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

/// A proxy whose policy lives in a file it can reload.
async fn file_proxy(text: &str) -> (Proxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    let data = tempfile::tempdir().unwrap();
    let state = switchyard::state_from_file(
        &path,
        switchyard::Limits::default(),
        switchyard::budget::Store::open_sqlite(data.path()).unwrap(),
        switchyard::system_clock(),
    )
    .unwrap();
    (proxy_from_state(state, data).await, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_load_fails_no_request_and_the_new_route_is_used_after_the_swap() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let (p, dir) = file_proxy(&two_model_policy(&up.url(), "a", "100")).await;
    let url = p.url("/v1/chat/completions");
    let load: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..50 {
                    statuses.push(post(&url, request(), &[]).await.status);
                }
                statuses
            })
        })
        .collect();
    std::fs::write(
        dir.path().join("policy.yaml"),
        two_model_policy(&up.url(), "b", "100"),
    )
    .unwrap();
    p.state.reload().unwrap();
    for l in load {
        assert!(
            l.await.unwrap().iter().all(|s| *s == StatusCode::OK),
            "no request failed during the reload"
        );
    }
    let after = post(&url, request(), &[]).await;
    assert_eq!(
        after.header("x-switchyard-model"),
        "b",
        "the new route is used after the swap"
    );
    assert!(p.state.reloader.status().last_attempt_ok);
}

#[tokio::test]
async fn an_invalid_reload_is_refused_reported_and_the_old_policy_keeps_serving() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let (p, dir) = file_proxy(&two_model_policy(&up.url(), "a", "100")).await;
    std::fs::write(
        dir.path().join("policy.yaml"),
        two_model_policy(&up.url(), "zz", "100"),
    )
    .unwrap();
    let err = p.state.reload().unwrap_err().to_string();
    assert!(
        err.contains("policy.yaml:8:25: unknown model `zz`"),
        "{err}"
    );
    let status = p.state.reloader.status();
    assert!(!status.last_attempt_ok);
    assert_eq!(status.failures, 1);
    assert!(
        status.errors[0].contains(":8:25: unknown model `zz`"),
        "{status:?}"
    );
    let rsp = post(&p.url("/v1/chat/completions"), request(), &[]).await;
    assert_eq!(
        (rsp.status, rsp.header("x-switchyard-model")),
        (StatusCode::OK, "a")
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_and_editing_a_limit_keeps_the_months_spend() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let (p, dir) = file_proxy(&two_model_policy(&up.url(), "a", "1")).await;
    switchyard::spawn_reload_triggers(p.state.clone(), std::time::Duration::from_secs(3600));
    let first = post(&p.url("/v1/chat/completions"), request(), &[]).await;
    assert_eq!(
        first.header("x-switchyard-budget-remaining-usd"),
        "0.999500"
    );
    std::fs::write(
        dir.path().join("policy.yaml"),
        two_model_policy(&up.url(), "a", "2"),
    )
    .unwrap();
    let reloads = p.state.reloader.status().reloads;
    // A signal to ourselves through kill(1), as an operator would send it.
    std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while p.state.reloader.status().reloads == reloads {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("SIGHUP reloaded the policy");
    let second = post(&p.url("/v1/chat/completions"), request(), &[]).await;
    // $2 limit, $0.0005 already spent, $0.0005 now: the spend survived the edit.
    assert_eq!(
        second.header("x-switchyard-budget-remaining-usd"),
        "1.999000"
    );
}

fn shadow_policy(url: &str) -> String {
    format!(
        "version: 1\nmode: shadow\nproviders:\n  p: {{ kind: openai, base_url: \"{url}\" }}\nmodels:\n  cheap: {{ provider: p, model: llama-8b, tier: open, price: {{ input: 0, output: 100 }} }}\n  gpt-4o: {{ provider: p, model: gpt-4o, tier: frontier, price: {{ input: 0, output: 400 }} }}\nroutes:\n  - {{ name: main, use: [cheap] }}\nbaseline: gpt-4o\n"
    )
}

#[tokio::test]
async fn shadow_mode_forwards_byte_identical_requests_and_records_the_counterfactual() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 3, 5))).await;
    let p = proxy(&shadow_policy(&up.url())).await;
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Summarize: the meeting moved."}],"temperature":0.1,"x_extra":[1,2]}"#;
    let rsp = post(&p.url("/v1/chat/completions"), body, &[]).await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(
        up.requests()[0].body,
        body.as_bytes(),
        "byte-identical to what the client sent"
    );
    assert_eq!(rsp.header("x-switchyard-model"), "gpt-4o");
    assert_eq!(rsp.header("x-switchyard-shadow-model"), "cheap");
    p.state.ledger.flush().await.unwrap();
    let db = rusqlite::Connection::open(p.data_dir.path().join("ledger.sqlite3")).unwrap();
    let (model, cost, shadow_model, shadow_cost): (String, u64, String, u64) = db
        .query_row(
            "SELECT model, cost, shadow_model, shadow_cost FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (model.as_str(), cost),
        ("gpt-4o", 2_000),
        "the real spend: 5 tokens at $400/M"
    );
    assert_eq!(
        (shadow_model.as_str(), shadow_cost),
        ("cheap", 500),
        "what the policy would have cost"
    );
}

fn escalating_policy(url: &str, on: &str) -> String {
    format!(
        "version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{url}\" }}\nmodels:\n  cheap: {{ provider: p, model: llama-8b, tier: open, price: {{ input: 0, output: 100 }} }}\n  strong: {{ provider: p, model: gpt-4o, tier: frontier, price: {{ input: 0, output: 400 }} }}\nroutes:\n  - {{ name: main, use: [cheap], escalate: {{ to: strong, on: [{on}] }} }}\n"
    )
}

fn answer(model: &str, content: &str, finish: &str) -> serde_json::Value {
    json!({"id": "x", "object": "chat.completion", "created": 1, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})
}

/// The cheap model answers `cheap`; the strong model answers well.
async fn cascade(
    on: &str,
    cheap: serde_json::Value,
    request: serde_json::Value,
) -> (Answer, Mock, Proxy) {
    let cheap = Arc::new(cheap);
    let up = mock(move |r| {
        if r.json()["model"] == "llama-8b" {
            Reply::Json(StatusCode::OK, (*cheap).clone())
        } else {
            Reply::Json(StatusCode::OK, answer("gpt-4o", r#"{"ok": true}"#, "stop"))
        }
    })
    .await;
    let p = proxy(&escalating_policy(&up.url(), on)).await;
    let rsp = post(&p.url("/v1/chat/completions"), request.to_string(), &[]).await;
    (rsp, up, p)
}

#[tokio::test]
async fn escalates_a_truncated_answer_and_charges_both_attempts() {
    let req =
        json!({"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let (rsp, up, p) = cascade("truncated", answer("llama-8b", "cut", "length"), req).await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.header("x-switchyard-escalated"), "truncated");
    assert_eq!(rsp.header("x-switchyard-model"), "strong");
    assert_eq!(up.requests().len(), 2);
    assert_eq!(
        rsp.header("x-switchyard-cost-usd"),
        "0.002500",
        "$0.0005 cheap + $0.002 strong"
    );
    let rows = ledger_rows(&p).await;
    assert_eq!(
        rows.iter().map(|r| (r.3.as_str(), r.5)).collect::<Vec<_>>(),
        [("cheap", 500), ("strong", 2_000)]
    );
}

#[tokio::test]
async fn escalates_invalid_json_when_json_was_asked_for() {
    let req = json!({"model": "auto", "response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "hi"}]});
    let (rsp, _, _) = cascade(
        "invalid_json",
        answer("llama-8b", "not json {", "stop"),
        req.clone(),
    )
    .await;
    assert_eq!(rsp.header("x-switchyard-escalated"), "invalid_json");
    assert_eq!(
        rsp.json()["choices"][0]["message"]["content"],
        r#"{"ok": true}"#
    );
    let (rsp, up, _) = cascade(
        "invalid_json",
        answer("llama-8b", r#"{"a": 1}"#, "stop"),
        req,
    )
    .await;
    assert_eq!(
        rsp.header("x-switchyard-escalated"),
        "",
        "valid JSON is not escalated"
    );
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn escalates_an_error() {
    let up = mock(|r| {
        if r.json()["model"] == "llama-8b" {
            Reply::Json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": {"message": "down"}}),
            )
        } else {
            Reply::Json(StatusCode::OK, answer("gpt-4o", "fine", "stop"))
        }
    })
    .await;
    let p = proxy(&escalating_policy(&up.url(), "error")).await;
    let rsp = post(&p.url("/v1/chat/completions"), request(), &[]).await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.header("x-switchyard-escalated"), "error");
}

#[tokio::test]
async fn never_escalates_a_streamed_request() {
    let up = mock(|_| Reply::Sse {
        events: openai_stream(&["cut"], Some((3, 5))),
        gate: None,
    })
    .await;
    let p = proxy(&escalating_policy(
        &up.url(),
        "error, truncated, invalid_json",
    ))
    .await;
    let req = json!({"model": "auto", "stream": true, "response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "hi"}]});
    let rsp = post(&p.url("/v1/chat/completions"), req.to_string(), &[]).await;
    assert_eq!(rsp.header("x-switchyard-escalated"), "");
    assert_eq!(up.requests().len(), 1);
}
