//! Hostile input, property-tested: request parsing, OpenAI ⇄ Anthropic translation, the SSE
//! parser and the policy loader never panic, and always answer with a value or an error.
//!
//! The suite runs a short pass (256 cases each). A longer run, for as long as you like:
//!     PROPTEST_CASES=200000 timeout 600 cargo test --release --test fuzz
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use switchyard::chat;
use switchyard::providers::anthropic;
use switchyard::providers::sse::Parser;

/// JSON values shaped like requests: objects with the fields switchyard reads, of any type.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "[a-z_ ]{0,12}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("system"),
            Just("tool"),
            Just("text"),
            Just("image_url"),
            Just("tool_use"),
            Just("auto")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("model".to_owned()),
                    Just("messages".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("stream".to_owned()),
                    Just("max_tokens".to_owned()),
                    Just("tools".to_owned()),
                    Just("tool_calls".to_owned()),
                    Just("type".to_owned()),
                    Just("text".to_owned()),
                    Just("system".to_owned()),
                    Just("tool_choice".to_owned()),
                    Just("stop".to_owned()),
                    Just("response_format".to_owned()),
                    Just("function".to_owned()),
                    Just("arguments".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn request_parsing_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for kind in [chat::Kind::Chat, chat::Kind::Messages, chat::Kind::Embeddings] {
            if let Ok(req) = chat::parse(&bytes, kind) {
                let _ = req.to_upstream("m", true);
                let _ = req.last_user_text();
            }
        }
    }

    #[test]
    fn request_parsing_never_panics_on_json(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        for kind in [chat::Kind::Chat, chat::Kind::Messages] {
            if let Ok(req) = chat::parse(&bytes, kind) {
                // The rewrite is valid JSON with the new model.
                let out: serde_json::Value = serde_json::from_slice(&req.to_upstream("m", true)).unwrap();
                prop_assert_eq!(&out["model"], "m");
            }
        }
    }

    #[test]
    fn translation_never_panics(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = anthropic::chat_request_to_messages(&bytes, "m");
        let _ = anthropic::messages_request_to_chat(&bytes, "m");
        let _ = anthropic::messages_response_to_chat(&bytes, "m", 0);
        let _ = anthropic::chat_response_to_messages(&bytes, "m");
        let _ = anthropic::usage_from_messages_response(&bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut out = Vec::new();
        let mut a = anthropic::MessagesStreamToChat::new("m", true, 0, "id");
        let _ = a.on_event(Some("content_block_delta"), &text, &mut out);
        let _ = a.on_end(&mut out);
        let mut b = anthropic::ChatStreamToMessages::new("m", "id");
        let _ = b.on_event(None, &text, &mut out);
        let _ = b.on_end(&mut out);
    }

    #[test]
    fn sse_parser_never_panics_and_loses_no_byte(chunks in prop::collection::vec(prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), any::<u8>()], 0..64), 0..16)) {
        let mut p = Parser::new(1 << 16);
        let mut seen = Vec::new();
        for c in &chunks {
            p.push(c);
            while let Ok(Some(e)) = p.next_event() {
                seen.extend_from_slice(&e.raw);
            }
        }
        if let Some(e) = p.finish() {
            seen.extend_from_slice(&e.raw);
        }
        prop_assert_eq!(seen, chunks.concat());
    }

    #[test]
    fn the_policy_loader_never_panics(text in "(version: 1\n)?(providers:\n  [a-z]{1,3}: \\{ kind: (openai|anthropic|x), base_url: \"?[a-z:/.0-9]{0,20}\"? \\}\n)?(models:\n  [a-z]{1,3}: \\{ provider: [a-z]{1,3}, model: m, tier: (open|frontier), price: \\{ input: -?[0-9e.]{1,6}, output: [0-9.]{1,4} \\} \\}\n)?(routes:\n  - \\{ name: [a-z]{1,3}, (use|when): [\\[\\]a-z, ]{0,12} \\}\n)?(budgets:\n  - \\{ name: b, limit_usd: [-0-9.e]{1,5}, timezone: [A-Za-z/_]{0,20} \\}\n)?[&*!%@`|>{}\\[\\]:, \n-]{0,24}") {
        let _ = switchyard::Policy::from_yaml("fuzz.yaml", &text, &|_| Some("x".to_owned()));
    }
}
