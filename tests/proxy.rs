//! The OpenAI-compatible proxy over loopback: passthrough, streaming, usage, fallback, limits,
//! errors and graceful shutdown.
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
use tokio::sync::Notify;

fn chat(model: &str, stream: bool) -> serde_json::Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Summarize: the meeting moved to Friday."}]})
}

#[tokio::test]
async fn forwards_unknown_fields_tools_and_response_format_unchanged() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("hi", 10, 3))).await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let body = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"auto","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},"vendor_extension":{"nested":[1,2.5,"\u00e9"]},"seed":7}"#;
    let rsp = post(&p.url("/v1/chat/completions"), body, &[]).await;
    assert_eq!(rsp.status, StatusCode::OK);
    let sent = &up.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    let expected = body.replace(r#""model":"auto""#, r#""model":"upstream-0""#);
    assert_eq!(
        std::str::from_utf8(&sent.body).unwrap(),
        expected,
        "byte-identical but for the model"
    );
    assert_eq!(
        rsp.json(),
        completion("hi", 10, 3),
        "response body passed through"
    );
    assert_eq!(rsp.header("x-switchyard-route"), "main");
    assert_eq!(rsp.header("x-switchyard-model"), "m0");
    assert!(rsp.header("x-switchyard-request-id").starts_with("req_"));
    // 10 input tokens at $1/M + 3 output at $2/M = 16 micro-dollars
    assert_eq!(rsp.header("x-switchyard-cost-usd"), "0.000016");
    assert_eq!(totals(&p.state).cost.0, 16);
}

#[tokio::test]
async fn streams_every_event_before_the_upstream_finishes() {
    let gate = Arc::new(Notify::new());
    let events = openai_stream(&["Hello", " world"], Some((12, 2)));
    let g = gate.clone();
    // The upstream sends its first two events, then waits until the client has seen one.
    let up = mock(move |_| Reply::Sse {
        events: events.clone(),
        gate: Some((2, g.clone())),
    })
    .await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let mut rsp = post_raw(
        &p.url("/v1/chat/completions"),
        chat("auto", true).to_string(),
        &[("x-test", "1")],
    )
    .await;
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()["content-type"], "text/event-stream");
    let first = next_chunk(rsp.body_mut()).await.unwrap();
    assert!(
        std::str::from_utf8(&first).unwrap().starts_with("data: "),
        "a chunk arrived while the upstream is still held"
    );
    gate.notify_one();
    let mut all = first.to_vec();
    while let Some(c) = next_chunk(rsp.body_mut()).await {
        all.extend_from_slice(&c);
    }
    let text = String::from_utf8(all).unwrap();
    let expected: String = openai_stream(&["Hello", " world"], None).concat();
    assert_eq!(
        text, expected,
        "every event passes through unchanged, the usage chunk hidden, [DONE] kept"
    );
    let sent = up.requests()[0].json();
    assert_eq!(
        sent["stream_options"],
        json!({"include_usage": true}),
        "switchyard asks for usage"
    );
    let t = totals(&p.state);
    assert_eq!(
        (t.input_tokens, t.output_tokens, t.estimated, t.streamed),
        (12, 2, 0, 1)
    );
}

#[tokio::test]
async fn shows_the_usage_chunk_when_the_client_asked_for_it() {
    let up = mock(|_| Reply::Sse {
        events: openai_stream(&["a"], Some((5, 1))),
        gate: None,
    })
    .await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let mut req = chat("auto", true);
    req["stream_options"] = json!({"include_usage": true});
    let rsp = post(&p.url("/v1/chat/completions"), req.to_string(), &[]).await;
    let text = String::from_utf8(rsp.body.to_vec()).unwrap();
    assert_eq!(text, openai_stream(&["a"], Some((5, 1))).concat());
}

#[tokio::test]
async fn estimates_and_marks_usage_when_a_stream_carries_none() {
    let up = mock(|_| Reply::Sse {
        events: openai_stream(&["abcdefgh"], None),
        gate: None,
    })
    .await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let rsp = post(
        &p.url("/v1/chat/completions"),
        chat("auto", true).to_string(),
        &[],
    )
    .await;
    assert!(String::from_utf8_lossy(&rsp.body).ends_with("data: [DONE]\n\n"));
    let t = totals(&p.state);
    assert_eq!(t.estimated, 1);
    assert_eq!(t.output_tokens, 2, "8 characters ≈ 2 tokens");
    assert!(t.input_tokens > 0);
}

