//! Stream translation in both directions and the native usage tap.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;

// ---------------------------------------------------------------------------------------------
// Streams: Anthropic upstream → OpenAI client
// ---------------------------------------------------------------------------------------------

#[test]
fn messages_stream_text_becomes_chunks_with_usage_chunk_when_asked() {
    let mut s = MessagesStreamToChat::new("gpt-4o", true, CREATED, "chatcmpl-test");
    let out = feed(
        include_str!("../fixtures/anthropic_stream_text.sse"),
        |e, d, o| s.on_event(e, d, o),
    );
    assert_sse_eq(&out, include_str!("../fixtures/chat_chunks_from_text.sse"));
    assert!(s.finished());
    assert_eq!(
        s.usage(),
        Some(Usage {
            input: 35,
            cached_input: 100,
            output: 15
        })
    );
    assert_eq!(s.text_chars(), 6);
    assert_eq!(s.error_kind(), None);
}

#[test]
fn messages_stream_without_include_usage_has_no_usage_field_or_chunk() {
    let mut s = MessagesStreamToChat::new("gpt-4o", false, CREATED, "chatcmpl-test");
    let out = feed(
        include_str!("../fixtures/anthropic_stream_text.sse"),
        |e, d, o| s.on_event(e, d, o),
    );
    let events = split_sse(std::str::from_utf8(&out).unwrap());
    assert_eq!(events.len(), 5, "role, 2 text, finish, [DONE]");
    for (_, data) in &events[..4] {
        let chunk = json(data.as_bytes());
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    // Usage is still tapped for billing.
    assert_eq!(
        s.usage(),
        Some(Usage {
            input: 35,
            cached_input: 100,
            output: 15
        })
    );
}

#[test]
fn messages_stream_tool_use_streams_tool_call_arguments_and_skips_thinking() {
    let mut s = MessagesStreamToChat::new("gpt-4o", false, CREATED, "chatcmpl-test");
    let out = feed(
        include_str!("../fixtures/anthropic_stream_tool_use.sse"),
        |e, d, o| s.on_event(e, d, o),
    );
    assert_sse_eq(
        &out,
        include_str!("../fixtures/chat_chunks_from_tool_use.sse"),
    );
    assert_eq!(
        s.usage(),
        Some(Usage {
            input: 472,
            cached_input: 0,
            output: 89
        })
    );
}

#[test]
fn messages_stream_error_event_becomes_openai_error_and_stops() {
    let mut s = MessagesStreamToChat::new("gpt-4o", false, CREATED, "chatcmpl-test");
    let out = feed(
        include_str!("../fixtures/anthropic_stream_error.sse"),
        |e, d, o| s.on_event(e, d, o),
    );
    assert_sse_eq(&out, include_str!("../fixtures/chat_chunks_from_error.sse"));
    assert!(s.finished());
    assert_eq!(s.error_kind(), Some("overloaded_error"));
    assert_eq!(
        s.usage(),
        Some(Usage {
            input: 40,
            cached_input: 0,
            output: 1
        })
    );
    assert_eq!(s.text_chars(), 3);
    // Nothing more is written once finished.
    let mut more = Vec::new();
    s.on_event(
        Some("message_stop"),
        r#"{"type":"message_stop"}"#,
        &mut more,
    )
    .unwrap();
    s.on_end(&mut more).unwrap();
    assert!(more.is_empty());
}

#[test]
fn messages_stream_malformed_event_writes_error_and_returns_upstream_fault() {
    let mut s = MessagesStreamToChat::new("gpt-4o", false, CREATED, "chatcmpl-test");
    let mut out = Vec::new();
    let err = s
        .on_event(Some("content_block_delta"), "{not json", &mut out)
        .unwrap_err();
    assert!(!err.is_client_fault());
    assert!(s.finished());
    let events = split_sse(std::str::from_utf8(&out).unwrap());
    assert_eq!(
        json(events[0].1.as_bytes())["error"]["code"],
        "upstream_error"
    );
}

#[test]
fn messages_stream_cut_before_message_stop_ends_with_error_on_end() {
    let fixture = include_str!("../fixtures/anthropic_stream_text.sse");
    let events = split_sse(fixture);
    let mut s = MessagesStreamToChat::new("gpt-4o", true, CREATED, "chatcmpl-test");
    let mut out = Vec::new();
    for (event, data) in &events[..4] {
        s.on_event(event.as_deref(), data, &mut out).unwrap();
    }
    assert!(!s.finished());
    let before = out.len();
    s.on_end(&mut out).unwrap();
    let tail = split_sse(std::str::from_utf8(&out[before..]).unwrap());
    assert_eq!(tail.len(), 1);
    assert_eq!(json(tail[0].1.as_bytes())["error"]["type"], "api_error");
    assert!(s.finished());
    // Input usage from message_start is known even though output never arrived.
    assert_eq!(
        s.usage(),
        Some(Usage {
            input: 35,
            cached_input: 100,
            output: 1
        })
    );
}

#[test]
fn native_stream_usage_tap_reads_start_and_delta_usage() {
    let mut tap = MessagesStreamUsage::new();
    assert_eq!(tap.usage(), None);
    for (event, data) in split_sse(include_str!("../fixtures/anthropic_stream_text.sse")) {
        tap.on_event(event.as_deref(), &data);
    }
    tap.on_event(None, "garbage is ignored");
    assert_eq!(
        tap.usage(),
        Some(Usage {
            input: 35,
            cached_input: 100,
            output: 15
        })
    );
    assert_eq!(tap.text_chars(), 6);
}

#[test]
fn native_stream_usage_tap_takes_input_counts_repeated_in_message_delta() {
    let mut tap = MessagesStreamUsage::new();
    tap.on_event(
        Some("message_start"),
        r#"{"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}"#,
    );
    tap.on_event(
        Some("message_delta"),
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":7,"cache_read_input_tokens":3,"output_tokens":20}}"#,
    );
    assert_eq!(
        tap.usage(),
        Some(Usage {
            input: 7,
            cached_input: 3,
            output: 20
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Streams: OpenAI upstream → Anthropic client
// ---------------------------------------------------------------------------------------------

#[test]
fn chat_stream_text_becomes_message_events_with_usage_in_message_delta() {
    let mut s = ChatStreamToMessages::new("claude-sonnet-4-5", "msg_test");
    let out = feed(
        include_str!("../fixtures/chat_stream_text.sse"),
        |e, d, o| s.on_event(e, d, o),
    );
    assert_sse_eq(
        &out,
        include_str!("../fixtures/message_events_from_text.sse"),
    );
    assert!(s.finished());
    assert_eq!(
        s.usage(),
        Some(Usage {
            input: 12,
            cached_input: 8,
            output: 2
        })
    );
    assert_eq!(s.text_chars(), 11);
}

#[test]
fn chat_stream_tool_calls_become_tool_use_blocks_with_input_json_deltas() {
    let mut s = ChatStreamToMessages::new("claude-sonnet-4-5", "msg_test");
    let out = feed(
        include_str!("../fixtures/chat_stream_tools.sse"),
        |e, d, o| s.on_event(e, d, o),
    );
    assert_sse_eq(
        &out,
        include_str!("../fixtures/message_events_from_tools.sse"),
    );
    assert_eq!(s.usage(), None, "upstream sent no usage chunk");
}

#[test]
fn chat_stream_several_tool_calls_in_one_chunk_open_one_block_each() {
    let mut s = ChatStreamToMessages::new("claude", "msg_test");
    let mut out = Vec::new();
    let chunk = r#"{"choices":[{"index":0,"delta":{"tool_calls":[
        {"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},
        {"index":1,"id":"b","type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
    s.on_event(None, chunk, &mut out).unwrap();
    s.on_event(None, "[DONE]", &mut out).unwrap();
    let names: Vec<_> = split_sse(std::str::from_utf8(&out).unwrap())
        .into_iter()
        .map(|(e, _)| e.unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
}

#[test]
fn chat_stream_resuming_a_closed_tool_call_is_an_upstream_fault() {
    let mut s = ChatStreamToMessages::new("claude", "msg_test");
    let mut out = Vec::new();
    let first = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}}]}"#;
    let second = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#;
    let back = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}}]}"#;
    s.on_event(None, first, &mut out).unwrap();
    s.on_event(None, second, &mut out).unwrap();
    let err = s.on_event(None, back, &mut out).unwrap_err();
    assert_eq!(
        err.to_string(),
        "upstream choices[0].delta.tool_calls[0]: tool call resumed after another block started"
    );
    assert!(s.finished());
    let last = split_sse(std::str::from_utf8(&out).unwrap()).pop().unwrap();
    assert_eq!(last.0.as_deref(), Some("error"));
}

