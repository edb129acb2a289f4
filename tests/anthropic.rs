//! Anthropic both ways over loopback: the Messages API in front of an OpenAI-compatible
//! upstream, OpenAI chat in front of an Anthropic upstream, and Anthropic passthrough.
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

const ANTHROPIC_STREAM: &str =
    include_str!("../src/providers/anthropic/fixtures/anthropic_stream_text.sse");

fn anthropic_events() -> Vec<String> {
    ANTHROPIC_STREAM
        .split_inclusive("\n\n")
        .map(str::to_owned)
        .collect()
}

fn anthropic_message() -> serde_json::Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Bonjour"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5, "output_tokens": 3}
    })
}

/// One provider of `kind` at `url`; client model names `claude-sonnet-4-5` and `auto` accepted.
fn policy(kind: &str, url: &str) -> String {
    format!(
        "version: 1\nproviders:\n  up: {{ kind: {kind}, base_url: \"{url}\", api_key: sk-up-secret }}\nmodels:\n  main: {{ provider: up, model: upstream-model, tier: frontier, price: {{ input: 3, output: 15, cached_input: 0.3 }} }}\nroutes:\n  - {{ name: claude-alias, when: {{ model: claude-sonnet-4-5 }}, use: [main] }}\n  - {{ name: default, use: [main] }}\n"
    )
}

/// What the Anthropic Python SDK sends for `client.messages.create(...)`.
fn sdk_request(stream: bool) -> serde_json::Value {
    json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Translate 'good morning' into French."}]
    })
}

const SDK_HEADERS: &[(&str, &str)] = &[
    ("x-api-key", "sk-client"),
    ("anthropic-version", "2023-06-01"),
];

#[tokio::test]
async fn messages_api_in_front_of_an_openai_compatible_upstream() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("Bonjour", 30, 2))).await;
    let p = proxy(&policy("openai", &up.url())).await;
    let rsp = post(
        &p.url("/v1/messages"),
        sdk_request(false).to_string(),
        SDK_HEADERS,
    )
    .await;
    assert_eq!(
        rsp.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&rsp.body)
    );
    let sent = up.requests()[0].clone();
    assert_eq!(sent.path, "/v1/chat/completions");
    let body = sent.json();
    assert_eq!(body["model"], "upstream-model");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You are terse."})
    );
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(
        sent.headers["authorization"], "Bearer sk-up-secret",
        "the provider key, not the client's"
    );
    let msg = rsp.json();
    assert_eq!(msg["type"], "message");
    assert_eq!(
        msg["content"][0],
        json!({"type": "text", "text": "Bonjour"})
    );
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["usage"]["input_tokens"], 30);
    assert_eq!(msg["usage"]["output_tokens"], 2);
    assert_eq!(rsp.header("x-switchyard-route"), "claude-alias");
    // 30 × $3 + 2 × $15 per million = 120 micro-dollars
    assert_eq!(totals(&p.state).cost.0, 120);
}

#[tokio::test]
async fn messages_api_streams_from_an_openai_compatible_upstream_before_it_finishes() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let up = mock(move |_| Reply::Sse {
        events: openai_stream(&["Bon", "jour"], Some((30, 2))),
        gate: Some((2, g.clone())),
    })
    .await;
    let p = proxy(&policy("openai", &up.url())).await;
    let mut rsp = post_raw(
        &p.url("/v1/messages"),
        sdk_request(true).to_string(),
        SDK_HEADERS,
    )
    .await;
    assert_eq!(rsp.status(), StatusCode::OK);
    let first = next_chunk(rsp.body_mut()).await.unwrap();
    assert!(
        std::str::from_utf8(&first)
            .unwrap()
            .starts_with("event: message_start"),
        "first event before the upstream finished"
    );
    gate.notify_one();
    let mut all = first.to_vec();
    while let Some(c) = next_chunk(rsp.body_mut()).await {
        all.extend_from_slice(&c);
    }
    let text = String::from_utf8(all).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(names.contains(&"content_block_delta") && names.contains(&"message_delta"));
    assert!(text.contains(r#""text":"Bon""#) && text.contains(r#""text":"jour""#));
    assert_eq!(
        up.requests()[0].json()["stream_options"]["include_usage"],
        true
    );
    let t = totals(&p.state);
    assert_eq!(
        (t.input_tokens, t.output_tokens, t.estimated),
        (30, 2, 0),
        "charged from streamed usage"
    );
}

#[tokio::test]
async fn openai_chat_in_front_of_an_anthropic_upstream() {
    let up = mock(|_| Reply::Json(StatusCode::OK, anthropic_message())).await;
    let p = proxy(&policy("anthropic", &up.base())).await;
    let req = json!({"model": "auto", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello in French"}], "temperature": 0.3});
    let rsp = post(&p.url("/v1/chat/completions"), req.to_string(), &[]).await;
    assert_eq!(
        rsp.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&rsp.body)
    );
    let sent = up.requests()[0].clone();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], "sk-up-secret");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    let body = sent.json();
    assert_eq!(body["model"], "upstream-model");
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(
        body["max_tokens"], 4096,
        "Anthropic requires max_tokens: the documented default"
    );
    let c = rsp.json();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["choices"][0]["message"]["content"], "Bonjour");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["prompt_tokens"], 25, "input + cache read");
    // input 20 × $3 + cached 5 × $0.3 + output 3 × $15 per million = 60 + 1.5 + 45 → 107 (rounded up)
    assert_eq!(totals(&p.state).cost.0, 107);
}