#[tokio::test]
async fn falls_back_when_a_provider_answers_500() {
    let bad = mock(|_| {
        Reply::Json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"message": "boom"}}),
        )
    })
    .await;
    let good = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 1, 1))).await;
    let p = proxy(&openai_policy(&[bad.url(), good.url()])).await;
    let rsp = post(
        &p.url("/v1/chat/completions"),
        chat("auto", false).to_string(),
        &[],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.header("x-switchyard-model"), "m1");
    assert_eq!((bad.requests().len(), good.requests().len()), (1, 1));
    assert_eq!(good.requests()[0].json()["model"], "upstream-1");
}

#[tokio::test]
async fn falls_back_when_a_provider_refuses_connections() {
    let good = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 1, 1))).await;
    let p = proxy(&openai_policy(&[closed_port_url().await, good.url()])).await;
    let rsp = post(
        &p.url("/v1/chat/completions"),
        chat("auto", true).to_string(),
        &[],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.header("x-switchyard-model"), "m1");
}

#[tokio::test]
async fn every_candidate_down_is_a_502_in_openai_shape() {
    let p = proxy(&openai_policy(&[closed_port_url().await])).await;
    let rsp = post(
        &p.url("/v1/chat/completions"),
        chat("auto", false).to_string(),
        &[],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::BAD_GATEWAY);
    let e = rsp.json();
    assert_eq!(e["error"]["type"], "api_error");
    assert_eq!(e["error"]["code"], "upstream_error");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("req_"),
        "names the request id"
    );
}

#[tokio::test]
async fn passes_an_upstream_4xx_through_unchanged() {
    let err = json!({"error": {"message": "max_tokens is too large", "type": "invalid_request_error", "param": "max_tokens", "code": null}});
    let e2 = err.clone();
    let up = mock(move |_| Reply::Json(StatusCode::BAD_REQUEST, e2.clone())).await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let rsp = post(
        &p.url("/v1/chat/completions"),
        chat("auto", false).to_string(),
        &[],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    assert_eq!(rsp.json(), err);
}

#[tokio::test]
async fn refuses_an_oversized_body_with_413() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("x", 1, 1))).await;
    let limits = switchyard::Limits {
        max_body_bytes: 1024,
        ..switchyard::Limits::default()
    };
    let p = proxy_with(&openai_policy(&[up.url()]), limits).await;
    let big = json!({"model": "auto", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let rsp = post(&p.url("/v1/chat/completions"), big.to_string(), &[]).await;
    assert_eq!(rsp.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        rsp.json(),
        json!({"error": {"message": "the request body is larger than 1024 bytes", "type": "invalid_request_error", "param": null, "code": "request_too_large"}})
    );
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn refuses_malformed_json_with_400_in_openai_shape() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("x", 1, 1))).await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let rsp = post(
        &p.url("/v1/chat/completions"),
        r#"{"model": "auto", "messages": ["#,
        &[],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    let e = rsp.json();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "invalid_request");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the request body is not valid JSON")
    );
    let rsp = post(&p.url("/v1/chat/completions"), r#"{"messages": []}"#, &[]).await;
    assert_eq!(rsp.json()["error"]["param"], "model");
}

#[tokio::test]
async fn an_unknown_model_is_a_404_naming_it() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("x", 1, 1))).await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let rsp = post(
        &p.url("/v1/chat/completions"),
        chat("gpt-17", false).to_string(),
        &[],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::NOT_FOUND);
    assert_eq!(rsp.json()["error"]["code"], "model_not_found");
    assert_eq!(
        rsp.json()["error"]["message"],
        "The model `gpt-17` does not exist or you do not have access to it."
    );
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn lists_models_and_answers_health_checks() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("x", 1, 1))).await;
    let p = proxy(&openai_policy(&[up.url(), up.url()])).await;
    let models = get(&p.url("/v1/models")).await.json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auto", "m0", "m1"]);
    assert_eq!(get(&p.url("/healthz")).await.status, StatusCode::OK);
    let missing = get(&p.url("/v2/nope")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "unknown_url");
}