#[test]
fn chat_stream_error_chunk_becomes_anthropic_error_event() {
    let mut s = ChatStreamToMessages::new("claude", "msg_test");
    let mut out = Vec::new();
    s.on_event(
        None,
        r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
        &mut out,
    )
    .unwrap();
    s.on_event(
        None,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
        &mut out,
    )
    .unwrap();
    assert!(s.finished());
    let last = split_sse(std::str::from_utf8(&out).unwrap()).pop().unwrap();
    assert_eq!(last.0.as_deref(), Some("error"));
    assert_json_eq(
        last.1.as_bytes(),
        r#"{"type":"error","error":{"type":"api_error","message":"the upstream provider failed mid-stream"}}"#,
    );
}

#[test]
fn chat_stream_end_without_done_closes_after_finish_reason_and_errors_before_it() {
    let mut s = ChatStreamToMessages::new("claude", "msg_test");
    let mut out = Vec::new();
    s.on_event(
        None,
        r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"length"}]}"#,
        &mut out,
    )
    .unwrap();
    s.on_end(&mut out).unwrap();
    let events = split_sse(std::str::from_utf8(&out).unwrap());
    let (name, data) = &events[events.len() - 2];
    assert_eq!(name.as_deref(), Some("message_delta"));
    assert_eq!(json(data.as_bytes())["delta"]["stop_reason"], "max_tokens");
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));

    let mut s = ChatStreamToMessages::new("claude", "msg_test");
    let mut out = Vec::new();
    s.on_event(
        None,
        r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
        &mut out,
    )
    .unwrap();
    s.on_end(&mut out).unwrap();
    assert_eq!(
        split_sse(std::str::from_utf8(&out).unwrap())
            .pop()
            .unwrap()
            .0
            .as_deref(),
        Some("error")
    );
}

#[test]
fn chat_stream_of_only_done_still_emits_a_well_formed_message() {
    let mut s = ChatStreamToMessages::new("claude", "msg_test");
    let mut out = Vec::new();
    s.on_event(None, "[DONE]", &mut out).unwrap();
    let names: Vec<_> = split_sse(std::str::from_utf8(&out).unwrap())
        .into_iter()
        .map(|(e, _)| e.unwrap())
        .collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
}

#[test]
fn translators_read_the_data_type_not_the_event_name() {
    // Some SSE stacks drop `event:` lines; Anthropic's data repeats the type, so output is equal.
    let fixture = include_str!("../fixtures/anthropic_stream_tool_use.sse");
    let mut with_names = MessagesStreamToChat::new("gpt-4o", false, CREATED, "chatcmpl-test");
    let mut without = MessagesStreamToChat::new("gpt-4o", false, CREATED, "chatcmpl-test");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (event, data) in split_sse(fixture) {
        with_names
            .on_event(event.as_deref(), &data, &mut a)
            .unwrap();
        without.on_event(None, &data, &mut b).unwrap();
    }
    assert_eq!(a, b);
}
