//! Upstream faults and hostile input: every failure answers in the right shape, charges
//! exactly, and loses nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use http::StatusCode;
use serde_json::json;
use support::*;

fn request(stream: bool) -> String {
    json!({"model": "auto", "stream": stream, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

fn policy_with_timeout(urls: &[String], read_timeout_ms: u64) -> String {
    openai_policy(urls).replace(
        "read_timeout_ms: 5000",
        &format!("read_timeout_ms: {read_timeout_ms}"),
    )
}

#[tokio::test]
async fn a_429_with_retry_after_falls_back_without_retrying_the_same_provider() {
    let limited = mock(|_| {
        Reply::Json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"message": "slow down"}}),
        )
    })
    .await;
    let good = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 1, 1))).await;
    let p = proxy(&openai_policy(&[limited.url(), good.url()])).await;
    let rsp = post(&p.url("/v1/chat/completions"), request(false), &[]).await;
    assert_eq!(
        (rsp.status, rsp.header("x-switchyard-model")),
        (StatusCode::OK, "m1")
    );
    assert_eq!(limited.requests().len(), 1, "not hammered");
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out_and_falls_back() {
    let hang = mock(|_| Reply::Hang).await;
    let good = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 1, 1))).await;
    let policy = format!(
        "version: 1\nproviders:\n  slow: {{ kind: openai, base_url: \"{}\", read_timeout_ms: 200 }}\n  fast: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  m0: {{ provider: slow, model: a, tier: open, price: {{ input: 1, output: 1 }} }}\n  m1: {{ provider: fast, model: b, tier: open, price: {{ input: 1, output: 1 }} }}\nroutes:\n  - {{ name: main, use: [m0, m1] }}\n",
        hang.url(),
        good.url()
    );
    let p = proxy(&policy).await;
    let rsp = post(&p.url("/v1/chat/completions"), request(false), &[]).await;
    assert_eq!(
        (rsp.status, rsp.header("x-switchyard-model")),
        (StatusCode::OK, "m1")
    );
}

#[tokio::test]
async fn only_a_hanging_provider_is_a_504() {
    let hang = mock(|_| Reply::Hang).await;
    let p = proxy(&policy_with_timeout(&[hang.url()], 200)).await;
    let rsp = post(&p.url("/v1/chat/completions"), request(false), &[]).await;
    assert_eq!(rsp.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(rsp.json()["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn a_stream_that_hangs_after_its_headers_ends_with_an_error_event_and_is_charged() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    // Two events, then silence (the gate is never opened).
    let up = mock(move |_| Reply::Sse {
        events: openai_stream(&["abcd", "efgh"], None),
        gate: Some((2, g.clone())),
    })
    .await;
    let p = proxy(&policy_with_timeout(&[up.url()], 300)).await;
    let rsp = post(&p.url("/v1/chat/completions"), request(true), &[]).await;
    let text = String::from_utf8(rsp.body.to_vec()).unwrap();
    assert!(text.ends_with("data: {\"error\":{\"code\":\"upstream_error\",\"message\":\"the upstream stream timed out\",\"param\":null,\"type\":\"api_error\"}}\n\n"), "{text}");
    let rows = ledger_rows(&p).await;
    assert_eq!(rows[0].4, "upstream_failed");
    assert!(
        rows[0].6 >= 1,
        "the text generated before the silence is charged"
    );
    drop(gate);
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event_and_is_charged() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let up = mock(move |_| {
        Reply::SseThenCut(
            openai_stream(&["partial answer"], None)[..2].to_vec(),
            g.clone(),
        )
    })
    .await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let mut rsp = post_raw(&p.url("/v1/chat/completions"), request(true), &[]).await;
    let mut all = Vec::new();
    while !String::from_utf8_lossy(&all).contains("partial answer") {
        all.extend_from_slice(&next_chunk(rsp.body_mut()).await.unwrap());
    }
    gate.notify_one(); // now the upstream connection breaks
    while let Some(c) = next_chunk(rsp.body_mut()).await {
        all.extend_from_slice(&c);
    }
    let text = String::from_utf8(all).unwrap();
    assert!(
        text.contains("the upstream stream was interrupted"),
        "{text}"
    );
    let rows = ledger_rows(&p).await;
    assert_eq!(rows[0].4, "upstream_failed");
    assert!(rows[0].6 >= 1);
}

#[tokio::test]
async fn malformed_sse_is_passed_on_without_a_panic() {
    let events = vec![
        "data: {not json\n\n".to_owned(),
        "garbage line without colon\n\n".to_owned(),
        ": comment\n\n".to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ];
    let up = mock(move |_| Reply::Sse {
        events: events.clone(),
        gate: None,
    })
    .await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let rsp = post(&p.url("/v1/chat/completions"), request(true), &[]).await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&rsp.body).ends_with("data: [DONE]\n\n"));
    assert_eq!(totals(&p.state).estimated, 1);
}

#[tokio::test]
async fn an_oversized_upstream_response_is_a_502_and_releases_the_hold() {
    let big = "x".repeat(4096);
    let up = mock(move |_| Reply::Json(StatusCode::OK, completion(&big, 1, 1))).await;
    let limits = switchyard::Limits {
        max_response_bytes: 1024,
        ..switchyard::Limits::default()
    };
    let p = proxy_with(
        &format!(
            "{}budgets:\n  - {{ name: b, limit_usd: 1 }}\n",
            openai_policy(&[up.url()])
        ),
        limits,
    )
    .await;
    let rsp = post(&p.url("/v1/chat/completions"), request(false), &[]).await;
    assert_eq!(rsp.status, StatusCode::BAD_GATEWAY);
    assert_eq!(rsp.json()["error"]["code"], "upstream_error");
    let rows = ledger_rows(&p).await;
    assert_eq!(
        (rows[0].4.as_str(), rows[0].5),
        ("dropped", 0),
        "nothing charged, the hold released"
    );
    let status = p.state.ledger.status(
        &switchyard::budget::Tenant::anonymous(),
        jiff::Timestamp::now(),
    );
    assert_eq!(status[0].held.0, 0);
}

#[tokio::test]
async fn absurd_max_tokens_reserve_only_the_models_limit() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 1, 1))).await;
    // 4096 output tokens (the default model limit) at $1/M is $0.004096 + input: fits in $0.01.
    let p = proxy(&format!(
        "{}budgets:\n  - {{ name: b, limit_usd: 0.01 }}\n",
        openai_policy(&[up.url()])
    ))
    .await;
    let req = json!({"model": "auto", "max_tokens": 9_000_000_000_000u64, "messages": [{"role": "user", "content": "hi"}]});
    let rsp = post(&p.url("/v1/chat/completions"), req.to_string(), &[]).await;
    assert_eq!(rsp.status, StatusCode::OK);
}

