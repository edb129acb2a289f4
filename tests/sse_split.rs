//! Streams split at every byte boundary: the SSE parser feeding each translator gives exactly
//! the output of the unsplit stream (the fixtures are written from the public API docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use switchyard::providers::anthropic::{
    ChatStreamToMessages, MessagesStreamToChat, MessagesStreamUsage,
};
use switchyard::providers::sse::Parser;

const ANTHROPIC_TEXT: &str =
    include_str!("../src/providers/anthropic/fixtures/anthropic_stream_text.sse");
const ANTHROPIC_TOOLS: &str =
    include_str!("../src/providers/anthropic/fixtures/anthropic_stream_tool_use.sse");
const OPENAI_TOOLS: &str =
    include_str!("../src/providers/anthropic/fixtures/chat_stream_tools.sse");
const OPENAI_TEXT: &str = include_str!("../src/providers/anthropic/fixtures/chat_stream_text.sse");

/// Feed `parts` through the parser and `on_event`; return the concatenated output.
fn feed(parts: &[&[u8]], mut on_event: impl FnMut(Option<&str>, &str, &mut Vec<u8>)) -> Vec<u8> {
    let mut parser = Parser::new(1 << 20);
    let mut out = Vec::new();
    for p in parts {
        parser.push(p);
        while let Some(e) = parser.next_event().unwrap() {
            on_event(e.event.as_deref(), &e.data, &mut out);
        }
    }
    if let Some(e) = parser.finish() {
        on_event(e.event.as_deref(), &e.data, &mut out);
    }
    out
}

fn to_chat(parts: &[&[u8]]) -> Vec<u8> {
    let mut t = MessagesStreamToChat::new("m", true, 1, "req_1");
    let out = feed(parts, |name, data, out| {
        if !data.is_empty() {
            t.on_event(name, data, out).unwrap();
        }
    });
    assert!(t.finished());
    out
}

fn to_messages(parts: &[&[u8]]) -> Vec<u8> {
    let mut t = ChatStreamToMessages::new("m", "req_1");
    let out = feed(parts, |name, data, out| {
        if !data.is_empty() {
            t.on_event(name, data, out).unwrap();
        }
    });
    assert!(t.finished());
    out
}

fn every_split(stream: &str, translate: fn(&[&[u8]]) -> Vec<u8>) {
    let bytes = stream.as_bytes();
    let whole = translate(&[bytes]);
    assert!(!whole.is_empty());
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(translate(&[a, b]), whole, "split at byte {i}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(translate(&singles), whole, "one byte at a time");
}

#[test]
fn anthropic_to_openai_text_stream_at_every_split() {
    every_split(ANTHROPIC_TEXT, to_chat);
}

#[test]
fn anthropic_to_openai_tool_stream_at_every_split() {
    every_split(ANTHROPIC_TOOLS, to_chat);
}

#[test]
fn openai_to_anthropic_streams_at_every_split() {
    every_split(OPENAI_TEXT, to_messages);
    every_split(OPENAI_TOOLS, to_messages);
}

#[test]
fn anthropic_passthrough_usage_at_every_split() {
    let bytes = ANTHROPIC_TEXT.as_bytes();
    for i in 0..=bytes.len() {
        let mut tap = MessagesStreamUsage::new();
        feed(&[&bytes[..i], &bytes[i..]], |name, data, _| {
            tap.on_event(name, data)
        });
        let u = tap.usage().unwrap();
        assert_eq!(
            (u.input, u.cached_input, u.output),
            (35, 100, 15),
            "split at byte {i}"
        );
    }
}
