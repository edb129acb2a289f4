//! Fixture tests for every direction, plus error paths and stream framing.
//!
//! Fixtures under `fixtures/` were written from the public API references: `*_request_*` /
//! `ingress_*` / `upstream_*` are request pairs, `*_response_*` / `chat_completion_*` /
//! `message_from_*` response pairs, `*.sse` stream pairs. JSON is compared as parsed values,
//! SSE event by event (name equal, data parsed and equal).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod request;
mod response;
mod stream;

use serde_json::Value;

use super::*;

const CREATED: u64 = 1_700_000_000;

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

#[track_caller]
fn assert_json_eq(actual: &[u8], expected: &str) {
    let (actual, expected) = (json(actual), json(expected.as_bytes()));
    assert_eq!(
        actual,
        expected,
        "\nactual:   {}\nexpected: {}",
        serde_json::to_string_pretty(&actual).unwrap(),
        serde_json::to_string_pretty(&expected).unwrap()
    );
}

/// Test-only SSE splitter: events are separated by a blank line; `event:` and `data:` fields.
fn split_sse(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            (event, data.join("\n"))
        })
        .collect()
}

#[track_caller]
fn assert_sse_eq(actual: &[u8], expected: &str) {
    let actual_text = std::str::from_utf8(actual).unwrap();
    let (actual, expected) = (split_sse(actual_text), split_sse(expected));
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a.0, e.0, "event {i} name");
        if e.1 == "[DONE]" {
            assert_eq!(a.1, e.1, "event {i} data");
        } else {
            assert_json_eq(a.1.as_bytes(), &e.1);
        }
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "event count; actual stream:\n{actual_text}"
    );
}

/// Feeds a stream one event at a time and checks that every call appended only whole events.
fn feed(
    fixture: &str,
    mut on_event: impl FnMut(Option<&str>, &str, &mut Vec<u8>) -> Result<(), Error>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (event, data) in split_sse(fixture) {
        let before = out.len();
        on_event(event.as_deref(), &data, &mut out).unwrap();
        let appended = std::str::from_utf8(&out[before..]).unwrap();
        assert!(
            appended.is_empty() || appended.ends_with("\n\n"),
            "partial event written: {appended:?}"
        );
        for (_, data) in split_sse(appended) {
            assert!(
                data == "[DONE]" || serde_json::from_str::<Value>(&data).is_ok(),
                "bad data: {data}"
            );
        }
    }
    out
}

#[track_caller]
fn request_error(result: Result<Vec<u8>, Error>) -> String {
    let err = result.expect_err("expected an error");
    assert!(err.is_client_fault(), "{err} should be a client fault");
    err.to_string()
}

// ---------------------------------------------------------------------------------------------
// Errors in Anthropic's shape
// ---------------------------------------------------------------------------------------------

#[test]
fn error_body_has_anthropic_shape() {
    assert_json_eq(
        &error_body("rate_limit_error", "slow \"down\""),
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow \"down\""}}"#,
    );
}

#[test]
fn error_kinds_follow_anthropic_status_table() {
    let cases = [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (529, "overloaded_error"),
    ];
    for (status, kind) in cases {
        assert_eq!(error_kind_for_status(status), kind, "{status}");
    }
}
