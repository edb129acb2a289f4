//! Non-streaming response translation and usage in both directions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

#[test]
fn messages_response_maps_text_drops_thinking_and_reports_cache_usage() {
    let (out, usage) = messages_response_to_chat(
        include_bytes!("../fixtures/anthropic_response_text.json"),
        "gpt-4o",
        CREATED,
    )
    .unwrap();
    assert_json_eq(
        &out,
        include_str!("../fixtures/chat_completion_from_text.json"),
    );
    assert_eq!(
        usage,
        Usage {
            input: 112,
            cached_input: 2000,
            output: 9
        }
    );
}

#[test]
fn messages_response_maps_tool_use_to_tool_calls() {
    let (out, usage) = messages_response_to_chat(
        include_bytes!("../fixtures/anthropic_response_tool_use.json"),
        "gpt-4o",
        CREATED,
    )
    .unwrap();
    assert_json_eq(
        &out,
        include_str!("../fixtures/chat_completion_from_tool_use.json"),
    );
    assert_eq!(
        usage,
        Usage {
            input: 300,
            cached_input: 0,
            output: 80
        }
    );
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    let cases = [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ];
    for (stop_reason, finish_reason) in cases {
        let body =
            format!(r#"{{"id":"m","content":[],"stop_reason":"{stop_reason}","usage":{{}}}}"#);
        let (out, _) = messages_response_to_chat(body.as_bytes(), "gpt", CREATED).unwrap();
        assert_eq!(
            json(&out)["choices"][0]["finish_reason"],
            finish_reason,
            "{stop_reason}"
        );
    }
}

#[test]
fn chat_response_maps_text_length_and_cached_usage() {
    let (out, usage) = chat_response_to_messages(
        include_bytes!("../fixtures/chat_completion_text.json"),
        "claude-sonnet-4-5",
    )
    .unwrap();
    assert_json_eq(
        &out,
        include_str!("../fixtures/message_from_chat_text.json"),
    );
    assert_eq!(
        usage,
        Usage {
            input: 15,
            cached_input: 4,
            output: 10
        }
    );
}

#[test]
fn chat_response_maps_tool_calls_to_tool_use_blocks() {
    let (out, usage) = chat_response_to_messages(
        include_bytes!("../fixtures/chat_completion_tool_calls.json"),
        "claude-sonnet-4-5",
    )
    .unwrap();
    assert_json_eq(
        &out,
        include_str!("../fixtures/message_from_chat_tool_calls.json"),
    );
    assert_eq!(
        usage,
        Usage {
            input: 82,
            cached_input: 0,
            output: 17
        }
    );
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    let cases = [
        ("stop", false, "end_turn"),
        ("length", false, "max_tokens"),
        ("tool_calls", true, "tool_use"),
        ("content_filter", false, "refusal"),
        // Ollama and older vLLM say `stop` after tool calls.
        ("stop", true, "tool_use"),
    ];
    for (finish_reason, with_tool, stop_reason) in cases {
        let tool_calls = if with_tool {
            r#","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]"#
        } else {
            ""
        };
        let body = format!(
            r#"{{"id":"x","choices":[{{"index":0,"message":{{"role":"assistant","content":"a"{tool_calls}}},"finish_reason":"{finish_reason}"}}]}}"#
        );
        let (out, _) = chat_response_to_messages(body.as_bytes(), "claude").unwrap();
        assert_eq!(
            json(&out)["stop_reason"],
            stop_reason,
            "{finish_reason} tools={with_tool}"
        );
    }
}

#[test]
fn chat_refusal_becomes_text_with_refusal_stop_reason() {
    let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#;
    let (out, usage) = chat_response_to_messages(body, "claude").unwrap();
    let out = json(&out);
    assert_eq!(out["stop_reason"], "refusal");
    assert_eq!(
        out["content"],
        json(br#"[{"type":"text","text":"I can't help with that."}]"#)
    );
    assert_eq!(usage, Usage::default());
}

#[test]
fn malformed_upstream_responses_are_upstream_faults() {
    let cases: [Result<(Vec<u8>, Usage), Error>; 4] = [
        messages_response_to_chat(b"<html>", "gpt", CREATED),
        messages_response_to_chat(br#"{"content":[{"type":"tool_use"}]}"#, "gpt", CREATED),
        chat_response_to_messages(br#"{"choices":[]}"#, "claude"),
        chat_response_to_messages(
            br#"{"choices":[{"index":0,"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1]"}}]}}]}"#,
            "claude",
        ),
    ];
    for result in cases {
        let err = result.expect_err("expected an upstream error");
        assert!(!err.is_client_fault(), "{err}");
        assert!(err.to_string().starts_with("upstream "), "{err}");
    }
    let err = chat_response_to_messages(br#"{"choices":[]}"#, "claude").unwrap_err();
    assert_eq!(err.to_string(), "upstream choices: no choice with index 0");
}

#[test]
fn usage_from_native_response_counts_cache_writes_as_input() {
    let usage =
        usage_from_messages_response(include_bytes!("../fixtures/anthropic_response_text.json"));
    assert_eq!(
        usage,
        Some(Usage {
            input: 112,
            cached_input: 2000,
            output: 9
        })
    );
    assert_eq!(usage_from_messages_response(b"{}"), None);
    assert_eq!(usage_from_messages_response(b"nope"), None);
}