#[tokio::test]
async fn openai_chat_streams_from_an_anthropic_upstream_before_it_finishes() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let up = mock(move |_| Reply::Sse {
        events: anthropic_events(),
        gate: Some((3, g.clone())),
    })
    .await;
    let p = proxy(&policy("anthropic", &up.base())).await;
    let req =
        json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut rsp = post_raw(&p.url("/v1/chat/completions"), req.to_string(), &[]).await;
    let first = next_chunk(rsp.body_mut()).await.unwrap();
    assert!(std::str::from_utf8(&first).unwrap().starts_with("data: {"));
    gate.notify_one();
    let mut all = first.to_vec();
    while let Some(c) = next_chunk(rsp.body_mut()).await {
        all.extend_from_slice(&c);
    }
    let text = String::from_utf8(all).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(text.contains(r#""content":"Hello""#));
    assert!(
        !text.contains(r#""choices":[]"#),
        "no usage chunk: the client did not ask"
    );
    let t = totals(&p.state);
    // message_start: 25 input + 10 cache creation (input price) + 100 cache read; message_delta: 15 output
    assert_eq!(
        (t.input_tokens, t.cached_input_tokens, t.output_tokens),
        (35, 100, 15)
    );
}

#[tokio::test]
async fn anthropic_to_anthropic_passes_through_untranslated() {
    let up = mock(|_| Reply::Sse {
        events: anthropic_events(),
        gate: None,
    })
    .await;
    let p = proxy(&policy("anthropic", &up.base())).await;
    let rsp = post(
        &p.url("/v1/messages"),
        sdk_request(true).to_string(),
        SDK_HEADERS,
    )
    .await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(rsp.body.to_vec()).unwrap(),
        ANTHROPIC_STREAM,
        "byte for byte"
    );
    let sent = up.requests()[0].json();
    let mut expected = sdk_request(true);
    expected["model"] = json!("upstream-model");
    assert_eq!(
        sent, expected,
        "only the model rewritten; no stream_options added"
    );
    let t = totals(&p.state);
    assert_eq!(
        (t.input_tokens, t.cached_input_tokens, t.output_tokens),
        (35, 100, 15)
    );
}

#[tokio::test]
async fn errors_on_the_messages_path_are_in_anthropic_shape() {
    let up = mock(|_| Reply::Json(StatusCode::OK, anthropic_message())).await;
    let p = proxy(&policy("anthropic", &up.base())).await;
    let rsp = post(&p.url("/v1/messages"), "{not json", SDK_HEADERS).await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    let e = rsp.json();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let rsp = post(
        &p.url("/v1/messages"),
        json!({"model": "claude-9", "max_tokens": 5, "messages": []}).to_string(),
        SDK_HEADERS,
    )
    .await;
    assert_eq!(rsp.status, StatusCode::NOT_FOUND);
    assert_eq!(rsp.json()["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn an_upstream_4xx_is_reshaped_for_a_client_of_the_other_format() {
    let up = mock(|_| Reply::Json(StatusCode::BAD_REQUEST, json!({"error": {"message": "context too long", "type": "invalid_request_error", "param": null, "code": null}}))).await;
    let p = proxy(&policy("openai", &up.url())).await;
    let rsp = post(
        &p.url("/v1/messages"),
        sdk_request(false).to_string(),
        SDK_HEADERS,
    )
    .await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        rsp.json(),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "context too long"}})
    );
}

#[tokio::test]
async fn bearer_authentication_is_accepted_too() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("ok", 1, 1))).await;
    let p = proxy(&policy("openai", &up.url())).await;
    let rsp = post(
        &p.url("/v1/messages"),
        sdk_request(false).to_string(),
        &[
            ("authorization", "Bearer sk-client"),
            ("anthropic-version", "2023-06-01"),
        ],
    )
    .await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert!(
        !up.requests()[0].headers.contains_key("x-api-key"),
        "client credentials never forwarded"
    );
}