#[tokio::test]
async fn routes_embeddings_to_embedding_models() {
    let up = mock(|_| Reply::Json(StatusCode::OK, json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "e", "usage": {"prompt_tokens": 4, "total_tokens": 4}}))).await;
    let policy = format!(
        "version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  chat: {{ provider: p, model: c, tier: open, price: {{ input: 1, output: 1 }} }}\n  emb: {{ provider: p, model: e-upstream, tier: open, kind: embedding, price: {{ input: 1, output: 0 }} }}\nroutes:\n  - {{ name: chat, use: [chat] }}\n  - {{ name: embed, use: [emb] }}\n",
        up.url()
    );
    let p = proxy(&policy).await;
    let rsp = post(
        &p.url("/v1/embeddings"),
        json!({"model": "auto", "input": "hello"}).to_string(),
        &[],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.header("x-switchyard-route"), "embed");
    assert_eq!(up.requests()[0].path, "/v1/embeddings");
    assert_eq!(up.requests()[0].json()["model"], "e-upstream");
    assert_eq!(totals(&p.state).input_tokens, 4);
}

#[tokio::test]
async fn graceful_shutdown_finishes_an_in_flight_stream() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let up = mock(move |_| Reply::Sse {
        events: openai_stream(&["one", "two"], Some((3, 2))),
        gate: Some((2, g.clone())),
    })
    .await;
    let mut p = proxy(&openai_policy(&[up.url()])).await;
    let mut rsp = post_raw(
        &p.url("/v1/chat/completions"),
        chat("auto", true).to_string(),
        &[],
    )
    .await;
    let mut all = next_chunk(rsp.body_mut()).await.unwrap().to_vec();
    p.shutdown();
    gate.notify_one();
    while let Some(c) = next_chunk(rsp.body_mut()).await {
        all.extend_from_slice(&c);
    }
    assert!(
        String::from_utf8(all)
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), &mut p.done)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
    assert_eq!(
        totals(&p.state).output_tokens,
        2,
        "the finished stream was charged"
    );
    assert!(
        tokio::net::TcpStream::connect(p.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn a_client_hanging_up_mid_stream_is_charged_for_what_was_generated() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let words: Vec<String> = (0..50).map(|i| format!("word{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let events = openai_stream(&refs, None);
    let up = mock(move |_| Reply::Sse {
        events: events.clone(),
        gate: Some((3, g.clone())),
    })
    .await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let mut rsp = post_raw(
        &p.url("/v1/chat/completions"),
        chat("auto", true).to_string(),
        &[],
    )
    .await;
    next_chunk(rsp.body_mut()).await.unwrap();
    drop(rsp);
    gate.notify_one(); // the upstream goes on; the proxy notices the client is gone
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        p.state.tally.recorded(1),
    )
    .await
    .expect("charged");
    let t = totals(&p.state);
    assert_eq!(t.estimated, 1, "no usage arrived: estimated and marked");
    assert!(
        t.output_tokens >= 1,
        "charged for the text that was generated"
    );
}

#[tokio::test]
async fn speaks_http2_cleartext_too() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("hi", 1, 1))).await;
    let p = proxy(&openai_policy(&[up.url()])).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(p.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            chat("auto", false).to_string(),
        )))
        .unwrap();
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.version(), http::Version::HTTP_2);
    assert_eq!(rsp.status(), StatusCode::OK);
}

#[tokio::test]
async fn busy_polling_starts_with_the_first_request_and_requests_still_flow_while_it_spins() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 1, 1))).await;
    let policy =
        switchyard::Policy::from_yaml("test.yaml", &openai_policy(&[up.url()]), &|_| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut state = switchyard::state_with_clock(
        policy,
        switchyard::Limits::default(),
        dir.path(),
        switchyard::system_clock(),
    )
    .unwrap();
    // A window longer than the test: once a request starts it, it spins to the end.
    state.busy_poll = switchyard::busy_poll::BusyPoll::start(std::time::Duration::from_secs(3600));
    let p = proxy_from_state(state, dir).await;
    assert!(!p.state.busy_poll.is_spinning(), "no request yet");
    for _ in 0..3 {
        let rsp = post(
            &p.url("/v1/chat/completions"),
            chat("auto", false).to_string(),
            &[],
        )
        .await;
        assert_eq!(rsp.status, StatusCode::OK);
        assert!(p.state.busy_poll.is_spinning());
    }
    assert_eq!(up.requests().len(), 3);
}