#[tokio::test]
async fn hostile_bodies_get_400s_in_openai_shape() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 1, 1))).await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let url = p.url("/v1/chat/completions");
    let nested = format!(
        "{{\"model\":\"auto\",\"messages\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let bodies: Vec<Vec<u8>> = vec![
        nested.into_bytes(),
        b"{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"
            .to_vec(),
        b"{\"model\":\"auto\",\"messages\":[],\"max_tokens\":-5}".to_vec(),
        b"{\"model\":\"auto\",\"messages\":[],\"max_tokens\":1e400}".to_vec(),
        b"{\"model\":\"auto\",\"messages\":[],\"stream\":\"yes\"}".to_vec(),
        b"".to_vec(),
        b"null".to_vec(),
    ];
    for body in bodies {
        let rsp = post(&url, body.clone(), &[]).await;
        assert_eq!(
            rsp.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert_eq!(rsp.json()["error"]["type"], "invalid_request_error");
    }
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_slow_client_slows_the_upstream_instead_of_growing_a_buffer() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let sent = std::sync::Arc::new(AtomicUsize::new(0));
    let chunk = format!(
        "data: {}\n\n",
        json!({"choices": [{"delta": {"content": "x".repeat(1000)}}]})
    );
    let events: Vec<String> = std::iter::repeat_n(chunk, 50_000).collect(); // ~50 MB
    let s = sent.clone();
    let up = mock(move |_| Reply::SseCounted(events.clone(), s.clone())).await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let mut rsp = post_raw(&p.url("/v1/chat/completions"), request(true), &[]).await;
    next_chunk(rsp.body_mut()).await.unwrap();
    // The client now stops reading. Wait until the upstream stops making progress: socket and
    // hyper buffers are bounded, so it must stall far short of the whole stream.
    let mut last = usize::MAX;
    loop {
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await; // waiting for no progress
    }
    assert!(
        last < 25_000,
        "the proxy read {last} of 50000 events for a client that reads nothing"
    );
    drop(rsp);
}

/// The only test in this file that installs the global metrics recorder; it names models no
/// other test here uses, so parallel tests cannot disturb its counts.
#[tokio::test]
async fn faults_show_in_the_metrics() {
    let handle = switchyard::telemetry::metrics::install().unwrap();
    let limited = mock(|_| {
        Reply::Json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"message": "slow down"}}),
        )
    })
    .await;
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let cut = mock(move |_| {
        Reply::SseThenCut(openai_stream(&["partial"], None)[..2].to_vec(), g.clone())
    })
    .await;
    let closed = closed_port_url().await;
    let policy = format!(
        "version: 1\nproviders:\n  a: {{ kind: openai, base_url: \"{}\" }}\n  b: {{ kind: openai, base_url: \"{closed}\" }}\n  c: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  fx-limited: {{ provider: a, model: x, tier: open, price: {{ input: 1, output: 1 }} }}\n  fx-down: {{ provider: b, model: y, tier: open, price: {{ input: 1, output: 1 }} }}\n  fx-cut: {{ provider: c, model: z, tier: open, price: {{ input: 1, output: 1 }} }}\nroutes:\n  - {{ name: fx, use: [fx-limited, fx-down, fx-cut] }}\n",
        limited.url(),
        cut.url()
    );
    let p = proxy(&policy).await;
    let mut rsp = post_raw(&p.url("/v1/chat/completions"), request(true), &[]).await;
    next_chunk(rsp.body_mut()).await.unwrap();
    gate.notify_one();
    while next_chunk(rsp.body_mut()).await.is_some() {}
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        p.state.tally.recorded(1),
    )
    .await
    .unwrap();
    let text = handle.render();
    let has = |line: &str| text.lines().any(|l| l.starts_with(line));
    assert!(
        has(r#"switchyard_upstream_errors_total{model="fx-limited",status="rate_limited"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"switchyard_upstream_errors_total{model="fx-down",status="unavailable"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"switchyard_fallbacks_total{model="fx-limited"} 1"#),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("switchyard_requests_total{")
                && l.contains(r#"model="fx-cut""#)
                && l.contains(r#"status="upstream_failed""#)),
        "{text}"
    );
}
